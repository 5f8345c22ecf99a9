"""The mock's WebRTC routes, on the WebSocket port: the services' ``client_secrets`` and ``calls``.

- ``POST /v1/realtime/client_secrets`` (OpenAI) and ``POST /openai/v1/realtime/client_secrets``
  (Azure): with the API key (OpenAI ``Authorization: Bearer``; Azure ``api-key`` or Bearer), a
  body ``{"expires_after": {...}, "session": {...}}``; the answer is ``{"value": "ek_...",
  "expires_at", "session"}``. The ephemeral key authenticates calls on the same provider's route
  until it expires, and its session configures the call.
- ``POST /v1/realtime/calls`` and ``POST /openai/v1/realtime/calls``: the SDP offer
  (loadtest/mock/call_forms.py: ``application/sdp``, ``multipart/form-data`` with ``sdp`` and
  ``session``, or JSON), authenticated with the API key or an ephemeral key. The answer is ``201``
  with the SDP answer (``application/sdp``) and ``Location: .../calls/rtc_...``. The model is the
  session's ``model`` (or ``?model=``); it and the key are checked by the WebSocket routes' rules
  (loadtest/mock/routing.py), and the handshake faults and session capacity apply as to an
  upgrade. Errors are the services' JSON ``{"error": {...}}`` with an HTTP status (a bad key 401,
  a bad offer or session 400).

The call itself (aiortc, PyAV) is loadtest/mock/rtc_call.py; without those packages (the
``webrtc`` extra) every route answers 501 naming the extra.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from loadtest.mock.call_forms import FormError, parse_call, parse_secret_request
from loadtest.mock.http_front import HttpRequest, http_response, json_error, json_response
from loadtest.mock.routing import Refusal, Route, bearer_token, resolve
from loadtest.mock.validate import Invalid, session_update

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Response

    from loadtest.mock.context import SessionContext
    from loadtest.mock.rtc_call import RtcCall

CALL_PATHS = {"/v1/realtime/calls": "openai", "/openai/v1/realtime/calls": "azure"}
SECRET_PATHS = {"/v1/realtime/client_secrets": "openai", "/openai/v1/realtime/client_secrets": "azure"}
EXTRA_MESSAGE = (
    "This mock has no WebRTC support: install the webrtc extra (pip install 'realtime-loadtest[webrtc]'; "
    "make install includes it) and restart the mock."
)
AZURE_401 = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an "
    "active subscription and use a correct regional API endpoint for your resource."
)
OPENAI_401 = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
OPENAI_MISSING = (
    "Missing bearer or basic authentication in header. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


def is_webrtc_path(path_and_query: str) -> bool:
    path = path_and_query.split("?", 1)[0].rstrip("/")
    return path in CALL_PATHS or path in SECRET_PATHS


def webrtc_available() -> bool:
    """aiortc and PyAV are installed (the ``webrtc`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("aiortc", "av"))


@dataclass(slots=True)
class ClientSecret:
    provider: str
    session: dict[str, Any]
    expires_at: int


class CallsEndpoint:
    """The WebRTC routes of one mock server (``host`` is the :class:`~loadtest.mock.server.MockServer`)."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.secrets: dict[str, ClientSecret] = {}
        self.calls: dict[str, RtcCall] = {}
        self._available: bool | None = None
        self._warm: asyncio.Future[Any] | None = None
        self._clock: Any = None  # every call's answer packets on one timer (rtp_lane.PacketClock)

    def _packet_clock(self) -> Any:
        """The endpoint's RTP clock (None: ``RTLOAD_MOCK_RTC_LANE=0``, aiortc's sender per call,
        the bench's A/B)."""
        if os.environ.get("RTLOAD_MOCK_RTC_LANE", "1") == "0":
            return None
        if self._clock is None:
            from loadtest.audio.rtp_lane import PacketClock

            self._clock = PacketClock()
        return self._clock

    def warm_up(self) -> None:
        """Import aiortc and PyAV and encode the answers as Opus in a thread (at the first WebRTC
        request: done in the event loop they would stall every session on it for a second; a mock
        never asked for WebRTC never pays)."""
        if self._warm is None:
            self._warm = asyncio.get_running_loop().run_in_executor(None, self._prepare)

    def _prepare(self) -> None:
        importlib.import_module("loadtest.mock.rtc_call")
        from loadtest.mock import rtc_media

        rtc_media.prepare(self.context.bank.answers)

    @property
    def context(self) -> SessionContext:
        return self.host.context  # type: ignore[no-any-return]

    # ---- one request ------------------------------------------------------------------------
    async def respond(self, connection: ServerConnection, request: HttpRequest) -> Response:
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/")
        provider = CALL_PATHS.get(path) or SECRET_PATHS.get(path)
        headers = {"apim-request-id": str(uuid.uuid4())} if provider == "azure" else {}
        if request.error is not None:
            return json_error(request.error[0], "invalid_request_error", request.error[1], headers)
        if provider is None:
            return json_error(404, "not_found", f"No endpoint at {request.method} {path or '/'}.")
        if request.method != "POST":
            return json_error(405, "method_not_allowed", f"Use POST for {path}.", {**headers, "Allow": "POST"})
        if self._available is None:
            self._available = webrtc_available()
        if not self._available:
            return json_error(501, "webrtc_unavailable", EXTRA_MESSAGE, headers)
        self.warm_up()
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            if path in SECRET_PATHS:
                return self._client_secret(provider, query, request, headers)
            return await self._call(connection, provider, path, query, request, headers)
        except FormError as exc:
            return json_error(exc.status, exc.code, exc.message, headers, param=exc.param)
        except Invalid as exc:
            return json_error(400, exc.code, exc.message, headers, error_type=exc.error_type, param=exc.param)

    @staticmethod
    def _token(provider: str, headers: Any, query: dict[str, str]) -> str | None:
        if provider == "azure":
            return headers.get("api-key") or bearer_token(headers) or query.get("api-key") or None
        return bearer_token(headers)

    def _secret(self, token: str | None, provider: str) -> ClientSecret | None:
        secret = self.secrets.get(token or "")
        if secret is None or secret.provider != provider:
            return None
        if secret.expires_at <= time.time():
            self.secrets.pop(token or "", None)
            return None
        return secret

    def _unauthorised(self, provider: str, token: str | None, headers: dict[str, str]) -> Response:
        if provider == "azure":
            return json_error(401, "401", AZURE_401, headers)
        if token is None:
            return json_error(401, None, OPENAI_MISSING, headers)
        return json_error(401, "invalid_api_key", OPENAI_401, headers)

    # ---- client_secrets -----------------------------------------------------------------------
    def _client_secret(self, provider: str, query: dict[str, str], request: HttpRequest,
                       headers: dict[str, str]) -> Response:  # fmt: skip
        token = self._token(provider, request.headers, query)
        if token is None or token not in self.host.keys:
            return self._unauthorised(provider, token, headers)
        session, seconds = parse_secret_request(request.body)
        session = session if session is not None else {"type": "realtime"}
        session_update(session, self.context.dialect("ga"), self.context.profile["audio"]["voices"])
        now = int(time.time())
        value = "ek_" + secrets.token_hex(16)
        self.secrets = {k: s for k, s in self.secrets.items() if s.expires_at > now}
        self.secrets[value] = ClientSecret(provider, session, now + seconds)
        described = {"object": "realtime.session", "id": "sess_" + secrets.token_hex(12), **session}
        return json_response(200, {"value": value, "expires_at": now + seconds, "session": described}, headers)

    # ---- calls --------------------------------------------------------------------------------
    def _route(self, provider: str, token: str | None, secret: ClientSecret | None, model: str,
               query: dict[str, str], session: dict[str, Any]) -> Route | Refusal:  # fmt: skip
        keys = self.host.keys | {token} if secret is not None and token else self.host.keys
        transcription = session.get("type") == "transcription"
        if provider == "openai":
            q = {"model": model} if model else {}
            if transcription:
                q["intent"] = "transcription"
            head = {"Authorization": f"Bearer {token}"} if token else {}
            result = resolve("/v1/realtime?" + urlencode(q), head, self.context.profile, keys)
        else:
            q = {k: v for k, v in query.items() if k not in ("webrtcfilter", "api-key", "model")}
            q["model"] = model
            head = {"api-key": token or ""}
            result = resolve("/openai/v1/realtime?" + urlencode(q), head, self.context.profile, keys)
        if isinstance(result, Route) and transcription:
            result.intent = "transcription"
        return result

    async def _call(self, connection: ServerConnection, provider: str, path: str, query: dict[str, str],
                    request: HttpRequest, headers: dict[str, str]) -> Response:  # fmt: skip
        host = self.host
        token = self._token(provider, request.headers, query)
        secret = self._secret(token, provider)
        if token is None or (secret is None and token not in host.keys):
            host.stats.refused += 1
            host.session_truth(None, "none", 401, {}, rejected="unauthorised", path=path, transport="webrtc")
            return self._unauthorised(provider, token, headers)
        offer = parse_call(request.headers.get("Content-Type", ""), request.body)
        session: dict[str, Any] = dict(secret.session) if secret is not None else {}
        if offer.session:
            session.update(offer.session)
        model = str(session.get("model") or query.get("model") or "")
        result = self._route(provider, token, secret, model, query, session)
        if isinstance(result, Refusal):
            host.stats.refused += 1
            host.session_truth(None, "none", result.status, {}, rejected=result.code, path=path, transport="webrtc")
            return host.refuse(connection, result.status, result.code, result.message, provider, result.headers)
        route = result
        if route.rejection is not None:
            error = route.rejection.error
            status = 401 if error.get("code") in (None, "invalid_api_key") else 400
            host.stats.refused += 1
            host.session_truth(route, "none", status, {}, rejected=error.get("code"), transport="webrtc")
            return json_error(status, error.get("code"), str(error.get("message")), headers)
        refused = host.admit(connection, route, "webrtc")
        if refused is not None:
            return refused
        return await self._answer(connection, route, path, offer.sdp, session, headers)

    async def _answer(self, connection: ServerConnection, route: Route, path: str, sdp: str,
                      session: dict[str, Any], headers: dict[str, str]) -> Response:  # fmt: skip
        if self._warm is not None:
            await self._warm
        from loadtest.mock import ice
        from loadtest.mock.rtc_call import OfferRejected, RtcCall

        local = connection.transport.get_extra_info("sockname")[0]
        ice.use_host_addresses([local.removeprefix("::ffff:")])
        call = RtcCall(self.host, route, self.host.next_session_index(), self._packet_clock())
        try:
            answer = await call.answer(sdp, session or None)
        except (Invalid, OfferRejected) as exc:
            self.context.limits.close(route.deployment)
            await call.close()
            if isinstance(exc, Invalid):
                self.host.session_truth(route, "none", 400, {}, rejected=exc.code, transport="webrtc")
                return json_error(400, exc.code, exc.message, headers, error_type=exc.error_type, param=exc.param)
            self.host.session_truth(route, "none", 400, {}, rejected="invalid_offer", transport="webrtc")
            return json_error(400, "invalid_offer", f"The SDP offer could not be used: {exc}", headers, param="sdp")
        self.calls[call.id] = call
        task = asyncio.get_running_loop().create_task(self._run(call, route))
        call.run_task = task
        return http_response(201, answer.encode(), "application/sdp", {**headers, "Location": f"{path}/{call.id}"})

    async def _run(self, call: RtcCall, route: Route) -> None:
        try:
            await call.run()
        finally:
            self.context.limits.close(route.deployment)
            self.calls.pop(call.id, None)

    async def close(self) -> None:
        """End every call (the server is stopping): their sessions write their truth rows."""
        calls = list(self.calls.values())
        for call in calls:
            call.socket.hang_up(None)
        tasks = [c.run_task for c in calls if c.run_task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=3)
