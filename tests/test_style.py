"""The house style is part of the suite: `ruff check` and `ruff format --check` stay clean."""

from __future__ import annotations

import subprocess
import sys

from nanny import PROJECT_ROOT


def test_ruff_check_and_format_are_clean():
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
