"""STARTTLS (RFC 3207) on the SMTP listener."""
import os
import shutil
import signal
import ssl
import subprocess
import warnings

import pytest

from smtp_helpers import (SMTPConn, client_tls_context, inbox, received_header, stored_body,
                          wait_for)

ALICE = "alice@example.test"


def make_cert(directory, cn):
    cert, key = os.path.join(directory, f"{cn}.crt"), os.path.join(directory, f"{cn}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def peer_cert_der(port):
    with SMTPConn(port) as c:
        c.ehlo()
        c.starttls()
        der = c.sock.getpeercert(binary_form=True)
        c.ehlo()
        c.cmd("QUIT")
        return der


def test_starttls_then_deliver(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        r = c.starttls()
        assert r.enhanced == "2.0.0"
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        c.ehlo("tls.example")
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: secret\r\n\r\nover tls\r\n")
        c.expect("QUIT", 221)
    [raw] = inbox(petrel)
    assert stored_body(raw) == b"Subject: secret\r\n\r\nover tls\r\n"
    rcv = received_header(raw)
    assert " with ESMTPS " in rcv and "TLSv1." in rcv


def test_starttls_forgets_ehlo(petrel):
    """RFC 3207 4.2: after the handshake the session starts over; MAIL needs a
    new EHLO."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.starttls()
        c.expect("MAIL FROM:<s@remote.example>", 503)
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)


def test_starttls_before_ehlo(petrel):
    """Without EHLO first the server may refuse (503) or accept STARTTLS."""
    with SMTPConn(petrel.smtp_port) as c:
        r = c.cmd("STARTTLS")
        if r.code == 503:
            c.ehlo()
            c.starttls()
        else:
            assert r.code == 220, r
            c.tls_handshake()
        c.ehlo()
        c.expect("NOOP", 250)


def test_starttls_command_injection(petrel):
    """CVE-2011-0411: plaintext pipelined after STARTTLS must not be executed
    inside the TLS session. The first reply over TLS answers our EHLO."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@x>\r\n")
        r = c.reply()
        assert r.code == 220, r
        c.tls_handshake()
        c.send(b"EHLO after.tls\r\n")
        r = c.reply()
        assert r.code == 250 and "Hello after.tls" in r.lines[0], \
            f"first reply over TLS is not the EHLO's: {r}"
        assert c.nothing_pending()
        # and the injected MAIL did not open a transaction
        c.expect(f"RCPT TO:<{ALICE}>", 503)
        c.expect("MAIL FROM:<s@remote.example>", 250)


def test_starttls_twice_503(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.expect("STARTTLS", 503, "5.5.1")
        c.expect("NOOP", 250)


def test_starttls_with_argument_501(petrel):
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("STARTTLS now", 501)
        # still plaintext and STARTTLS still possible
        c.starttls()
        c.ehlo()


def test_starttls_inside_transaction(petrel):
    """STARTTLS during a transaction is refused (503, the transaction goes
    on), or accepted and then, per RFC 3207 4.2, nothing of the plaintext
    transaction survives."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@remote.example>", 250)
        r = c.cmd("STARTTLS")
        if r.code == 503:
            c.expect(f"RCPT TO:<{ALICE}>", 250)
        else:
            assert r.code == 220, r
            c.tls_handshake()
            c.ehlo()
            c.expect(f"RCPT TO:<{ALICE}>", 503)


def test_garbage_instead_of_handshake(petrel):
    """Non-TLS bytes after 220 Ready: the handshake fails, the connection is
    closed, and the server keeps serving."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("STARTTLS", 220)
        c.send(b"EHLO this is not a TLS ClientHello\r\nMAIL FROM:<x@y>\r\n")
        data = c.wait_closed(10)
        assert b"250" not in data  # no SMTP reply to the plaintext
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()


def test_client_disconnects_during_handshake(petrel):
    c = SMTPConn(petrel.smtp_port)
    c.ehlo()
    c.expect("STARTTLS", 220)
    c.send(b"\x16\x03\x01\x00")  # a truncated TLS record header
    c.close()
    with SMTPConn(petrel.smtp_port) as c2:
        c2.ehlo()
        c2.starttls()
        c2.ehlo()


def test_tls_1_1_refused_tls_1_2_accepted(petrel):
    """RFC 8996: TLS 1.0 and 1.1 are deprecated; the server's minimum is 1.2.
    The client offers only 1.1 (security level lowered so that the refusal
    comes from the server, as a protocol_version alert)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = client_tls_context(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.expect("STARTTLS", 220)
        with pytest.raises(ssl.SSLError) as exc:
            c.tls_handshake(ctx)
        assert "PROTOCOL_VERSION" in str(exc.value).upper() or \
               "UNSUPPORTED_PROTOCOL" in str(exc.value).upper(), exc.value
    ctx12 = client_tls_context(maximum=ssl.TLSVersion.TLSv1_2)
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        c.starttls(ctx12)
        assert c.sock.version() == "TLSv1.2"
        c.ehlo()
        c.mail_transaction("s@remote.example", [ALICE], b"Subject: tls12\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages()] == ["tls12"]


def test_sighup_reloads_certificate(petrel_factory, tmp_path):
    d = str(tmp_path / "certs")
    os.mkdir(d)
    old_cert, old_key = make_cert(d, "original.example")
    new_cert, new_key = make_cert(d, "reloaded.example")
    live_cert, live_key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
    shutil.copy(old_cert, live_cert)
    shutil.copy(old_key, live_key)
    p = petrel_factory(extra={"tls": {"cert": live_cert, "key": live_key}})
    assert peer_cert_der(p.smtp_port) == pem_to_der(old_cert)

    # an open TLS session survives the reload
    keep = SMTPConn(p.smtp_port)
    keep.ehlo()
    keep.starttls()
    keep.ehlo()

    # replace atomically (rename), as certbot-style tools do
    shutil.copy(new_cert, live_cert + ".tmp")
    shutil.copy(new_key, live_key + ".tmp")
    os.rename(live_key + ".tmp", live_key)
    os.rename(live_cert + ".tmp", live_cert)
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reloaded" in p.log(), what="the reload log line")
    assert peer_cert_der(p.smtp_port) == pem_to_der(new_cert)

    keep.expect("NOOP", 250)
    keep.mail_transaction("s@remote.example", [ALICE], b"Subject: kept\r\n\r\nx\r\n")
    keep.close()
    assert [m[3] for m in p.messages()] == ["kept"]


def test_sighup_with_broken_certificate_keeps_old(petrel_factory, tmp_path):
    d = str(tmp_path / "certs")
    os.mkdir(d)
    cert, key = make_cert(d, "original.example")
    p = petrel_factory(extra={"tls": {"cert": cert, "key": key}})
    # (a served connection also proves the signal handlers are installed)
    before = peer_cert_der(p.smtp_port)
    assert before == pem_to_der(cert)
    with open(cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reload-failed" in p.log(), what="the reload-failed log line")
    assert p.proc.poll() is None
    assert peer_cert_der(p.smtp_port) == before
