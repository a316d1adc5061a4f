"""Helpers for the IMAP integration tests (test_imap_*.py).

RawImap speaks IMAP over a plain or TLS socket and hands back responses as
raw bytes, so that tests can assert on the exact octets the server sends.
"""
import re
import smtplib
import socket
import ssl
import time

CRLF = b"\r\n"
ALICE = ("alice@example.test", "secret-alice")
BOB = ("bob@example.test", "secret-bob")
LISTEN = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0"}


def listen_ports(p, implicit_tls):
    """Ports of the IMAP listeners with implicit TLS (imaps) or without, from
    the server's event=listen log lines (both log proto=imap; tls=implicit
    or tls=starttls/no)."""
    out = []
    for line in p.log_lines:
        m = re.search(r"event=listen proto=imap addr=\S+:(\d+) tls=(\w+)", line)
        if m and (m.group(2) == "implicit") == implicit_tls:
            out.append(int(m.group(1)))
    return out


def imaps_port(p):
    ports = listen_ports(p, True)
    assert ports, p.log()
    return ports[0]


def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawImap:
    """A minimal IMAP client working on raw bytes, with its own buffer so
    that reads can time out without losing data."""

    def __init__(self, port, tls=False, timeout=30, greeting=True):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            sock = client_tls_context().wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.timeout = timeout
        self.buf = b""
        self.n = 0
        self.greeting = self.readline() if greeting else None

    # -- low level
    def _fill(self, timeout=None):
        """Reads more into the buffer; False at EOF. socket.timeout propagates."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return False
        self.buf += chunk
        return True

    def sendraw(self, data):
        self.sock.sendall(data)

    def readline(self, timeout=None):
        """One line with its CRLF; b"" at EOF (a partial line is returned)."""
        while b"\n" not in self.buf:
            if not self._fill(timeout):
                out, self.buf = self.buf, b""
                return out
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read(self, n, timeout=None):
        while len(self.buf) < n:
            if not self._fill(timeout):
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, timeout=None):
        """One response: a line and the literals it announces."""
        out = b""
        while True:
            line = self.readline(timeout)
            if not line.endswith(b"\n"):
                raise EOFError(out + line)
            out += line
            m = re.search(rb"~?\{(\d+)\}\r\n$", line)
            if not m:
                return out
            out += self.read(int(m.group(1)), timeout)

    def tag(self):
        self.n += 1
        return b"t%d" % self.n

    def send(self, text):
        tag = self.tag()
        self.sock.sendall(tag + b" " + text + CRLF)
        return tag

    def wait(self, tag, timeout=None):
        untagged = []
        while True:
            r = self.response(timeout)
            if r.startswith(tag + b" "):
                return untagged, r
            untagged.append(r)

    def cmd(self, text):
        """(untagged responses, tagged line)."""
        return self.wait(self.send(text))

    def ok(self, text):
        untagged, tagged = self.cmd(text)
        assert tagged.split(b" ", 2)[1] == b"OK", (text, untagged, tagged)
        return untagged

    def login(self, user=ALICE):
        self.ok(b"LOGIN %s %s" % (user[0].encode(), user[1].encode()))
        return self

    def read_for(self, seconds):
        """Everything that arrives within `seconds` (plus what is buffered)."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                if not self._fill(left):
                    break
            except (socket.timeout, TimeoutError):
                break
        out, self.buf = self.buf, b""
        return out

    def wait_for(self, pattern, seconds):
        """Reads until the buffer matches `pattern` (bytes regex) or time is up;
        returns (match or None, elapsed seconds). Matched data stays buffered."""
        t0 = time.monotonic()
        end = t0 + seconds
        while True:
            m = re.search(pattern, self.buf)
            if m:
                return m, time.monotonic() - t0
            left = end - time.monotonic()
            if left <= 0:
                return None, time.monotonic() - t0
            try:
                if not self._fill(left):
                    return None, time.monotonic() - t0
            except (socket.timeout, TimeoutError):
                return None, time.monotonic() - t0

    def read_until_closed(self, timeout=5):
        """Everything until the server closes; fails if it does not in time."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("connection still open; got %r" % self.buf)
            try:
                if not self._fill(left):
                    break
            except (socket.timeout, TimeoutError):
                raise AssertionError("connection still open; got %r" % self.buf)
            except ssl.SSLError:
                break
        out, self.buf = self.buf, b""
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def lit(data):
    return b"{%d}\r\n" % len(data) + data


def msg(subject, body="body", sender="carol@example.test", to="alice@example.test",
        extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s\r\n"
            % (sender, to, subject, extra, body)).encode()


def append(c, mailbox, message, flags=b"", date=b""):
    """APPEND with a non-synchronising literal; returns the tagged line."""
    parts = [b"APPEND", mailbox]
    if flags:
        parts.append(flags)
    if date:
        parts.append(b'"' + date + b'"')
    untagged, tagged = c.cmd(b" ".join(parts) + b" {%d+}\r\n" % len(message) + message)
    return tagged


def smtp_deliver(p, rcpt="alice@example.test", subject="via smtp", count=1):
    s = smtplib.SMTP("127.0.0.1", p.smtp_port, timeout=30)
    for i in range(count):
        subj = subject if count == 1 else "%s %d" % (subject, i)
        s.sendmail("sender@example.org", [rcpt], msg(subj, sender="sender@example.org", to=rcpt))
    s.quit()


def appenduid(tagged):
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", tagged)
    assert m, tagged
    return int(m.group(1)), int(m.group(2))


def uid_list(c):
    """UIDs of the selected mailbox, in sequence order (UID SEARCH ALL)."""
    untagged = c.ok(b"UID SEARCH ALL")
    res = [r for r in untagged if r.startswith(b"* SEARCH")]
    assert len(res) == 1, untagged
    return [int(x) for x in res[0][len(b"* SEARCH"):].split()]


def noop_until(c, pattern, timeout=3):
    """NOOP until an untagged response matches pattern (bytes regex): a
    change committed elsewhere reaches a session asynchronously (within
    milliseconds). Returns all untagged responses seen."""
    seen = []
    end = time.monotonic() + timeout
    while True:
        seen += c.ok(b"NOOP")
        if any(re.search(pattern, r) for r in seen):
            return seen
        if time.monotonic() > end:
            raise AssertionError("no %r after NOOPs: %r" % (pattern, seen))
        time.sleep(0.05)
