"""Configuration: defaults, and one clear line naming the variable for every bad value."""

from __future__ import annotations

import pytest

from nanny.config import ConfigError, load_settings


def test_defaults(tmp_path):
    s = load_settings({"NANNY_DATA_DIR": str(tmp_path)})
    assert s.database_url is None and s.redis_url is None
    assert s.jwt_ttl_hours == 72 and s.expire_interval_seconds == 3600
    assert s.log_level == "INFO" and not s.production
    assert (s.pending_ttl_hours, s.booking_horizon_days, s.max_pending_per_sitter) == (72, 365, 2)
    assert s.cookie_secure is False
    assert len(s.jwt_secret) >= 32
    # The development secret is kept per data dir, so tokens survive a restart.
    assert load_settings({"NANNY_DATA_DIR": str(tmp_path)}).jwt_secret == s.jwt_secret
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0


def test_values_are_read(tmp_path):
    s = load_settings(
        {
            "NANNY_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://u@h/db",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "JWT_SECRET": "s",
            "JWT_TTL_HOURS": "1.5",
            "CORS_ORIGINS": "https://a.kz, http://localhost:3000/",
            "EXPIRE_INTERVAL_SECONDS": "5",
            "LOG_LEVEL": "debug",
            "PENDING_TTL_HOURS": "0.5",
            "BOOKING_HORIZON_DAYS": "30",
            "MAX_PENDING_PER_SITTER": "5",
            "COOKIE_SECURE": "true",
        }
    )
    assert (s.pending_ttl_hours, s.booking_horizon_days, s.max_pending_per_sitter) == (0.5, 30, 5)
    assert s.cookie_secure is True
    assert s.database_url == "postgresql://u@h/db"
    assert s.jwt_secret == "s" and s.jwt_ttl_hours == 1.5
    assert s.cors_origins == ("https://a.kz", "http://localhost:3000")
    assert s.expire_interval_seconds == 5 and s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"JWT_TTL_HOURS": "abc"}, "JWT_TTL_HOURS"),
        ({"JWT_TTL_HOURS": "-1"}, "JWT_TTL_HOURS"),
        ({"EXPIRE_INTERVAL_SECONDS": "0"}, "EXPIRE_INTERVAL_SECONDS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"CORS_ORIGINS": "ftp://x"}, "CORS_ORIGINS"),
        ({"NANNY_ENV": "staging"}, "NANNY_ENV"),
        ({"NANNY_ENV": "production"}, "JWT_SECRET"),
        ({"NANNY_ENV": "production", "JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"BCRYPT_ROUNDS": "3"}, "BCRYPT_ROUNDS"),
        ({"DB_POOL_MAX": "many"}, "DB_POOL_MAX"),
        ({"PENDING_TTL_HOURS": "0"}, "PENDING_TTL_HOURS"),
        ({"BOOKING_HORIZON_DAYS": "1.5"}, "BOOKING_HORIZON_DAYS"),
        ({"BOOKING_HORIZON_DAYS": "1000001"}, "BOOKING_HORIZON_DAYS"),
        ({"MAX_PENDING_PER_SITTER": "-2"}, "MAX_PENDING_PER_SITTER"),
        ({"COOKIE_SECURE": "sometimes"}, "COOKIE_SECURE"),
        ({"MEDIA_WORKERS": "0"}, "MEDIA_WORKERS"),
        ({"MEDIA_EXECUTOR": "gpu"}, "MEDIA_EXECUTOR"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, env, name):
    with pytest.raises(ConfigError) as err:
        load_settings({"NANNY_DATA_DIR": str(tmp_path)} | env)
    message = str(err.value)
    assert message.startswith(name) and "\n" not in message


def test_media_settings(tmp_path):
    s = load_settings({"NANNY_DATA_DIR": str(tmp_path)})
    assert s.media_root == tmp_path / "media" and s.media_executor == "thread"
    assert s.media_workers >= 1
    moved = load_settings(
        {
            "NANNY_DATA_DIR": str(tmp_path),
            "MEDIA_DIR": "/srv/media",
            "MEDIA_WORKERS": "3",
            "MEDIA_EXECUTOR": "Process",
        }
    )
    assert str(moved.media_root) == "/srv/media"
    assert (moved.media_workers, moved.media_executor) == (3, "process")


def test_production_with_long_secret(tmp_path):
    s = load_settings({"NANNY_ENV": "production", "JWT_SECRET": "k" * 40})
    assert s.production and s.jwt_secret == "k" * 40
