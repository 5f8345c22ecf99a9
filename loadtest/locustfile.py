"""The locustfile: ``locust -f loadtest/locustfile.py`` (headless or web UI, standalone or distributed).

Options are Locust command-line options prefixed ``--rt-`` (``locust -f loadtest/locustfile.py
--help`` lists them); ``rtload run`` wraps the same file. Example::

    locust -f loadtest/locustfile.py --headless -u 10 -r 5 -t 1m --rt-target mock --rt-shape step
"""

from loadtest.locust.harness import install
from loadtest.locust.shape import RealtimeShape
from loadtest.locust.user import RealtimeUser

install()

__all__ = ["RealtimeShape", "RealtimeUser"]
