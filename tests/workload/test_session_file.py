"""Session files: what the harness adds to the user's session, preflight's checks, conflicts, bad files."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from loadtest.protocol.dialects import GA, PREVIEW
from loadtest.workload.bind import bind
from loadtest.workload.errors import WorkloadError
from loadtest.workload.session_file import load_session_file, session_settings

from .helpers import GA_SESSION, PREVIEW_SESSION, write_json, write_text


def test_ga_session_is_sent_as_given_with_only_the_type_added() -> None:
    session = copy.deepcopy(GA_SESSION)
    del session["type"]
    event, vad = GA.user_session_update(session, "server_vad")
    assert event == {"type": "session.update", "session": {**session, "type": "realtime"}}
    assert vad and "type" not in session  # the caller's object is not changed


def test_a_manual_turn_turns_the_files_vad_off_and_a_server_vad_turn_keeps_it() -> None:
    event, vad = GA.user_session_update(GA_SESSION, "manual")
    assert not vad and event["session"]["audio"]["input"]["turn_detection"] is None
    rest = copy.deepcopy(event["session"])
    rest["audio"]["input"]["turn_detection"] = GA_SESSION["audio"]["input"]["turn_detection"]
    assert rest == GA_SESSION  # nothing else touched
    event, vad = PREVIEW.user_session_update(PREVIEW_SESSION, "server_vad")
    assert vad and event["session"] == PREVIEW_SESSION


def test_a_session_without_turn_detection_gets_what_the_turn_needs() -> None:
    bare = {"instructions": "Be brief."}
    event, vad = GA.user_session_update(bare, "server_vad")
    assert vad and event["session"] == {
        "instructions": "Be brief.",
        "type": "realtime",
        "audio": {"input": {"turn_detection": {"type": "server_vad"}}},
    }
    event, vad = PREVIEW.user_session_update(bare, "text")
    assert not vad and event["session"] == {"instructions": "Be brief.", "turn_detection": None}


def test_settings_come_from_the_file_in_both_dialects(tmp_path: Path) -> None:
    ga = load_session_file(write_json(tmp_path / "ga.json", {"type": "session.update", "session": GA_SESSION}))
    assert ga.session == GA_SESSION and len(ga.sha256) == 64
    assert session_settings(ga, "ga") == {"output_modalities": ["audio"], "audio_format": "pcm16"}
    g711 = load_session_file(
        write_json(tmp_path / "p.json", {**PREVIEW_SESSION, "modalities": ["text"], "input_audio_format": "g711_ulaw",
                                         "output_audio_format": "g711_ulaw"})
    )  # fmt: skip
    assert session_settings(g711, "preview") == {"output_modalities": ["text"], "audio_format": "g711_ulaw"}
    mixed = load_session_file(write_json(tmp_path / "m.json", {**PREVIEW_SESSION, "output_audio_format": "g711_alaw"}))
    with pytest.raises(WorkloadError, match="input audio pcm16 and output audio g711_alaw differ"):
        session_settings(mixed, "preview")


def test_a_command_line_option_that_says_otherwise_is_one_line(tmp_path: Path) -> None:
    path = write_json(tmp_path / "s.json", GA_SESSION)
    with pytest.raises(WorkloadError) as err:
        bind("vad_turn", dialect="ga", session_file=str(path), given={"modalities": "text"})
    assert str(err.value) == (
        "--modalities text conflicts with the session file s.json (output modalities ['audio']): "
        "drop the option or change the file"
    )
    with pytest.raises(WorkloadError, match=r"--audio-format g711_ulaw conflicts with the session file s\.json"):
        bind("vad_turn", dialect="ga", session_file=str(path), given={"audio_format": "g711_ulaw"})
    work = bind("vad_turn", dialect="ga", session_file=str(path), given={"modalities": "audio"})  # agrees: fine
    assert work.mix.scenarios[0].session == GA_SESSION


def test_a_preview_shaped_file_fails_preflights_check_for_ga(tmp_path: Path) -> None:
    path = write_json(tmp_path / "old.json", PREVIEW_SESSION)
    with pytest.raises(WorkloadError) as err:
        bind("vad_turn", dialect="ga", session_file=str(path))
    text = str(err.value)
    assert text.splitlines()[0].startswith(f"session file {path} fails preflight's static checks for the ga dialect")
    assert "FAIL  session.missing_type" in text and "FAIL  session.preview_field  session.modalities" in text
    assert "fix: use audio.input.turn_detection" in text
    # --no-check skips it
    assert bind("vad_turn", dialect="ga", session_file=str(path), check=False).mix.scenarios[0].session is not None


def test_preflight_warnings_are_returned_and_the_run_goes_on(tmp_path: Path) -> None:
    path = write_json(tmp_path / "legacy.json", {"type": "transcription_session.update", "session": PREVIEW_SESSION})
    work = bind("vad_turn", dialect="preview", session_file=str(path))
    assert any("WARN  session.legacy_event" in line for line in work.warnings)


def test_vad_off_in_the_file_and_a_server_vad_turn_is_refused(tmp_path: Path) -> None:
    off = copy.deepcopy(GA_SESSION)
    off["audio"]["input"]["turn_detection"] = None
    path = write_json(tmp_path / "off.json", off)
    with pytest.raises(WorkloadError, match=r"scenario 'vad_turn' has server_vad turns but the session file off\.json"):
        bind("vad_turn", dialect="ga", session_file=str(path))
    assert bind("single_turn", dialect="ga", session_file=str(path)).mix.scenarios[0].session == off


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"instructions": "x",\n  "voice": }', r"bad\.json:2:12: not valid JSON \(Expecting value\)"),
        ("[1, 2]", r"bad\.json: no session object"),
    ],
)
def test_a_bad_session_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=message) as err:
        load_session_file(write_text(tmp_path / "bad.json", text))
    assert "\n" not in str(err.value)
    with pytest.raises(WorkloadError, match=r"nope\.json: session file not found"):
        load_session_file(tmp_path / "nope.json")


def test_a_ga_audio_that_is_not_an_object_is_one_line(tmp_path: Path) -> None:
    path = write_json(tmp_path / "a.json", {**GA_SESSION, "audio": {"input": ["pcm16"]}})
    with pytest.raises(WorkloadError, match=r"a\.json: session\.audio\.input must be an object, not list"):
        bind("vad_turn", dialect="ga", session_file=str(path), check=False)
