"""Image preparation before any provider call: orient, RGB, downscale, JPEG.

The longest side is bounded by ANNOTATOR_IMAGE_MAX_SIDE (clamped to 2048) and
the encoded size by MAX_REQUEST_IMAGE_BYTES, so a request can never exceed a
provider's size limit (OpenAI: 20 MB per image; resellers often 4-5 MB)."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

HARD_MAX_SIDE = 2048
MAX_REQUEST_IMAGE_BYTES = 3 * 1024 * 1024
QUALITIES = (85, 75, 60)


def prepare_image(data: bytes, *, max_side: int) -> bytes:
    max_side = max(64, min(max_side, HARD_MAX_SIDE))
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT data when
            # the result still covers the target size: much faster than
            # decoding 2400 px and resizing. draft() wants the target itself,
            # not the bounding box (a 1800x2400 photo bound to 1024 is 768x1024).
            scale = min(1.0, max_side / max(image.size))
            image.draft("RGB", (int(image.width * scale), int(image.height * scale)))
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        side = max(image.size)
        while True:
            for quality in QUALITIES:
                out = io.BytesIO()
                image.save(out, "JPEG", quality=quality)
                if out.tell() <= MAX_REQUEST_IMAGE_BYTES:
                    return out.getvalue()
            side //= 2  # pathological noise images: halve until it fits
            image = image.resize(
                (
                    max(1, image.width * side // max(image.size)),
                    max(1, image.height * side // max(image.size)),
                )
            )
