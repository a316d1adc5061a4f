"""MULTIAPPEND (RFC 3502) and LITERAL- (RFC 7888 5).

Several messages in one APPEND are stored all or none (RFC 3502 6.3.11: "no
partial appending is permitted"), and the APPENDUID response code names
every uid (RFC 3502, "MULTIAPPEND Interaction with UIDPLUS Extension").
Raw sockets drive the exact dialogue; imaplib reads the result back.
"""
import imaplib
import os
import re
import signal
import socket
import threading
import time

import pytest

from imap_helpers import ALICE, BOB, LISTEN, RawImap, msg

DATE1 = b"14-Jul-2023 12:34:56 +0200"
DATE2 = b"01-Jan-2001 00:00:01 -0500"


def caps(line):
    m = re.search(rb"CAPABILITY ([^\]\r]*)", line)
    assert m, line
    return m.group(1).split()


def uidvalidity(c, mailbox=b"INBOX"):
    line = c.ok(b"STATUS %s (UIDVALIDITY)" % mailbox)[0]
    return int(re.search(rb"UIDVALIDITY (\d+)", line).group(1))


def messages(c, mailbox=b"INBOX"):
    line = c.ok(b"STATUS %s (MESSAGES)" % mailbox)[0]
    return int(re.search(rb"MESSAGES (\d+)", line).group(1))


def spill_files(p):
    d = os.path.join(p.data, "tmp")
    return sorted(f for f in os.listdir(d) if f.startswith("spill-")) if os.path.isdir(d) else []


def imaplib_login(p):
    m = imaplib.IMAP4("127.0.0.1", p.ports["imap"])
    m.login(*ALICE)
    return m


def sync_append(c, tag, mailbox, parts):
    """APPEND with synchronizing literals, waiting for each "+": parts is a
    list of (options, message). Returns the tagged line."""
    first = True
    for opts, body in parts:
        head = (tag + b" APPEND " + mailbox) if first else b""
        c.sendraw(head + (b" " + opts if opts else b"") + b" {%d}\r\n" % len(body))
        line = c.readline(timeout=10)
        assert line.startswith(b"+ "), line
        c.sendraw(body)
        first = False
    c.sendraw(b"\r\n")
    return c.wait(tag, timeout=10)[1]


@pytest.fixture
def srv(petrel_factory):
    return petrel_factory(listen=LISTEN)


# ------------------------------------------------------------------ success


def test_three_messages_in_one_command(srv):
    c = RawImap(srv.ports["imap"])
    assert b"MULTIAPPEND" in caps(c.greeting)
    c.login()
    assert b"MULTIAPPEND" in c.ok(b"CAPABILITY")[0]
    v = uidvalidity(c)
    m1, m2, m3 = msg("first"), msg("second", body="x" * 500), msg("third")
    tagged = sync_append(c, b"A1", b"INBOX", [
        (b"(\\Seen $Work)", m1),
        (b'(\\Flagged) "%s"' % DATE1, m2),
        (b'"%s"' % DATE2, m3)])
    # RFC 3502: APPENDUID with as many uids as messages, in append order
    assert tagged == b"A1 OK [APPENDUID %d 1:3] APPEND completed\r\n" % v, tagged

    m = imaplib_login(srv)
    assert m.select("INBOX")[1] == [b"3"]
    typ, data = m.fetch("1:3", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    fetched = [d for d in data if isinstance(d, tuple)]
    assert [f[1] for f in fetched] == [m1, m2, m3]
    heads = [f[0] for f in fetched]
    assert b"UID 1 " in heads[0] and b"\\Seen" in heads[0] and b"$Work" in heads[0]
    assert b"UID 2 " in heads[1] and b"\\Flagged" in heads[1]
    assert b'INTERNALDATE "14-Jul-2023 10:34:56 +0000"' in heads[1], heads[1]
    assert b'INTERNALDATE " 1-Jan-2001 05:00:01 +0000"' in heads[2], heads[2]
    assert b"FLAGS (\\Recent)" in heads[2] or b"FLAGS ()" in heads[2], heads[2]
    assert b"RFC822.SIZE %d" % len(m2) in heads[1]
    m.logout()


def test_literal_forms_and_selected_mailbox(srv):
    """{n+} literals pipelined in one write, a message large enough to go to
    a file, and a UTF8 (~{n}) message (RFC 6855 4) in one MULTIAPPEND; the
    selected mailbox hears EXISTS before the tagged OK (RFC 3502 6.3.11)."""
    c = RawImap(srv.ports["imap"]).login()
    c.ok(b"CREATE Work")
    v = uidvalidity(c, b"Work")
    c.ok(b"SELECT Work")
    big = msg("big", body="y" * (300 * 1024))
    small = msg("small")
    utf8 = msg("utf8", body="8-bit \u00e9")
    data = (b"W APPEND Work {%d+}\r\n" % len(small) + small +
            b" (\\Draft) {%d+}\r\n" % len(big) + big +
            b" UTF8 (~{%d+}\r\n" % len(utf8) + utf8 + b")" +
            b" {%d+}\r\n" % len(small) + small + b"\r\n")
    c.sendraw(data)
    untagged, tagged = c.wait(b"W", timeout=15)
    assert tagged == b"W OK [APPENDUID %d 1:4] APPEND completed\r\n" % v, tagged
    assert b"* 4 EXISTS\r\n" in untagged, untagged
    assert messages(c, b"Work") == 4
    m = imaplib_login(srv)
    m.select("Work", readonly=True)
    typ, data = m.uid("FETCH", "2", "(FLAGS BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == big and b"\\Draft" in data[0][0]
    m.logout()
    # a single-message APPEND keeps its one-uid APPENDUID
    c.sendraw(b"S APPEND Work {%d+}\r\n" % len(small) + small + b"\r\n")
    assert c.wait(b"S")[1] == b"S OK [APPENDUID %d 5] APPEND completed\r\n" % v


def test_concurrent_multiappends_get_consecutive_uids(srv):
    """Two sessions appending groups at once: each group's uids form one
    run (one savepoint each), and every message is stored."""
    results = {}

    def worker(name):
        c = RawImap(srv.ports["imap"]).login()
        tags = []
        for i in range(10):
            tag = b"%s%d" % (name, i)
            body = b"".join(b" {%d+}\r\n" % len(msg("%s-%d-%d" % (name.decode(), i, k))) +
                            msg("%s-%d-%d" % (name.decode(), i, k)) for k in range(4))
            c.sendraw(tag + b" APPEND INBOX" + body + b"\r\n")
            tags.append(tag)
        results[name] = [c.wait(t, timeout=20)[1] for t in tags]
        c.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    seen = []
    for lines in results.values():
        assert len(lines) == 10
        for line in lines:
            m = re.search(rb"\[APPENDUID \d+ (\d+):(\d+)\]", line)
            assert m, line
            lo, hi = int(m.group(1)), int(m.group(2))
            assert hi == lo + 3, line
            seen += range(lo, hi + 1)
    assert sorted(seen) == list(range(1, 81))
    assert len(srv.messages()) == 80


# ------------------------------------------------------------------ all or none


def test_too_big_in_the_middle_stores_nothing(petrel_factory):
    p = petrel_factory(listen=LISTEN, extra={"limits": {"max_message_size": "2048"}})
    c = RawImap(p.ports["imap"]).login()
    ok = msg("fits")
    # synchronizing: no "+" for the oversized one, a tagged NO [TOOBIG] at
    # once (RFC 7889 3; RFC 3502: an error before all messages were sent)
    c.sendraw(b"T1 APPEND INBOX {%d}\r\n" % len(ok))
    assert c.readline().startswith(b"+ ")
    c.sendraw(ok + b" (\\Seen) {3000}\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"T1 NO [TOOBIG]"), line
    c.ok(b"NOOP")
    assert messages(c) == 0
    # {n+}: the octets come anyway and are skipped; the message after it
    # too; then NO [TOOBIG]
    data = (b"T2 APPEND INBOX {%d+}\r\n" % len(ok) + ok + b" {3000+}\r\n" + b"z" * 3000 +
            b" {%d+}\r\n" % len(ok) + ok + b"\r\n")
    c.sendraw(data)
    line = c.readline(timeout=5)
    assert line.startswith(b"T2 NO [TOOBIG]"), line
    c.ok(b"NOOP")
    assert messages(c) == 0
    # and the uids were not used up
    c.sendraw(b"T3 APPEND INBOX {%d+}\r\n" % len(ok) + ok + b" {%d+}\r\n" % len(ok) + ok +
              b"\r\n")
    assert re.match(rb"T3 OK \[APPENDUID \d+ 1:2\]", c.readline(timeout=5))


def test_total_size_limit(petrel_factory):
    """[limits] max_multiappend_size caps the sum of one APPEND's messages:
    NO [LIMIT] (RFC 9051 7.1), nothing stored."""
    p = petrel_factory(listen=LISTEN, extra={"limits": {"max_message_size": "2048",
                                                        "max_multiappend_size": "4096"}})
    c = RawImap(p.ports["imap"]).login()
    part = b"Subject: s\r\n\r\n" + b"q" * 1500
    # the third literal would pass 4096: refused before its "+"
    c.sendraw(b"L1 APPEND INBOX {%d}\r\n" % len(part))
    assert c.readline().startswith(b"+ ")
    c.sendraw(part + b" {%d}\r\n" % len(part))
    assert c.readline().startswith(b"+ ")
    c.sendraw(part + b" {%d}\r\n" % len(part))
    line = c.readline(timeout=5)
    assert line.startswith(b"L1 NO [LIMIT]"), line
    # non-synchronizing: skipped to the end of the command, then NO [LIMIT]
    c.sendraw(b"L2 APPEND INBOX" + (b" {%d+}\r\n" % len(part) + part) * 3 + b"\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"L2 NO [LIMIT]"), line
    assert messages(c) == 0
    # within the total: stored
    c.sendraw(b"L3 APPEND INBOX" + (b" {%d+}\r\n" % len(part) + part) * 2 + b"\r\n")
    assert re.match(rb"L3 OK \[APPENDUID \d+ 1:2\]", c.readline(timeout=5))


def test_zero_length_literal_cancels(srv):
    """RFC 3502 6.3.11: "A zero-length message literal argument is an error,
    and MUST return a NO. This can be used to cancel the append." """
    c = RawImap(srv.ports["imap"]).login()
    m = msg("will be cancelled")
    c.sendraw(b"Z1 APPEND INBOX {%d}\r\n" % len(m))
    assert c.readline().startswith(b"+ ")
    c.sendraw(m + b" {0}\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"Z1 NO "), line
    c.sendraw(b"Z2 APPEND INBOX {%d+}\r\n" % len(m) + m + b" {0+}\r\n\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"Z2 NO "), line
    c.sendraw(b"Z3 APPEND INBOX {0+}\r\n\r\n")
    assert c.readline(timeout=5).startswith(b"Z3 NO ")
    c.ok(b"NOOP")
    assert messages(c) == 0


def test_client_disconnect_midway_stores_nothing(srv):
    before = spill_files(srv)
    for cut in ("in second literal", "after plus", "before CRLF"):
        c = RawImap(srv.ports["imap"]).login()
        small = msg("one")
        big = msg("two", body="b" * (400 * 1024))
        c.sendraw(b"D APPEND INBOX {%d+}\r\n" % len(small) + small)
        if cut == "in second literal":
            c.sendraw(b" {%d+}\r\n" % len(big) + big[:200 * 1024])
        elif cut == "after plus":
            c.sendraw(b" {%d}\r\n" % len(big))
            assert c.readline(timeout=5).startswith(b"+ ")
        else:
            c.sendraw(b" {%d+}\r\n" % len(big) + big)
        time.sleep(0.3)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    # the server goes on serving, stored nothing, and left no file behind
    c = RawImap(srv.ports["imap"]).login()
    deadline = time.time() + 5
    while spill_files(srv) != before and time.time() < deadline:
        time.sleep(0.05)
    assert spill_files(srv) == before
    assert messages(c) == 0
    assert srv.messages() == []
    m = msg("after")
    c.sendraw(b"N APPEND INBOX {%d+}\r\n" % len(m) + m + b"\r\n")
    assert re.match(rb"N OK \[APPENDUID \d+ 1\]", c.readline(timeout=5))


def test_mailbox_missing_or_deleted_meanwhile(srv):
    c = RawImap(srv.ports["imap"]).login()
    # missing: NO [TRYCREATE] instead of "+" (RFC 3502 6.3.11 example A004)
    c.sendraw(b"M1 APPEND Nowhere (\\Flagged) {1023}\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"M1 NO [TRYCREATE]"), line
    assert b"Nowhere" not in b"".join(c.ok(b'LIST "" "*"'))
    # deleted by another session after the first message was sent
    c.ok(b"CREATE Box")
    other = RawImap(srv.ports["imap"]).login()
    m = msg("lost")
    c.sendraw(b"M2 APPEND Box {%d}\r\n" % len(m))
    assert c.readline().startswith(b"+ ")
    c.sendraw(m + b" {%d}\r\n" % len(m))
    assert c.readline().startswith(b"+ ")
    other.ok(b"DELETE Box")
    c.sendraw(m + b"\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"M2 NO [TRYCREATE]"), line
    c.ok(b"CREATE Box")
    assert messages(c, b"Box") == 0
    c.ok(b"NOOP")


# ------------------------------------------------------------------ durability


def test_kill9_right_after_ok_keeps_every_message(petrel_factory):
    """The tagged OK comes only once every message is durable: a kill -9
    right after it loses none of them."""
    p = petrel_factory(listen=LISTEN)
    c = RawImap(p.ports["imap"]).login()
    parts = [msg("durable %d" % i, body=("d" * (i * 200 * 1024 + 10))) for i in range(3)]
    c.sendraw(b"K APPEND INBOX" + b"".join(b" (\\Seen) {%d+}\r\n" % len(x) + x for x in parts) +
              b"\r\n")
    line = c.readline(timeout=15)
    assert re.match(rb"K OK \[APPENDUID \d+ 1:3\]", line), line
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait(10)
    p.start()
    rows = p.messages()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert [r[3] for r in rows] == ["durable 0", "durable 1", "durable 2"]
    for uid, x in zip((1, 2, 3), parts):
        assert p.message(uid) == x


# ------------------------------------------------------------------ LITERAL-


def test_literal_plus_is_the_default(srv):
    c = RawImap(srv.ports["imap"])
    assert b"LITERAL+" in caps(c.greeting) and b"LITERAL-" not in caps(c.greeting)
    c.login()
    body = b"Subject: big nonsync\r\n\r\n" + b"n" * 6000
    c.sendraw(b"P APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
    assert c.readline(timeout=5).startswith(b"P OK [APPENDUID")


def test_literal_minus(petrel_factory):
    p = petrel_factory(listen=LISTEN, extra={"imap": {"literal_plus": "no"}})
    c = RawImap(p.ports["imap"])
    # RFC 7888 5: never both
    assert b"LITERAL-" in caps(c.greeting) and b"LITERAL+" not in caps(c.greeting)
    c.login()
    after = c.ok(b"CAPABILITY")[0]
    assert b" LITERAL-" in after and b"LITERAL+" not in after
    # over 4096 octets: BAD [TOOBIG] for APPEND (RFC 7888 5); the octets,
    # which the client sends anyway, are skipped and the session goes on
    big = b"Subject: five thousand\r\n\r\n" + b"f" * (5000 - 26)
    assert len(big) == 5000
    c.sendraw(b"B1 APPEND INBOX {5000+}\r\n" + big + b"\r\nB2 NOOP\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"B1 BAD [TOOBIG]"), line
    assert c.readline(timeout=5).startswith(b"B2 OK"), "the next command was not found"
    # small ones work, 4096 itself too, and {n} of any size
    small = msg("small literal minus")
    c.sendraw(b"S1 APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n")
    assert re.match(rb"S1 OK \[APPENDUID \d+ 1\]", c.readline(timeout=5))
    edge = b"Subject: edge\r\n\r\n" + b"e" * (4096 - 17)
    assert len(edge) == 4096
    c.sendraw(b"S2 APPEND INBOX {4096+}\r\n" + edge + b"\r\n")
    assert re.match(rb"S2 OK \[APPENDUID \d+ 2\]", c.readline(timeout=5))
    c.sendraw(b"S3 APPEND INBOX {5000}\r\n")
    assert c.readline(timeout=5).startswith(b"+ ")
    c.sendraw(big + b"\r\n")
    assert re.match(rb"S3 OK \[APPENDUID \d+ 3\]", c.readline(timeout=5))
    # in a MULTIAPPEND: the whole command is refused, nothing stored
    c.sendraw(b"B3 APPEND INBOX {%d+}\r\n" % len(small) + small + b" {5000+}\r\n" + big +
              b"\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"B3 BAD [TOOBIG]"), line
    c.ok(b"NOOP")
    assert messages(c) == 3
    # other commands: BAD [TOOBIG] too (RFC 7888 4, choice 1), session goes on
    c.sendraw(b"B4 SEARCH TEXT {5000+}\r\n" + b"s" * 5000 + b"\r\n")
    line = c.readline(timeout=5)
    assert line.startswith(b"B4 BAD [TOOBIG]"), line
    c.ok(b"SELECT INBOX")
    c.sendraw(b"B5 SEARCH TEXT {4+}\r\nfive\r\n")
    assert c.wait(b"B5", timeout=5)[1].startswith(b"B5 OK")
    # before authentication as well
    c2 = RawImap(p.ports["imap"])
    c2.sendraw(b"L1 LOGIN {5000+}\r\n" + b"u" * 5000 + b" x\r\n")
    assert c2.readline(timeout=5).startswith(b"L1 BAD [TOOBIG]")
    c2.ok(b"NOOP")
    # imaplib (synchronizing literals only) is served as before
    m = imaplib.IMAP4("127.0.0.1", p.ports["imap"])
    m.login(*BOB)
    typ, data = m.append("INBOX", "(\\Seen)", None, big)
    assert typ == "OK" and b"APPENDUID" in data[0], data
    m.logout()
