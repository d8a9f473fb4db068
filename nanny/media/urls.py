"""Signed, expiring image URLs.

A URL names an image, a variant and an expiry time, signed with an HMAC: whoever holds it may load
that one file until then, with no token or cookie, so `<img>` tags and apps load it like any
image. Only responses to someone allowed to see the image carry one. The key is derived from
JWT_SECRET, never the secret itself, so a leaked media key signs no session token.

Expiry times are rounded up to the next whole `step`: the URL of an image stays the same for a
while, so browsers and apps reuse their cached copy instead of loading the same file again under
a new URL on every page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from typing import Literal

Variant = Literal["full", "thumb"]

URL_TTL_SECONDS = 4 * 3600
URL_STEP_SECONDS = 3600
_KEY_LABEL = b"nanny media urls v1"
_SIGNATURE_BYTES = 16


def derive_key(jwt_secret: str) -> bytes:
    return hmac.new(jwt_secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


class MediaUrls:
    def __init__(
        self,
        key: bytes,
        *,
        ttl: int = URL_TTL_SECONDS,
        step: int = URL_STEP_SECONDS,
        clock=time.time,
    ):
        self._key = key
        self.ttl = ttl
        self.step = step
        self._clock = clock

    @classmethod
    def from_secret(cls, jwt_secret: str) -> MediaUrls:
        return cls(derive_key(jwt_secret))

    def signature(self, image_id: int, variant: str, expires: int) -> str:
        message = f"{image_id}:{variant}:{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def url(self, image_id: int, variant: Variant, *, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        expires = math.ceil((now + self.ttl) / self.step) * self.step
        sig = self.signature(image_id, variant, expires)
        return f"/api/media/{image_id}?variant={variant}&expires={expires}&sig={sig}"

    def image_json(self, image_id: int, width: int, height: int) -> dict:
        """The URLs of both variants and the display size, as the API shows an image."""
        return {
            "url": self.url(image_id, "full"),
            "thumb_url": self.url(image_id, "thumb"),
            "width": width,
            "height": height,
        }

    def check(self, image_id: int, variant: str, expires: int, sig: str) -> str | None:
        """Why the URL may not be served ("forged", "expired"), or None when it may."""
        expected = self.signature(image_id, variant, expires)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            return "forged"
        if expires <= self._clock():
            return "expired"
        return None

    def seconds_left(self, expires: int) -> int:
        return max(0, int(expires - self._clock()))
