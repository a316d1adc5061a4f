"""Real IMAP clients against a real server: curl, PHP's c-client (php-imap),
mutt (driven through a pseudo-terminal) and mbsync (isync).

Each client does something observable, which is then checked with a raw
session (or the other way round). A client that is not installed skips its
test.
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import threading
import time

import pytest

from imap_helpers import (ALICE, RawImap, append, appenduid, imaps_port, listen_ports, lit,
                          msg)

LISTEN_ALL = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0", "imaps": "127.0.0.1:0"}


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s is not installed" % tool)


@pytest.fixture
def srv(petrel_factory):
    p = petrel_factory(listen=LISTEN_ALL)
    p.ports["imap"] = listen_ports(p, False)[0]  # the plaintext one, whatever the log order
    return p


def session(p, user=ALICE):
    return RawImap(p.ports["imap"]).login(user)


def status(c, name, items=b"MESSAGES UIDNEXT UIDVALIDITY UNSEEN"):
    untagged = c.ok(b"STATUS " + name + b" (" + items + b")")
    m = re.match(rb'\* STATUS .* \((.*)\)\r\n$', untagged[-1])
    vals = m.group(1).split()
    return {vals[i].decode(): int(vals[i + 1]) for i in range(0, len(vals), 2)}


def subjects(c, mailbox):
    """{subject: flags} of a mailbox (EXAMINE, so nothing changes)."""
    c.ok(b"EXAMINE " + mailbox)
    out = {}
    for r in c.ok(b"FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") if status(
            c, mailbox)["MESSAGES"] else []:
        m = re.match(rb"\* \d+ FETCH \(FLAGS \(([^)]*)\) BODY\[HEADER.FIELDS \(SUBJECT\)\] "
                     rb"\{\d+\}\r\nSubject: ([^\r]*)\r\n", r)
        if m:
            out[m.group(2).decode()] = set(m.group(1).decode().split()) - {"\\Recent"}
    c.ok(b"UNSELECT")
    return out


def seed(p, mailbox, messages):
    """APPENDs all messages in one session, pipelined with LITERAL+;
    returns their UIDs."""
    c = session(p)
    data = b"".join(b"s%d APPEND %s {%d+}\r\n" % (i, mailbox, len(m)) + m + b"\r\n"
                    for i, m in enumerate(messages))
    sender = threading.Thread(target=c.sendraw, args=(data,))
    sender.start()
    uids = []
    while len(uids) < len(messages):
        line = c.readline()
        assert line.startswith(b"s%d OK [APPENDUID " % len(uids)), line
        uids.append(appenduid(line)[1])
    sender.join()
    c.close()
    return uids


# -------------------------------------------------------------------- curl


def curl(*args, timeout=30):
    return subprocess.run(["curl", "-s", "-S", "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 5)


def test_curl(srv, tmp_path):
    need("curl")
    p = srv
    port, sport = p.ports["imap"], imaps_port(p)
    body = msg("curl one", body="Hello from the curl test.\r\nSecond line.")
    uid = appenduid(append(session(p), b"INBOX", body))[1]
    user = ["-u", "%s:%s" % ALICE]
    base = "imap://127.0.0.1:%d/" % port
    # list mailboxes
    r = curl("--url", base, *user)
    assert r.returncode == 0, r.stderr
    names = re.findall(rb'\* LIST \([^)]*\) "/" "?([^"\r]*)"?\r\n', r.stdout)
    assert set(names) >= {b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk"}, r.stdout
    r = curl("--url", base + "INBOX", *user)
    assert r.returncode == 0 and b'"INBOX"' in r.stdout, (r.stdout, r.stderr)
    # fetch a message by UID: exactly what was appended
    r = curl("--url", base + "INBOX;UID=%d" % uid, *user)
    assert r.returncode == 0, r.stderr
    assert r.stdout == body, r.stdout
    # a section of it
    r = curl("--url", base + "INBOX;UID=%d;SECTION=HEADER.FIELDS%%20(SUBJECT)" % uid, *user)
    assert r.returncode == 0 and r.stdout == b"Subject: curl one\r\n\r\n", (r.stdout, r.stderr)
    # search
    r = curl("--url", base + "INBOX?SUBJECT%20curl", *user)
    assert r.returncode == 0 and r.stdout == b"* SEARCH %d\r\n" % uid, (r.stdout, r.stderr)
    # a UID that does not exist: an error, no data
    r = curl("--url", base + "INBOX;UID=999", *user)
    assert r.returncode != 0 and r.stdout == b""
    # wrong password
    r = curl("--url", base + "INBOX;UID=%d" % uid, "-u", "alice@example.test:nope")
    assert r.returncode == 67, (r.returncode, r.stderr)  # CURLE_LOGIN_DENIED
    # upload: APPEND
    up = tmp_path / "up.eml"
    upload = msg("curl upload", body="uploaded with curl -T")
    up.write_bytes(upload)
    r = curl("-T", str(up), "--url", base + "Drafts", *user)
    assert r.returncode == 0, r.stderr
    c = session(p)
    c.ok(b"SELECT Drafts")
    assert c.ok(b"FETCH 1 (BODY.PEEK[])") == [b"* 1 FETCH (BODY[] %s)\r\n" % lit(upload)]
    # a custom command
    r = curl("--url", base + "INBOX", "-X", "STATUS INBOX (MESSAGES)", *user)
    assert r.returncode == 0 and r.stdout == b'* STATUS "INBOX" (MESSAGES 1)\r\n', r.stdout
    # implicit TLS, and STARTTLS required
    r = curl("-k", "--url", "imaps://127.0.0.1:%d/INBOX;UID=%d" % (sport, uid), *user)
    assert r.returncode == 0 and r.stdout == body, r.stderr
    r = curl("-k", "--ssl-reqd", "--url", base + "INBOX;UID=%d" % uid, *user)
    assert r.returncode == 0 and r.stdout == body, r.stderr


# --------------------------------------------------------------------- PHP

PHP_FLOW = r"""<?php
// usage: php flow.php server-spec   e.g. 127.0.0.1:143/imap/notls
$mb = "{" . $argv[1] . "}";
$out = [];
$m = imap_open($mb . "INBOX", "alice@example.test", "secret-alice", 0, 1);
if ($m === false) { echo json_encode(["open" => false, "errors" => imap_errors()]); exit(1); }
$msg1 = "From: Carol <carol@example.test>\r\nTo: alice@example.test\r\nSubject: php one\r\n"
      . "Date: Tue, 2 Jan 2024 10:00:00 +0000\r\nMessage-ID: <php1@example.test>\r\n\r\n"
      . "first body\r\n";
$msg2 = "From: Dave Example <dave@example.test>\r\nTo: alice@example.test\r\n"
      . "Subject: php multipart\r\nMIME-Version: 1.0\r\n"
      . "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
      . "--XX\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nthe text part\r\n"
      . "--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
      . "Content-Transfer-Encoding: base64\r\n"
      . "Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n";
$out["append1"] = imap_append($m, $mb . "INBOX", $msg1);
$out["append2"] = imap_append($m, $mb . "INBOX", $msg2, "\\Flagged");
imap_ping($m);
$out["num_msg"] = imap_num_msg($m);
$h = imap_headerinfo($m, 1);
$out["subject1"] = $h->subject;
$out["from1"] = $h->from[0]->mailbox . "@" . $h->from[0]->host;
$out["from1_personal"] = $h->from[0]->personal;
$out["message_id1"] = $h->message_id;
$out["date1"] = $h->date;
$h2 = imap_headerinfo($m, 2);
$out["subject2"] = $h2->subject;
$out["from2_personal"] = $h2->from[0]->personal;
$out["flagged2"] = $h2->Flagged;
$s = imap_fetchstructure($m, 2);
$out["structure"] = ["type" => $s->type, "subtype" => $s->subtype, "nparts" => count($s->parts),
    "p1" => [$s->parts[0]->type, $s->parts[0]->subtype],
    "p2" => [$s->parts[1]->type, $s->parts[1]->subtype, $s->parts[1]->encoding]];
$s1 = imap_fetchstructure($m, 1);
$out["structure1"] = [$s1->type, $s1->subtype];
$out["body2_1"] = imap_fetchbody($m, 2, "1", FT_PEEK);
$out["body2_2"] = imap_fetchbody($m, 2, "2", FT_PEEK);
$out["body1"] = imap_body($m, 1, FT_PEEK);
$ov = imap_fetch_overview($m, "1:2");
$out["seen_before"] = [$ov[0]->seen, $ov[1]->seen];
$out["unseen_before"] = imap_search($m, "UNSEEN");
$out["setflag"] = imap_setflag_full($m, "1", "\\Seen \\Answered");
$ov = imap_fetch_overview($m, "1:2");
$out["seen_after"] = [$ov[0]->seen, $ov[1]->seen, $ov[0]->answered];
$out["unseen_after"] = imap_search($m, "UNSEEN");
$out["search_subject"] = imap_search($m, 'SUBJECT "multipart"');
$out["search_none"] = imap_search($m, 'SUBJECT "no such thing"');
$out["uid2"] = imap_uid($m, 2);
$out["create"] = imap_createmailbox($m, $mb . "PhpBox");
$list = imap_list($m, $mb, "*");
$out["list"] = array_map(function($n) use ($mb) { return substr($n, strlen($mb)); }, $list);
$out["move"] = imap_mail_move($m, "2", "PhpBox");
$out["expunge"] = imap_expunge($m);
$out["num_after_move"] = imap_num_msg($m);
$st = imap_status($m, $mb . "PhpBox", SA_ALL);
$out["status_phpbox"] = ["messages" => $st->messages, "unseen" => $st->unseen,
                         "uidnext" => $st->uidnext];
$st = imap_status($m, $mb . "INBOX", SA_MESSAGES | SA_UNSEEN);
$out["status_inbox"] = ["messages" => $st->messages, "unseen" => $st->unseen];
$out["reopen"] = imap_reopen($m, $mb . "PhpBox");
$h = imap_headerinfo($m, 1);
$out["moved_subject"] = $h->subject;
$out["moved_flagged"] = $h->Flagged;
$out["delete"] = imap_delete($m, "1");
$out["expunge2"] = imap_expunge($m);
$out["num_phpbox"] = imap_num_msg($m);
$out["close"] = imap_close($m);
$out["errors"] = imap_errors();
$out["alerts"] = imap_alerts();
echo json_encode($out), "\n";
"""

# c-client's remark about AUTH=PLAIN offered without TLS (on loopback,
# where the server allows cleartext by design): not an error of the session.
C_CLIENT_PLAINTEXT_NOTICE = "SECURITY PROBLEM: insecure server advertised AUTH=PLAIN"


def run_php(tmp_path, spec):
    script = tmp_path / "flow.php"
    script.write_text(PHP_FLOW)
    r = subprocess.run(["php", "-d", "display_errors=stderr", str(script), spec],
                       capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "Warning" not in r.stderr and "Fatal" not in r.stderr, r.stderr
    return json.loads(r.stdout)


def check_php_flow(out, p):
    assert out["append1"] is True and out["append2"] is True
    assert out["num_msg"] == 2
    assert out["subject1"] == "php one" and out["from1"] == "carol@example.test"
    assert out["from1_personal"] == "Carol" and out["message_id1"] == "<php1@example.test>"
    assert out["date1"] == "Tue, 2 Jan 2024 10:00:00 +0000"
    assert out["subject2"] == "php multipart" and out["from2_personal"] == "Dave Example"
    assert out["flagged2"] == "F"
    assert out["structure"] == {"type": 1, "subtype": "MIXED", "nparts": 2, "p1": [0, "PLAIN"],
                                "p2": [3, "PDF", 3]}, out["structure"]  # 3: base64
    assert out["structure1"] == [0, "PLAIN"]
    assert out["body2_1"] == "the text part" and out["body2_2"] == "JVBERi0xLjQK"
    assert out["body1"] == "first body\r\n"
    assert out["seen_before"] == [0, 0] and out["unseen_before"] == [1, 2]
    assert out["setflag"] is True
    assert out["seen_after"] == [1, 0, 1] and out["unseen_after"] == [2]
    assert out["search_subject"] == [2] and out["search_none"] is False
    assert out["uid2"] == 2
    assert out["create"] is True
    assert set(out["list"]) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "PhpBox"}
    assert out["move"] is True and out["expunge"] is True and out["num_after_move"] == 1
    assert out["status_phpbox"] == {"messages": 1, "unseen": 1, "uidnext": 2}
    assert out["status_inbox"] == {"messages": 1, "unseen": 0}
    assert out["reopen"] is True and out["moved_subject"] == "php multipart"
    assert out["moved_flagged"] == "F"
    assert out["delete"] is True and out["expunge2"] is True and out["num_phpbox"] == 0
    assert out["close"] is True
    assert out["alerts"] is False
    # the server agrees
    c = session(p)
    assert subjects(c, b"INBOX") == {"php one": {"\\Seen", "\\Answered"}}
    assert status(c, b"PhpBox")["MESSAGES"] == 0


def test_php_imap_plaintext(srv, tmp_path):
    need("php")
    out = run_php(tmp_path, "127.0.0.1:%d/imap/notls" % srv.ports["imap"])
    errors = [e for e in (out["errors"] or []) if e != C_CLIENT_PLAINTEXT_NOTICE]
    assert errors == [], out["errors"]
    check_php_flow(out, srv)


@pytest.mark.parametrize("mode", ["starttls", "imaps"])
def test_php_imap_tls(srv, tmp_path, mode):
    need("php")
    if mode == "starttls":  # c-client's plain "/tls" is TLS 1.0 only
        spec = "127.0.0.1:%d/imap/tls-sslv23/novalidate-cert" % srv.ports["imap"]
    else:
        spec = "127.0.0.1:%d/imap/ssl/novalidate-cert" % imaps_port(srv)
    out = run_php(tmp_path, spec)
    assert out["errors"] is False, out["errors"]
    check_php_flow(out, srv)


# -------------------------------------------------------------------- mutt


def run_in_pty(args, env, timeout):
    """Runs args on a pseudo-terminal; (exit status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvpe(args[0], args, env)
        finally:
            os._exit(127)
    out = b""
    end = time.monotonic() + timeout
    status = None
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                out += data
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
                break
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("timed out: %r" % out[-2000:])
    finally:
        os.close(fd)
    return status, out


def mutt(p, tmp_path, push, mailbox="INBOX"):
    url = "imap://alice%%40example.test:secret-alice@127.0.0.1:%d/" % p.ports["imap"]
    settings = ["set folder=%s" % url, "set spoolfile=+INBOX", "set header_cache=",
                "set message_cachedir=", "set ssl_starttls=no", "set ssl_force_tls=no",
                "set confirmcreate=no", "set confirmappend=no", "set delete=yes", "set move=no",
                "set record=", "set beep=no", "set mark_old=no", "set imap_passive=no",
                "set sort=date-sent"]
    args = ["mutt", "-n", "-F", "/dev/null"]
    for s in settings:
        args += ["-e", s]
    args += ["-e", "push '%s'" % push, "-f", url + mailbox]
    home = tmp_path / "mutthome"
    home.mkdir(exist_ok=True)
    env = {"TERM": "vt100", "HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin"),
           "LANG": "C.UTF-8"}
    status, out = run_in_pty(args, env, 30)
    assert status == 0, out[-2000:]
    return out


def test_mutt_moves_and_flags(srv, tmp_path):
    need("mutt")
    p = srv
    seed(p, b"INBOX", [msg("mutt keep", extra="Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"),
                       msg("mutt move one", extra="Date: Mon, 1 Jan 2024 11:00:00 +0000\r\n"),
                       msg("mutt move two", extra="Date: Mon, 1 Jan 2024 12:00:00 +0000\r\n")])
    c = session(p)
    c.ok(b"CREATE Archive")
    # save ("move") the two to =Archive, flag the one that stays, sync, quit
    mutt(p, tmp_path, "<tag-pattern>~s move<enter><tag-prefix><save-message>=Archive<enter>"
                      "<untag-pattern>.<enter><tag-pattern>~s keep<enter>"
                      "<tag-prefix><flag-message><sync-mailbox><quit>")
    assert subjects(c, b"INBOX") == {"mutt keep": {"\\Flagged"}}
    assert set(subjects(c, b"Archive")) == {"mutt move one", "mutt move two"}
    # read the message in the pager: it becomes \Seen
    mutt(p, tmp_path, "<display-message><exit><sync-mailbox><quit>")
    assert subjects(c, b"INBOX") == {"mutt keep": {"\\Flagged", "\\Seen"}}
    # delete from Archive and expunge on leaving
    mutt(p, tmp_path, "<delete-pattern>~s one<enter><sync-mailbox><quit>", mailbox="Archive")
    assert set(subjects(c, b"Archive")) == {"mutt move two"}


# ------------------------------------------------------------------ mbsync

MBSYNCRC = """IMAPAccount petrel
Host {host}
Port {port}
User alice@example.test
Pass secret-alice
{tls}
AuthMechs {mech}
PipelineDepth 50

IMAPStore remote
Account petrel

MaildirStore local
Path {path}/
Inbox {path}/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""


def mbsync(rc):
    """Runs mbsync on a pseudo-terminal (for its counters); returns the last
    counters line, e.g. 'C: 1/1  B: 7/7  F: +0/0 *0/0 #0/0  N: +0/0 *0/0 #0/0'."""
    env = dict(os.environ, HOME=os.path.dirname(rc))
    status, out = run_in_pty(["mbsync", "-c", rc, "-a"], env, 120)
    assert status == 0, out[-3000:]
    lines = re.findall(rb"C: \d+/\d+ +B: \d+/\d+ +F: [^\r\n]*?N: [^\r\n]*?(?=\r|\n|$)", out)
    assert lines, out[-3000:]
    return lines[-1].decode()


def maildir_files(path):
    out = {}
    for root, _, files in os.walk(path):
        if os.path.basename(root) in ("cur", "new"):
            box = os.path.relpath(os.path.dirname(root), path)
            for f in files:
                out.setdefault(box, set()).add(f)
    return out


def server_state(c, names):
    items = b"MESSAGES UIDNEXT UIDVALIDITY UNSEEN"
    if b"CONDSTORE" in c.ok(b"CAPABILITY")[0].split():
        items += b" HIGHESTMODSEQ"  # RFC 7162: any change at all moves it
    return {n: status(c, n.encode(), items) for n in names}


def test_mbsync_two_way(srv, tmp_path, mech="LOGIN"):
    need("mbsync")
    p = srv
    n = 1000
    t0 = time.monotonic()
    msgs = [msg("seed %04d" % i, body="message number %d\r\n" % i + "filler text " * 20,
                extra="Message-ID: <seed%d@example.test>\r\n" % i) for i in range(n)]
    uids = seed(p, b"INBOX", msgs)
    assert uids == list(range(1, n + 1))
    c = session(p)
    c.ok(b"CREATE Lists/dev")
    seed(p, b"Lists/dev", [msg("dev one"), msg("dev two")])
    c.ok(b"SELECT INBOX")
    c.ok(b"STORE 1:10 +FLAGS.SILENT (\\Seen)")
    c.ok(b"STORE 5 +FLAGS.SILENT (\\Flagged)")
    c.ok(b"UNSELECT")
    seeded = time.monotonic() - t0
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(MBSYNCRC.format(host="127.0.0.1", port=p.ports["imap"], path=maildir,
                                  mech=mech, tls="SSLType None"))

    # 1: everything comes down
    t1 = time.monotonic()
    stats = mbsync(str(rc))
    first = time.monotonic() - t1
    files = maildir_files(maildir)
    assert len(files.get("INBOX", ())) == n, {k: len(v) for k, v in files.items()}
    assert len(files.get("Lists/dev", ())) == 2, files.keys()
    assert {"Sent", "Drafts", "Trash", "Junk"} <= set(os.listdir(maildir))
    inbox = maildir / "INBOX"
    seen = [f for f in files["INBOX"] if re.search(r":2,[A-Z]*S", f)]
    flagged = [f for f in files["INBOX"] if re.search(r":2,[A-Z]*F", f)]
    assert len(seen) == 10 and len(flagged) == 1, (seen, flagged)
    # the content is intact (mbsync stores maildir files with LF line ends
    # and may add its X-TUID header)
    sample = [f for f in os.listdir(inbox / "cur") + os.listdir(inbox / "new")]
    bodies = set()
    for f in sample:
        d = "cur" if os.path.exists(inbox / "cur" / f) else "new"
        bodies.add(re.sub(rb"(?m)^X-TUID: \S+\n", b"",
                          (inbox / d / f).read_bytes().replace(b"\r\n", b"\n")))
    assert {m.replace(b"\r\n", b"\n") for m in msgs} == bodies

    # 2: local changes go up: a new message, a flag, a deletion
    new_msg = msg("written locally", body="made in the maildir")
    (inbox / "new" / ("%d.local1.host" % int(time.time()))).write_bytes(new_msg)

    def find(subject):
        for d in ("cur", "new"):
            for f in os.listdir(inbox / d):
                if re.search(rb"(?m)^Subject: %s\r?$" % subject, (inbox / d / f).read_bytes()):
                    return inbox / d / f
        raise AssertionError(subject)

    f = find(b"seed 0020")
    base, _, fl = f.name.partition(":2,")
    os.rename(f, inbox / "cur" / (base + ":2," + "".join(sorted(fl + "F"))))
    f = find(b"seed 0030")
    os.rename(f, inbox / "cur" / (f.name.partition(":2,")[0] + ":2,S"))
    os.unlink(find(b"seed 0040"))
    stats2 = mbsync(str(rc))
    got = subjects(c, b"INBOX")
    assert len(got) == n and "written locally" in got and "seed 0040" not in got, len(got)
    assert got["seed 0020"] == {"\\Flagged"}, got["seed 0020"]
    assert got["seed 0030"] == {"\\Seen"}, got["seed 0030"]
    assert got["seed 0004"] == {"\\Seen", "\\Flagged"}  # UID 5
    c.ok(b"EXAMINE INBOX")
    r = c.ok(b"UID SEARCH SUBJECT \"written locally\"")
    new_uid = int(r[0].split()[-1])
    assert new_uid == n + 1, r  # UIDs are not reused
    assert [x for x in c.ok(b"UID FETCH %d BODY.PEEK[TEXT]" % new_uid)
            if b"made in the maildir" in x], "the uploaded body"
    c.ok(b"UNSELECT")

    # 3: nothing to do; nothing changes on either side
    names = ["INBOX", "Lists/dev", "Sent", "Drafts", "Trash", "Junk"]
    before_server = server_state(c, names)
    before_files = maildir_files(maildir)
    stats3 = mbsync(str(rc))
    assert re.search(r"F: \+0/0 \*0/0 #0/0 +N: \+0/0 \*0/0 #0/0", stats3), stats3
    assert server_state(c, names) == before_server
    assert maildir_files(maildir) == before_files
    total = time.monotonic() - t0
    assert total < 60, (seeded, first, total, stats, stats2)


def test_mbsync_imaps_server_side_changes(srv, tmp_path):
    """mbsync over implicit TLS with SASL PLAIN; changes made on the server
    (new, flagged, expunged, a new mailbox) come down."""
    need("mbsync")
    p = srv
    seed(p, b"INBOX", [msg("tls %02d" % i) for i in range(20)])
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    rc = tmp_path / "mbsyncrc"
    # "localhost" is the name in the test certificate; it is loopback
    rc.write_text(MBSYNCRC.format(host="localhost", port=imaps_port(p), path=maildir,
                                  mech="PLAIN",
                                  tls="SSLType IMAPS\nCertificateFile %s" % p.cert))
    mbsync(str(rc))
    assert len(maildir_files(maildir)["INBOX"]) == 20
    c = session(p)
    c.ok(b"SELECT INBOX")
    c.ok(b"STORE 1 +FLAGS.SILENT (\\Flagged)")
    c.ok(b"STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    c.ok(b"EXPUNGE")
    append(c, b"INBOX", msg("tls new"), b"(\\Seen)")
    c.ok(b"CREATE Later")
    append(c, b"Later", msg("in later"))
    stats = mbsync(str(rc))
    files = maildir_files(maildir)
    assert len(files["INBOX"]) == 19, stats
    assert len([f for f in files["INBOX"] if re.search(r":2,[A-Z]*F", f)]) == 1
    assert len([f for f in files["INBOX"] if re.search(r":2,[A-Z]*S", f)]) == 1
    assert len(files.get("Later", ())) == 1, files.keys()
    stats = mbsync(str(rc))
    assert re.search(r"F: \+0/0 \*0/0 #0/0 +N: \+0/0 \*0/0 #0/0", stats), stats
