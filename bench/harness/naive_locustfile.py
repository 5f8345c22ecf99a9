"""The naive peer: a Locust user written the common way (websocket-client defaults, stdlib json).

Each user connects with ``websocket.create_connection``, reads every message in a greenlet with
``json.loads``, and sends a 100 ms PCM16 append with ``json.dumps`` then sleeps 100 ms, in a loop.
Users are added in steps by a LoadTestShape (``NAIVE_STEPS`` users, ``NAIVE_STEP_S`` seconds each).
"""

import base64
import json
import os

import gevent
import websocket
from locust import LoadTestShape, User, constant, task

AUDIO = base64.b64encode(bytes(4800)).decode()
STEPS = [int(x) for x in os.environ.get("NAIVE_STEPS", "50,100,150").split(",")]
STEP_S = float(os.environ.get("NAIVE_STEP_S", "15"))


class NaiveRealtimeUser(User):
    wait_time = constant(0)

    def on_start(self):
        self.ws = websocket.create_connection(self.host)
        self.reader = gevent.spawn(self.read)

    def read(self):
        while True:
            try:
                json.loads(self.ws.recv())
            except Exception:
                return

    @task
    def stream(self):
        self.ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": AUDIO}))
        gevent.sleep(0.1)

    def on_stop(self):
        self.reader.kill(block=False)
        self.ws.close()


class Steps(LoadTestShape):
    def tick(self):
        index = int(self.get_run_time() // STEP_S)
        if index >= len(STEPS):
            return None
        return STEPS[index], 100
