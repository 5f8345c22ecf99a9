"""``RealtimeUser``: one Locust user = one Realtime session at a time, run by the session client.

The user's single task opens a :class:`~loadtest.session.client.RealtimeSession`, runs the
scenario until the session ends (the scenario's turns, its lifetime, the end of the run, or the
server closing it), then reconnects after the :class:`Backoff` (immediately after a session that
opened; exponential and honouring ``retry-after`` after a refused upgrade). The session owns its
receiver greenlet; stopping the user calls :meth:`RealtimeSession.stop`, which closes the socket
and lets the receiver end, and the session is joined before the user goes away.

Every response fires one Locust request event (see :class:`~loadtest.locust.sinks.UserSink`).
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import User, constant, task

from loadtest.locust.backoff import Backoff
from loadtest.locust.harness import harness_state
from loadtest.locust.sinks import UserSink


class RealtimeUser(User):
    """A Realtime API user (``--rt-*`` options choose target, scenario and shape)."""

    wait_time = constant(0)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.state = harness_state(environment)
        self.user_number = self.state.next_user_id()
        self.session: Any = None
        self.backoff = Backoff(cap=self.state.options.reconnect_max_s if self.state.options else 30.0)
        self.sessions_run = 0

    def on_stop(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.stop()

    @task
    def run_session(self) -> None:
        state = self.state
        if state.past_end():  # the run is over: start nothing new, wait to be stopped
            gevent.sleep(0.5)
            return
        inputs = state.session_inputs or state.build_session_inputs()
        state.session_starting()
        from loadtest.session.client import RealtimeSession

        sink = UserSink(
            state.sink,  # type: ignore[arg-type]
            self.environment.events.request.fire,
            {"run_id": state.run_id, "worker_id": state.worker_id, "user_id": self.user_number},
            state.context,
        )
        deadline = state.run_end  # the session recycles itself at config.lifetime_s
        scenario, config = inputs.pick()  # each new session picks its scenario by weight
        config = inputs.for_user(config, self.user_number)  # --transport both: alternate by user id
        session = RealtimeSession(
            inputs.target,
            scenario,
            config,
            sink,
            run_id=state.run_id,
            worker_id=state.worker_id,
            user_id=self.user_number,
            context=state.context,
            runtime=state.runtime,
        )
        self.session = session
        try:
            session.run(deadline=deadline)
        finally:
            if self.session is session:
                self.session = None
            session.stop()
        self.sessions_run += 1
        wait = self.backoff.after(sink.last_session)
        if wait > 0:
            if state.run_end is not None:
                wait = min(wait, max(0.0, state.run_end - time.time()))
            gevent.sleep(wait)
