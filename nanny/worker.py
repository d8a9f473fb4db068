"""One server process of `nanny serve --workers N`: `python -m nanny.worker HOST PORT SUPERVISOR`,
started by the supervisor (nanny/cli.py), which writes the pickled settings to its stdin."""

from __future__ import annotations

import pickle
import sys


def main(argv: list[str]) -> int:
    host, port, supervisor = argv
    settings = pickle.load(sys.stdin.buffer)
    from nanny.cli import run_worker

    run_worker(settings, host, int(port), int(supervisor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
