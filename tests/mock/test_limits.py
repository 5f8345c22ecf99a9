"""Handshake faults, capacity 429s, the token bucket, the overload knee and session expiry."""

from __future__ import annotations

import collections
import time

import pytest
from scipy.stats import binom
from websockets.exceptions import ConnectionClosed, InvalidStatus

from loadtest.protocol.dialects import GA, PREVIEW
from tests.mock.observe import run_many
from tests.mock.schema_check import validate
from tests.mock.wsclient import KEY, Client, azure_ga_url, azure_preview_url, openai_url
from tests.support import fast_mock

FAST = fast_mock(40.0, (1, 3))


def test_handshake_faults_at_their_rates_with_retry_after(mock_server) -> None:
    mock = mock_server(seed=2, overrides={"faults.handshake_5xx.rate": 0.1, "faults.handshake_429.rate": 0.1})
    n = 300
    statuses = collections.Counter()
    for _ in range(n):
        try:
            with Client(azure_ga_url(mock.url), {"api-key": KEY}):
                statuses[101] += 1
        except InvalidStatus as exc:
            status = exc.response.status_code
            statuses[429 if status == 429 else "5xx"] += 1
            assert status == 429 or status in (500, 502, 503)
            if status == 429:
                assert 1 <= int(exc.response.headers["Retry-After"]) <= 5
    lo, hi = int(binom.ppf(0.0005, n, 0.1)), int(binom.ppf(0.9995, n, 0.1))
    assert lo <= statuses["5xx"] <= hi and lo <= statuses[429] <= hi
    rows = [r for r in mock.truth() if r["kind"] == "session"]
    by_fault = collections.Counter(r["fault"] for r in rows)
    assert by_fault["handshake_5xx"] == statuses["5xx"] and by_fault["handshake_429"] == statuses[429]
    for row in rows:
        if row["fault"].startswith("handshake_"):
            assert row["session_id"] is None and row["status"] == row["params"]["status"]


@pytest.mark.parametrize("provider", ["azure", "openai"])
def test_capacity_429_past_max_sessions(mock_server, provider: str) -> None:
    mock = mock_server(overrides={"capacity.max_sessions": 3, "capacity.retry_after_s": 7})
    url = azure_ga_url(mock.url) if provider == "azure" else openai_url(mock.url)
    headers = {"api-key": KEY} if provider == "azure" else {"Authorization": f"Bearer {KEY}"}
    open_ = [Client(url, headers) for _ in range(3)]
    for c in open_:
        c.recv()
    with pytest.raises(InvalidStatus) as refused:
        Client(url, headers)
    assert refused.value.response.status_code == 429
    assert refused.value.response.headers["Retry-After"] == "7"
    # another deployment has its own capacity
    other = (
        azure_ga_url(mock.url, "gpt-realtime-mini")
        if provider == "azure"
        else openai_url(mock.url, "gpt-realtime-mini")
    )
    with Client(other, headers) as c:
        c.recv()
    open_[0].close()
    deadline = time.monotonic() + 5
    while True:  # the server frees the slot once it sees the close
        try:
            with Client(url, headers) as c:
                c.recv()
            break
        except InvalidStatus:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    for c in open_[1:]:
        c.close()
    rows = [r for r in mock.truth() if r.get("fault") == "capacity_429"]
    assert rows and rows[0]["status"] == 429 and rows[0]["session_id"] is None
    assert rows[0]["params"] == {"max_sessions": 3, "retry_after_s": 7}


def test_token_bucket_falls_then_rate_limit_exceeded(mock_server) -> None:
    mock = mock_server(overrides={**FAST, "rate_limits.tokens_per_minute": 300})
    seen = run_many(mock.url + "/v1/realtime?model=gpt-realtime", sessions=1, per_session=4)
    remaining = []
    for s in seen:
        (rl,) = s.of("rate_limits.updated")
        validate(rl, "ga")
        tokens = next(r for r in rl["rate_limits"] if r["name"] == "tokens")
        assert tokens["limit"] == 300
        remaining.append(tokens["remaining"])
    kinds = [s.looks_like() for s in seen]
    assert kinds[0] == "none" and "rate_limited" in kinds
    assert remaining[1] < remaining[0] or kinds[1] == "rate_limited"
    failed = next(s for s in seen if s.looks_like() == "rate_limited").done
    assert failed["status_details"]["error"]["code"] == "rate_limit_exceeded" and failed["output"] == []
    truth = {r["response_id"]: r["fault"] for r in mock.truth() if r["kind"] == "response"}
    assert [truth[s.response_id] for s in seen] == kinds


def test_latency_and_server_errors_grow_past_the_knee(mock_server) -> None:
    knee = {"capacity.knee_sessions": 2, "capacity.latency_ms_per_session": 150.0,
            "capacity.server_error_per_session": 0.4, "capacity.server_error_max": 0.8}  # fmt: skip
    mock = mock_server(seed=4, overrides={**FAST, "latency.created_ms": [20, 20], **knee})
    url = openai_url(mock.url)

    def created_ms(c: Client) -> float:
        c.send(GA.user_text_item("hi"))
        start = time.monotonic()
        c.send(GA.response_create())
        c.until("response.created")
        took = (time.monotonic() - start) * 1000
        c.until("rate_limits.updated")
        return took

    with Client(url) as lone:
        lone.recv()
        below = created_ms(lone)
        crowd = [Client(url) for _ in range(3)]  # 4 active: 2 past the knee
        try:
            above = [created_ms(lone) for _ in range(8)]
        finally:
            for c in crowd:
                c.close()
    assert below < 150 and min(above) > below + 250  # 2 sessions over x 150 ms
    rows = [r for r in mock.truth() if r["kind"] == "response"]
    overload = [r for r in rows[1:] if r["fault"] == "server_error" and r["params"].get("cause") == "overload"]
    assert overload and rows[0]["fault"] == "none"
    assert all(r["params"]["probability"] == 0.8 for r in overload)


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_session_expires_like_the_service(mock_server, dialect: str) -> None:
    mock = mock_server(overrides={**FAST, "session.max_duration_s": 1, "audio.speed": 1.0})
    c = Client(openai_url(mock.url)) if dialect == "ga" else Client(azure_preview_url(mock.url), {"api-key": KEY})
    with c:
        c.recv()
        d = GA if dialect == "ga" else PREVIEW
        c.send(d.user_text_item("hi"))
        c.send(d.response_create())
        with pytest.raises(ConnectionClosed) as closed:
            c.until(lambda e: False, timeout=10)
    assert closed.value.rcvd.code == 1001
    assert closed.value.rcvd.reason == "Your session hit the maximum duration of 1 seconds."
    errors = [e for e in c.events if e["type"] == "error"]
    if dialect == "ga":
        assert not errors
    else:
        assert [e["error"]["code"] for e in errors] == ["session_expired"]
        validate(errors[0], "preview")
    deadline = time.monotonic() + 5
    while not any(r["kind"] == "session" for r in mock.truth()):  # written once the server sees the close
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rows = mock.truth()
    session = next(r for r in rows if r["kind"] == "session")
    assert session["fault"] == "session_expired" and session["close_code"] == 1001
    response = next(r for r in rows if r["kind"] == "response")
    assert response["fault"] == "session_expired" and response["params"]["planned_fault"] == "none"


def test_default_session_caps_follow_the_provider(mock_server) -> None:
    mock = mock_server()
    with Client(openai_url(mock.url)) as c:
        openai_expires = c.recv()["session"]["expires_at"] - time.time()
    with Client(azure_ga_url(mock.url), {"api-key": KEY}) as c:
        azure_expires = c.recv()["session"]["expires_at"] - time.time()
    assert 3590 < openai_expires <= 3600 and 1790 < azure_expires <= 1800
