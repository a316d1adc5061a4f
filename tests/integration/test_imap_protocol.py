"""IMAP4rev1 protocol conformance (RFC 3501) and the advertised extensions:
LITERAL+ (RFC 7888), SASL-IR (RFC 4959), ID (RFC 2971), ENABLE (RFC 5161),
NAMESPACE (RFC 2342), UNSELECT (RFC 3691), UIDPLUS (RFC 4315), MOVE
(RFC 6851), CHILDREN (RFC 3348), SPECIAL-USE (RFC 6154), APPENDLIMIT
(RFC 7889).

Python's imaplib is used where a real client's view is enough; RawImap
where the exact octets matter. FETCH and SEARCH themselves are covered by
test_imap_fetch_search.py.
"""
import base64
import imaplib
import re
import signal
import socket
import threading
import time

import pytest

from imap_helpers import (ALICE, LISTEN, RawImap, append, appenduid, lit, msg,
                          noop_until, smtp_deliver, uid_list)

CAPS_ALWAYS = {"IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE",
               "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "SPECIAL-USE", "BINARY"}
CAPS_PREAUTH = {"STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN", "AUTH=SCRAM-SHA-256"}  # loopback: cleartext allowed


@pytest.fixture
def srv(petrel_factory):
    return petrel_factory(listen=LISTEN)


@pytest.fixture
def raw(srv):
    c = RawImap(srv.ports["imap"])
    yield c
    c.close()


@pytest.fixture
def alice(raw):
    """A raw session logged in as alice."""
    return raw.login()


def caps_of(line):
    m = re.search(rb"CAPABILITY ([^\]\r]*)", line)
    assert m, line
    return set(m.group(1).decode().split())


def b64(data):
    return base64.b64encode(data)


def tagged_status(tagged):
    return tagged.split(b" ", 2)[1]


def select_lines(c, name=b"INBOX", cmd=b"SELECT"):
    return c.ok(cmd + b" " + name)


def status(c, name, items=b"MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT"):
    untagged = c.ok(b"STATUS " + name + b" (" + items + b")")
    m = re.match(rb'\* STATUS "?([^"]*)"? \((.*)\)\r\n$', untagged[-1])
    assert m, untagged
    vals = m.group(2).split()
    return {vals[i].decode(): int(vals[i + 1]) for i in range(0, len(vals), 2)}


def list_names(c, ref=b'""', pat=b"*", cmd=b"LIST"):
    """{name: attributes(set)} from LIST/LSUB."""
    out = {}
    for r in c.ok(cmd + b" " + ref + b" " + pat):
        m = re.match(rb'\* (?:LIST|LSUB) \(([^)]*)\) "/" (?:"([^"]*)"|(\S+))\r\n$', r)
        assert m, r
        name = (m.group(2) if m.group(2) is not None else m.group(3)).decode()
        out[name] = set(m.group(1).decode().split())
    return out


def norm(lines):
    """Responses with the flags inside FLAGS (...) sorted: their order is not
    significant."""
    def sort_flags(m):
        return b"FLAGS (" + b" ".join(sorted(m.group(1).split())) + b")"
    return [re.sub(rb"FLAGS \(([^)]*)\)", sort_flags, r) for r in lines]


def ok_text(tagged):
    """The tagged line without its tag."""
    return tagged.split(b" ", 1)[1]


def apply_expunges(uids, untagged):
    """The view after the EXPUNGE responses (RFC 3501 7.4.1), in order."""
    uids = list(uids)
    for r in untagged:
        m = re.match(rb"\* (\d+) EXPUNGE\r\n$", r)
        if m:
            del uids[int(m.group(1)) - 1]
    return uids


# --------------------------------------------------------------- greeting


def test_greeting_capability_noop_logout(srv, raw):
    g = raw.greeting
    assert g.startswith(b"* OK [CAPABILITY IMAP4rev1 ") and g.endswith(b"\r\n"), g
    caps = caps_of(g)
    assert CAPS_ALWAYS | CAPS_PREAUTH <= caps, caps
    assert "LOGINDISABLED" not in caps
    assert any(re.fullmatch(r"APPENDLIMIT=\d+", c) for c in caps), caps
    untagged = raw.ok(b"CAPABILITY")
    assert len(untagged) == 1 and untagged[0].startswith(b"* CAPABILITY IMAP4rev1 ")
    assert caps_of(untagged[0]) == caps
    assert raw.cmd(b"CAPABILITY FOO")[1].startswith(b"t2 BAD ")
    assert raw.cmd(b"NOOP") == ([], b"t3 OK NOOP completed\r\n")
    # after login: no AUTH=, no STARTTLS, same extensions
    tagged = raw.cmd(b"LOGIN alice@example.test secret-alice")[1]
    assert tagged.startswith(b"t4 OK [CAPABILITY IMAP4rev1 "), tagged
    after = caps_of(tagged)
    assert CAPS_ALWAYS <= after and not (CAPS_PREAUTH & after), after
    assert caps_of(raw.ok(b"CAPABILITY")[0]) == after
    assert raw.ok(b"NOOP") == []
    # LOGOUT: untagged BYE first, then the tagged OK, then the close
    untagged, tagged = raw.cmd(b"LOGOUT")
    assert [u[:6] for u in untagged] == [b"* BYE "] and tagged.startswith(b"t7 OK ")
    assert raw.read_until_closed() == b""


def test_imaplib_session(srv):
    """A whole session as Python's imaplib sees it."""
    M = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
    assert "IMAP4REV1" in M.capabilities and "IDLE" in M.capabilities
    assert M.login(*ALICE)[0] == "OK"
    typ, data = M.append("INBOX", r"(\Flagged)", imaplib.Time2Internaldate(1700000000),
                         msg("imaplib one"))
    assert typ == "OK" and b"APPENDUID" in data[0]
    assert M.select("INBOX") == ("OK", [b"1"])
    assert M.search(None, "SUBJECT", '"imaplib one"') == ("OK", [b"1"])
    typ, data = M.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    assert b"\\Flagged" in data[0][0] and b'"14-Nov-2023 22:13:20 +0000"' in data[0][0]
    assert data[0][1] == b"Subject: imaplib one\r\n\r\n"
    assert M.store("1", "+FLAGS", r"(\Deleted)")[0] == "OK"
    assert M.expunge() == ("OK", [b"1"])
    assert M.select("INBOX") == ("OK", [b"0"])
    assert M.close()[0] == "OK"
    assert M.logout()[0] == "BYE"


def test_pipelined_commands(srv):
    """Commands sent together are answered in order, each in the state the
    previous ones left (LOGIN completes before SELECT is looked at)."""
    c = RawImap(srv.ports["imap"])
    m = msg("pipelined")
    c.sendraw(b"a NOOP\r\nb LOGIN alice@example.test secret-alice\r\nc SELECT INBOX\r\n"
              b"d APPEND INBOX (\\Seen) {%d+}\r\n%s\r\ne FETCH 1 (FLAGS)\r\n"
              b"f SEARCH SEEN\r\ng LOGOUT\r\n" % (len(m), m))
    data = c.read_until_closed(10)
    tags = [line.split(b" ")[0] for line in data.split(b"\r\n") if line and line[:1] != b"*"]
    assert tags == [b"a", b"b", b"c", b"d", b"e", b"f", b"g"], data
    for t in tags:
        assert re.search(rb"(?m)^%s OK " % t, data), (t, data)
    assert b"\r\n* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n" in data
    assert b"\r\n* SEARCH 1\r\n" in data
    assert data.index(b"* BYE") < data.index(b"\r\ng OK")


# ------------------------------------------------------------ authentication


def test_login_ok_and_literal_forms(srv):
    c = RawImap(srv.ports["imap"])
    c.ok(b'LOGIN "alice@example.test" "secret-alice"')
    c.close()
    c = RawImap(srv.ports["imap"])
    c.sendraw(b"a LOGIN {18}\r\n")
    assert c.readline().startswith(b"+ ")
    c.sendraw(b"alice@example.test {12+}\r\nsecret-alice\r\n")
    assert c.readline().startswith(b"a OK [CAPABILITY ")
    c.close()
    M = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
    assert M.login("bob@example.test", "secret-bob")[0] == "OK"
    M.logout()


def timed(port, command):
    """Sends command on a fresh connection; (tagged reply, seconds)."""
    c = RawImap(port)
    t0 = time.monotonic()
    c.sendraw(b"a " + command + b"\r\n")
    line = c.readline()
    took = time.monotonic() - t0
    c.close()
    return line, took


def test_login_failures_delayed_and_indistinguishable(srv):
    port = srv.ports["imap"]
    cases = {
        "wrong-password": b"LOGIN alice@example.test wrong-password",
        "unknown-user": b"LOGIN nobody@example.test wrong-password",
        "unknown-domain": b"LOGIN alice@nowhere.test wrong-password",
        "plain-wrong": b"AUTHENTICATE PLAIN " + b64(b"\0alice@example.test\0nope"),
        "plain-unknown": b"AUTHENTICATE PLAIN " + b64(b"\0nobody@example.test\0nope"),
    }
    results = {}

    def run(key):
        results[key] = timed(port, cases[key])

    threads = [threading.Thread(target=run, args=(k,)) for k in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for key, (line, took) in results.items():
        assert line == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n", (key, line)
        assert took >= 1.0, (key, took)
    times = [took for _, took in results.values()]
    assert max(times) - min(times) < 0.5, results  # no user enumeration by timing
    # a correct password after a failure on the same connection works
    c = RawImap(port)
    c.sendraw(b"a LOGIN alice@example.test bad\r\nb LOGIN alice@example.test secret-alice\r\n")
    assert c.readline() == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    assert c.readline().startswith(b"b OK [CAPABILITY ")
    c.close()


def test_authenticate_plain_and_login(srv):
    port = srv.ports["imap"]
    creds = b64(b"\0alice@example.test\0secret-alice")
    # SASL-IR
    c = RawImap(port)
    c.sendraw(b"a AUTHENTICATE PLAIN " + creds + b"\r\n")
    line = c.readline()
    assert line.startswith(b"a OK [CAPABILITY IMAP4rev1 ") and b"AUTH=" not in line, line
    c.ok(b"SELECT INBOX")
    c.close()
    # authzid = authcid is fine
    c = RawImap(port)
    c.ok(b"AUTHENTICATE PLAIN " + b64(b"alice@example.test\0alice@example.test\0secret-alice"))
    c.close()
    # continuation: "+ " with an empty challenge
    c = RawImap(port)
    c.sendraw(b"a AUTHENTICATE PLAIN\r\n")
    assert c.readline() == b"+ \r\n"
    c.sendraw(creds + b"\r\n")
    assert c.readline().startswith(b"a OK ")
    c.close()
    # LOGIN mechanism: Username:, Password:
    c = RawImap(port)
    c.sendraw(b"a authenticate login\r\n")
    assert c.readline() == b"+ " + b64(b"Username:") + b"\r\n"
    c.sendraw(b64(b"alice@example.test") + b"\r\n")
    assert c.readline() == b"+ " + b64(b"Password:") + b"\r\n"
    c.sendraw(b64(b"secret-alice") + b"\r\n")
    assert c.readline().startswith(b"a OK ")
    c.close()
    # imaplib's AUTHENTICATE (continuation, no SASL-IR)
    M = imaplib.IMAP4("127.0.0.1", port)
    typ, _ = M.authenticate("PLAIN", lambda _: b"\0bob@example.test\0secret-bob")
    assert typ == "OK"
    assert M.select("INBOX")[0] == "OK"
    M.logout()


def test_authenticate_cancel_and_errors(srv, raw):
    c = raw
    for mech, first in [(b"PLAIN", b"+ \r\n"), (b"LOGIN", b"+ " + b64(b"Username:") + b"\r\n")]:
        tag = c.send(b"AUTHENTICATE " + mech)
        assert c.readline() == first
        c.sendraw(b"*\r\n")  # RFC 3501 6.2.2: cancel -> tagged BAD
        assert c.readline().startswith(tag + b" BAD ")
    # the LOGIN mechanism cancelled at its second step
    tag = c.send(b"AUTHENTICATE LOGIN")
    c.readline()
    c.sendraw(b64(b"alice@example.test") + b"\r\n")
    assert c.readline() == b"+ " + b64(b"Password:") + b"\r\n"
    c.sendraw(b"*\r\n")
    assert c.readline().startswith(tag + b" BAD ")
    # not base64; unknown mechanism; PLAIN without the NULs; proxy authorization
    assert c.cmd(b"AUTHENTICATE PLAIN !!!!")[1].split()[1] == b"BAD"
    assert c.cmd(b"AUTHENTICATE CRAM-MD5")[1].split()[1] == b"NO"
    assert c.cmd(b"AUTHENTICATE PLAIN " + b64(b"alice@example.test"))[1].split()[1] == b"BAD"
    untagged, tagged = c.cmd(b"AUTHENTICATE PLAIN " + b64(b"bob@example.test\0alice@example.test"
                                                          b"\0secret-alice"))
    assert tagged.split()[1] == b"NO", tagged
    # none of that logged in
    assert c.cmd(b"SELECT INBOX")[1].split()[1] == b"BAD"
    c.ok(b"AUTHENTICATE PLAIN " + b64(b"\0alice@example.test\0secret-alice"))
    c.ok(b"SELECT INBOX")


def test_commands_in_wrong_state(srv, raw):
    c = raw
    not_auth = [b"SELECT INBOX", b"EXAMINE INBOX", b"CREATE x", b"DELETE x", b"RENAME x y",
                b"SUBSCRIBE x", b"UNSUBSCRIBE x", b'LIST "" *', b'LSUB "" *', b"NAMESPACE",
                b"STATUS INBOX (MESSAGES)", b"APPEND INBOX {1+}\r\nx", b"IDLE", b"ENABLE IDLE",
                b"CHECK", b"CLOSE", b"UNSELECT", b"EXPUNGE", b"SEARCH ALL", b"FETCH 1 FLAGS",
                b"STORE 1 +FLAGS (\\Seen)", b"COPY 1 INBOX", b"MOVE 1 INBOX", b"UID FETCH 1 FLAGS",
                b"UID EXPUNGE 1"]
    for command in not_auth:
        assert c.cmd(command)[1].split()[1] == b"BAD", command
        c.ok(b"NOOP")  # keep under max_errors consecutive BADs
    c.login()
    not_selected = [b"CHECK", b"CLOSE", b"UNSELECT", b"EXPUNGE", b"SEARCH ALL",
                    b"FETCH 1 FLAGS", b"STORE 1 +FLAGS (\\Seen)", b"COPY 1 INBOX", b"MOVE 1 INBOX",
                    b"UID FETCH 1 FLAGS", b"UID STORE 1 FLAGS ()", b"UID COPY 1 INBOX",
                    b"UID MOVE 1 INBOX", b"UID SEARCH ALL", b"UID EXPUNGE 1",
                    b"LOGIN alice@example.test secret-alice",
                    b"AUTHENTICATE PLAIN " + b64(b"\0alice@example.test\0secret-alice"),
                    b"STARTTLS"]
    for command in not_selected:
        assert c.cmd(command)[1].split()[1] == b"BAD", command
        c.ok(b"NOOP")
    c.ok(b"SELECT INBOX")
    for command in [b"LOGIN alice@example.test secret-alice", b"STARTTLS",
                    b"UID NOOP", b"UID SELECT INBOX", b"UID"]:
        assert c.cmd(command)[1].split()[1] == b"BAD", command
        c.ok(b"NOOP")


# ----------------------------------------------------------- SELECT/EXAMINE


def test_select_responses(srv, alice):
    c = alice
    assert appenduid(append(c, b"INBOX", msg("one"), b"(\\Seen)")) [1] == 1
    uidvalidity, uid2 = appenduid(append(c, b"INBOX", msg("two"), b"($Label1)"))
    assert uid2 == 2
    untagged, tagged = c.cmd(b"SELECT INBOX")
    assert tagged == b"t4 OK [READ-WRITE] SELECT completed\r\n", tagged
    flags = [u for u in untagged if u.startswith(b"* FLAGS ")]
    assert len(flags) == 1
    assert {b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft"} <= set(
        flags[0][9:-3].split()), flags
    perm = [u for u in untagged if u.startswith(b"* OK [PERMANENTFLAGS (")]
    assert len(perm) == 1 and b"\\*" in perm[0] and b"\\Seen" in perm[0], perm
    assert b"* 2 EXISTS\r\n" in untagged
    assert b"* 2 RECENT\r\n" in untagged  # first session to see them
    assert any(u.startswith(b"* OK [UNSEEN 2]") for u in untagged), untagged
    assert any(u.startswith(b"* OK [UIDVALIDITY %d]" % uidvalidity) for u in untagged)
    assert any(u.startswith(b"* OK [UIDNEXT 3]") for u in untagged), untagged
    # a second session: not recent any more
    other = RawImap(srv.ports["imap"]).login()
    untagged = other.ok(b"SELECT inbox")  # INBOX is case-insensitive
    assert b"* 0 RECENT\r\n" in untagged and b"* 2 EXISTS\r\n" in untagged
    other.close()
    # SELECT of what does not exist: NO [NONEXISTENT], and nothing is selected
    untagged, tagged = c.cmd(b"SELECT nope")
    # (an untagged OK [CLOSED] for the mailbox left is allowed, RFC 7162 3.2.11)
    assert [u for u in untagged if not u.startswith(b"* OK [CLOSED]")] == [], untagged
    assert tagged == b"t5 NO [NONEXISTENT] No such mailbox\r\n", tagged
    assert c.cmd(b"FETCH 1 FLAGS")[1].split()[1] == b"BAD"
    assert c.cmd(b"EXAMINE nope")[1].startswith(b"t7 NO [NONEXISTENT]")


def test_examine_is_read_only(srv, alice):
    c = alice
    append(c, b"INBOX", msg("one"))
    append(c, b"INBOX", msg("two"), b"(\\Deleted)")
    untagged, tagged = c.cmd(b"EXAMINE INBOX")
    assert ok_text(tagged).startswith(b"OK [READ-ONLY]"), tagged
    assert b"* 2 EXISTS\r\n" in untagged
    perm = [u for u in untagged if u.startswith(b"* OK [PERMANENTFLAGS")]
    assert perm and perm[0].startswith(b"* OK [PERMANENTFLAGS ()]"), perm
    for command in [b"STORE 1 +FLAGS (\\Seen)", b"UID STORE 1 +FLAGS (\\Seen)",
                    b"STORE 1 FLAGS.SILENT (\\Flagged)", b"EXPUNGE", b"UID EXPUNGE 2",
                    b"MOVE 1 Trash", b"UID MOVE 1 Trash"]:
        untagged, tagged = c.cmd(command)
        assert tagged.split()[1] == b"NO" and untagged == [], (command, untagged, tagged)
    # copying out of a read-only mailbox is fine
    assert ok_text(c.cmd(b"COPY 1 Trash")[1]).startswith(b"OK [COPYUID ")
    # CLOSE of an EXAMINEd mailbox does not expunge
    untagged, tagged = c.cmd(b"CLOSE")
    assert untagged == [] and ok_text(tagged) == b"OK CLOSE completed\r\n"
    assert status(c, b"INBOX")["MESSAGES"] == 2
    assert c.ok(b"SELECT INBOX")
    assert c.ok(b"FETCH 1:2 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))\r\n",
                                        b"* 2 FETCH (FLAGS (\\Deleted \\Recent))\r\n"]


def test_examine_shows_recent_without_clearing_it(srv, alice):
    """RFC 3501 6.3.2: EXAMINE returns the same output as SELECT (so the
    RECENT count too) and MUST NOT cause messages to lose \\Recent."""
    c = alice
    append(c, b"INBOX", msg("one"))
    append(c, b"INBOX", msg("two"))
    untagged = c.ok(b"EXAMINE INBOX")
    assert b"* 2 RECENT\r\n" in untagged, untagged
    c.ok(b"CLOSE")
    other = RawImap(srv.ports["imap"]).login()
    assert b"* 2 RECENT\r\n" in other.ok(b"SELECT INBOX")  # still recent
    other.close()


# ------------------------------------------------------ mailbox management


def test_create_delete_rename(srv, alice):
    c = alice
    for name in [b"Work", b"Work/2024", b"Work/2024/Q1", b"Work/Old", b"Trailing/"]:
        assert c.cmd(b"CREATE " + name)[1].split()[1] == b"OK", name
    assert "Trailing" in list_names(c)  # the trailing delimiter is dropped
    for name in [b"Work", b"inbox", b"Sent", b"Work/2024/"]:
        untagged, tagged = c.cmd(b"CREATE " + name)
        assert untagged == [] and ok_text(tagged).startswith(b"NO [ALREADYEXISTS]"), tagged
    append(c, b"Work/2024", msg("kept"), b"(\\Flagged)")
    before = status(c, b"Work/2024")
    # RENAME moves the children along
    untagged, tagged = c.cmd(b"RENAME Work Jobs")
    assert untagged == [] and ok_text(tagged) == b"OK RENAME completed\r\n"
    names = list_names(c)
    assert {"Jobs", "Jobs/2024", "Jobs/2024/Q1", "Jobs/Old"} <= set(names), names
    assert not [n for n in names if n.startswith("Work")], names
    after = status(c, b"Jobs/2024")
    assert after["MESSAGES"] == 1 and after["UIDVALIDITY"] == before["UIDVALIDITY"]
    c.ok(b"SELECT Jobs/2024")
    assert c.ok(b"FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent) BODY[HEADER.FIELDS (SUBJECT)] %s)\r\n"
        % lit(b"Subject: kept\r\n\r\n")]
    c.ok(b"UNSELECT")
    # errors
    for command, code in [(b"RENAME Nope Other", b"NONEXISTENT"),
                          (b"RENAME Jobs Trailing", b"ALREADYEXISTS"),
                          (b"RENAME Jobs INBOX", b"ALREADYEXISTS"),
                          (b"DELETE Nope", b"NONEXISTENT"),
                          (b"SELECT Work", b"NONEXISTENT"),
                          (b"STATUS Work (MESSAGES)", b"NONEXISTENT")]:
        untagged, tagged = c.cmd(command)
        assert tagged.split()[1:3] == [b"NO", b"[" + code + b"]"], (command, tagged)
    assert c.cmd(b"DELETE INBOX")[1].split()[1] == b"NO"
    # a selectable mailbox with children may be deleted; the children stay
    assert c.ok(b"DELETE Jobs/2024") == []
    names = list_names(c)
    assert "Jobs/2024/Q1" in names, names
    assert "\\Noselect" in names.get("Jobs/2024", {"\\Noselect"})
    assert c.cmd(b"SELECT Jobs/2024")[1].split()[1] == b"NO"
    assert c.ok(b"DELETE Jobs/2024/Q1") == []
    assert "Jobs/2024" not in list_names(c)
    # a new mailbox under a deleted name does not reuse the old UIDs
    c.ok(b"CREATE Jobs/2024")
    st = status(c, b"Jobs/2024")
    assert st["UIDVALIDITY"] != before["UIDVALIDITY"] or st["UIDNEXT"] > 1, st


def test_overlong_mailbox_names_not_truncated(srv, alice):
    """Names longer than the server takes are refused, never cut short: a
    command on a 700-octet name must not act on the mailbox named by its
    first 511 octets."""
    c = alice
    short = b"L" * 511
    c.ok(b"CREATE " + short)
    append(c, short, msg("in the short one"))
    wrong = []
    for command in [b"CREATE " + b"L" * 600, b"STATUS " + b"L" * 700 + b" (MESSAGES)",
                    b"SELECT " + b"L" * 700, b"EXAMINE " + b"L" * 700,
                    b"RENAME " + b"L" * 700 + b" Other", b"RENAME Sent " + b"L" * 700,
                    b"SUBSCRIBE " + b"L" * 700, b"DELETE " + b"L" * 700]:
        untagged, tagged = c.cmd(command)
        if tagged.split()[1] not in (b"NO", b"BAD"):
            wrong.append((command[:12] + b"...", untagged[:1], tagged))
        if tagged.split()[1] == b"OK" and command.split()[0] in (b"SELECT", b"EXAMINE"):
            c.ok(b"UNSELECT")
    names = list_names(c)
    assert wrong == [], "\n".join(repr(w) for w in wrong)
    assert short.decode() in names and "Sent" in names
    assert [n for n in names if n.startswith("L")] == [short.decode()]
    assert status(c, short)["MESSAGES"] == 1


def test_list_pattern_matching_is_not_exponential(srv, alice):
    """A LIST pattern with many wildcards against a long name must not take
    the server (and every session on its worker thread) down."""
    c = alice
    c.ok(b"CREATE " + b"a" * 60)
    t0 = time.monotonic()
    tag = c.send(b'LIST "" "' + b"*a" * 12 + b'b"')
    try:
        untagged, tagged = c.wait(tag, timeout=3)
    except (socket.timeout, TimeoutError):
        srv.stop(signal.SIGKILL)  # the worker is stuck; do not wait for it
        raise AssertionError("LIST did not answer within 3 s")
    assert untagged == [] and tagged.split()[1] == b"OK", (untagged, tagged)
    # the right answer when there is a match
    untagged = c.ok(b'LIST "" "' + b"*a" * 12 + b'*"')
    assert untagged == [b'* LIST (\\HasNoChildren) "/" "%s"\r\n' % (b"a" * 60)], untagged
    assert time.monotonic() - t0 < 3


def test_rename_inbox(srv, alice):
    c = alice
    for i in range(3):
        append(c, b"INBOX", msg("inbox %d" % i))
    watcher = RawImap(srv.ports["imap"]).login()
    watcher.ok(b"SELECT INBOX")
    inbox = status(c, b"INBOX")
    assert c.ok(b"RENAME INBOX Archive") == []
    # INBOX stays, empty, its UIDs not reused; the messages are in Archive
    st = status(c, b"INBOX")
    assert st["MESSAGES"] == 0 and st["UIDNEXT"] == inbox["UIDNEXT"]
    assert st["UIDVALIDITY"] == inbox["UIDVALIDITY"]
    assert status(c, b"Archive")["MESSAGES"] == 3
    assert {"INBOX", "Archive"} <= set(list_names(c))
    assert appenduid(append(c, b"INBOX", msg("after")))[1] == inbox["UIDNEXT"]
    c.ok(b"SELECT Archive")
    assert c.ok(b"SEARCH SUBJECT inbox") == [b"* SEARCH 1 2 3\r\n"]
    # a session that had INBOX selected learns that the messages left
    untagged = noop_until(watcher, rb"^\* 1 EXISTS")
    assert apply_expunges([1, 2, 3], untagged) == [], untagged
    assert b"* 1 EXISTS\r\n" in untagged, untagged
    watcher.close()


def test_subscribe_lsub(srv, alice):
    c = alice
    # the default mailboxes are subscribed
    assert set(list_names(c, cmd=b"LSUB")) == {"INBOX", "Sent", "Drafts", "Trash", "Junk"}
    for name in [b"Lists", b"Lists/imap", b"Lists/smtp"]:
        c.ok(b"CREATE " + name)
    c.ok(b"SUBSCRIBE Lists/imap")
    assert list_names(c, pat=b"Lists/*", cmd=b"LSUB") == {"Lists/imap": set()}
    # "%" shows the unsubscribed parent of a subscribed child as \Noselect
    assert list_names(c, pat=b"Lists%", cmd=b"LSUB") == {"Lists": {"\\Noselect"}}
    c.ok(b"SUBSCRIBE Lists")
    assert list_names(c, pat=b"Lists%", cmd=b"LSUB") == {"Lists": set()}
    c.ok(b"UNSUBSCRIBE Lists/imap")
    assert list_names(c, pat=b"Lists/*", cmd=b"LSUB") == {}
    # a deleted mailbox stays subscribed (RFC 3501 6.3.6)
    c.ok(b"SUBSCRIBE Lists/smtp")
    c.ok(b"DELETE Lists/smtp")
    assert "Lists/smtp" in list_names(c, pat=b"*", cmd=b"LSUB")
    c.ok(b"UNSUBSCRIBE Lists/smtp")
    assert "Lists/smtp" not in list_names(c, pat=b"*", cmd=b"LSUB")
    # LSUB "" "" does not fail
    c.ok(b'LSUB "" ""')


def test_list_patterns_children_special_use(srv, alice):
    c = alice
    assert c.ok(b'LIST "" ""') == [b'* LIST (\\Noselect) "/" ""\r\n']
    top = list_names(c)
    assert top == {"INBOX": {"\\HasNoChildren"}, "Sent": {"\\HasNoChildren", "\\Sent"},
                   "Drafts": {"\\HasNoChildren", "\\Drafts"},
                   "Trash": {"\\HasNoChildren", "\\Trash"},
                   "Junk": {"\\HasNoChildren", "\\Junk"}}, top
    for name in [b"Projects", b"Projects/a", b"Projects/a/deep", b"Projects/b", b"Sent/2023"]:
        c.ok(b"CREATE " + name)
    every = list_names(c, pat=b"*")
    assert every["Projects"] == {"\\HasChildren"}
    assert every["Projects/a"] == {"\\HasChildren"}
    assert every["Projects/a/deep"] == {"\\HasNoChildren"}
    assert every["Sent"] == {"\\HasChildren", "\\Sent"}
    assert set(every) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Projects", "Projects/a",
                          "Projects/a/deep", "Projects/b", "Sent/2023"}
    # % stops at the delimiter
    assert set(list_names(c, pat=b"%")) == {"INBOX", "Sent", "Drafts", "Trash", "Junk",
                                            "Projects"}
    assert set(list_names(c, pat=b"Projects/%")) == {"Projects/a", "Projects/b"}
    assert set(list_names(c, ref=b"Projects/", pat=b"%")) == {"Projects/a", "Projects/b"}
    assert set(list_names(c, pat=b"Projects/*")) == {"Projects/a", "Projects/a/deep",
                                                     "Projects/b"}
    assert set(list_names(c, pat=b"*/deep")) == {"Projects/a/deep"}
    assert set(list_names(c, pat=b"P%s")) == {"Projects"}
    assert set(list_names(c, pat=b"nothing*")) == set()
    # INBOX matches case-insensitively
    assert set(list_names(c, pat=b"inbox")) == {"INBOX"}
    assert set(list_names(c, pat=b'"InBoX"')) == {"INBOX"}


def test_namespace(srv, alice):
    assert alice.cmd(b"NAMESPACE") == ([b'* NAMESPACE (("" "/")) NIL NIL\r\n'],
                                       b"t2 OK NAMESPACE completed\r\n")
    assert alice.cmd(b"NAMESPACE x")[1].split()[1] == b"BAD"


def test_status(srv, alice):
    c = alice
    c.ok(b"CREATE Box")
    empty = status(c, b"Box")
    assert empty["MESSAGES"] == 0 and empty["UNSEEN"] == 0 and empty["RECENT"] == 0
    assert empty["UIDNEXT"] == 1 and empty["UIDVALIDITY"] > 0
    append(c, b"Box", msg("a"), b"(\\Seen)")
    append(c, b"Box", msg("b"))
    append(c, b"Box", msg("c"), b"(\\Flagged)")
    st = status(c, b"Box")
    assert st == {"MESSAGES": 3, "UIDNEXT": 4, "UIDVALIDITY": empty["UIDVALIDITY"],
                  "UNSEEN": 2, "RECENT": 3}, st  # no session has seen them yet
    # the order asked is the order given; one item alone
    assert c.ok(b"STATUS Box (UNSEEN MESSAGES)") == [b'* STATUS "Box" (UNSEEN 2 MESSAGES 3)\r\n']
    # SELECT agrees with what STATUS said about \Recent
    untagged = c.ok(b"SELECT Box")
    assert b"* %d RECENT\r\n" % st["RECENT"] in untagged, untagged
    c.ok(b"UNSELECT")
    assert status(c, b"Box")["RECENT"] == 0  # claimed by the SELECT
    assert ok_text(c.cmd(b"STATUS Nope (MESSAGES)")[1]).startswith(b"NO [NONEXISTENT]")
    for bad in [b"STATUS Box (FOO)", b"STATUS Box ()", b"STATUS Box MESSAGES", b"STATUS Box"]:
        assert c.cmd(bad)[1].split()[1] == b"BAD", bad
        c.ok(b"NOOP")


# ------------------------------------------------------------------ APPEND


def test_append(srv, alice):
    c = alice
    st = status(c, b"INBOX")
    tagged = append(c, b"INBOX", msg("flags and date"), b"(\\Seen \\Draft $Important)",
                    b"14-Jul-2023 12:34:56 +0200")
    assert tagged == b"t3 OK [APPENDUID %d 1] APPEND completed\r\n" % st["UIDVALIDITY"], tagged
    # no flags, no date: now
    before = time.time()
    assert appenduid(append(c, b"INBOX", msg("plain")))[1] == 2
    # synchronizing literal: "+" first
    m = msg("sync literal")
    tag = c.send(b"APPEND INBOX () {%d}" % len(m))
    assert c.readline().startswith(b"+ ")
    c.sendraw(m + b"\r\n")
    assert appenduid(c.wait(tag)[1])[1] == 3
    # LITERAL+: no "+"; the tagged reply is the only thing that comes
    m = msg("literal plus")
    c.sendraw(b"x1 APPEND INBOX (\\Flagged) {%d+}\r\n" % len(m) + m + b"\r\n")
    assert c.readline() == b"x1 OK [APPENDUID %d 4] APPEND completed\r\n" % st["UIDVALIDITY"]
    # several APPENDs pipelined with LITERAL+
    data = b"".join(b"p%d APPEND INBOX {%d+}\r\n" % (i, len(msg("pipe %d" % i))) +
                    msg("pipe %d" % i) + b"\r\n" for i in range(5))
    c.sendraw(data)
    assert [c.readline()[:2] for _ in range(5)] == [b"p0", b"p1", b"p2", b"p3", b"p4"]
    c.ok(b"SELECT INBOX")
    r = c.ok(b"FETCH 1:2 (FLAGS INTERNALDATE)")
    assert r[0] == (b'* 1 FETCH (FLAGS (\\Seen \\Draft \\Recent $Important) '
                    b'INTERNALDATE "14-Jul-2023 10:34:56 +0000")\r\n'), r
    m2 = re.search(rb'INTERNALDATE "([^"]+)"', r[1]).group(1)
    t2 = time.mktime(time.strptime(m2.decode().strip(), "%d-%b-%Y %H:%M:%S +0000")) - time.timezone
    assert before - 5 <= t2 <= time.time() + 5, m2
    assert uid_list(c) == list(range(1, 10))
    # APPEND to the selected mailbox: EXISTS before the tagged OK
    untagged, tagged = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(msg("x")) + msg("x"))
    assert b"* 10 EXISTS\r\n" in untagged and appenduid(tagged)[1] == 10, untagged
    # to a mailbox that does not exist: NO [TRYCREATE], and it is not created
    untagged, tagged = c.cmd(b"APPEND Nowhere {5+}\r\nhello")
    assert tagged.split()[1:3] == [b"NO", b"[TRYCREATE]"], tagged
    assert c.cmd(b"STATUS Nowhere (MESSAGES)")[1].split()[1] == b"NO"
    # bad flags or date: BAD, nothing stored
    for bad in [b"APPEND INBOX (\\Recent) {5+}\r\nhello",
                b"APPEND INBOX (\\Unknown) {5+}\r\nhello",
                b'APPEND INBOX "31-Foo-2023 00:00:00 +0000" {5+}\r\nhello',
                b"APPEND INBOX hello"]:
        assert c.cmd(bad)[1].split()[1] == b"BAD", bad
        c.ok(b"NOOP")
    assert status(c, b"INBOX")["MESSAGES"] == 10


def test_append_too_big_nonsync(petrel_factory):
    p = petrel_factory(listen=LISTEN, extra={"limits": {"max_message_size": "2048"}})
    c = RawImap(p.ports["imap"])
    assert "APPENDLIMIT=2048" in caps_of(c.greeting)
    c.login()
    body = b"x" * 3000
    # {n+}: the octets come anyway; they are skipped, NO [TOOBIG], the session goes on
    untagged, tagged = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(body) + body)
    assert tagged.split()[1:3] in ([b"NO", b"[TOOBIG]"], [b"BAD", b"[TOOBIG]"]), tagged
    c.ok(b"NOOP")
    exact = b"Subject: x\r\n\r\n" + b"y" * (2048 - 15) + b"\n"
    assert len(exact) == 2048
    assert appenduid(append(c, b"INBOX", exact))[1] == 1
    assert status(c, b"INBOX")["MESSAGES"] == 1


def test_append_too_big_sync_literal_refused_at_once(petrel_factory):
    """RFC 3501 2.2.1 / RFC 7889 3: a synchronizing literal over APPENDLIMIT is
    refused with a tagged [TOOBIG] instead of "+": the client, which waits for
    "+" or a tagged reply, sends nothing more."""
    p = petrel_factory(listen=LISTEN, extra={"limits": {"max_message_size": "2048"}})
    c = RawImap(p.ports["imap"]).login()
    c.sendraw(b"big APPEND INBOX (\\Seen) {3000}\r\n")
    m, took = c.wait_for(rb"\r\n", 3)
    line = c.readline(timeout=1) if m else c.buf
    assert m and line.startswith(b"big ") and b"[TOOBIG]" in line, (
        "no reply within %.1f s: %r" % (took, line))
    assert line.split()[1] in (b"NO", b"BAD"), line
    assert not line.startswith(b"+")
    c.ok(b"NOOP")
    assert status(c, b"INBOX")["MESSAGES"] == 0


# ------------------------------------------------------------------- STORE


@pytest.fixture
def inbox5(srv, alice):
    """alice with INBOX selected holding 5 messages, UIDs 1..5."""
    for i in range(1, 6):
        append(alice, b"INBOX", msg("message %d" % i))
    alice.ok(b"SELECT INBOX")
    alice.srv = srv
    return alice


def test_store(inbox5):
    c = inbox5

    def ok(command):
        return norm(c.ok(command))

    assert ok(b"STORE 1 +FLAGS (\\Flagged $Work)") == norm([
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent $Work))\r\n"])
    assert ok(b"STORE 1 +FLAGS (\\Seen $Work $Home)") == norm([
        b"* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent $Work $Home))\r\n"])
    assert ok(b"STORE 1 -FLAGS ($Work \\Flagged \\Answered)") == norm([
        b"* 1 FETCH (FLAGS (\\Seen \\Recent $Home))\r\n"])
    assert ok(b"STORE 1:2 FLAGS (\\Answered)") == norm([
        b"* 1 FETCH (FLAGS (\\Answered \\Recent))\r\n",
        b"* 2 FETCH (FLAGS (\\Answered \\Recent))\r\n"])
    assert ok(b"STORE 2 FLAGS ()") == [b"* 2 FETCH (FLAGS (\\Recent))\r\n"]
    # .SILENT: no FETCH response; the change is made
    assert ok(b"STORE 3:4 +FLAGS.SILENT (\\Deleted Keyword1)") == []
    assert ok(b"STORE 3 -FLAGS.SILENT (Keyword1)") == []
    assert ok(b"STORE 5 FLAGS.SILENT \\Draft") == []  # a single flag without ()
    assert ok(b"FETCH 1:5 FLAGS") == norm([
        b"* 1 FETCH (FLAGS (\\Answered \\Recent))\r\n",
        b"* 2 FETCH (FLAGS (\\Recent))\r\n",
        b"* 3 FETCH (FLAGS (\\Deleted \\Recent))\r\n",
        b"* 4 FETCH (FLAGS (\\Deleted \\Recent Keyword1))\r\n",
        b"* 5 FETCH (FLAGS (\\Draft \\Recent))\r\n"])
    # UID STORE: UID in each FETCH response
    assert ok(b"UID STORE 2,4 +FLAGS (\\Seen)") == norm([
        b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))\r\n",
        b"* 4 FETCH (UID 4 FLAGS (\\Deleted \\Seen \\Recent Keyword1))\r\n"])
    assert ok(b"UID STORE 99 +FLAGS (\\Seen)") == []
    # \Recent cannot be stored; unknown system flags neither; bad syntax
    for bad in [b"STORE 1 +FLAGS (\\Recent)", b"STORE 1 FLAGS (\\Recent)",
                b"STORE 1 +FLAGS (\\Frobbed)", b"STORE 1 +FLAGZ (\\Seen)", b"STORE 1 +FLAGS",
                b"STORE 0 +FLAGS (\\Seen)", b"STORE x +FLAGS (\\Seen)",
                b"STORE 1 +FLAGS ((\\Seen))"]:
        assert c.cmd(bad)[1].split()[1] == b"BAD", bad
        c.ok(b"NOOP")
    # persisted, seen from another session
    other = RawImap(c.srv.ports["imap"]).login()
    other.ok(b"EXAMINE INBOX")
    assert other.ok(b"FETCH 4 FLAGS") == [b"* 4 FETCH (FLAGS (\\Deleted \\Seen Keyword1))\r\n"]
    other.close()


# ---------------------------------------------------------------- COPY/MOVE


def test_copy(inbox5):
    c = inbox5
    c.ok(b"STORE 2 +FLAGS.SILENT (\\Flagged $Keep)")
    trash = status(c, b"Trash")
    untagged, tagged = c.cmd(b"COPY 2:3 Trash")
    assert untagged == [] and tagged == (
        b"t%d OK [COPYUID %d 2:3 1:2] COPY completed\r\n" % (c.n, trash["UIDVALIDITY"])), tagged
    tagged = c.cmd(b"UID COPY 5,1 Trash")[1]
    assert tagged.startswith(b"t%d OK [COPYUID %d 1,5 3:4]" % (c.n, trash["UIDVALIDITY"])), tagged
    assert status(c, b"Trash")["MESSAGES"] == 4
    assert status(c, b"INBOX")["MESSAGES"] == 5  # the originals stay
    # to the selected mailbox itself: new messages show up
    untagged, tagged = c.cmd(b"COPY 1 INBOX")
    assert b"* 6 EXISTS\r\n" in untagged and b"[COPYUID " in tagged, (untagged, tagged)
    # flags go along; the copies are \Recent for whoever sees them first
    other = RawImap(c.srv.ports["imap"]).login()
    other.ok(b"SELECT Trash")
    assert other.ok(b"FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent $Keep) BODY[HEADER.FIELDS (SUBJECT)] %s)\r\n"
        % lit(b"Subject: message 2\r\n\r\n")]
    other.close()
    # errors: TRYCREATE, nothing copied; UID COPY of nothing is OK
    untagged, tagged = c.cmd(b"COPY 1 Nowhere")
    assert tagged.split()[1:3] == [b"NO", b"[TRYCREATE]"], tagged
    assert c.cmd(b"UID COPY 77 Trash")[1].split()[1] == b"OK"


def test_sequence_numbers_beyond_exists(inbox5):
    """RFC 3501 9 (seq-number): a message sequence number greater than the
    number of messages gets a tagged BAD, "*" in an empty mailbox included;
    FETCH does so (test_imap_fetch_search.py), STORE/COPY/MOVE must too,
    and nothing is done."""
    c = inbox5
    wrong = []
    for command in [b"STORE 6 +FLAGS (\\Seen)", b"STORE 4:9 +FLAGS (\\Seen)",
                    b"COPY 6 Trash", b"COPY 2,7 Trash", b"MOVE 6 Trash", b"MOVE 5:6 Trash"]:
        untagged, tagged = c.cmd(command)
        if tagged.split()[1] != b"BAD" or untagged:
            wrong.append((command, untagged, tagged))
        c.ok(b"NOOP")
    c.ok(b"CREATE Empty")
    c.ok(b"SELECT Empty")
    for command in [b"STORE * +FLAGS (\\Seen)", b"COPY * Trash", b"MOVE 1:* Trash"]:
        untagged, tagged = c.cmd(command)
        if tagged.split()[1] != b"BAD":
            wrong.append((command, untagged, tagged))
        c.ok(b"NOOP")
    # UID forms take any UIDs: those not there are just left out
    for command in [b"UID STORE 1:* +FLAGS (\\Seen)", b"UID COPY 1:* Trash",
                    b"UID MOVE 5:* Trash"]:
        assert c.cmd(command)[1].split()[1] == b"OK", command
    assert wrong == [], "\n".join(repr(w) for w in wrong)


def test_move(inbox5):
    c = inbox5
    trash = status(c, b"Trash")
    untagged, tagged = c.cmd(b"MOVE 2,4 Trash")
    # RFC 6851 4.3: the COPYUID goes in an untagged OK, before the expunges
    assert untagged[0] == b"* OK [COPYUID %d 2,4 1:2] Moved\r\n" % trash["UIDVALIDITY"] or \
        untagged[0].startswith(b"* OK [COPYUID %d 2,4 1:2]" % trash["UIDVALIDITY"]), untagged
    assert apply_expunges([1, 2, 3, 4, 5], untagged[1:]) == [1, 3, 5], untagged
    assert len(untagged) == 3 and tagged.split()[1] == b"OK", (untagged, tagged)
    assert uid_list(c) == [1, 3, 5]
    # UID MOVE
    untagged, tagged = c.cmd(b"UID MOVE 5 Trash")
    assert untagged == [b"* OK [COPYUID %d 5 3] Moved\r\n" % trash["UIDVALIDITY"],
                        b"* 3 EXPUNGE\r\n"] or (
        untagged[0].startswith(b"* OK [COPYUID %d 5 3]" % trash["UIDVALIDITY"])
        and untagged[1:] == [b"* 3 EXPUNGE\r\n"]), untagged
    assert status(c, b"Trash")["MESSAGES"] == 3
    # to a mailbox that does not exist: NO [TRYCREATE], nothing moved
    untagged, tagged = c.cmd(b"MOVE 1 Nowhere")
    assert untagged == [] and tagged.split()[1:3] == [b"NO", b"[TRYCREATE]"], tagged
    assert uid_list(c) == [1, 3]
    # the moved messages are gone for another session too
    other = RawImap(c.srv.ports["imap"]).login()
    other.ok(b"SELECT INBOX")
    assert uid_list(other) == [1, 3]
    other.ok(b"SELECT Trash")
    assert other.ok(b"SEARCH SUBJECT message") == [b"* SEARCH 1 2 3\r\n"]
    assert other.ok(b"FETCH 1:3 BODY.PEEK[HEADER.FIELDS (SUBJECT)]") == [
        b"* %d FETCH (BODY[HEADER.FIELDS (SUBJECT)] %s)\r\n" % (i + 1, lit(
            b"Subject: message %d\r\n\r\n" % n)) for i, n in enumerate([2, 4, 5])]
    other.close()


# ------------------------------------------------- EXPUNGE/CLOSE/UNSELECT


def test_expunge_and_uid_expunge(inbox5):
    c = inbox5
    c.ok(b"STORE 2,3,5 +FLAGS.SILENT (\\Deleted)")
    # UID EXPUNGE: only the given UIDs, and only if \Deleted
    untagged, tagged = c.cmd(b"UID EXPUNGE 1,3")
    assert untagged == [b"* 3 EXPUNGE\r\n"] and tagged.split()[1] == b"OK", (untagged, tagged)
    assert uid_list(c) == [1, 2, 4, 5]
    untagged = c.ok(b"EXPUNGE")
    assert sorted(untagged) == sorted(set(untagged)) and len(untagged) == 2, untagged
    assert apply_expunges([1, 2, 4, 5], untagged) == [1, 4], untagged
    assert uid_list(c) == [1, 4]
    assert c.ok(b"EXPUNGE") == []  # nothing left to expunge
    assert c.cmd(b"UID EXPUNGE")[1].split()[1] == b"BAD"


def test_close_and_unselect(inbox5):
    c = inbox5
    c.ok(b"STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    # UNSELECT: back to authenticated state, nothing expunged
    assert c.cmd(b"UNSELECT") == ([], b"t%d OK UNSELECT completed\r\n" % c.n)
    assert c.cmd(b"FETCH 1 FLAGS")[1].split()[1] == b"BAD"
    assert status(c, b"INBOX")["MESSAGES"] == 5
    # CLOSE: expunges silently
    c.ok(b"SELECT INBOX")
    assert c.cmd(b"CLOSE") == ([], b"t%d OK CLOSE completed\r\n" % c.n)
    assert c.cmd(b"FETCH 1 FLAGS")[1].split()[1] == b"BAD"
    assert status(c, b"INBOX")["MESSAGES"] == 3
    c.ok(b"SELECT INBOX")
    assert uid_list(c) == [3, 4, 5]
    # SELECT of another mailbox does not expunge either
    c.ok(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok(b"SELECT Trash")
    assert status(c, b"INBOX")["MESSAGES"] == 3


def test_check_id_enable(srv, raw):
    c = raw
    # ID works before login (RFC 2971)
    untagged, tagged = c.cmd(b'ID ("name" "pytest" "version" "1.0")')
    assert len(untagged) == 1 and untagged[0].startswith(b"* ID ") and tagged.split()[1] == b"OK"
    assert re.match(rb'\* ID (NIL|\((("[^"]*"|NIL) ?)*\))\r\n$', untagged[0]), untagged
    untagged, tagged = c.cmd(b"ID NIL")
    assert untagged[0].startswith(b"* ID ") and tagged.split()[1] == b"OK"
    for bad in [b'ID ("name")', b"ID", b"ID foo"]:
        assert c.cmd(bad)[1].split()[1] == b"BAD", bad
    c.login()
    # ENABLE: an ENABLED response, listing what was enabled (nothing unknown)
    untagged, tagged = c.cmd(b"ENABLE X-NOTHING-SUCH")
    assert untagged == [b"* ENABLED\r\n"] and tagged.split()[1] == b"OK", (untagged, tagged)
    assert c.cmd(b"ENABLE")[1].split()[1] == b"BAD"
    c.ok(b"SELECT INBOX")
    assert c.cmd(b"CHECK") == ([], b"t%d OK CHECK completed\r\n" % c.n)


# --------------------------------------------------------------- UIDs


def test_uids_ascending_never_reused_and_uidvalidity_stable(srv):
    p = srv
    c = RawImap(p.ports["imap"]).login()
    uv, _ = appenduid(append(c, b"INBOX", msg("1")))
    append(c, b"INBOX", msg("2"))
    append(c, b"INBOX", msg("3"))
    c.ok(b"SELECT INBOX")
    c.ok(b"STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    c.ok(b"EXPUNGE")  # the highest UID goes
    assert appenduid(append(c, b"INBOX", msg("4")))[1] == 4
    smtp_deliver(p, subject="delivered")
    noop_until(c, rb"^\* 3 EXISTS")
    assert uid_list(c) == [1, 4, 5]
    c.ok(b"STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    c.ok(b"EXPUNGE")
    c.close()
    # across a restart: same UIDVALIDITY, UIDNEXT kept although the highest UIDs are gone
    assert p.stop() == 0
    p.start()
    c = RawImap(p.ports["imap"]).login()
    untagged = c.ok(b"SELECT INBOX")
    assert any(u.startswith(b"* OK [UIDVALIDITY %d]" % uv) for u in untagged), untagged
    assert any(u.startswith(b"* OK [UIDNEXT 6]") for u in untagged), untagged
    smtp_deliver(p, subject="after restart")
    assert appenduid(append(c, b"INBOX", msg("7")))[1] == 7
    c.ok(b"NOOP")
    assert uid_list(c) == [1, 6, 7]
    # UIDs in sequence order are strictly ascending
    r = c.ok(b"FETCH 1:* UID")
    assert r == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 6)\r\n", b"* 3 FETCH (UID 7)\r\n"]
    assert status(c, b"INBOX")["UIDVALIDITY"] == uv
    c.close()
