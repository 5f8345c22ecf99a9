"""From harness options to what a :class:`RealtimeSession` needs: target, scenario, config."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from loadtest.locust.options import HarnessOptions, OptionError
from loadtest.protocol.targets import Target


@dataclass(slots=True)
class SessionInputs:
    target: Target
    scenario: Any  # loadtest.session.scenario.Scenario (the first of a mix)
    config: Any  # loadtest.session.config.SessionConfig (the first scenario's)
    # every (scenario, config) a new session may run, and their weights (--scenario FILE)
    choices: list[tuple[Any, Any]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # preflight's WARN lines about the session file(s)
    workload: Any = None  # loadtest.workload.bind.Workload
    transport: str = "websocket"  # websocket | webrtc | both (--transport)

    def pick(self, rng: random.Random | None = None) -> tuple[Any, Any]:
        """The (scenario, config) of a new session, by weight (as Locust weights user classes)."""
        if len(self.choices) <= 1:
            return self.scenario, self.config
        return (rng or random).choices(self.choices, weights=self.weights, k=1)[0]

    def audio_messages(self) -> list[bytes]:
        """Every append event the scenarios' spoken turns will send (fixtures, trailing silence)."""
        from loadtest.audio.frames import frames_for, silence_appends

        out: list[bytes] = []
        for scenario, config in self.choices or [(self.scenario, self.config)]:
            for turn in scenario.turns:
                if turn.trigger == "text" or not turn.fixture:
                    continue
                try:
                    out += frames_for(turn.fixture, config.frame_ms, config.audio_format).messages
                except Exception:  # (a missing fixture is the session's to report)
                    continue
                if turn.trigger == "server_vad" and config.trailing_silence_ms > 0:
                    out += silence_appends(config.trailing_silence_ms, config.frame_ms, config.audio_format).messages
        return out

    def for_user(self, config: Any, user_id: int) -> Any:
        """``config`` on the transport of user ``user_id``: with ``both``, odd users call over WebRTC
        and even ones over a WebSocket, so the two halves share the run's load and its time."""
        if self.transport != "both":
            return config
        import dataclasses

        wanted = "webrtc" if user_id % 2 else "websocket"
        return config if config.transport == wanted else dataclasses.replace(config, transport=wanted)


def check_fixture(names: str) -> None:
    from loadtest.audio.fixtures import Manifest

    try:
        manifest = Manifest.load()
    except Exception as exc:
        raise OptionError(f"--fixture: cannot read the audio fixture manifest ({exc})") from None
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            manifest.get(name)
        except Exception:
            known = ", ".join(f.name for f in manifest.fixtures[:12])
            raise OptionError(f"--fixture {name!r} is not in the fixture manifest (known: {known})") from None


def build_config(options: HarnessOptions) -> Any:
    from loadtest.session.config import SessionConfig

    try:
        return SessionConfig(
            output_modalities=[options.modalities],
            audio_format=options.audio_format,
            pacing=options.pacing,  # type: ignore[arg-type]
            lifetime_s=options.session_lifetime_s,
            response_deadline_s=options.deadline_s,
            response_idle_s=min(10.0, options.deadline_s),
            stall_threshold_ms=options.stall_ms,
            inner_silence_threshold_ms=options.stall_ms,
            keep_audio=options.keep_audio,
            transport="webrtc" if options.transport == "webrtc" else "websocket",
        )
    except ValueError as exc:
        raise OptionError(f"session settings: {exc}") from None


def build_session_inputs(options: HarnessOptions, target_url: str | None = None) -> SessionInputs:
    """Validate and build; :class:`OptionError` (one line) for bad input."""
    import dataclasses

    from loadtest.workload.bind import bind
    from loadtest.workload.errors import WorkloadError

    if options.fixture:
        check_fixture(options.fixture)
    try:
        work = bind(
            options.scenario,
            dialect=options.dialect,
            deployment=options.deployment,
            session_file=options.session_file,
            fixture=options.fixture,
            given=options.given,
            check=not options.no_check,
        )
    except WorkloadError as exc:
        raise OptionError(str(exc)) from None
    base = build_config(options)
    choices = []
    for scenario in work.mix.scenarios:
        implied = work.settings.get(scenario.name, {})
        config = base
        if implied:
            try:
                config = dataclasses.replace(base, **implied)  # equal to any option given (bind checks)
            except ValueError as exc:
                raise OptionError(f"session settings: {exc}") from None
        choices.append((scenario, config))
    target = options.build_target(target_url)
    return SessionInputs(
        target=target,
        scenario=choices[0][0],
        config=choices[0][1],
        choices=choices,
        weights=[s.weight for s, _ in choices],
        warnings=work.warnings,
        workload=work,
        transport=options.transport,
    )
