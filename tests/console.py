"""The installed console scripts (``flowsim``, ``flowsim-report``, ``flowsim-calibrate``), for
tests that run them as a user would. A helper module, not a test file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def script(name: str) -> str:
    """Path of a console script on PATH or next to this interpreter; fail if not installed."""
    exe = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(exe).exists():
        pytest.fail(f"the {name} console script is not installed (pip install -e .)")
    return exe
