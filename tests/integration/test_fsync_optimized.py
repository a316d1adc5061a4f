"""[server] fsync = optimized: flag changes and expunges are committed
without waiting for a sync of the WAL (as Dovecot's default mail_fsync =
optimized does); everything else, above all new mail, is synced before it is
acknowledged. The committer logs every commit at debug level as
`event=commit ... synced=0|1`, which is what these tests observe, together
with what survives a kill -9 (a process crash: the kernel keeps what was
written, synced or not) and the content files of expunged messages (unlinked
only once the expunge is durable).
"""
import glob
import imaplib
import os
import re
import signal
import smtplib
import time

import pytest

from imap_helpers import ALICE

LISTEN = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0"}
BIG = 200 * 1024  # above the 128 KiB kept inline: content goes to blobs/XX/


def server(petrel_factory, fsync=None):
    extra = {"server": {"log_level": "debug"}}
    if fsync is not None:
        extra["server"]["fsync"] = fsync
    return petrel_factory(extra=extra, listen=LISTEN)


def commits(p):
    """[(ops, synced)] of the commits logged so far."""
    out = []
    for line in p.log_lines:
        m = re.search(r"event=commit jobs=\d+ ops=(\d+) .* synced=(\d)", line)
        if m:
            out.append((int(m.group(1)), m.group(2) == "1"))
    return out


def commits_after(p, before, n):
    """The commits after the first `before`, once n of them are logged (the
    log is read by another thread of the fixture)."""
    deadline = time.time() + 5
    while len(commits(p)) < before + n and time.time() < deadline:
        time.sleep(0.02)
    return commits(p)[before:]


def blob_files(p):
    return [f for f in glob.glob(os.path.join(p.data, "blobs", "*", "*")) if os.path.isfile(f)]


def big_message(subject):
    line = b"x" * 76 + b"\r\n"
    return (f"Subject: {subject}\r\nFrom: a@remote.example\r\n\r\n".encode() +
            line * (BIG // len(line)))


def test_flags_and_expunge_unsynced_mail_synced(petrel_factory):
    p = server(petrel_factory, "optimized")
    with smtplib.SMTP("127.0.0.1", p.smtp_port, timeout=10) as s:
        s.sendmail("a@remote.example", ["alice@example.test"], b"Subject: one\r\n\r\nx\r\n")
        s.sendmail("a@remote.example", ["alice@example.test"], big_message("big"))
    assert commits_after(p, 0, 2) and all(synced for ops, synced in commits(p)), "deliveries are synced"
    files = blob_files(p)
    assert len(files) == 1, files

    m = imaplib.IMAP4("127.0.0.1", p.ports["imap"])
    m.login(*ALICE)
    m.select("INBOX")
    before = len(commits(p))
    typ, _ = m.uid("STORE", "1", "+FLAGS", r"(\Flagged)")
    assert typ == "OK"
    typ, _ = m.append("INBOX", None, None, b"Subject: appended\r\n\r\nbody\r\n")
    assert typ == "OK"
    typ, _ = m.uid("STORE", "2", "+FLAGS", r"(\Deleted)")
    assert typ == "OK"
    typ, data = m.expunge()
    assert typ == "OK" and data == [b"2"], data
    m.logout()

    new = commits_after(p, before, 4)
    # STORE, STORE, EXPUNGE unsynced; the APPEND (new mail) synced
    assert [s for ops, s in new] == [False, True, False, False], new
    # the big message's file is gone once its expunge was made durable
    assert blob_files(p) == [], blob_files(p)

    # A process crash keeps what was written: the flag and the expunge stay.
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait(10)
    p.start()
    rows = p.messages()
    assert [r[3] for r in rows] == ["one", "appended"], rows
    m = imaplib.IMAP4("127.0.0.1", p.ports["imap"])
    m.login(*ALICE)
    m.select("INBOX", readonly=True)
    typ, data = m.uid("FETCH", "1", "(FLAGS)")
    assert typ == "OK" and rb"\Flagged" in data[0], data
    m.logout()


def test_default_syncs_everything(petrel_factory):
    p = server(petrel_factory)
    m = imaplib.IMAP4("127.0.0.1", p.ports["imap"])
    m.login(*ALICE)
    typ, _ = m.append("INBOX", None, None, b"Subject: a\r\n\r\nbody\r\n")
    assert typ == "OK"
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", r"(\Seen \Deleted)")
    m.expunge()
    m.logout()
    new = commits_after(p, 0, 3)
    assert len(new) >= 3 and all(synced for ops, synced in new), new


@pytest.mark.parametrize("value", ["never", "yes", ""])
def test_bad_value_is_refused(petrel_factory, value):
    p = petrel_factory(extra={"server": {"fsync": value}}, listen=LISTEN, users=False,
                       start=False)
    r = p.cli("check", check=False)
    assert r.returncode == 78, r
    assert "[server] fsync" in r.stderr, r.stderr
