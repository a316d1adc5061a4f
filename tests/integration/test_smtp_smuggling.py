"""SMTP smuggling (CVE-2023-51764, CVE-2023-51765, CVE-2023-51766).

RFC 5321 2.3.8: lines end with CRLF only; 4.1.1.4: the mail data ends with
the sequence <CRLF>.<CRLF>. A server that also accepts <LF>.<LF>, <CR>.<CR>
or mixed variants as the end of data can be made to see a second message
("smuggled") that an upstream MTA forwarded as part of the first one's
content. Petrel must see exactly one end of data for each attempt, and it
refuses messages that contain bare CR or LF (550 5.6.0), so nothing is ever
split.

Each attempt sends: a message start, the fake terminator, then a complete
smuggled transaction (MAIL, RCPT to bob, DATA, a header), and finally the
real <CRLF>.<CRLF>. A vulnerable server answers the fake end, then MAIL,
RCPT, DATA and the smuggled message (five replies). A correct one answers
once. A VRFY after the real end marks where the DATA replies stop.
"""
import socket

import pytest

from smtp_helpers import SMTPConn, inbox, stored_body

ALICE = "alice@example.test"
BOB = "bob@example.test"

FAKE_ENDS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "CR.LF": b"\r.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CRCRLF": b"\r\n.\r\r\n",
}

SMUGGLED = (b"MAIL FROM:<evil@x>\r\n"
            b"RCPT TO:<bob@example.test>\r\n"
            b"DATA\r\n"
            b"From: <ceo@example.test>\r\n"
            b"Subject: smuggled\r\n"
            b"\r\n"
            b"smuggled body")


def _open_data(c, rcpts=(ALICE,)):
    c.ehlo()
    c.expect("MAIL FROM:<s@remote.example>", 250)
    for rc in rcpts:
        c.expect(f"RCPT TO:<{rc}>", 250)
    c.expect("DATA", 354)


def _replies_until_marker(c):
    """Replies received before the 252 that answers the VRFY marker."""
    out = []
    while True:
        r = c.reply()
        if r.code == 252:
            return out
        out.append(r)
        assert len(out) < 10, out


@pytest.mark.parametrize("fake", list(FAKE_ENDS.values()), ids=list(FAKE_ENDS))
def test_smuggling_attempt_sees_one_message_end(petrel, fake):
    with SMTPConn(petrel.smtp_port) as c:
        _open_data(c)
        c.send(b"From: <s@remote.example>\r\nSubject: carrier\r\n\r\nhello" + fake +
               SMUGGLED + b"\r\n.\r\n" + b"VRFY marker\r\n")
        got = _replies_until_marker(c)
        assert len(got) == 1, f"server saw more than one end of data: {got}"
        r = got[0]
        assert (r.code, r.enhanced) in ((550, "5.6.0"), (250, "2.0.0")), r
        # the session is usable and in command state
        assert c.nothing_pending()
        c.expect("NOOP", 250)
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: after\r\n\r\nok\r\n")
    assert petrel.messages(BOB) == [], "a smuggled message reached bob"
    subjects = [m[3] for m in petrel.messages(ALICE)]
    if r.code == 550:
        assert subjects == ["after"]
    else:
        # accepted whole: the "smuggled" commands are content of alice's message
        assert subjects == ["carrier", "after"]
        assert b"MAIL FROM:<evil@x>" in inbox(petrel)[0]


def test_bare_lf_in_body_refused(petrel):
    """RFC 5321 2.3.8: bare LF is not a line ending; such a message is
    refused whole (550 5.6.0), nothing is stored, the session goes on."""
    with SMTPConn(petrel.smtp_port) as c:
        _open_data(c, rcpts=(ALICE, BOB))
        c.send(b"Subject: lf\r\n\r\nline one\nline two\r\n.\r\n")
        r = c.reply()
        assert (r.code, r.enhanced) == (550, "5.6.0"), r
        c.expect("NOOP", 250)
    assert petrel.messages(ALICE) == [] and petrel.messages(BOB) == []


def test_bare_cr_in_body_refused(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        _open_data(c)
        c.send(b"Subject: cr\r\n\r\nline one\rline two\r\n.\r\n")
        r = c.reply()
        assert (r.code, r.enhanced) == (550, "5.6.0"), r
    assert petrel.messages() == []


def test_bare_lf_in_header_refused(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        _open_data(c)
        c.send(b"Subject: lf\nX-Other: y\r\n\r\nbody\r\n.\r\n")
        assert c.reply().code == 550
    assert petrel.messages() == []


def test_lf_only_client_cannot_end_data(petrel):
    """A client that only ever sends LF cannot end DATA with "\\n.\\n": the
    server keeps reading; the CRLF terminator then ends it (and the bare LFs
    get the message refused)."""
    with SMTPConn(petrel.smtp_port) as c:
        _open_data(c)
        c.send(b"Subject: unix\n\nbody\n.\n")
        assert c.nothing_pending(0.3), "LF.LF was taken as the end of data"
        c.send(b"\r\n.\r\n")
        r = c.reply()
        assert (r.code, r.enhanced) == (550, "5.6.0"), r
        c.expect("NOOP", 250)
    assert petrel.messages() == []


@pytest.mark.parametrize("split", [1, 2, 3, 4])
def test_terminator_split_across_writes(petrel, split):
    """<CRLF>.<CRLF> split across TCP segments ends the data exactly once."""
    term = b"\r\n.\r\n"
    with SMTPConn(petrel.smtp_port) as c:
        _open_data(c)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(b"Subject: split\r\n\r\nbody" + term[:split])
        assert c.nothing_pending(0.1)
        c.send(term[split:] + b"VRFY marker\r\n")
        got = _replies_until_marker(c)
        assert [r.code for r in got] == [250]
    [raw] = inbox(petrel)
    assert stored_body(raw) == b"Subject: split\r\n\r\nbody\r\n"


def test_dot_cr_cr_lf_is_not_a_terminator(petrel):
    """".\\r" followed by anything but LF is content (the CR is bare)."""
    with SMTPConn(petrel.smtp_port) as c:
        _open_data(c)
        c.send(b"Subject: x\r\n\r\n.\rX\r\n.\r\nVRFY marker\r\n")
        got = _replies_until_marker(c)
        assert [(r.code, r.enhanced) for r in got] == [(550, "5.6.0")]
    assert petrel.messages() == []


def test_smuggling_with_bdat_announced_size(petrel):
    """BDAT content is counted, never scanned for terminators (RFC 3030 2):
    a chunk holding a complete fake transaction is data."""
    chunk = b"Subject: chunk\r\n\r\nx\r\n.\r\n" + SMUGGLED + b"\r\n"
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"VRFY marker\r\n")
        got = _replies_until_marker(c)
        assert [r.code for r in got] == [250]
    assert petrel.messages(BOB) == []
    [raw] = inbox(petrel)
    assert stored_body(raw) == chunk
