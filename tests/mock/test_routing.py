"""Every URL shape and auth case, each as the real service answers it (realtime-protocol.md §1)."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.mock.schema_check import validate
from tests.mock.wsclient import KEY, Client, azure_ga_url, azure_preview_url, openai_url

BEARER = {"Authorization": f"Bearer {KEY}"}


def _rejected_after_upgrade(url: str, headers: dict[str, str]) -> tuple[dict, int, str]:
    with Client(url, headers) as c:
        error = c.recv()
        with pytest.raises(ConnectionClosed) as closed:
            c.recv(timeout=5)
    rcvd = closed.value.rcvd
    assert rcvd is not None
    return error, rcvd.code, rcvd.reason


def _refused(url: str, headers: dict[str, str]) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        Client(url, headers)
    return info.value


def test_openai_ga_accepts_bearer_and_speaks_ga(shared_mock) -> None:
    with Client(openai_url(shared_mock.url), BEARER) as c:
        event = c.recv()
        validate(event, "ga")
        assert event["session"]["type"] == "realtime" and event["session"]["model"] == "gpt-realtime"


@pytest.mark.parametrize(
    ("model", "headers", "code", "close"),
    [
        ("gpt-realtime", {"Authorization": "Bearer wrong"}, "invalid_api_key", 3000),
        ("gpt-realtime", {}, None, 3000),
        ("gpt-realtime", {"api-key": KEY}, None, 3000),  # OpenAI takes only Bearer
        ("no-such-model", BEARER, "invalid_model", 4000),
        ("gpt-4o-realtime-preview-2024-10-01", BEARER, "invalid_model", 4000),  # retired
        ("", BEARER, "missing_model", 4000),
        ("gpt-realtime", {**BEARER, "OpenAI-Beta": "realtime=v1"}, "beta_api_shape_disabled", 4000),
    ],
)
def test_openai_rejects_after_the_upgrade(shared_mock, model, headers, code, close) -> None:
    error, close_code, reason = _rejected_after_upgrade(openai_url(shared_mock.url, model), headers)
    validate(error, "ga")
    assert error["type"] == "error" and error["error"]["code"] == code
    assert close_code == close
    assert reason == (f"invalid_request_error.{code}" if code else "invalid_request_error")


@pytest.mark.parametrize(
    ("url_of", "headers"),
    [
        (lambda b: azure_ga_url(b), {"api-key": KEY}),
        (lambda b: azure_ga_url(b, "gpt-realtime-mini"), BEARER),
        (lambda b: azure_ga_url(b) + f"&api-key={KEY}", {}),
    ],
)
def test_azure_ga_accepts_api_key_bearer_or_query(shared_mock, url_of, headers) -> None:
    with Client(url_of(shared_mock.url), headers) as c:
        event = c.recv()
        validate(event, "ga")
        assert event["session"]["type"] == "realtime"


@pytest.mark.parametrize(
    ("url_of", "headers", "status"),
    [
        (lambda b: azure_ga_url(b) + "&api-version=2025-04-01-preview", {"api-key": KEY}, 401),
        (lambda b: azure_ga_url(b), {"api-key": "wrong"}, 401),
        (lambda b: azure_ga_url(b), {}, 401),
        (lambda b: azure_ga_url(b, "no-such-deployment"), {"api-key": KEY}, 404),
        (lambda b: azure_ga_url(b, "gpt-4o-realtime-preview-2024-10-01"), {"api-key": KEY}, 404),
        (lambda b: azure_preview_url(b, "gpt-4o-realtime-preview-2024-10-01"), {"api-key": KEY}, 404),
        (lambda b: azure_preview_url(b, "no-such-deployment"), {"api-key": KEY}, 404),
        (lambda b: azure_preview_url(b), {"api-key": "wrong"}, 401),
        (lambda b: azure_preview_url(b, version="1999-01-01"), {"api-key": KEY}, 404),
        (lambda b: f"{b}/openai/realtime?deployment=gpt-realtime", {"api-key": KEY}, 404),
        (lambda b: f"{b}/not/realtime", BEARER, 404),
    ],
)
def test_azure_refuses_at_the_upgrade(shared_mock, url_of, headers, status) -> None:
    refused = _refused(url_of(shared_mock.url), headers)
    assert refused.response.status_code == status
    assert b'"error"' in refused.response.body


def test_azure_preview_speaks_preview_and_ga_version_on_legacy_path_speaks_ga(shared_mock) -> None:
    with Client(azure_preview_url(shared_mock.url), {"api-key": KEY}) as c:
        event = c.recv()
        validate(event, "preview")
        assert event["session"]["modalities"] == ["audio", "text"] and "type" not in event["session"]
    with Client(azure_preview_url(shared_mock.url, "gpt-realtime", "2025-08-28"), {"api-key": KEY}) as c:
        event = c.recv()
        validate(event, "ga")
        assert event["session"]["type"] == "realtime"


def test_refusals_are_in_the_truth_log_without_session_id(shared_mock) -> None:
    _refused(azure_ga_url(shared_mock.url, "no-such-deployment"), {"api-key": KEY})
    rows = [r for r in shared_mock.truth() if r["kind"] == "session" and r.get("status") == 404]
    assert rows and all(r["session_id"] is None and r["fault"] == "none" for r in rows)


def test_beta_shape_allowed_by_the_switch(mock_server) -> None:
    mock = mock_server(overrides={"api.allow_beta": True})
    with Client(openai_url(mock.url), {**BEARER, "OpenAI-Beta": "realtime=v1"}) as c:
        event = c.recv()
        validate(event, "preview")
        assert "modalities" in event["session"]


def test_profile_keys_and_deployments_replace_the_defaults(mock_server) -> None:
    mock = mock_server(overrides={"auth.keys": ["k1", "k2"], "deployments.names": ["my-dep"]})
    with Client(azure_ga_url(mock.url, "my-dep"), {"api-key": "k2"}) as c:
        assert c.recv()["type"] == "session.created"
    assert _refused(azure_ga_url(mock.url, "my-dep"), {"api-key": KEY}).response.status_code == 401
    assert _refused(azure_ga_url(mock.url, "gpt-realtime"), {"api-key": "k1"}).response.status_code == 404
