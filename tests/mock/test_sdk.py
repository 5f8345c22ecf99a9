"""The official openai SDK talks to the mock unchanged, through ``websocket_base_url``."""

from __future__ import annotations

import base64

import pytest
from openai import OpenAI


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_openai_sdk_realtime_connects_and_gets_a_spoken_answer(shared_mock) -> None:
    client = OpenAI(api_key="mock-key", base_url="http://127.0.0.1:9/v1", websocket_base_url=shared_mock.url + "/v1")
    audio = bytearray()
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["audio"],
                                     "audio": {"input": {"turn_detection": None}}})  # fmt: skip
        conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Opening hours?"}]}
        )
        conn.response.create()
        for event in conn:
            if event.type == "response.output_audio.delta":
                audio += base64.b64decode(event.delta)
            if event.type == "response.done":
                assert event.response.status == "completed"
                transcript = event.response.output[0].content[0].transcript
                break
    assert transcript and len(audio) / 48000 > len(transcript) / 16


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_azure_openai_sdk_uses_the_legacy_path_with_ga_events(shared_mock) -> None:
    from openai import AzureOpenAI

    endpoint = shared_mock.url.replace("ws://", "http://")
    client = AzureOpenAI(api_key="mock-key", azure_endpoint=endpoint, api_version="2025-08-28",
                         websocket_base_url=shared_mock.url + "/openai")  # fmt: skip
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}
        )
        conn.response.create()
        text = ""
        for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                break
    assert text and event.response.status == "completed"
