"""CHUNKING / BDAT (RFC 3030): counted chunks, no dot-stuffing, no
terminator scanning; a refused BDAT still consumes its chunk (RFC 3030 4.2:
"the server MUST still read the data")."""
import pytest

from smtp_helpers import SMTPConn, inbox, stored_body

ALICE = "alice@example.test"
BOB = "bob@example.test"


def _start(c, rcpts=(ALICE,)):
    c.ehlo()
    c.expect("MAIL FROM:<s@remote.example>", 250)
    for rc in rcpts:
        c.expect(f"RCPT TO:<{rc}>", 250)


def bdat(c, chunk, last=False):
    c.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
    return c.reply()


def test_three_chunks_then_last_byte_exact(petrel):
    parts = [b"Subject: chunked\r\nX-A: 1\r\n\r\n",
             b".leading dot stays\r\n..two dots stay\r\n",
             b"mid\xc3\xa9 line split across ch",
             b"unks\r\n.\r\n"]
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        total = 0
        for part in parts[:3]:
            total += len(part)
            r = bdat(c, part)
            assert r.code == 250, r
            assert str(total) in r.text  # "N octets received"
        r = bdat(c, parts[3], last=True)
        assert (r.code, r.enhanced) == (250, "2.0.0"), r
        c.expect("NOOP", 250)
    [raw] = inbox(petrel)
    assert stored_body(raw) == b"".join(parts)


def test_bdat_zero_last_ends_message(petrel):
    """RFC 3030 2: "BDAT 0 LAST" is a valid way to end the transaction."""
    body = b"Subject: zero last\r\n\r\nbody\r\n"
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        assert bdat(c, body).code == 250
        c.send(b"BDAT 0 LAST\r\n")
        assert c.reply().code == 250
    [raw] = inbox(petrel)
    assert stored_body(raw) == body


def test_bdat_zero_last_alone(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        r = c.cmd("BDAT 0 LAST")
        assert r.code == 250, r
        c.expect("NOOP", 250)
    [raw] = inbox(petrel)
    assert stored_body(raw) == b""


def test_chunk_with_terminator_and_commands_is_data(petrel):
    chunk = b"Subject: tricky\r\n\r\nbefore\r\n.\r\nQUIT\r\nRSET\r\n"
    with SMTPConn(petrel.smtp_port) as c:
        _start(c, rcpts=(ALICE, BOB))
        assert bdat(c, chunk, last=True).code == 250
        # had QUIT been read as a command, the connection would be closed
        c.expect("NOOP", 250)
        assert c.nothing_pending()
    for addr in (ALICE, BOB):
        [raw] = inbox(petrel, addr)
        assert stored_body(raw) == chunk


def test_bdat_before_mail_503_chunk_consumed(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        chunk = b"QUIT\r\nQUIT\r\n"
        r = bdat(c, chunk)
        assert (r.code, r.enhanced) == (503, "5.5.1"), r
        c.expect("NOOP", 250)  # not 221: the chunk was not taken as commands
        assert c.nothing_pending()
        r = bdat(c, b"QUIT\r\n", last=True)
        assert r.code == 503
        c.expect("NOOP", 250)
        # a real transaction afterwards
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        assert bdat(c, b"Subject: ok\r\n\r\nx\r\n", last=True).code == 250
    assert [m[3] for m in petrel.messages()] == ["ok"]


def test_bdat_before_ehlo_503_chunk_consumed(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        r = bdat(c, b"QUIT\r\n")
        assert r.code == 503, r
        c.expect("NOOP", 250)


def test_bdat_without_valid_recipient(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect("RCPT TO:<nobody@example.test>", 550)
        r = bdat(c, b"QUIT\r\n", last=True)
        assert r.code in (503, 554), r
        c.expect("NOOP", 250)
    assert petrel.messages() == []


def test_data_after_bdat_503(petrel):
    """RFC 3030 3: DATA and BDAT may not be mixed in one transaction (503);
    the state is then indeterminate and the client must RSET."""
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        assert bdat(c, b"Subject: mixed\r\n\r\n").code == 250
        r = c.cmd("DATA")
        assert (r.code, r.enhanced) == (503, "5.5.1"), r
        c.expect("RSET", 250)
        # DATA in a later transaction of the same session is fine
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: by data\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages()] == ["by data"]


def test_rcpt_after_bdat_chunk_is_not_silently_dropped(petrel):
    """RFC 3030 2: "After all MAIL and RCPT responses are collected and
    processed, the message is sent using a series of BDAT commands." A RCPT
    after the first chunk is out of sequence (503). If the server accepts it
    with 250 instead, it has taken responsibility for that recipient
    (RFC 5321 4.1.1.3 / 6.1) and must deliver the message to it."""
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        assert bdat(c, b"Subject: late rcpt\r\n\r\n").code == 250
        r = c.cmd(f"RCPT TO:<{BOB}>")
        assert r.code in (250, 503), r
        late_accepted = r.code == 250
        if r.code == 503:
            c.expect("RSET", 250)
            c.expect("MAIL FROM:<s@remote.example>", 250)
            c.expect(f"RCPT TO:<{ALICE}>", 250)
        assert bdat(c, b"body\r\n", last=True).code == 250
    if late_accepted:
        assert [m[3] for m in petrel.messages(BOB)] == ["late rcpt"], \
            "RCPT after BDAT got 250 but the recipient never received the message"
    else:
        assert petrel.messages(BOB) == []


def test_bdat_after_last_needs_new_transaction(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        assert bdat(c, b"Subject: one\r\n\r\nx\r\n", last=True).code == 250
        assert bdat(c, b"more\r\n").code == 503
        c.expect("NOOP", 250)
    assert [m[3] for m in petrel.messages()] == ["one"]


def test_rset_aborts_bdat_transaction(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        assert bdat(c, b"Subject: aborted\r\n\r\n").code == 250
        c.expect("RSET", 250)
        assert bdat(c, b"x\r\n", last=True).code == 503
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        assert bdat(c, b"Subject: fresh\r\n\r\ny\r\n", last=True).code == 250
    [raw] = inbox(petrel)
    assert stored_body(raw) == b"Subject: fresh\r\n\r\ny\r\n"


@pytest.mark.parametrize("last_chunk", [True, False], ids=["one-last-chunk", "chunks"])
def test_bdat_over_max_message_size_552(petrel_factory, last_chunk):
    p = petrel_factory(extra={"limits": {"max_message_size": "2048"}})
    with SMTPConn(p.smtp_port) as c:
        _start(c)
        if last_chunk:
            r = bdat(c, b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n", last=True)
        else:
            assert bdat(c, b"Subject: big\r\n\r\n" + b"x" * 1000 + b"\r\n").code == 250
            r = bdat(c, b"y" * 1500 + b"\r\n")
        assert (r.code, r.enhanced) == (552, "5.3.4"), r
        c.expect("NOOP", 250)
        # the next transaction works
        c.expect("RSET", 250)
        _start_again = c.cmd("MAIL FROM:<s@remote.example>")
        assert _start_again.code == 250
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        assert bdat(c, b"Subject: small\r\n\r\nx\r\n", last=True).code == 250
    assert [m[3] for m in p.messages()] == ["small"]


def test_bdat_size_exactly_max(petrel_factory):
    p = petrel_factory(extra={"limits": {"max_message_size": "2048"}})
    body = b"Subject: exact\r\n\r\n"
    body += b"x" * (2048 - len(body) - 2) + b"\r\n"
    with SMTPConn(p.smtp_port) as c:
        _start(c)
        assert bdat(c, body[:1000]).code == 250
        assert bdat(c, body[1000:], last=True).code == 250
    [raw] = inbox(p)
    assert stored_body(raw) == body


def test_pipelined_bdat_in_one_write(petrel):
    """RFC 3030 4.2 with RFC 2920: commands and chunks in a single write."""
    c1, c2, c3 = b"Subject: piped\r\n\r\n", b"a\r\n.b\r\n", b"c\r\n"
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<s@remote.example>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"BDAT %d\r\n%s" % (len(c1), c1) +
               b"BDAT %d\r\n%s" % (len(c2), c2) +
               b"BDAT %d LAST\r\n%s" % (len(c3), c3) +
               b"MAIL FROM:<t@remote.example>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"BDAT 0 LAST\r\n"
               b"QUIT\r\n")
        codes = [r.code for r in c.replies(10)]
        assert codes == [250, 250, 250, 250, 250, 250, 250, 250, 250, 221]
    [raw] = inbox(petrel, ALICE)
    assert stored_body(raw) == c1 + c2 + c3
    assert len(petrel.messages(BOB)) == 2


def test_crlf_split_across_chunks_is_not_bare(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        assert bdat(c, b"Subject: split\r").code == 250
        assert bdat(c, b"\n\r\nbody\r").code == 250
        assert bdat(c, b"\n", last=True).code == 250
    [raw] = inbox(petrel)
    assert stored_body(raw) == b"Subject: split\r\n\r\nbody\r\n"


@pytest.mark.parametrize("body", [b"Subject: lf\r\n\r\nbare\nlf\r\n",
                                  b"Subject: cr\r\n\r\nbare\rcr\r\n",
                                  b"Subject: trailing cr\r\n\r\nend\r"],
                         ids=["bare-lf", "bare-cr", "trailing-cr"])
def test_bdat_bare_line_endings_refused(petrel, body):
    """RFC 5321 2.3.8 applies to BDAT content too (no BINARYMIME offered)."""
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        r = bdat(c, body, last=True)
        assert (r.code, r.enhanced) == (550, "5.6.0"), r
        c.expect("NOOP", 250)
    assert petrel.messages() == []


def test_bdat_syntax_errors(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        _start(c)
        for bad in ("BDAT", "BDAT abc", "BDAT -1", "BDAT 5 FIRST", "BDAT 99999999999999999999999"):
            r = c.cmd(bad)
            assert r.code == 501, (bad, r)
        c.expect("NOOP", 250)
