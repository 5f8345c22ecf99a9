"""The Realtime session client: connect, stream a scenario, track each response, classify its outcome.

The session core (no sockets):

- ``config``: :class:`SessionConfig` (what to ask for, pacing, waits, classifier thresholds)
- ``scenario``: :class:`Turn`, :class:`Scenario`, the built-in ``SCENARIOS``
- ``client``: :class:`RealtimeSession` (reconnects, turns, barge-in), over a ``connection``
  (its transport, router and state, the receive path and the waits)
- ``router``: the session's :class:`EventRouter` (events to responses, deadlines, endings)
- ``tracker``: per-response :class:`ResponseTracker`; ``trace``: its bounded event ring
- ``classifier``: the pure outcome classifier (:func:`classify`)
- ``audio_send``: the audio send loop; ``recording``: record building and redaction;
  ``timeline``: the observer's rows; ``endings``: how a session ended
- ``sink``: the :class:`RecordSink` protocol and :class:`MemorySink`
- ``runner``: :func:`run_once` for preflight (records plus the event timeline)

The seam and what carries the events:

- ``link``: the :class:`Transport` interface the core talks to (and ``Handshake``, ``CloseInfo``,
  the shared receiver's ``ReadSource``/``SharedReceiver`` seams)
- ``wire``: the WebSocket client protocol without I/O (handshake, frame cutting, masking, close)
- ``transport``: the WebSocket over a (gevent-patched) socket, an I/O shell over ``wire``
- ``webrtc``: a WebRTC call (the ``webrtc`` extra, imported only when asked for), over
  ``rtc_calls`` (the providers' set-up forms, no I/O), ``rtc_answer`` (the answer as the core's
  events, no I/O), ``rtc_media`` (Opus out and in) and ``rtc_loop`` (aiortc's asyncio loop in one
  OS thread per process, handed to gevent through async watchers)

The process's shared parts, owned by one :class:`~loadtest.session.runtime.SessionRuntime`:

- ``runtime``: the audio clock, the shared receiver and the process figures (frame lag, receive
  lag, open sessions); makes transports
- ``pacer``: the audio clock under gevent (every paced session's due frames, one timer)
- ``reactor``: the epoll receiver under gevent (reads every ready plain connection)
- ``concurrency``: greenlets under gevent, threads otherwise (and waits that leave no garbage);
  ``lagstats``: lateness figures
"""
