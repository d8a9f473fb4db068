"""What an uploaded image may be, and the two files made from it.

Pure and synchronous: `process_image` runs in a worker (nanny/media/processing.py), never on the
event loop. Every image is decoded and encoded afresh, so nothing of the upload's own bytes
reaches anyone: no metadata (EXIF with its GPS position, XMP, comments, thumbnails), no second
image hidden in a container, no script in a polyglot file. The format is recognised from the
content only; the name and declared type of the upload are never looked at.
"""

from __future__ import annotations

import io
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
MAX_PIXELS = 40_000_000
FULL_SIDE = 1600
THUMB_SIDE = 320
JPEG_QUALITY = 85
WEBP_QUALITY = 85

_loaded = threading.Lock()
_SRGB = None


def _load_pillow() -> None:
    """Pillow and its HEIF opener, loaded with the first image: a server process that never
    sees one does without their 6 MiB."""
    global Image, ImageCms, ImageOps, UnidentifiedImageError, _SRGB
    with _loaded:
        if _SRGB is not None:
            return
        import pillow_heif
        from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

        # HEIC/HEIF is what iPhones (and many Android phones) send; pillow-heif teaches Pillow
        # to read it.
        pillow_heif.register_heif_opener()
        # Our own check below refuses anything above MAX_PIXELS from the header, before any
        # pixel is decoded; Pillow's looser one (a warning, then an error at twice its own
        # limit) would only warn about images we refuse anyway.
        Image.MAX_IMAGE_PIXELS = None
        _SRGB = ImageCms.createProfile("sRGB")


class ImageRefused(Exception):
    """The upload is not an image we take; the message says why, for the client."""


@dataclass(frozen=True, slots=True)
class Encoded:
    data: bytes
    width: int
    height: int
    content_type: str


@dataclass(frozen=True, slots=True)
class Processed:
    full: Encoded  # longest side at most FULL_SIDE
    thumb: Encoded  # longest side at most THUMB_SIDE
    source_format: str  # what the upload turned out to be: JPEG, PNG, WEBP or HEIF


def fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` scaled down (never up) so that its longest side is at most `side`."""
    width, height = size
    longest = max(width, height)
    if longest <= side:
        return width, height
    scale = side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def process_image(data: bytes) -> Processed:
    """Decode an upload and make its display and thumbnail files; ImageRefused when it is not
    a JPEG, PNG, WebP or HEIC/HEIF image of at most MAX_PIXELS pixels."""
    _load_pillow()
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            source_format = image.format or "?"
            # Only the header has been read: a decompression bomb is refused before it expands.
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageRefused(
                    f"The image has {width} x {height} pixels; at most "
                    f"{MAX_PIXELS // 1_000_000} megapixels are accepted"
                )
            if source_format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale when that still covers the display size: a
                # phone photo then costs a fraction of the time and memory.
                image.draft("RGB", fit(image.size, FULL_SIDE))
            image.load()
            upright = _upright(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ImageRefused("The file is not a readable JPEG, PNG, WebP or HEIC image") from None
    # The display size from the draft (a phone photo decodes at about 1.3 times it): bilinear,
    # which Pillow antialiases when it scales down, at half of Lanczos's time; the thumbnail a
    # box reduction to at least twice its size first (what Image.thumbnail does), then Lanczos.
    full = upright.resize(fit(upright.size, FULL_SIDE), Image.Resampling.BILINEAR)
    thumb = full.resize(fit(full.size, THUMB_SIDE), Image.Resampling.LANCZOS, reducing_gap=2)
    return Processed(_encode(full), _encode(thumb), source_format)


def _upright(image: Image.Image) -> Image.Image:
    """The first frame turned by its EXIF orientation, in sRGB, as RGB (or RGBA when it has
    transparency), without any of the source's metadata."""
    turned = ImageOps.exif_transpose(image) or image
    icc = image.info.get("icc_profile")
    if icc and turned.mode in ("RGB", "RGBA"):
        # Phones shoot in wide gamuts (Display P3); without its profile a photo must be in sRGB
        # or its colours go dull.
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            turned = ImageCms.profileToProfile(turned, source, _SRGB, outputMode=turned.mode)
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: keep the pixels as they are
    transparent = turned.mode in ("RGBA", "LA", "PA") or (
        turned.mode == "P" and "transparency" in turned.info
    )
    if transparent:
        rgba = turned.convert("RGBA")
        if rgba.getchannel("A").getextrema() != (255, 255):
            return _bare(rgba)
    if turned.mode.startswith("I"):  # 16-bit greyscale
        turned = turned.point(lambda v: v / 256).convert("L")
    return _bare(turned.convert("RGB"))


def _bare(image: Image.Image) -> Image.Image:
    image.info = {}
    return image


def _encode(image: Image.Image) -> Encoded:
    image.info = {}  # no EXIF, ICC profile, XMP or comment is carried into the file
    # Into a real file, not a BytesIO: Pillow then encodes with the GIL released (into memory
    # it holds the GIL throughout, 8 ms at a time for a display-size JPEG, while the event loop
    # of this process waits for it).
    with tempfile.TemporaryFile() as out:
        if image.mode == "RGBA":
            image.save(out, format="WEBP", quality=WEBP_QUALITY)
            kind = "image/webp"
        else:
            image.save(out, format="JPEG", quality=JPEG_QUALITY)
            kind = "image/jpeg"
        out.seek(0)
        return Encoded(out.read(), image.width, image.height, kind)
