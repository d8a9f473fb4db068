"""Settings read from the environment; a bad value stops the start with one line naming it."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


class StartupError(Exception):
    """The server cannot start (a service it needs did not come up in time, a migration
    refused the data it found...); the message says why and what to do."""


# Where the workers of `serve --workers N` keep their Prometheus counts (nanny/metrics.py).
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_PRODUCTION_SECRET = 32
MAX_HORIZON_DAYS = 1_000_000

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RateLimit:
    """At most `count` events per `seconds`-long window."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


# Defaults a person never reaches and a script soon does. Per-IP limits are looser than per-account
# ones because mobile carriers put many customers behind one address (carrier-grade NAT).
DEFAULT_RATE_LIMITS = {
    "RATE_LOGIN_PER_IP": RateLimit(60, 60),
    "RATE_LOGIN_PER_EMAIL": RateLimit(20, 60),
    "RATE_REGISTER_PER_IP": RateLimit(60, 3600),
    "RATE_REGISTER_PER_EMAIL": RateLimit(5, 3600),
    "RATE_BOOKINGS_PER_OWNER": RateLimit(60, 3600),
    "RATE_WS_CONNECT_PER_USER": RateLimit(60, 60),
    # Chat messages a user may send, over REST and the WebSocket together.
    "RATE_CHAT_MESSAGES_PER_USER": RateLimit(120, 60),
}
DEFAULT_METRICS_ALLOW = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))


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
    # How many bookings one owner may have waiting for an answer at once (API.md: 10), and how
    # many of them for one sitter.
    max_pending_bookings: int = 10
    max_pending_per_sitter: int = 2
    # A request the sitter leaves unanswered this long expires; a start at most this far ahead.
    pending_ttl_hours: float = 72.0
    booking_horizon_days: int = 365
    rate_limit_enabled: bool = True
    rate_login_per_ip: RateLimit = DEFAULT_RATE_LIMITS["RATE_LOGIN_PER_IP"]
    rate_login_per_email: RateLimit = DEFAULT_RATE_LIMITS["RATE_LOGIN_PER_EMAIL"]
    rate_register_per_ip: RateLimit = DEFAULT_RATE_LIMITS["RATE_REGISTER_PER_IP"]
    rate_register_per_email: RateLimit = DEFAULT_RATE_LIMITS["RATE_REGISTER_PER_EMAIL"]
    rate_bookings_per_owner: RateLimit = DEFAULT_RATE_LIMITS["RATE_BOOKINGS_PER_OWNER"]
    rate_ws_connect_per_user: RateLimit = DEFAULT_RATE_LIMITS["RATE_WS_CONNECT_PER_USER"]
    rate_chat_messages_per_user: RateLimit = DEFAULT_RATE_LIMITS["RATE_CHAT_MESSAGES_PER_USER"]
    metrics_allow: tuple[IPNetwork, ...] = DEFAULT_METRICS_ALLOW
    metrics_token: str = field(default="", repr=False)
    # Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (none: ignored).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Session cookies always Secure (production's default); else only over HTTPS.
    cookie_secure: bool = False
    startup_timeout_seconds: float = 60.0
    shutdown_timeout_seconds: float = 10.0
    # How long a process may answer a repeated service search from memory (0 disables).
    search_cache_seconds: float = 1.0
    # How long a process may reuse an authenticated user's row (0 disables).
    auth_cache_seconds: float = 30.0
    # How long a process may reuse a booking or a booking list it read (0 disables); every
    # change outdates them on every process before it is answered, so this bounds only what a
    # process cut off from Redis may miss.
    booking_cache_seconds: float = 10.0
    # Prefix of every Redis key and channel, so deployments (and tests) sharing one Redis
    # server never see each other's rooms.
    redis_prefix: str = "nanny"
    # A process re-announces its WebSocket users' presence every third of this; a crashed
    # process's users go offline within about 4/3 of it.
    presence_ttl_seconds: float = 20.0
    # Where image files are kept (None: NANNY_DATA_DIR/media), how many images a process
    # decodes and encodes at once, and in what kind of worker.
    media_dir: Path | None = None
    media_workers: int = max(1, (os.cpu_count() or 2) // 2)
    media_executor: str = "thread"
    # Notifications (nanny/notify/): e-mail through SMTP_URL (None: each e-mail is logged), the
    # address links in e-mails point to, when unread messages earn a digest, and the outbox's
    # retries (the n-th waits notify_retry_seconds * 2**(n-1), at most an hour).
    notifications_enabled: bool = True
    # False: this process writes notifications and pushes their frames, but leaves the e-mails
    # and digests to the processes that have it on (dedicated senders).
    notify_sender: bool = True
    smtp_url: str | None = field(default=None, repr=False)
    smtp_from: str = "Nanny <no-reply@localhost>"
    public_url: str = "http://localhost:8080"
    notify_unread_minutes: float = 10.0
    notify_max_attempts: int = 8
    notify_retry_seconds: float = 30.0
    notify_poll_seconds: float = 5.0
    # How long a claimed e-mail is someone's: a sender killed mid-send loses it after this.
    notify_lease_seconds: float = 60.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def media_root(self) -> Path:
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"


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


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")
_UNIT_SECONDS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _non_negative_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if raw in ("0", "0.0"):
        return 0.0
    return _positive_number(env, name, default)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _TRUE + _FALSE:
        raise ConfigError(f"{name} must be true or false, got {env[name]!r}")
    return raw in _TRUE


def _rate_limit(env: Mapping[str, str], name: str) -> RateLimit:
    raw = env.get(name, "").strip()
    if not raw:
        return DEFAULT_RATE_LIMITS[name]
    match = _RATE.match(raw.lower())
    if match is None or match.group(3) not in _UNIT_SECONDS:
        raise ConfigError(
            f"{name} must look like '10/minute' or '100/15m' (count/period), got {raw!r}"
        )
    count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    seconds = multiple * _UNIT_SECONDS[unit]
    if count < 1 or not 1 <= seconds <= 86400:
        raise ConfigError(
            f"{name} needs a count of at least 1 and a period from 1 s to 1 day, got {raw!r}"
        )
    return RateLimit(count, seconds)


def _networks(
    env: Mapping[str, str], name: str, default: tuple[IPNetwork, ...]
) -> tuple[IPNetwork, ...]:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() == "none":
        return ()
    networks = []
    for part in raw.split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"{name} must be a comma-separated list of IP networks, got {part.strip()!r}"
            ) from None
    return tuple(networks)


MIN_METRICS_TOKEN = 16


def _metrics_token(env: Mapping[str, str]) -> str:
    token = env.get("METRICS_TOKEN", "").strip()
    if token and len(token) < MIN_METRICS_TOKEN:
        raise ConfigError(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters when set")
    return token


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
    secret = secrets.token_urlsafe(48)
    try:
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"NANNY_DATA_DIR {data_dir} cannot hold the development JWT secret "
            f"({exc.strerror}): set NANNY_DATA_DIR to a folder this user may write, or JWT_SECRET"
        ) from None
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
    horizon = _positive_number(env, "BOOKING_HORIZON_DAYS", 365, integer=True)
    if horizon > MAX_HORIZON_DAYS:  # a start must stay below year 9999
        raise ConfigError(f"BOOKING_HORIZON_DAYS must be at most {MAX_HORIZON_DAYS}, got {horizon}")
    production = nanny_env == "production"
    redis_prefix = env.get("REDIS_PREFIX", "").strip() or "nanny"
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", redis_prefix):
        raise ConfigError(
            f"REDIS_PREFIX must be 1-64 letters, digits or _.:- characters, got {redis_prefix!r}"
        )
    media_dir = env.get("MEDIA_DIR", "").strip()
    media_executor = env.get("MEDIA_EXECUTOR", "").strip().lower() or "thread"
    if media_executor not in ("thread", "process"):
        raise ConfigError(f"MEDIA_EXECUTOR must be thread or process, got {media_executor!r}")
    public_url = (env.get("PUBLIC_URL", "").strip() or Settings.public_url).rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"PUBLIC_URL must be an http(s) URL, got {public_url!r}")
    return Settings(
        notifications_enabled=_flag(env, "NOTIFICATIONS_ENABLED", True),
        notify_sender=_flag(env, "NOTIFY_SENDER", True),
        smtp_url=_url(env, "SMTP_URL", ("smtp", "smtps")),
        smtp_from=env.get("SMTP_FROM", "").strip() or Settings.smtp_from,
        public_url=public_url,
        notify_unread_minutes=_positive_number(env, "NOTIFY_UNREAD_MINUTES", 10.0),
        notify_max_attempts=_positive_number(env, "NOTIFY_MAX_ATTEMPTS", 8, integer=True),
        notify_retry_seconds=_positive_number(env, "NOTIFY_RETRY_SECONDS", 30.0),
        notify_poll_seconds=_positive_number(env, "NOTIFY_POLL_SECONDS", 5.0),
        notify_lease_seconds=_positive_number(env, "NOTIFY_LEASE_SECONDS", 60.0),
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
        max_pending_per_sitter=_positive_number(env, "MAX_PENDING_PER_SITTER", 2, integer=True),
        pending_ttl_hours=_positive_number(env, "PENDING_TTL_HOURS", 72.0),
        booking_horizon_days=horizon,
        rate_limit_enabled=_flag(env, "RATE_LIMIT_ENABLED", True),
        rate_login_per_ip=_rate_limit(env, "RATE_LOGIN_PER_IP"),
        rate_login_per_email=_rate_limit(env, "RATE_LOGIN_PER_EMAIL"),
        rate_register_per_ip=_rate_limit(env, "RATE_REGISTER_PER_IP"),
        rate_register_per_email=_rate_limit(env, "RATE_REGISTER_PER_EMAIL"),
        rate_bookings_per_owner=_rate_limit(env, "RATE_BOOKINGS_PER_OWNER"),
        rate_ws_connect_per_user=_rate_limit(env, "RATE_WS_CONNECT_PER_USER"),
        rate_chat_messages_per_user=_rate_limit(env, "RATE_CHAT_MESSAGES_PER_USER"),
        metrics_allow=_networks(env, "METRICS_ALLOW", DEFAULT_METRICS_ALLOW),
        metrics_token=_metrics_token(env),
        trusted_proxies=_networks(env, "TRUSTED_PROXIES", ()),
        cookie_secure=_flag(env, "COOKIE_SECURE", production),
        startup_timeout_seconds=_positive_number(env, "STARTUP_TIMEOUT_SECONDS", 60.0),
        shutdown_timeout_seconds=_positive_number(env, "SHUTDOWN_TIMEOUT_SECONDS", 10.0),
        search_cache_seconds=_non_negative_number(env, "SEARCH_CACHE_SECONDS", 1.0),
        auth_cache_seconds=_non_negative_number(env, "AUTH_CACHE_SECONDS", 30.0),
        booking_cache_seconds=_non_negative_number(env, "BOOKING_CACHE_SECONDS", 10.0),
        redis_prefix=redis_prefix,
        presence_ttl_seconds=_positive_number(env, "PRESENCE_TTL_SECONDS", 20.0),
        media_dir=Path(media_dir) if media_dir else None,
        media_workers=_positive_number(env, "MEDIA_WORKERS", Settings.media_workers, integer=True),
        media_executor=media_executor,
    )
