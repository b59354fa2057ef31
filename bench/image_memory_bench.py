"""Peak memory of decoding one large image within the limits (issue 11 item 7).

Generates a 59-megapixel PNG (8860x6660, under IMAGE_MAX_PIXELS = 60 MP and the 25 MB byte
limit) as RGB and as RGBA, and a 59 MP JPEG, then runs, each in a fresh process so the peaks
do not mix, on the same files in the same run:

- `before`: the decode of main before this change (full decode, EXIF transpose copy,
  full-size RGB flatten, then thumbnail), kept here as the reference;
- `after`: catalog.images.normalise_image (JPEG draft, band-wise reduce);
- `baseline`: the same process setup without decoding anything.

Prints JSON: peak RSS (ru_maxrss) in MB per variant and image, medians over --repeat runs.

    .venv/bin/python bench/image_memory_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (8860, 6660)  # 59.0 MP


def _generate(folder: Path) -> dict[str, Path]:
    """Smooth gradients with detail: compresses under 25 MB, decodes to the full 59 MP."""
    from PIL import Image, ImageDraw

    small = Image.radial_gradient("L").resize((886, 666))
    channels = [
        small.resize(SIZE),
        Image.linear_gradient("L").resize(SIZE),
        small.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize(SIZE),
    ]
    rgb = Image.merge("RGB", channels)
    del channels
    draw = ImageDraw.Draw(rgb)
    for step in range(0, SIZE[0], 97):
        draw.line((step, 0, SIZE[0] - step, SIZE[1]), fill=(200, 30, 60), width=3)
    paths = {"png_rgb": folder / "rgb.png", "png_rgba": folder / "rgba.png"}
    rgb.save(paths["png_rgb"], compress_level=6)
    paths["jpeg"] = folder / "photo.jpg"
    rgb.save(paths["jpeg"], quality=90)
    rgba = rgb.convert("RGBA")
    del rgb
    rgba.putalpha(Image.linear_gradient("L").resize(SIZE))
    rgba.save(paths["png_rgba"], compress_level=6)
    return paths


def _before(data: bytes, max_side: int) -> bytes:
    """normalise_image as it was on main (c99e140), for the comparison."""
    from PIL import Image, ImageOps

    from catalog.images import _flatten_to_rgb

    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(0)
        opened.load()
        image = ImageOps.exif_transpose(opened)
    rgb = _flatten_to_rgb(image)
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=90)
    return out.getvalue()


def _child(variant: str, path: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from catalog.images import normalise_image

    data = Path(path).read_bytes()
    if variant == "before":
        _before(data, settings.IMAGE_STORE_MAX_SIDE)
    elif variant == "after":
        normalise_image(data)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": round(peak_mb, 1)}))


def _run(variant: str, path: Path) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="loupe-image-bench-") as tmp:
        generate = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                f"from bench.image_memory_bench import _generate; from pathlib import Path; "
                f"_generate(Path({tmp!r}))",
            ],
            check=True,
            cwd=ROOT,
        )
        del generate
        paths = {
            name: Path(tmp) / file
            for name, file in (
                ("png_rgb", "rgb.png"),
                ("png_rgba", "rgba.png"),
                ("jpeg", "photo.jpg"),
            )
        }
        results: dict = {
            "pixels": SIZE[0] * SIZE[1],
            "size": f"{SIZE[0]}x{SIZE[1]}",
            "file_mb": {
                name: round(path.stat().st_size / 2**20, 1) for name, path in paths.items()
            },
            "repeat": args.repeat,
            "peak_rss_mb_median": {},
        }
        for name, path in paths.items():
            row = {}
            for variant in ("baseline", "before", "after"):
                row[variant] = statistics.median(_run(variant, path) for _ in range(args.repeat))
            results["peak_rss_mb_median"][name] = row
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
