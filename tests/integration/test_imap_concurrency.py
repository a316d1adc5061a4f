"""Several sessions on one mailbox (RFC 3501 5.2, 5.5, 7.4.1; IDLE RFC 2177).

Session A keeps its own map of message numbers; what others change reaches
it only where RFC 3501 7.4.1 allows: EXPUNGE never while no command is in
progress nor during FETCH, STORE or SEARCH; flag changes and new messages
at the next command (or at once while IDLE).
"""
import re
import threading
import time

import pytest

from imap_helpers import LISTEN, RawImap, append, msg, noop_until, smtp_deliver, uid_list


@pytest.fixture
def two(petrel_factory):
    """Sessions A and B, both with INBOX selected, holding UIDs 1..4."""
    p = petrel_factory(listen=LISTEN)
    a = RawImap(p.ports["imap"]).login()
    for i in range(1, 5):
        append(a, b"INBOX", msg("message %d" % i))
    a.ok(b"SELECT INBOX")
    b = RawImap(p.ports["imap"]).login()
    b.ok(b"SELECT INBOX")
    a.p = p
    yield a, b
    a.close()
    b.close()


def expunges(untagged):
    return [r for r in untagged if re.match(rb"\* \d+ EXPUNGE\r\n$", r)]


def settle():
    """Time for a change committed by one session to reach the others."""
    time.sleep(0.3)


def test_expunge_held_back_during_fetch_store_search(two):
    a, b = two
    b.ok(b"STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert b.ok(b"EXPUNGE") == [b"* 2 EXPUNGE\r\n"]
    settle()
    # nothing unsolicited while A has no command in progress
    assert b"EXPUNGE" not in a.read_for(0.3)
    # FETCH, STORE, SEARCH: no EXPUNGE, the old numbering holds
    untagged, tagged = a.cmd(b"FETCH 3:4 (UID)")
    assert expunges(untagged) == [] and tagged.split()[1] == b"OK", untagged
    assert b"* 3 FETCH (UID 3)\r\n" in untagged and b"* 4 FETCH (UID 4)\r\n" in untagged
    # the message that went: data or NO (RFC 2180 4.1), never an EXPUNGE
    untagged, tagged = a.cmd(b"FETCH 2 (UID)")
    assert expunges(untagged) == [] and tagged.split()[1] in (b"OK", b"NO"), (untagged, tagged)
    untagged, tagged = a.cmd(b"STORE 4 +FLAGS (\\Seen)")
    assert expunges(untagged) == [] and tagged.split()[1] == b"OK", untagged
    assert [r for r in untagged if b"\\Seen" in r][0].startswith(b"* 4 FETCH ("), untagged
    untagged, tagged = a.cmd(b"SEARCH UID 4")
    assert expunges(untagged) == [] and b"* SEARCH 4\r\n" in untagged, untagged
    untagged, tagged = a.cmd(b"SEARCH SEEN")
    assert expunges(untagged) == [] and b"* SEARCH 4\r\n" in untagged, untagged
    # NOOP: now the EXPUNGE, and the numbers move
    untagged = noop_until(a, rb"EXPUNGE")
    assert expunges(untagged) == [b"* 2 EXPUNGE\r\n"], untagged
    assert a.ok(b"FETCH 3 (UID)") == [b"* 3 FETCH (UID 4)\r\n"]
    assert uid_list(a) == [1, 3, 4]
    assert expunges(a.ok(b"NOOP")) == []  # told once


def test_new_delivery_exists_on_noop(two):
    a, b = two
    smtp_deliver(a.p, subject="fresh")
    ua = noop_until(a, rb"^\* 5 EXISTS")
    ub = noop_until(b, rb"^\* 5 EXISTS")
    assert b"* 5 EXISTS\r\n" in ua and b"* 5 EXISTS\r\n" in ub, (ua, ub)
    # exactly one session sees the new message as \Recent (RFC 3501 2.3.2:
    # "subsequent sessions will not see \Recent set for this message")
    fa = a.ok(b"FETCH 5 FLAGS")
    fb = b.ok(b"FETCH 5 FLAGS")
    assert [b"\\Recent" in fa[0], b"\\Recent" in fb[0]].count(True) == 1, (ua, ub, fa, fb)
    # and the RECENT counts agree: A had 1..4 as recent, B none of them
    ra = [int(m.group(1)) for u in ua for m in [re.match(rb"\* (\d+) RECENT", u)] if m]
    rb_ = [int(m.group(1)) for u in ub for m in [re.match(rb"\* (\d+) RECENT", u)] if m]
    assert (ra, rb_) in (([5], [0]), ([4], [1])), (ua, ub)
    assert a.ok(b"FETCH 5 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])") == [
        b"* 5 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: fresh\r\n\r\n)\r\n"]
    # an APPEND by B shows up in A too
    append(b, b"INBOX", msg("appended by b"))
    noop_until(a, rb"^\* 6 EXISTS\r\n$")


def test_flag_change_by_other_session(two):
    a, b = two
    b.ok(b"STORE 1 +FLAGS (\\Flagged $Shared)")
    b.ok(b"STORE 3 +FLAGS.SILENT (\\Answered)")  # .SILENT is for B only
    untagged = noop_until(a, rb"^\* 3 FETCH ")
    one = [r for r in untagged if r.startswith(b"* 1 FETCH ")]
    three = [r for r in untagged if r.startswith(b"* 3 FETCH ")]
    assert len(one) == 1 and b"\\Flagged" in one[0] and b"$Shared" in one[0], untagged
    assert len(three) == 1 and b"\\Answered" in three[0], untagged
    assert a.ok(b"NOOP") == []  # told once
    # B is not told again about its own change
    assert [r for r in b.ok(b"NOOP") if b"FETCH" in r] == []
    # two sessions adding different flags to one message: both stay
    a.ok(b"STORE 2 +FLAGS.SILENT (\\Seen)")
    b.ok(b"STORE 2 +FLAGS.SILENT (\\Draft)")
    settle()
    a.ok(b"NOOP")
    flags = [r for r in a.ok(b"FETCH 2 FLAGS") if r.startswith(b"* 2 FETCH")][0]
    assert b"\\Seen" in flags and b"\\Draft" in flags, flags


def test_concurrent_appends_get_distinct_ascending_uids(two):
    a, b = two
    results = {}

    def run(name, c):
        data = b"".join(b"%s%d APPEND INBOX {%d+}\r\n" % (name.encode(), i, len(msg(name)))
                        + msg(name) + b"\r\n" for i in range(20))
        c.sendraw(data)
        uids = []
        while len(uids) < 20:
            line = c.readline()
            m = re.match(rb"\S+ OK \[APPENDUID \d+ (\d+)\]", line)
            if m:
                uids.append(int(m.group(1)))
            elif not line.startswith(b"* "):
                raise AssertionError(line)
        results[name] = uids

    threads = [threading.Thread(target=run, args=("a", a)),
               threading.Thread(target=run, args=("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ua, ub = results["a"], results["b"]
    assert ua == sorted(ua) and ub == sorted(ub), results
    assert sorted(ua + ub) == list(range(5, 45)), results
    a.ok(b"NOOP")
    assert uid_list(a) == list(range(1, 45))


def test_idle_updates_within_a_second(two):
    a, b = two
    tag = a.send(b"IDLE")
    assert a.readline().startswith(b"+ ")
    # a delivery by SMTP
    smtp_deliver(a.p, subject="while idle")
    done = time.monotonic()
    m, took = a.wait_for(rb"\* 5 EXISTS\r\n", 5)
    assert m, a.buf
    assert time.monotonic() - done < 1.0, took
    # an expunge by another session
    b.ok(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok(b"EXPUNGE")
    done = time.monotonic()
    m, took = a.wait_for(rb"\* 1 EXPUNGE\r\n", 5)
    assert m, a.buf
    assert time.monotonic() - done < 1.0, took
    # a flag change
    b.ok(b"STORE 2 +FLAGS (\\Flagged)")
    done = time.monotonic()
    m, took = a.wait_for(rb"\* 2 FETCH \([^\r]*\\Flagged", 5)
    assert m, a.buf
    assert time.monotonic() - done < 1.0, took
    # DONE ends it with a tagged OK
    a.sendraw(b"DONE\r\n")
    untagged, tagged = a.wait(tag)
    assert tagged.split()[1] == b"OK", tagged
    assert uid_list(a) == [2, 3, 4, 5]
    a.ok(b"NOOP")


def test_idle_done_and_errors(two):
    a, b = two
    # nothing happened: DONE right away, any case
    tag = a.send(b"IDLE")
    assert a.readline().startswith(b"+ ")
    a.sendraw(b"done\r\n")
    assert a.readline().startswith(tag + b" OK ")
    # IDLE in the authenticated state is fine too
    a.ok(b"UNSELECT")
    tag = a.send(b"IDLE")
    assert a.readline().startswith(b"+ ")
    a.sendraw(b"DONE\r\n")
    assert a.readline().startswith(tag + b" OK ")
    # anything but DONE ends it with BAD; the session goes on
    a.ok(b"SELECT INBOX")
    tag = a.send(b"IDLE")
    assert a.readline().startswith(b"+ ")
    a.sendraw(b"x NOOP\r\n")
    assert a.readline().startswith(tag + b" BAD ")
    a.ok(b"NOOP")
    assert a.cmd(b"IDLE x")[1].split()[1] == b"BAD"
    # what arrived while not idling comes at the start of the next IDLE
    b.ok(b"STORE 3 +FLAGS (\\Answered)")
    settle()
    tag = a.send(b"IDLE")
    m, _ = a.wait_for(rb"\* 3 FETCH \([^\r]*\\Answered", 2)
    assert m, a.buf
    a.sendraw(b"DONE\r\n")
    assert a.wait(tag)[1].split()[1] == b"OK"


def test_selected_mailbox_deleted_by_other_session(two):
    """RFC 2180 3: when another session deletes the selected mailbox the
    server fails the DELETE, or ends the session with BYE, or expunges
    every message; it does not leave a view of messages that are gone."""
    a, b = two
    b.ok(b"CREATE Doomed")
    append(b, b"Doomed", msg("d1"))
    append(b, b"Doomed", msg("d2"))
    a.ok(b"SELECT Doomed")
    untagged, tagged = b.cmd(b"DELETE Doomed")
    if tagged.split()[1] == b"NO":
        return  # RFC 2180 3.1
    untagged = []
    end = time.monotonic() + 2
    while time.monotonic() < end:
        try:
            more, tagged = a.cmd(b"NOOP")
        except EOFError as e:  # RFC 2180 3.2: BYE and close
            assert b"* BYE" in e.args[0]
            return
        untagged += more
        if any(u.startswith(b"* BYE") for u in untagged):
            return
        if len(expunges(untagged)) == 2:
            break  # RFC 2180 3.3: the messages are expunged
        time.sleep(0.1)
    assert len(expunges(untagged)) == 2, (untagged, tagged)


def test_shutdown_sends_bye(two):
    """RFC 3501 7.1.5: a server closing the connection says BYE first; an
    idling client gets it too."""
    a, b = two
    a.send(b"IDLE")
    assert a.readline().startswith(b"+ ")
    c = RawImap(a.p.ports["imap"])  # not logged in
    assert a.p.stop() == 0
    for s in (a, b, c):
        rest = s.read_until_closed(5)
        assert rest.startswith(b"* BYE ") or b"\r\n* BYE " in rest, rest


def test_own_writes_with_others_in_between(two):
    """A's STORE and EXPUNGE are applied to its view as they are only when
    nothing else changed meanwhile: another session's flag change and
    expunge committed just before still reach A, in the same responses
    (RFC 3501 7.4.1), and are told once."""
    a, b = two
    # nothing else: A's own changes only
    assert a.ok(b"STORE 1 +FLAGS (\\Seen)") == [b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"]
    a.ok(b"STORE 4 +FLAGS.SILENT (\\Deleted)")
    assert a.ok(b"EXPUNGE") == [b"* 4 EXPUNGE\r\n"]
    assert a.ok(b"NOOP") == []
    settle()
    assert b.ok(b"NOOP") == [b"* 4 EXPUNGE\r\n", b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n"]
    # B changes flags of 2, then A stores on 3 at once: A hears of both
    b.ok(b"STORE 2 +FLAGS.SILENT (\\Flagged)")
    untagged = a.ok(b"STORE 3 +FLAGS (\\Answered)")
    assert b"* 3 FETCH (FLAGS (\\Answered \\Recent))\r\n" in untagged, untagged
    assert b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))\r\n" in untagged, untagged
    assert len(untagged) == 2, untagged
    # B expunges 2 just before A's EXPUNGE of 3: both EXPUNGEs, highest first
    b.ok(b"STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok(b"STORE 3 +FLAGS.SILENT (\\Deleted)")
    b.ok(b"EXPUNGE")
    untagged = a.ok(b"EXPUNGE")
    assert expunges(untagged) == [b"* 3 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"], untagged
    assert expunges(a.ok(b"NOOP")) == []
    assert uid_list(a) == [1]
