"""Helpers of the report tests: a page opened in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def chromium_dom(page) -> str:
    """The DOM of the HTML file `page` after headless Chromium has run it (a skip where there is no
    Chromium; a failure under CI=true, where it must be there)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is missing: scripts/install.sh installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", "--no-first-run",
                             "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
