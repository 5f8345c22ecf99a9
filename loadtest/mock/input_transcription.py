"""Input transcription events for one committed item (runs beside the response, as the service does).

After ``transcription.first_delta_ms`` (plus ``faults.transcription_slow.delay_ms`` when that fault
is drawn) the recognised fixture's transcript goes out in
``conversation.item.input_audio_transcription.delta`` events ``transcription.delta_ms`` apart,
then ``.completed`` with ``usage`` in the configured model's shape; or, for the
``transcription_failed`` fault, ``.failed`` with its error. The stored user item then carries the
transcript (``conversation.item.retrieve`` shows it). One truth row (kind ``transcription``) each.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any

from websockets.exceptions import ConnectionClosed

from loadtest.mock import events as ev
from loadtest.mock.host import SessionHost
from loadtest.mock.transcribe import Recognition, deltas, substitute

FAILED_ERROR = {"type": "transcription_error", "code": "audio_unintelligible",
                "message": "Audio is unintelligible.", "param": None}  # fmt: skip


def plan(rng: random.Random, faults: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    draw = rng.random()
    pick = random.Random(rng.random())
    failed = float(faults["transcription_failed"]["rate"])
    slow = float(faults["transcription_slow"]["rate"])
    if draw < failed:
        return "transcription_failed", {}
    if draw < failed + slow:
        lo, hi = faults["transcription_slow"]["delay_ms"]
        return "transcription_slow", {"delay_ms": round(pick.uniform(float(lo), float(hi)), 1)}
    return "none", {}


async def run(session: SessionHost, item_id: str, heard: Recognition, seconds: float, t_commit: float) -> None:
    knobs = session.profile["transcription"]
    model = (session.cfg.get("transcription") or {}).get("model")
    rng = session.transcription_rng
    fault, params = plan(rng, session.profile["faults"])
    delay = rng.uniform(*(float(v) for v in knobs["first_delta_ms"])) + float(params.get("delay_ms", 0.0))
    transcript, replaced = substitute(heard.transcript, float(knobs["substitution_rate"]), rng)
    row: dict[str, Any] = {
        "kind": "transcription",
        "session_id": session.id,
        "item_id": item_id,
        "fault": fault,
        "params": params,
        "model": model,
        "fixture": heard.fixture,
        "score": round(heard.score, 3),
        "expected": heard.transcript,
        "transcript": None if fault == "transcription_failed" else transcript,
        "substituted_words": replaced,
        "audio_s": round(seconds, 3),
        "t_commit": t_commit,
        "t_first_delta": None,
        "t_done": None,
    }
    written = False

    def write() -> None:
        nonlocal written
        if not written:
            written = True
            session.ctx.truth.write(row)

    try:
        await session.sleep_until(session.loop.time() + delay / 1000.0)
        with contextlib.suppress(ConnectionClosed):
            base = {"item_id": item_id, "content_index": 0}
            if fault == "transcription_failed":
                row["t_done"] = time.time()
                write()  # (before the event: a client that reads it may close at once)
                await session.send({"type": "conversation.item.input_audio_transcription.failed", **base,
                                    "error": dict(FAILED_ERROR)})  # fmt: skip
                return
            step = float(knobs["delta_ms"]) / 1000.0
            for index, piece in enumerate(deltas(transcript, model)):
                if index:
                    await session.sleep_until(session.loop.time() + step)
                await session.send({"type": "conversation.item.input_audio_transcription.delta", **base,
                                    "delta": piece})  # fmt: skip
                if row["t_first_delta"] is None:
                    row["t_first_delta"] = time.time()
            usage = ev.transcription_usage(model, seconds, transcript)
            row["t_done"] = time.time()
            row["usage"] = usage
            write()
            done = {"type": "conversation.item.input_audio_transcription.completed", **base, "transcript": transcript}
            if not session.dialect.is_voice_live:  # Voice Live's completed event carries no usage
                done["usage"] = usage
            await session.send(done)
            item = session.items.get(item_id)
            if item is not None:
                for part in item.get("content") or []:
                    if part.get("type") == "input_audio":
                        part["transcript"] = transcript
    finally:
        write()  # a session that ends first still logs the item (t_done null)
