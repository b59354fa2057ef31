"""Image preparation before any provider call: orient, RGB, downscale, JPEG.

Images imported since renditions exist already have a model-ready JPEG made
once at intake (catalog/renditions.py): `image_bytes_for_model` reads it and
does no resizing. Older rows fall back to `prepare_image` on the stored copy.

The longest side is bounded by ANNOTATOR_IMAGE_MAX_SIDE (clamped to 2048) and
the encoded size by MAX_REQUEST_IMAGE_BYTES, so a request can never exceed a
provider's size limit (OpenAI: 20 MB per image; resellers often 4-5 MB)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image

from catalog.renditions import decode_for, downscale, encode_jpeg, model_side

if TYPE_CHECKING:  # the models need Django set up; preparing bytes does not
    from catalog.models import ProductImage

HARD_MAX_SIDE = 2048
MAX_REQUEST_IMAGE_BYTES = 3 * 1024 * 1024
QUALITIES = (85, 75, 60)


def prepare_image(data: bytes, *, max_side: int) -> bytes:
    """JPEG draft decode at the smallest scale covering `max_side`, one cheap resize
    (catalog.renditions), then the byte bound."""
    max_side = max(64, min(max_side, HARD_MAX_SIDE))
    image = downscale(decode_for(data, max_side), max_side)
    side = max(image.size)
    while True:
        for quality in QUALITIES:
            encoded = encode_jpeg(image, quality=quality)
            if len(encoded) <= MAX_REQUEST_IMAGE_BYTES:
                return encoded
        side //= 2  # pathological noise images: halve until it fits
        image = image.resize(
            (
                max(1, image.width * side // max(image.size)),
                max(1, image.height * side // max(image.size)),
            ),
            Image.Resampling.BILINEAR,
        )


def image_bytes_for_model(image: ProductImage) -> bytes:
    """What the provider is sent for `image`: the intake rendition when it was made
    for the current side and fits the byte bound, else prepared from the stored copy."""
    if image.model_file:
        with image.model_file.open("rb") as stream:
            data = stream.read()
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            fits = max(header.size) <= model_side()
        if fits and len(data) <= MAX_REQUEST_IMAGE_BYTES:
            return data
    with image.file.open("rb") as stream:
        return prepare_image(stream.read(), max_side=model_side())
