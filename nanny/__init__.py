"""Nanny: pet-sitting platform backend."""

import os
from pathlib import Path

__version__ = "0.1.0"

# migrations/, templates/ and static/ live beside the package, in the checkout's root. An installed
# wheel puts the package in site-packages instead; NANNY_ROOT then names where they are (the image).
PROJECT_ROOT = Path(os.environ.get("NANNY_ROOT") or Path(__file__).resolve().parent.parent)
