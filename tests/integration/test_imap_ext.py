"""IMAP extensions: CONDSTORE and QRESYNC (RFC 7162), ESEARCH (RFC 4731),
SEARCHRES (RFC 5182), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
STATUS=SIZE (RFC 8438), SPECIAL-USE LIST options (RFC 6154), MULTIAPPEND
(RFC 3502) and LITERAL- (RFC 7888).

Every test talks to a real server over a raw socket and checks the exact
responses, citing the RFC section that requires them. Each extension is
also checked to be advertised in CAPABILITY (it is only advertised when
complete).
"""
import re
import socket
import time

import pytest

LISTEN = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0"}
CRLF = b"\r\n"
ALICE = ("alice@example.test", "secret-alice")


class Imap:
    """A minimal IMAP client on raw bytes."""

    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        self.n = 0
        self.greeting = self.f.readline()

    def response(self):
        """One response: a line and the literals it announces."""
        out = b""
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError(out)
            out += line
            m = re.search(rb"~?\{(\d+)\}\r\n$", line)
            if not m:
                return out
            out += self.f.read(int(m.group(1)))

    def send(self, text):
        self.n += 1
        tag = b"t%d" % self.n
        self.sock.sendall(tag + b" " + text + CRLF)
        return tag

    def wait(self, tag):
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag + b" "):
                return untagged, r
            untagged.append(r)

    def cmd(self, text):
        """(untagged responses, tagged line)"""
        return self.wait(self.send(text))

    def ok(self, text):
        untagged, tagged = self.cmd(text)
        assert tagged.split(b" ", 2)[1] == b"OK", (text, untagged, tagged)
        return untagged, tagged

    def status(self, text):
        untagged, tagged = self.cmd(text)
        return tagged.split(b" ", 2)[1], untagged, tagged

    def login(self, user=ALICE):
        self.ok(b"LOGIN %s %s" % (user[0].encode(), user[1].encode()))
        return self

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def msg(subject, body="body text"):
    return ("From: carol@example.test\r\nTo: alice@example.test\r\nSubject: %s\r\n\r\n%s\r\n"
            % (subject, body)).encode()


def append(c, mailbox, message, flags=b""):
    parts = [b"APPEND", mailbox] + ([flags] if flags else [])
    _, tagged = c.ok(b" ".join(parts) + b" {%d+}\r\n" % len(message) + message)
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", tagged)
    assert m, tagged
    return int(m.group(2))


def code(lines, name):
    """The value of a response code [NAME value] among untagged lines."""
    for line in lines:
        m = re.search(rb"\[" + name + rb"(?: ([^\]]*))?\]", line)
        if m:
            return m.group(1)
    return None


def fetches(lines):
    """{seq: {item: value}} from untagged FETCH responses (simple items)."""
    out = {}
    for line in lines:
        m = re.match(rb"\* (\d+) FETCH \((.*)\)\r\n$", line, re.S)
        if not m:
            continue
        d = {}
        body = m.group(2)
        for it in re.finditer(rb"(UID|MODSEQ|FLAGS) (\([^)]*\)|\d+)", body):
            v = it.group(2).decode()
            if it.group(1) == b"FLAGS":  # \Recent (rev1) is not what is tested
                v = "(" + " ".join(f for f in v[1:-1].split() if f != "\\Recent") + ")"
            d[it.group(1).decode()] = v
        out[int(m.group(1))] = d
    return out


def modseq_of(lines, seq):
    return int(fetches(lines)[seq]["MODSEQ"].strip("()"))


@pytest.fixture
def server(petrel_factory):
    return petrel_factory(listen=LISTEN)


@pytest.fixture
def client(server):
    c = Imap(server.ports["imap"]).login()
    yield c
    c.close()


def other(server):
    return Imap(server.ports["imap"]).login()


def populate(c, n=5, mailbox=b"INBOX"):
    """n messages; uids 1..n. Returns the uids."""
    return [append(c, mailbox, msg("m%d" % i)) for i in range(1, n + 1)]


def capabilities(c):
    untagged, _ = c.ok(b"CAPABILITY")
    return untagged[0].split()[2:]


# ------------------------------------------------------------------ CONDSTORE


def test_capabilities_advertised(client):
    caps = capabilities(client)
    for cap in (b"CONDSTORE", b"QRESYNC", b"ESEARCH", b"SEARCHRES", b"ENABLE"):
        assert cap in caps, caps


def test_enable_condstore_lists_only_newly_enabled(client):
    # RFC 5161 3.1: ENABLED lists what this command enabled; unknown
    # capabilities are ignored
    untagged, _ = client.ok(b"ENABLE CONDSTORE X-UNKNOWN")
    assert untagged == [b"* ENABLED CONDSTORE\r\n"]
    untagged, _ = client.ok(b"ENABLE CONDSTORE")
    assert untagged == [b"* ENABLED\r\n"]
    # RFC 5161 3.1: the capability list does not change
    assert b"CONDSTORE" in capabilities(client)


def test_select_condstore_reports_highestmodseq(client):
    populate(client, 2)
    # RFC 7162 3.1.2.1: no HIGHESTMODSEQ before a CONDSTORE enabling command
    untagged, _ = client.ok(b"SELECT INBOX")
    assert code(untagged, b"HIGHESTMODSEQ") is None
    # RFC 7162 3.1.8: SELECT (CONDSTORE) enables it and reports it
    untagged, tagged = client.ok(b"SELECT INBOX (CONDSTORE)")
    hms = int(code(untagged, b"HIGHESTMODSEQ"))
    assert hms > 0
    # RFC 7162 3.2.11: a mailbox closed by selecting another gives CLOSED
    # before the new mailbox's responses
    assert untagged[0].startswith(b"* OK [CLOSED]"), untagged
    # RFC 7162 3.1.7: STATUS HIGHESTMODSEQ is the same value
    untagged, _ = client.ok(b"STATUS INBOX (MESSAGES HIGHESTMODSEQ)")
    assert untagged == [b'* STATUS "INBOX" (MESSAGES 2 HIGHESTMODSEQ %d)\r\n' % hms], untagged
    # EXAMINE reports it too once enabled
    untagged, _ = client.ok(b"EXAMINE INBOX")
    assert int(code(untagged, b"HIGHESTMODSEQ")) == hms


def test_select_bad_parameters(client):
    # RFC 4466 2.1 / RFC 7162 3.2.5: parameters are checked first
    for bad in (b"SELECT INBOX (BOGUS)", b"SELECT INBOX ()", b"SELECT INBOX CONDSTORE",
                b"EXAMINE INBOX (CONDSTORE) extra"):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")  # stay under max_errors consecutive BADs


def test_status_highestmodseq_enables_condstore(client):
    populate(client, 1)
    client.ok(b"SELECT INBOX")
    # RFC 7162 3.1: a STATUS (HIGHESTMODSEQ) is an enabling command; the
    # first with a mailbox selected reports the selected one's value
    untagged, _ = client.ok(b"STATUS INBOX (HIGHESTMODSEQ)")
    assert code(untagged, b"HIGHESTMODSEQ") is not None, untagged
    untagged, _ = client.ok(b"STORE 1 +FLAGS (\\Flagged)")
    f = fetches(untagged)[1]
    assert "MODSEQ" in f and f["UID"] == "1", untagged


def test_fetch_modseq_and_store(client):
    populate(client, 3)
    client.ok(b"SELECT INBOX")
    # RFC 7162 3.1: FETCH MODSEQ is an enabling command: HIGHESTMODSEQ first
    untagged, _ = client.ok(b"FETCH 1:3 (MODSEQ)")
    assert untagged[0].startswith(b"* OK [HIGHESTMODSEQ "), untagged
    hms = int(code(untagged, b"HIGHESTMODSEQ"))
    ms = [modseq_of(untagged, i) for i in (1, 2, 3)]
    # RFC 7162 3.1: appends get ascending modseqs
    assert ms == sorted(ms) and len(set(ms)) == 3 and max(ms) <= hms
    # RFC 7162 3.1.4.2: "MODSEQ (n)"
    assert re.match(rb"\* 1 FETCH \(MODSEQ \(\d+\)\)\r\n$", untagged[1]), untagged
    # a flag change gives a higher modseq, reported by STORE (3.1.3)
    untagged, _ = client.ok(b"STORE 2 +FLAGS (\\Seen)")
    f = fetches(untagged)[2]
    new = int(f["MODSEQ"].strip("()"))
    assert new > hms and f["FLAGS"] == "(\\Seen)" and f["UID"] == "2"
    # RFC 7162 3.1.11: setting a flag that is already set is no change;
    # the flags still come back (RFC 9051 6.4.6), with the same MODSEQ
    untagged, _ = client.ok(b"STORE 2 +FLAGS (\\Seen)")
    assert fetches(untagged) == {2: {"UID": "2", "FLAGS": "(\\Seen)", "MODSEQ": "(%d)" % new}}
    untagged, _ = client.ok(b"FETCH 2 (MODSEQ)")
    assert modseq_of(untagged, 2) == new
    # .SILENT still reports the new MODSEQ once CONDSTORE is on (3.1.3)
    untagged, _ = client.ok(b"STORE 3 +FLAGS.SILENT (\\Answered)")
    f = fetches(untagged)[3]
    assert "FLAGS" not in f and int(f["MODSEQ"].strip("()")) > new


def test_fetch_changedsince(client):
    populate(client, 4)
    client.ok(b"SELECT INBOX (CONDSTORE)")
    untagged, _ = client.ok(b"FETCH 1:* (MODSEQ)")
    base = max(modseq_of(untagged, i) for i in range(1, 5))
    client.ok(b"STORE 2,4 +FLAGS.SILENT ($Label1)")
    # RFC 7162 3.1.4.1: only messages changed since; MODSEQ implied
    untagged, _ = client.ok(b"FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % base)
    f = fetches(untagged)
    assert sorted(f) == [2, 4], untagged
    assert all("MODSEQ" in v and "$Label1" in v["FLAGS"] for v in f.values())
    untagged, _ = client.ok(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % base)
    assert sorted(fetches(untagged)) == [2, 4]
    untagged, _ = client.ok(b"FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % (base + 1000))
    assert fetches(untagged) == {}
    # bad modifiers
    for bad in (b"FETCH 1 FLAGS (CHANGEDSINCE)", b"FETCH 1 FLAGS (CHANGEDSINCE x)",
                b"FETCH 1 FLAGS (BOGUS 1)", b"FETCH 1 FLAGS ()",
                b"FETCH 1 FLAGS (CHANGEDSINCE 1) extra"):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")  # stay under max_errors consecutive BADs


def test_store_unchangedsince(server, client):
    populate(client, 5)
    client.ok(b"SELECT INBOX")
    client.ok(b"UID STORE 1 +FLAGS (\\Deleted)")
    client.ok(b"EXPUNGE")  # uids 2..5 are now messages 1..4
    untagged, _ = client.ok(b"SELECT INBOX (CONDSTORE)")
    untagged, _ = client.ok(b"FETCH 1:4 (MODSEQ)")
    ms = {i: modseq_of(untagged, i) for i in range(1, 5)}
    # message 2 changes after the client looked
    o = other(server)
    o.ok(b"SELECT INBOX")
    o.ok(b"STORE 2 +FLAGS (\\Flagged)")
    o.close()
    time.sleep(0.3)
    limit = max(ms.values())
    # RFC 7162 3.1.3: messages changed since UNCHANGEDSINCE are left alone
    # and listed in MODIFIED (message numbers for STORE); the others are
    # changed and reported with MODSEQ even for .SILENT
    untagged, tagged = client.ok(b"STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % limit)
    assert b"[MODIFIED 2]" in tagged, tagged
    f = fetches(untagged)
    assert 1 in f and 3 in f and "FLAGS" not in f[1] and int(f[1]["MODSEQ"].strip("()")) > limit
    # the other session's change reaches us too, with its MODSEQ
    assert "\\Flagged" in f[2]["FLAGS"] and "\\Seen" not in f[2]["FLAGS"], untagged
    untagged, _ = client.ok(b"FETCH 2 (FLAGS)")
    assert "\\Seen" not in fetches(untagged)[2]["FLAGS"]
    # UID STORE: MODIFIED carries UIDs
    untagged, tagged = client.ok(b"UID STORE 2:5 (UNCHANGEDSINCE %d) +FLAGS (\\Answered)" % limit)
    assert re.search(rb"\[MODIFIED 2:4\]", tagged), tagged
    f = fetches(untagged)
    assert list(f) == [4] and f[4]["UID"] == "5" and "\\Answered" in f[4]["FLAGS"]
    # RFC 7162 3.1.3 example 7: UNCHANGEDSINCE 0 always fails
    untagged, tagged = client.ok(b"STORE 1,3:4 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)")
    assert b"[MODIFIED 1,3:4]" in tagged and fetches(untagged) == {}, (untagged, tagged)
    untagged, _ = client.ok(b"FETCH 1:* (FLAGS)")
    assert all("$MDNSent" not in v["FLAGS"] for v in fetches(untagged).values())
    for bad in (b"STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)",
                b"STORE 1 (UNCHANGEDSINCE -1) +FLAGS (\\Seen)",
                b"STORE 1 (UNCHANGEDSINCE 99999999999999999999) +FLAGS (\\Seen)",
                b"STORE 1 (FOO 1) +FLAGS (\\Seen)", b"STORE 1 () +FLAGS (\\Seen)"):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")  # stay under max_errors consecutive BADs


def test_store_unchangedsince_enables_condstore(client):
    populate(client, 1)
    client.ok(b"SELECT INBOX")
    untagged, tagged = client.ok(b"STORE 1 (UNCHANGEDSINCE 99999) +FLAGS.SILENT (\\Seen)")
    # RFC 7162 3.1.3 example 5: HIGHESTMODSEQ (first enabling command),
    # then the FETCH with MODSEQ
    assert untagged[0].startswith(b"* OK [HIGHESTMODSEQ "), untagged
    assert re.match(rb"\* 1 FETCH \(UID 1 MODSEQ \(\d+\)\)\r\n$", untagged[1]), untagged


def test_unsolicited_fetch_carries_modseq(server, client):
    populate(client, 2)
    client.ok(b"ENABLE CONDSTORE")
    untagged, _ = client.ok(b"SELECT INBOX")
    hms = int(code(untagged, b"HIGHESTMODSEQ"))
    o = other(server)
    o.ok(b"SELECT INBOX")
    o.ok(b"STORE 2 +FLAGS (\\Flagged)")
    o.close()
    # RFC 7162 3.1.4.2 example 14 / 3.2.4: UID and MODSEQ in every untagged
    # FETCH once CONDSTORE is on
    deadline = time.time() + 5
    while True:
        untagged, _ = client.ok(b"NOOP")
        if untagged or time.time() > deadline:
            break
        time.sleep(0.1)
    f = fetches(untagged)[2]
    assert f["UID"] == "2" and f["FLAGS"] == "(\\Flagged)" and int(f["MODSEQ"][1:-1]) > hms


def test_fetch_setting_seen_reports_uid_modseq(client):
    populate(client, 2)
    client.ok(b"SELECT INBOX (CONDSTORE)")
    untagged, _ = client.ok(b"FETCH 2 (MODSEQ)")
    before = modseq_of(untagged, 2)
    # RFC 7162 3.2.4: a FETCH that sets \Seen reports UID and MODSEQ
    untagged, _ = client.ok(b"FETCH 2 BODY[TEXT]")
    f = fetches(untagged)[2]
    assert f["UID"] == "2" and f["FLAGS"] == "(\\Seen)" and int(f["MODSEQ"][1:-1]) > before
    # no duplicate report of our own change afterwards
    untagged, _ = client.ok(b"NOOP")
    assert untagged == []
    # BODY.PEEK does not change anything
    untagged, _ = client.ok(b"FETCH 1 BODY.PEEK[TEXT]")
    assert "MODSEQ" not in fetches(untagged)[1]


def test_idle_reports_vanished(server, client):
    populate(client, 3)
    client.ok(b"ENABLE QRESYNC")
    client.ok(b"SELECT INBOX")
    tag = client.send(b"IDLE")
    assert client.response().startswith(b"+ ")
    o = other(server)
    o.ok(b"SELECT INBOX")
    o.ok(b"STORE 2 +FLAGS.SILENT (\\Deleted)")
    o.ok(b"EXPUNGE")
    o.close()
    # RFC 2177 + RFC 7162 3.2.10.2: VANISHED (and the flag change before
    # it, with UID and MODSEQ) while idling
    got = []
    while not any(b"VANISHED" in r for r in got):
        got.append(client.response())
    assert got[-1] == b"* VANISHED 2\r\n", got
    client.sock.sendall(b"DONE\r\n")
    client.wait(tag)


def test_search_modseq(client):
    populate(client, 4)
    client.ok(b"SELECT INBOX")
    untagged, _ = client.ok(b"SEARCH MODSEQ 1")
    # RFC 7162 3.1: SEARCH MODSEQ enables CONDSTORE: HIGHESTMODSEQ first
    assert untagged[0].startswith(b"* OK [HIGHESTMODSEQ "), untagged
    hms = int(code(untagged, b"HIGHESTMODSEQ"))
    # RFC 7162 3.1.6: the highest modseq of the messages returned
    assert untagged[1] == b"* SEARCH 1 2 3 4 (MODSEQ %d)\r\n" % hms, untagged
    client.ok(b"STORE 3 +FLAGS (\\Flagged)")
    untagged, _ = client.ok(b"FETCH 3 (MODSEQ)")
    m3 = modseq_of(untagged, 3)
    untagged, _ = client.ok(b"UID SEARCH MODSEQ %d" % m3)
    assert untagged == [b"* SEARCH 3 (MODSEQ %d)\r\n" % m3]
    # the entry name and type are accepted (one modseq per message here)
    untagged, _ = client.ok(b'SEARCH MODSEQ "/flags/\\\\flagged" all %d' % m3)
    assert untagged == [b"* SEARCH 3 (MODSEQ %d)\r\n" % m3]
    # no match: no MODSEQ (RFC 7162 3.1.5)
    untagged, _ = client.ok(b"SEARCH MODSEQ %d" % (m3 + 1))
    assert untagged == [b"* SEARCH\r\n"]
    untagged, _ = client.ok(b"SEARCH OR NOT MODSEQ %d LARGER 50000" % m3)
    assert untagged == [b"* SEARCH 1 2 4 (MODSEQ %d)\r\n" % hms]
    for bad in (b"SEARCH MODSEQ", b"SEARCH MODSEQ x", b'SEARCH MODSEQ "/flags/\\\\seen" 5',
                b'SEARCH MODSEQ "/bogus" all 5', b'SEARCH MODSEQ "/flags/x" none 5'):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")  # stay under max_errors consecutive BADs


# -------------------------------------------------------------------- QRESYNC


def test_qresync_needs_enable(client):
    populate(client, 1)
    # RFC 7162 3.2.3 / 3.2.5: BAD without ENABLE QRESYNC
    st, _, tagged = client.status(b"SELECT INBOX (QRESYNC (1 1))")
    assert st == b"BAD", tagged
    client.ok(b"SELECT INBOX (CONDSTORE)")
    st, _, tagged = client.status(b"UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")
    assert st == b"BAD", tagged
    untagged, _ = client.ok(b"ENABLE QRESYNC")
    assert untagged == [b"* ENABLED QRESYNC\r\n"]


def test_enable_qresync_condstore(client):
    # RFC 7162 3.2.3: ENABLE QRESYNC CONDSTORE is accepted and enables both
    untagged, _ = client.ok(b"ENABLE QRESYNC CONDSTORE")
    assert untagged == [b"* ENABLED QRESYNC CONDSTORE\r\n"]
    populate(client, 1)
    untagged, _ = client.ok(b"SELECT INBOX")
    assert code(untagged, b"HIGHESTMODSEQ") is not None


def qresync_setup(server, client, n=8):
    """n messages, the client's cache state (uidvalidity, highestmodseq)
    taken, then another session changes flags and expunges."""
    populate(client, n)
    client.ok(b"ENABLE QRESYNC")
    untagged, _ = client.ok(b"SELECT INBOX")
    uidvalidity = int(code(untagged, b"UIDVALIDITY"))
    hms = int(code(untagged, b"HIGHESTMODSEQ"))
    client.ok(b"UNSELECT")
    o = other(server)
    o.ok(b"SELECT INBOX")
    o.ok(b"UID STORE 2,5 +FLAGS (\\Deleted)")
    o.ok(b"EXPUNGE")  # uids 2 and 5 vanish
    o.ok(b"UID STORE 3,7 +FLAGS ($Done)")
    o.close()
    return uidvalidity, hms


def test_select_qresync(server, client):
    uidvalidity, hms = qresync_setup(server, client)
    untagged, tagged = client.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, hms))
    # RFC 7162 3.2.5.1: the usual responses, then VANISHED (EARLIER), then
    # FETCH (UID FLAGS MODSEQ) for the changed messages
    assert b"* 6 EXISTS\r\n" in untagged
    new_hms = int(code(untagged, b"HIGHESTMODSEQ"))
    assert new_hms > hms
    i = untagged.index(b"* VANISHED (EARLIER) 2,5\r\n")
    f = fetches(untagged[i + 1:])
    assert sorted(f) == [2, 5], untagged  # uids 3 and 7
    assert f[2]["UID"] == "3" and f[5]["UID"] == "7" and "$Done" in f[2]["FLAGS"]
    assert all(hms < int(v["MODSEQ"][1:-1]) <= new_hms for v in f.values())
    assert b"[READ-WRITE]" in tagged
    # 3.2.5.1: only the known uids are reported
    untagged, _ = client.ok(b"EXAMINE INBOX (QRESYNC (%d %d 1:4))" % (uidvalidity, hms))
    assert untagged[0].startswith(b"* OK [CLOSED]")
    assert b"* VANISHED (EARLIER) 2\r\n" in untagged
    assert sorted(fetches(untagged)) == [2]
    # 3.2.5: another UIDVALIDITY: the rest is ignored
    untagged, _ = client.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity + 1, hms))
    assert not [u for u in untagged if b"VANISHED" in u or b"FETCH" in u], untagged
    # up to date: nothing to report
    untagged, _ = client.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, new_hms))
    assert not [u for u in untagged if b"VANISHED" in u or b"FETCH" in u], untagged


def test_select_qresync_seq_match(server, client):
    uidvalidity, hms = qresync_setup(server, client)
    # now: seq 1..6 = uids 1,3,4,6,7,8. The client believes 3 -> uid 3
    # (stale: uid 2 gone) and 1 -> uid 1 (still true): it knows of no
    # expunge up to uid 1 only (RFC 7162 3.2.5.2)
    untagged, _ = client.ok(b"SELECT INBOX (QRESYNC (%d %d 1:8 (1,3 1,3)))" % (uidvalidity, hms))
    assert b"* VANISHED (EARLIER) 2,5\r\n" in untagged, untagged
    # 1 -> 1, 2 -> 3 both match: expunges up to uid 3 are known
    untagged, _ = client.ok(b"SELECT INBOX (QRESYNC (%d %d 1:8 (1:2 1,3)))" % (uidvalidity, hms))
    assert b"* VANISHED (EARLIER) 5\r\n" in untagged, untagged
    # flag changes are still reported for all known uids
    assert sorted(fetches(untagged)) == [2, 5]
    for bad in (b"SELECT INBOX (QRESYNC (%d))" % uidvalidity,
                b"SELECT INBOX (QRESYNC (0 %d))" % hms,
                b"SELECT INBOX (QRESYNC (%d 0))" % uidvalidity,
                b"SELECT INBOX (QRESYNC (%d %d 1:*))" % (uidvalidity, hms),
                b"SELECT INBOX (QRESYNC (%d %d 1:8 (1:2 1)))" % (uidvalidity, hms),
                b"SELECT INBOX (QRESYNC (%d %d 1:8 (1:2)))" % (uidvalidity, hms),
                b"SELECT INBOX (QRESYNC (%d %d 1:8 (1 1) x))" % (uidvalidity, hms),
                b"SELECT INBOX (QRESYNC)"):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")  # stay under max_errors consecutive BADs


def test_uid_fetch_vanished(server, client):
    uidvalidity, hms = qresync_setup(server, client)
    client.ok(b"SELECT INBOX")
    # RFC 7162 3.2.6: VANISHED (EARLIER) first, then the FETCH responses
    untagged, _ = client.ok(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    assert untagged[0] == b"* VANISHED (EARLIER) 2,5\r\n", untagged
    f = fetches(untagged[1:])
    assert sorted(int(v["UID"]) for v in f.values()) == [3, 7]
    untagged, _ = client.ok(b"UID FETCH 4:8 (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    assert untagged[0] == b"* VANISHED (EARLIER) 5\r\n", untagged
    # not for FETCH, not without CHANGEDSINCE
    for bad in (b"FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms,
                b"UID FETCH 1:* (FLAGS) (VANISHED)"):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")  # stay under max_errors consecutive BADs


def test_vanished_replaces_expunge(server, client):
    populate(client, 6)
    client.ok(b"ENABLE QRESYNC")
    client.ok(b"SELECT INBOX")
    client.ok(b"STORE 2,4:5 +FLAGS.SILENT (\\Deleted)")
    untagged, tagged = client.ok(b"EXPUNGE")
    # RFC 7162 3.2.7 / 3.2.10.2: VANISHED instead of EXPUNGE, and the new
    # HIGHESTMODSEQ in the tagged OK
    assert untagged == [b"* VANISHED 2,4:5\r\n"], untagged
    hms = int(re.search(rb"\[HIGHESTMODSEQ (\d+)\]", tagged).group(1))
    untagged, _ = client.ok(b"STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
    assert b"HIGHESTMODSEQ %d MESSAGES 3" % hms in untagged[0]
    # UID EXPUNGE likewise (3.2.9)
    client.ok(b"UID STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    untagged, tagged = client.ok(b"UID EXPUNGE 3")
    assert untagged == [b"* VANISHED 3\r\n"] and b"[HIGHESTMODSEQ " in tagged
    # another session's expunge: VANISHED, never during FETCH (3.2.10.2)
    o = other(server)
    o.ok(b"SELECT INBOX")
    o.ok(b"UID EXPUNGE 1")
    o.close()
    time.sleep(0.5)
    _, untagged, _ = client.status(b"FETCH 1:* (UID)")  # NO [EXPUNGEISSUED] is allowed
    assert not [u for u in untagged if b"VANISHED" in u or b"EXPUNGE" in u], untagged
    assert any(b"[HIGHESTMODSEQ" in u for u in untagged), untagged  # held back (3.2)
    untagged, _ = client.ok(b"NOOP")
    assert b"* VANISHED 1\r\n" in untagged, untagged
    untagged, _ = client.ok(b"FETCH 1:* (UID)")
    assert [int(v["UID"]) for v in fetches(untagged).values()] == [6]
    # CLOSE: no VANISHED, no HIGHESTMODSEQ (3.2.8)
    client.ok(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    untagged, tagged = client.ok(b"CLOSE")
    assert untagged == [] and b"HIGHESTMODSEQ" not in tagged


def test_move_gives_vanished(client):
    populate(client, 3)
    client.ok(b"CREATE Archive")
    client.ok(b"ENABLE QRESYNC")
    client.ok(b"SELECT INBOX")
    untagged, _ = client.ok(b"MOVE 1:2 Archive")
    # RFC 6851 4.3 with RFC 7162 3.2.10.2: VANISHED after the COPYUID
    assert untagged[-1] == b"* VANISHED 1:2\r\n", untagged
    assert not [u for u in untagged if b"EXPUNGE" in u]


# -------------------------------------------------------------------- ESEARCH


def esearch_setup(client):
    populate(client, 6)
    client.ok(b"SELECT INBOX")
    client.ok(b"UID STORE 1 +FLAGS (\\Deleted)")
    client.ok(b"EXPUNGE")  # uids 2..6 are messages 1..5
    client.ok(b"SELECT INBOX")
    client.ok(b"STORE 1,3:4 +FLAGS.SILENT (\\Flagged)")


def test_esearch_return_options(client):
    esearch_setup(client)
    tag = client.send(b"SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
    untagged, tagged = client.wait(tag)
    # RFC 4731 3.1: a single ESEARCH response instead of SEARCH
    assert untagged == [b'* ESEARCH (TAG "%s") MIN 1 MAX 4 ALL 1,3:4 COUNT 3\r\n' % tag], untagged
    tag = client.send(b"UID SEARCH RETURN (MIN MAX) FLAGGED")
    untagged, _ = client.wait(tag)
    # "UID" indicator, UIDs throughout
    assert untagged == [b'* ESEARCH (TAG "%s") UID MIN 2 MAX 5\r\n' % tag], untagged
    tag = client.send(b"UID SEARCH RETURN (ALL) 1:*")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") UID ALL 2:6\r\n' % tag], untagged
    # RETURN () is RETURN (ALL)
    tag = client.send(b"SEARCH RETURN () FLAGGED")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") ALL 1,3:4\r\n' % tag]
    # no match: only COUNT, which is always there when asked for
    tag = client.send(b"SEARCH RETURN (MIN MAX ALL COUNT) DRAFT")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") COUNT 0\r\n' % tag]
    tag = client.send(b"SEARCH RETURN (MIN) DRAFT")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s")\r\n' % tag]
    # with CHARSET after RETURN (RFC 4466 2.6)
    tag = client.send(b"SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT m")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") COUNT 5\r\n' % tag]
    for bad in (b"SEARCH RETURN (BOGUS) ALL", b"SEARCH RETURN ALL", b"SEARCH RETURN (MIN)",
                b"SEARCH RETURN"):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")  # stay under max_errors consecutive BADs


def test_esearch_modseq(client):
    esearch_setup(client)
    untagged, _ = client.ok(b"FETCH 1:5 (MODSEQ)")
    ms = {i: modseq_of(untagged[1:], i) for i in range(1, 6)}
    flagged = [1, 3, 4]
    # RFC 4731 3.2 / RFC 7162 3.1.10: MODSEQ result option
    tag = client.send(b"SEARCH RETURN (MIN) MODSEQ 1 FLAGGED")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") MIN 1 MODSEQ %d\r\n' % (tag, ms[1])]
    tag = client.send(b"SEARCH RETURN (MIN MAX) MODSEQ 1 FLAGGED")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") MIN 1 MAX 4 MODSEQ %d\r\n'
                        % (tag, max(ms[1], ms[4]))]
    tag = client.send(b"SEARCH RETURN (COUNT) MODSEQ 1 FLAGGED")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") COUNT 3 MODSEQ %d\r\n'
                        % (tag, max(ms[i] for i in flagged))]


# ------------------------------------------------------------------ SEARCHRES


def test_searchres_save_and_use(client):
    esearch_setup(client)
    # RFC 5182 2.2 example 1: SAVE alone gives no untagged response
    untagged, tagged = client.ok(b"SEARCH RETURN (SAVE) FLAGGED")
    assert untagged == []
    untagged, _ = client.ok(b"FETCH $ (UID)")
    assert [(k, v["UID"]) for k, v in fetches(untagged).items()] == [(1, "2"), (3, "4"), (4, "5")]
    # "$" names messages whatever the command form (2.1)
    untagged, _ = client.ok(b"UID FETCH $ (FLAGS)")
    assert sorted(fetches(untagged)) == [1, 3, 4]
    untagged, _ = client.ok(b"SEARCH $ UID 4:*")
    assert untagged == [b"* SEARCH 3 4\r\n"]
    untagged, _ = client.ok(b"UID SEARCH UID $ NOT UID 2")
    assert untagged == [b"* SEARCH 4 5\r\n"]
    # example 3: combined with other keys
    untagged, _ = client.ok(b"SEARCH OR $ 2")
    assert untagged == [b"* SEARCH 1 2 3 4\r\n"]
    client.ok(b"STORE $ +FLAGS.SILENT (\\Seen)")
    untagged, _ = client.ok(b"SEARCH SEEN")
    assert untagged == [b"* SEARCH 1 3 4\r\n"]
    client.ok(b"CREATE Saved")
    untagged, tagged = client.ok(b"COPY $ Saved")
    assert b"[COPYUID " in tagged
    # 2.4: SAVE with MIN / MAX saves those only; with ALL or COUNT all
    tag = client.send(b"SEARCH RETURN (SAVE MIN) FLAGGED")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") MIN 1\r\n' % tag]
    untagged, _ = client.ok(b"SEARCH $")
    assert untagged == [b"* SEARCH 1\r\n"]
    client.ok(b"SEARCH RETURN (MAX SAVE MIN) FLAGGED")
    untagged, _ = client.ok(b"SEARCH $")
    assert untagged == [b"* SEARCH 1 4\r\n"]
    client.ok(b"SEARCH RETURN (MAX SAVE MIN COUNT) FLAGGED")
    untagged, _ = client.ok(b"SEARCH $")
    assert untagged == [b"* SEARCH 1 3 4\r\n"]
    # an expunged message leaves "$" (2.1)
    client.ok(b"STORE 3 +FLAGS.SILENT (\\Deleted)")
    client.ok(b"EXPUNGE")
    untagged, _ = client.ok(b"UID SEARCH $")
    assert untagged == [b"* SEARCH 2 5\r\n"]
    # a SEARCH without SAVE leaves it alone; BAD too
    client.ok(b"SEARCH RETURN (ALL) ALL")
    client.status(b"SEARCH RETURN (SAVE) BOGUS")
    untagged, _ = client.ok(b"UID SEARCH $")
    assert untagged == [b"* SEARCH 2 5\r\n"]
    # a NO with SAVE empties it (2.1, example 4)
    st, _, _ = client.status(b"SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
    assert st == b"NO"
    untagged, _ = client.ok(b"SEARCH $")
    assert untagged == [b"* SEARCH\r\n"]
    # an empty "$" matches nothing and is no error (example 5)
    untagged, tagged = client.ok(b"FETCH $ (UID)")
    assert untagged == []
    client.ok(b"COPY $ Saved")


def test_searchres_reset_by_select(client):
    esearch_setup(client)
    client.ok(b"SEARCH RETURN (SAVE) ALL")
    untagged, _ = client.ok(b"SEARCH $")
    assert untagged == [b"* SEARCH 1 2 3 4 5\r\n"]
    # RFC 5182 2.1: SELECT/EXAMINE reset the variable
    client.ok(b"EXAMINE INBOX")
    untagged, _ = client.ok(b"SEARCH $")
    assert untagged == [b"* SEARCH\r\n"]


def test_searchres_uid_fetch_vanished(server, client):
    uidvalidity, hms = qresync_setup(server, client)
    client.ok(b"SELECT INBOX")
    client.ok(b"UID SEARCH RETURN (SAVE) UID 3:4")
    untagged, _ = client.ok(b"UID FETCH $ (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    assert not [u for u in untagged if b"VANISHED" in u]
    assert [v["UID"] for v in fetches(untagged).values()] == ["3"]


# ---------------------------------------------- LIST-EXTENDED, LIST-STATUS


def list_setup(client):
    """Mailboxes a/b/c (a and a/b do not exist), Fruit, Fruit/Apple; a/b
    and Fruit/Apple and the missing Fruit/Peach are subscribed."""
    for name in (b"a/b/c", b"Fruit", b"Fruit/Apple"):
        client.ok(b"CREATE " + name)
    # CREATE made the superiors a and a/b (RFC 9051 6.3.4); DELETE leaves
    # the inferior a/b/c (6.3.5)
    for name in (b"a/b", b"a"):
        client.ok(b"DELETE " + name)
    for name in (b"a/b", b"Fruit/Apple", b"Fruit/Peach"):
        client.ok(b"SUBSCRIBE " + name)


def lists(untagged):
    """[(attributes, name, rest)] of LIST responses."""
    out = []
    for u in untagged:
        m = re.match(rb'\* LIST \(([^)]*)\) "/" "([^"]*)"(.*)\r\n$', u)
        if m:
            out.append((m.group(1).decode(), m.group(2).decode(), m.group(3).decode()))
    return out


def test_list_extended_capabilities(client):
    caps = capabilities(client)
    for cap in (b"LIST-EXTENDED", b"LIST-STATUS", b"STATUS=SIZE", b"SPECIAL-USE", b"CHILDREN"):
        assert cap in caps, caps


def test_list_subscribed_selection(client):
    list_setup(client)
    untagged, _ = client.ok(b'LIST (SUBSCRIBED) "" "*"')
    got = {name: attrs for attrs, name, _ in lists(untagged)}
    # RFC 5258 3.1: exactly the subscribed names, existing or not;
    # \NonExistent is accurate (3), \Subscribed present, children too (4)
    assert got["a/b"] == "\\NonExistent \\Subscribed \\HasChildren"
    assert got["Fruit/Apple"] == "\\Subscribed \\HasNoChildren"
    assert got["Fruit/Peach"] == "\\NonExistent \\Subscribed \\HasNoChildren"
    assert "Fruit" not in got and "a/b/c" not in got and "a" not in got
    # the default mailboxes are subscribed, with their special use
    assert got["Sent"] == "\\Subscribed \\HasNoChildren \\Sent"
    # RFC 5258 3.1 / 3.5: RECURSIVEMATCH adds parents whose children meet
    # the criteria, with CHILDINFO
    untagged, _ = client.ok(b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    got = {name: (attrs, rest) for attrs, name, rest in lists(untagged)}
    assert got["Fruit"] == ("\\HasChildren", ' ("CHILDINFO" ("SUBSCRIBED"))')
    assert got["a"] == ("\\NonExistent \\HasChildren", ' ("CHILDINFO" ("SUBSCRIBED"))')
    assert got["INBOX"] == ("\\Subscribed \\HasNoChildren", "")
    client.ok(b"SUBSCRIBE Fruit")
    untagged, _ = client.ok(b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Fruit"')
    assert lists(untagged) == [("\\Subscribed \\HasChildren", "Fruit",
                                ' ("CHILDINFO" ("SUBSCRIBED"))')]
    # and none when no descendant is subscribed (example 8 B)
    untagged, _ = client.ok(b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Fruit/Apple"')
    assert lists(untagged) == [("\\Subscribed \\HasNoChildren", "Fruit/Apple", "")]


def test_list_return_options(client):
    list_setup(client)
    # RFC 5258 3.2: RETURN (SUBSCRIBED) marks, without adding names
    untagged, _ = client.ok(b'LIST "" "Fruit*" RETURN (SUBSCRIBED CHILDREN)')
    assert lists(untagged) == [("\\HasChildren", "Fruit", ""),
                               ("\\Subscribed \\HasNoChildren", "Fruit/Apple", "")]
    # extended LIST: a missing parent is \NonExistent (5 example 11)
    untagged, _ = client.ok(b'LIST () "" "a/%"')
    assert lists(untagged) == [("\\NonExistent \\HasChildren", "a/b", "")]
    # RFC 5258 3: several patterns, each name once
    untagged, _ = client.ok(b'LIST "" ("INBOX" "Fruit/%" "Fruit/*" "")')
    assert [n for _, n, _ in lists(untagged)] == ["INBOX", "Fruit/Apple"]
    # an empty pattern is ignored in an extended LIST, not the delimiter
    # request of RFC 3501 6.3.8
    untagged, _ = client.ok(b'LIST () "" ""')
    assert untagged == []
    untagged, _ = client.ok(b'LIST "" ""')
    assert untagged == [b'* LIST (\\Noselect) "/" ""\r\n']
    # the plain LIST keeps RFC 3501 \Noselect for a missing parent
    untagged, _ = client.ok(b'LIST "" "a"')
    assert untagged == [b'* LIST (\\Noselect \\HasChildren) "/" "a"\r\n']
    for bad in (b'LIST (RECURSIVEMATCH) "" "*"', b'LIST (REMOTE RECURSIVEMATCH) "" "*"',
                b'LIST (BOGUS) "" "*"', b'LIST "" "*" RETURN (BOGUS)', b'LIST "" "*" RETURN',
                b'LIST "" "*" RETURN CHILDREN', b'LIST "" "*" FOO (CHILDREN)',
                b'LIST "" ()', b'LIST "" "*" RETURN (STATUS)',
                b'LIST "" "*" RETURN (STATUS (BOGUS))', b'LIST "" "*" RETURN (STATUS ())'):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")  # stay under max_errors consecutive BADs
    # REMOTE is accepted (no remote mailboxes here)
    untagged, _ = client.ok(b'LIST (REMOTE) "" "Fruit"')
    assert lists(untagged) == [("\\HasChildren", "Fruit", "")]


def test_list_special_use_options(client):
    list_setup(client)
    # RFC 6154 3: the SPECIAL-USE selection option lists only those
    untagged, _ = client.ok(b'LIST (SPECIAL-USE) "" "*"')
    assert sorted(lists(untagged)) == [("\\HasNoChildren \\Drafts", "Drafts", ""),
                                       ("\\HasNoChildren \\Junk", "Junk", ""),
                                       ("\\HasNoChildren \\Sent", "Sent", ""),
                                       ("\\HasNoChildren \\Trash", "Trash", "")]
    untagged, _ = client.ok(b'LIST "" "%" RETURN (SPECIAL-USE)')
    got = {name: attrs for attrs, name, _ in lists(untagged)}
    assert got["Trash"] == "\\HasNoChildren \\Trash" and got["Fruit"] == "\\HasChildren"


def test_list_status(client):
    list_setup(client)
    append(client, b"Fruit", msg("one", "x" * 100))
    append(client, b"Fruit", msg("two"), flags=b"(\\Seen)")
    untagged, _ = client.ok(b"SELECT Fruit")
    untagged, _ = client.ok(b"FETCH 1:* RFC822.SIZE")
    size = sum(int(x) for x in re.findall(rb"RFC822.SIZE (\d+)", b"".join(untagged)))
    # RFC 5819 2: a STATUS after each selectable mailbox's LIST
    untagged, _ = client.ok(b'LIST "" "Fruit*" RETURN (STATUS (MESSAGES UNSEEN SIZE))')
    assert untagged == [
        b'* LIST (\\HasChildren) "/" "Fruit"\r\n',
        b'* STATUS "Fruit" (MESSAGES 2 UNSEEN 1 SIZE %d)\r\n' % size,
        b'* LIST (\\HasNoChildren) "/" "Fruit/Apple"\r\n',
        b'* STATUS "Fruit/Apple" (MESSAGES 0 UNSEEN 0 SIZE 0)\r\n'], untagged
    # none for a missing mailbox, nor for one only listed for CHILDINFO
    untagged, _ = client.ok(b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (STATUS (MESSAGES))')
    i = untagged.index(b'* LIST (\\HasChildren) "/" "Fruit" ("CHILDINFO" ("SUBSCRIBED"))\r\n')
    assert not untagged[i + 1].startswith(b"* STATUS"), untagged
    assert b'* STATUS "INBOX" (MESSAGES 0)\r\n' in untagged
    untagged, _ = client.ok(b'LIST "" "a" RETURN (STATUS (MESSAGES))')
    assert untagged == [b'* LIST (\\NonExistent \\HasChildren) "/" "a"\r\n']
    # RFC 8438: STATUS SIZE is the sum of RFC822.SIZE
    untagged, _ = client.ok(b"STATUS Fruit (SIZE MESSAGES DELETED)")
    assert untagged == [b'* STATUS "Fruit" (SIZE %d MESSAGES 2 DELETED 0)\r\n' % size]


# ---------------------------------------------------------------- UTF8=ACCEPT

CAFE = "Café".encode()


def test_utf8_accept_enable_and_names(server, client):
    assert b"UTF8=ACCEPT" in capabilities(client)
    # RFC 6855 3: UTF-8 in quoted strings is accepted even before ENABLE
    client.ok(b'CREATE "' + CAFE + b'"')
    # ... but not sent before ENABLE: modified UTF-7 instead (RFC 3501 5.1.3)
    untagged, _ = client.ok(b'LIST "" "Caf*"')
    assert untagged == [b'* LIST (\\HasNoChildren) "/" "Caf&AOk-"\r\n'], untagged
    untagged, _ = client.ok(b"ENABLE UTF8=ACCEPT")
    assert untagged == [b"* ENABLED UTF8=ACCEPT\r\n"]
    untagged, _ = client.ok(b'LIST "" "Caf*"')
    assert untagged == [b'* LIST (\\HasNoChildren) "/" "' + CAFE + b'"\r\n'], untagged
    untagged, _ = client.ok(b'STATUS "' + CAFE + b'" (MESSAGES)')
    assert untagged == [b'* STATUS "' + CAFE + b'" (MESSAGES 0)\r\n']
    # only in the authenticated state (RFC 6855 3)
    o = other(server)
    o.ok(b"SELECT INBOX")
    untagged, _ = o.ok(b"ENABLE UTF8=ACCEPT")
    assert untagged == [b"* ENABLED\r\n"]
    o.close()


def test_utf8_invalid_refused(client):
    # RFC 6855 3: 8-bit octets in a quoted string must be UTF-8
    for bad in (b'CREATE "\xff\xfe"', b'CREATE "caf\xe9"', b'SELECT "\xc0\xaf"',
                b'CREATE "\xed\xa0\x80"'):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")
    # names: no C1 controls, no line / paragraph separators (RFC 6855 3)
    for name in ("a\u0085b", "a\u2028b", "a\u2029b"):
        st, _, tagged = client.status(b'CREATE "' + name.encode() + b'"')
        assert st == b"NO", (name, tagged)
    # a literal of invalid UTF-8 is no mailbox name either
    st, _, tagged = client.status(b"CREATE {2+}\r\n\xff\xfe")
    assert st == b"NO", tagged


def test_utf8_search_charset(client):
    append(client, b"INBOX", msg("=?utf-8?q?Caf=C3=A9?= menu"))
    client.ok(b"SELECT INBOX")
    untagged, _ = client.ok(b'SEARCH CHARSET UTF-8 SUBJECT "' + CAFE + b'"')
    assert untagged == [b"* SEARCH 1\r\n"]
    client.ok(b"UNSELECT")
    client.ok(b"ENABLE UTF8=ACCEPT")
    client.ok(b"SELECT INBOX")
    # RFC 6855 3: no CHARSET once enabled; strings are UTF-8
    st, _, tagged = client.status(b'SEARCH CHARSET UTF-8 SUBJECT "' + CAFE + b'"')
    assert st == b"BAD", tagged
    untagged, _ = client.ok(b'SEARCH SUBJECT "' + CAFE + b'"')
    assert untagged == [b"* SEARCH 1\r\n"]


def test_utf8_append(server, client):
    raw = ("From: Zoë <zoe@example.test>\r\nSubject: Grüße\r\n\r\nHallo\r\n").encode()
    # RFC 6855 4 lets a server refuse 8-bit header fields without ENABLE
    # UTF8=ACCEPT; Petrel stores them (legacy mail must survive a sync)
    client.ok(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
    # 8-bit in the body only is fine
    body8 = b"Subject: plain\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
    client.ok(b"APPEND INBOX {%d+}\r\n" % len(body8) + body8)
    client.ok(b"ENABLE UTF8=ACCEPT")
    _, tagged = client.ok(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
    # the UTF8 data extension: UTF8 (~{n})
    _, tagged = client.ok(b"APPEND INBOX (\\Seen) UTF8 (~{%d+}\r\n" % len(raw) + raw + b")")
    uid = int(re.search(rb"APPENDUID \d+ (\d+)", tagged).group(1))
    client.ok(b"SELECT INBOX")
    untagged, _ = client.ok(b"UID FETCH %d (FLAGS BODY.PEEK[])" % uid)
    assert untagged[0].endswith(b"{%d}\r\n" % len(raw) + raw + b")\r\n"), untagged
    assert b"\\Seen" in untagged[0]
    assert server.message(uid) == raw
    # the extension takes a literal8, in parentheses, and nothing after
    for bad in (b"APPEND INBOX UTF8 ({3+}\r\nabc)", b"APPEND INBOX UTF8 ~{3+}\r\nabc",
                b"APPEND INBOX UTF8 (~{3+}\r\nabc) x"):
        st, _, tagged = client.status(bad)
        assert st == b"BAD", (bad, tagged)
        client.ok(b"NOOP")


def test_multiappend_offered(client):
    # RFC 3502: advertised; several messages with synchronizing literals,
    # a "+" for each, one APPENDUID with every uid (RFC 3502, UIDPLUS)
    assert b"MULTIAPPEND" in capabilities(client)
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)",
                                client.ok(b"STATUS INBOX (UIDVALIDITY)")[0][0]).group(1))
    client.sock.sendall(b"s APPEND INBOX {3}\r\n")
    assert client.response().startswith(b"+ ")
    client.sock.sendall(b"abc (\\Seen) {3}\r\n")
    assert client.response().startswith(b"+ ")
    client.sock.sendall(b"def\r\n")
    assert client.response() == b"s OK [APPENDUID %d 1:2] APPEND completed\r\n" % uidvalidity
    untagged, _ = client.ok(b"STATUS INBOX (MESSAGES)")
    assert untagged == [b'* STATUS "INBOX" (MESSAGES 2)\r\n']
    # a plain APPEND still works afterwards
    append(client, b"INBOX", msg("after"))


# ------------------------------------------------------------------ IMAP4rev2


def test_imap4rev2(server, client):
    caps = capabilities(client)
    assert b"IMAP4rev2" in caps and b"IMAP4rev1" in caps
    populate(client, 3)
    client.ok(b"CREATE Kids")
    client.ok(b"CREATE Kids/one")
    client.ok(b"CREATE Nest/one")
    client.ok(b"DELETE Nest")  # created with Nest/one (RFC 9051 6.3.4)
    # RFC 9051 6.3.1: ENABLE IMAP4rev2 switches the session
    untagged, _ = client.ok(b"ENABLE IMAP4rev2")
    assert untagged == [b"* ENABLED IMAP4rev2\r\n"]
    untagged, tagged = client.ok(b"SELECT INBOX")
    # 6.3.2: a LIST response; no RECENT (deprecated, Appendix E 12), no
    # UNSEEN code (E 11)
    assert b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n' in untagged, untagged
    assert not [u for u in untagged if b"RECENT" in u or b"[UNSEEN" in u], untagged
    untagged, _ = client.ok(b"EXAMINE Kids")
    assert b'* LIST (\\HasChildren) "/" "Kids"\r\n' in untagged, untagged
    untagged, _ = client.ok(b"EXAMINE Trash")
    assert b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n' in untagged, untagged
    client.ok(b"SELECT INBOX")
    # 6.4.4: SEARCH answers with ESEARCH, ALL when no option is given
    tag = client.send(b"SEARCH ALL")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") ALL 1:3\r\n' % tag], untagged
    tag = client.send(b"UID SEARCH DRAFT")
    untagged, _ = client.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") UID\r\n' % tag], untagged
    # no \Recent in FLAGS
    untagged, _ = client.ok(b"FETCH 1:3 FLAGS")
    assert not [u for u in untagged if b"\\Recent" in u], untagged
    # a delivery: EXISTS without RECENT
    o = other(server)
    append(o, b"INBOX", msg("four"))
    o.close()
    deadline = time.time() + 5
    seen = []
    while not seen and time.time() < deadline:
        seen, _ = client.ok(b"NOOP")
    assert seen == [b"* 4 EXISTS\r\n"], seen
    # 7.3.1: a missing parent is \NonExistent in any LIST
    untagged, _ = client.ok(b'LIST "" "Nes%"')
    assert untagged == [b'* LIST (\\NonExistent \\HasChildren) "/" "Nest"\r\n'], untagged
    # UTF-8 in quoted strings (5.1, Appendix E 16)
    client.ok(b'CREATE "' + CAFE + b'"')
    untagged, _ = client.ok(b'LIST "" "Caf*"')
    assert untagged == [b'* LIST (\\HasNoChildren) "/" "' + CAFE + b'"\r\n']


def test_imap4rev2_enable_only_authenticated(client):
    client.ok(b"SELECT INBOX")
    untagged, _ = client.ok(b"ENABLE IMAP4rev2")
    assert untagged == [b"* ENABLED\r\n"]
    untagged, _ = client.ok(b"SELECT INBOX")
    assert b"* 0 RECENT\r\n" in untagged


def test_searchres_pipelined(client):
    esearch_setup(client)
    # RFC 5182 2.3: SAVE and a command using "$" may be pipelined; they run
    # in order
    client.sock.sendall(b"p1 SEARCH RETURN (SAVE) FLAGGED\r\np2 FETCH $ (UID)\r\n"
                        b"p3 STORE $ +FLAGS.SILENT (\\Answered)\r\np4 SEARCH ANSWERED\r\n")
    _, t1 = client.wait(b"p1")
    untagged, t2 = client.wait(b"p2")
    assert [v["UID"] for v in fetches(untagged).values()] == ["2", "4", "5"]
    client.wait(b"p3")
    untagged, _ = client.wait(b"p4")
    assert untagged == [b"* SEARCH 1 3 4\r\n"]


def test_list_patterns(client):
    for name in (b"a", b"a/b", b"a/b/c", b"ab", b"INBOX/sub"):
        client.ok(b"CREATE " + name)

    def names(ref, pat):
        untagged, _ = client.ok(b'LIST "' + ref + b'" "' + pat + b'"')
        return [n for _, n, _ in lists(untagged)]
    # RFC 3501 6.3.8: "*" crosses the separator, "%" does not
    assert names(b"", b"a*") == ["a", "a/b", "a/b/c", "ab"]
    assert names(b"", b"a%") == ["a", "ab"]
    assert names(b"", b"a/%") == ["a/b"]
    assert names(b"", b"%/%/%") == ["a/b/c"]
    assert names(b"a/", b"%") == ["a/b"]          # the reference is prepended
    assert names(b"", b"a/*/c") == ["a/b/c"]
    assert sorted(names(b"", b"*%*%b")) == ["INBOX/sub", "a/b", "ab"]  # runs of wildcards
    assert names(b"", b"inbox") == ["INBOX"]       # INBOX in any case
    assert names(b"", b"InBoX/%") == ["INBOX/sub"]
    assert names(b"", b"a/b/c/d*") == []
