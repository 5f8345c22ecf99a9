"""From harness options to what a :class:`RealtimeSession` needs: target, scenario, config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadtest.locust.options import HarnessOptions, OptionError
from loadtest.protocol.targets import Target

DEFAULT_SCENARIO = "single_turn"


@dataclass(slots=True)
class SessionInputs:
    target: Target
    scenario: Any  # loadtest.session.scenario.Scenario
    config: Any  # loadtest.session.config.SessionConfig


def resolve_scenario(options: HarnessOptions) -> Any:
    from loadtest.session.scenario import get_scenario

    try:
        scenario = get_scenario(options.scenario or DEFAULT_SCENARIO)
    except ValueError as exc:
        raise OptionError(f"--scenario: {exc}") from None
    if options.fixture:
        check_fixture(options.fixture)
        scenario = scenario.with_fixtures([f.strip() for f in options.fixture.split(",") if f.strip()])
    return scenario


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
        )
    except ValueError as exc:
        raise OptionError(f"session settings: {exc}") from None


def build_session_inputs(options: HarnessOptions, target_url: str | None = None) -> SessionInputs:
    """Validate and build; :class:`OptionError` (one line) for bad input."""
    scenario = resolve_scenario(options)
    config = build_config(options)
    target = options.build_target(target_url)
    return SessionInputs(target=target, scenario=scenario, config=config)
