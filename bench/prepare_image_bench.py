"""Image preparation before a provider call, on the real photos in fashion-products/large
of the shared data folder ($LOUPE_SHARED_DATA, else ../shared/data from the repository
root; mostly 1800x2400 JPEGs, some other sizes).

Compares, in the same run and on the same files:
- `prepare_image`: JPEG draft decode at the smallest scale covering the target, then
  one BOX step (catalog/renditions.py); the intake renditions use the same code;
- `draft_lanczos`: the same draft decode finished with LANCZOS (the previous code);
- `draft_bilinear`: the draft decode finished with BILINEAR;
- `naive`: full decode, LANCZOS resize (the quality reference).
Reports the 1800x2400 photos separately from the mixed set: median CPU ms per image
(time.process_time: on a shared, oversubscribed machine wall time measures the queue for
the CPU, CPU time the work) and wall ms, output size, and SSIM against `naive`
(scikit-image `structural_similarity` on the luma channel, data_range 255, on the first
--ssim-sample photos of each set). Medians of --repeat passes; loadavg is recorded.

    .venv/bin/python bench/prepare_image_bench.py [--max-side 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from skimage.metrics import structural_similarity

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog import renditions  # noqa: E402
from tests.environment import shared_data_folder  # noqa: E402

PHOTOS = shared_data_folder(ROOT) / "fashion-products" / "large"


def _prepare(filter_: Image.Resampling) -> Callable[[bytes, int], Image.Image]:
    def run(data: bytes, max_side: int) -> Image.Image:
        image = renditions.decode_for(data, max_side)
        image = renditions._to_rgb(image)
        if max(image.size) > max_side:
            scale = max_side / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            image = image.resize(size, filter_, reducing_gap=2.0)
        return image

    return run


def naive(data: bytes, max_side: int) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return image


VARIANTS: dict[str, Callable[[bytes, int], Image.Image]] = {
    "prepare_image": _prepare(renditions.FILTER),
    "draft_lanczos": _prepare(Image.Resampling.LANCZOS),
    "draft_bilinear": _prepare(Image.Resampling.BILINEAR),
    "naive": naive,
}


def _encode(image: Image.Image) -> bytes:
    return renditions.encode_jpeg(image, quality=renditions.MODEL_QUALITY)


def _ssim(a: Image.Image, b: Image.Image) -> float:
    if a.size != b.size:
        a = a.resize(b.size, Image.Resampling.LANCZOS)
    return float(
        structural_similarity(
            np.asarray(a.convert("L")), np.asarray(b.convert("L")), data_range=255
        )
    )


def measure(blobs: list[bytes], max_side: int, repeat: int, ssim_sample: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    sizes: dict[str, list[int]] = {name: [] for name in VARIANTS}
    ssim: dict[str, list[float]] = {name: [] for name in VARIANTS if name != "naive"}
    names = list(VARIANTS)
    shuffler = random.Random(0)
    for _ in range(repeat):
        for data in blobs:
            # Interleaved, so load hits every variant alike, in a shuffled order: the
            # variant that runs after `naive` (which frees ~13 MB of pixels back to
            # the OS) pays ~3-5 ms more CPU for fresh pages, so a fixed order biases.
            shuffler.shuffle(names)
            for name in names:
                fn = VARIANTS[name]
                start, wall = time.process_time(), time.perf_counter()
                encoded = _encode(fn(data, max_side))
                times[name].append((time.process_time() - start) * 1000)
                walls[name].append((time.perf_counter() - wall) * 1000)
                sizes[name].append(len(encoded))
    for data in blobs[:ssim_sample]:
        reference = naive(data, max_side)
        for name in ssim:
            ssim[name].append(_ssim(VARIANTS[name](data, max_side), reference))
    return {
        "images": len(blobs),
        "median_cpu_ms_per_image": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "median_wall_ms_per_image": {k: round(statistics.median(v), 2) for k, v in walls.items()},
        "output_kb_median": {k: round(statistics.median(v) / 1024, 1) for k, v in sizes.items()},
        "ssim_images": min(ssim_sample, len(blobs)),
        "ssim_vs_naive_lanczos": {
            k: {"median": round(statistics.median(v), 4), "min": round(min(v), 4)}
            for k, v in ssim.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ssim-sample", type=int, default=40)
    args = parser.parse_args()
    blobs = [path.read_bytes() for path in sorted(PHOTOS.glob("*.jpg"))]
    big = [b for b in blobs if Image.open(io.BytesIO(b)).size == (1800, 2400)]
    result = {
        "benchmark": "prepare_image",
        "max_side": args.max_side,
        "repeat": args.repeat,
        "loadavg_before": os.getloadavg(),
        "photos_1800x2400": measure(big, args.max_side, args.repeat, args.ssim_sample),
        "mixed_set": measure(blobs, args.max_side, args.repeat, args.ssim_sample),
        "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "prepare_image_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
