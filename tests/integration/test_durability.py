"""Nothing acknowledged is lost: SMTP replies 250 only after the message and
its metadata are durable (RFC 5321 4.1.1.4 / 6.1: once 250 is sent the
server has accepted responsibility). We kill -9 the server while concurrent
senders are mid-flight, restart it, and check every message that got 250 is
stored exactly once, and the store is consistent."""
import signal
import smtplib
import threading
import time

SENDERS = 8


def _sender(port, idx, acked, stop):
    n = 0
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
                s.ehlo("load.example")
                while not stop.is_set():
                    subject = f"load-{idx}-{n}"
                    body = (f"Subject: {subject}\r\n\r\n" + "x" * (200 + 37 * n % 3000) +
                            "\r\n").encode()
                    n += 1
                    s.sendmail("load@remote.example", ["alice@example.test"], body)
                    acked.append(subject)  # only reached after 250
        except (OSError, smtplib.SMTPException):
            return


def test_kill9_during_load_loses_nothing(petrel_factory):
    p = petrel_factory()
    acked = []
    stop = threading.Event()
    threads = [threading.Thread(target=_sender, args=(p.smtp_port, i, acked, stop))
               for i in range(SENDERS)]
    for t in threads:
        t.start()
    deadline = time.time() + 10
    while len(acked) < 150 and time.time() < deadline:
        time.sleep(0.05)
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    snapshot = list(acked)
    assert len(snapshot) >= 50, "the load did not get going"

    p.start()  # same data directory: recovery must be clean
    subjects = [m[3] for m in p.messages()]
    missing = [s for s in snapshot if s not in set(subjects)]
    assert missing == [], f"{len(missing)} acknowledged messages lost"
    dup = {s for s in subjects if subjects.count(s) > 1}
    assert not dup, f"stored twice: {sorted(dup)[:5]}"
    uids = [m[0] for m in p.messages()]
    assert uids == sorted(set(uids))
    # The store still takes mail after the crash, with fresh UIDs.
    with smtplib.SMTP("127.0.0.1", p.smtp_port, timeout=10) as s:
        s.sendmail("a@remote.example", ["alice@example.test"], b"Subject: after\r\n\r\nx\r\n")
    after = p.messages()
    assert after[-1][3] == "after" and after[-1][0] > max(uids)
    # Every stored message streams back complete.
    for uid, size, _, subject in after[-3:]:
        raw = p.message(uid)
        assert len(raw) == size and f"Subject: {subject}".encode() in raw
