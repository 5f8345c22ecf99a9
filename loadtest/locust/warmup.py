"""First-use costs paid before any user starts, so they do not land on the audio clock mid-run.

A harness process is one event loop: anything that takes tens of milliseconds of CPU at once
delays every session's audio frames and reads by as much, and the health rows then say the load
generator was the bottleneck. Two such costs came once per process, at moments the run cannot
choose:

- Locust's ``Runner.stop()`` calls ``inspect.stack()`` for a debug line when the run ends (while
  in-flight responses still stream). The first such call maps every loaded module's file to its
  module, one ``os.path.realpath`` each: about 30 ms with a harness's ~1,200 modules, which made
  2-3% of the last second's frames late and the summary's bottleneck verdict "yes" at every
  run's end, whatever the load. Once mapped, the call takes well under a millisecond (modules
  imported later are not looked up again: the stop's frames are Locust's and gevent's).
- The session client's modules are imported by the first session (a lazy import, so
  ``rtload report`` and the mock never load them), while other users are already spawning.

And one came with every spawn message a worker gets (one a second while users ramp up, at every
step of a step run): Locust's worker rebuilds its whole default argument parser
(``locust.argument_parser.default_args_dict``, ~3 ms) once per option the master sent, ~100 of
them, so each message held the worker's loop for ~0.3 s while its sessions streamed (clock lag
p99 80-110 ms and 8-9% of frames late during a ramp of 60 users on 2 workers). The defaults do
not change within a process, so :func:`cache_default_args` makes the parser once and hands out
copies.

:func:`warm_up` does all three; the harness calls it from Locust's ``init`` event, in every
process (local, master and workers).
"""

from __future__ import annotations

import inspect
from typing import Any


def warm_up(sessions: bool = True) -> None:
    """Map the loaded modules' files for ``inspect`` now and cache Locust's default arguments;
    with ``sessions``, import the session client too (processes that run users)."""
    cache_default_args()
    if sessions:
        import loadtest.session.client  # noqa: F401  (its import chain is the first session's)
    inspect.stack()  # (what Locust's stop() calls: fills inspect's module-by-file cache)


def cache_default_args() -> None:
    """``locust.argument_parser.default_args_dict`` made once in this process, then copied (each
    caller gets its own dict, as before). Idempotent."""
    from locust import argument_parser

    made = argument_parser.default_args_dict
    if getattr(made, "rtload_cached", False):
        return
    defaults = made()

    def default_args_dict() -> dict[str, Any]:
        return dict(defaults)

    default_args_dict.rtload_cached = True  # type: ignore[attr-defined]
    argument_parser.default_args_dict = default_args_dict
