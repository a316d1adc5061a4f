"""Configuration checking, startup refusal, graceful shutdown and the
administration CLI."""
import signal
import socket
import subprocess
import time

import pytest

from conftest import PETREL_BIN
from smtp_helpers import SMTPConn, deliver, inbox, stored_body, wait_for

ALICE = "alice@example.test"
EX_DATAERR, EX_NOUSER, EX_CONFIG = 65, 67, 78


def write_conf(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def run(*args, input=None, timeout=30):
    return subprocess.run([PETREL_BIN, *args], input=input, capture_output=True, text=True,
                          errors="replace", timeout=timeout)


@pytest.fixture
def conf_dir(tmp_path, tls_files):
    """A directory and a valid base config text (no users needed)."""
    cert, key = tls_files
    base = (f"[server]\nhostname = mx.example.test\ndata_dir = {tmp_path / 'data'}\n"
            f"workers = 1\n\n[tls]\ncert = {cert}\nkey = {key}\n\n"
            f"[listen]\nsmtp = 127.0.0.1:0\n\n[smtp]\npostmaster = alice@example.test\n\n"
            f"[limits]\n")
    return tmp_path, base


def line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


# ------------------------------------------------------------------- check

def test_check_good_config(conf_dir):
    d, base = conf_dir
    conf = write_conf(d / "good.conf", base + "max_errors = 5\nmax_message_size = 10M\n")
    p = run("-c", str(conf), "check")
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout


@pytest.mark.parametrize("bad,key", [
    ("[limits]\nmax_erors = 3\n", "max_erors"),
    ("[server]\nhostnme = x\n", "hostnme"),
    ("[smtp]\nrelay = yes\n", "relay"),
])
def test_check_unknown_key(conf_dir, bad, key):
    d, base = conf_dir
    text = base + "\n" + bad
    conf = write_conf(d / "bad.conf", text)
    p = run("-c", str(conf), "check")
    assert p.returncode == EX_CONFIG, p
    assert f"{conf}:{line_of(text, key)}:" in p.stderr, p.stderr
    assert key in p.stderr and "unknown key" in p.stderr


def test_check_unknown_section(conf_dir):
    d, base = conf_dir
    text = base + "\n[relay]\nallow = 10.0.0.0/8\n"
    conf = write_conf(d / "bad.conf", text)
    p = run("-c", str(conf), "check")
    assert p.returncode == EX_CONFIG
    # either the section header or its first key is a fine place to point at
    assert (f"{conf}:{line_of(text, '[relay]')}:" in p.stderr or
            f"{conf}:{line_of(text, 'allow')}:" in p.stderr), p.stderr
    assert "relay" in p.stderr


@pytest.mark.parametrize("bad,key", [
    ("max_errors = abc", "max_errors"),
    ("max_errors = 0", "max_errors"),
    ("smtp_line_max = 100", "smtp_line_max"),
    ("max_message_size = 10X", "max_message_size"),
    ("command_timeout = -1", "command_timeout"),
])
def test_check_bad_value(conf_dir, bad, key):
    d, base = conf_dir
    text = base + bad + "\n"
    conf = write_conf(d / "bad.conf", text)
    p = run("-c", str(conf), "check")
    assert p.returncode == EX_CONFIG
    assert f"{conf}:{line_of(text, bad)}:" in p.stderr, p.stderr
    assert key in p.stderr


@pytest.mark.parametrize("value", ["127.0.0.1", "[::1", "127.0.0.1:99999"])
def test_check_bad_listen_value(conf_dir, value):
    """The message names the file, line, key and echoes the bad value."""
    d, base = conf_dir
    text = base.replace("smtp = 127.0.0.1:0", f"smtp = {value}")
    conf = write_conf(d / "bad.conf", text)
    p = run("-c", str(conf), "check")
    assert p.returncode == EX_CONFIG
    assert f"{conf}:{line_of(text, 'smtp = ')}: [listen] smtp: '{value}'" in p.stderr, p.stderr


def test_check_reports_first_error_consistently(conf_dir):
    """With two mistakes, the message must name the line and the key of the
    same (first) mistake, not the line of one and the text of another."""
    d, base = conf_dir
    text = base.replace("[server]\n", "[server]\nbogus_first = 1\n") + "max_errors = abc\n"
    conf = write_conf(d / "two.conf", text)
    p = run("-c", str(conf), "check")
    assert p.returncode == EX_CONFIG
    first = line_of(text, "bogus_first")
    assert f"{conf}:{first}:" in p.stderr, p.stderr
    assert "bogus_first" in p.stderr, \
        f"line {first} is reported but the message is about another line: {p.stderr!r}"


def test_check_missing_postmaster(conf_dir):
    """RFC 5321 4.5.1: postmaster must be deliverable when SMTP listens."""
    d, base = conf_dir
    conf = write_conf(d / "nopm.conf", base.replace("postmaster = alice@example.test\n", ""))
    p = run("-c", str(conf), "check")
    assert p.returncode == EX_CONFIG
    assert "postmaster" in p.stderr


def test_check_missing_config_file(tmp_path):
    p = run("-c", str(tmp_path / "nope.conf"), "check")
    assert p.returncode == EX_CONFIG
    assert "nope.conf" in p.stderr


def test_check_unreadable_tls_file(conf_dir):
    d, base = conf_dir
    text = base.replace("[tls]\ncert = ", f"[tls]\ncert = {d}/missing.pem\n#")
    conf = write_conf(d / "notls.conf", text)
    p = run("-c", str(conf), "check")
    assert p.returncode == EX_CONFIG
    assert "missing.pem" in p.stderr


def test_unimplemented_listener_refused(conf_dir):
    """A protocol Petrel does not serve yet: `serve` exits 78 with a message
    and never listens on anything."""
    d, base = conf_dir
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    text = base.replace("[listen]\n", f"[listen]\nnntp = 127.0.0.1:{port}\n")
    conf = write_conf(d / "nntp.conf", text)
    p = run("-c", str(conf), "check")
    assert p.returncode == EX_CONFIG
    assert "nntp" in p.stderr
    p = run("-c", str(conf), "serve", timeout=15)
    assert p.returncode == EX_CONFIG, p
    assert f"{conf}:{line_of(text, 'nntp =')}:" in p.stderr
    assert "nntp" in p.stderr
    assert "event=listen" not in p.stderr and "event=started" not in p.stderr
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# ---------------------------------------------------------------- shutdown

def test_sigterm_idle_session_gets_421(petrel):
    c = SMTPConn(petrel.smtp_port)
    c.ehlo()
    t0 = time.monotonic()
    petrel.proc.send_signal(signal.SIGTERM)
    r = c.reply(timeout=10)
    assert (r.code, r.enhanced) == (421, "4.3.2"), r
    assert c.wait_closed(5) == b""
    c.close()
    rc = petrel.stop(sig=0, timeout=12)
    assert rc == 0
    assert time.monotonic() - t0 < 10


def test_sigterm_before_ehlo(petrel):
    c = SMTPConn(petrel.smtp_port)
    petrel.proc.send_signal(signal.SIGTERM)
    assert c.reply(timeout=10).code == 421
    c.close()
    assert petrel.stop(sig=0) == 0


def test_sigterm_during_data_lets_message_finish(petrel):
    """In-flight transactions finish: the client completes DATA, gets 250
    (the message is stored), then 421. New connections are refused."""
    c = SMTPConn(petrel.smtp_port)
    c.ehlo()
    c.expect("MAIL FROM:<s@remote.example>", 250)
    c.expect(f"RCPT TO:<{ALICE}>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    t0 = time.monotonic()
    petrel.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "event=stopping" in petrel.log(), what="the stopping log line")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", petrel.smtp_port), timeout=2).close()
    c.send(b"second half\r\n.\r\n")
    r = c.reply()
    assert (r.code, r.enhanced) == (250, "2.0.0"), r
    r = c.reply()
    assert r.code == 421, r
    assert c.wait_closed(5) == b""
    c.close()
    assert petrel.stop(sig=0) == 0
    assert time.monotonic() - t0 < 10
    [raw] = inbox(petrel)
    assert stored_body(raw) == b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"


def test_sigterm_during_bdat_lets_message_finish(petrel):
    c = SMTPConn(petrel.smtp_port)
    c.ehlo()
    c.expect("MAIL FROM:<s@remote.example>", 250)
    c.expect(f"RCPT TO:<{ALICE}>", 250)
    chunk = b"Subject: chunk one\r\n\r\n"
    c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    assert c.reply().code == 250
    petrel.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "event=stopping" in petrel.log(), what="the stopping log line")
    c.send(b"BDAT 6 LAST\r\nbody\r\n")
    assert c.reply().code == 250
    assert c.reply().code == 421
    c.close()
    assert petrel.stop(sig=0) == 0
    assert [m[3] for m in petrel.messages()] == ["chunk one"]


@pytest.mark.parametrize("how", ["rset", "refused-message"])
def test_sigterm_session_closed_when_transaction_ends(petrel, how):
    """A transaction open at SIGTERM may finish; once it has ended without a
    message (RSET, or a refused message) the session is idle and must be
    closed with 421 like any idle session, and the server must exit
    promptly instead of waiting for its grace period."""
    c = SMTPConn(petrel.smtp_port)
    c.ehlo()
    c.expect("MAIL FROM:<s@remote.example>", 250)
    c.expect(f"RCPT TO:<{ALICE}>", 250)
    petrel.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "event=stopping" in petrel.log(), what="the stopping log line")
    t0 = time.monotonic()
    if how == "rset":
        c.send(b"RSET\r\n")
    else:
        c.send(b"DATA\r\n")
        assert c.reply().code == 354
        c.send(b"Subject: bare lf\n\r\n.\r\n")
    codes = []
    try:
        while True:
            codes.append(c.reply(timeout=3).code)
            if codes[-1] == 421:
                break
    except (OSError, AssertionError):
        pass
    c.close()
    rc = petrel.stop(sig=0, timeout=12)
    elapsed = time.monotonic() - t0
    assert codes[-1:] == [421], f"no 421 after the transaction ended: replies {codes}"
    assert rc == 0
    assert elapsed < 4, f"server took {elapsed:.1f}s to exit after the session went idle"


def test_sigterm_right_after_start_is_clean(petrel_factory):
    """Once `event=started` is logged the server must handle SIGTERM (exit 0
    after a clean shutdown), not die of the default signal action. Tried a
    few times: the window between the log line and the signal handlers is
    short."""
    p = petrel_factory(start=False)
    codes = []
    for _ in range(8):
        p.start()
        p.proc.send_signal(signal.SIGTERM)
        codes.append(p.stop(sig=0))
    assert codes == [0] * len(codes), f"exit codes {codes} (negative: killed by the signal)"


def test_sighup_right_after_start_does_not_kill(petrel_factory):
    """SIGHUP (certificate reload) must never kill a started server."""
    p = petrel_factory(start=False)
    alive = []
    for _ in range(8):
        p.start()
        p.proc.send_signal(signal.SIGHUP)
        try:
            with SMTPConn(p.smtp_port) as c:
                c.expect("NOOP", 250)
            ok = p.proc.poll() is None
        except (OSError, AssertionError):
            ok = False
        alive.append(ok)
        p.stop()
    assert all(alive), f"SIGHUP killed the server in {alive.count(False)} of {len(alive)} starts"


def test_restart_keeps_mail(petrel):
    deliver(petrel, b"Subject: before restart\r\n\r\nx\r\n")
    assert petrel.stop() == 0
    petrel.start()
    deliver(petrel, b"Subject: after restart\r\n\r\nx\r\n")
    assert [m[3] for m in petrel.messages()] == ["before restart", "after restart"]


# --------------------------------------------------------------------- CLI

@pytest.fixture
def admin(petrel_factory):
    """A configured store (example.test, alice, bob) without a server."""
    return petrel_factory(start=False)


def test_cli_domain_add_list_del(admin):
    admin.cli("domain", "add", "Other.TEST")
    admin.cli("domain", "add", "a-first.test")
    assert admin.cli("domain", "list").stdout.split() == ["a-first.test", "example.test",
                                                          "other.test"]
    p = admin.cli("domain", "add", "other.test", check=False)
    assert p.returncode == EX_DATAERR and "already exists" in p.stderr
    admin.cli("domain", "del", "OTHER.test")
    admin.cli("domain", "del", "a-first.test")
    assert admin.cli("domain", "list").stdout.split() == ["example.test"]
    p = run("-c", admin.conf, "domain", "del", "other.test")
    assert p.returncode != 0 and "other.test" in p.stderr
    # one clean line (no stray error text after it)
    assert p.stderr.count("\n") == 1 and "\ufffd" not in p.stderr, p.stderr


def test_cli_domain_del_with_users_fails(admin):
    p = admin.cli("domain", "del", "example.test", check=False)
    assert p.returncode != 0
    assert "user" in p.stderr, p.stderr  # says why: the domain still has users
    assert "example.test" in admin.cli("domain", "list").stdout


def test_cli_domain_bad_name(admin):
    for bad in ("-x.test", "a..b", "has space.test", ""):
        p = admin.cli("domain", "add", bad, check=False)
        assert p.returncode == EX_DATAERR, bad


def test_cli_user_lifecycle(admin):
    admin.cli("user", "add", "carol@example.test", input="pw-carol\n")
    assert admin.cli("user", "list").stdout.split() == [
        "alice@example.test", "bob@example.test", "carol@example.test"]
    admin.cli("domain", "add", "other.test")
    admin.cli("user", "add", "zed@other.test", input="pw\n")
    assert admin.cli("user", "list", "other.test").stdout.split() == ["zed@other.test"]
    assert "zed@other.test" not in admin.cli("user", "list", "example.test").stdout
    admin.cli("user", "passwd", "carol@example.test", input="new-password\n")
    admin.cli("user", "del", "carol@example.test")
    assert "carol" not in admin.cli("user", "list").stdout
    p = admin.cli("user", "del", "carol@example.test", check=False)
    assert p.returncode == EX_NOUSER
    p = admin.cli("user", "passwd", "carol@example.test", input="x\n", check=False)
    assert p.returncode == EX_NOUSER


def test_cli_user_add_duplicate(admin):
    for addr in ("alice@example.test", "ALICE@Example.Test"):
        p = admin.cli("user", "add", addr, input="pw\n", check=False)
        assert p.returncode == EX_DATAERR, (addr, p)
        assert "already exists" in p.stderr


def test_cli_user_add_unknown_domain(admin):
    p = admin.cli("user", "add", "x@nowhere.test", input="pw\n", check=False)
    assert p.returncode != 0
    assert "petrel domain add nowhere.test" in p.stderr


def test_cli_user_add_empty_password(admin):
    p = admin.cli("user", "add", "carol@example.test", input="\n", check=False)
    assert p.returncode != 0 and "password" in p.stderr
    p = admin.cli("user", "add", "carol@example.test", input="", check=False)
    assert p.returncode != 0
    assert "carol" not in admin.cli("user", "list").stdout


def test_cli_user_bad_address(admin):
    p = admin.cli("user", "add", "no-at-sign", input="pw\n", check=False)
    assert p.returncode == EX_DATAERR


def test_cli_mail_list_unknown_user(admin):
    p = admin.cli("mail", "list", "nobody@example.test", check=False)
    assert p.returncode == EX_NOUSER
    assert "nobody@example.test" in p.stderr


def test_cli_mail_cat_missing_uid(admin):
    p = admin.cli("mail", "cat", "alice@example.test", "INBOX", "42", check=False)
    assert p.returncode != 0 and "42" in p.stderr
    p = admin.cli("mail", "cat", "alice@example.test", "INBOX", "zero", check=False)
    assert p.returncode != 0


def test_cli_mail_list_and_cat_after_delivery(petrel):
    deliver(petrel, b"Subject: listed\r\n\r\nbody\r\n")
    p = petrel.cli("mail", "list", "alice@example.test")
    uid, size, date, subject = p.stdout.strip().split("\t")
    raw = petrel.message(int(uid))
    assert int(size) == len(raw)
    assert subject == "listed"


def test_cli_unknown_command(admin):
    p = run("-c", admin.conf, "frobnicate")
    assert p.returncode != 0 and "frobnicate" in p.stderr
