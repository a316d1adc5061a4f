"""Helpers for the POP3 integration tests (test_pop3_*.py).

RawPop3 speaks POP3 over a plain or TLS socket and hands back the exact
octets, so that tests can check stuffing, pipelining and bad input; the
client-library tests use poplib, curl, fetchmail, getmail and PHP instead.
"""
import hashlib
import re
import smtplib
import socket
import ssl
import time

ALICE = ("alice@example.test", "secret-alice")
BOB = ("bob@example.test", "secret-bob")
LISTEN = {"pop3": "127.0.0.1:0", "pop3s": "127.0.0.1:0", "imap": "127.0.0.1:0",
          "smtp": "127.0.0.1:0"}


def listen_port(p, proto, tls):
    """The port of a listener from the server's event=listen lines: pop3 and
    pop3s both log proto=pop3, told apart by tls=starttls|implicit."""
    want = "implicit" if tls else "starttls"
    for line in p.log_lines:
        m = re.search(r"event=listen proto=(\S+) addr=\S+:(\d+) tls=(\w+)", line)
        if m and m.group(1) == proto and m.group(3) == want:
            return int(m.group(2))
    raise AssertionError(f"no {proto} listener with tls={want}:\n{p.log()}")


def pop3_port(p):
    return listen_port(p, "pop3", False)


def pop3s_port(p):
    return listen_port(p, "pop3", True)


def imap_port(p):
    return listen_port(p, "imap", False)


def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def crlf(text):
    if isinstance(text, str):
        text = text.encode()
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def make_message(subject, body="Hello.\n", sender="sender@remote.example",
                 to="alice@example.test"):
    return crlf(f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
                f"Message-ID: <{subject.replace(' ', '-')}@remote.example>\n\n{body}")


def deliver(p, msg, rcpt="alice@example.test", sender="sender@remote.example"):
    """Deliver one message over SMTP; returns once the server said 250."""
    with smtplib.SMTP("127.0.0.1", p.smtp_port, timeout=30) as s:
        s.sendmail(sender, [rcpt], msg)


def stored(p, addr="alice@example.test"):
    """[(uid, size)] of the INBOX as the CLI sees it (the database)."""
    return [(uid, size) for uid, size, _d, _s in p.messages(addr)]


def apop_digest(greeting, secret):
    """RFC 1939 7: MD5 of the greeting's timestamp and the secret."""
    if isinstance(greeting, bytes):
        greeting = greeting.decode()
    m = re.search(r"<[^>]*>", greeting)
    assert m, greeting
    return hashlib.md5((m.group(0) + secret).encode()).hexdigest()


class RawPop3:
    """A minimal POP3 client on raw bytes, with its own buffer so that reads
    can time out without losing data."""

    def __init__(self, port, tls=False, timeout=30, host="127.0.0.1", rcvbuf=None):
        if rcvbuf is None:
            sock = socket.create_connection((host, port), timeout=timeout)
        else:
            # set before connecting: it bounds the window the server sees
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((host, port))
        if tls:
            sock = client_tls_context().wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.readline()

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return False
        self.buf += chunk
        return True

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self, timeout=None):
        """One line with its CRLF; b"" at EOF."""
        while b"\n" not in self.buf:
            if not self._fill(timeout):
                out, self.buf = self.buf, b""
                return out
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def cmd(self, line):
        """Send a command, return its status line (without CRLF)."""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.readline().rstrip(b"\r\n")

    def multiline(self):
        """The body of a multi-line response, raw (still stuffed), up to and
        without the terminating ".\\r\\n"."""
        data = bytearray(self.buf)
        self.buf = b""
        start = 0
        while True:
            if data.startswith(b".\r\n"):
                self.buf = bytes(data[3:])
                return b""
            i = data.find(b"\r\n.\r\n", start)
            if i >= 0:
                self.buf = bytes(data[i + 5:])
                return bytes(data[:i + 2])
            start = max(0, len(data) - 4)
            if not self._fill():
                raise AssertionError(f"EOF inside a multi-line response: {bytes(data[-200:])!r}")
            data += self.buf
            self.buf = b""

    def login(self, user=ALICE[0], password=ALICE[1]):
        r = self.cmd(f"USER {user}")
        assert r.startswith(b"+OK"), r
        r = self.cmd(f"PASS {password}")
        assert r.startswith(b"+OK"), r
        return r

    def closed(self, timeout=10):
        """True once the server has closed the connection (EOF)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if not self._fill(timeout=max(0.1, deadline - time.time())):
                    return True
            except socket.timeout:
                return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def unstuff(raw):
    """Undo RFC 1939 byte-stuffing of a multi-line body (a line starts after
    every LF)."""
    return b"\n".join(line[1:] if line.startswith(b".") else line
                      for line in raw.split(b"\n"))
