"""Headless Chromium for the tests that look at what a person sees (Debian `chromium`, `make browser`).

Started as this machine's closed network needs: no background networking, no component updates,
a fresh profile each time.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is needed: run `make browser` (apt-get install -y chromium)"
    return path


def _run(url: str, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="rtload-chromium-") as profile:
        args = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            *extra,
            url,
        ]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(url: str, png: Path, width: int, height: int, budget_ms: int | None = None) -> Path:
    """A PNG of ``url`` as Chromium renders it (``budget_ms`` of virtual time for script-built pages)."""
    budget = [f"--virtual-time-budget={budget_ms}"] if budget_ms else []
    _run(url, f"--screenshot={png}", f"--window-size={width},{height}", *budget)
    assert png.exists(), "Chromium wrote no screenshot"
    return png


def rendered_dom(url: str, budget_ms: int = 6000) -> str:
    """The DOM after the page's scripts ran (what a person sees, as HTML)."""
    proc = _run(url, "--dump-dom", f"--virtual-time-budget={budget_ms}")
    assert proc.stdout.strip(), f"Chromium rendered nothing: {proc.stderr[-300:]}"
    return proc.stdout
