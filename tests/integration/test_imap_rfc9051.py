"""IMAP4rev2 (RFC 9051) compliance, with RFC 3501 where IMAP4rev1 differs.

Each test drives a real server over a raw socket (RawImap) or imaplib and
checks the exact responses, naming the RFC section it checks.
"""
import imaplib
import re
import unicodedata

import pytest

from imap_helpers import ALICE, LISTEN, RawImap, append, appenduid, msg, noop_until

CAFE_NFC = unicodedata.normalize("NFC", "Caf\u00e9").encode()
CAFE_NFD = unicodedata.normalize("NFD", "Caf\u00e9").encode()


@pytest.fixture
def srv(petrel_factory):
    return petrel_factory(listen=LISTEN)


def session(p, rev2=True, user=ALICE):
    c = RawImap(p.ports["imap"]).login(user)
    if rev2:
        assert c.ok(b"ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2\r\n"]
    return c


def status(tagged):
    return tagged.split(b" ", 2)[1]


def lists(untagged):
    """{name: attributes} of LIST responses."""
    out = {}
    for u in untagged:
        m = re.match(rb'\* LIST \(([^)]*)\) "/" "([^"]*)"', u)
        if m:
            out[m.group(2).decode()] = m.group(1).decode()
    return out


# ---------------------------------------------------------------- STATUS

def test_status_recent_is_rev1_only(srv):
    """RFC 9051 6.3.11 and 9 (status-att, status-att-val): IMAP4rev2 has no
    RECENT status item (Appendix E 12), so an IMAP4rev2 session gets BAD
    rather than an answer its grammar cannot hold; DELETED and SIZE are
    there. RFC 3501 6.3.10 keeps RECENT for IMAP4rev1 sessions."""
    c = session(srv)
    append(c, b"INBOX", msg("one"))
    untagged, tagged = c.cmd(b"STATUS INBOX (RECENT)")
    assert status(tagged) == b"BAD" and untagged == [], (untagged, tagged)
    untagged, tagged = c.cmd(b"STATUS INBOX (MESSAGES RECENT)")
    assert status(tagged) == b"BAD", tagged
    # LIST-STATUS takes the same status-att (RFC 9051 6.3.9.5)
    untagged, tagged = c.cmd(b'LIST "" "INBOX" RETURN (STATUS (RECENT))')
    assert status(tagged) == b"BAD" and untagged == [], (untagged, tagged)
    # the session goes on, and the rev2 items answer
    untagged = c.ok(b"STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE)")
    assert len(untagged) == 1
    assert re.match(rb'\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1 '
                    rb'DELETED 0 SIZE \d+\)\r\n$', untagged[0]), untagged
    c1 = session(srv, rev2=False)
    assert c1.ok(b"STATUS INBOX (RECENT MESSAGES)") == [
        b'* STATUS "INBOX" (RECENT 1 MESSAGES 1)\r\n']


# ---------------------------------------------------------------- literals

def test_append_literal8(srv):
    """RFC 3516 4.4 and 7 (BINARY, advertised): APPEND takes a literal8
    "~{n}" as the message. Petrel keeps messages as sent and could return
    NUL octets only through BINARY[] (RFC 9051 4.3 forbids them
    elsewhere), so a message with a NUL is refused with NO [UNKNOWN-CTE],
    as 4.4 prescribes for a mailbox that cannot store binary content. A NUL
    in an ordinary literal is a syntax error: literal is *CHAR8 (RFC 9051
    9)."""
    c = session(srv)
    caps = c.ok(b"CAPABILITY")[0]
    assert b" BINARY" in caps and b" LITERAL+" in caps
    data = b"Subject: 8bit\r\n\r\nbin\xe9\xff\r\n"
    # a synchronising literal8: "+" first
    tag = c.send(b"APPEND INBOX (\\Seen) ~{%d}" % len(data))
    assert c.readline().startswith(b"+ ")
    c.sendraw(data + b"\r\n")
    _, tagged = c.wait(tag)
    assert status(tagged) == b"OK", tagged
    uid1 = appenduid(tagged)[1]
    # a non-synchronising one (RFC 7888 extends literal8 with "+")
    _, tagged = c.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(data) + data)
    assert status(tagged) == b"OK", tagged
    uid2 = appenduid(tagged)[1]
    c.ok(b"SELECT INBOX")
    for uid in (uid1, uid2):
        untagged = c.ok(b"UID FETCH %d (BINARY.PEEK[] BINARY.SIZE[])" % uid)
        # no NUL: a string, not a literal8 (RFC 9051 7.5.2)
        assert untagged == [b"* %d FETCH (UID %d BINARY[] {%d}\r\n%s BINARY.SIZE[] %d)\r\n"
                            % (uid, uid, len(data), data, len(data))], untagged
    nul = b"Subject: nul\r\n\r\na\x00b\r\n"
    _, tagged = c.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(nul) + nul)
    assert tagged.split(b" ", 3)[1:3] == [b"NO", b"[UNKNOWN-CTE]"], tagged
    _, tagged = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(nul) + nul)
    assert status(tagged) == b"BAD", tagged
    tag = c.send(b"APPEND INBOX {%d}" % len(nul))
    assert c.readline().startswith(b"+ ")
    c.sendraw(nul + b"\r\n")
    _, tagged = c.wait(tag)
    assert status(tagged) == b"BAD", tagged
    # nothing of those was stored; the session goes on
    assert c.ok(b"STATUS INBOX (MESSAGES)") == [b'* STATUS "INBOX" (MESSAGES 2)\r\n']


def test_literal8_only_in_append(srv):
    """RFC 3516 7 / RFC 9051 9: literal8 is a message in APPEND, never an
    astring. A synchronising one is refused without "+", a
    non-synchronising one after its octets; the session survives."""
    c = session(srv)
    tag = c.send(b"CREATE ~{3}")
    line = c.readline()
    assert line.startswith(tag + b" BAD "), line
    _, tagged = c.cmd(b"CREATE ~{3+}\r\nabc")
    assert status(tagged) == b"BAD", tagged
    assert "abc" not in lists(c.ok(b'LIST "" "*"'))
    c.ok(b"NOOP")


# ---------------------------------------------------------------- mailboxes

def test_create_makes_superiors(srv):
    """RFC 9051 6.3.4: CREATE of "foo/bar/zap" SHOULD create foo and
    foo/bar; a trailing delimiter is dropped. 6.3.6: RENAME likewise for
    the new name. 6.3.5: DELETE of a name with inferiors keeps them, and
    the deleted name is then \\NonExistent (7.3.1)."""
    c = session(srv)
    c.ok(b"CREATE foo/bar/zap")
    got = lists(c.ok(b'LIST "" "foo*"'))
    assert got == {"foo": "\\HasChildren", "foo/bar": "\\HasChildren",
                   "foo/bar/zap": "\\HasNoChildren"}, got
    untagged = c.ok(b"SELECT foo/bar")
    assert b'* LIST (\\HasChildren) "/" "foo/bar"\r\n' in untagged
    c.ok(b"UNSELECT")
    # an existing superior is fine (INBOX included)
    c.ok(b"CREATE foo/other")
    c.ok(b"CREATE INBOX/sub/leaf")
    got = lists(c.ok(b'LIST "" "INBOX*"'))
    assert got == {"INBOX": "\\HasChildren", "INBOX/sub": "\\HasChildren",
                   "INBOX/sub/leaf": "\\HasNoChildren"}, got
    # trailing delimiter: the name is created without it
    c.ok(b"CREATE owatagusiam/")
    c.ok(b"CREATE owatagusiam/blurdybloop")
    got = lists(c.ok(b'LIST "" "owatagusiam*"'))
    assert got == {"owatagusiam": "\\HasChildren",
                   "owatagusiam/blurdybloop": "\\HasNoChildren"}, got
    # RENAME to a deeper new name
    c.ok(b"CREATE z")
    c.ok(b"RENAME z m/n/z")
    got = lists(c.ok(b'LIST "" "m*"'))
    assert got == {"m": "\\HasChildren", "m/n": "\\HasChildren",
                   "m/n/z": "\\HasNoChildren"}, got
    # a failed RENAME creates nothing
    _, tagged = c.cmd(b"RENAME nosuch q/r/s")
    assert tagged.split(b" ", 3)[1:3] == [b"NO", b"[NONEXISTENT]"], tagged
    assert lists(c.ok(b'LIST "" "q*"')) == {}
    # DELETE foo keeps foo/bar and foo/bar/zap
    c.ok(b"DELETE foo")
    got = lists(c.ok(b'LIST "" "foo*"'))
    assert got == {"foo": "\\NonExistent \\HasChildren", "foo/bar": "\\HasChildren",
                   "foo/bar/zap": "\\HasNoChildren", "foo/other": "\\HasNoChildren"}, got


def test_create_refuses_names_not_in_nfc(srv):
    """RFC 9051 6.3.4: a UTF-8 name that is not Net-Unicode (RFC 5198:
    NFC, no controls) is refused (or converted; Petrel refuses)."""
    c = session(srv)
    _, tagged = c.cmd(b'CREATE "' + CAFE_NFD + b'"')
    assert tagged.split(b" ", 3)[1:3] == [b"NO", b"[CANNOT]"], tagged
    _, tagged = c.cmd(b'CREATE "a\x01b"')
    assert status(tagged) == b"NO", tagged
    c.ok(b"CREATE Old")
    _, tagged = c.cmd(b'RENAME Old "' + CAFE_NFD + b'"')
    assert status(tagged) == b"NO", tagged
    c.ok(b'CREATE "' + CAFE_NFC + b'"')
    assert lists(c.ok(b'LIST "" "Caf*"')) == {CAFE_NFC.decode(): "\\HasNoChildren"}


def test_delete_and_rename_inbox(srv):
    """RFC 9051 6.3.5: DELETE INBOX is an error. 6.3.6: RENAME INBOX moves
    its messages to the new name and leaves INBOX empty, existing."""
    c = session(srv)
    append(c, b"INBOX", msg("keep me"))
    _, tagged = c.cmd(b"DELETE INBOX")
    assert status(tagged) == b"NO", tagged
    _, tagged = c.cmd(b"CREATE inbox")
    assert tagged.split(b" ", 3)[1:3] == [b"NO", b"[ALREADYEXISTS]"], tagged
    c.ok(b"RENAME INBOX Archive/2026")
    assert c.ok(b"STATUS INBOX (MESSAGES)") == [b'* STATUS "INBOX" (MESSAGES 0)\r\n']
    assert c.ok(b"STATUS Archive/2026 (MESSAGES)") == [
        b'* STATUS "Archive/2026" (MESSAGES 1)\r\n']
    assert lists(c.ok(b'LIST "" "Archive"')) == {"Archive": "\\HasChildren"}


# ---------------------------------------------------------------- SELECT

def test_select_responses_rev2(srv):
    """RFC 9051 6.3.2: FLAGS, EXISTS, LIST, PERMANENTFLAGS, UIDNEXT and
    UIDVALIDITY, no RECENT nor UNSEEN (Appendix E 11, 12); [CLOSED] when a
    SELECT replaces a selected mailbox, also one that fails (7.1); 6.3.3:
    EXAMINE is [READ-ONLY] with no permanent flags."""
    c = session(srv)
    append(c, b"INBOX", msg("one"))
    untagged = c.ok(b"SELECT INBOX")
    kinds = sorted(re.match(rb"\* (OK \[[A-Z]+|\d+ [A-Z]+|[A-Z]+)", u).group(1)
                   for u in untagged)
    assert kinds == [b"1 EXISTS", b"FLAGS", b"LIST", b"OK [PERMANENTFLAGS", b"OK [UIDNEXT",
                     b"OK [UIDVALIDITY"], untagged
    untagged, tagged = c.cmd(b"EXAMINE INBOX")
    assert untagged[0] == b"* OK [CLOSED] Previous mailbox closed\r\n", untagged
    assert b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n" in untagged
    assert tagged.split(b" ", 1)[1].startswith(b"OK [READ-ONLY]"), tagged
    untagged, tagged = c.cmd(b"SELECT nosuch")
    assert untagged == [b"* OK [CLOSED] Previous mailbox closed\r\n"], untagged
    assert tagged.split(b" ", 3)[1:3] == [b"NO", b"[NONEXISTENT]"], tagged
    # no mailbox is selected now
    assert status(c.cmd(b"FETCH 1 FLAGS")[1]) == b"BAD"
    # IMAP4rev1 (RFC 3501 6.3.1): RECENT and UNSEEN, no LIST
    c1 = session(srv, rev2=False)
    untagged = c1.ok(b"SELECT INBOX")
    assert b"* 0 RECENT\r\n" in untagged and b"* OK [UNSEEN 1] First unseen\r\n" in untagged
    assert not [u for u in untagged if u.startswith(b"* LIST")], untagged


def test_wrong_state_reason(srv):
    """RFC 9051 6.2: AUTHENTICATE and LOGIN are valid only in the not
    authenticated state; the BAD says so, not that a mailbox is missing."""
    c = session(srv)
    for cmd in (b"AUTHENTICATE PLAIN", b"LOGIN a b"):
        _, tagged = c.cmd(cmd)
        assert status(tagged) == b"BAD" and b"mailbox" not in tagged, tagged
    _, tagged = c.cmd(b"FETCH 1 FLAGS")
    assert tagged.endswith(b"BAD FETCH not allowed without a selected mailbox\r\n"), tagged


# ---------------------------------------------------------------- SEARCH

def test_search_esearch_rev2(srv):
    """RFC 9051 6.4.4 and 7.3.4: SEARCH answers with ESEARCH (TAG ...),
    never the untagged SEARCH; UID SEARCH with UID; an empty result has no
    ALL; a charset other than UTF-8/US-ASCII gets NO [BADCHARSET (...)]
    (6.4.4); quoted strings may hold UTF-8 (4.3)."""
    c = session(srv)
    for s in ("one", "two", "Caf\u00e9"):
        append(c, b"INBOX", msg(s))  # a raw UTF-8 Subject for the last
    c.ok(b"SELECT INBOX")
    tag = c.send(b"SEARCH ALL")
    untagged, _ = c.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") ALL 1:3\r\n' % tag], untagged
    tag = c.send(b"UID SEARCH SUBJECT two")
    untagged, _ = c.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") UID ALL 2\r\n' % tag], untagged
    tag = c.send(b"SEARCH SUBJECT nothing")
    untagged, _ = c.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s")\r\n' % tag], untagged
    tag = c.send(b'SEARCH CHARSET UTF-8 SUBJECT "' + CAFE_NFC + b'"')
    untagged, _ = c.wait(tag)
    assert untagged == [b'* ESEARCH (TAG "%s") ALL 3\r\n' % tag], untagged
    untagged, tagged = c.cmd(b"SEARCH CHARSET ISO-8859-1 ALL")
    assert untagged == [] and b"NO [BADCHARSET (UTF-8 US-ASCII)]" in tagged, tagged


# ---------------------------------------------------------------- messages

def test_uid_commands_on_missing_uids(srv):
    """RFC 9051 6.4.9: a UID set naming no existing message is not an
    error: UID FETCH, STORE, COPY, MOVE, EXPUNGE and SEARCH answer OK
    with nothing. A message number beyond EXISTS is BAD (9, seq-number)."""
    c = session(srv)
    append(c, b"INBOX", msg("one"))
    c.ok(b"SELECT INBOX")
    for cmd in (b"UID FETCH 999 FLAGS", b"UID STORE 999 +FLAGS (\\Seen)",
                b"UID COPY 999 Sent", b"UID MOVE 999 Sent", b"UID EXPUNGE 999"):
        assert c.ok(cmd) == [], cmd
    for cmd in (b"FETCH 2 FLAGS", b"FETCH 0 FLAGS", b"STORE 5 +FLAGS (\\Seen)",
                b"FETCH 4294967296 FLAGS"):
        assert status(c.cmd(cmd)[1]) == b"BAD", cmd
    # 1:* and *:1 are the same set; "*" is the last message
    assert c.ok(b"FETCH *:1 UID") == [b"* 1 FETCH (UID 1)\r\n"]


def test_unsolicited_fetch_has_uid_and_expunge_rules(srv):
    """RFC 9051 7.5.2: an unsolicited FETCH in an IMAP4rev2 session carries
    UID (Appendix E 21). 7.5.1: no EXPUNGE during FETCH, STORE or SEARCH;
    the expunged message is reported at the next NOOP, renumbering the
    rest."""
    a = session(srv)
    b = session(srv)
    for s in ("one", "two", "three"):
        append(a, b"INBOX", msg(s))
    a.ok(b"SELECT INBOX")
    b.ok(b"SELECT INBOX")
    b.ok(b"STORE 2 +FLAGS.SILENT (\\Deleted)")
    seen = noop_until(a, rb"\* 2 FETCH")
    assert b"* 2 FETCH (UID 2 FLAGS (\\Deleted))\r\n" in seen, seen
    b.ok(b"EXPUNGE")
    # FETCH, STORE and SEARCH do not announce it
    for cmd in (b"FETCH 3 UID", b"STORE 3 +FLAGS.SILENT (\\Seen)", b"SEARCH ALL"):
        untagged, _ = a.cmd(cmd)
        assert not [u for u in untagged if b"EXPUNGE" in u], (cmd, untagged)
    seen = noop_until(a, rb"\* 2 EXPUNGE")
    assert b"* 2 EXPUNGE\r\n" in seen, seen
    assert a.ok(b"FETCH 2 UID") == [b"* 2 FETCH (UID 3)\r\n"]


def test_store_silent_and_move_copyuid(srv):
    """RFC 9051 6.4.6: STORE .SILENT sends no FETCH; without it the new
    flags come back. 6.4.8: MOVE sends COPYUID in an untagged OK before the
    EXPUNGE (Appendix E 7); 6.4.7: COPY to a missing mailbox is NO
    [TRYCREATE] and creates nothing (Appendix E 8)."""
    c = session(srv)
    append(c, b"INBOX", msg("one"))
    append(c, b"INBOX", msg("two"))
    c.ok(b"SELECT INBOX")
    assert c.ok(b"STORE 1 +FLAGS.SILENT (\\Flagged)") == []
    assert c.ok(b"STORE 1 +FLAGS ($Forwarded)") == [
        b"* 1 FETCH (FLAGS (\\Flagged $Forwarded))\r\n"]
    for cmd in (b"COPY 1 nosuch", b"MOVE 1 nosuch"):
        _, tagged = c.cmd(cmd)
        assert tagged.split(b" ", 3)[1:3] == [b"NO", b"[TRYCREATE]"], tagged
    assert lists(c.ok(b'LIST "" "nosuch"')) == {}
    untagged = c.ok(b"MOVE 1 Trash")
    assert len(untagged) == 2, untagged
    assert re.match(rb"\* OK \[COPYUID \d+ 1 1\] ", untagged[0]), untagged
    assert untagged[1] == b"* 1 EXPUNGE\r\n"


def test_imaplib_rev2_session(srv):
    """A real client library through the same points: ENABLE IMAP4rev2,
    SELECT, ESEARCH, STATUS SIZE/DELETED (RFC 9051 6.3.11)."""
    m = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
    try:
        m.login(*ALICE)
        typ, data = m._simple_command("ENABLE", "IMAP4rev2")
        assert typ == "OK", data
        assert m.append("INBOX", "(\\Deleted)", None, msg("one"))[0] == "OK"
        typ, data = m.status("INBOX", "(MESSAGES DELETED SIZE)")
        assert typ == "OK"
        assert re.match(rb'"INBOX" \(MESSAGES 1 DELETED 1 SIZE \d+\)', data[0]), data
        typ, data = m.status("INBOX", "(RECENT)")
    except imaplib.IMAP4.error as e:
        assert "STATUS" in str(e), e
    else:
        raise AssertionError("STATUS RECENT accepted in IMAP4rev2: %r" % (data,))
    finally:
        m.logout()


def test_rename_selected_mailbox(srv):
    """RFC 9051 6.3.6: RENAME keeps the mailbox (and its inferiors) with
    their UIDVALIDITY; a session that renames its own selected mailbox, or
    a name above it, keeps it selected under the new name instead of being
    told the mailbox is gone. RENAME INBOX moves the messages out, which
    the INBOX view sees as expunges (7.5.1)."""
    c = session(srv)
    c.ok(b"CREATE Work/Jobs")
    append(c, b"Work/Jobs", msg("job"))
    before = c.ok(b"STATUS Work/Jobs (UIDVALIDITY)")[0].split(b"UIDVALIDITY ")[1]
    c.ok(b"SELECT Work/Jobs")
    c.ok(b"RENAME Work Play")
    assert c.ok(b"NOOP") == []
    assert c.ok(b"FETCH 1 UID") == [b"* 1 FETCH (UID 1)\r\n"]
    c.ok(b"RENAME Play/Jobs Games")
    assert c.ok(b"NOOP") == []
    after = c.ok(b"STATUS Games (UIDVALIDITY)")[0].split(b"UIDVALIDITY ")[1]
    assert after == before
    # the view follows the name: a second session's change reaches it
    other = session(srv)
    append(other, b"Games", msg("more"))
    seen = noop_until(c, rb"\* 2 EXISTS")
    assert b"* 2 EXISTS\r\n" in seen, seen
    c.ok(b"UNSELECT")
    append(c, b"INBOX", msg("in"))
    c.ok(b"SELECT INBOX")
    c.ok(b"RENAME INBOX Old")
    seen = noop_until(c, rb"\* 1 EXPUNGE")
    assert seen == [b"* 1 EXPUNGE\r\n"], seen


def test_store_reports_unchanged_messages(srv):
    """RFC 9051 6.4.6: without .SILENT the new flags come back "as if a
    FETCH of those flags was done" for every message of the set, also
    one whose flags the STORE left as they were (adding a flag already
    set, removing one not set); .SILENT sends none."""
    c = session(srv)
    for s in ("one", "two", "three"):
        append(c, b"INBOX", msg(s))
    c.ok(b"SELECT INBOX")
    c.ok(b"STORE 1 +FLAGS.SILENT (\\Seen)")
    assert c.ok(b"STORE 1 +FLAGS (\\Seen)") == [b"* 1 FETCH (FLAGS (\\Seen))\r\n"]
    untagged = c.ok(b"STORE 1:3 +FLAGS (\\Seen)")
    assert sorted(untagged) == [b"* 1 FETCH (FLAGS (\\Seen))\r\n",
                                b"* 2 FETCH (FLAGS (\\Seen))\r\n",
                                b"* 3 FETCH (FLAGS (\\Seen))\r\n"], untagged
    assert c.ok(b"STORE 2 -FLAGS (\\Draft)") == [b"* 2 FETCH (FLAGS (\\Seen))\r\n"]
    assert c.ok(b"UID STORE 3 FLAGS (\\Seen)") == [b"* 3 FETCH (UID 3 FLAGS (\\Seen))\r\n"]
    assert c.ok(b"STORE 1:3 +FLAGS.SILENT (\\Seen)") == []


def test_header_field_name_literal(srv):
    """RFC 9051 9: header-fld-name is an astring, so BODY[HEADER.FIELDS
    (...)] may carry a name as a literal, synchronising ("+" first) or not;
    6.4.5: the named fields come back, the list echoed."""
    c = session(srv)
    append(c, b"INBOX", msg("lit", extra="X-Tag: yes\r\n"))
    c.ok(b"SELECT INBOX")
    tag = c.send(b"FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7}")
    assert c.readline().startswith(b"+ ")
    c.sendraw(b"Subject {5+}\r\nX-Tag)] UID)\r\n")
    untagged, tagged = c.wait(tag)
    assert status(tagged) == b"OK", tagged
    body = b"Subject: lit\r\nX-Tag: yes\r\n\r\n"
    assert untagged == [b'* 1 FETCH (BODY[HEADER.FIELDS ("Subject" "X-Tag")] {%d}\r\n%s UID 1)\r\n'
                        % (len(body), body)], untagged
    # a name with CR or LF is refused, and the session goes on
    _, tagged = c.cmd(b"FETCH 1 BODY.PEEK[HEADER.FIELDS ({2+}\r\na\n)]")
    assert status(tagged) == b"BAD", tagged
    c.ok(b"NOOP")


def test_nul_octets_never_in_a_literal(srv):
    """RFC 9051 4.3: a literal may hold any octet but NUL (only literal8 may).
    Mail taken in over SMTP with NUL octets is sent with 0x80 in their place
    (the length stays what was announced); BINARY (RFC 3516) sends literal8
    with the octets as stored."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
        s.sendmail("a@remote.example", ["alice@example.test"],
                   b"Subject: nul\r\n\r\nab\x00cd\x00\x00e\r\n")
    m = imaplib.IMAP4("127.0.0.1", srv.ports["imap"])
    m.login(*ALICE)
    m.select("INBOX", readonly=True)
    typ, data = m.fetch("1", "(BODY.PEEK[TEXT])")
    assert typ == "OK", data
    assert data[0][1] == b"ab\x80cd\x80\x80e\r\n", data
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and b"\x00" not in data[0][1] and b"ab\x80cd" in data[0][1], data
    typ, data = m.fetch("1", "(BINARY.PEEK[1])")
    assert typ == "OK", data
    assert b"BINARY[1] ~{" in data[0][0] and data[0][1] == b"ab\x00cd\x00\x00e\r\n", data
    # without NUL: a <string>, not literal8 (RFC 9051 6.4.5 SHOULD)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
        s.sendmail("a@remote.example", ["alice@example.test"], b"Subject: plain\r\n\r\nabc\r\n")
    m.noop()
    typ, data = m.fetch("2", "(BINARY.PEEK[1] BINARY.PEEK[])")
    assert typ == "OK", data
    assert b"BINARY[1] {5}" in data[0][0] and data[0][1] == b"abc\r\n", data
    assert b"BINARY[] {" in data[1][0], data
    m.logout()
