"""``RealtimeShape``: Locust's load shape driven by ``--rt-shape`` (constant, step, soak, spike).

The plan itself is pure (:mod:`loadtest.locust.shapes`); this class feeds it Locust's run time and
publishes the run's start on the master's options, which Locust sends to every worker with each
spawn message, so every process stamps the same step index and target users on its records.
"""

from __future__ import annotations

import contextlib
import time

from locust import LoadTestShape

from loadtest.locust.harness import HarnessState, harness_state
from loadtest.locust.options import OptionError


class RealtimeShape(LoadTestShape):
    use_common_options = True  # -u/--users, -r/--spawn-rate and -t/--run-time feed the plan

    def _state(self) -> HarnessState:
        return harness_state(self.runner.environment if self.runner is not None else None)

    def reset_time(self) -> None:
        super().reset_time()
        self._state().run_start = None

    def tick(self) -> tuple[int, float] | None:
        state = self._state()
        if state.options is None:
            return None
        elapsed = self.get_run_time()
        if state.run_start is None:
            parsed = self.runner.environment.parsed_options if self.runner else None
            if parsed is not None:
                with contextlib.suppress(OptionError):  # the web UI form may have changed -u/-r/-t
                    state.load_options(parsed)
            state.set_run_start(time.time() - elapsed)
            if parsed is not None:
                parsed.rt_run_start = state.run_start
        at = state.options.plan.at(elapsed)
        if at is None:
            return None
        _step, users, spawn_rate = at
        return users, spawn_rate
