"""POP3 (RFC 1939, RFC 2449 CAPA, RFC 3206, RFC 2595 STLS, RFC 5034 AUTH):
every command through Python's poplib and on raw sockets, the maildrop
semantics (snapshot at login, DELE/RSET/QUIT, the lock, UIDL stability),
IMAP beside POP3, TLS, and bad input."""
import imaplib
import os
import poplib
import signal
import socket
import ssl
import time

import pytest

from pop3_helpers import (ALICE, BOB, LISTEN, RawPop3, apop_digest, client_tls_context,
                          crlf, deliver, imap_port, make_message, pop3_port, pop3s_port,
                          stored, unstuff)


@pytest.fixture
def srv(petrel_factory):
    return petrel_factory(listen=LISTEN)


def fill(p, n, rcpt="alice@example.test", body="Hello.\n"):
    msgs = []
    for i in range(n):
        m = make_message(f"message {i + 1}", body=body, to=rcpt)
        deliver(p, m, rcpt=rcpt)
        msgs.append(m)
    return msgs


def poplib_login(p, user=ALICE):
    c = poplib.POP3("127.0.0.1", pop3_port(p), timeout=30)
    c.user(user[0])
    c.pass_(user[1])
    return c


# ------------------------------------------------------------ greeting, CAPA

def test_greeting_timestamp_and_capa(srv):
    a, b = RawPop3(pop3_port(srv)), RawPop3(pop3_port(srv))
    assert a.greeting.startswith(b"+OK ") and a.greeting.endswith(b"@mx.example.test>\r\n")
    ts_a = a.greeting[a.greeting.index(b"<"):].strip()
    ts_b = b.greeting[b.greeting.index(b"<"):].strip()
    assert ts_a != ts_b  # unique per greeting (RFC 1939 7)
    b.close()

    assert a.cmd("CAPA") == b"+OK Capability list follows"
    capa = a.multiline().split(b"\r\n")[:-1]
    assert capa == [b"TOP", b"UIDL", b"USER", b"SASL PLAIN LOGIN SCRAM-SHA-256", b"RESP-CODES",
                    b"AUTH-RESP-CODE", b"PIPELINING", b"EXPIRE NEVER", b"LOGIN-DELAY 0",
                    b"IMPLEMENTATION Petrel", b"STLS"]
    a.login()
    assert a.cmd("CAPA").startswith(b"+OK")
    capa = a.multiline().split(b"\r\n")[:-1]
    assert b"USER" not in capa and b"STLS" not in capa
    assert not any(c.startswith(b"SASL") for c in capa)
    assert b"TOP" in capa and b"UIDL" in capa and b"PIPELINING" in capa
    assert a.cmd("QUIT").startswith(b"+OK")
    assert a.closed()


def test_quit_in_authorization(srv):
    c = RawPop3(pop3_port(srv))
    assert c.cmd("QUIT").startswith(b"+OK")
    assert c.closed()


# ------------------------------------------------------------ every command

def test_poplib_every_command(srv):
    msgs = fill(srv, 3)
    rows = stored(srv)
    assert len(rows) == 3
    c = poplib.POP3("127.0.0.1", pop3_port(srv), timeout=30)
    assert c.user(ALICE[0]).startswith(b"+OK")
    assert c.pass_(ALICE[1]).startswith(b"+OK")
    total = sum(size for _uid, size in rows)
    assert c.stat() == (3, total)
    resp, listing, _ = c.list()
    assert resp.startswith(b"+OK")
    assert listing == [f"{i + 1} {size}".encode() for i, (_u, size) in enumerate(rows)]
    assert c.list(2) == f"+OK 2 {rows[1][1]}".encode()
    resp, uidls, _ = c.uidl()
    ids = [u.split()[1] for u in uidls]
    assert len(set(ids)) == 3
    assert c.uidl(3) == b"+OK 3 " + ids[2]
    for i, m in enumerate(msgs):
        resp, lines, octets = c.retr(i + 1)
        assert resp == f"+OK {rows[i][1]} octets".encode()
        assert b"\r\n".join(lines) + b"\r\n" == srv.message(rows[i][0])
        assert srv.message(rows[i][0]).endswith(m)
    resp, lines, _ = c.top(1, 0)
    head = srv.message(rows[0][0]).split(b"\r\n\r\n")[0]
    assert b"\r\n".join(lines) == head + b"\r\n"
    assert c.dele(2).startswith(b"+OK")
    assert c.stat() == (2, total - rows[1][1])
    with pytest.raises(poplib.error_proto):
        c.retr(2)
    assert c.rset().startswith(b"+OK")
    assert c.stat() == (3, total)
    assert c.noop() == b"+OK"
    assert c.dele(1).startswith(b"+OK")
    assert c.quit().startswith(b"+OK")
    assert [u for u, _s in stored(srv)] == [rows[1][0], rows[2][0]]


def test_list_sizes_are_the_octets_retr_sends(srv):
    bodies = ["plain\n", ".leading dot\n..two\n.\nend\n", "x" * 5000 + "\n.\n" * 50]
    for i, b in enumerate(bodies):
        deliver(srv, make_message(f"s{i}", body=b))
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("LIST").startswith(b"+OK")
    sizes = [int(l.split()[1]) for l in c.multiline().split(b"\r\n")[:-1]]
    rows = stored(srv)
    assert sizes == [size for _u, size in rows]
    for i, (uid, size) in enumerate(rows):
        assert c.cmd(f"RETR {i + 1}") == f"+OK {size} octets".encode()
        raw = c.multiline()
        content = unstuff(raw)
        assert len(content) == size
        assert content == srv.message(uid)
    c.cmd("QUIT")


def test_byte_stuffing_on_the_wire(srv):
    deliver(srv, make_message("dots", body=".\n..\n.x\nmid.dle\n. \n"))
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("RETR 1").startswith(b"+OK")
    raw = c.multiline()
    assert raw.endswith(b"\r\n\r\n..\r\n...\r\n..x\r\nmid.dle\r\n.. \r\n")
    assert c.cmd("TOP 1 2").startswith(b"+OK")
    top = c.multiline()
    assert top.endswith(b"\r\n\r\n..\r\n...\r\n")
    c.cmd("QUIT")


def test_top(srv):
    deliver(srv, make_message("top", body="l1\nl2\nl3\n"))
    uid = stored(srv)[0][0]
    whole = srv.message(uid)
    head, body = whole.split(b"\r\n\r\n", 1)
    c = RawPop3(pop3_port(srv))
    c.login()
    for n, want in [(0, b""), (1, b"l1\r\n"), (2, b"l1\r\nl2\r\n"), (3, body), (1000, body),
                    (99999999999999999999999, body)]:
        assert c.cmd(f"TOP 1 {n}").startswith(b"+OK")
        assert c.multiline() == head + b"\r\n\r\n" + want
    c.cmd("QUIT")


def raw_append(p, msg):
    """IMAP APPEND of these exact octets (imaplib would turn LF into CRLF)."""
    s = socket.create_connection(("127.0.0.1", imap_port(p)), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(f'a LOGIN "{ALICE[0]}" "{ALICE[1]}"\r\n'.encode())
    assert f.readline().startswith(b"a OK")
    s.sendall(b"b APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert f.readline().startswith(b"b OK")
    s.sendall(b"c LOGOUT\r\n")
    s.close()


def test_message_without_final_crlf_and_bare_lf(srv):
    """IMAP APPEND can store what SMTP refuses: no CRLF at the end, bare LF.
    RETR sends the stored octets (LIST size), stuffs after every LF, and
    adds the CRLF the terminator needs."""
    raw_append(srv, b"Subject: a\r\n\r\nno end")
    raw_append(srv, b"Subject: b\n\nline\n.dot\n")
    rows = stored(srv)
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("LIST 1") == f"+OK 1 {rows[0][1]}".encode()
    assert c.cmd("RETR 1").startswith(b"+OK")
    assert c.multiline() == b"Subject: a\r\n\r\nno end\r\n"
    assert c.cmd("RETR 2").startswith(b"+OK")
    c.send(b"NOOP\r\n")
    data = b""
    while not data.endswith(b"+OK\r\n"):
        assert c._fill()
        data, c.buf = data + c.buf, b""
    assert data == b"Subject: b\n\nline\n..dot\n.\r\n+OK\r\n"
    assert len(b"Subject: b\n\nline\n.dot\n") == rows[1][1]
    c.cmd("QUIT")


# ------------------------------------------------------------ maildrop semantics

def test_dele_quit_removes_durably(srv):
    fill(srv, 4)
    rows = stored(srv)
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("DELE 1") == b"+OK Message 1 deleted"
    assert c.cmd("DELE 3").startswith(b"+OK")
    assert c.cmd("STAT") == f"+OK 2 {rows[1][1] + rows[3][1]}".encode()
    assert c.cmd("LIST").startswith(b"+OK 2 messages")
    assert c.multiline() == f"2 {rows[1][1]}\r\n4 {rows[3][1]}\r\n".encode()
    assert c.cmd("UIDL").startswith(b"+OK")
    assert len(c.multiline().split(b"\r\n")[:-1]) == 2
    assert stored(srv) == rows  # only marked so far
    assert c.cmd("QUIT") == b"+OK Logging out, 2 messages deleted"
    # the +OK came after the commit: the database already says so
    assert stored(srv) == [rows[1], rows[3]]
    assert c.closed()
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("STAT") == f"+OK 2 {rows[1][1] + rows[3][1]}".encode()
    c.cmd("QUIT")


def test_rset_unmarks(srv):
    fill(srv, 2)
    c = poplib_login(srv)
    c.dele(1)
    c.dele(2)
    assert c.stat() == (0, 0)
    c.rset()
    assert c.stat()[0] == 2
    assert c.quit() == b"+OK Logging out, no messages deleted"
    assert len(stored(srv)) == 2


def test_dropped_connection_deletes_nothing(srv):
    fill(srv, 3)
    c = RawPop3(pop3_port(srv))
    c.login()
    for i in (1, 2, 3):
        assert c.cmd(f"DELE {i}").startswith(b"+OK")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # RST, no QUIT
    time.sleep(0.3)
    assert len(stored(srv)) == 3
    c = poplib_login(srv)  # and the lock went with the connection
    assert c.stat()[0] == 3
    c.quit()


def test_one_session_per_maildrop(srv):
    fill(srv, 1)
    a = RawPop3(pop3_port(srv))
    a.login()
    b = RawPop3(pop3_port(srv))
    assert b.cmd(f"USER {ALICE[0]}").startswith(b"+OK")
    assert b.cmd(f"PASS {ALICE[1]}").startswith(b"-ERR [IN-USE]")
    # another user is not affected; IMAP may run beside
    bob = poplib_login(srv, BOB)
    bob.quit()
    im = imaplib.IMAP4("127.0.0.1", imap_port(srv))
    im.login(*ALICE)
    assert im.select("INBOX")[0] == "OK"
    im.logout()
    # b may try again once a has quit
    assert a.cmd("QUIT").startswith(b"+OK")
    b.login()
    assert b.cmd("STAT").startswith(b"+OK 1 ")
    b.cmd("QUIT")


def test_delivered_during_session_appears_at_next_login(srv):
    fill(srv, 2)
    c = RawPop3(pop3_port(srv))
    c.login()
    stat = c.cmd("STAT")
    assert stat.startswith(b"+OK 2 ")
    deliver(srv, make_message("late"))
    assert len(stored(srv)) == 3
    assert c.cmd("STAT") == stat
    assert c.cmd("LIST").startswith(b"+OK")
    assert len(c.multiline().split(b"\r\n")[:-1]) == 2
    assert c.cmd("RETR 3") == b"-ERR No such message"
    assert c.cmd("DELE 1").startswith(b"+OK")
    assert c.cmd("QUIT").startswith(b"+OK")
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("STAT").startswith(b"+OK 2 ")
    assert c.cmd("TOP 2 0").startswith(b"+OK")
    assert b"Subject: late" in c.multiline()
    c.cmd("QUIT")


def uidl_map(p):
    c = poplib_login(p)
    _r, lines, _o = c.uidl()
    c.quit()
    return [l.split()[1] for l in lines]


def test_uidl_stable_across_imap_activity_and_restart(srv):
    fill(srv, 4)
    before = uidl_map(srv)
    assert len(set(before)) == 4
    assert all(0x21 <= ch <= 0x7e for u in before for ch in u) and all(len(u) <= 70 for u in before)
    im = imaplib.IMAP4("127.0.0.1", imap_port(srv))
    im.login(*ALICE)
    im.select("INBOX")
    im.store("2", "+FLAGS", "(\\Seen \\Flagged)")
    im.store("1", "+FLAGS", "(\\Deleted)")
    im.expunge()
    im.create("Other")
    im.copy("1", "Other")  # the former message 2
    im.logout()
    after = uidl_map(srv)
    assert after == before[1:]
    srv.stop()
    srv.start()
    assert uidl_map(srv) == before[1:]
    deliver(srv, make_message("new"))
    again = uidl_map(srv)
    assert again[:3] == before[1:] and again[3] not in before


def test_dele_quit_seen_by_imap_as_expunge(srv):
    fill(srv, 3)
    im = imaplib.IMAP4("127.0.0.1", imap_port(srv))
    im.login(*ALICE)
    typ, data = im.select("INBOX")
    assert data == [b"3"]
    c = poplib_login(srv)
    c.dele(2)
    c.quit()
    deadline = time.time() + 10
    expunged = []
    while time.time() < deadline and not expunged:
        im.noop()
        expunged = im.untagged_responses.pop("EXPUNGE", [])
        time.sleep(0.05)
    assert expunged == [b"2"]
    typ, data = im.search(None, "ALL")
    assert data == [b"1 2"]
    im.logout()


def test_message_expunged_by_imap_during_session(srv):
    fill(srv, 2)
    c = RawPop3(pop3_port(srv))
    c.login()
    im = imaplib.IMAP4("127.0.0.1", imap_port(srv))
    im.login(*ALICE)
    im.select("INBOX")
    im.store("1", "+FLAGS", "(\\Deleted)")
    im.expunge()
    im.logout()
    assert c.cmd("STAT").startswith(b"+OK 2 ")  # the snapshot stays
    assert c.cmd("RETR 1") == b"-ERR Message 1 is no longer available"
    assert c.cmd("RETR 2").startswith(b"+OK")
    assert b"Subject: message 2" in c.multiline()
    assert c.cmd("DELE 1").startswith(b"+OK")
    assert c.cmd("DELE 2").startswith(b"+OK")
    assert c.cmd("QUIT") == b"+OK Logging out, 2 messages deleted"
    assert stored(srv) == []


# ------------------------------------------------------------ APOP

def test_apop(srv):
    fill(srv, 1)
    srv.cli("user", "apop", ALICE[0], input="apop-secret\n")
    c = poplib.POP3("127.0.0.1", pop3_port(srv), timeout=30)
    assert c.apop(ALICE[0], "apop-secret").startswith(b"+OK")
    assert c.stat()[0] == 1
    c.quit()
    # raw: the digest from the greeting, hex in either case
    r = RawPop3(pop3_port(srv))
    d = apop_digest(r.greeting, "apop-secret").upper()
    assert r.cmd(f"APOP {ALICE[0]} {d}").startswith(b"+OK")
    r.cmd("QUIT")
    # a wrong secret, a user without one, an unknown user: all the same
    for user, secret in [(ALICE[0], "wrong"), (BOB[0], "apop-secret"),
                         ("nobody@example.test", "x")]:
        r = RawPop3(pop3_port(srv))
        t0 = time.time()
        resp = r.cmd(f"APOP {user} {apop_digest(r.greeting, secret)}")
        assert resp == b"-ERR [AUTH] Authentication failed"
        assert time.time() - t0 >= 0.9
        r.close()
    # the password is not an APOP secret
    r = RawPop3(pop3_port(srv))
    assert r.cmd(f"APOP {BOB[0]} {apop_digest(r.greeting, BOB[1])}").startswith(b"-ERR [AUTH]")
    r.close()
    # a digest for another greeting does not work
    r1, r2 = RawPop3(pop3_port(srv)), RawPop3(pop3_port(srv))
    assert r2.cmd(f"APOP {ALICE[0]} {apop_digest(r1.greeting, 'apop-secret')}").startswith(
        b"-ERR [AUTH]")
    r1.close()
    r2.close()
    # --off removes it
    srv.cli("user", "apop", ALICE[0], "--off")
    r = RawPop3(pop3_port(srv))
    assert r.cmd(f"APOP {ALICE[0]} {apop_digest(r.greeting, 'apop-secret')}").startswith(
        b"-ERR [AUTH]")
    r.close()


def test_apop_cli(srv):
    p = srv.cli("user", "apop", ALICE[0], input=ALICE[1] + "\n", check=False)
    assert p.returncode == 65 and "must not be the login password" in p.stderr
    p = srv.cli("user", "apop", "nobody@example.test", input="x\n", check=False)
    assert p.returncode == 67
    p = srv.cli("user", "apop", ALICE[0], input="\n", check=False)
    assert p.returncode == 65 and "empty" in p.stderr
    p = srv.cli("user", "apop", ALICE[0], "--of", check=False)
    assert p.returncode == 64
    srv.cli("user", "apop", ALICE[0], input="s3\n")
    srv.cli("user", "apop", ALICE[0], "--off")
    srv.cli("user", "apop", ALICE[0], "--off")  # already off: fine


# ------------------------------------------------------------ SASL

def b64(s):
    import base64
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def test_auth_plain_and_login(srv):
    fill(srv, 1)
    plain = b64(f"\0{ALICE[0]}\0{ALICE[1]}")
    c = RawPop3(pop3_port(srv))
    assert c.cmd("AUTH").startswith(b"+OK")
    assert c.multiline() == b"PLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n"
    assert c.cmd(f"AUTH PLAIN {plain}").startswith(b"+OK Logged in")
    c.cmd("QUIT")
    c = RawPop3(pop3_port(srv))
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd(plain).startswith(b"+OK")
    c.cmd("QUIT")
    c = RawPop3(pop3_port(srv))
    assert c.cmd("auth login") == b"+ VXNlcm5hbWU6"
    assert c.cmd(b64(ALICE[0])) == b"+ UGFzc3dvcmQ6"
    assert c.cmd(b64(ALICE[1])).startswith(b"+OK")
    c.cmd("QUIT")
    c = RawPop3(pop3_port(srv))
    assert c.cmd(f"AUTH LOGIN {b64(ALICE[0])}") == b"+ UGFzc3dvcmQ6"
    assert c.cmd(b64(ALICE[1])).startswith(b"+OK")
    c.cmd("QUIT")
    # authzid = authcid is fine, another one is not
    c = RawPop3(pop3_port(srv))
    assert c.cmd(f"AUTH PLAIN {b64(ALICE[0] + chr(0) + ALICE[0] + chr(0) + ALICE[1])}").startswith(
        b"+OK")
    c.cmd("QUIT")
    c = RawPop3(pop3_port(srv))
    assert c.cmd(f"AUTH PLAIN {b64(BOB[0] + chr(0) + ALICE[0] + chr(0) + ALICE[1])}").startswith(
        b"-ERR [AUTH]")
    # cancel, bad base64, bad mechanism, empty initial response: session goes on
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd("*") == b"-ERR Authentication cancelled"
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd("!!!!") == b"-ERR Invalid base64"
    assert c.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN =") == b"-ERR Malformed PLAIN response"
    # a wrong password: [AUTH], after the delay
    t0 = time.time()
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE[0] + chr(0) + 'nope')}") == \
        b"-ERR [AUTH] Authentication failed"
    assert time.time() - t0 >= 0.9
    # a SASL response may be longer than a command line
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd(b64(chr(0) + ALICE[0] + chr(0) + "p" * 3000)).startswith(b"-ERR [AUTH]")
    assert c.cmd("CAPA").startswith(b"+OK")
    c.multiline()
    c.close()


# ------------------------------------------------------------ login failures

def test_failed_logins_are_delayed_and_alike(srv):
    c = RawPop3(pop3_port(srv))
    assert c.cmd("USER nobody@example.test") == b"+OK Send PASS"
    t0 = time.time()
    assert c.cmd("PASS whatever") == b"-ERR [AUTH] Authentication failed"
    t1 = time.time()
    assert t1 - t0 >= 0.9
    assert c.cmd(f"USER {ALICE[0]}") == b"+OK Send PASS"
    assert c.cmd("PASS wrong") == b"-ERR [AUTH] Authentication failed"
    assert time.time() - t1 >= 1.9  # grows with each failure
    assert c.cmd("PASS again") == b"-ERR Send USER first"
    assert c.cmd(f"USER {ALICE[0]}").startswith(b"+OK")
    assert c.cmd("PASS third") == b"-ERR [AUTH] Authentication failed"
    assert c.closed()  # after three failures
    # a password with spaces is one argument (RFC 1939 7)
    srv.cli("user", "passwd", BOB[0], input="with  two spaces \n")
    c = RawPop3(pop3_port(srv))
    assert c.cmd(f"USER {BOB[0]}").startswith(b"+OK")
    assert c.cmd("PASS with  two spaces ").startswith(b"+OK")
    c.cmd("QUIT")


# ------------------------------------------------------------ TLS

def test_stls(srv):
    fill(srv, 1)
    c = RawPop3(pop3_port(srv))
    # a command pipelined behind STLS is dropped, not run after the handshake
    c.send("STLS\r\nCAPA\r\n")
    assert c.readline() == b"+OK Begin TLS negotiation\r\n"
    assert c.buf == b""
    c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="localhost")
    assert c.cmd("CAPA") == b"+OK Capability list follows"
    capa = c.multiline()
    assert b"STLS" not in capa and b"USER" in capa
    assert c.cmd("STLS") == b"-ERR Already using TLS"
    c.login()
    assert c.cmd("RETR 1").startswith(b"+OK")
    c.multiline()
    c.cmd("QUIT")
    # poplib's stls()
    p = poplib.POP3("127.0.0.1", pop3_port(srv), timeout=30)
    p.stls(context=client_tls_context())
    p.user(ALICE[0])
    p.pass_(ALICE[1])
    assert p.stat()[0] == 1
    p.quit()


def test_pop3s(srv):
    fill(srv, 2)
    c = poplib.POP3_SSL("127.0.0.1", pop3s_port(srv), context=client_tls_context(), timeout=30)
    assert b"<" in c.getwelcome()
    caps = c.capa()
    assert "STLS" not in caps and "USER" in caps
    c.user(ALICE[0])
    c.pass_(ALICE[1])
    assert c.stat()[0] == 2
    _r, lines, _o = c.retr(2)
    assert b"Subject: message 2" in lines
    c.quit()


def non_loopback_ip():
    for target in ("192.0.2.123", "10.255.255.255", "203.0.113.1"):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((target, 9))
            ip = s.getsockname()[0]
            s.close()
        except OSError:
            continue
        if not ip.startswith("127.") and ip != "0.0.0.0":
            return ip
    return None


def test_plaintext_auth_needs_tls_off_loopback(petrel_factory):
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback address to listen on")
    p = petrel_factory(listen=dict(LISTEN, pop3=f"{ip}:0"))
    srv_port = pop3_port(p)
    p.cli("user", "apop", ALICE[0], input="apop-secret\n")
    c = RawPop3(srv_port, host=ip)
    assert c.cmd("CAPA").startswith(b"+OK")
    capa = c.multiline()
    assert b"USER" not in capa and b"SASL" not in capa and b"STLS" in capa
    assert c.cmd(f"USER {ALICE[0]}").startswith(b"-ERR [AUTH] Plaintext authentication")
    assert c.cmd(f"PASS {ALICE[1]}").startswith(b"-ERR")
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE[0] + chr(0) + ALICE[1])}").startswith(b"-ERR")
    assert c.cmd("AUTH").startswith(b"+OK")
    assert c.multiline() == b""
    # APOP never sends the secret: allowed
    assert c.cmd(f"APOP {ALICE[0]} {apop_digest(c.greeting, 'apop-secret')}").startswith(b"+OK")
    c.cmd("QUIT")
    # after STLS, USER/PASS
    c = RawPop3(srv_port, host=ip)
    assert c.cmd("STLS").startswith(b"+OK")
    c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="localhost")
    assert c.cmd("CAPA").startswith(b"+OK")
    assert b"USER" in c.multiline()
    c.login()
    c.cmd("QUIT")
    # unless configured otherwise
    p2 = petrel_factory(listen=dict(LISTEN, pop3=f"{ip}:0"),
                        extra={"pop3": {"allow_plaintext_auth": "yes"}})
    c = RawPop3(pop3_port(p2), host=ip)
    c.login()
    c.cmd("QUIT")


# ------------------------------------------------------------ bad input

def test_bad_input_session_survives(petrel_factory):
    srv = petrel_factory(listen=LISTEN, extra={"limits": {"max_errors": "100"}})
    fill(srv, 2)
    c = RawPop3(pop3_port(srv))
    expect = [
        ("STAT", b"-ERR STAT not allowed before authentication"),
        ("XYZZY", b"-ERR Unknown command"),
        ("", b"-ERR Empty command"),
        ("R3TR 1", b"-ERR Unknown command"),
        ("USER", b"-ERR Syntax: USER name"),
        ("PASS", b"-ERR Syntax: PASS string"),
        ("APOP alice", b"-ERR Syntax: APOP name digest"),
        ("APOP alice nothex", b"-ERR Syntax: APOP name digest (32 hex digits)"),
        ("STLS now", b"-ERR Syntax: STLS"),
    ]
    for line, want in expect:
        assert c.cmd(line) == want, line
    c.login()
    expect = [
        ("USER x", b"-ERR USER not allowed after authentication"),
        ("STLS", b"-ERR STLS not allowed after authentication"),
        ("RETR", b"-ERR Syntax: RETR msg"),
        ("RETR 1 2", b"-ERR Syntax: RETR msg"),
        ("RETR abc", b"-ERR Invalid message number"),
        ("RETR -1", b"-ERR Invalid message number"),
        ("RETR +1", b"-ERR Invalid message number"),
        ("RETR 0", b"-ERR No such message"),
        ("RETR 3", b"-ERR No such message"),
        ("RETR 99999999999999999999999999", b"-ERR No such message"),
        ("LIST 0", b"-ERR No such message"),
        ("UIDL 7", b"-ERR No such message"),
        ("TOP 1", b"-ERR Syntax: TOP msg n"),
        ("TOP 1 x", b"-ERR Invalid number of lines"),
        ("TOP 1 -1", b"-ERR Invalid number of lines"),
        ("STAT 1", b"-ERR Syntax: STAT"),
        ("NOOP x", b"-ERR Syntax: NOOP"),
        ("LIST 1 2 3 4 5 6", b"-ERR Syntax: LIST [msg]"),
        ("DELE 1", b"+OK Message 1 deleted"),
        ("DELE 1", b"-ERR Message 1 is deleted"),
        ("RETR 1", b"-ERR Message 1 is deleted"),
        ("TOP 1 0", b"-ERR Message 1 is deleted"),
        ("LIST 1", b"-ERR Message 1 is deleted"),
        ("UIDL 1", b"-ERR Message 1 is deleted"),
        ("X" * 600, b"-ERR Line too long (max 512 octets)"),
        ("NO\0OP", b"-ERR NUL octet in command"),
        ("list 2", f"+OK 2 {stored(srv)[1][1]}".encode()),
    ]
    for line, want in expect:
        assert c.cmd(line) == want, line
    # a very long line is refused once, then the session goes on
    c.send(b"A" * 200000 + b"\r\nNOOP\r\n")
    assert c.readline() == b"-ERR Line too long (max 512 octets)\r\n"
    assert c.readline() == b"+OK\r\n"
    assert c.cmd("RSET").startswith(b"+OK")
    assert c.cmd("QUIT") == b"+OK Logging out, no messages deleted"
    assert len(stored(srv)) == 2


def test_too_many_errors_close(srv):
    c = RawPop3(pop3_port(srv))
    for _ in range(9):
        assert c.cmd("BOGUS").startswith(b"-ERR")
    assert c.cmd("CAPA").startswith(b"+OK")  # a success resets the count
    c.multiline()
    for _ in range(9):
        assert c.cmd("BOGUS") == b"-ERR Unknown command"
    assert c.cmd("BOGUS") == b"-ERR Unknown command (too many errors, closing connection)"
    assert c.closed()


def test_pipelining(srv):
    fill(srv, 3)
    c = RawPop3(pop3_port(srv))
    c.send(f"USER {ALICE[0]}\r\nPASS {ALICE[1]}\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\n"
           "TOP 2 0\r\nDELE 3\r\nBOGUS\r\nNOOP\r\nQUIT\r\n")
    assert c.readline().startswith(b"+OK Send PASS")
    assert c.readline().startswith(b"+OK Logged in")
    assert c.readline().startswith(b"+OK 3 ")
    assert c.readline().startswith(b"+OK 3 messages")
    assert len(c.multiline().split(b"\r\n")[:-1]) == 3
    assert c.readline().startswith(b"+OK 2 ")
    assert c.readline().startswith(b"+OK")
    assert b"Subject: message 1" in c.multiline()
    assert c.readline().startswith(b"+OK Top")
    assert b"Subject: message 2" in c.multiline()
    assert c.readline() == b"+OK Message 3 deleted\r\n"
    assert c.readline() == b"-ERR Unknown command\r\n"
    assert c.readline() == b"+OK\r\n"
    assert c.readline() == b"+OK Logging out, 1 message deleted\r\n"
    assert c.closed()
    assert len(stored(srv)) == 2


def test_large_message_streams_to_a_slow_reader(srv):
    line = "." + "x" * 70 + "\n"
    body = line * (3 * 1024 * 1024 // len(line))
    deliver(srv, make_message("big", body=body))
    deliver(srv, make_message("small"))
    uid, size = stored(srv)[0]
    assert size > 3 * 1000 * 1000
    c = RawPop3(pop3_port(srv))
    c.login()
    c.send(b"RETR 1\r\nRETR 1\r\nNOOP\r\n")
    time.sleep(1.0)  # let the server hit its output watermark
    for _ in range(2):
        assert c.readline() == f"+OK {size} octets\r\n".encode()
        assert unstuff(c.multiline()) == srv.message(uid)
    assert c.readline() == b"+OK\r\n"
    assert c.cmd("QUIT").startswith(b"+OK")


def exact_size_message(subject, size):
    """A message of exactly size octets whose body lines mostly start with
    "." (stuffed on the way out), so that stuffing meets every chunk edge."""
    head = make_message(subject, body="")
    lines = []
    total = len(head)
    i = 0
    while total + 80 < size:
        line = (b"." if i % 3 else b"..") + b"%05d" % i + b"y" * 60 + b"\r\n"
        lines.append(line)
        total += len(line)
        i += 1
    last = size - total - 2
    assert 1 <= last <= 100
    lines.append(b"." + b"z" * (last - 1) + b"\r\n")
    msg = head + b"".join(lines)
    assert len(msg) == size
    return msg


def test_retr_top_sizes_around_chunk_and_inline_limits(srv):
    """Content up to 128 KiB is stored inline and read in one go, bigger
    content from a file in 64 KiB chunks: sizes on both sides of both
    limits come out exactly (RFC 1939 7 RETR, TOP; 3 byte-stuffing)."""
    kib = 1024
    sizes = [64 * kib - 1, 64 * kib, 64 * kib + 1, 128 * kib - 1, 128 * kib, 128 * kib + 1,
             192 * kib + 7]
    for n, size in enumerate(sizes):
        raw_append(srv, exact_size_message(f"size {n}", size))  # stored as is
    rows = stored(srv)
    assert [size for _uid, size in rows] == sizes
    c = RawPop3(pop3_port(srv))
    c.login()
    for n, (uid, size) in enumerate(rows):
        whole = srv.message(uid)
        assert c.cmd(f"RETR {n + 1}") == f"+OK {size} octets".encode()
        raw = c.multiline()
        assert raw.count(b"\r\n...") > 100  # ".." lines went out as "..."
        assert unstuff(raw) == whole
        head, body = whole.split(b"\r\n\r\n", 1)
        assert c.cmd(f"TOP {n + 1} 2").startswith(b"+OK")
        assert unstuff(c.multiline()) == head + b"\r\n\r\n" + b"".join(
            body.split(b"\r\n")[i] + b"\r\n" for i in range(2))
    # pipelined, every size at once: one burst of replies
    c.send("".join(f"RETR {n + 1}\r\n" for n in range(len(rows))) + "NOOP\r\n")
    for n, (uid, size) in enumerate(rows):
        assert c.readline() == f"+OK {size} octets\r\n".encode()
        assert unstuff(c.multiline()) == srv.message(uid)
    assert c.readline() == b"+OK\r\n"
    assert c.cmd("QUIT").startswith(b"+OK")


def test_large_message_expunged_while_streaming(srv):
    """A RETR in progress sends the whole message even if IMAP expunges it
    meanwhile: its content file was opened before the +OK. Afterwards the
    message is no longer available (RFC 1939 gives no number to a message
    that is gone; -ERR, the session goes on)."""
    line = "." + "q" * 70 + "\n"
    deliver(srv, make_message("big", body=line * (8 * 1024 * 1024 // len(line))))
    deliver(srv, make_message("small"))
    (uid, size), _ = stored(srv)
    whole = srv.message(uid)
    c = RawPop3(pop3_port(srv), rcvbuf=16 * 1024)
    c.login()
    c.send(b"RETR 1\r\n")
    assert c.readline() == f"+OK {size} octets\r\n".encode()
    time.sleep(0.5)  # the server is now waiting for this client to read
    im = imaplib.IMAP4("127.0.0.1", imap_port(srv))
    im.login(*ALICE)
    im.select("INBOX")
    im.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
    im.expunge()
    im.logout()
    assert uid not in [u for u, _s in stored(srv)]
    # its content file is gone from the store, most of it still unsent
    assert not [f for _d, _s, files in os.walk(os.path.join(srv.data, "blobs")) for f in files]
    assert unstuff(c.multiline()) == whole
    assert c.cmd("RETR 1") == b"-ERR Message 1 is no longer available"
    assert c.cmd("RETR 2").startswith(b"+OK")
    assert b"Subject: small" in c.multiline()
    assert c.cmd("QUIT").startswith(b"+OK")


def test_shutdown_ends_idle_sessions_without_deleting(srv):
    fill(srv, 2)
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("DELE 1").startswith(b"+OK")
    srv.proc.send_signal(signal.SIGTERM)
    assert c.readline(timeout=10) == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    assert c.closed()
    assert srv.stop() == 0
    assert len(stored(srv)) == 2
