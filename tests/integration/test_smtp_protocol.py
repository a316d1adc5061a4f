"""SMTP intake: commands, replies, addressing and delivery (RFC 5321 and the
ESMTP extensions Petrel announces)."""
import email.message
import smtplib
import socket
import subprocess

import pytest

from smtp_helpers import (SMTPConn, client_tls_context, deliver, inbox, received_header,
                          stored_body)

ALICE = "alice@example.test"
BOB = "bob@example.test"
DEFAULT_MAX_SIZE = 25 * 1024 * 1024


def ehlo_keywords(reply):
    return reply.lines[1:]


# ------------------------------------------------------------------ greeting

def test_greeting_is_220_with_hostname(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        assert c.greeting.code == 220
        assert c.greeting.lines == ["mx.example.test ESMTP Petrel"]


def test_ehlo_lists_exactly_the_extensions(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        r = c.ehlo("client.example")
        assert r.lines[0].startswith("mx.example.test ")
        assert sorted(ehlo_keywords(r)) == sorted([
            f"SIZE {DEFAULT_MAX_SIZE}", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
            "SMTPUTF8", "CHUNKING", "STARTTLS"])


def test_ehlo_size_follows_config(petrel_factory):
    p = petrel_factory(extra={"limits": {"max_message_size": "2048"}})
    with SMTPConn(p.smtp_port) as c:
        assert "SIZE 2048" in ehlo_keywords(c.ehlo())


def test_ehlo_after_starttls_does_not_offer_starttls(petrel):
    """RFC 3207 4.2: STARTTLS must not be advertised after the TLS handshake."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.starttls()
        kw = ehlo_keywords(c.ehlo())
        assert "STARTTLS" not in kw
        assert sorted(kw) == sorted([f"SIZE {DEFAULT_MAX_SIZE}", "PIPELINING", "8BITMIME",
                                     "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"])


def test_ehlo_without_argument_is_501(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.expect("EHLO", 501)
        c.expect("NOOP", 250)


def test_helo_and_plain_smtp_delivery(petrel):
    """HELO: a single-line 250; the trace then says "with SMTP" (RFC 5321 4.4)."""
    with SMTPConn(petrel.smtp_port) as c:
        r = c.expect("HELO client.example", 250)
        assert r.lines == ["mx.example.test"]
        # ESMTP parameters need EHLO (RFC 5321 4.1.1.11: 555, or 501)
        assert c.cmd("MAIL FROM:<s@remote.example> BODY=8BITMIME").code in (501, 555)
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: helo\r\n\r\nhi\r\n")
    [raw] = inbox(petrel)
    rcv = received_header(raw)
    assert "from client.example" in rcv and " with SMTP " in rcv


# ------------------------------------------------------------ misc commands

def test_rset_noop_help_quit(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        assert c.expect("RSET", 250).enhanced == "2.0.0"
        assert c.expect("NOOP", 250).enhanced == "2.0.0"
        assert c.expect("NOOP some argument", 250).code == 250  # 4.1.1.9
        help_ = c.expect("HELP", 214)
        assert len(help_.lines) >= 2
        r = c.expect("QUIT", 221)
        assert "mx.example.test" in r.text
        assert c.wait_closed(5) == b""


def test_rset_clears_transaction(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("RSET", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 503)
        c.expect("DATA", 503)
        # a new EHLO also ends the transaction (RFC 5321 4.1.4)
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.ehlo()
        c.expect(f"RCPT TO:<{ALICE}>", 503)
        c.mail_transaction("s@remote.example", [BOB], b"Subject: after rset\r\n\r\nx\r\n")
    assert petrel.messages(ALICE) == []
    assert [m[3] for m in petrel.messages(BOB)] == ["after rset"]


def test_vrfy_does_not_enumerate_users(petrel):
    """RFC 5321 3.5.3 / 7.3: 252 for existing and unknown users alike."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        known = c.expect(f"VRFY {ALICE}", 252)
        unknown = c.expect("VRFY nobody@example.test", 252)
        local = c.expect("VRFY alice", 252)
        assert known.lines == unknown.lines == local.lines


def test_expn_502(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("EXPN staff", 502)


def test_commands_are_case_insensitive(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.expect("ehlo client.example", 250)
        c.expect("mail from:<s@remote.example>", 250)
        c.expect(f"rcpt to:<{ALICE}>", 250)
        c.expect("rset", 250)


def test_unknown_command_500_551(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("FOOBAR x", 500, "5.5.1")
        c.expect("NOOP", 250)


# ------------------------------------------------------------ sequencing

def test_mail_before_ehlo_503(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.expect("MAIL FROM:<s@remote.example>", 503, "5.5.1")
        c.expect(f"RCPT TO:<{ALICE}>", 503)
        c.expect("DATA", 503)


def test_rcpt_before_mail_503(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect(f"RCPT TO:<{ALICE}>", 503, "5.5.1")


def test_data_before_mail_and_rcpt_503(petrel):
    """RFC 5321 3.3: DATA without MAIL -> 503; after MAIL but without any
    accepted RCPT the server may answer 503 or 554."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("DATA", 503, "5.5.1")
        c.expect("MAIL FROM:<s@remote.example>", 250)
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
        # the session did not enter DATA mode
        c.expect("NOOP", 250)


def test_nested_mail_503(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect("MAIL FROM:<t@remote.example>", 503, "5.5.1")
        # the first transaction is intact
        c.expect(f"RCPT TO:<{ALICE}>", 250)


def test_mail_syntax_errors(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        for bad in ("MAIL", "MAIL TO:<a@b.example>", "MAIL FROM:a@b.example",
                    "MAIL FROM:<a@b.example", "MAIL FROM:<a b@c.example>",
                    "MAIL FROM:<nodomain>"):
            assert c.cmd(bad).code == 501, bad
        c.expect("MAIL FROM:<s@remote.example>", 250)


# -------------------------------------------------------------- recipients

def test_relay_denied_for_unknown_domain(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect("RCPT TO:<someone@remote.example>", 550, "5.7.1")
        c.expect("RCPT TO:<alice@sub.example.test>", 550, "5.7.1")
        c.expect("RCPT TO:<alice@[127.0.0.1]>", 550, "5.7.1")
        c.expect("RCPT TO:<@relay.example:alice@remote.example>", 550, "5.7.1")


def test_unknown_local_user_551(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect("RCPT TO:<nobody@example.test>", 550, "5.1.1")


def test_postmaster_is_delivered_to_configured_user(petrel):
    """RFC 5321 4.5.1: postmaster@domain and <Postmaster> (no domain, any case)
    must be accepted."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.mail_transaction("s@remote.example", ["postmaster@example.test"],
                           b"Subject: pm1\r\n\r\nx\r\n")
        c.mail_transaction("s@remote.example", ["Postmaster"], b"Subject: pm2\r\n\r\nx\r\n")
        c.mail_transaction("s@remote.example", ["POSTMASTER@EXAMPLE.TEST"],
                           b"Subject: pm3\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages(ALICE)] == ["pm1", "pm2", "pm3"]
    assert petrel.messages(BOB) == []


def test_address_case_insensitive(petrel):
    deliver(petrel, b"Subject: upper\r\n\r\nx\r\n", rcpts=["ALICE@EXAMPLE.TEST"])
    deliver(petrel, b"Subject: mixed\r\n\r\nx\r\n", rcpts=["Bob@Example.Test"])
    assert [m[3] for m in petrel.messages(ALICE)] == ["upper"]
    assert [m[3] for m in petrel.messages(BOB)] == ["mixed"]


def test_quoted_local_part(petrel):
    """RFC 5321 4.1.2: "alice"@example.test is the same mailbox as alice@."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect('RCPT TO:<"alice"@example.test>', 250)
        c.expect("DATA", 354)
        c.send(b"Subject: quoted\r\n\r\nx\r\n.\r\n")
        assert c.reply().code == 250
    assert [m[3] for m in petrel.messages(ALICE)] == ["quoted"]


def test_null_sender(petrel):
    """RFC 5321 4.5.5: MAIL FROM:<> (bounces) is accepted; Return-Path: <>."""
    deliver(petrel, b"Subject: bounce\r\n\r\nx\r\n", mail_from="")
    [raw] = inbox(petrel)
    assert raw.startswith(b"Return-Path: <>\r\n")


def test_quoted_sender_recorded_exactly(petrel):
    """The reverse-path is recorded in Return-Path as a valid address: a
    quoted local part keeps its quotes and escapes (RFC 5321 4.1.2)."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.mail_transaction('"john doe\\\"x"@remote.example', [ALICE], b"Subject: q\r\n\r\nx\r\n")
    [raw] = inbox(petrel)
    assert raw.startswith(b'Return-Path: <"john doe\\\"x"@remote.example>\r\n'), raw[:120]


def test_long_escaped_sender_not_truncated(petrel):
    """A long quoted local part full of escapes still fits a command line; if
    the server accepts the sender, Return-Path must carry all of it (a
    truncated reverse-path would send bounces to the wrong address)."""
    local = '"' + '\\"' * 400 + '"'
    sender = f"{local}@remote.example"
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        r = c.cmd(f"MAIL FROM:<{sender}>")
        if r.code != 250:
            assert r.code in (501, 553), r
            return
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: long sender\r\n\r\nx\r\n.\r\n")
        assert c.reply().code == 250
    [raw] = inbox(petrel)
    first = raw.split(b"\r\n", 1)[0]
    assert first == f"Return-Path: <{sender}>".encode(), first[-60:]
    assert stored_body(raw) == b"Subject: long sender\r\n\r\nx\r\n"


def test_null_recipient_refused(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        assert c.cmd("RCPT TO:<>").code in (501, 550, 553)
        c.expect(f"RCPT TO:<{ALICE}>", 250)


# -------------------------------------------------------------- parameters

def test_mail_size_over_limit_552(petrel):
    """RFC 1870 6.1: SIZE above the fixed maximum -> 552 at MAIL time."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect(f"MAIL FROM:<s@remote.example> SIZE={DEFAULT_MAX_SIZE + 1}", 552, "5.3.4")
        # the 552 did not start a transaction
        c.expect(f"RCPT TO:<{ALICE}>", 503)
        c.expect(f"MAIL FROM:<s@remote.example> SIZE={DEFAULT_MAX_SIZE}", 250)
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<s@remote.example> SIZE=abc", 501)


def test_unknown_mail_parameter_555(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example> FOO=BAR", 555, "5.5.4")
        # BINARYMIME is not offered (RFC 3030 3)
        assert c.cmd("MAIL FROM:<s@remote.example> BODY=BINARYMIME").code in (501, 555)
        c.expect("MAIL FROM:<s@remote.example> BODY=7BIT", 250)


def test_rcpt_parameter_555(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}> NOTIFY=NEVER", 555, "5.5.4")
        c.expect(f"RCPT TO:<{ALICE}>", 250)


def test_smtputf8_sender_accepted_and_delivered(petrel):
    """RFC 6531 3.4: a non-ASCII address needs the SMTPUTF8 parameter; the
    trace then uses "with UTF8SMTP" (RFC 6531 4.3)."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<jörg@remote.example> SMTPUTF8", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("DATA", 354)
        c.send("Subject: grüße\r\nFrom: jörg@remote.example\r\n\r\nHallo\r\n.\r\n")
        assert c.reply().code == 250
    [raw] = inbox(petrel)
    assert raw.startswith("Return-Path: <jörg@remote.example>\r\n".encode())
    assert stored_body(raw) == "Subject: grüße\r\nFrom: jörg@remote.example\r\n\r\nHallo\r\n".encode()
    assert "with UTF8SMTP" in received_header(raw)
    assert petrel.messages()[0][3] == "grüße"


def test_non_ascii_address_without_smtputf8_553(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<jörg@remote.example>", 553, "5.6.7")
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect("RCPT TO:<jörg@example.test>", 553, "5.6.7")


def test_malformed_utf8_address_refused(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<j\xc3\x28rg@remote.example> SMTPUTF8\r\n")
        assert c.reply().code in (501, 553)
        c.expect("MAIL FROM:<s@remote.example>", 250)


def test_8bitmime_body_delivered_byte_exact(petrel):
    """RFC 6152: with BODY=8BITMIME, octets above 127 pass unchanged."""
    body = (b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin1\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" +
            bytes(range(0x80, 0x100)) + b"\r\n" + "žluťoučký kůň\r\n".encode())
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.mail_transaction("s@remote.example", [ALICE], body, mail_params="BODY=8BITMIME")
    [raw] = inbox(petrel)
    assert stored_body(raw) == body


# ---------------------------------------------------------------- delivery

def test_duplicate_recipient_stored_once(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.mail_transaction("s@remote.example",
                           [ALICE, ALICE, "ALICE@example.test", "postmaster@example.test"],
                           b"Subject: dup\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages(ALICE)] == ["dup"]


def test_two_recipients_each_get_the_message(petrel):
    body = b"Subject: both\r\n\r\nfor two\r\n"
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.mail_transaction("s@remote.example", [ALICE, BOB], body)
    [a] = inbox(petrel, ALICE)
    [b] = inbox(petrel, BOB)
    assert stored_body(a) == stored_body(b) == body


def test_received_header(petrel):
    """RFC 5321 4.4: the server prepends a Received line naming itself and the
    protocol; Return-Path comes first (added at final delivery)."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo("client.example")
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: trace\r\n\r\nx\r\n")
    [raw] = inbox(petrel)
    assert raw.startswith(b"Return-Path: <s@remote.example>\r\nReceived: ")
    rcv = received_header(raw)
    assert "from client.example ([127.0.0.1])" in rcv
    assert "by mx.example.test" in rcv
    assert " with ESMTP " in rcv
    assert "for <alice@example.test>" in rcv


def test_received_header_esmtps_after_starttls(petrel):
    """RFC 3848: "with ESMTPS" when the message came over TLS."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.starttls()
        c.ehlo("tls.client.example")
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: tls\r\n\r\nx\r\n")
    [raw] = inbox(petrel)
    rcv = received_header(raw)
    assert "from tls.client.example" in rcv
    assert "by mx.example.test" in rcv and " with ESMTPS " in rcv


def test_several_messages_in_one_session(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        for i in range(3):
            c.mail_transaction("s@remote.example", [ALICE], f"Subject: m{i}\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages()] == ["m0", "m1", "m2"]


def test_dot_unstuffing(petrel):
    """RFC 5321 4.5.2: a leading "." of a content line is removed; a line
    holding a single "." is sent as ".."."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: dots\r\n\r\n..x\r\n..\r\n...\r\nmid.dle .\r\n.\r\n")
        assert c.reply().code == 250
    [raw] = inbox(petrel)
    assert stored_body(raw) == b"Subject: dots\r\n\r\n.x\r\n.\r\n..\r\nmid.dle .\r\n"


def test_empty_message(petrel):
    """DATA immediately followed by the terminator: an empty message."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("DATA", 354)
        c.send(b".\r\n")
        assert c.reply().code == 250
        c.expect("NOOP", 250)
    [raw] = inbox(petrel)
    assert stored_body(raw) == b""


def test_content_sent_byte_by_byte(petrel):
    """The end-of-data search is resumable across reads of any size."""
    content = b"Subject: slow\r\n\r\n..a\r\nb\r\n.\r\n"
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        c.expect(f"RCPT TO:<{ALICE}>", 250)
        c.expect("DATA", 354)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(content)):
            c.send(content[i:i + 1])
        assert c.reply().code == 250
    [raw] = inbox(petrel)
    assert stored_body(raw) == b"Subject: slow\r\n\r\n.a\r\nb\r\n"


def test_subject_listed_decoded(petrel):
    """`mail list` shows the RFC 2047-decoded, unfolded Subject."""
    deliver(petrel, b"Subject: =?UTF-8?B?xb5sdcWlb3XEjWs=?= and\r\n more\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages()] == ["žluťoučk and more"]


# ----------------------------------------------------------- other clients

def test_smtplib_send_message(petrel):
    msg = email.message.EmailMessage()
    msg["From"] = "Sender <sender@remote.example>"
    msg["To"] = "Alice <alice@example.test>, Bob <bob@example.test>"
    msg["Subject"] = "via smtplib"
    msg.set_content("line one\n.leading dot\nline three\n")
    with smtplib.SMTP("127.0.0.1", petrel.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("pipelining") and s.has_extn("size")
        refused = s.send_message(msg)
        assert refused == {}
    for addr in (ALICE, BOB):
        [raw] = inbox(petrel, addr)
        body = stored_body(raw)
        assert b"Subject: via smtplib\r\n" in body
        assert b"\r\n.leading dot\r\n" in body


def test_smtplib_refused_recipient_reported(petrel):
    with smtplib.SMTP("127.0.0.1", petrel.smtp_port, timeout=10) as s:
        refused = s.sendmail("s@remote.example", [ALICE, "nobody@example.test"],
                             b"Subject: partial\r\n\r\nx\r\n")
        assert list(refused) == ["nobody@example.test"]
        assert refused["nobody@example.test"][0] == 550
    assert [m[3] for m in petrel.messages()] == ["partial"]


def test_curl_upload(petrel, tmp_path):
    f = tmp_path / "mail.eml"
    content = b"Subject: via curl\r\nFrom: s@remote.example\r\n\r\n.dot line\r\nbody\r\n"
    f.write_bytes(content)
    p = subprocess.run(["curl", "-sS", "--max-time", "20",
                        f"smtp://127.0.0.1:{petrel.smtp_port}",
                        "--mail-from", "s@remote.example", "--mail-rcpt", ALICE,
                        "--upload-file", str(f)], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    [raw] = inbox(petrel)
    assert stored_body(raw) == content


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_swaks(petrel, tls):
    args = ["swaks", "--server", f"127.0.0.1:{petrel.smtp_port}", "--timeout", "20",
            "--helo", "swaks.example", "--from", "s@remote.example", "--to", ALICE,
            "--header", f"Subject: swaks {'tls' if tls else 'plain'}",
            "--body", "hello from swaks"]
    if tls:
        args.append("-tls")
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    [m] = petrel.messages()
    assert m[3] == f"swaks {'tls' if tls else 'plain'}"
    raw = petrel.message(m[0])
    rcv = received_header(raw)
    assert (" with ESMTPS " in rcv) == tls, rcv
    assert b"hello from swaks" in raw


def test_smtplib_starttls(petrel):
    with smtplib.SMTP("127.0.0.1", petrel.smtp_port, timeout=10) as s:
        s.ehlo()
        s.starttls(context=client_tls_context())
        s.ehlo()
        assert not s.has_extn("starttls")
        s.sendmail("s@remote.example", [BOB], b"Subject: smtplib tls\r\n\r\nx\r\n")
    [raw] = inbox(petrel, BOB)
    assert " with ESMTPS " in received_header(raw)


def test_abandoned_transaction_stores_nothing(petrel):
    """A client that disconnects inside DATA gets nothing stored (no 250 was
    sent), and the server goes on serving."""
    c = SMTPConn(petrel.smtp_port)
    c.ehlo()
    c.expect("MAIL FROM:<s@remote.example>", 250)
    c.expect(f"RCPT TO:<{ALICE}>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: abandoned\r\n\r\npartial")
    c.close()
    deliver(petrel, b"Subject: next\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages()] == ["next"]
