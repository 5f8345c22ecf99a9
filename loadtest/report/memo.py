"""A report asked again on an unchanged run answers from its last output.

A report on a day-long run reads ~10 million rows (tens of seconds). Its output depends only on
the command line, the run directory's record files and rtload's own code, so it is kept in
``<run>/.rtload-cache/`` under a key of all three (file names, sizes and modification times; the
command and its options; the code's files): the same command on the same run prints the same
output at once, and any change (a row appended, a segment rolled, another option, another rtload)
is a new key. Live runs are not kept (they change anyway). ``--no-cache`` / ``RTLOAD_NO_CACHE``
skip it; commands that write files (``--bundle``, ``--write``) are never kept, but the ``html``
page is (:func:`memoized_page`: kept as a file and written to the target again).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

CACHE_DIR = ".rtload-cache"
MAX_ENTRIES = 32  # per run directory; the oldest go first
RUN_ARGS = ("run", "run_a", "run_b")
_CODE = Path(__file__).resolve().parents[1]  # the loadtest package


class _Tee(io.TextIOBase):
    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def _files_stamp(folder: Path) -> list[tuple[str, int, int]]:
    out = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or entry.name in ("report.html", "summary.md", "summary.json"):
            continue
        if entry.is_dir():
            if entry.name.endswith(".segments"):
                out.extend((f"{entry.name}/{n}", s, m) for n, s, m in _files_stamp(Path(entry.path)))
            continue
        if entry.name.endswith(".parquet"):  # the reader's own cache: written by the first report
            continue
        st = entry.stat()
        out.append((entry.name, st.st_size, st.st_mtime_ns))
    return sorted(out)


@functools.cache
def _code_stamp() -> list[tuple[str, int, int]]:
    out = []
    for path in sorted(_CODE.rglob("*.py")):
        st = path.stat()
        out.append((str(path.relative_to(_CODE)), st.st_size, st.st_mtime_ns))
    return out


def _finished(run: Path) -> bool:
    from loadtest.records.reader import RUN_END_KEYS, RUN_END_STATUSES

    try:
        info = orjson.loads((run / "run.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(info, dict) and (any(info.get(k) for k in RUN_END_KEYS) or info.get("status") in RUN_END_STATUSES)


def _key(command: str, options: dict[str, Any], runs: list[Path]) -> str:
    material = {
        "command": command,
        "options": {k: str(v) for k, v in sorted(options.items())},
        "runs": [[str(r.resolve()), _files_stamp(r)] for r in runs],
        "code": _code_stamp(),
    }
    return hashlib.sha256(orjson.dumps(material)).hexdigest()[:32]


def memoized(command: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a report command) answering from the run's cache when nothing changed."""

    @functools.wraps(func)
    def wrapper(**options: Any) -> Any:
        runs = [Path(options[k]) for k in RUN_ARGS if options.get(k) is not None]
        skip = options.get("no_cache") or os.environ.get("RTLOAD_NO_CACHE") or options.get("bundle")
        if skip or options.get("write") or not runs or not all(r.is_dir() and _finished(r) for r in runs):
            return func(**options)
        try:
            key = _key(command, options, runs)
        except OSError:
            return func(**options)
        entry = runs[0] / CACHE_DIR / f"{key}.json"
        if _replay(entry):
            return None
        text = entry.with_suffix(".out")
        tmp = text.with_name(f".{text.name}.tmp")
        try:  # the output goes to its file as it is printed: a big listing is not held twice in memory
            entry.parent.mkdir(exist_ok=True)
            out = open(tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
        except OSError:
            return func(**options)  # a run directory we cannot write: answered, not kept
        err = io.StringIO()
        try:
            with contextlib.redirect_stdout(_Tee(sys.stdout, out)), contextlib.redirect_stderr(_Tee(sys.stderr, err)):
                result = func(**options)  # a failure (typer.Exit) propagates and keeps nothing
            out.close()
            os.replace(tmp, text)
        except BaseException:
            out.close()
            tmp.unlink(missing_ok=True)
            raise
        _keep(entry, None, err.getvalue())
        return result

    return wrapper


def memoized_page(command: str, func: Callable[..., Any], output: str = "output", default: str = "report.html"):
    """``func`` (a command that writes one file, ``html``) writing the run's kept page when nothing
    changed: the file is kept beside the outputs (``<key>.page``) and copied to the target again."""

    @functools.wraps(func)
    def wrapper(**options: Any) -> Any:
        runs = [Path(options[k]) for k in RUN_ARGS if options.get(k) is not None]
        skip = options.get("no_cache") or os.environ.get("RTLOAD_NO_CACHE")
        if skip or not runs or not all(r.is_dir() and _finished(r) for r in runs):
            return func(**options)
        target = Path(options[output]) if options.get(output) is not None else runs[0] / default
        try:
            key = _key(command, options, runs)
        except OSError:
            return func(**options)
        entry = runs[0] / CACHE_DIR / f"{key}.json"
        page = entry.with_suffix(".page")
        with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError):
            kept = orjson.loads(entry.read_bytes())
            body = page.read_bytes()
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(body)
            os.replace(tmp, target)
            sys.stderr.write(kept["err"])
            sys.stdout.write(kept["out"])
            return None
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(_Tee(sys.stdout, out)), contextlib.redirect_stderr(_Tee(sys.stderr, err)):
            result = func(**options)
        with contextlib.suppress(OSError):
            entry.parent.mkdir(exist_ok=True)
            tmp_page = page.with_name(f".{page.name}.tmp")
            tmp_page.write_bytes(target.read_bytes())
            os.replace(tmp_page, page)
            _keep(entry, out.getvalue(), err.getvalue())
        return result

    return wrapper


CHUNK = 1 << 20  # characters of a kept output copied at a time


def _replay(entry: Path) -> bool:
    """Print a kept output (its stderr, then its stdout: from ``<key>.out`` a chunk at a time when
    it was kept beside the entry); False when there is none to print."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError):
        kept = orjson.loads(entry.read_bytes())
        if "out" in kept and kept["out"] is not None:
            sys.stderr.write(kept["err"])
            sys.stdout.write(kept["out"])
            return True
        with open(entry.with_suffix(".out"), encoding="utf-8", newline="") as text:
            sys.stderr.write(kept["err"])
            while chunk := text.read(CHUNK):
                sys.stdout.write(chunk)
        return True
    return False


def _keep(entry: Path, out: str | None, err: str) -> None:
    """Write the entry (temporary name, then rename); a run directory we cannot write is fine.
    ``out`` None: the output was kept beside it (``<key>.out``, written first)."""
    with contextlib.suppress(OSError):
        entry.parent.mkdir(exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.tmp")
        tmp.write_bytes(orjson.dumps({"out": out, "err": err}))
        os.replace(tmp, entry)
        kept = sorted(entry.parent.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in kept[:-MAX_ENTRIES]:
            old.unlink(missing_ok=True)
            old.with_suffix(".page").unlink(missing_ok=True)
            old.with_suffix(".out").unlink(missing_ok=True)
