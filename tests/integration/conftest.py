"""Integration test fixtures: a real `petrel serve` on free loopback ports.

Every test that uses the `petrel` fixture gets a fresh data directory, a
self-signed certificate (made once per test run), a config file, the domain
example.test with users alice@ and bob@ (password "secret-<name>"), and a
running server whose ports are read from its `event=listen` log lines.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PETREL_BIN = os.environ.get("PETREL_BIN", os.path.join(ROOT, "build", "petrel"))
USERS = {"alice@example.test": "secret-alice", "bob@example.test": "secret-bob"}


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


class Petrel:
    """A petrel server process and helpers to drive its CLI."""

    def __init__(self, tmp, tls_files, extra=None, listen=None):
        self.dir = tmp
        self.data = os.path.join(tmp, "data")
        self.conf = os.path.join(tmp, "petrel.conf")
        self.cert, self.key = tls_files
        self.proc = None
        self.log_lines = []
        self.ports = {}
        self.extra = extra or {}
        self.listen = listen or {"smtp": "127.0.0.1:0"}
        self.write_config()

    def write_config(self):
        sections = {
            "server": {"hostname": "mx.example.test", "data_dir": self.data, "workers": "2"},
            "tls": {"cert": self.cert, "key": self.key},
            "listen": dict(self.listen),
            "smtp": {"postmaster": "alice@example.test"},
            "limits": {},
        }
        for sec, kv in self.extra.items():
            sections.setdefault(sec, {}).update(kv)
        with open(self.conf, "w") as f:
            for sec, kv in sections.items():
                f.write(f"[{sec}]\n")
                for k, v in kv.items():
                    f.write(f"{k} = {v}\n")
                f.write("\n")

    def cli(self, *args, input=None, check=True):
        p = subprocess.run([PETREL_BIN, "-c", self.conf, *args], input=input,
                           capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"petrel {' '.join(args)} -> {p.returncode}: {p.stderr}")
        return p

    def cli_bytes(self, *args):
        p = subprocess.run([PETREL_BIN, "-c", self.conf, *args], capture_output=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def setup_users(self):
        self.cli("domain", "add", "example.test")
        for addr, pw in USERS.items():
            self.cli("user", "add", addr, input=pw + "\n")

    def start(self, timeout=15):
        self.log_lines = []
        self.ports = {}
        self.proc = subprocess.Popen([PETREL_BIN, "-c", self.conf, "serve"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, errors="replace")
        want = len([1 for v in self.listen.values() for _ in v.split(",")])
        started = threading.Event()

        def reader():
            for line in self.proc.stderr:
                self.log_lines.append(line.rstrip("\n"))
                m = re.search(r"event=listen proto=(\S+) addr=(\S+):(\d+)", line)
                if m:
                    self.ports.setdefault(m.group(1), int(m.group(3)))
                if "event=started" in line:
                    started.set()

        self.reader = threading.Thread(target=reader, daemon=True)
        self.reader.start()
        if not started.wait(timeout):
            self.proc.kill()
            raise AssertionError("petrel did not start:\n" + "\n".join(self.log_lines))
        assert len(self.ports) >= 1 and want >= 1
        return self

    @property
    def smtp_port(self):
        return self.ports["smtp"]

    def stop(self, sig=signal.SIGTERM, timeout=12):
        """Stop the server; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(5)
        self.proc = None
        return rc

    def log(self):
        return "\n".join(self.log_lines)

    def messages(self, addr="alice@example.test", mailbox="INBOX"):
        """[(uid, size, date, subject)] from `petrel mail list`."""
        out = self.cli("mail", "list", addr, mailbox).stdout
        rows = []
        for line in out.splitlines():
            uid, size, date, subject = line.split("\t", 3)
            rows.append((int(uid), int(size), date, subject))
        return rows

    def message(self, uid, addr="alice@example.test", mailbox="INBOX"):
        return self.cli_bytes("mail", "cat", addr, mailbox, str(uid))


@pytest.fixture
def petrel_factory(tmp_path, tls_files):
    """Build a Petrel with custom config; started by the test."""
    made = []

    def make(extra=None, listen=None, users=True, start=True):
        d = tempfile.mkdtemp(dir=tmp_path)
        p = Petrel(d, tls_files, extra=extra, listen=listen)
        if users:
            p.setup_users()
        if start:
            p.start()
        made.append(p)
        return p

    yield make
    for p in made:
        rc = p.stop()
        # A clean SIGTERM shutdown exits 0; sanitizer reports make it non-zero.
        if rc not in (None, 0, -9):
            raise AssertionError(f"petrel exited {rc}:\n{p.log()[-4000:]}")


@pytest.fixture
def petrel(petrel_factory):
    """A started server with the default config and users."""
    return petrel_factory()
