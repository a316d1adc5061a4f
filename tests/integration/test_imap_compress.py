"""IMAP COMPRESS=DEFLATE (RFC 4978).

A raw-socket client compresses its commands and inflates the responses with
Python's zlib (raw DEFLATE: wbits=-15, a Z_SYNC_FLUSH after each write), over
plain connections, STARTTLS and implicit TLS.
"""
import os
import random
import re
import socket
import ssl
import time
import zlib

import pytest

from smtp_helpers import wait_for

from imap_helpers import (ALICE, BOB, CRLF, RawImap, append, client_tls_context, imaps_port,
                          listen_ports, lit, msg, smtp_deliver)

LISTEN_ALL = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0", "imaps": "127.0.0.1:0"}


class ZImap(RawImap):
    """RawImap that can switch to DEFLATE both ways after COMPRESS."""

    def __init__(self, port, tls=False, timeout=30):
        self.dec = None
        self.comp = None
        self.wire_in = 0  # compressed octets received
        super().__init__(port, tls=tls, timeout=timeout)

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return False
        if self.dec is not None:
            self.wire_in += len(chunk)
            chunk = self.dec.decompress(chunk)
        self.buf += chunk
        return True

    def deflate(self, data):
        return self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)

    def sendraw(self, data):
        self.sock.sendall(self.deflate(data) if self.comp is not None else data)

    def send(self, text):
        tag = self.tag()
        self.sendraw(tag + b" " + text + CRLF)
        return tag

    def start_compression(self):
        """Both ways from now on. Octets already read past the tagged OK were
        compressed by the server (RFC 4978 3: right after its CRLF)."""
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.dec = zlib.decompressobj(-15)
        rest, self.buf = self.buf, b""
        self.wire_in += len(rest)
        self.buf = self.dec.decompress(rest)

    def compress(self):
        untagged, tagged = self.cmd(b"COMPRESS DEFLATE")
        assert untagged == [] and re.match(rb"t\d+ OK ", tagged), (untagged, tagged)
        self.start_compression()
        return tagged

    def starttls(self):
        self.ok(b"STARTTLS")
        assert self.buf == b""
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")


@pytest.fixture
def srv(petrel_factory):
    p = petrel_factory(listen=LISTEN_ALL)
    p.ports["imap"] = listen_ports(p, False)[0]
    return p


def caps_of(line):
    m = re.search(rb"CAPABILITY ([^\]\r]*)", line)
    return set(m.group(1).decode().split())


def login(p, user=ALICE, tls=False):
    c = ZImap(imaps_port(p) if tls else p.ports["imap"], tls=tls)
    c.login(user)
    return c


def test_capability(srv):
    c = ZImap(srv.ports["imap"])
    assert "COMPRESS=DEFLATE" in caps_of(c.greeting)
    c.login()
    assert "COMPRESS=DEFLATE" in caps_of(c.ok(b"CAPABILITY")[0])
    c.compress()
    # active now: not offered again
    assert "COMPRESS=DEFLATE" not in caps_of(c.ok(b"CAPABILITY")[0])


def test_session_select_append_fetch_logout(srv):
    c = login(srv)
    tagged = c.compress()
    assert tagged == b"t2 OK DEFLATE active\r\n"
    untagged = c.ok(b"SELECT INBOX")
    assert b"* 0 EXISTS\r\n" in untagged
    # a synchronising literal: the "+" continuation comes compressed too
    body = msg("compressed append", body="line of text\r\n" * 200)
    tag = c.send(b"APPEND INBOX (\\Flagged) {%d}" % len(body))
    assert c.readline().startswith(b"+ ")
    c.sendraw(body + CRLF)
    untagged, tagged = c.wait(tag)
    assert re.match(rb"t\d+ OK \[APPENDUID \d+ 1\]", tagged), tagged
    assert any(re.match(rb"\* 1 EXISTS", r) for r in untagged) or c.ok(b"NOOP")
    untagged = c.ok(b"FETCH 1 (FLAGS RFC822.SIZE BODY.PEEK[])")
    fetch = [r for r in untagged if r.startswith(b"* 1 FETCH")]
    assert len(fetch) == 1, untagged
    assert b"\\Flagged" in fetch[0] and b"RFC822.SIZE %d" % len(body) in fetch[0]
    assert fetch[0].endswith(lit(body) + b")\r\n"), fetch[0][-200:]
    # the repetitive body really was compressed on the wire
    assert c.wire_in < len(body) / 3, c.wire_in
    untagged, tagged = c.cmd(b"LOGOUT")
    assert untagged == [b"* BYE Petrel logging out\r\n"] and b" OK " in tagged
    assert c.read_until_closed() == b""


def test_pipelined_after_compress(srv):
    """Commands the client sent right behind COMPRESS, in the same segment,
    are compressed input (RFC 4978 3: the client compresses starting with
    the first command after COMPRESS); the server must not read them as
    plain text from what it had already buffered."""
    c = login(srv)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    rest = comp.compress(b"p1 NOOP\r\np2 SELECT INBOX\r\np3 CAPABILITY\r\n")
    rest += comp.flush(zlib.Z_SYNC_FLUSH)
    c.sock.sendall(b"p0 COMPRESS DEFLATE\r\n" + rest)
    assert c.readline() == b"p0 OK DEFLATE active\r\n"
    c.start_compression()
    c.comp = comp
    assert c.wait(b"p1") == ([], b"p1 OK NOOP completed\r\n")
    untagged, tagged = c.wait(b"p2")
    assert tagged.startswith(b"p2 OK [READ-WRITE]"), tagged
    untagged, tagged = c.wait(b"p3")
    assert untagged[0].startswith(b"* CAPABILITY ") and tagged.startswith(b"p3 OK")
    c.ok(b"NOOP")


def test_idle_gets_exists_compressed_and_flushed(srv):
    """IDLE (RFC 2177) over COMPRESS: an EXISTS for a message delivered by
    SMTP, then one appended by another session, arrives within a second: the
    server flushes its compressor whenever its output goes idle."""
    c = login(srv)
    c.compress()
    c.ok(b"SELECT INBOX")
    tag = c.send(b"IDLE")
    assert c.readline().startswith(b"+ ")
    smtp_deliver(srv, subject="while idling")
    m, elapsed = c.wait_for(rb"\* 1 EXISTS\r\n", 1.0)
    assert m, (c.buf, elapsed)
    other = login(srv)
    append(other, b"INBOX", msg("from another session"))
    m, elapsed = c.wait_for(rb"\* 2 EXISTS\r\n", 1.0)
    assert m, (c.buf, elapsed)
    c.buf = b""
    c.sendraw(b"DONE\r\n")
    untagged, tagged = c.wait(tag)
    assert tagged == tag + b" OK IDLE terminated\r\n", tagged
    untagged = c.ok(b"FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"while idling" in untagged[0] and b"from another session" in untagged[1]


@pytest.mark.parametrize("mode", ["starttls", "imaps"])
def test_over_tls(srv, mode):
    """COMPRESS under TLS: compressed first, then encrypted (RFC 4978 3)."""
    if mode == "imaps":
        c = ZImap(imaps_port(srv), tls=True)
    else:
        c = ZImap(srv.ports["imap"])
        c.starttls()
    c.login()
    c.compress()
    c.ok(b"SELECT INBOX")
    body = msg("over " + mode, body="tls and deflate\r\n" * 100)
    assert b" OK " in append(c, b"INBOX", body)
    untagged = c.ok(b"FETCH 1 BODY.PEEK[]")
    assert untagged[-1].endswith(lit(body) + b")\r\n") or any(
        r.endswith(lit(body) + b")\r\n") for r in untagged), untagged
    assert c.cmd(b"COMPRESS DEFLATE")[1].split(b" ", 1)[1].startswith(b"NO [COMPRESSIONACTIVE]")
    c.ok(b"LOGOUT")
    assert c.read_until_closed() == b""


def test_second_compress_and_bad_arguments(srv):
    c = login(srv)
    # RFC 4978 3: unknown or missing mechanism is BAD, and nothing changes
    assert c.cmd(b"COMPRESS GZIP")[1].startswith(b"t2 BAD ")
    assert c.cmd(b"COMPRESS")[1].startswith(b"t3 BAD ")
    assert c.cmd(b"COMPRESS DEFLATE DEFLATE")[1].startswith(b"t4 BAD ")
    assert c.cmd(b"NOOP") == ([], b"t5 OK NOOP completed\r\n")  # still plain
    c.compress()
    # the same mechanism already active: NO with COMPRESSIONACTIVE (RFC 4978 3)
    untagged, tagged = c.cmd(b"compress deflate")
    assert untagged == [] and tagged.startswith(b"t7 NO [COMPRESSIONACTIVE] "), tagged
    assert c.cmd(b"NOOP") == ([], b"t8 OK NOOP completed\r\n")  # still compressed


def test_compress_before_login_is_refused(srv):
    """RFC 4978 5: compress is a command-auth (authenticated/selected state
    only): BAD before login, and the session goes on uncompressed."""
    c = ZImap(srv.ports["imap"])
    untagged, tagged = c.cmd(b"COMPRESS DEFLATE")
    assert untagged == [] and tagged.startswith(b"t1 BAD "), tagged
    c.login()
    c.compress()
    c.ok(b"SELECT INBOX")


def test_garbage_closes_only_that_connection(srv):
    bystander = login(srv, BOB)
    bystander.compress()
    bystander.ok(b"SELECT INBOX")
    c = login(srv)
    c.compress()
    c.ok(b"NOOP")
    # 0xff: a final block of the reserved type 11 (RFC 1951 3.2.3)
    c.sock.sendall(b"\xff" * 64)
    c.read_until_closed()
    wait_for(lambda: "event=inflate-error" in srv.log(), what="the inflate-error log line")
    # the others go on, compressed or not
    bystander.ok(b"NOOP")
    assert bystander.ok(b"STATUS INBOX (MESSAGES)")
    fresh = login(srv)
    fresh.compress()
    fresh.ok(b"SELECT INBOX")


def test_data_after_end_of_stream_closes(srv):
    """A client that ends its DEFLATE stream (a final block) and sends more
    cannot be followed: the connection closes after answering what came
    before."""
    c = login(srv)
    c.compress()
    c.sock.sendall(c.comp.compress(b"e1 NOOP\r\n") + c.comp.flush(zlib.Z_FINISH))
    assert c.wait(b"e1") == ([], b"e1 OK NOOP completed\r\n")
    c.sock.sendall(b"e2 NOOP\r\n")
    c.read_until_closed()


def asan_quarantine():
    """An ASan build keeps freed memory in quarantine (256 MB by default):
    RSS then says nothing about what the server holds."""
    from conftest import PETREL_BIN
    with open(PETREL_BIN, "rb") as f:
        asan = b"__asan_init" in f.read()
    return asan and "quarantine_size_mb" not in os.environ.get("ASAN_OPTIONS", "")


def rss_kib(p):
    with open("/proc/%d/status" % p.proc.pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_zip_bomb_is_bounded_and_limits_still_apply(srv):
    """64 MiB of input that deflates to ~64 KiB: the line limit answers BAD as
    for plain input, the session survives, and the server's memory does not
    grow with what the input inflates to."""
    c = login(srv)
    c.compress()
    c.ok(b"SELECT INBOX")
    before = rss_kib(srv)
    big = 64 * 1024 * 1024
    tag = c.tag()
    out = c.comp.compress(tag + b" NOOP ")
    chunk = b"x" * (1024 * 1024)
    for _ in range(big // len(chunk)):
        out += c.comp.compress(chunk)
    out += c.comp.compress(CRLF) + c.comp.flush(zlib.Z_SYNC_FLUSH)
    assert len(out) < big / 500
    c.sock.sendall(out)
    untagged, tagged = c.wait(tag, timeout=60)
    assert tagged.startswith(tag + b" BAD "), tagged
    assert c.cmd(b"NOOP")[1].endswith(b" OK NOOP completed\r\n")
    # a literal beyond the non-APPEND limit is refused before "+" (no octets
    # follow a synchronising literal that got no continuation)
    untagged, tagged = c.cmd(b"SEARCH TEXT {10000000}")
    assert b" BAD " in tagged, tagged
    # a non-synchronising one: its 10 MB come anyway and are skipped
    tag = c.tag()
    c.sendraw(tag + b" SEARCH TEXT {10000000+}\r\n" + b"y" * 10000000 + CRLF)
    untagged, tagged = c.wait(tag, timeout=60)
    assert b" BAD " in tagged, tagged
    assert c.cmd(b"NOOP")[1].endswith(b" OK NOOP completed\r\n")
    grown = rss_kib(srv) - before
    if not asan_quarantine():
        assert grown < 24 * 1024, grown


@pytest.fixture
def small_output(petrel_factory):
    """A low output watermark, so a big FETCH is produced in many rounds
    (suspended and continued as the compressed output drains)."""
    p = petrel_factory(listen=LISTEN_ALL, extra={"limits": {"output_high": "65536"}})
    p.ports["imap"] = listen_ports(p, False)[0]
    return p


@pytest.mark.parametrize("tls", [False, True])
def test_large_fetch_is_exact(small_output, tls):
    rnd = random.Random(4978)
    # half text that compresses, half random base64 that hardly does
    lines = []
    size = 0
    while size < 1024 * 1024:
        if rnd.random() < 0.5:
            line = "The quick brown fox jumps over the lazy dog %d" % rnd.randrange(1000)
        else:
            line = "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789+/") for _ in range(76))
        lines.append(line)
        size += len(line) + 2
    body = msg("one megabyte", body="\r\n".join(lines))
    c = login(small_output, tls=tls)
    c.compress()
    # the APPEND literal streams through the inflater into the store
    assert b" OK " in append(c, b"INBOX", body)
    c.ok(b"SELECT INBOX")
    tag = c.send(b"FETCH 1 BODY.PEEK[]")
    # read slowly at first, so that the server's output backs up
    time.sleep(0.5)
    untagged, tagged = c.wait(tag)
    assert tagged.startswith(tag + b" OK"), tagged
    fetch = [r for r in untagged if r.startswith(b"* 1 FETCH")]
    assert len(fetch) == 1
    assert fetch[0] == b"* 1 FETCH (BODY[] " + lit(body) + b")\r\n"
    assert len(body) > 1024 * 1024
    # and again, pipelined with a NOOP behind it
    t1 = c.send(b"FETCH 1 BODY.PEEK[]")
    t2 = c.send(b"NOOP")
    untagged, tagged = c.wait(t1)
    assert [r for r in untagged if r.startswith(b"* 1 FETCH")][0].endswith(lit(body) + b")\r\n")
    assert c.wait(t2) == ([], t2 + b" OK NOOP completed\r\n")


OFFLINEIMAPRC = """[general]
accounts = test
metadata = {meta}

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {maildir}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {port}
remoteuser = alice@example.test
remotepass = secret-alice
ssl = no
starttls = no
usecompression = yes
"""


def test_offlineimap_with_compression(srv, tmp_path):
    """A real client: offlineimap (Debian's offlineimap3) with usecompression
    sends COMPRESS DEFLATE after login and syncs both ways through it."""
    import shutil
    import subprocess
    if shutil.which("offlineimap") is None:
        pytest.skip("offlineimap is not installed")
    c = login(srv)
    for i in range(30):
        append(c, b"INBOX", msg("offline %02d" % i, body="some text\r\n" * (i + 1)))
    maildir = tmp_path / "Mail"
    rc = tmp_path / "offlineimaprc"
    rc.write_text(OFFLINEIMAPRC.format(meta=tmp_path / "meta", maildir=maildir,
                                       port=srv.ports["imap"]))

    def run():
        r = subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout + r.stderr

    run()
    wait_for(lambda: "event=compress mech=deflate" in srv.log(), what="the compress log line")
    files = os.listdir(maildir / "INBOX" / "cur") + os.listdir(maildir / "INBOX" / "new")
    assert len(files) == 30, files
    # a message made locally goes up through the compressed stream
    local = maildir / "INBOX" / "new" / "1700000000.local.host"
    local.write_bytes(msg("made locally", body="offline body\r\n"))
    before = srv.log().count("event=compress mech=deflate")
    run()
    wait_for(lambda: srv.log().count("event=compress mech=deflate") > before,
             what="a compress log line of the second run")
    c.ok(b"EXAMINE INBOX")
    untagged = c.ok(b"UID SEARCH SUBJECT \"made locally\"")
    assert untagged[0].split()[2:], untagged


def test_pipelined_append_pauses_and_resumes(srv):
    """An APPEND waits for the store (input paused); the commands pipelined
    behind it in the same compressed write are answered after it, in order."""
    c = login(srv)
    c.compress()
    body = msg("pipelined", body="paused and resumed\r\n" * 50)
    c.sendraw(b"a1 APPEND INBOX {%d+}\r\n" % len(body) + body + CRLF +
              b"a2 SELECT INBOX\r\na3 FETCH 1 BODY.PEEK[TEXT]\r\na4 NOOP\r\n")
    _, tagged = c.wait(b"a1")
    assert tagged.startswith(b"a1 OK [APPENDUID"), tagged
    _, tagged = c.wait(b"a2")
    assert tagged.startswith(b"a2 OK"), tagged
    untagged, tagged = c.wait(b"a3")
    assert b"paused and resumed" in untagged[0] and tagged.startswith(b"a3 OK")
    assert c.wait(b"a4") == ([], b"a4 OK NOOP completed\r\n")


def test_shutdown_bye_is_compressed_and_flushed(srv):
    """SIGTERM: an idle compressed session gets its BYE (inflatable, flushed
    before the close)."""
    c = login(srv)
    c.compress()
    c.ok(b"SELECT INBOX")
    assert srv.stop() == 0
    rest = c.read_until_closed()
    assert rest.startswith(b"* BYE "), rest
