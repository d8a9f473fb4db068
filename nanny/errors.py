"""The domain error family; one middleware turns these into API.md's JSON errors."""

from __future__ import annotations

from typing import Any


class NannyError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(NannyError):
    status = 400
    code = "validation_error"


class Unauthorized(NannyError):
    status = 401
    code = "unauthorized"


class Forbidden(NannyError):
    status = 403
    code = "forbidden"


class NotFound(NannyError):
    status = 404
    code = "not_found"


class Conflict(NannyError):
    status = 409
    code = "conflict"


class SitterUnavailable(Conflict):
    """The booking does not fit the sitter's calendar (details.reason: time_off or
    outside_schedule)."""

    code = "unavailable"


class PayloadTooLarge(NannyError):
    status = 413
    code = "payload_too_large"


class RateLimited(NannyError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, details: dict[str, Any] | None = None):
        super().__init__(message, details=details)
        self.retry_after = retry_after


class Unavailable(NannyError):
    status = 503
    code = "unavailable"
