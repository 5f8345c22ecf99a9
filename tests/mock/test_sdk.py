"""The official openai SDK talks to the mock unchanged, through ``websocket_base_url``."""

from __future__ import annotations

import asyncio
import base64
import json

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


LOOKUP = {
    "type": "function",
    "name": "lookup_order",
    "description": "Find an order by its id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_async_openai_sdk_gets_a_forced_call_sends_its_output_and_hears_the_answer(shared_mock) -> None:
    from openai import AsyncOpenAI

    async def main() -> tuple[list, str, bytes]:
        client = AsyncOpenAI(api_key="mock-key", base_url="http://127.0.0.1:9/v1",
                             websocket_base_url=shared_mock.url + "/v1")  # fmt: skip
        calls, audio = [], bytearray()
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"], "tools": [LOOKUP],
                                               "tool_choice": {"type": "function", "name": "lookup_order"},
                                               "audio": {"input": {"turn_detection": None}}})  # fmt: skip
            await conn.conversation.item.create(
                item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Order 42?"}]}
            )
            await conn.response.create()
            async for event in conn:
                if event.type == "response.function_call_arguments.done":
                    calls.append((event.name, event.call_id, json.loads(event.arguments)))
                if event.type == "response.done":
                    assert event.response.status == "completed"
                    assert [o.type for o in event.response.output] == ["function_call"]
                    break
            for _name, call_id, _arguments in calls:
                await conn.conversation.item.create(
                    item={"type": "function_call_output", "call_id": call_id, "output": '{"status": "shipped"}'}
                )
            await conn.response.create(response={"tool_choice": "none"})
            async for event in conn:
                if event.type == "response.output_audio.delta":
                    audio += base64.b64decode(event.delta)
                if event.type == "response.done":
                    assert event.response.status == "completed"
                    transcript = event.response.output[0].content[0].transcript
                    break
        return calls, transcript, bytes(audio)

    calls, transcript, audio = asyncio.run(main())
    assert [(name, sorted(arguments)) for name, _id, arguments in calls] == [("lookup_order", ["order_id"])]
    assert transcript and len(audio) / 48000 > len(transcript) / 16


def test_azure_voicelive_sdk_gets_a_spoken_answer_and_sees_a_retired_model_as_invalid_response_status(
    shared_mock,
) -> None:
    """The azure-ai-voicelive SDK (aiohttp) against the mock's Voice Live endpoint: a cascade model's
    spoken answer, every event parsed into the SDK's own model; a retired model refused at the upgrade,
    which the SDK reports as users see it ("Invalid response status")."""
    import asyncio

    from azure.ai.voicelive.aio import connect
    from azure.ai.voicelive.models import RequestSession, ServerEvent
    from azure.core.credentials import AzureKeyCredential

    endpoint = shared_mock.url.replace("ws://", "http://")
    key = AzureKeyCredential("mock-key")

    async def talk() -> tuple[list[ServerEvent], bytes]:
        events: list[ServerEvent] = []
        audio = b""
        async with connect(endpoint=endpoint, credential=key, model="gpt-4.1") as conn:
            await conn.session.update(session=RequestSession(modalities=["text", "audio"], turn_detection=None))
            await conn.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                             "content": [{"type": "input_text", "text": "Opening hours?"}]}})  # fmt: skip
            await conn.response.create()
            async for event in conn:
                events.append(event)
                if event.type == "response.audio.delta":
                    audio += event.delta
                if event.type == "response.done":
                    break
        return events, audio

    async def retired() -> str:
        try:
            async with connect(endpoint=endpoint, credential=key, model="gpt-4o-realtime-preview"):
                return "connected"
        except Exception as exc:  # the SDK's own ConnectionError (not the builtin)
            return str(exc)

    events, audio = asyncio.run(talk())
    assert all(type(e) is not ServerEvent for e in events)  # every event had its SDK model
    done = events[-1]
    assert done.response.status == "completed" and len(audio) > 48000  # over a second at 24 kHz
    assert "session.updated" in [e.type for e in events]
    assert "Invalid response status" in asyncio.run(retired())
