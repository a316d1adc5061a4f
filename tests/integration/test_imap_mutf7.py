"""Mailbox names in modified UTF-7 for IMAP4rev1 clients (RFC 3501 5.1.3,
RFC 9051 appendix A.1) and in UTF-8 after ENABLE UTF8=ACCEPT (RFC 6855 3)
or ENABLE IMAP4rev2 (RFC 9051 5.1).

The store keeps names in UTF-8. A session that has enabled neither sees
every name in modified UTF-7 and has its name arguments decoded from it
(strictly: anything but the one canonical form is refused with NO
[CANNOT]); raw UTF-8 from such a client is taken as UTF-8. Checked with
Python's imaplib, raw sockets and PHP's c-client (php-imap + mbstring).
"""
import imaplib
import json
import re
import shutil
import subprocess

import pytest

from imap_helpers import ALICE, RawImap, append, appenduid, listen_ports, msg

LISTEN = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0"}

# RFC 3501 5.1.3's example: English, Chinese and Japanese
PETER_M = b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"
PETER_U = "~peter/mail/台北/日本語".encode()
NIHONGO_M = b"&ZeVnLIqe-"
NIHONGO_U = "日本語".encode()
TAIPEI_M = b"&U,BTFw-"
TAIPEI_U = "台北".encode()


@pytest.fixture
def srv(petrel_factory):
    p = petrel_factory(listen=LISTEN)
    p.ports["imap"] = listen_ports(p, False)[0]
    return p


def rev1(p):
    return RawImap(p.ports["imap"]).login()


def utf8(p, how=b"UTF8=ACCEPT"):
    c = RawImap(p.ports["imap"]).login()
    assert c.ok(b"ENABLE " + how) == [b"* ENABLED " + how + b"\r\n"]
    return c


def status_of(tagged):
    return tagged.split(b" ", 2)[1]


def list_names(untagged, kind=b"LIST"):
    """The mailbox names of LIST/LSUB responses (quoted or literal)."""
    out = []
    for r in untagged:
        m = re.match(rb'\* ' + kind + rb' \([^)]*\) "/" (?:"((?:[^"\\]|\\.)*)"|\{\d+\}\r\n(.*))'
                     rb'(?: \(.*\))?\r\n$', r, re.S)
        if m:
            out.append(m.group(1) if m.group(1) is not None else m.group(2))
    return out


def imaplib_session(p):
    m = imaplib.IMAP4("127.0.0.1", p.ports["imap"], timeout=30)
    m.login(*ALICE)
    return m


# ----------------------------------------------------------------- imaplib

def test_imaplib_create_list_select_both_ways(srv):
    m = imaplib_session(srv)
    typ, data = m.create(NIHONGO_M.decode())
    assert typ == "OK", data
    # an IMAP4rev1 session: LIST shows modified UTF-7, never 8-bit octets
    typ, data = m.list('""', "*")
    assert typ == "OK"
    assert b'(\\HasNoChildren) "/" "&ZeVnLIqe-"' in data, data
    assert all(max(line) < 0x80 for line in data if isinstance(line, bytes)), data
    typ, data = m.select(NIHONGO_M.decode())
    assert typ == "OK", data
    m.logout()

    # RFC 6855 3: after ENABLE UTF8=ACCEPT, UTF-8 names, no modified UTF-7
    m = imaplib_session(srv)
    typ, data = m.enable("UTF8=ACCEPT")
    assert typ == "OK", data
    typ, data = m.list('""', "*")
    assert typ == "OK"
    assert b'(\\HasNoChildren) "/" "' + NIHONGO_U + b'"' in data, data
    assert not any(b"&" in line for line in data), data
    typ, data = m.select('"日本語"')
    assert typ == "OK", data
    typ, data = m.status('"日本語"', "(MESSAGES)")
    assert typ == "OK" and data == [b'"' + NIHONGO_U + b'" (MESSAGES 0)'], data
    m.logout()


def test_imaplib_append_copy_status(srv):
    m = imaplib_session(srv)
    assert m.create(NIHONGO_M.decode())[0] == "OK"
    typ, data = m.append(NIHONGO_M.decode(), None, None, msg("into nihongo"))
    assert typ == "OK" and b"APPENDUID" in data[0], data
    typ, data = m.status(NIHONGO_M.decode(), "(MESSAGES UNSEEN)")
    assert typ == "OK" and data == [b'"&ZeVnLIqe-" (MESSAGES 1 UNSEEN 1)'], data
    assert m.append("INBOX", None, None, msg("to copy"))[0] == "OK"
    m.select("INBOX")
    typ, data = m.copy("1", NIHONGO_M.decode())
    assert typ == "OK" and b"COPYUID" in data[0], data
    typ, data = m.status(NIHONGO_M.decode(), "(MESSAGES)")
    assert data == [b'"&ZeVnLIqe-" (MESSAGES 2)'], data
    m.logout()


# ------------------------------------------------------- raw: every command

def test_rfc_example_hierarchy(srv):
    c = rev1(srv)
    c.ok(b"CREATE " + PETER_M)
    # the parents exist in the hierarchy, in modified UTF-7 too
    assert set(list_names(c.ok(b'LIST "" "~peter*"'))) == {
        b"~peter/mail/&U,BTFw-/&ZeVnLIqe-", b"~peter", b"~peter/mail", b"~peter/mail/&U,BTFw-"}
    # reference and pattern are decoded as well ("&ZeU-" is U+65E5 alone)
    assert list_names(c.ok(b'LIST "~peter/mail/" "%"')) == [b"~peter/mail/&U,BTFw-"]
    assert list_names(c.ok(b'LIST "~peter/mail/&U,BTFw-/" "&ZeU-*"')) == [PETER_M]
    assert list_names(c.ok(b'LIST "" "*&ZeVnLIqe-"')) == [PETER_M]
    u = utf8(srv)
    assert set(list_names(u.ok(b'LIST "" "~peter*"'))) == {
        PETER_U, b"~peter", b"~peter/mail", "~peter/mail/台北".encode()}
    assert list_names(u.ok(b'LIST "~peter/mail/' + TAIPEI_U + b'/" "%"')) == [PETER_U]
    # a UTF-8 session's "&" is an "&": no such mailbox
    assert list_names(u.ok(b'LIST "" "' + PETER_M + b'"')) == []
    untagged = c.ok(b"SELECT " + PETER_M)
    assert b"* 0 EXISTS\r\n" in untagged
    untagged = u.ok(b'EXAMINE "' + PETER_U + b'"')
    assert b"* 0 EXISTS\r\n" in untagged


def test_rev2_session_uses_utf8(srv):
    c = rev1(srv)
    c.ok(b"CREATE " + NIHONGO_M)
    r2 = utf8(srv, b"IMAP4rev2")
    assert list_names(r2.ok(b'LIST "" "*"')).count(NIHONGO_U) == 1
    # RFC 9051 6.3.2: the LIST response in SELECT carries the name, in UTF-8
    untagged = r2.ok(b'SELECT "' + NIHONGO_U + b'"')
    assert b'* LIST (\\HasNoChildren) "/" "' + NIHONGO_U + b'"\r\n' in untagged, untagged


def test_status_lsub_list_status(srv):
    c = rev1(srv)
    c.ok(b"CREATE " + NIHONGO_M)
    c.ok(b"SUBSCRIBE " + NIHONGO_M)
    assert append(c, NIHONGO_M, msg("one")).startswith(b"t")
    assert c.ok(b"STATUS " + NIHONGO_M + b" (MESSAGES)") == [
        b'* STATUS "&ZeVnLIqe-" (MESSAGES 1)\r\n']
    assert list_names(c.ok(b'LSUB "" "*"'), b"LSUB")[-1] == NIHONGO_M
    assert list_names(c.ok(b'LSUB "" ' + NIHONGO_M), b"LSUB") == [NIHONGO_M]
    # LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819): names in both
    untagged = c.ok(b'LIST (SUBSCRIBED) "" ' + NIHONGO_M + b' RETURN (STATUS (MESSAGES))')
    assert untagged == [b'* LIST (\\Subscribed \\HasNoChildren) "/" "&ZeVnLIqe-"\r\n',
                        b'* STATUS "&ZeVnLIqe-" (MESSAGES 1)\r\n'], untagged
    u = utf8(srv)
    assert u.ok(b'STATUS "' + NIHONGO_U + b'" (MESSAGES)') == [
        b'* STATUS "' + NIHONGO_U + b'" (MESSAGES 1)\r\n']
    assert list_names(u.ok(b'LSUB "" "*"'), b"LSUB")[-1] == NIHONGO_U
    untagged = u.ok(b'LIST (SUBSCRIBED) "" "' + NIHONGO_U + b'" RETURN (STATUS (MESSAGES))')
    assert untagged == [b'* LIST (\\Subscribed \\HasNoChildren) "/" "' + NIHONGO_U + b'"\r\n',
                        b'* STATUS "' + NIHONGO_U + b'" (MESSAGES 1)\r\n'], untagged
    c.ok(b"UNSUBSCRIBE " + NIHONGO_M)
    assert NIHONGO_U not in list_names(u.ok(b'LSUB "" "*"'), b"LSUB")


def test_append_copy_move_rename_delete(srv):
    c = rev1(srv)
    c.ok(b"CREATE " + NIHONGO_M)
    tagged = append(c, NIHONGO_M, msg("appended"))
    assert status_of(tagged) == b"OK", tagged
    uidvalidity, uid = appenduid(tagged)
    append(c, b"INBOX", msg("copied"))
    append(c, b"INBOX", msg("moved"))
    c.ok(b"SELECT INBOX")
    _, tagged = c.cmd(b"COPY 1 " + NIHONGO_M)
    assert re.search(rb"\[COPYUID %d 1 2\]" % uidvalidity, tagged), tagged
    c.ok(b"MOVE 2 " + NIHONGO_M)
    c.ok(b"UNSELECT")
    # RENAME into another modified UTF-7 name, and into one with an "&"
    c.ok(b"RENAME " + NIHONGO_M + b" " + TAIPEI_M)
    u = utf8(srv)
    names = list_names(u.ok(b'LIST "" "*"'))
    assert TAIPEI_U in names and NIHONGO_U not in names, names
    assert u.ok(b'STATUS "' + TAIPEI_U + b'" (MESSAGES)') == [
        b'* STATUS "' + TAIPEI_U + b'" (MESSAGES 3)\r\n']
    c.ok(b'RENAME ' + TAIPEI_M + b' "Tom &- Jerry"')
    assert b"Tom & Jerry" in list_names(u.ok(b'LIST "" "*"'))
    assert b"Tom &- Jerry" in list_names(c.ok(b'LIST "" "*"'))
    c.ok(b'DELETE "Tom &- Jerry"')
    assert b"Tom & Jerry" not in list_names(u.ok(b'LIST "" "*"'))


def test_utf8_session_ampersand_is_literal(srv):
    u = utf8(srv)
    u.ok(b'CREATE "A&B"')
    u.ok(b'CREATE "' + "Café".encode() + b'"')
    c = rev1(srv)
    names = list_names(c.ok(b'LIST "" "*"'))
    assert b"A&-B" in names and b"Caf&AOk-" in names, names
    c.ok(b'SELECT "A&-B"')
    c.ok(b'SELECT "Caf&AOk-"')


def test_rev1_raw_utf8_is_accepted(srv):
    """Petrel's choice: a rev1 client sending 8-bit UTF-8 (as a quoted
    string, RFC 6855 3, or a literal) means UTF-8; it cannot be modified
    UTF-7, whose names are US-ASCII. Such a name is sent back in modified
    UTF-7 all the same."""
    c = rev1(srv)
    cafe = "Café".encode()
    c.ok(b'CREATE "' + cafe + b'"')
    assert list_names(c.ok(b'LIST "" "Caf*"')) == [b"Caf&AOk-"]
    c.ok(b'SELECT "' + cafe + b'"')
    c.ok(b"SELECT {%d+}\r\n" % len(cafe) + cafe)
    c.ok(b'STATUS "Caf&AOk-" (MESSAGES)')
    # 8-bit octets that are not UTF-8 are neither
    _, tagged = c.cmd(b"CREATE {4+}\r\ncaf\xe9")
    assert tagged.startswith(b"t") and status_of(tagged) == b"NO", tagged
    c.ok(b"NOOP")


# RFC 3501 5.1.3: only the canonical form; each with why it is refused
INVALID = [
    b'"&Jjo!"',                # no shift back before "!" (the RFC's example)
    b'"&U,BTFw-&ZeVnLIqe-"',   # superfluous shift (the RFC's example)
    b'"Tom & Jerry"',          # "&" not written "&-"
    b'"&ZeVnLIqe"',            # base64 never ended
    b'"&AEE-"',                # "A" in base64
    b'"&ACY-"',                # "&" in base64
    b'"&2D0-"',                # unpaired high surrogate
    b'"&3Oc-"',                # unpaired low surrogate
    b'"&AOl-"',                # non-zero padding bits
    b'"&AO-"',                 # a partial UTF-16 unit
    b'"&AO/-"',                # "/" is not modified base64
    b'"&AOk=-"',               # no "=" padding
]


@pytest.mark.parametrize("bad", INVALID)
def test_invalid_mutf7_refused_everywhere(srv, bad):
    c = rev1(srv)
    c.ok(b"CREATE Good")
    append(c, b"INBOX", msg("x"))
    commands = [b"CREATE " + bad, b"SELECT " + bad, b"EXAMINE " + bad, b"DELETE " + bad,
                b"RENAME Good " + bad, b"RENAME " + bad + b" Other", b"SUBSCRIBE " + bad,
                b"UNSUBSCRIBE " + bad, b"STATUS " + bad + b" (MESSAGES)",
                b'LIST "" ' + bad, b"LIST " + bad + b' "*"', b'LSUB "" ' + bad,
                b'LIST (SUBSCRIBED) "" (INBOX ' + bad + b")"]
    for cmd in commands:
        _, tagged = c.cmd(cmd)
        assert status_of(tagged) == b"NO", (cmd, tagged)
        assert b"[CANNOT] Invalid mailbox name (modified UTF-7" in tagged, (cmd, tagged)
    tagged = append(c, bad, msg("y"))
    assert status_of(tagged) == b"NO" and b"[CANNOT]" in tagged, tagged
    c.ok(b"SELECT INBOX")
    for cmd in (b"COPY 1 " + bad, b"MOVE 1 " + bad, b"UID COPY 1 " + bad):
        _, tagged = c.cmd(cmd)
        # not TRYCREATE: creating it would fail too
        assert status_of(tagged) == b"NO" and b"[CANNOT]" in tagged, (cmd, tagged)
    # nothing was created, renamed or moved; the session goes on
    assert set(list_names(c.ok(b'LIST "" "*"'))) == {b"INBOX", b"Sent", b"Drafts", b"Trash",
                                                     b"Junk", b"Good"}
    assert b"* 1 EXISTS\r\n" in c.ok(b"SELECT INBOX")


def test_invalid_reason_is_given(srv):
    c = rev1(srv)
    _, tagged = c.cmd(b'CREATE "&U,BTFw-&ZeVnLIqe-"')
    assert b"superfluous shift" in tagged, tagged
    _, tagged = c.cmd(b'CREATE "Tom & Jerry"')
    assert b"&-" in tagged, tagged
    # the same names are fine in a UTF-8 session ("&" is itself there)
    u = utf8(srv)
    u.ok(b'CREATE "Tom & Jerry"')
    assert list_names(c.ok(b'LIST "" "Tom*"')) == [b"Tom &- Jerry"]


def test_failed_select_deselects(srv):
    # RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected, whatever
    # made it fail
    c = rev1(srv)
    c.ok(b"SELECT INBOX")
    untagged, tagged = c.cmd(b'SELECT "&Jjo!"')
    assert status_of(tagged) == b"NO" and b"[CANNOT]" in tagged, tagged
    assert untagged == [b"* OK [CLOSED] Previous mailbox closed\r\n"], untagged
    _, tagged = c.cmd(b"FETCH 1 FLAGS")
    assert status_of(tagged) == b"BAD" and b"without a selected mailbox" in tagged, tagged


def test_enable_mid_session_switches(srv):
    c = rev1(srv)
    c.ok(b"CREATE " + NIHONGO_M)
    assert NIHONGO_M in list_names(c.ok(b'LIST "" "*"'))
    c.ok(b"ENABLE UTF8=ACCEPT")
    names = list_names(c.ok(b'LIST "" "*"'))
    assert NIHONGO_U in names and NIHONGO_M not in names, names
    # from now on "&ZeVnLIqe-" is a name of its own, with an "&" in it
    _, tagged = c.cmd(b"SELECT " + NIHONGO_M)
    assert status_of(tagged) == b"NO" and b"NONEXISTENT" in tagged, tagged


# --------------------------------------------------------------------- PHP

PHP_MUTF7 = r"""<?php
// usage: php mutf7.php server-spec
$mb = "{" . $argv[1] . "}";
$out = [];
$m = imap_open($mb . "INBOX", "alice@example.test", "secret-alice", 0, 1);
if ($m === false) { echo json_encode(["open" => false, "errors" => imap_errors()]); exit(1); }
$name = "~peter/mail/台北/日本語";
$enc = mb_convert_encoding($name, "UTF7-IMAP", "UTF-8");
$out["encoded"] = $enc;
$out["create"] = imap_createmailbox($m, $mb . $enc);
$out["create_amp"] = imap_createmailbox($m, $mb . mb_convert_encoding("Tom & Jerry", "UTF7-IMAP", "UTF-8"));
$list = imap_list($m, $mb, "*");
$out["list"] = array_map(function($n) use ($mb) {
    return mb_convert_encoding(substr($n, strlen($mb)), "UTF-8", "UTF7-IMAP"); }, $list);
$out["append"] = imap_append($m, $mb . $enc, "From: a@example.test\r\nSubject: php mutf7\r\n\r\nbody\r\n");
$st = imap_status($m, $mb . $enc, SA_MESSAGES);
$out["messages"] = $st->messages;
$out["reopen"] = imap_reopen($m, $mb . $enc);
$h = imap_headerinfo($m, 1);
$out["subject"] = $h->subject;
$out["errors"] = imap_errors();
$out["close"] = imap_close($m);
echo json_encode($out, JSON_UNESCAPED_UNICODE), "\n";
"""


def test_php_imap_mutf7(srv, tmp_path):
    if shutil.which("php") is None:
        pytest.skip("php is not installed")
    probe = subprocess.run(["php", "-r", 'echo function_exists("imap_open") && '
                            'function_exists("mb_convert_encoding") ? "y" : "n";'],
                           capture_output=True, text=True)
    if probe.stdout != "y":
        pytest.skip("php-imap or php-mbstring is not installed")
    script = tmp_path / "mutf7.php"
    script.write_text(PHP_MUTF7)
    r = subprocess.run(["php", "-d", "display_errors=stderr", str(script),
                        "127.0.0.1:%d/imap/notls" % srv.ports["imap"]],
                       capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert out["encoded"] == PETER_M.decode()
    assert out["create"] is True and out["create_amp"] is True, out
    assert "~peter/mail/台北/日本語" in out["list"] and "Tom & Jerry" in out["list"], out
    assert out["append"] is True and out["messages"] == 1, out
    assert out["reopen"] is True and out["subject"] == "php mutf7", out
    # (c-client checks modified UTF-7 itself: it sends no invalid name)
    assert [e for e in out["errors"] or [] if "SECURITY PROBLEM" not in e] == [], out["errors"]
    assert out["close"] is True
    # stored in UTF-8: a UTF-8 session sees the real names
    u = utf8(srv)
    names = list_names(u.ok(b'LIST "" "*"'))
    assert PETER_U in names and b"Tom & Jerry" in names, names
    assert u.ok(b'STATUS "' + PETER_U + b'" (MESSAGES)') == [
        b'* STATUS "' + PETER_U + b'" (MESSAGES 1)\r\n']
