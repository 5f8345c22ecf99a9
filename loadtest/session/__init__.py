"""The Realtime session client: connect, stream a scenario, track each response, classify its outcome.

- ``config``: :class:`SessionConfig` (what to ask for, pacing, waits, classifier thresholds)
- ``scenario``: :class:`Turn`, :class:`Scenario`, the built-in ``SCENARIOS``
- ``transport``: one WebSocket over a (gevent-patched) socket: websockets' Sans-I/O protocol for the
  upgrade and control frames, data frames cut directly
- ``tracker``: per-response :class:`ResponseTracker` and the session's :class:`EventRouter`
- ``classifier``: the pure outcome classifier (:func:`classify`)
- ``client``: :class:`RealtimeSession` (and the process-wide audio clock stats ``AUDIO_CLOCK``)
- ``sink``: the :class:`RecordSink` protocol and :class:`MemorySink`
- ``runner``: :func:`run_once` for preflight (records plus the event timeline)
- ``concurrency``: greenlets under gevent, threads otherwise (and waits that leave no garbage)
- ``pacer``: the process's one audio clock under gevent (every paced session's due frames, one timer)
- ``reactor``: the process's one epoll receiver under gevent (reads every ready connection)
"""
