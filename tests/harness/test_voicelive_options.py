"""`rtload run` options for Azure Voice Live: the provider, its query parameters, 16 kHz audio, and
no secret of theirs in the resolved configuration."""

from __future__ import annotations

import pytest

from loadtest.locust.launcher import RunRequest
from loadtest.locust.options import HarnessOptions, OptionError
from loadtest.workload.run_config import redacted


def options(**kw: object) -> HarnessOptions:
    return HarnessOptions.from_namespace(RunRequest(**kw).namespace())  # type: ignore[arg-type]


def test_voicelive_options_build_its_target() -> None:
    opts = options(
        target="wss://contoso.services.ai.azure.com",
        provider="voicelive",
        deployment="gpt-4.1",
        query=["profile=byom-azure-openai-chat-completion"],
        audio_format="pcm16_16000hz",
        api_key_env="VL_KEY",
    )
    assert (opts.dialect, opts.audio_format) == ("voicelive", "pcm16_16000hz")
    target = opts.build_target(environ={"VL_KEY": "k3y-value"})
    assert target.url() == (
        "wss://contoso.services.ai.azure.com/voice-live/realtime?api-version=2026-04-10&model=gpt-4.1"
        "&profile=byom-azure-openai-chat-completion"
    )
    assert target.model_class == "byom" and ("api-key", "k3y-value") in target.headers()
    assert options(provider="voicelive").key_env == "AZURE_VOICELIVE_API_KEY"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"provider": "voicelive", "dialect": "preview"}, "Voice Live speaks its own dialect"),
        ({"provider": "azure", "query": ["agent-name=x"]}, "--query is for --provider voicelive"),
        ({"provider": "voicelive", "query": ["agent-name"]}, "use name=value"),
        ({"provider": "openai", "audio_format": "pcm16_16000hz"}, "pcm16_16000hz is Voice Live's"),
        ({"provider": "bedrock"}, "use openai, azure or voicelive"),
    ],
)
def test_bad_voicelive_options_are_one_line(kw: dict, message: str) -> None:
    with pytest.raises(OptionError) as info:
        options(**kw)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_agent_token_in_the_query_is_redacted() -> None:
    opts = options(provider="voicelive", query=["agent-name=a", "agent-project-name=p", "agent-access-token=T0KEN"])
    assert "T0KEN" not in str(opts.describe())
    assert "T0KEN" not in opts.build_target().redacted_url()
    assert redacted({"query": ["agent-name=a", "agent-access-token=T0KEN"]})["query"] == [
        "agent-name=a",
        "agent-access-token=***",
    ]
