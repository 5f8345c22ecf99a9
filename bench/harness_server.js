// The lean Realtime peer for bench/bench_harness.py (Node + ws, one process, pinned to its own core).
//
// Stream shape of the benchmark: the client sends a 100 ms PCM16 `input_audio_buffer.append`
// every 100 ms; the server answers each append with one 100 ms `response.output_audio.delta`.
// It speaks enough of the GA protocol for the harness's session client: `session.created`,
// `session.updated`, a response opened at the first append of a turn (`response.created`,
// output item and audio content part), one delta per append, and, once appends pause for
// IDLE_MS (the client's turn ended), `input_audio_buffer.committed` and the response's done events.
// Messages are pre-built; the server never decodes the audio.
//
// Every second it prints one JSON line of counters on stdout: connections, appends and deltas,
// and how many appends arrived more than LATE_MS after the previous one of the same stream
// (the peer-neutral on-time measure; gaps across a response boundary are not counted).
"use strict";
const fs = require("fs");
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] || 0);
const IDLE_MS = Number(process.env.IDLE_MS || 250);
const LATE_MS = 120; // 100 ms cadence + 20 ms
const AUDIO = Buffer.alloc(4800, 1).toString("base64"); // 100 ms of PCM16 at 24 kHz

// TRUTH=file: one JSON line per response with the send time of its first delta (Unix seconds)
const truth = process.env.TRUTH ? fs.createWriteStream(process.env.TRUTH, { flags: "a" }) : null;
// Wall clock for the truth lines: performance.now() (sub-ms, monotonic) plus an offset taken at a tick
// of Date.now() (performance.timeOrigin alone can be off by milliseconds), re-taken every 5 s.
function wallOffsetMs() {
  const d0 = Date.now();
  let d;
  let p;
  do {
    p = performance.now();
    d = Date.now();
  } while (d === d0);
  return d - p;
}
let wallOffset = wallOffsetMs();
setInterval(() => {
  wallOffset = wallOffsetMs();
}, 5000);
let seq = 0;
const stats = { conns: 0, appends: 0, deltas: 0, gaps: 0, late: 0, responses: 0, opened: 0, closed: 0 };

function id(prefix) {
  seq += 1;
  return `${prefix}_${seq.toString(16).padStart(20, "0")}`;
}

// TLS_CERT and TLS_KEY (PEM files): serve wss:// (the same peer over TLS, for the TLS ladder)
let wss;
if (process.env.TLS_CERT && process.env.TLS_KEY) {
  const https = require("https");
  const server = https.createServer({ cert: fs.readFileSync(process.env.TLS_CERT), key: fs.readFileSync(process.env.TLS_KEY) });
  wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 16 << 20 });
  server.listen(port, "127.0.0.1", () => {
    process.stdout.write(`harness_server: listening on wss://127.0.0.1:${server.address().port}\n`);
  });
} else {
  wss = new WebSocketServer({ port, host: "127.0.0.1", perMessageDeflate: false, maxPayload: 16 << 20 });
  wss.on("listening", () => {
    process.stdout.write(`harness_server: listening on ws://127.0.0.1:${wss.address().port}\n`);
  });
}

wss.on("connection", (ws) => {
  stats.conns += 1;
  stats.opened += 1;
  const session = id("sess");
  const st = { resp: null, deltaHead: null, last: 0, timer: null, items: 0 };
  ws.send(JSON.stringify({ type: "session.created", event_id: id("event"), session: { id: session, type: "realtime", object: "realtime.session", model: "gpt-realtime", output_modalities: ["audio"] } }));

  function endResponse() {
    st.timer = null;
    if (!st.resp || ws.readyState !== 1) return;
    const r = st.resp;
    const item = st.item;
    ws.send(JSON.stringify({ type: "input_audio_buffer.speech_stopped", event_id: id("event"), audio_end_ms: 0, item_id: id("item") }));
    ws.send(JSON.stringify({ type: "input_audio_buffer.committed", event_id: id("event"), previous_item_id: null, item_id: id("item") }));
    ws.send(JSON.stringify({ type: "response.output_audio.done", event_id: id("event"), response_id: r, item_id: item, output_index: 0, content_index: 0 }));
    ws.send(JSON.stringify({ type: "response.content_part.done", event_id: id("event"), response_id: r, item_id: item, output_index: 0, content_index: 0, part: { type: "audio", transcript: "" } }));
    ws.send(JSON.stringify({ type: "response.output_item.done", event_id: id("event"), response_id: r, output_index: 0, item: { id: item, object: "realtime.item", type: "message", status: "completed", role: "assistant", content: [{ type: "output_audio", transcript: "" }] } }));
    ws.send(JSON.stringify({ type: "response.done", event_id: id("event"), response: { id: r, object: "realtime.response", status: "completed", status_details: null, output: [], usage: { total_tokens: 2, input_tokens: 1, output_tokens: 1 } } }));
    st.resp = null;
    st.last = 0; // a new response starts a new stream: no gap across the boundary
    stats.responses += 1;
  }

  ws.on("message", (data) => {
    // appends are by far the most frequent message: recognise them without parsing the audio
    const head = data.subarray(0, 48).toString("latin1");
    if (head.includes('"input_audio_buffer.append"')) {
      const now = performance.now();
      stats.appends += 1;
      if (st.last) {
        stats.gaps += 1;
        if (now - st.last > LATE_MS) stats.late += 1;
      }
      st.last = now;
      if (!st.resp) {
        st.resp = id("resp");
        st.item = id("item");
        ws.send(JSON.stringify({ type: "input_audio_buffer.speech_started", event_id: id("event"), audio_start_ms: 0, item_id: id("item") }));
        ws.send(JSON.stringify({ type: "response.created", event_id: id("event"), response: { id: st.resp, object: "realtime.response", status: "in_progress", output: [] } }));
        ws.send(JSON.stringify({ type: "response.output_item.added", event_id: id("event"), response_id: st.resp, output_index: 0, item: { id: st.item, object: "realtime.item", type: "message", status: "in_progress", role: "assistant", content: [] } }));
        ws.send(JSON.stringify({ type: "response.content_part.added", event_id: id("event"), response_id: st.resp, item_id: st.item, output_index: 0, content_index: 0, part: { type: "audio", transcript: "" } }));
        st.truthDone = false;
        st.deltaHead = `{"type":"response.output_audio.delta","response_id":"${st.resp}","item_id":"${st.item}","output_index":0,"content_index":0,"event_id":"`;
      }
      if (truth && !st.truthDone) {
        // t_first_delta: when send() returned; t_written: when the socket took the bytes (the send
        // callback). Over TLS, Node encrypts and writes a burst's frames later than send() returns.
        st.truthDone = true;
        const resp = st.resp;
        let sent = 0;
        ws.send(st.deltaHead + id("event") + `","delta":"${AUDIO}"}`, () => {
          truth.write(JSON.stringify({ response_id: resp, t_first_delta: sent / 1000, t_written: (wallOffset + performance.now()) / 1000 }) + "\n");
        });
        sent = wallOffset + performance.now();
      } else {
        ws.send(st.deltaHead + id("event") + `","delta":"${AUDIO}"}`);
      }
      stats.deltas += 1;
      if (st.timer) clearTimeout(st.timer);
      st.timer = setTimeout(endResponse, IDLE_MS);
      return;
    }
    let event;
    try {
      event = JSON.parse(data.toString("utf8"));
    } catch (e) {
      return;
    }
    if (event.type === "session.update") {
      ws.send(JSON.stringify({ type: "session.updated", event_id: id("event"), session: { id: session, type: "realtime", object: "realtime.session", ...(event.session || {}) } }));
    } else if (event.type === "response.cancel" && st.resp) {
      endResponse();
    }
  });
  ws.on("close", () => {
    stats.conns -= 1;
    stats.closed += 1;
    if (st.timer) clearTimeout(st.timer);
  });
  ws.on("error", () => {});
});

let lastCpu = process.cpuUsage();
let lastT = performance.now();
setInterval(() => {
  const cpu = process.cpuUsage(lastCpu);
  const now = performance.now();
  const pct = (100 * (cpu.user + cpu.system)) / 1000 / (now - lastT);
  lastCpu = process.cpuUsage();
  lastT = now;
  process.stdout.write(JSON.stringify({ t: Date.now() / 1000, cpu_percent: Math.round(pct * 10) / 10, ...stats }) + "\n");
}, 1000);

process.on("SIGTERM", () => process.exit(0));
