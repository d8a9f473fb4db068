"""The repository explains itself (nothing in it points at files or notes that live outside it,
no stray placeholders or caches), and its suite cannot pass in CI without the browser tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from nanny import PROJECT_ROOT

# Written so that this file does not match its own patterns (nor a plain grep for them).
OUTSIDE_REFERENCES = re.compile(
    r"\.\./shared|\bshared[/](?:API|DESIGN|STYLE)|\b(?:DESIGN|STYLE|HELPERS)[.]md"
    r"|/work[/]|\bissues? #?\d+\b|\b(?:the|this|that|our) (?:\w+ )?issue'?s?\b",
    re.IGNORECASE,
)
TEXT_SUFFIXES = {".py", ".md", ".sql", ".html", ".js", ".css", ".cfg", ".toml", ".yml", ".sh"}
TEXT_NAMES = {"Dockerfile", "run", ".gitignore", ".dockerignore"}


def repo_files() -> list[str]:
    """Every file the repository holds or would take in a commit (tracked or not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    return [name for name in listed if (PROJECT_ROOT / name).is_file()]


def test_nothing_refers_to_files_outside_the_repo():
    found = []
    checked = 0
    for name in repo_files():
        path = PROJECT_ROOT / name
        if path.suffix not in TEXT_SUFFIXES and path.name not in TEXT_NAMES:
            continue
        checked += 1
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE_REFERENCES.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert checked > 50
    assert found == [], "references to files outside the repository:\n" + "\n".join(found)


def test_the_reference_pattern_catches_what_it_is_for():
    # Assembled at run time, so that these lines do not match themselves.
    issue, shared, design = "issue", "shared", "DESIGN"
    caught = [
        f"The contract is `../{shared}/API.md`.",
        f"see {design}.md's layout",
        f"The targets of the marketplace {issue} were set",
        f"Every auth rule of the foundation {issue}",
        f"as {issue} 12 asks",
    ]
    kept = ["issue_token(settings, user_id)", "docs/API.md", "a shared cache", "an issue tracker"]
    assert all(OUTSIDE_REFERENCES.search(line) for line in caught)
    assert not any(OUTSIDE_REFERENCES.search(line) for line in kept)


def test_no_placeholder_files_or_tool_caches_in_the_repo():
    paths = [Path(name) for name in repo_files()]
    # A folder is filled when any other file lies in it or below it.
    filled = {folder for path in paths if path.name != ".gitkeep" for folder in path.parents}
    assert [str(p) for p in paths if p.name == ".gitkeep" and p.parent in filled] == []
    # schemathesis writes its cache where it runs; the tests run it in a temporary folder.
    assert not any(path.parts[0] == ".schemathesis" for path in paths)
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".schemathesis/default/cache"], cwd=PROJECT_ROOT, timeout=30
    )
    assert ignored.returncode == 0, ".schemathesis/ is not in .gitignore"


def _browser_test_run(**env: str) -> subprocess.CompletedProcess:
    test = "tests/test_browser.py::test_api_docs_page_tries_out_the_health_check"
    return subprocess.run(
        [sys.executable, "-m", "pytest", test, "-p", "no:cacheprovider", "--no-cov"],
        cwd=PROJECT_ROOT,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_browser_tests_fail_in_ci_when_chromium_is_missing(tmp_path):
    missing = str(tmp_path / "no-chromium")
    in_ci = _browser_test_run(CI="true", TEST_CHROMIUM=missing)
    assert in_ci.returncode == 1, in_ci.stdout + in_ci.stderr
    assert "CI runs the browser tests" in in_ci.stdout and "1 error" in in_ci.stdout
    elsewhere = _browser_test_run(CI="", TEST_CHROMIUM=missing)
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    assert "1 skipped" in elsewhere.stdout
