"""The harness's options: registered as Locust command-line options, validated in one place.

``register(parser)`` adds ``--rt-*`` options to Locust's parser (``events.init_command_line_parser``);
the master passes them on to its workers, so a worker needs only ``--worker --master-host``.
:func:`HarnessOptions.from_namespace` turns Locust's parsed options into a validated
:class:`HarnessOptions`; every problem is a :class:`OptionError` with one line saying what is wrong.

The API key is never an option: ``--rt-api-key-env`` names the environment variable that holds it,
and each process reads that variable itself when it builds its :class:`Target`.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadtest.locust.shapes import SHAPES, ShapePlan, parse_duration
from loadtest.protocol.network import NetworkError, NetworkPath, network_path
from loadtest.protocol.targets import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_KEY_ENV,
    PROVIDERS,
    REDACTED,
    SECRET_QUERY_KEYS,
    Target,
    infer_provider,
    is_full_url,
    redact_text,
    redact_url,
    secrets_of,
    url_model,
    url_problem,
    with_model,
)
from loadtest.session.evidence import KEEP_MODES

MOCK_API_KEY = "mock-key"
PROXY_ENV = "RTLOAD_PROXY"  # how `rtload run` passes --proxy to its Locust processes (not on a command line)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OptionError(ValueError):
    """Bad input: the message is one line naming the option and what to do."""


@dataclass(slots=True)
class HarnessOptions:
    target: str = "mock"  # "mock" or a ws(s)/http(s) URL
    provider: str = "openai"
    dialect: str = "ga"
    deployment: str = DEFAULT_DEPLOYMENT  # resolved: see resolve_deployment ("" = a full URL that names none)
    api_key_env: str = ""  # the NAME of the variable holding the key ("" = provider default)
    auth: str = "auto"
    api_version: str | None = None
    query: dict[str, str] = field(default_factory=dict)  # extra URL query parameters (Voice Live agent, profile)
    label: str = ""
    scenario: str = ""  # "" = the session client's default scenario
    fixture: str = ""  # overrides the scenario's fixtures when set
    modalities: str = "audio"  # audio | text
    audio_format: str = "pcm16"
    pacing: str = "realtime"  # realtime | fast
    stall_ms: float = 1500.0
    keep_audio: str = "failed"  # none | failed | sample (loadtest.session.evidence)
    transport: str = "websocket"  # websocket | webrtc | both (users alternate by user id)
    deadline_s: float = 30.0
    session_lifetime_s: float | None = None  # recycle sessions at this age (soak)
    reconnect_max_s: float = 30.0  # cap of the reconnect backoff
    plan: ShapePlan = field(default_factory=ShapePlan)
    out: str = "reports"
    run_dir: str = ""
    run_id: str = ""
    mock_profile: str = "healthy"
    mock_set: list[str] = field(default_factory=list)
    health_interval_s: float = 1.0
    session_file: str = ""  # the user's session object (JSON) for session.update
    no_check: bool = False  # skip preflight's static checks of the session file
    given: dict[str, str] = field(default_factory=dict)  # session-shaping options the user set (vs the file)
    proxy: str = ""  # --proxy (credentials are secrets: run.json keeps host:port only); "" = the environment's
    ca_bundle: str = ""  # --ca-bundle ("" = SSL_CERT_FILE or the system's CAs)

    @property
    def is_mock(self) -> bool:
        return self.target == "mock"

    @property
    def key_env(self) -> str:
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.provider, "OPENAI_API_KEY")

    def api_key(self, environ: dict[str, str] | None = None) -> str | None:
        """The key from its environment variable (the mock's fixed key for ``--target mock``)."""
        env = os.environ if environ is None else environ
        if self.api_key_env:
            return env.get(self.api_key_env)
        if self.is_mock:
            return MOCK_API_KEY
        return env.get(self.key_env)

    def check_key(self, environ: dict[str, str] | None = None) -> None:
        if self.is_mock and not self.api_key_env:
            return
        if not self.api_key(environ) and self.auth != "entra":
            raise OptionError(
                f"environment variable {self.key_env} is not set: export it with the API key "
                f"(or name another one with --api-key-env)"
            )

    def check_mock(self) -> None:
        """``--target mock``: the profile exists and every ``--mock-set`` knob exists with a value of
        its type, so a typo is one line before anything starts (not a mock that fails to start)."""
        if not self.is_mock:
            return
        from loadtest.mock.profile import ProfileError, load_profile

        try:
            load_profile(self.mock_profile, self.mock_set, flag="--mock-set")
        except ProfileError as exc:
            raise OptionError(str(exc)) from None

    def redacted_mock_set(self) -> list[str]:
        """``--mock-set`` items as run.json keeps them: the mock's keys (``auth.*``) as ``***``."""
        from loadtest.mock.profile import redact_override

        return [redact_override(item) for item in self.mock_set]

    def network(self, environ: dict[str, str] | None = None) -> NetworkPath:
        """The proxy and trusted CAs of this run's connections (``--target mock``: never a proxy
        from the environment, which would not reach the embedded mock anyway)."""
        try:
            return network_path(self.proxy, self.ca_bundle, environ)
        except NetworkError as exc:
            raise OptionError(str(exc)) from None

    def build_target(self, base_url: str | None = None, environ: dict[str, str] | None = None) -> Target:
        """The :class:`Target` (with the key read from the environment, never stored elsewhere)."""
        url = base_url or self.target
        override = None
        parts = urlsplit(url)
        if is_full_url(url) and not self.is_mock:
            # a full URL (a gateway, or an explicit realtime path) is used as it is, with the model or
            # deployment it lacks filled from --deployment
            override = with_model(url, self.deployment)
        return Target(
            base_url=url,
            provider=self.provider,
            dialect=self.dialect,
            deployment=self.deployment,
            api_key=self.api_key(environ),
            auth=self.auth,
            api_version=self.api_version,
            query=dict(self.query),
            url_override=override,
            label=self.label or ("mock" if self.is_mock else parts.hostname or self.provider),
            network=self.network(environ),
        )

    def describe(self) -> dict[str, Any]:
        """Options for run.json (no secret: only the variable's name)."""
        out = asdict(self)
        out["target"] = self.target if self.is_mock else redact_url(self.target)
        out["mock_set"] = self.redacted_mock_set()
        out["plan"] = self.plan.describe()
        out["query"] = {k: REDACTED if k.lower() in SECRET_QUERY_KEYS else v for k, v in self.query.items()}
        out.pop("proxy", None)
        out["ca_bundle"] = self.ca_bundle or None
        try:
            out["network"] = self.network().describe()
        except OptionError:
            out["network"] = None
        out["api_key_env"] = None if self.is_mock and not self.api_key_env else self.key_env
        return out

    # ---- parsing -----------------------------------------------------------------------
    @classmethod
    def from_namespace(cls, ns: Any) -> HarnessOptions:
        """From Locust's parsed options (reads ``rt_*`` plus ``num_users``/``spawn_rate``/``run_time``)."""

        def get(name: str, default: Any = None) -> Any:
            value = getattr(ns, name, None)
            return default if value is None or value == "" else value

        target = str(get("rt_target", "mock")).strip()
        dialect = str(get("rt_dialect", "ga")).lower()
        if target != "mock":
            problem = url_problem(target)
            if problem:
                shown = redact_text(target, secrets_of(target))  # a key in the query is not echoed
                raise OptionError(f"--target {shown!r} {url_problem(shown) or problem}")  # positions as shown
        # the provider: as given, else the URL's (a Voice Live path means voicelive, another Azure
        # host or path azure)
        provider = str(get("rt_provider", "") or ("openai" if target == "mock" else infer_provider(target))).lower()
        if provider not in PROVIDERS:
            raise OptionError(
                f"--provider {provider!r} is not known: use openai, azure or voicelive "
                f"(or gateway for a service in front of one)"
            )
        if provider == "voicelive":
            if get("rt_dialect") not in (None, "voicelive", "ga"):  # ga: the default, left as it was
                raise OptionError(f"--dialect {dialect}: Voice Live speaks its own dialect; drop --dialect")
            dialect = "voicelive"
        elif dialect not in ("ga", "preview"):
            raise OptionError(f"--dialect {dialect!r} is not known: use ga or preview")
        query: dict[str, str] = {}
        raw_query = get("rt_query", [])
        for item in [s.strip() for s in raw_query.split(";")] if isinstance(raw_query, str) else raw_query:
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise OptionError(f"--query {item!r}: use name=value, e.g. agent-name=my-agent")
            query[name.strip()] = value.strip()
        if query and provider != "voicelive":
            raise OptionError("--query is for --provider voicelive (agent-name, agent-project-name, profile)")
        deployment = resolve_deployment(target, str(get("rt_deployment", "")).strip())
        key_env = str(get("rt_api_key_env", ""))
        if key_env and not _ENV_NAME.match(key_env):
            raise OptionError(
                f"--api-key-env takes the NAME of an environment variable (e.g. AZURE_OPENAI_API_KEY), "
                f"not {('a value of ' + str(len(key_env)) + ' characters')}"
            )
        modalities = str(get("rt_modalities", "audio")).lower()
        if modalities not in ("audio", "text"):
            raise OptionError(f"--modalities {modalities!r} is not known: use audio or text")
        audio_format = str(get("rt_audio_format", "pcm16"))
        known_formats = ("pcm16", "g711_ulaw", "g711_alaw") + (("pcm16_16000hz",) if provider == "voicelive" else ())
        if audio_format == "pcm16_16000hz" and provider != "voicelive":
            raise OptionError("--audio-format pcm16_16000hz is Voice Live's: use it with --provider voicelive")
        if audio_format not in known_formats:
            raise OptionError(f"--audio-format {audio_format!r} is not known: use {', '.join(known_formats)}")
        pacing = str(get("rt_pacing", "realtime"))
        if pacing not in ("realtime", "fast"):
            raise OptionError(f"--pacing {pacing!r} is not known: use realtime or fast")
        shape = str(get("rt_shape", "constant")).lower()
        if shape not in SHAPES:
            raise OptionError(f"--shape {shape!r} is not known: use one of {', '.join(SHAPES)}")

        def duration(name: str, flag: str, default: Any = None) -> float | None:
            try:
                return parse_duration(get(name, default))
            except ValueError as exc:
                raise OptionError(f"{flag}: {exc}") from None

        # Locust does not pass -u/-r/-t on to workers; the master copies them into rt_plan_* (below)
        users = get("rt_plan_users", get("num_users", 1))
        rate = get("rt_plan_spawn_rate", get("spawn_rate", 1.0))
        run_time = duration("rt_plan_run_time" if get("rt_plan_users") is not None else "run_time", "--duration")
        lifetime = duration("rt_session_lifetime", "--session-lifetime")
        try:
            plan = ShapePlan(
                shape=shape,
                users=int(users),
                spawn_rate=float(rate),
                duration=run_time,
                step_users=int(get("rt_step_users", 0)),
                step_duration=duration("rt_step_duration", "--step-duration", "30s") or 30.0,
                start_users=int(get("rt_start_users", 0)),
                spike_users=int(get("rt_spike_users", 0)),
                spike_at=duration("rt_spike_at", "--spike-at"),
                spike_duration=duration("rt_spike_duration", "--spike-duration", "30s") or 30.0,
            )
        except ValueError as exc:
            raise OptionError(f"load shape: {exc}") from None
        keep_audio = str(get("rt_keep_audio", "failed") or "failed")
        if keep_audio not in KEEP_MODES:
            raise OptionError(f"--keep-audio {keep_audio!r}: use one of {', '.join(KEEP_MODES)}")
        transport = str(get("rt_transport", "websocket") or "websocket").lower()
        check_transport(transport, provider, audio_format)
        mock_set = get("rt_mock_set", [])
        if isinstance(mock_set, str):
            mock_set = [s.strip() for s in mock_set.split(";") if s.strip()]
        for item in mock_set:
            if "=" not in item:
                raise OptionError(f"--mock-set {item!r}: use key=value, e.g. session.max_duration_s=3")
        return cls(
            target=target,
            provider=provider,
            dialect=dialect,
            deployment=deployment,
            api_key_env=key_env,
            auth=str(get("rt_auth", "auto")),
            api_version=get("rt_api_version"),
            query=query,
            label=str(get("rt_label", "")),
            scenario=str(get("rt_scenario", "")),
            fixture=str(get("rt_fixture", "")),
            modalities=modalities,
            audio_format=audio_format,
            pacing=pacing,
            stall_ms=float(get("rt_stall_ms", 1500.0)),
            keep_audio=keep_audio,
            transport=transport,
            deadline_s=float(duration("rt_deadline", "--deadline", "30s") or 30.0),
            session_lifetime_s=lifetime,
            reconnect_max_s=float(duration("rt_reconnect_max", "--reconnect-max", "30s") or 30.0),
            plan=plan,
            out=str(get("rt_out", "reports")),
            run_dir=str(get("rt_run_dir", "")),
            run_id=str(get("rt_run_id", "")),
            mock_profile=str(get("rt_mock_profile", "healthy")),
            mock_set=list(mock_set),
            health_interval_s=float(get("rt_health_interval", 1.0)),
            session_file=str(get("rt_session_file", "")),
            no_check=str(get("rt_no_check", "")).lower() in ("1", "true", "yes"),
            given={
                name: value
                for name, value in (("modalities", modalities), ("audio_format", audio_format))
                if get(f"rt_{name}") is not None
            },
            # the proxy URL may hold credentials: `rtload run` hands it to its children in RTLOAD_PROXY
            proxy=str(get("rt_proxy", "") or os.environ.get(PROXY_ENV, "")),
            ca_bundle=str(get("rt_ca_bundle", "")),
        )


def resolve_deployment(target: str, given: str) -> str:
    """The model or deployment a run uses and labels its rows with.

    A full URL's own ``?model=``/``deployment=`` wins over the default; an explicit ``--deployment``
    fills a full URL that names none (and is the name on a bare host, where the harness builds the
    path); the two disagreeing is an :class:`OptionError`. A full URL naming none, with no
    ``--deployment``, is used as it is and labelled "" (a gateway path may carry the name itself).
    """
    if target == "mock" or not is_full_url(target):
        return given or DEFAULT_DEPLOYMENT
    named = url_model(target)
    if named and given and named != given:
        raise OptionError(
            f"--deployment {given!r} differs from the {named!r} the --target URL names: "
            f"drop --deployment or make the two the same"
        )
    return named or given


TRANSPORT_CHOICES = ("websocket", "webrtc", "both")
WEBRTC_EXTRA = "webrtc"


def installed(name: str) -> bool:
    """``name`` can be imported (a module set to None in ``sys.modules`` is blocked: not installed)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_transport(transport: str, provider: str, audio_format: str) -> None:
    """--transport: known, possible for the target, and its packages installed (one line each)."""
    if transport not in TRANSPORT_CHOICES:
        raise OptionError(f"--transport {transport!r} is not known: use {', '.join(TRANSPORT_CHOICES)}")
    if transport == "websocket":
        return
    if provider == "voicelive":
        raise OptionError("--transport webrtc is for OpenAI and Azure OpenAI targets (/realtime/calls): not Voice Live")
    if audio_format != "pcm16":
        raise OptionError(f"--transport webrtc carries audio as Opus: use --audio-format pcm16, not {audio_format}")
    missing = [name for name in ("aiortc", "av") if not installed(name)]
    if missing:
        raise OptionError(
            f"--transport {transport} needs the '{WEBRTC_EXTRA}' extra ({', '.join(missing)} not installed): "
            f"pip install 'realtime-loadtest[{WEBRTC_EXTRA}]' (make install does it)"
        )


# (flag, dest, help, default) of every Locust option the harness adds; `rtload run` maps its own
# options onto these.
LOCUST_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--rt-target", "mock", "mock (the embedded mock server) or the service URL, e.g. wss://res.openai.azure.com"),
    ("--rt-provider", "", "openai | azure | voicelive | gateway (default: from the URL)"),
    ("--rt-dialect", "ga", "ga | preview"),
    ("--rt-deployment", "", "model (OpenAI) or deployment (Azure); fills a URL naming none (default gpt-realtime)"),
    ("--rt-api-key-env", "", "NAME of the environment variable holding the API key"),
    ("--rt-auth", "auto", "auto | bearer | api-key | entra"),
    ("--rt-api-version", "", "Azure preview or Voice Live api-version"),
    ("--rt-query", "", "Voice Live query parameters name=value (agent-name, agent-project-name, profile); ';' between"),
    ("--rt-label", "", "short label for the target in records and reports"),
    ("--rt-scenario", "", "scenario name (default: the session client's default)"),
    ("--rt-fixture", "", "audio fixture to use instead of the scenario's"),
    ("--rt-modalities", "", "requested output: audio | text (default: the session file's, else audio)"),
    ("--rt-audio-format", "", "pcm16 | g711_ulaw | g711_alaw (default: the session file's, else pcm16)"),
    ("--rt-pacing", "realtime", "realtime (audio sent at speaking pace) | fast"),
    ("--rt-stall-ms", "1500", "audio gap counted as a stall (ms)"),
    ("--rt-transport", "websocket", "websocket | webrtc | both (users alternate between the two by user id)"),
    ("--rt-keep-audio", "failed", "WAVs of what a caller heard: none | failed | sample (also 5% of completed)"),
    ("--rt-deadline", "30s", "time a response may take before it is a timeout"),
    ("--rt-session-lifetime", "", "recycle each session at this age (soak), e.g. 10m"),
    ("--rt-reconnect-max", "30s", "cap of the reconnect backoff (retry-after is honoured)"),
    ("--rt-shape", "constant", "constant | step | soak | spike"),
    ("--rt-step-users", "0", "users added per step (step shape; 0 = users/4)"),
    ("--rt-step-duration", "30s", "how long each step is held"),
    ("--rt-start-users", "0", "users of the first step (0 = step users)"),
    ("--rt-spike-users", "0", "users during the spike (0 = 3 x users)"),
    ("--rt-spike-at", "", "when the spike starts (default: a third of the duration)"),
    ("--rt-spike-duration", "30s", "how long the spike lasts"),
    ("--rt-out", "reports", "folder that receives the run directory"),
    ("--rt-run-dir", "", "exact run directory (default: <out>/<run id>)"),
    ("--rt-run-id", "", "run id (default: time-based)"),
    ("--rt-mock-profile", "healthy", "mock profile when --rt-target mock"),
    ("--rt-mock-set", "", "mock profile overrides: key=value, several separated by ';'"),
    ("--rt-mock-url", "", "with --rt-target mock: the URL of a mock already running (rtload run starts one)"),
    ("--rt-health-interval", "1", "seconds between harness health samples"),
    ("--rt-session-file", "", "the session object (JSON) your agent sends in session.update"),
    ("--rt-no-check", "", "1: skip preflight's static checks of the session file"),
    ("--rt-proxy", "", "HTTP CONNECT proxy URL (default: HTTPS_PROXY/HTTP_PROXY minus NO_PROXY; 'none': direct)"),
    ("--rt-ca-bundle", "", "PEM file of extra CA certificates to trust (default: SSL_CERT_FILE or the system's)"),
)


UI_OPTIONS = frozenset({"--rt-target", "--rt-deployment", "--rt-scenario", "--rt-shape", "--rt-step-duration"})


def register(parser: Any) -> None:
    """Add the ``--rt-*`` options to Locust's argument parser (a few also show in the web UI form)."""
    for flag, default, help_text in LOCUST_OPTIONS:
        parser.add_argument(flag, type=str, default=default, help=help_text, include_in_web_ui=flag in UI_OPTIONS)
