"""Settings read from the environment; a bad value stops the start with one line naming it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_PRODUCTION_SECRET = 32


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    jwt_secret: str = field(default="", repr=False)
    jwt_ttl_hours: float = 72.0
    cors_origins: tuple[str, ...] = ()
    expire_interval_seconds: float = 3600.0
    log_level: str = "INFO"
    data_dir: Path = Path(".nanny")
    env: str = "development"
    bcrypt_rounds: int = 12
    db_pool_min: int = 2
    db_pool_max: int = 10
    # How many bookings one owner may have waiting for an answer at once (API.md: 10).
    max_pending_bookings: int = 10

    @property
    def production(self) -> bool:
        return self.env == "production"


def _positive_number(env: Mapping[str, str], name: str, default: float, *, integer=False):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(tuple(f"{s}://" for s in schemes)):
        expected = " or ".join(f"{s}://…" for s in schemes)
        raise ConfigError(f"{name} must be a URL starting with {expected}, got {raw!r}")
    return raw


def _jwt_secret(env: Mapping[str, str], production: bool, data_dir: Path) -> str:
    secret = env.get("JWT_SECRET", "")
    if production:
        if len(secret) < MIN_PRODUCTION_SECRET:
            raise ConfigError(
                f"JWT_SECRET must be set to at least {MIN_PRODUCTION_SECRET} characters "
                "when NANNY_ENV=production"
            )
        return secret
    if secret:
        return secret
    # Development: one random secret per data dir, so tokens survive restarts.
    path = data_dir / "jwt_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    nanny_env = env.get("NANNY_ENV", "development").strip() or "development"
    if nanny_env not in ("development", "production", "test"):
        raise ConfigError(f"NANNY_ENV must be development, production or test, got {nanny_env!r}")
    log_level = (env.get("LOG_LEVEL", "INFO").strip() or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    data_dir = Path(env.get("NANNY_DATA_DIR", "").strip() or ".nanny")
    raw_origins = env.get("CORS_ORIGINS", "").split(",")
    origins = tuple(o.strip().rstrip("/") for o in raw_origins if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(
                f"CORS_ORIGINS must be a comma-separated list of http(s) origins, got {origin!r}"
            )
    rounds = _positive_number(env, "BCRYPT_ROUNDS", 12, integer=True)
    if not 4 <= rounds <= 16:
        raise ConfigError(f"BCRYPT_ROUNDS must be between 4 and 16, got {rounds}")
    pool_max = _positive_number(env, "DB_POOL_MAX", 10, integer=True)
    production = nanny_env == "production"
    return Settings(
        database_url=_url(env, "DATABASE_URL", ("postgresql", "postgres")),
        redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
        jwt_secret=_jwt_secret(env, production, data_dir),
        jwt_ttl_hours=_positive_number(env, "JWT_TTL_HOURS", 72.0),
        cors_origins=origins,
        expire_interval_seconds=_positive_number(env, "EXPIRE_INTERVAL_SECONDS", 3600.0),
        log_level=log_level,
        data_dir=data_dir,
        env=nanny_env,
        bcrypt_rounds=rounds,
        db_pool_min=min(2, pool_max),
        db_pool_max=pool_max,
        max_pending_bookings=_positive_number(env, "MAX_PENDING_BOOKINGS", 10, integer=True),
    )
