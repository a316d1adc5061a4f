"""SMTP intake under hostile or broken input: line limits, junk, resource
limits, pipelining floods. The server must answer precisely and stay usable."""
import socket
import time

from smtp_helpers import SMTPConn, deliver, inbox, stored_body, wait_for

ALICE = "alice@example.test"
BOB = "bob@example.test"


def test_command_line_limit_boundary(petrel):
    """smtp_line_max (default 1000) counts the CRLF, like RFC 5321 4.5.3.1.4."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        ok = "NOOP " + "x" * (1000 - 5 - 2)
        assert len(ok) + 2 == 1000
        c.expect(ok, 250)
        c.expect(ok + "x", 500, "5.5.2")
        c.expect("NOOP", 250)


def test_overlong_command_line_500_and_session_survives(petrel_factory):
    p = petrel_factory(extra={"limits": {"smtp_line_max": "512"}})
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<" + "a" * 600 + "@remote.example>")
        assert (r.code, r.enhanced) == (500, "5.5.2"), r
        # the discarded line did not leave state behind
        c.expect("NOOP", 250)
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: after long\r\n\r\nx\r\n")
    assert [m[3] for m in p.messages()] == ["after long"]


def test_100k_line_without_newline_gives_one_error(petrel):
    """A huge line arriving in several reads is discarded through its end and
    answered once; the command after it is parsed normally."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        junk = b"X" * (100 * 1024)
        c.send(junk[:40000])
        time.sleep(0.05)  # let the server see a partial line first
        c.send(junk[40000:])
        time.sleep(0.05)
        c.send(b"\r\nVRFY marker\r\n")
        r = c.reply()
        assert (r.code, r.enhanced) == (500, "5.5.2"), r
        assert c.reply().code == 252  # VRFY, not a second error
        assert c.nothing_pending()
        c.expect("NOOP", 250)


def test_long_line_ending_with_split_crlf(petrel):
    """An overlong line whose CR and LF arrive in different reads yields one
    error, not a second one for the LF."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(b"NOOP " + b"y" * 3000 + b"\r")
        time.sleep(0.05)
        c.send(b"\nVRFY marker\r\n")
        assert c.reply().code == 500
        assert c.reply().code == 252
        assert c.nothing_pending()


def test_nul_and_binary_junk(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.send(b"NO\x00OP\r\n")
        assert c.reply().code == 500
        c.send(b"\x80\x81\xfe\xff\x01\x02\x1b[31m\r\n")
        assert c.reply().code == 500
        c.send(b"\x00\x00\x00\x00\r\n")
        assert c.reply().code == 500
        c.expect("NOOP", 250)
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: after junk\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages()] == ["after junk"]


def test_nul_in_mail_address_refused(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<a\x00b@remote.example>\r\n")
        assert c.reply().code == 500
        c.expect("MAIL FROM:<s@remote.example>", 250)


def test_too_many_recipients_452(petrel_factory):
    """RFC 5321 4.5.3.1.10: past the recipient limit, 452 (the client retries
    the rest later); the accepted recipients still get the message."""
    p = petrel_factory(extra={"limits": {"max_recipients": "3"}})
    for name in ("carol", "dave"):
        p.cli("user", "add", f"{name}@example.test", input="pw\n")
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        for rc in (ALICE, BOB, "carol@example.test"):
            c.expect(f"RCPT TO:<{rc}>", 250)
        c.expect("RCPT TO:<dave@example.test>", 452, "4.5.3")
        c.expect("DATA", 354)
        c.send(b"Subject: three\r\n\r\nx\r\n.\r\n")
        assert c.reply().code == 250
        # the limit is per transaction
        c.mail_transaction("s@remote.example", ["dave@example.test"],
                           b"Subject: four\r\n\r\nx\r\n")
    for rc in (ALICE, BOB, "carol@example.test"):
        assert [m[3] for m in p.messages(rc)] == ["three"], rc
    assert [m[3] for m in p.messages("dave@example.test")] == ["four"]


def test_message_over_max_size_without_size_param(petrel_factory):
    """RFC 1870 6.3: an oversized message is read to its end, refused with
    552 after the final dot, nothing is stored; the session goes on."""
    p = petrel_factory(extra={"limits": {"max_message_size": "2048"}})
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 60 + b".\r\n")
        r = c.reply()
        assert (r.code, r.enhanced) == (552, "5.3.4"), r
        assert c.nothing_pending()
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: small\r\n\r\nx\r\n")
    assert [m[3] for m in p.messages()] == ["small"]


def test_message_size_limit_boundary(petrel_factory):
    """RFC 1870: the size counts the content with its CRLFs, but not the
    terminating dot line nor stuffing dots. Exactly max_message_size fits."""
    p = petrel_factory(extra={"limits": {"max_message_size": "2048"}})
    head = b"Subject: edge\r\n\r\n"
    line = b".yyyyyyy\r\n"  # 10 octets, sent dot-stuffed as 11
    body = head + line * ((2048 - len(head)) // 10 - 3)
    body += b"z" * (2048 - len(body) - 2) + b"\r\n"
    assert len(body) == 2048
    deliver(p, body)
    [raw] = inbox(p)
    assert stored_body(raw) == body
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        r = c.mail_transaction("s@remote.example", [ALICE], body[:-2] + b"z\r\n", check=False)
        assert r.code == 552, r
    assert len(p.messages()) == 1


def test_max_errors_closes_with_421(petrel_factory):
    """After max_errors (3) client errors the session ends with 421; the
    pipelined commands after it are not answered."""
    p = petrel_factory(extra={"limits": {"max_errors": "3"}})
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        c.send(b"BOGUS1\r\nBOGUS2\r\nBOGUS3\r\nBOGUS4\r\nNOOP\r\nNOOP\r\n")
        codes = []
        while not codes or codes[-1] != 421:
            codes.append(c.reply().code)
            assert len(codes) <= 5, codes
        assert codes in ([500, 500, 500, 421], [500, 500, 500, 500, 421]), codes
        assert c.wait_closed(5) == b""


def test_max_errors_not_reached_by_good_commands(petrel_factory):
    p = petrel_factory(extra={"limits": {"max_errors": "3"}})
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        c.expect("BOGUS", 500)
        for _ in range(20):
            c.expect("NOOP", 250)
        c.expect("BOGUS", 500)
        c.expect("VRFY x", 252)


def test_command_timeout_421(petrel_factory):
    p = petrel_factory(extra={"limits": {"command_timeout": "1"}})
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        t0 = time.monotonic()
        r = c.reply(timeout=8)
        elapsed = time.monotonic() - t0
        assert (r.code, r.enhanced) == (421, "4.4.2"), r
        assert 0.5 <= elapsed < 5, elapsed
        assert c.wait_closed(5) == b""


def test_command_timeout_resets_on_activity(petrel_factory):
    p = petrel_factory(extra={"limits": {"command_timeout": "1"}})
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            c.expect("NOOP", 250)
            time.sleep(0.2)
        r = c.reply(timeout=8)
        assert r.code == 421


def test_data_timeout_421(petrel_factory):
    p = petrel_factory(extra={"limits": {"data_timeout": "1", "command_timeout": "30"}})
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: stalled\r\n\r\npartial")
        r = c.reply(timeout=8)
        assert (r.code, r.enhanced) == (421, "4.4.2"), r
        assert c.wait_closed(5) == b""
    assert p.messages() == []


def test_pipelining_flood_2000_noops(petrel):
    """RFC 2920: any number of commands in one write, answered in order."""
    n = 2000
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        batch = b"".join(b"VRFY x\r\n" if i % 250 == 249 else b"NOOP\r\n" for i in range(n))
        c.send(batch)
        for i in range(n):
            r = c.reply()
            assert r.code == (252 if i % 250 == 249 else 250), (i, r)
        assert c.nothing_pending()
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: after flood\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages()] == ["after flood"]


def test_flood_of_commands_while_client_does_not_read(petrel_factory):
    """A client that writes many commands and reads nothing for a while must
    not make the server lose or reorder replies (output flow control)."""
    p = petrel_factory(extra={"limits": {"output_high": "4096"}})
    n = 20000
    with SMTPConn(p.smtp_port) as c:
        c.ehlo()
        c.send(b"NOOP\r\n" * n + b"VRFY end\r\n")
        got = 0
        while True:
            r = c.reply()
            if r.code == 252:
                break
            assert r.code == 250
            got += 1
        assert got == n


def test_pipelined_transaction_batch(petrel):
    """RFC 2920 3.1: MAIL, RCPTs and DATA in one group; replies in order, the
    refused recipient does not spoil the transaction."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<s@remote.example>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        codes = [r.code for r in c.replies(5)]
        assert codes == [250, 250, 550, 250, 354]
        c.send(b"Subject: batch\r\n\r\nx\r\n.\r\n"
               b"MAIL FROM:<t@remote.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert [r.code for r in c.replies(4)] == [250, 250, 250, 354]
        c.send(b"Subject: batch2\r\n\r\ny\r\n.\r\nQUIT\r\n")
        assert [r.code for r in c.replies(2)] == [250, 221]
    assert [m[3] for m in petrel.messages(ALICE)] == ["batch"]
    assert [m[3] for m in petrel.messages(BOB)] == ["batch", "batch2"]


def test_data_with_no_valid_recipients_554(petrel):
    """RFC 2920 3.1 / RFC 5321 3.3: DATA after every RCPT failed -> 554, and
    the session is not in DATA mode (what follows is read as commands)."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<s@remote.example>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<x@remote.example>\r\n"
               b"DATA\r\n")
        codes = [(r.code, r.enhanced) for r in c.replies(4)]
        assert codes == [(250, "2.1.0"), (550, "5.1.1"), (550, "5.7.1"), (554, "5.5.1")]
        c.expect("NOOP", 250)
        c.expect("RSET", 250)
    assert petrel.messages() == []


def test_max_connections(petrel_factory):
    p = petrel_factory(extra={"limits": {"max_connections": "2"}})
    a = SMTPConn(p.smtp_port)
    b = SMTPConn(p.smtp_port)
    try:
        assert a.greeting.code == b.greeting.code == 220
        third = SMTPConn(p.smtp_port, greeting=False)
        r = third.reply()
        assert r.code == 421, r
        assert third.wait_closed(5) == b""
        third.close()
        # the two admitted sessions are unaffected
        a.expect("NOOP", 250)
        b.expect("NOOP", 250)
        a.expect("QUIT", 221)
        a.wait_closed(5)

        # once a slot is free, a new connection is admitted
        def admitted():
            c = SMTPConn(p.smtp_port, greeting=False)
            r = c.reply()
            if r.code == 220:
                return c
            c.close()
            return None
        c = wait_for(admitted, timeout=5, what="a free connection slot")
        c.ehlo()
        c.close()
    finally:
        a.close()
        b.close()


def test_connection_slots_released_after_abnormal_ends(petrel_factory):
    """Every way a session can end gives its slot back: after each kind of
    ending below, max_connections (2) simultaneous sessions still fit."""
    p = petrel_factory(extra={"limits": {"max_connections": "2", "max_errors": "2"}})

    def both_slots_free():
        # The server frees a slot when it notices the close: end the probes
        # with QUIT and wait for the server's close, so that they do not
        # hold slots themselves afterwards.
        conns = []
        try:
            for _ in range(2):
                c = SMTPConn(p.smtp_port, greeting=False)
                conns.append(c)
                c.greeting = c.reply()
                if c.greeting.code != 220:
                    return False
            return True
        except (OSError, AssertionError):
            return False
        finally:
            for c in conns:
                try:
                    if c.greeting is not None and c.greeting.code == 220:
                        c.send(b"QUIT\r\n")
                    c.wait_closed(5)
                except (OSError, AssertionError):
                    pass
                c.close()

    def quit_():
        with SMTPConn(p.smtp_port) as c:
            c.expect("QUIT", 221)
            c.wait_closed(5)

    def reset_in_data():
        c = SMTPConn(p.smtp_port)
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: cut\r\n\r\npartial")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST

    def too_many_errors():
        with SMTPConn(p.smtp_port) as c:
            c.send(b"X\r\nY\r\n")
            c.wait_closed(5)

    def tls_garbage():
        with SMTPConn(p.smtp_port) as c:
            c.expect("STARTTLS", 220)
            c.send(b"not tls at all\r\n" * 10)
            c.wait_closed(10)

    def tls_then_close():
        c = SMTPConn(p.smtp_port)
        c.ehlo()
        c.starttls()
        c.close()  # no close_notify, no QUIT

    for ending in (quit_, reset_in_data, too_many_errors, tls_garbage, tls_then_close):
        ending()
        wait_for(both_slots_free, timeout=5, what=f"free slots after {ending.__name__}")
