"""The TLS layer alone (:class:`loadtest.session.tls.TLSLayer`) against an in-process TLS server
over memory: every byte of plaintext each feed completes comes out, whatever the records' cut
(several in one read, one split over reads, more than one record's worth), and the stream's end,
a close_notify and a bad record each end it the right way. Its read loop stops on empty buffers
rather than on a failed read, so these pin what that must not change."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest

from loadtest.session.tls import EOF, TLSLayer
from tests.support import self_signed


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = self_signed(Path(tmp_path_factory.mktemp("tls_layer")))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


class Pair:
    def __init__(self, contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
        server_ctx, client_ctx = contexts
        self.sin, self.sout = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.server = server_ctx.wrap_bio(self.sin, self.sout, server_side=True)
        self.client = TLSLayer(client_ctx, "127.0.0.1")
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

    def records(self, *plaintexts: bytes) -> bytes:
        for p in plaintexts:
            self.server.write(p)
        return self.sout.read()


def test_every_record_of_a_read_comes_out_in_order(contexts) -> None:
    pair = Pair(contexts)
    parts = [bytes([65 + i]) * (6608 + i) for i in range(4)]
    # the tickets and four records (one > 16 KiB, so two records of it) in one read
    data = pair.records(*parts, b"z" * 20000)
    plain, ending = pair.client.decrypt(data)
    assert plain == b"".join(parts) + b"z" * 20000 and ending is None


def test_a_record_split_over_reads_comes_out_once_whole(contexts) -> None:
    pair = Pair(contexts)
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


def test_a_view_of_a_reused_buffer_is_copied_in(contexts) -> None:
    pair = Pair(contexts)
    pair.client.decrypt(pair.records(b"first"))
    data = pair.records(b"payload" * 900)
    buf = bytearray(len(data) + 10)
    buf[: len(data)] = data
    view = memoryview(buf)[: len(data)]
    plain, ending = pair.client.decrypt(view)
    buf[:] = bytes(len(buf))  # the caller reuses its buffer at once
    assert plain == b"payload" * 900 and ending is None


def test_close_notify_ends_the_stream_after_its_data(contexts) -> None:
    pair = Pair(contexts)
    pair.server.write(b"last words")
    with contextlib.suppress(ssl.SSLWantReadError):
        pair.server.unwrap()
    plain, ending = pair.client.decrypt(pair.sout.read())
    assert plain.endswith(b"last words") and ending == EOF


def test_the_sockets_end_ends_the_stream(contexts) -> None:
    pair = Pair(contexts)
    assert pair.client.decrypt(pair.records(b"x"))[0].endswith(b"x")
    plain, ending = pair.client.decrypt(b"")
    assert plain == b"" and ending == EOF


def test_a_bad_record_is_a_tls_error_and_the_good_data_before_it_comes_out(contexts) -> None:
    pair = Pair(contexts)
    good = pair.records(b"good")
    bad = b"\x17\x03\x03\x00\x40" + bytes(range(64))
    plain, ending = pair.client.decrypt(good + bad)
    assert plain == b"good"
    assert ending is not None and ending.startswith("TLS error")


def test_encrypt_makes_records_the_server_reads_back(contexts) -> None:
    pair = Pair(contexts)
    frame = b"f" * 40000  # three records
    pair.sin.write(pair.client.encrypt(frame))
    got = b""
    with contextlib.suppress(ssl.SSLWantReadError):
        while len(got) < len(frame):
            got += pair.server.read(65536)
    assert got == frame
    assert pair.client.encrypt(b"") == b""
