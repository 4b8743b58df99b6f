"""GUI tests drive the real window on an X display (Xvfb in CI). Without one they are skipped, unless
INTERHAND_REQUIRE_GUI is set (scripts/test.sh sets it), where a missing display is an error."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DISPLAY"):
        return
    if os.environ.get("INTERHAND_REQUIRE_GUI"):
        raise pytest.UsageError("GUI tests need an X display: run under xvfb-run (scripts/test.sh does)")
    skip = pytest.mark.skip(reason="no X display; run under xvfb-run")
    for item in items:
        if "tests/gui" in str(item.fspath):
            item.add_marker(skip)
