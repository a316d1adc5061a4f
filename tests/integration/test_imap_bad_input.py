"""What a hostile or broken client sends: malformed commands, oversized
lines and literals, deep nesting, binary junk, floods of errors; STARTTLS
(RFC 3501 6.2.1, RFC 2595) including command injection before the
handshake (CVE-2011-0411 class), and implicit TLS (RFC 8314).

Every malformed command gets a tagged BAD (or "* BAD" when no tag can be
read) and the session carries on, until [limits] max_errors BADs in a row.
"""
import imaplib
import os
import socket
import time

import pytest

from imap_helpers import (ALICE, LISTEN, RawImap, append, client_tls_context, imaps_port, msg)


@pytest.fixture
def srv(petrel_factory):
    return petrel_factory(listen=LISTEN)


def status_of(line):
    parts = line.split(b" ", 2)
    return parts[1] if len(parts) > 1 else b""


def bad_then_ok(c, raw_line, tag=None):
    """Sends raw_line (CRLF included); None if the reply is a BAD (tagged if
    tag), nothing else comes, and NOOP still works; else what went wrong."""
    c.sendraw(raw_line)
    try:
        line = c.readline(timeout=5)
    except socket.timeout:
        return (raw_line[:80], "no reply", c.buf)
    if status_of(line) != b"BAD" or (tag is not None and not line.startswith(tag + b" BAD ")):
        return (raw_line[:80], line)
    t = c.send(b"NOOP")
    try:
        line = c.readline(timeout=5)
    except socket.timeout:
        return (raw_line[:80], "no reply to NOOP", c.buf)
    if not line.startswith(t + b" OK "):
        return (raw_line[:80], "after it", line)
    return None


def expect_bad_then_ok(c, raw_line, tag=None):
    wrong = bad_then_ok(c, raw_line, tag)
    assert wrong is None, wrong


def check_all(connect, cases):
    """Runs bad_then_ok over cases; a fresh session after each failure.
    Returns the failures."""
    c = connect()
    wrong = []
    for raw_line, tag in cases:
        w = bad_then_ok(c, raw_line, tag)
        if w is not None:
            wrong.append(w)
            c.close()
            c = connect()
    return c, wrong


MALFORMED = [
    (b"\r\n", b"*"),                          # empty line
    (b"a1\r\n", b"a1"),                       # no command
    (b"a2 \r\n", b"a2"),
    (b"a3  NOOP\r\n", b"a3"),                 # two spaces
    (b"a4 NOOP \r\n", b"a4"),                 # trailing space
    (b"a5 NOOP extra\r\n", b"a5"),            # extra argument
    (b"a+6 NOOP\r\n", None),                  # "+" not allowed in a tag
    (b"(a7) NOOP\r\n", None),
    (b"a8 NO\x00OP\r\n", b"a8"),              # NUL
    (b"a9 N\xc3\xb6OP\r\n", b"a9"),           # 8-bit in the command name
    (b"b1 FROBNICATE\r\n", b"b1"),            # unknown command
    (b"b2 LOGIN \"unterminated\r\n", b"b2"),
    (b"b3 LOGIN \"bad\\escape\" x\r\n", b"b3"),
    (b"b4 LOGIN \"nul\x00\" x\r\n", b"b4"),
    (b"b5 LOGIN {3}x\r\n", b"b5"),            # a literal must end the line
    (b"b6 LOGIN {x}\r\n", b"b6"),
    (b"b7 LOGIN a b c\r\n", b"b7"),
    (b"b8 NOOP\rx\n", b"b8"),                 # CR not followed by LF
    (b"b9 CAPABILITY (\r\n", b"b9"),
    (b"c1 CAPABILITY )\r\n", b"c1"),
    (b"c2 ID (\"a\" \"b\"\r\n", b"c2"),       # unterminated list
    (b"c3 ID (\"a\" \"b\"))\r\n", b"c3"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", None),  # a TLS ClientHello
    (b"\xff\xfe\xfd\x00\x01\x02junk\r\n", None),
    (b"c4 AUTHENTICATE\r\n", b"c4"),
    (b"c5 UID\r\n", b"c5"),
]


def test_malformed_before_login(srv):
    c, wrong = check_all(lambda: RawImap(srv.ports["imap"]), MALFORMED)
    assert wrong == [], "\n".join(repr(w) for w in wrong)
    c.login()
    c.ok(b"SELECT INBOX")


MALFORMED_AUTH = [
    (b"d1 SELECT\r\n", b"d1"),
    (b"d2 SELECT INBOX extra\r\n", b"d2"),
    (b"d3 FETCH 1 (FLAGS\r\n", b"d3"),
    (b"d4 FETCH 1 FLAGS)\r\n", b"d4"),
    (b"d5 FETCH 1:x FLAGS\r\n", b"d5"),
    (b"d6 STORE 1 +FLAGS (\\Seen\r\n", b"d6"),
    (b"d7 STORE 1 FLAGS \"\\Seen\"\r\n", b"d7"),
    (b"d8 SEARCH (ALL\r\n", b"d8"),
    (b"d9 SEARCH ALL)\r\n", b"d9"),
    (b"e1 LIST \"\"\r\n", b"e1"),
    (b"e2 STATUS INBOX (MESSAGES\r\n", b"e2"),
    (b"e3 COPY 1\r\n", b"e3"),
    (b"e4 UID FROB 1\r\n", b"e4"),
    (b"e5 APPEND INBOX (\\Seen) \"not a date\" {3+}\r\nabc\r\n", b"e5"),
    (b"e6 APPEND INBOX {3+}\r\nabc junk\r\n", b"e6"),  # an argument after the literal
    (b"e7 APPEND\r\n", b"e7"),
]


def test_malformed_after_login(srv):
    c = RawImap(srv.ports["imap"]).login()
    append(c, b"INBOX", msg("one"))
    c.close()

    def connect():
        c = RawImap(srv.ports["imap"]).login()
        c.ok(b"SELECT INBOX")
        return c

    c, wrong = check_all(connect, MALFORMED_AUTH)
    assert wrong == [], "\n".join(repr(w) for w in wrong)
    # an empty name cannot be created
    assert status_of(c.cmd(b'CREATE ""')[1]) in (b"NO", b"BAD")
    c.ok(b"NOOP")
    # nothing of that stored anything
    assert c.ok(b"STATUS INBOX (MESSAGES)") == [b'* STATUS "INBOX" (MESSAGES 1)\r\n']
    assert b"\\Seen" not in c.ok(b"FETCH 1 FLAGS")[0]


def test_command_split_into_single_octets(srv):
    c = RawImap(srv.ports["imap"])
    for ch in b"a1 LOGIN {18}\r\n":
        c.sendraw(bytes([ch]))
    assert c.readline().startswith(b"+ ")
    for ch in b"alice@example.test \"secret-alice\"\r\n":
        c.sendraw(bytes([ch]))
        time.sleep(0.001)
    assert c.readline().startswith(b"a1 OK ")


def test_overlong_lines(srv):
    c = RawImap(srv.ports["imap"])
    # before login: 20 KiB is too long (the limit is tighter than after)
    expect_bad_then_ok(c, b"a1 LOGIN " + b"x" * 20 * 1024 + b" y\r\n", None)
    expect_bad_then_ok(c, b"a2 NOOP " + b"(" * 10 + b"x" * 20 * 1024 + b"\r\n", None)
    c.login()
    # after login: 16 KiB is fine, 100 KiB is not
    c.ok(b"SELECT INBOX")
    assert status_of(c.cmd(b"SEARCH SUBJECT " + b"x" * 16 * 1024)[1]) == b"OK"
    expect_bad_then_ok(c, b"b1 SEARCH SUBJECT " + b"x" * 100 * 1024 + b"\r\n", None)
    # a huge line in many writes
    c.sendraw(b"b2 SEARCH SUBJECT ")
    for _ in range(40):
        c.sendraw(b"y" * 4096)
    c.sendraw(b"\r\n")
    line = c.readline(timeout=5)
    assert status_of(line) == b"BAD", line
    c.ok(b"NOOP")


def test_literal_too_large_nonsync_skipped(srv):
    c = RawImap(srv.ports["imap"])
    # before login: a {n+} literal beyond the pre-auth limit
    c.sendraw(b"a0 LOGIN {20000+}\r\n" + b"u" * 20000 + b" pass\r\n")
    assert c.readline(timeout=5).startswith(b"a0 BAD "), c.buf
    c.ok(b"NOOP")
    c.login()
    c.ok(b"SELECT INBOX")
    # {n+} too large: the octets are skipped, BAD, and the session goes on
    big = b"z" * 200 * 1024
    c.sendraw(b"a1 SEARCH TEXT {%d+}\r\n" % len(big) + big + b"\r\n")
    line = c.readline(timeout=10)
    assert line.startswith(b"a1 BAD "), line
    c.ok(b"NOOP")


@pytest.mark.parametrize("login,command", [
    (False, b"a LOGIN {20000}"),               # beyond the pre-auth literal limit
    (True, b"a SEARCH TEXT {204800}"),          # beyond the limit for non-APPEND
    (True, b"a SELECT {99999999999}"),
])
def test_sync_literal_too_large_refused_at_once(srv, login, command):
    """RFC 3501 2.2.1: a synchronizing literal the server will not take is
    answered with a tagged BAD instead of "+", at once: the client waits for
    one or the other and sends nothing in between."""
    c = RawImap(srv.ports["imap"])
    if login:
        c.login()
    c.sendraw(command + b"\r\n")
    m, took = c.wait_for(rb"\r\n", 3)
    assert m, "no reply to a refused synchronizing literal within %.1f s" % took
    line = c.readline()
    assert line.startswith(b"a BAD "), line
    c.ok(b"NOOP")


def test_nesting_too_deep(srv):
    c = RawImap(srv.ports["imap"]).login()
    append(c, b"INBOX", msg("one"))
    c.ok(b"SELECT INBOX")
    # modest nesting is fine
    assert status_of(c.cmd(b"SEARCH " + b"(" * 5 + b"ALL" + b")" * 5)[1]) == b"OK"
    for depth in [20, 100, 5000]:
        expect_bad_then_ok(c, b"x SEARCH " + b"(" * depth + b"ALL" + b")" * depth + b"\r\n",
                           b"x")
    expect_bad_then_ok(c, b"y ID " + b"(" * 1000 + b"\r\n", b"y")
    expect_bad_then_ok(c, b"z FETCH 1 " + b"(" * 50 + b"FLAGS" + b")" * 50 + b"\r\n", b"z")


def test_too_many_arguments(srv):
    c = RawImap(srv.ports["imap"])
    # before login only a handful of arguments are taken
    expect_bad_then_ok(c, b"a ID (" + b'"k" "v" ' * 40 + b")\r\n", b"a")
    c.login()
    c.ok(b"SELECT INBOX")
    expect_bad_then_ok(c, b"b SEARCH " + b"ALL " * 20000 + b"ALL\r\n", None)


def test_nul_and_binary_in_literals(srv):
    c = RawImap(srv.ports["imap"]).login()
    c.ok(b"SELECT INBOX")
    # a NUL in an ordinary literal is not allowed (only in literal8)
    expect_bad_then_ok(c, b"a SEARCH TEXT {3+}\r\na\x00b\r\n", b"a")
    # 8-bit text in a literal is fine
    assert status_of(c.cmd(b"SEARCH CHARSET UTF-8 TEXT {2+}\r\n\xc3\xa9")[1]) == b"OK"


def test_max_errors_closes_the_session(srv):
    c = RawImap(srv.ports["imap"])
    # BADs that are not consecutive do not add up
    for i in range(15):
        assert status_of(c.cmd(b"FROB")[1]) == b"BAD"
        c.ok(b"NOOP")
    # the default max_errors is 10: nine BADs, then the tenth ends it
    for i in range(9):
        assert status_of(c.cmd(b"FROB %d" % i)[1]) == b"BAD"
    c.sendraw(b"last FROB\r\n")
    rest = c.read_until_closed(5)
    assert rest.startswith(b"last BAD "), rest
    assert b"\r\n* BYE " in rest, rest


def test_max_errors_configurable(petrel_factory):
    p = petrel_factory(listen=LISTEN, extra={"limits": {"max_errors": "3"}})
    c = RawImap(p.ports["imap"]).login()
    # parser-level errors count as well
    c.sendraw(b"a (\r\n")
    assert c.readline().startswith(b"a BAD ")
    c.sendraw(b"\r\n")
    assert c.readline().startswith(b"* BAD ")
    c.sendraw(b"c FROB\r\n")
    rest = c.read_until_closed(5)
    assert rest.startswith(b"c BAD ") and b"* BYE " in rest, rest
    # a fresh session is fine
    RawImap(p.ports["imap"]).login().ok(b"NOOP")


def test_client_gone_mid_literal(srv):
    c = RawImap(srv.ports["imap"]).login()
    c.sendraw(b"a APPEND INBOX {100000+}\r\n" + b"x" * 5000)
    c.close()
    c = RawImap(srv.ports["imap"]).login()
    c.sendraw(b"a SEARCH TEXT {60000+}\r\n" + b"x" * 500)
    c.close()
    c = RawImap(srv.ports["imap"]).login()
    assert c.ok(b"STATUS INBOX (MESSAGES)") == [b'* STATUS "INBOX" (MESSAGES 0)\r\n']


# -------------------------------------------------------------------- TLS


def test_starttls(srv):
    c = RawImap(srv.ports["imap"])
    assert b" STARTTLS" in c.greeting
    assert status_of(c.cmd(b"STARTTLS x")[1]) == b"BAD"
    tag = c.send(b"STARTTLS")
    assert c.readline().startswith(tag + b" OK ")
    c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="localhost")
    caps = c.ok(b"CAPABILITY")[0]
    assert b"STARTTLS" not in caps and b"AUTH=PLAIN" in caps, caps
    assert b"LOGINDISABLED" not in caps
    assert status_of(c.cmd(b"STARTTLS")[1]) == b"BAD"  # already active
    c.login()
    c.ok(b"SELECT INBOX")
    # the same with a real client
    M = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
    M.starttls(ssl_context=client_tls_context())
    assert "STARTTLS" not in M.capabilities
    assert M.login(*ALICE)[0] == "OK"
    assert M.select("INBOX")[0] == "OK"
    M.logout()


def test_starttls_command_injection(srv):
    """Plaintext sent after STARTTLS before the handshake must be dropped,
    not executed inside the TLS session."""
    c = RawImap(srv.ports["imap"])
    c.sendraw(b"a STARTTLS\r\nb NOOP\r\n")
    line = c.readline()
    assert line.startswith(b"a OK "), line
    assert c.buf == b""  # nothing more in plaintext
    c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="localhost")
    # the first thing in TLS answers our own command, not the injected one
    c.sendraw(b"c NOOP\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"c OK "), line
    assert b"b OK" not in c.read_for(0.3)
    # the same with a login injected
    c = RawImap(srv.ports["imap"])
    c.sendraw(b"a STARTTLS\r\nb LOGIN alice@example.test secret-alice\r\n")
    assert c.readline().startswith(b"a OK ")
    c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="localhost")
    assert status_of(c.cmd(b"SELECT INBOX")[1]) == b"BAD"  # not logged in
    c.ok(b"NOOP")


def test_implicit_tls(petrel_factory):
    p = petrel_factory(listen={"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0",
                               "imaps": "127.0.0.1:0"})
    port = imaps_port(p)
    c = RawImap(port, tls=True)
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 "), c.greeting
    assert b"STARTTLS" not in c.greeting and b"AUTH=PLAIN" in c.greeting
    assert status_of(c.cmd(b"STARTTLS")[1]) == b"BAD"
    c.login()
    c.ok(b"SELECT INBOX")
    c.close()
    M = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_tls_context())
    assert M.login(*ALICE)[0] == "OK"
    assert M.append("INBOX", None, None, msg("over imaps"))[0] == "OK"
    assert M.select("INBOX") == ("OK", [b"1"])
    M.logout()
    # plaintext on the TLS port: no IMAP greeting, and the server survives
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"a LOGIN alice@example.test secret-alice\r\n")
    s.settimeout(5)
    try:
        data = s.recv(1000)
    except (ConnectionResetError, socket.timeout):
        data = b""
    assert b"OK" not in data
    s.close()
    RawImap(port, tls=True).login().ok(b"NOOP")


def spill_files(p):
    d = os.path.join(p.data, "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_multiappend_error_drops_every_message(srv):
    """MULTIAPPEND (RFC 3502 6.3.11): when any message fails, none is stored
    (the first, already streamed to the store, to a spill file when large,
    is dropped too) and nothing is left behind."""
    c = RawImap(srv.ports["imap"]).login()
    before = spill_files(srv)
    big = b"Subject: big\r\n\r\n" + b"x" * 300 * 1024
    first = b"{%d+}\r\n" % len(big) + big
    for i, (tail, status) in enumerate([
            (b" (\\Bogus) {3+}\r\ndef", b"BAD"),                  # bad flags
            (b' "31-Foo-2023 00:00:00 +0000" {3+}\r\ndef', b"BAD"),  # bad date
            (b" {3+}\r\ndef extra", b"BAD"),                        # junk after the last
            (b" {0+}\r\n", b"NO"),                                  # cancelled
            (b" UTF8 ({3+}\r\ndef)", b"BAD")]):                     # not a literal8
        c.sendraw(b"m%d APPEND INBOX " % i + first + tail + b"\r\n")
        line = c.readline(timeout=5)
        assert line.startswith(b"m%d %s " % (i, status)), (tail, line)
    c.ok(b"NOOP")
    assert c.ok(b"STATUS INBOX (MESSAGES)") == [b'* STATUS "INBOX" (MESSAGES 0)\r\n']
    # no spill file of a dropped message is left (nor its descriptor open)
    assert spill_files(srv) == before
