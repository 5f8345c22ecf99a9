"""Scenarios: what a session says, turn by turn.

A turn is triggered one of three ways:

- ``server_vad``: stream the fixture's utterance and trailing silence; the server's VAD ends the
  turn and creates the response.
- ``manual``: append the utterance, ``input_audio_buffer.commit``, ``response.create``.
- ``text``: ``conversation.item.create`` with a user text message, then ``response.create``.

``barge_in`` starts this turn while the previous answer is still playing (the previous response
is then cancelled by the server's VAD, or by ``response.cancel`` for manual turns, and its item
truncated at the played ms). ``out_of_band`` asks for a response outside the conversation
(``conversation: "none"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

Trigger = Literal["server_vad", "manual", "text"]
TRIGGERS: tuple[str, ...] = ("server_vad", "manual", "text")
SESSION_TYPES: tuple[str, ...] = ("realtime", "transcription")

DEFAULT_FIXTURE = "short_hello"  # a short spoken question (see audio_fixtures/manifest)
DEFAULT_TEXT = "Say hello and tell me one short fact about the ocean."


@dataclass(frozen=True, slots=True)
class ToolReply:
    """What a function call is answered with, and after how long (loadtest/session/function_calls.py)."""

    output: str  # the function_call_output's output (JSON text as a rule)
    latency_ms: float = 0.0  # simulated time the function takes


@dataclass(slots=True)
class Turn:
    trigger: Trigger = "server_vad"
    fixture: str | None = None  # a fixture name from the manifest (audio triggers)
    text: str | None = None  # the user message (text trigger)
    barge_in: bool = False
    out_of_band: bool = False
    instructions: str | None = None  # per-response instructions (response.create)
    modalities: list[str] | None = None  # per-response output modalities (None = the session's)
    max_output_tokens: int | str | None = None  # per-response cap (response.create)
    barge_in_after_ms: float | None = None  # barge-in: this long into the answer (None = the config's)
    think_time_s: tuple[float, float] | None = None  # pause before this turn (None = the config's)
    transcript: str | None = None  # what an audio turn says (the manifest's for a fixture)

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {self.trigger!r}: use one of {', '.join(TRIGGERS)}")
        if self.trigger == "text" and not self.text:
            self.text = DEFAULT_TEXT
        if self.trigger != "text" and not self.fixture:
            self.fixture = DEFAULT_FIXTURE
        if self.out_of_band and self.trigger == "server_vad":
            raise ValueError("an out-of-band turn needs trigger 'text' or 'manual' (server VAD answers in-band)")

    @property
    def label(self) -> str:
        return self.fixture or "text"


@dataclass(slots=True)
class Scenario:
    name: str
    turns: list[Turn] = field(default_factory=list)
    repeat: bool = False  # loop the turns until run()'s deadline or stop()
    description: str = ""
    session: dict[str, Any] | None = None  # the user's session object for session.update (None = built)
    tools: dict[str, ToolReply] = field(default_factory=dict)  # function name -> canned reply
    tool_chain_limit: int | None = None  # follow-ups per turn at most (None = SessionConfig.max_tool_chain)
    weight: float = 1.0  # share of new sessions in a mix
    transcription_model: str | None = None  # input transcription of the built session (None = the config's)
    session_type: str = "realtime"  # realtime | transcription (transcription-only: no responses)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError(f"scenario {self.name!r} has no turns")
        if self.session_type not in SESSION_TYPES:
            raise ValueError(f"session_type {self.session_type!r}: use one of {', '.join(SESSION_TYPES)}")

    @property
    def transcription_only(self) -> bool:
        """A transcription session: each turn's audio is transcribed, nothing answers it."""
        return self.session_type == "transcription"

    @property
    def turn_detection(self) -> str | None:
        """The session's initial turn detection: server VAD when the first audio turn needs it."""
        return "server_vad" if self.turns[0].trigger == "server_vad" else None

    @property
    def fixtures(self) -> list[str]:
        return [t.fixture for t in self.turns if t.fixture and t.trigger != "text"]

    def with_fixtures(self, names: list[str]) -> Scenario:
        """This scenario with its audio turns' fixtures replaced, cycling through ``names``."""
        if not names:
            return self
        turns: list[Turn] = []
        i = 0
        for t in self.turns:
            fixture = t.fixture
            if t.trigger != "text":
                fixture = names[i % len(names)]
                i += 1
            turns.append(replace(t, fixture=fixture, transcript=None if fixture != t.fixture else t.transcript))
        return replace(self, turns=turns)


def conversation(fixtures: list[str], name: str = "conversation") -> Scenario:
    """A multi-turn conversation over server VAD through ``fixtures`` in order."""
    return Scenario(name, [Turn("server_vad", f) for f in fixtures], description="multi-turn over server VAD")


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("quick_text", [Turn("text")], description="one text turn; the cheapest end-to-end check"),
        Scenario("single_turn", [Turn("manual")], description="one spoken turn: append, commit, response.create"),
        Scenario("vad_turn", [Turn("server_vad")], description="one spoken turn ended by the server's VAD"),
        Scenario(
            "conversation",
            [Turn("server_vad", f"support_call_{i}") for i in range(1, 6)],
            description="a five-turn support call over server VAD (manifest conversation support_call)",
        ),
        Scenario(
            "barge_in",
            [Turn("server_vad", "barge_in_question"), Turn("server_vad", "barge_in_interrupt", barge_in=True)],
            description="the second utterance interrupts the first answer; the answer is truncated at the played ms",
        ),
        Scenario(
            "out_of_band",
            [Turn("server_vad"), Turn("text", text="Summarise the conversation in one line.", out_of_band=True)],
            description="a spoken turn, then an out-of-band response (conversation: none)",
        ),
        Scenario("text_loop", [Turn("text")], repeat=True, description="text turns until stopped (soak)"),
        Scenario(
            "transcribe",
            [
                Turn("server_vad", "short_hello"),
                Turn("server_vad", "medium_store_hours"),
                Turn("manual", "support_call_2"),
                Turn("server_vad", "short_front_center"),
            ],
            description="four spoken turns with input transcription (gpt-4o-mini-transcribe): transcript "
            "latency, failures, WER",
            transcription_model="gpt-4o-mini-transcribe",
        ),
        Scenario(
            "transcribe_only",
            [
                Turn("server_vad", "short_yes"),
                Turn("server_vad", "medium_order_status"),
                Turn("manual", "support_call_3"),
                Turn("server_vad", "short_rear_left"),
            ],
            description="a transcription-only session: four utterances transcribed (gpt-4o-mini-transcribe), "
            "no responses",
            transcription_model="gpt-4o-mini-transcribe",
            session_type="transcription",
        ),
        # its tools (names, parameters, tool_choice) are in the shipped file's session file
        Scenario(
            "tool_calls",
            [
                Turn("manual", "medium_order_status"),
                Turn("text", text="And what time does the downtown store close on Saturday?"),
            ],
            description=(
                "a support agent calling tools: each call answered from the tool table, then a spoken follow-up"
            ),
            tools={
                "lookup_order": ToolReply('{"status": "shipped", "eta": "tomorrow before noon"}', 400.0),
                "store_hours": ToolReply('{"saturday": "10:00-18:00", "appointment_needed": false}', 250.0),
            },
            tool_chain_limit=4,
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    """The built-in scenario called ``name``; one clear error line otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}: use one of {', '.join(SCENARIOS)}") from None


def check_fixtures(scenario: Scenario, root: object = None) -> None:
    """Raise ValueError (one line) when an audio turn names a fixture the manifest does not have.

    Call once before starting sessions (a missing fixture inside a running session is a bug report,
    not an outcome). ``root`` is a fixtures directory (default: the repository's or $RTLOAD_FIXTURES).
    """
    from pathlib import Path

    from loadtest.audio.fixtures import Manifest

    manifest = Manifest.load(Path(str(root)) if root else None)
    names = set(manifest.names())
    for turn in scenario.turns:
        if turn.trigger != "text" and turn.fixture not in names and not Path(str(turn.fixture)).is_file():
            known = ", ".join(sorted(names)[:8])
            raise ValueError(f"scenario {scenario.name!r}: unknown fixture {turn.fixture!r} (known: {known}, ...)")
