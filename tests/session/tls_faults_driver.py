"""Run in a subprocess by test_tls.py: sessions under gevent against TLS peers that misbehave.

``argv[1]`` is a JSON object {name: wss:// URL} (the test's raw TLS servers, trusted through
SSL_CERT_FILE); one session of one text turn runs against each at once, all read by the process's
shared receiver. Prints one JSON line: each session's response outcomes and how it ended.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from loadtest.protocol.targets import Target  # noqa: E402
from loadtest.session.client import RealtimeSession  # noqa: E402
from loadtest.session.config import SessionConfig  # noqa: E402
from loadtest.session.runtime import process_runtime  # noqa: E402
from loadtest.session.scenario import Scenario, Turn  # noqa: E402
from loadtest.session.sink import MemorySink  # noqa: E402


def main() -> None:
    urls: dict[str, str] = json.loads(sys.argv[1])
    config = SessionConfig(
        output_modalities=["text"], setup_timeout_s=3, response_deadline_s=1.5, response_idle_s=1.0, close_timeout_s=1
    )
    sinks = {name: MemorySink() for name in urls}
    sessions = [
        RealtimeSession(
            Target(base_url=url, api_key="mock-key", label=name), Scenario(name, [Turn("text")]), config, sinks[name]
        )
        for name, url in urls.items()
    ]
    gevent.joinall([gevent.spawn(s.run) for s in sessions], timeout=20)
    reactor = process_runtime().reactor
    out = {
        name: {
            "responses": [[r.outcome, r.reason, r.close_code] for r in sink.responses],
            "sessions": [[s.ended_by, s.close_code, s.close_reason] for s in sink.sessions],
        }
        for name, sink in sinks.items()
    }
    out["_reactor"] = {"reads": reactor.reads if reactor else 0, "watching": reactor.watching if reactor else -1}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
