"""The TLS layer alone (:class:`loadtest.session.tls.TLSLayer`) against an in-process TLS server
over memory: every byte of plaintext each feed completes comes out, whatever the records' cut
(several in one read, one split over reads, more than one record's worth), and the stream's end,
a close_notify and a bad record each end it the right way. Its read loop stops on empty buffers
rather than on a failed read, so these pin what that must not change. Every test runs with the
layer's own BIOs and with its thread's shared pair; the shared pair's own tests interleave many
layers' records, cut anywhere, and check that no layer ever sees another's bytes or end."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtest.session.tls import EOF, TLSLayer, thread_bios
from tests.support import self_signed


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = self_signed(Path(tmp_path_factory.mktemp("tls_layer")))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


@pytest.fixture(params=[False, True], ids=["own_bios", "shared_bios"])
def shared(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


class Pair:
    def __init__(self, contexts: tuple[ssl.SSLContext, ssl.SSLContext], shared: bool = False) -> None:
        server_ctx, client_ctx = contexts
        self.sin, self.sout = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.server = server_ctx.wrap_bio(self.sin, self.sout, server_side=True)
        self.client = TLSLayer(client_ctx, "127.0.0.1", shared=shared)
        done, served = self.client.handshake(), False
        for _ in range(10):
            if self.client.has_outgoing:
                self.sin.write(self.client.outgoing())
            if not served:
                with contextlib.suppress(ssl.SSLWantReadError):
                    self.server.do_handshake()
                    served = True
            if self.sout.pending:
                done = self.client.handshake(self.sout.read())
            if done and served:
                break
        assert done and served
        assert_bios_empty()

    def records(self, *plaintexts: bytes) -> bytes:
        for p in plaintexts:
            self.server.write(p)
        return self.sout.read()

    def served(self, records: bytes) -> bytes:
        """The plaintext the server reads from the client's ``records``."""
        self.sin.write(records)
        got = b""
        with contextlib.suppress(ssl.SSLWantReadError):
            while True:
                got += self.server.read(65536)
        return got


def assert_bios_empty() -> None:
    """The thread's shared pair holds nothing between two calls (whoever made them)."""
    incoming, outgoing = thread_bios()
    assert incoming.pending == 0 and outgoing.pending == 0


def test_every_record_of_a_read_comes_out_in_order(contexts, shared) -> None:
    pair = Pair(contexts, shared)
    parts = [bytes([65 + i]) * (6608 + i) for i in range(4)]
    # the tickets and four records (one > 16 KiB, so two records of it) in one read
    data = pair.records(*parts, b"z" * 20000)
    plain, ending = pair.client.decrypt(data)
    assert plain == b"".join(parts) + b"z" * 20000 and ending is None


def test_a_record_split_over_reads_comes_out_once_whole(contexts, shared) -> None:
    pair = Pair(contexts, shared)
    pair.client.decrypt(pair.records(b"first"))
    data = pair.records(b"x" * 6608, b"y" * 100)
    got = b""
    for start, end in ((0, 3), (3, 1000), (1000, 3000), (3000, len(data))):  # a header split, the body in pieces
        plain, ending = pair.client.decrypt(data[start:end])
        assert ending is None
        got += plain
        if end < 3000:
            assert plain == b""  # nothing of a record comes out before it is whole
    assert got == b"x" * 6608 + b"y" * 100


def test_a_view_of_a_reused_buffer_is_copied_in(contexts, shared) -> None:
    pair = Pair(contexts, shared)
    pair.client.decrypt(pair.records(b"first"))
    data = pair.records(b"payload" * 900)
    buf = bytearray(len(data) + 10)
    buf[: len(data)] = data
    view = memoryview(buf)[: len(data)]
    plain, ending = pair.client.decrypt(view)
    buf[:] = bytes(len(buf))  # the caller reuses its buffer at once
    assert plain == b"payload" * 900 and ending is None


def test_close_notify_ends_the_stream_after_its_data(contexts, shared) -> None:
    pair = Pair(contexts, shared)
    pair.server.write(b"last words")
    with contextlib.suppress(ssl.SSLWantReadError):
        pair.server.unwrap()
    plain, ending = pair.client.decrypt(pair.sout.read())
    assert plain.endswith(b"last words") and ending == EOF


def test_the_sockets_end_ends_the_stream(contexts, shared) -> None:
    pair = Pair(contexts, shared)
    assert pair.client.decrypt(pair.records(b"x"))[0].endswith(b"x")
    plain, ending = pair.client.decrypt(b"")
    assert plain == b"" and ending == EOF


def test_a_bad_record_is_a_tls_error_and_the_good_data_before_it_comes_out(contexts, shared) -> None:
    pair = Pair(contexts, shared)
    good = pair.records(b"good")
    bad = b"\x17\x03\x03\x00\x40" + bytes(range(64))
    plain, ending = pair.client.decrypt(good + bad)
    assert plain == b"good"
    assert ending is not None and ending.startswith("TLS error")


def test_encrypt_makes_records_the_server_reads_back(contexts, shared) -> None:
    pair = Pair(contexts, shared)
    frame = b"f" * 40000  # three records
    pair.sin.write(pair.client.encrypt(frame))
    got = b""
    with contextlib.suppress(ssl.SSLWantReadError):
        while len(got) < len(frame):
            got += pair.server.read(65536)
    assert got == frame
    assert pair.client.encrypt(b"") == b""


def test_layers_on_one_shared_pair_never_see_each_others_bytes(contexts) -> None:
    """Three layers' handshakes and records, cut small and fed in turn, through one shared pair."""
    pairs = [Pair(contexts, shared=True) for _ in range(3)]
    datas = [p.records(bytes([97 + i]) * (7000 + i), b"end%d" % i) for i, p in enumerate(pairs)]
    got = [b""] * 3
    for start in range(0, max(map(len, datas)), 997):  # a record's header and body cut anywhere
        for i, pair in enumerate(pairs):
            plain, ending = pair.client.decrypt(datas[i][start : start + 997]) if start < len(datas[i]) else (b"", None)
            assert ending is None
            got[i] += plain
            assert_bios_empty()
    for i, pair in enumerate(pairs):
        assert got[i] == bytes([97 + i]) * (7000 + i) + b"end%d" % i
        assert pair.served(pair.client.encrypt(b"reply%d" % i)) == b"reply%d" % i


def test_one_shared_layers_end_or_bad_record_ends_no_other(contexts) -> None:
    a, b, c = (Pair(contexts, shared=True) for _ in range(3))
    assert a.client.decrypt(b"") == (b"", EOF)  # its socket ended
    plain, ending = b.client.decrypt(b.records(b"good") + b"\x17\x03\x03\x00\x40" + bytes(range(64)))
    assert plain.endswith(b"good") and ending is not None and ending.startswith("TLS error")
    assert_bios_empty()
    plain, ending = c.client.decrypt(c.records(b"still here"))
    assert plain.endswith(b"still here") and ending is None
    with pytest.raises(ssl.SSLEOFError):  # a handshake cut off, shared: raised, not written into the pair
        TLSLayer(contexts[1], "127.0.0.1", shared=True).handshake(b"")
    assert_bios_empty()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 9000)), min_size=1, max_size=40))
def test_any_interleaving_of_cut_reads_gives_each_layer_its_stream(contexts, cuts) -> None:
    pairs = [Pair(contexts, shared=True) for _ in range(3)]
    sent = [bytes([65 + i]) * 5000 + bytes([48 + i]) * 12000 for i in range(3)]
    datas = [p.records(sent[i]) for i, p in enumerate(pairs)]
    offsets, got = [0, 0, 0], [b"", b"", b""]
    for i, size in cuts:
        chunk = datas[i][offsets[i] : offsets[i] + size]
        offsets[i] += len(chunk)
        if chunk:
            plain, ending = pairs[i].client.decrypt(chunk)
            assert ending is None
            got[i] += plain
        assert_bios_empty()
    for i, pair in enumerate(pairs):  # the rest of each stream, then a reply through the same pair
        got[i] += pair.client.decrypt(datas[i][offsets[i] :])[0] if offsets[i] < len(datas[i]) else b""
        assert got[i] == sent[i]
        assert pair.served(pair.client.encrypt(b"ok%d" % i)) == b"ok%d" % i
