"""Colour spaces at the upload boundary: the model sees sRGB, the answer stays in the upload's own space.

The models were trained on sRGB photos, so an RGB upload tagged with another ICC
profile (Display P3 from a phone, Adobe RGB from a camera) is converted to sRGB
before the search; the fill the model makes is converted back into the upload's
profile, so every known pixel is returned byte for byte and the profile is
re-attached on output. Profiles LittleCMS cannot read are ignored, as a viewer
ignores them: the pixels are then taken as sRGB.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageCms

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_INTENT = ImageCms.Intent.PERCEPTUAL


def read_profile(data: bytes | None, colour_space: str) -> ImageCms.ImageCmsProfile | None:
    """The embedded profile if LittleCMS reads it and it describes `colour_space` ('RGB' or 'CMYK'), else None."""
    if not data:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None
    if profile.profile.xcolor_space.strip() != colour_space:
        return None
    return profile


def to_srgb(picture: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image:
    """An RGB or CMYK picture in `profile`'s space as sRGB RGB pixels."""
    transform = ImageCms.buildTransform(profile, _SRGB, picture.mode, "RGB", _INTENT)
    converted = ImageCms.applyTransform(picture, transform)
    assert converted is not None  # None only when transforming in place
    return converted


def from_srgb(pixels: np.ndarray, profile_data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 sRGB pixels in the RGB space of `profile_data` (a profile `read_profile` accepted)."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(profile_data))
    transform = ImageCms.buildTransform(_SRGB, profile, "RGB", "RGB", _INTENT)
    return np.asarray(ImageCms.applyTransform(Image.fromarray(pixels, "RGB"), transform))
