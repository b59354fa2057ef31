"""Peak memory of decoding the largest images within the limits (issue 11 item 7).

Generates, at the default IMAGE_MAX_PIXELS (the largest 4:3 image within it), a PNG as RGB,
as RGBA, as RGBA made nearly incompressible so its file is close to the 25 MB byte limit (the
compressed bytes are held while decoding too), a baseline JPEG, a progressive JPEG and a
progressive JPEG without chroma subsampling (refused: it decodes like 1.75 times its pixels),
with the largest such JPEG accepted; and a 59-megapixel PNG (8860x6660), RGB and RGBA, over
that limit. Then runs, each in a fresh
process so the peaks do not mix:

- `normalise`: catalog.images.normalise_image, as intake calls it (JPEG draft, band-wise
  reduce; images over IMAGE_MAX_PIXELS refused from their header);
- `baseline`: the same process setup (Django loaded, the file read) without decoding.

Prints JSON: per image its size and file size, the peak RSS (ru_maxrss, MB, median over
--repeat runs) of both variants and their difference, and what normalise_image did
(stored, or the refusal message).

    .venv/bin/python bench/image_memory_bench.py [--repeat 3] [--limit PIXELS]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OVER_SIZE = (8860, 6660)  # 59.0 MP: the image of issue 11 item 7
DENSE_TARGET_BYTES = 24 * 2**20  # just under IMAGE_FETCH_MAX_BYTES (25 MB)


def _default_limit() -> int:
    from config.env import Environment

    return int(Environment.model_fields["IMAGE_MAX_PIXELS"].default)


def largest_size(limit: int) -> tuple[int, int]:
    """The largest 4:3 image of at most `limit` pixels."""
    width = math.isqrt(limit * 4 // 3)
    height = limit // width
    while width * height > limit:
        height -= 1
    return width, height


def _picture(size: tuple[int, int]):
    """Smooth gradients with detail: compresses well, decodes to every pixel."""
    from PIL import Image, ImageDraw

    small = Image.radial_gradient("L").resize((size[0] // 10, size[1] // 10))
    channels = [
        small.resize(size),
        Image.linear_gradient("L").resize(size),
        small.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize(size),
    ]
    rgb = Image.merge("RGB", channels)
    del channels
    draw = ImageDraw.Draw(rgb)
    for step in range(0, size[0], 97):
        draw.line((step, 0, size[0] - step, size[1]), fill=(200, 30, 60), width=3)
    return rgb


def _with_alpha(rgb):
    from PIL import Image

    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    return rgba


def _generate(folder: Path, limit: int) -> dict[str, Path]:
    from PIL import Image

    paths: dict[str, Path] = {}
    size = largest_size(limit)
    rgb = _picture(size)
    paths["limit_png_rgb"] = folder / "limit-rgb.png"
    rgb.save(paths["limit_png_rgb"], compress_level=6)
    paths["limit_jpeg"] = folder / "limit.jpg"
    rgb.save(paths["limit_jpeg"], quality=90)
    paths["limit_jpeg_progressive"] = folder / "limit-progressive.jpg"
    rgb.save(paths["limit_jpeg_progressive"], quality=90, progressive=True)
    # Progressive JPEGs keep every DCT coefficient of the image while decoding (2 bytes
    # each): without chroma subsampling that is 6 bytes a pixel, the costliest JPEG.
    # normalise_image counts that, so at the pixel limit such a JPEG is refused; the largest
    # it accepts has 4/7 of the limit's pixels (6 bytes of coefficients + 1 of output at 1/2).
    paths["limit_jpeg_progressive_444"] = folder / "limit-progressive-444.jpg"
    rgb.save(paths["limit_jpeg_progressive_444"], quality=90, progressive=True, subsampling=0)
    paths["largest_jpeg_progressive_444"] = folder / "largest-progressive-444.jpg"
    largest = rgb.resize(largest_size(limit * 4 // 7))
    largest.save(paths["largest_jpeg_progressive_444"], quality=90, progressive=True, subsampling=0)
    del largest
    rgba = _with_alpha(rgb)
    del rgb
    paths["limit_png_rgba"] = folder / "limit-rgba.png"
    rgba.save(paths["limit_png_rgba"], compress_level=6)
    # Random rows compress to nothing: add them until the file is near the byte limit.
    rows = max(1, (DENSE_TARGET_BYTES - paths["limit_png_rgba"].stat().st_size) // (4 * size[0]))
    rows = min(rows, size[1])
    noise = Image.frombytes("RGBA", (size[0], rows), os.urandom(4 * size[0] * rows))
    rgba.paste(noise, (0, 0))
    del noise
    paths["limit_png_rgba_dense"] = folder / "limit-rgba-dense.png"
    rgba.save(paths["limit_png_rgba_dense"], compress_level=6)
    del rgba
    over = _picture(OVER_SIZE)
    paths["59mp_png_rgb"] = folder / "59mp-rgb.png"
    over.save(paths["59mp_png_rgb"], compress_level=6)
    paths["59mp_png_rgba"] = folder / "59mp-rgba.png"
    _with_alpha(over).save(paths["59mp_png_rgba"], compress_level=6)
    return paths


def _child(variant: str, path: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from catalog.images import ImageError, normalise_image

    data = Path(path).read_bytes()
    outcome = "not decoded"
    if variant == "normalise":
        try:
            result = normalise_image(data)
        except ImageError as exc:
            outcome = str(exc)
        else:
            outcome = f"stored ({result.width}x{result.height} {result.format})"
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": round(peak_mb, 1), "outcome": outcome}))


def _run(variant: str, path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--limit", type=int, help="IMAGE_MAX_PIXELS to measure (default: the default)"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    sys.path.insert(0, str(ROOT))
    limit = args.limit or _default_limit()
    os.environ["IMAGE_MAX_PIXELS"] = str(limit)  # the children's settings
    with tempfile.TemporaryDirectory(prefix="loupe-image-bench-") as tmp:
        # In a process of its own: the generator's full-size images stay out of this one.
        listing = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); "
                f"from bench.image_memory_bench import _generate; from pathlib import Path; "
                f"print(json.dumps({{k: str(v) for k, v in "
                f"_generate(Path({tmp!r}), {limit}).items()}}))",
            ],
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        paths = {name: Path(p) for name, p in json.loads(listing.stdout).items()}
        from PIL import Image

        results: dict = {
            "image_max_pixels": limit,
            "repeat": args.repeat,
            "images": {},
        }
        for name, path in paths.items():
            with Image.open(path) as image:
                width, height = image.size
            runs = {
                variant: [_run(variant, path) for _ in range(args.repeat)]
                for variant in ("baseline", "normalise")
            }
            peaks = {v: statistics.median(r["peak_mb"] for r in rs) for v, rs in runs.items()}
            results["images"][name] = {
                "size": f"{width}x{height} ({width * height / 1e6:.1f} MP)",
                "file_mb": round(path.stat().st_size / 2**20, 1),
                "peak_rss_mb": peaks["normalise"],
                "baseline_rss_mb": peaks["baseline"],
                "decode_mb": round(peaks["normalise"] - peaks["baseline"], 1),
                "outcome": runs["normalise"][0]["outcome"],
            }
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
