"""Image preparation before a provider call, on the real full-size photos in
fashion-products/large of the shared data folder ($LOUPE_SHARED_DATA, else
../shared/data from the repository root; mostly 1800x2400 JPEGs).

Compares, in the same run and on the same files, the pipeline's
`prepare_image` (JPEG draft mode: decode at reduced scale) with the naive way
(full decode, then resize). Prints medians per image (ms) and output sizes.

    .venv/bin/python bench/prepare_image_bench.py [--max-side 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotator.imaging import prepare_image  # noqa: E402
from tests.environment import shared_data_folder  # noqa: E402

PHOTOS = shared_data_folder(ROOT) / "fashion-products" / "large"


def naive(data: bytes, *, max_side: int) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = sorted(PHOTOS.glob("*.jpg"))
    blobs = [path.read_bytes() for path in files]
    timings: dict[str, list[float]] = {"draft": [], "naive": []}
    sizes: dict[str, list[int]] = {"draft": [], "naive": []}
    for _ in range(args.repeat):
        for data in blobs:
            for name, fn in (("draft", prepare_image), ("naive", naive)):
                start = time.perf_counter()
                out = fn(data, max_side=args.max_side)
                timings[name].append((time.perf_counter() - start) * 1000)
                sizes[name].append(len(out))
    result = {
        "benchmark": "prepare_image",
        "images": len(blobs),
        "repeat": args.repeat,
        "max_side": args.max_side,
        "input_kb_median": round(statistics.median(len(b) for b in blobs) / 1024, 1),
        "median_ms_per_image": {k: round(statistics.median(v), 2) for k, v in timings.items()},
        "output_kb_median": {k: round(statistics.median(v) / 1024, 1) for k, v in sizes.items()},
        "speedup": round(
            statistics.median(timings["naive"]) / statistics.median(timings["draft"]), 2
        ),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "prepare_image_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
