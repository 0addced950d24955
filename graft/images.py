"""Safe image reading shared by data preparation and the backbone check.

Real image folders hold surprises: RGBA art with transparent backgrounds,
palette and grayscale images, and decompression bombs (openclipart ships PNGs
of 168 and 623 million pixels). Pillow reads only the header on ``open``, so
the pixel count is checked before anything is decoded.
"""
from __future__ import annotations

import io
import re
import warnings
from typing import Tuple

import numpy as np
from PIL import Image

from graft.contract import MAX_IMAGE_PIXELS as MAX_PIXELS  # why 50 Mpx: see the contract


class ImageError(ValueError):
    """An image that cannot or must not be decoded; the message says why."""


def open_checked(path_or_bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Opens an image lazily and refuses it before decoding if it is too large."""
    try:
        src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
        with warnings.catch_warnings():
            # We apply our own, lower limit below, with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(src)
    except Image.DecompressionBombError as e:
        # Pillow's message quotes its own limit (2 x 89 Mpx), not ours.
        declared = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(declared.group(1)) / 1e6:.0f} Mpx" if declared else "too many pixels"
        raise ImageError(f"decompression bomb: {size} (limit {max_pixels / 1e6:.0f} Mpx); "
                         f"skipped without decoding") from e
    except Image.UnidentifiedImageError as e:
        # Pillow's own message names the stream object (<_io.BytesIO object at 0x...>).
        raise ImageError("not a readable image: no known image format recognised") from e
    except (OSError, ValueError) as e:
        raise ImageError(f"not a readable image: {e}") from e
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(f"decompression bomb: {w}x{h} = {w * h / 1e6:.0f} Mpx "
                         f"(limit {max_pixels / 1e6:.0f} Mpx); skipped without decoding")
    return img


def to_rgb(img: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """RGB; transparency (RGBA, LA, palette with transparency) composited onto white."""
    try:
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, background + (255,))
            canvas.alpha_composite(rgba)
            return canvas.convert("RGB")
        return img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt pixel data
        raise ImageError(f"corrupt image data: {e}") from e


def fit_within(img: Image.Image, max_side: int) -> Image.Image:
    """Downscales so the longer side is at most max_side (never upscales)."""
    w, h = img.size
    scale = max_side / max(w, h)
    if scale >= 1:
        return img
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


def load_rgb_array(path, size: Tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] resized to size=(H, W), for the backbone check."""
    return resized_array(to_rgb(open_checked(path)), size)


def resized_array(img: Image.Image, size: Tuple[int, int]) -> np.ndarray:
    return np.asarray(img.resize((size[1], size[0]), Image.BILINEAR), dtype=np.uint8)
