"""The lean RTP lane: its parser against aiortc's serializer, its clock's pacing, and packets between
two real aiortc peers on loopback (sent by the lane, received by the lane and by aiortc's own
receiver)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("aiortc")

from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from loadtest.audio.rtp_lane import PacketClock, RtpOut, is_rtcp, parse, run_now, tap_ice


def _extensions_map() -> HeaderExtensionsMap:
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
    ]))  # fmt: skip
    return extensions


@given(
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(min_size=0, max_size=200),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    mid=st.sampled_from([None, "0", "audio"]),
    send_time=st.one_of(st.none(), st.integers(0, 0xFFFFFF)),
    padding=st.integers(0, 40),
)
def test_parse_reads_what_aiortc_serializes(sequence: int, timestamp: int, payload: bytes, csrc: list[int],
                                            mid: str | None, send_time: int | None, padding: int) -> None:  # fmt: skip
    packet = RtpPacket(payload_type=111, sequence_number=sequence, timestamp=timestamp, ssrc=7)
    packet.csrc = csrc
    packet.payload = payload
    packet.extensions.mid = mid
    packet.extensions.abs_send_time = send_time
    packet.padding_size = padding
    data = packet.serialize(_extensions_map())
    assert parse(data) == (payload, timestamp, sequence)
    assert not is_rtcp(data)


def test_parse_refuses_what_is_not_rtp() -> None:
    good = RtpPacket(payload_type=111, sequence_number=1, timestamp=2, ssrc=3, payload=b"abc").serialize()
    assert parse(good) == (b"abc", 2, 1)
    assert parse(good[:11]) is None  # shorter than a header
    assert parse(bytes([0x40]) + good[1:]) is None  # version 1
    assert parse(bytes([good[0] | 0x0F]) + good[1:]) is None  # 15 CSRCs announced, none there
    assert parse(bytes([good[0] | 0x20]) + good[1:-1] + b"\xff") is None  # more padding than packet
    assert is_rtcp(bytes([0x80, 200]) + bytes(26))  # a sender report


class _Srtp:
    def unprotect(self, data: bytes) -> bytes:
        if data.endswith(b"bad-tag"):
            import pylibsrtp

            raise pylibsrtp.Error("authentication failed")
        return data


def test_tap_ice_takes_srtp_and_leaves_the_rest_to_aiortc() -> None:
    queued: list[bytes] = []
    taken: list[tuple[bytes, int, int]] = []
    connection = type("Connection", (), {})()
    connection.data_received = lambda data, component: queued.append(data)
    ice_transport = type("Ice", (), {"_connection": connection})()
    dtls = type("Dtls", (), {"_rx_srtp": None})()
    dropped: list[int] = []
    tap_ice(
        ice_transport, dtls, lambda payload, ts, seq, arrival: taken.append((payload, ts, seq)),
        on_dropped=lambda: dropped.append(1),
    )  # fmt: skip
    rtp = RtpPacket(payload_type=111, sequence_number=9, timestamp=960, ssrc=5, payload=b"opus").serialize()
    connection.data_received(rtp, 1)  # before DTLS gave keys: aiortc's way
    dtls._rx_srtp = _Srtp()
    for other in (b"", bytes([22, 254, 253]) + bytes(10), bytes([0x80, 200]) + bytes(26)):  # empty, DTLS, RTCP
        connection.data_received(other, 1)
    connection.data_received(rtp, 1)
    connection.data_received(rtp + b"bad-tag", 1)  # fails authentication: dropped, as aiortc drops it
    connection.data_received(bytes([0x80, 111, 0]), 1)  # authentic (here) but too short to be RTP: dropped
    assert queued == [rtp, b"", bytes([22, 254, 253]) + bytes(10), bytes([0x80, 200]) + bytes(26)]
    assert taken == [(b"opus", 960, 9)]
    assert len(dropped) == 2  # each counted (the session's rtp_dropped)


def test_run_now_refuses_a_coroutine_that_suspends() -> None:
    async def quick() -> int:
        return 3

    async def slow() -> None:
        await asyncio.sleep(0.01)

    assert run_now(quick()) == 3
    with pytest.raises(RuntimeError, match="suspended"):
        asyncio.run(_in_loop(lambda: run_now(slow())))


async def _in_loop(fn: Any) -> Any:
    return fn()


class _Line:
    def __init__(self, clock: PacketClock, dues: list[float]) -> None:
        self.clock, self.dues, self.sent, self.late = clock, dues, [], []

    def pump(self, now: float) -> float | None:
        loop_now = asyncio.get_running_loop().time()
        while self.dues and self.dues[0] <= now:
            due = self.dues.pop(0)
            self.sent.append(due)
            self.late.append(loop_now - due)
        return self.dues[0] if self.dues else None


def test_the_clock_paces_every_line_on_one_timer_at_most_a_tick_late() -> None:
    async def main() -> tuple[list[_Line], PacketClock]:
        clock = PacketClock(tick_s=0.005)
        t0 = asyncio.get_running_loop().time() + 0.01
        # 40 calls whose packets are due every 20 ms, half a millisecond apart from one another
        lines = [_Line(clock, [t0 + 0.0005 * i + 0.02 * k for k in range(15)]) for i in range(40)]
        for line in lines:
            clock.wake(line, line.dues[0])
        await asyncio.sleep(0.45)
        return lines, clock

    lines, clock = asyncio.run(main())
    for line in lines:
        assert not line.dues and len(line.sent) == 15
        assert min(line.late) >= -0.001  # never early
        assert sorted(line.late)[-2] < 0.02  # at most a tick late (and a busy test machine's wake-up)
    # 600 packets over 0.32 s on one timer that fires at most once per tick
    assert clock.ticks <= 0.32 / 0.005 + 3


class _Ending(_Line):
    """A line whose call ends while it sends (it forgets itself, as a stopped track does)."""

    def pump(self, now: float) -> float | None:
        due = super().pump(now)
        if len(self.sent) == 3:
            self.clock.forget(self)
        return due


def test_a_line_ending_while_it_sends_leaves_the_clock_running_for_the_others() -> None:
    async def main() -> tuple[_Line, _Ending]:
        clock = PacketClock(tick_s=0.005)
        t0 = asyncio.get_running_loop().time() + 0.01
        steady = _Line(clock, [t0 + 0.02 * k for k in range(10)])
        ending = _Ending(clock, [t0 + 0.02 * k for k in range(10)])
        clock.wake(steady, steady.dues[0])
        clock.wake(ending, ending.dues[0])
        await asyncio.sleep(0.3)
        return steady, ending

    steady, ending = asyncio.run(main())
    assert len(ending.sent) == 3 and len(steady.sent) == 10


async def _connect(caller: Any, callee: Any, out: RtpOut) -> None:
    """The callee's answer to the caller, then wait for the connection and for aiortc to start the
    lane's sender (just after DTLS)."""
    connected = asyncio.Event()

    @caller.on("connectionstatechange")
    def on_state() -> None:
        if caller.connectionState == "connected":
            connected.set()

    await caller.setRemoteDescription(callee.localDescription)
    await asyncio.wait_for(connected.wait(), 10)
    while out.header is None:
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("receiver", ["lane", "aiortc"])
def test_lane_packets_reach_a_real_aiortc_peer(receiver: str) -> None:
    """The caller's packets go out through RtpOut on the clock; the callee takes them off ICE with
    tap_ice, or through aiortc's own receiver: the same payloads in order, sequence numbers
    contiguous, RTP time that jumps across a pause, a marker at each talkspurt."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    from loadtest.mock import ice
    from loadtest.session.rtc_media import CallerTrack

    first = [bytes([0xF8, k]) * 20 for k in range(20)]
    second = [bytes([0xF8, 100 + k]) * 20 for k in range(10)]
    got: list[tuple[bytes, int, int, float]] = []
    markers: list[int] = []

    async def main() -> tuple[Any, Any]:
        ice.use_host_addresses(["127.0.0.1"])  # (this task's peers only)
        clock = PacketClock()
        caller = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        callee = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = CallerTrack(clock=clock)
        sending = caller.addTransceiver(track, direction="sendonly")
        out = track.out = RtpOut(sending.sender, sequence=65530, timestamp_origin=0xFFFFFF00)

        @callee.on("track")
        def on_track(remote: Any) -> None:
            transceiver = next(t for t in callee.getTransceivers() if t.receiver.track is remote)
            if receiver == "aiortc":  # (aiortc's receiver routes the packet to its handler)

                async def handle(packet: Any, arrival_time_ms: int) -> None:
                    got.append((packet.payload, packet.timestamp, packet.sequence_number, 0.0))

                transceiver.receiver._handle_rtp_packet = handle
                original = transceiver.receiver.transport._handle_rtp_data

                async def spy(data: bytes, arrival_time_ms: int) -> None:
                    markers.append(data[1] >> 7)
                    await original(data, arrival_time_ms)

                transceiver.receiver.transport._handle_rtp_data = spy

        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        if receiver == "lane":
            dtls = callee.getTransceivers()[0].receiver.transport

            def on_rtp(payload: bytes, timestamp: int, sequence: int, arrival: float) -> None:
                got.append((payload, timestamp, sequence, arrival))

            tap_ice(dtls.transport, dtls, on_rtp)
        await _connect(caller, callee, out)
        track.push(first)
        await asyncio.sleep(0.5)
        track.push(second)
        await asyncio.sleep(0.4)
        stats = await caller.getStats()
        await caller.close()
        await callee.close()
        return out, stats

    t0 = time.time()
    out, stats = asyncio.run(main())
    assert [packet[0] for packet in got] == first + second
    assert [packet[2] for packet in got] == [(65530 + k) & 0xFFFF for k in range(30)]
    stamps = [(packet[1] - 0xFFFFFF00) & 0xFFFFFFFF for packet in got]
    assert stamps[:20] == [960 * k for k in range(20)]
    assert stamps[20] - stamps[19] >= 960 * 3  # the pause between the two pushes
    assert stamps[20:] == [stamps[20] + 960 * k for k in range(10)]
    if receiver == "lane":
        spacing = [b[3] - a[3] for a, b in itertools.pairwise(got[1:20])]
        assert sorted(spacing)[len(spacing) // 2] == pytest.approx(0.020, abs=0.006)  # paced, not a burst
        assert all(t0 < packet[3] < time.time() for packet in got)
    else:
        assert markers[0] == 1 and markers[20] == 1 and sum(markers) == 2  # a marker per talkspurt
    assert out.packets == 30 and out.dropped == 0
    sent = [s for s in stats.values() if getattr(s, "type", "") == "outbound-rtp"]
    assert sent and sent[0].packetsSent == 30  # the sender's own counters (its RTCP reports) moved


def _arrivals(sequences: list[int], origin: int) -> list[tuple[int, int, float]]:
    """(sequence, timestamp, arrival) of packets sent 20 ms apart (48 kHz RTP clock, timestamps
    from ``origin``), arriving in the order given, one every 20 ms."""
    first = sequences[0]
    return [(seq, (origin + ((seq - first) & 0xFFFF) * 960) & 0xFFFFFFFF, 1000.0 + k * 0.02)
            for k, seq in enumerate(sequences)]  # fmt: skip


@pytest.mark.parametrize(
    ("order", "origin"),
    [
        ([(65530 + k) & 0xFFFF for k in range(20)], 0xFFFFF000),  # in order; sequence and timestamp wrap
        ([(65530 + k) & 0xFFFF for k in (0, 1, 2, 4, 5, 3, 6, 6, 9, 10, 11, 12)], 0),  # late, repeated, lost
    ],
    ids=["in-order-wrapping", "late-repeated-lost"],
)
def test_received_stream_counts_what_aiortc_counts(
    order: list[int], origin: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiortc.rtcrtpreceiver import StreamStatistics

    from loadtest.audio.rtp_lane import received_stream_class

    ours, theirs = received_stream_class()(48000), StreamStatistics(48000)
    for seq, ts, arrival in _arrivals(order, origin):
        ours.take(seq, ts, arrival)
        monkeypatch.setattr(time, "time", lambda a=arrival: a)  # aiortc's add reads the clock itself
        theirs.add(RtpPacket(payload_type=111, sequence_number=seq, timestamp=ts, ssrc=7))
    monkeypatch.undo()
    for name in ("packets_received", "base_seq", "max_seq", "cycles", "packets_expected", "packets_lost"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.fraction_lost == theirs.fraction_lost
    if origin:  # every packet on time: no jitter, across the timestamp's wrap too, where aiortc's own
        # add (timestamps subtracted without the modulo) counts a jump of 2^32
        assert (ours.cycles, ours.packets_lost, ours.jitter) == (1 << 16, 0, 0)
        assert theirs.jitter > 1_000_000
    else:  # 13 expected (65530..6), 12 received (one twice: RFC 3550 counts it), jitter from the gaps
        assert (ours.packets_expected, ours.packets_received, ours.packets_lost) == (13, 12, 1)
        assert ours.jitter == theirs.jitter > 0


def test_the_lane_sends_receiver_reports_a_real_aiortc_sender_reads() -> None:
    """The callee takes the caller's packets with tap_ice and its receiver: aiortc's RTCP task
    reports on them (before, the lane left its statistics empty and no receiver report went out).
    The caller's sender reads them: its remote-inbound-rtp stats, no packet lost, and a round-trip
    time once a report answers one of its sender reports (routed to the callee's receiver)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    from loadtest.mock import ice
    from loadtest.session.rtc_media import CallerTrack

    got: list[int] = []

    async def main() -> tuple[dict[str, Any], Any]:
        ice.use_host_addresses(["127.0.0.1"])
        clock = PacketClock()
        caller = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        callee = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = CallerTrack(clock=clock)
        sending = caller.addTransceiver(track, direction="sendonly")
        out = track.out = RtpOut(sending.sender)
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        receiving = callee.getTransceivers()[0]
        dtls = receiving.receiver.transport
        tap_ice(dtls.transport, dtls, lambda payload, ts, seq, arrival: got.append(seq), receiver=receiving.receiver)
        await _connect(caller, callee, out)
        remote: dict[str, Any] = {}
        deadline = time.monotonic() + 8  # reports go out every 0.5-1.5 s: a round trip takes a few
        while time.monotonic() < deadline and remote.get("roundTripTime") is None:
            track.push([bytes([0xF8, 1]) * 20] * 25)  # half a second of packets
            await asyncio.sleep(0.5)
            stats = await caller.getStats()
            remote = next((vars(s) for s in stats.values() if s.type == "remote-inbound-rtp"), {})
        inbound = next((vars(s) for s in (await callee.getStats()).values() if s.type == "inbound-rtp"), {})
        await caller.close()
        await callee.close()
        return remote, inbound

    remote, inbound = asyncio.run(main())
    assert remote, "the caller's sender got no receiver report"
    assert remote["packetsLost"] == 0 and remote["fractionLost"] == 0, remote
    assert remote["roundTripTime"] is not None and 0 <= remote["roundTripTime"] < 0.5, remote
    assert inbound.get("packetsReceived") == len(got) > 0 and inbound["packetsLost"] == 0, inbound


def test_a_server_that_changes_ssrc_on_every_packet_cannot_grow_the_receivers_statistics() -> None:
    """Each new SSRC became a stream the receiver reports on and the router routes: a misbehaving
    server sending authentic packets under ever new SSRCs grew both without bound (50 a second a
    call; and an RTCP receiver report holds at most 31 report blocks). The first few are kept."""
    from types import SimpleNamespace

    from loadtest.audio.rtp_lane import MAX_STREAMS

    connection = SimpleNamespace(data_received=lambda data, component: None)
    streams: dict[int, Any] = {}
    receiver = SimpleNamespace(_RTCRtpReceiver__remote_streams=streams)
    dtls = SimpleNamespace(_rx_srtp=_Srtp(), _rtp_router=SimpleNamespace(ssrc_table={}))
    taken: list[int] = []
    tap_ice(SimpleNamespace(_connection=connection), dtls, lambda p, ts, seq, a: taken.append(seq), receiver=receiver)
    for k in range(200):
        packet = RtpPacket(payload_type=111, sequence_number=k, timestamp=960 * k, ssrc=1000 + k, payload=b"opus")
        connection.data_received(packet.serialize(), 1)
    steady = RtpPacket(payload_type=111, sequence_number=7, timestamp=0, ssrc=1000, payload=b"opus").serialize()
    connection.data_received(steady, 1)  # the first stream is still counted
    assert taken == [*range(200), 7]  # every packet's audio still goes on
    assert sorted(streams) == list(range(1000, 1000 + MAX_STREAMS)) and MAX_STREAMS <= 31
    assert sorted(dtls._rtp_router.ssrc_table) == sorted(streams)
    assert streams[1000].packets_received == 2
