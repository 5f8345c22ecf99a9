"""Shared helpers of the preflight tests: the real `rtload preflight` command line and its JSON findings
(the mock that knows the test's key is conftest.py's fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import fast_mock

SECRET = "pf-SECRET-7f3a9c51d2"
FAST = fast_mock(60.0, (5, 10))
PREVIEW_Q = "api-version=2025-04-01-preview&deployment="
KEY_VARS = ("PF_KEY", "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")


def preflight(
    *args: str, key: str | None = SECRET, key_env: str | None = "PF_KEY", env: dict[str, str] | None = None
) -> tuple[int, str, dict | None]:
    """``rtload preflight ARGS`` with the key in ``key_env`` (None: no --api-key-env, the default variables
    as ``env`` sets them); asserts no key and no traceback was printed."""
    environ = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    environ.update(env or {})
    cmd = [sys.executable, "-m", "loadtest", "preflight", "--timeout", "15"]
    if key_env is not None:
        if key is not None:
            environ[key_env] = key
        cmd += ["--api-key-env", key_env]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=environ, timeout=90)
    out = proc.stdout + proc.stderr
    for secret in (SECRET, key, *(env or {}).values()):
        assert not secret or secret not in out, "a key was printed"
    assert "Traceback" not in out, out
    doc = json.loads(proc.stdout) if "--format" in args else None
    return proc.returncode, out, doc


def by_check(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        out.setdefault(f["check"], []).append(f)
    return out


def severities(doc: dict, check: str) -> set[str]:
    return {f["severity"] for f in by_check(doc).get(check, [])}
