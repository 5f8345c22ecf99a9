"""The harness as shipped (RealtimeUser, shapes, records, health); the bench's stream shape is the
scenario file ``bench_stream.toml`` beside this file (``--rt-scenario`` names it)."""

from loadtest.locust.harness import install
from loadtest.locust.shape import RealtimeShape
from loadtest.locust.user import RealtimeUser

install()

__all__ = ["RealtimeShape", "RealtimeUser"]
