"""POP3 read ahead: a RETR/TOP that follows the previous message also reads
the next messages' inline content in its read transaction ([pop3]
read_ahead octets, sent for at most read_ahead_ms). The maildrop is fixed at
login (RFC 1939 5), so a message read ahead and expunged by IMAP meanwhile
may still be sent; otherwise an expunged message is -ERR. The server keeps
no read transaction open between commands: the log can be checkpointed
while a session waits for its client."""
import imaplib
import os
import sqlite3
import time

from pop3_helpers import (ALICE, LISTEN, RawPop3, deliver, imap_port, make_message, pop3_port,
                          stored, unstuff)


def server(petrel_factory, **pop3):
    return petrel_factory(listen=LISTEN, extra={"pop3": pop3} if pop3 else None)


def fill(p, n, body="Hello.\n"):
    for i in range(n):
        deliver(p, make_message(f"message {i + 1}", body=body))
    return stored(p)


def imap_expunge(p, uids):
    im = imaplib.IMAP4("127.0.0.1", imap_port(p))
    im.login(*ALICE)
    im.select("INBOX")
    im.uid("STORE", ",".join(str(u) for u in uids), "+FLAGS", "(\\Deleted)")
    im.expunge()
    im.logout()
    left = [u for u, _s in stored(p)]
    assert not set(uids) & set(left)


def retr(c, n):
    status = c.cmd(f"RETR {n}")
    if not status.startswith(b"+OK"):
        return status, None
    return status, unstuff(c.multiline())


def test_message_read_ahead_is_sent_after_imap_expunge(petrel_factory):
    # ~200-octet messages: RETR 1 reads about 2..5 ahead, not 12
    srv = server(petrel_factory, read_ahead="1k", read_ahead_ms="60000")
    rows = fill(srv, 12)
    content = {uid: srv.message(uid) for uid, _s in rows}
    c = RawPop3(pop3_port(srv))
    c.login()
    assert retr(c, 1)[1] == content[rows[0][0]]
    imap_expunge(srv, [rows[1][0], rows[11][0]])
    # message 2 was read with message 1: still the session's message (RFC 1939 5)
    status, body = retr(c, 2)
    assert status == f"+OK {rows[1][1]} octets".encode()
    assert body == content[rows[1][0]]
    # message 12 was not read ahead: its content is gone
    assert c.cmd("RETR 12") == b"-ERR Message 12 is no longer available"
    assert c.cmd("STAT").startswith(b"+OK 12 ")
    for n in range(3, 12):
        assert retr(c, n)[1] == content[rows[n - 1][0]]
    assert c.cmd("QUIT").startswith(b"+OK")


def test_read_ahead_is_not_sent_after_read_ahead_ms(petrel_factory):
    srv = server(petrel_factory, read_ahead_ms="200")
    rows = fill(srv, 4)
    c = RawPop3(pop3_port(srv))
    c.login()
    assert retr(c, 1)[1] == srv.message(rows[0][0])
    imap_expunge(srv, [rows[1][0]])
    time.sleep(0.6)
    assert c.cmd("RETR 2") == b"-ERR Message 2 is no longer available"
    assert retr(c, 3)[1] == srv.message(rows[2][0])
    assert c.cmd("QUIT").startswith(b"+OK")


def test_read_ahead_off(petrel_factory):
    srv = server(petrel_factory, read_ahead="0")
    rows = fill(srv, 3)
    c = RawPop3(pop3_port(srv))
    c.login()
    assert retr(c, 1)[1] == srv.message(rows[0][0])
    imap_expunge(srv, [rows[1][0]])
    assert c.cmd("RETR 2") == b"-ERR Message 2 is no longer available"
    assert retr(c, 3)[1] == srv.message(rows[2][0])
    assert c.cmd("QUIT").startswith(b"+OK")


def test_bad_read_ahead_config(petrel_factory):
    srv = petrel_factory(listen=LISTEN, extra={"pop3": {"read_ahead": "2M"}},
                         users=False, start=False)
    r = srv.cli("check", check=False)
    assert r.returncode != 0 and "read_ahead" in (r.stdout + r.stderr)


def test_sizes_and_content_with_read_ahead(petrel_factory):
    """Mixed sizes, dot-stuffing, a content file between inline messages,
    deleted messages skipped, out-of-order and repeated retrievals, TOP:
    every RETR sends exactly LIST's octets (RFC 1939 7)."""
    srv = server(petrel_factory, read_ahead="16k")
    bodies = [
        "Hello.\n",
        ".\n..\n.dot\nend\n",
        "x" * 5000 + "\n",
        ("." + "q" * 70 + "\n") * 3000,   # ~210 KiB: a content file
        "after the file\n.\n",
        "y" * 9000 + "\n" + "." * 3 + "\n",
        "short\n",
        "z" * 12000 + "\n",
        "tail\n",
    ]
    for i, b in enumerate(bodies):
        deliver(srv, make_message(f"m{i + 1}", body=b))
    rows = stored(srv)
    assert len(rows) == len(bodies)
    assert os.listdir(os.path.join(srv.data, "blobs"))
    content = [srv.message(uid) for uid, _s in rows]
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("LIST").startswith(b"+OK")
    sizes = [int(l.split()[1]) for l in c.multiline().split(b"\r\n")[:-1]]
    assert sizes == [s for _u, s in rows]
    assert c.cmd("DELE 2").startswith(b"+OK")
    assert c.cmd("DELE 7").startswith(b"+OK")
    for n in (1, 3, 4, 5, 6, 8, 9):
        status, body = retr(c, n)
        assert status == f"+OK {sizes[n - 1]} octets".encode()
        assert body == content[n - 1] and len(body) == sizes[n - 1]
    assert c.cmd("RETR 2") == b"-ERR Message 2 is deleted"
    assert c.cmd("RSET").startswith(b"+OK")
    for n in (6, 2, 3, 2, 9, 1, 7, 8):
        assert retr(c, n)[1] == content[n - 1]
    # TOP on a message read ahead: headers, blank line, one body line
    assert retr(c, 4)[1] == content[3]
    assert c.cmd("TOP 5 1").startswith(b"+OK")
    head, _sep, body = content[4].partition(b"\r\n\r\n")
    assert unstuff(c.multiline()) == head + b"\r\n\r\n" + body.split(b"\r\n")[0] + b"\r\n"
    # pipelined: every message at once
    c.send("".join(f"RETR {n}\r\n" for n in range(1, len(rows) + 1)))
    for n in range(1, len(rows) + 1):
        assert c.readline() == f"+OK {sizes[n - 1]} octets\r\n".encode()
        assert unstuff(c.multiline()) == content[n - 1]
    assert c.cmd("QUIT").startswith(b"+OK")
    assert len(stored(srv)) == len(bodies)


def test_message_delivered_during_session_not_visible(petrel_factory):
    srv = server(petrel_factory)
    rows = fill(srv, 5)
    c = RawPop3(pop3_port(srv))
    c.login()
    assert retr(c, 1)[1] == srv.message(rows[0][0])
    deliver(srv, make_message("late"))
    for n in range(2, 6):
        assert b"Subject: late" not in retr(c, n)[1]
    assert c.cmd("RETR 6") == b"-ERR No such message"
    assert c.cmd("STAT").startswith(b"+OK 5 ")
    assert c.cmd("QUIT").startswith(b"+OK")
    assert len(stored(srv)) == 6


def test_log_checkpointed_while_session_waits(petrel_factory):
    """A session between RETRs (with content read ahead) holds no read
    transaction: a checkpoint of the whole log completes and can truncate
    it, and what was delivered since is in the database file."""
    srv = server(petrel_factory)
    rows = fill(srv, 6)
    c = RawPop3(pop3_port(srv))
    c.login()
    assert retr(c, 1)[1] == srv.message(rows[0][0])
    deliver(srv, make_message("during"))
    db = sqlite3.connect(os.path.join(srv.data, "petrel.db"), timeout=10)
    try:
        busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.close()
    assert busy == 0
    assert os.path.getsize(os.path.join(srv.data, "petrel.db-wal")) == 0
    # the session goes on, on its snapshot
    for n in range(2, 7):
        assert retr(c, n)[1] == srv.message(rows[n - 1][0])
    assert c.cmd("RETR 7") == b"-ERR No such message"
    assert c.cmd("QUIT").startswith(b"+OK")
