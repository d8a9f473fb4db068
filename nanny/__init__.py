"""Nanny: pet-sitting platform backend."""

from pathlib import Path

__version__ = "0.1.0"

# migrations/, templates/ and static/ live beside the package (see DESIGN.md's layout).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
