"""A small raw-socket SMTP client for the integration tests.

Client libraries (smtplib, swaks, curl) hide the bytes on the wire: they
dot-stuff, fix line endings, wait for replies before sending the next
command. The tests that check framing, pipelining and smuggling need to
control every byte, so they use this instead.

    c = SMTPConn(petrel.smtp_port)       # reads the 220 greeting
    c.ehlo()                             # -> Reply
    r = c.cmd("MAIL FROM:<a@remote.example>")
    assert r.code == 250
    c.send(b"NOOP\\r\\nNOOP\\r\\n")         # raw bytes, one write
    r1, r2 = c.reply(), c.reply()
"""
import re
import socket
import ssl
import time

DEFAULT_TIMEOUT = 10.0
REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*)$", re.S)


class ReplyError(AssertionError):
    pass


class Reply:
    """One (possibly multi-line) SMTP reply: code, text lines, raw bytes."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines  # text after "NNN-" / "NNN ", one per line (str)
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        """The RFC 3463 enhanced status code of the first line ("5.5.1"), or ""."""
        m = re.match(r"(\d\.\d{1,3}\.\d{1,3})(?: |$)", self.lines[0])
        return m.group(1) if m else ""

    def __repr__(self):
        return f"Reply({self.code}, {self.lines!r})"

    def __str__(self):
        return self.raw.decode("utf-8", "replace").rstrip("\r\n")


class SMTPConn:
    """A raw SMTP connection with a read buffer. Every read has a timeout."""

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, greeting=True):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.greeting = None
        if greeting:  # greeting=False: the caller reads (and checks) it
            self.greeting = self.reply()
            if self.greeting.code != 220:
                self.close()
                raise ReplyError(f"greeting: {self.greeting}")

    # ---------------------------------------------------------------- I/O
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        """Read more bytes into the buffer; b'' at EOF."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            chunk = self.sock.recv(65536)
        finally:
            self.sock.settimeout(self.timeout)
        self.buf += chunk
        return chunk

    def readline(self, timeout=None):
        """One line including its CRLF. Raises on EOF or timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"no full line; have {self.buf[:200]!r}")
            if not self._fill(left):
                raise ReplyError(f"connection closed; partial {self.buf[:200]!r}")
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def reply(self, timeout=None):
        """Read one complete reply (all continuation lines)."""
        raw = b""
        lines = []
        code = None
        while True:
            line = self.readline(timeout)
            raw += line
            m = REPLY_LINE.match(line[:-2])
            if not m:
                raise ReplyError(f"malformed reply line {line!r} (after {raw!r})")
            c = int(m.group(1))
            if code is not None and c != code:
                raise ReplyError(f"code changed inside a multi-line reply: {raw!r}")
            code = c
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(code, lines, raw)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def expect(self, line, code, enhanced=None):
        r = self.cmd(line)
        assert r.code == code, f"{line!r}: expected {code}, got {r}"
        if enhanced is not None:
            assert r.enhanced == enhanced, f"{line!r}: expected {enhanced}, got {r}"
        return r

    def nothing_pending(self, wait=0.2):
        """True when the server sent nothing more within `wait` seconds."""
        if self.buf:
            return False
        try:
            chunk = self._fill(wait)
        except (socket.timeout, TimeoutError):
            return True
        return False if chunk else True

    def wait_closed(self, timeout=None):
        """Read until EOF; returns the bytes received before it. Raises on
        timeout (the server kept the connection open)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open; received {self.buf[:300]!r}")
            try:
                chunk = self._fill(left)
            except (socket.timeout, TimeoutError):
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                break
            if not chunk:
                break
        data, self.buf = self.buf, b""
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------- commands
    def ehlo(self, name="client.example"):
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, r
        return r

    def starttls(self, context=None, server_hostname=None):
        """STARTTLS and the handshake; returns the 220 reply."""
        r = self.cmd("STARTTLS")
        assert r.code == 220, r
        self.tls_handshake(context, server_hostname)
        return r

    def tls_handshake(self, context=None, server_hostname=None):
        assert self.buf == b"", f"plaintext left before the handshake: {self.buf!r}"
        self.sock = (context or client_tls_context()).wrap_socket(
            self.sock, server_hostname=server_hostname)
        self.sock.settimeout(self.timeout)

    def mail_transaction(self, mail_from, rcpts, content, mail_params="", check=True):
        """MAIL, RCPTs, DATA with `content` (bytes, dot-stuffed by us, CRLF
        line endings expected) and the final dot. Returns the final reply."""
        r = self.cmd(f"MAIL FROM:<{mail_from}>{(' ' + mail_params) if mail_params else ''}")
        assert r.code == 250, r
        for rc in rcpts:
            r = self.cmd(f"RCPT TO:<{rc}>")
            assert r.code == 250, (rc, r)
        r = self.cmd("DATA")
        assert r.code == 354, r
        self.send(dot_stuff(content) + b".\r\n")
        r = self.reply()
        if check:
            assert r.code == 250, r
        return r


def client_tls_context(minimum=None, maximum=None):
    """A client context that accepts the test's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def dot_stuff(content):
    """RFC 5321 4.5.2 transparency: double a leading period; ensure the
    content ends with CRLF so that the terminator can follow."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    lines = content.split(b"\r\n")
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in lines)


def stored_body(raw):
    """What follows the trace headers the server prepends (Return-Path and
    Received), i.e. the message as the client sent it."""
    assert raw.startswith(b"Return-Path: <"), raw[:200]
    # Received: ...\r\n\t...;\r\n\t<date>\r\n  -- continuation lines start with TAB
    i = raw.index(b"\r\nReceived: ") + 2
    j = raw.index(b"\r\n", i)
    while raw[j + 2:j + 3] in (b"\t", b" "):
        j = raw.index(b"\r\n", j + 2)
    return raw[j + 2:]


def received_header(raw):
    """The unfolded Received header the server added."""
    i = raw.index(b"\r\nReceived: ") + 2
    j = raw.index(b"\r\n", i)
    while raw[j + 2:j + 3] in (b"\t", b" "):
        j = raw.index(b"\r\n", j + 2)
    return re.sub(rb"\r\n[ \t]+", b" ", raw[i:j]).decode("utf-8", "replace")


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def deliver(petrel, content, rcpts=("alice@example.test",), mail_from="sender@remote.example"):
    """Send one message over a raw connection; returns the 250 reply."""
    with SMTPConn(petrel.smtp_port) as c:
        c.ehlo()
        r = c.mail_transaction(mail_from, rcpts, content)
        c.cmd("QUIT")
        return r


def inbox(petrel, addr="alice@example.test"):
    """Raw messages of addr's INBOX, in UID order."""
    return [petrel.message(m[0], addr) for m in petrel.messages(addr)]
