"""The thin slice: a message sent with smtplib lands in the INBOX."""
import smtplib


def test_deliver_with_smtplib(petrel):
    with smtplib.SMTP("127.0.0.1", petrel.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        s.sendmail("sender@remote.example", ["alice@example.test"],
                   b"Subject: hello\r\n\r\nbody\r\n")
    msgs = petrel.messages()
    assert [m[3] for m in msgs] == ["hello"]
    raw = petrel.message(msgs[0][0])
    assert raw.startswith(b"Return-Path: <sender@remote.example>\r\nReceived: from client.example")
    assert raw.endswith(b"\r\n\r\nbody\r\n")
