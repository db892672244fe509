"""What the image tasks share when serving: an upload read as a PIL image, and the file types the page takes."""

from __future__ import annotations

import io
from typing import Any

from ...errors import UsageError

IMAGE_TYPES = ("png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff")


def open_image(image: Any, name: str = "image"):
    """A PIL image from a PIL image, bytes, a path or a file object (Streamlit's uploads are file objects)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image
    source = io.BytesIO(image) if isinstance(image, bytes) else image
    if hasattr(source, "seek"):  # a file object read before (an upload the page shows, then predicts on)
        source.seek(0)
    try:
        opened = Image.open(source)
        opened.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError(f"{getattr(image, 'name', name)} is not an image this page can read: {exc}") from None
    return opened
