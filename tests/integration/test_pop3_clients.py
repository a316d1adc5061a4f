"""POP3 against real clients: curl (pop3://, pop3s://, STLS, AUTH PLAIN,
DELE), fetchmail delivering into an mda command, getmail6 (POP3 and
POP3-over-TLS), and PHP's imap extension (c-client) with a POP3 mailbox."""
import glob
import imaplib
import os
import shutil
import subprocess

import pytest

from pop3_helpers import (ALICE, LISTEN, RawPop3, deliver, imap_port, make_message,
                          pop3_port, pop3s_port, stored)


@pytest.fixture
def srv(petrel_factory):
    return petrel_factory(listen=LISTEN)


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/bootstrap installs it)")


def fill(p, n):
    msgs = []
    for i in range(n):
        m = make_message(f"client test {i + 1}", body=f"Body of message {i + 1}.\n.dot line\n")
        deliver(p, m)
        msgs.append(m)
    return msgs


def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=120, **kw)


# -------------------------------------------------------------------- curl

def test_curl(srv):
    need("curl")
    fill(srv, 3)
    rows = stored(srv)
    user = f"{ALICE[0]}:{ALICE[1]}"
    port, sport = pop3_port(srv), pop3s_port(srv)
    p = run(["curl", "-sS", f"pop3://127.0.0.1:{port}/", "-u", user])
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split("\r\n")[:-1] == [f"{i + 1} {s}" for i, (_u, s) in enumerate(rows)]
    p = run(["curl", "-sS", f"pop3://127.0.0.1:{port}/2", "-u", user])
    assert p.returncode == 0, p.stderr
    assert p.stdout == srv.message(rows[1][0])
    # implicit TLS, STLS required, SASL PLAIN
    p = run(["curl", "-sS", "-k", f"pop3s://127.0.0.1:{sport}/1", "-u", user])
    assert p.returncode == 0, p.stderr
    assert p.stdout == srv.message(rows[0][0])
    p = run(["curl", "-sS", "-k", "--ssl-reqd", f"pop3://127.0.0.1:{port}/3", "-u", user])
    assert p.returncode == 0, p.stderr
    assert p.stdout == srv.message(rows[2][0])
    p = run(["curl", "-sS", "--login-options", "AUTH=PLAIN", f"pop3://127.0.0.1:{port}/1",
             "-u", user])
    assert p.returncode == 0, p.stderr
    assert p.stdout == srv.message(rows[0][0])
    # wrong password
    p = run(["curl", "-sS", f"pop3://127.0.0.1:{port}/", "-u", f"{ALICE[0]}:nope"])
    assert p.returncode == 67  # CURLE_LOGIN_DENIED
    # DELE, then QUIT commits it
    p = run(["curl", "-sS", f"pop3://127.0.0.1:{port}/2", "-X", "DELE", "-I", "-u", user])
    assert p.returncode == 0, p.stderr
    assert stored(srv) == [rows[0], rows[2]]


# --------------------------------------------------------------- fetchmail

def fetchmail(tmp, port, extra, keep, proto_opts=""):
    rc = os.path.join(tmp, "fetchmailrc")
    out = os.path.join(tmp, "out")
    os.makedirs(out, exist_ok=True)
    with open(rc, "w") as f:
        f.write(f'poll 127.0.0.1 port {port} protocol pop3 uidl {proto_opts}\n'
                f'  user "{ALICE[0]}" password "{ALICE[1]}" is root here\n'
                f'  {"keep" if keep else "nokeep"} {extra}\n'
                f'  mda "/bin/sh -c \'cat > {out}/msg.$(date +%s%N)\'"\n')
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=tmp)
    p = run(["fetchmail", "-f", rc, "--nosslcertck", "-v", "--pidfile",
             os.path.join(tmp, "fetchmail.pid")], env=env)
    files = sorted(glob.glob(os.path.join(out, "msg.*")))
    return p, [open(f, "rb").read() for f in files]


def test_fetchmail(srv, tmp_path):
    need("fetchmail")
    msgs = fill(srv, 3)
    # over implicit TLS, keeping the messages
    p, got = fetchmail(str(tmp_path / "a"), pop3s_port(srv), "ssl", keep=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(got) == 3
    # fetchmail delivers LF line ends and adds a Received line; the order in
    # which its mda runs is not the order of the maildrop
    for m in msgs:
        assert sum(g.replace(b"\n", b"\r\n").endswith(m) for g in got) == 1, m
    assert len(stored(srv)) == 3
    # plain POP3 with STLS (fetchmail's default when offered), deleting
    p, got = fetchmail(str(tmp_path / "b"), pop3_port(srv), "sslproto 'auto'", keep=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert b"STLS" in p.stdout + p.stderr
    assert len(got) == 3
    assert stored(srv) == []
    # nothing left: fetchmail exits 1 ("no mail")
    p, got = fetchmail(str(tmp_path / "c"), pop3_port(srv), "", keep=False)
    assert p.returncode == 1, p.stdout + p.stderr


# ------------------------------------------------------------------ getmail

def getmail(tmp, retriever, port, delete):
    os.makedirs(tmp, exist_ok=True)
    out = os.path.join(tmp, "out")
    os.makedirs(out, exist_ok=True)
    rc = os.path.join(tmp, "getmailrc")
    with open(rc, "w") as f:
        f.write(f"""[retriever]
type = {retriever}
server = 127.0.0.1
port = {port}
username = {ALICE[0]}
password = {ALICE[1]}

[destination]
type = MDA_external
path = /bin/sh
arguments = ("-c", "cat > {out}/msg.$$")
allow_root_commands = true

[options]
read_all = true
delete = {"true" if delete else "false"}
""")
    p = run(["getmail", f"--rcfile={rc}", f"--getmaildir={tmp}"])
    files = sorted(glob.glob(os.path.join(out, "msg.*")), key=os.path.getmtime)
    return p, [open(f, "rb").read() for f in files]


def test_getmail(srv, tmp_path):
    need("getmail")
    msgs = fill(srv, 2)
    p, got = getmail(str(tmp_path / "a"), "SimplePOP3SSLRetriever", pop3s_port(srv), False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(got) == 2
    for m in msgs:
        body = m.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
        assert any(g.endswith(body) for g in got)
    assert len(stored(srv)) == 2
    p, got = getmail(str(tmp_path / "b"), "SimplePOP3Retriever", pop3_port(srv), True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(got) == 2
    assert stored(srv) == []


# --------------------------------------------------------------------- PHP

PHP = r"""<?php
$spec = '{127.0.0.1:%d/pop3/notls}INBOX';
$mb = imap_open($spec, '%s', '%s', 0, 1);
if (!$mb) { echo "open failed: ", imap_last_error(), "\n"; exit(1); }
$n = imap_num_msg($mb);
echo "n=$n\n";
for ($i = 1; $i <= $n; $i++) {
    $h = imap_headerinfo($mb, $i);
    echo "subject=", $h->subject, "\n";
    echo "body=", json_encode(imap_body($mb, $i)), "\n";
}
imap_delete($mb, 1);
imap_expunge($mb);
echo "after=", imap_num_msg($mb), "\n";
imap_close($mb);
$mb = imap_open($spec, '%s', '%s', 0, 1);
echo "reopen=", imap_num_msg($mb), "\n";
$h = imap_headerinfo($mb, 1);
echo "first=", $h->subject, "\n";
imap_close($mb);
imap_errors();
imap_alerts();
"""


def test_php_imap_pop3(srv, tmp_path):
    need("php")
    if b"imap" not in run(["php", "-m"]).stdout:
        pytest.skip("php-imap is not installed")
    fill(srv, 3)
    script = tmp_path / "t.php"
    script.write_text(PHP % (pop3_port(srv), ALICE[0], ALICE[1], ALICE[0], ALICE[1]))
    p = run(["php", str(script)])
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.decode().splitlines()
    assert out[0] == "n=3"
    assert out[1] == "subject=client test 1"
    assert out[2] == r'body="Body of message 1.\r\n.dot line\r\n"'
    assert "after=2" in out and "reopen=2" in out
    assert out[-1] == "first=client test 2"
    # the deletion persisted: in the store, to POP3 and to IMAP
    assert len(stored(srv)) == 2
    c = RawPop3(pop3_port(srv))
    c.login()
    assert c.cmd("STAT").startswith(b"+OK 2 ")
    c.cmd("QUIT")
    im = imaplib.IMAP4("127.0.0.1", imap_port(srv))
    im.login(*ALICE)
    assert im.select("INBOX")[1] == [b"2"]
    im.logout()
