"""The harness as shipped (RealtimeUser, shapes, records, health) with one bench-only scenario.

``bench_stream``: one long spoken turn over server VAD, repeated: a 100 ms PCM16 append every
100 ms on the audio clock, one audio delta back per append from bench/harness_server.js.
"""

from loadtest.locust.harness import install
from loadtest.locust.shape import RealtimeShape
from loadtest.locust.user import RealtimeUser
from loadtest.session.scenario import SCENARIOS, Scenario, Turn

SCENARIOS["bench_stream"] = Scenario(
    "bench_stream", [Turn("server_vad", "long_router_problem")], repeat=True, description="bench stream shape"
)
install()

__all__ = ["RealtimeShape", "RealtimeUser"]
