"""IMAP FETCH and SEARCH (RFC 3501 6.4.4, 6.4.5, 7.4.2; RFC 3516 BINARY).

A few crafted messages (multipart with a base64 attachment and an RFC 2047
subject, a forwarded message/rfc822, a plain SMTP delivery, an unknown
transfer encoding) are put in INBOX; every FETCH item and SEARCH key is then
checked against the exact response. UIDs are made to differ from message
numbers (a first message is expunged) so that UID forms are told apart.
"""
import re
import smtplib
import socket
import time

import pytest

LISTEN = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0"}
CRLF = b"\r\n"


def crlf(text):
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


M1 = crlf(b"""From: Alice Example <alice@example.test>
To: Bob <bob@example.test>
Cc: Carol <carol@example.test>
Bcc: Dave <dave@example.test>
Subject: =?utf-8?q?Caf=C3=A9?= menu
Date: Mon, 7 Feb 1994 21:52:25 -0800
Message-ID: <m1@example.test>
X-Priority: urgent-blue
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BB"

This is a preamble.
--BB
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello w=C3=B6rld, the na=C3=AFve body.
--BB
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="a.bin"

AAECAwBhYmM=
--BB--
""")

INNER = crlf(b"""From: Frank <frank@example.test>
Subject: quarterly report
Date: 1 Jan 2020 00:00:00 +0000

inner body text
""")

M2 = crlf(b"""From: Erin <erin@example.test>
To: alice@example.test
Subject: Fwd: report
Date: Sat, 10 Feb 2024 23:30:00 +0100
Message-ID: <m2@example.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=X

--X
Content-Type: text/plain

See attached.
--X
Content-Type: message/rfc822

""") + INNER + b"--X--\r\n"

M3 = crlf(b"""From: smtp-sender@example.org
To: alice@example.test
Subject: plain one

plain smtp body
""")

M4 = crlf(b"""From: Gina <gina@example.test>
Subject: odd encoding
Date: Fri, 1 Mar 2024 09:00:00 +0000
Content-Type: application/x-thing
Content-Transfer-Encoding: x-unheard-of

=begin 0644 thing
""")

RECENT_FLAG_RE = re.compile(rb"\* \d+ FETCH \(UID \d+ FLAGS \([^)]*\)\)\r\n$")


class Imap:
    """A minimal IMAP client that returns responses as raw bytes."""

    def __init__(self, port, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.f = self.sock.makefile("rb")
        self.n = 0
        assert self.f.readline().startswith(b"* OK")

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
        """(untagged responses, tagged line)."""
        return self.wait(self.send(text))

    def ok(self, text):
        untagged, tagged = self.cmd(text)
        assert b" OK " in tagged, (text, untagged, tagged)
        return untagged

    def fetch(self, text):
        """Untagged responses of an OK command, without flag updates that
        another command caused (the mailbox sync after a \\Seen change)."""
        return [r for r in self.ok(text) if not RECENT_FLAG_RE.match(r)]

    def close(self):
        self.sock.close()


def append(c, mailbox, flags, date, msg):
    untagged, tagged = c.cmd(b"APPEND %s %s \"%s\" {%d+}\r\n" % (mailbox, flags, date, len(msg))
                             + msg)
    assert b"OK" in tagged, tagged


@pytest.fixture
def mail(petrel_factory):
    """Server with INBOX holding M1..M4 as messages 1..4 (UIDs 2..5)."""
    p = petrel_factory(listen=LISTEN)
    c = Imap(p.ports["imap"])
    c.ok(b"LOGIN alice@example.test secret-alice")
    append(c, b"INBOX", b"(\\Deleted)", b"01-Jan-2024 00:00:00 +0000", b"Subject: gone\r\n\r\nx\r\n")
    c.ok(b"SELECT INBOX")
    c.ok(b"EXPUNGE")
    c.ok(b"UNSELECT")
    append(c, b"INBOX", b"(\\Flagged $Work)", b"03-Jan-2024 10:00:00 +0000", M1)
    append(c, b"INBOX", b"(\\Answered \\Draft)", b"11-Feb-2024 00:30:00 +0100", M2)
    s = smtplib.SMTP("127.0.0.1", p.smtp_port, timeout=30)
    s.sendmail("smtp-sender@example.org", ["alice@example.test"], M3)
    s.quit()
    append(c, b"INBOX", b"(\\Deleted \\Seen)", b"01-Mar-2024 12:00:00 +0000", M4)
    untagged = c.ok(b"SELECT INBOX")
    assert b"* 4 EXISTS\r\n" in untagged
    c.p = p
    yield c
    c.close()


def lit(data):
    return b"{%d}\r\n" % len(data) + data


def header_of(msg):
    return msg[:msg.index(b"\r\n\r\n") + 4]


def text_of(msg):
    return msg[msg.index(b"\r\n\r\n") + 4:]


M1_QP = b"Hello w=C3=B6rld, the na=C3=AFve body."
M1_ENVELOPE = (b'("Mon, 7 Feb 1994 21:52:25 -0800" "=?utf-8?q?Caf=C3=A9?= menu" '
               b'(("Alice Example" NIL "alice" "example.test")) '
               b'(("Alice Example" NIL "alice" "example.test")) '
               b'(("Alice Example" NIL "alice" "example.test")) '
               b'(("Bob" NIL "bob" "example.test")) (("Carol" NIL "carol" "example.test")) '
               b'(("Dave" NIL "dave" "example.test")) NIL "<m1@example.test>")')
M1_BODY = (b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" %d 1)'
           b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 12) "MIXED")' % len(M1_QP))
M1_BODYSTRUCTURE = (b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" %d 1 '
                    b'NIL NIL NIL NIL)("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 12 NIL '
                    b'("attachment" ("FILENAME" "a.bin")) NIL NIL) "MIXED" ("BOUNDARY" "BB") '
                    b'NIL NIL NIL)' % len(M1_QP))
M1_FLAGS = b"(\\Flagged \\Recent $Work)"


# ------------------------------------------------------------------ FETCH


def test_fetch_simple_items(mail):
    assert mail.fetch(b"FETCH 1 (FLAGS UID RFC822.SIZE INTERNALDATE)") == [
        b'* 1 FETCH (FLAGS %s UID 2 RFC822.SIZE %d INTERNALDATE " 3-Jan-2024 10:00:00 +0000")\r\n'
        % (M1_FLAGS, len(M1))]
    # the instant is kept; shown in UTC
    assert mail.fetch(b"FETCH 2 INTERNALDATE") == [
        b'* 2 FETCH (INTERNALDATE "10-Feb-2024 23:30:00 +0000")\r\n']
    assert mail.fetch(b"FETCH 1 ENVELOPE") == [b"* 1 FETCH (ENVELOPE %s)\r\n" % M1_ENVELOPE]
    assert mail.fetch(b"FETCH 1 BODY") == [b"* 1 FETCH (BODY %s)\r\n" % M1_BODY]
    assert mail.fetch(b"FETCH 1 BODYSTRUCTURE") == [
        b"* 1 FETCH (BODYSTRUCTURE %s)\r\n" % M1_BODYSTRUCTURE]
    assert mail.fetch(b"FETCH 2,4 (FLAGS)") == [
        b"* 2 FETCH (FLAGS (\\Answered \\Draft \\Recent))\r\n",
        b"* 4 FETCH (FLAGS (\\Deleted \\Seen \\Recent))\r\n"]


def test_fetch_macros(mail):
    fast = b'FLAGS %s INTERNALDATE " 3-Jan-2024 10:00:00 +0000" RFC822.SIZE %d' % (M1_FLAGS,
                                                                                len(M1))
    assert mail.fetch(b"FETCH 1 FAST") == [b"* 1 FETCH (%s)\r\n" % fast]
    assert mail.fetch(b"FETCH 1 ALL") == [b"* 1 FETCH (%s ENVELOPE %s)\r\n" % (fast, M1_ENVELOPE)]
    assert mail.fetch(b"FETCH 1 full") == [
        b"* 1 FETCH (%s ENVELOPE %s BODY %s)\r\n" % (fast, M1_ENVELOPE, M1_BODY)]


def test_fetch_sections(mail):
    hdr, text = header_of(M1), text_of(M1)
    cases = [
        (b"BODY.PEEK[]", b"BODY[] " + lit(M1)),
        (b"BODY.PEEK[HEADER]", b"BODY[HEADER] " + lit(hdr)),
        (b"BODY.PEEK[TEXT]", b"BODY[TEXT] " + lit(text)),
        (b"RFC822.HEADER", b"RFC822.HEADER " + lit(hdr)),
        (b"BODY.PEEK[1]", b"BODY[1] " + lit(M1_QP)),
        (b"BODY.PEEK[1.MIME]", b"BODY[1.MIME] " + lit(
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")),
        (b"BODY.PEEK[2]", b"BODY[2] " + lit(b"AAECAwBhYmM=")),
        (b'BODY.PEEK[HEADER.FIELDS (From "To")]', b'BODY[HEADER.FIELDS (From "To")] ' + lit(
            b"From: Alice Example <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n\r\n")),
        (b"BODY.PEEK[HEADER.FIELDS.NOT (FROM TO CC BCC SUBJECT DATE MIME-VERSION CONTENT-TYPE)]",
         b"BODY[HEADER.FIELDS.NOT (FROM TO CC BCC SUBJECT DATE MIME-VERSION CONTENT-TYPE)] " + lit(
             b"Message-ID: <m1@example.test>\r\nX-Priority: urgent-blue\r\n\r\n")),
        (b"BODY.PEEK[HEADER.FIELDS (X-Nothing)]", b"BODY[HEADER.FIELDS (X-Nothing)] " + lit(
            b"\r\n")),
        # partial: the origin only is echoed
        (b"BODY.PEEK[]<0.20>", b"BODY[]<0> " + lit(M1[:20])),
        (b"BODY.PEEK[TEXT]<5.10>", b"BODY[TEXT]<5> " + lit(text[5:15])),
        (b"BODY.PEEK[1]<6.1000>", b"BODY[1]<6> " + lit(M1_QP[6:])),
        (b"BODY.PEEK[]<100000.10>", b'BODY[]<100000> ""'),
        # missing parts, HEADER/TEXT of a part that is no message/rfc822
        (b"BODY.PEEK[3]", b'BODY[3] ""'),
        (b"BODY.PEEK[1.2]", b'BODY[1.2] ""'),
        (b"BODY.PEEK[1.TEXT]", b'BODY[1.TEXT] ""'),
    ]
    for item, want in cases:
        assert mail.fetch(b"FETCH 1 (" + item + b")") == [b"* 1 FETCH (" + want + b")\r\n"], item
    # several sections in one response, in the order asked
    assert mail.fetch(b"FETCH 1 (UID BODY.PEEK[2] RFC822.SIZE BODY.PEEK[1])") == [
        b"* 1 FETCH (UID 2 BODY[2] %s RFC822.SIZE %d BODY[1] %s)\r\n"
        % (lit(b"AAECAwBhYmM="), len(M1), lit(M1_QP))]
    # nothing above set \Seen
    assert mail.fetch(b"FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS %s)\r\n" % M1_FLAGS]


def test_fetch_message_rfc822_parts(mail):
    inner_hdr = header_of(INNER)
    cases = [
        (b"BODY.PEEK[1]", b"BODY[1] " + lit(b"See attached.")),
        (b"BODY.PEEK[2]", b"BODY[2] " + lit(INNER[:-2])),
        (b"BODY.PEEK[2.HEADER]", b"BODY[2.HEADER] " + lit(inner_hdr)),
        (b"BODY.PEEK[2.TEXT]", b"BODY[2.TEXT] " + lit(b"inner body text")),
        (b"BODY.PEEK[2.1]", b"BODY[2.1] " + lit(b"inner body text")),
        (b"BODY.PEEK[2.MIME]", b"BODY[2.MIME] " + lit(b"Content-Type: message/rfc822\r\n\r\n")),
        (b"BODY.PEEK[2.HEADER.FIELDS (subject)]",
         b"BODY[2.HEADER.FIELDS (subject)] " + lit(b"Subject: quarterly report\r\n\r\n")),
    ]
    for item, want in cases:
        assert mail.fetch(b"FETCH 2 (" + item + b")") == [b"* 2 FETCH (" + want + b")\r\n"], item
    bs = mail.fetch(b"FETCH 2 BODYSTRUCTURE")
    assert bs[0].startswith(b'* 2 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ')
    assert (b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" %d ("1 Jan 2020 00:00:00 +0000" '
            b'"quarterly report"' % (len(INNER) - 2)) in bs[0]


def test_fetch_smtp_delivered(mail):
    full = mail.fetch(b"FETCH 3 (BODY.PEEK[] RFC822.SIZE)")
    m = re.match(rb"\* 3 FETCH \(BODY\[\] \{(\d+)\}\r\n", full[0])
    assert m, full
    size = int(m.group(1))
    raw = full[0][m.end():m.end() + size]
    assert full[0][m.end() + size:] == b" RFC822.SIZE %d)\r\n" % size
    assert raw.endswith(M3)  # after the trace fields the server added
    assert mail.fetch(b"FETCH 3 (BODY.PEEK[TEXT] BODY.PEEK[1])") == [
        b"* 3 FETCH (BODY[TEXT] %s BODY[1] %s)\r\n" % (lit(b"plain smtp body\r\n"),
                                                       lit(b"plain smtp body\r\n"))]
    assert mail.fetch(b"FETCH 3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])") == [
        b"* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)] %s)\r\n" % lit(b"Subject: plain one\r\n\r\n")]


def test_fetch_binary(mail):
    decoded = "Hello wörld, the naïve body.".encode()
    assert mail.fetch(b"FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])") == [
        b"* 1 FETCH (BINARY[2] ~{8}\r\n\x00\x01\x02\x03\x00abc BINARY.SIZE[2] 8)\r\n"]
    assert mail.fetch(b"FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])") == [
        b"* 1 FETCH (BINARY[1] %s BINARY.SIZE[1] %d)\r\n" % (lit(decoded), len(decoded))]
    assert mail.fetch(b"FETCH 1 (BINARY.PEEK[1]<6.5>)") == [
        b"* 1 FETCH (BINARY[1]<6> %s)\r\n" % lit(decoded[6:11])]
    assert mail.fetch(b"FETCH 1 (BINARY.PEEK[9])") == [b"* 1 FETCH (BINARY[9] NIL)\r\n"]
    assert mail.fetch(b"FETCH 2 (BINARY.PEEK[1])") == [
        b"* 2 FETCH (BINARY[1] %s)\r\n" % lit(b"See attached.")]
    # an encoding the server cannot undo: NO [UNKNOWN-CTE], nothing sent
    untagged, tagged = mail.cmd(b"FETCH 4 (BINARY.PEEK[1])")
    assert untagged == [] and b"NO [UNKNOWN-CTE]" in tagged
    untagged, tagged = mail.cmd(b"FETCH 4 (BINARY.SIZE[1])")
    assert untagged == [] and b"NO [UNKNOWN-CTE]" in tagged
    # the whole request fails before anything is written or \Seen is set
    untagged, tagged = mail.cmd(b"FETCH 1:4 (FLAGS BINARY[1])")
    assert untagged == [] and b"NO [UNKNOWN-CTE]" in tagged
    assert b"\\Seen" not in mail.ok(b"FETCH 1 FLAGS")[0]
    # BODY[] of it is fine
    assert mail.fetch(b"FETCH 4 BODY.PEEK[1]") == [
        b"* 4 FETCH (BODY[1] %s)\r\n" % lit(b"=begin 0644 thing\r\n")]
    # not PEEK: sets \Seen
    assert mail.fetch(b"FETCH 2 (BINARY[1])") == [
        b"* 2 FETCH (BINARY[1] %s FLAGS (\\Answered \\Seen \\Draft \\Recent))\r\n"
        % lit(b"See attached.")]


def test_fetch_sets_seen(mail):
    # BODY[...] (not PEEK): \Seen set first, FLAGS added to the response
    assert mail.fetch(b"FETCH 1 (BODY[1])") == [
        b"* 1 FETCH (BODY[1] %s FLAGS (\\Flagged \\Seen \\Recent $Work))\r\n" % lit(M1_QP)]
    # asked FLAGS show the new value, no second FLAGS
    assert mail.fetch(b"FETCH 2 (FLAGS RFC822.TEXT)") == [
        b"* 2 FETCH (FLAGS (\\Answered \\Seen \\Draft \\Recent) RFC822.TEXT %s)\r\n"
        % lit(text_of(M2))]
    # already \Seen: unchanged, no FLAGS
    assert mail.fetch(b"FETCH 1 (BODY[1])") == [b"* 1 FETCH (BODY[1] %s)\r\n" % lit(M1_QP)]
    # RFC822 = BODY[]
    assert mail.fetch(b"FETCH 3 (RFC822.SIZE)")[0].startswith(b"* 3 FETCH (RFC822.SIZE ")
    r = mail.fetch(b"FETCH 3 RFC822")
    assert r[0].startswith(b"* 3 FETCH (RFC822 {") and r[0].endswith(
        b" FLAGS (\\Seen \\Recent))\r\n")
    assert mail.fetch(b"FETCH 1:4 FLAGS") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent $Work))\r\n",
        b"* 2 FETCH (FLAGS (\\Answered \\Seen \\Draft \\Recent))\r\n",
        b"* 3 FETCH (FLAGS (\\Seen \\Recent))\r\n",
        b"* 4 FETCH (FLAGS (\\Deleted \\Seen \\Recent))\r\n"]
    # the change is stored: another session sees it
    other = Imap(mail.p.ports["imap"])
    other.ok(b"LOGIN alice@example.test secret-alice")
    other.ok(b"SELECT INBOX")
    assert other.fetch(b"FETCH 1:3 FLAGS") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Seen $Work))\r\n",
        b"* 2 FETCH (FLAGS (\\Answered \\Seen \\Draft))\r\n",
        b"* 3 FETCH (FLAGS (\\Seen))\r\n"]
    other.close()


def test_fetch_examine_does_not_set_seen(mail):
    mail.ok(b"EXAMINE INBOX")
    assert mail.fetch(b"FETCH 1 (BODY[1])") == [b"* 1 FETCH (BODY[1] %s)\r\n" % lit(M1_QP)]
    assert mail.fetch(b"FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Flagged $Work))\r\n"]


def test_uid_fetch(mail):
    # UID is always in a UID FETCH response, first when not asked
    assert mail.ok(b"UID FETCH 3 (FLAGS)") == [
        b"* 2 FETCH (UID 3 FLAGS (\\Answered \\Draft \\Recent))\r\n"]
    assert mail.fetch(b"UID FETCH 2:3 (RFC822.SIZE UID)") == [
        b"* 1 FETCH (RFC822.SIZE %d UID 2)\r\n" % len(M1),
        b"* 2 FETCH (RFC822.SIZE %d UID 3)\r\n" % len(M2)]
    assert mail.fetch(b"UID FETCH 4:* UID") == [b"* 3 FETCH (UID 4)\r\n", b"* 4 FETCH (UID 5)\r\n"]
    # UIDs that do not exist: no data, OK
    assert mail.fetch(b"UID FETCH 1,100:200 FLAGS") == []
    # "*" in UID FETCH is the highest UID even beyond the range given
    assert mail.fetch(b"UID FETCH 900:* UID") == [b"* 4 FETCH (UID 5)\r\n"]


def test_fetch_and_expunge_name_only_their_messages(petrel_factory):
    """FETCH reads the messages of its set only, whether they are few and far
    apart or many in a row, and whatever gaps expunges left (RFC 3501 6.4.5,
    6.4.8: UIDs that do not exist are ignored); EXPUNGE and UID EXPUNGE
    (RFC 4315 2.1) remove exactly the \\Deleted messages they cover."""
    p = petrel_factory(listen=LISTEN)
    c = Imap(p.ports["imap"])
    c.ok(b"LOGIN alice@example.test secret-alice")
    for i in range(1, 61):
        flags = b"(\\Seen)" if i % 3 else b"()"
        append(c, b"INBOX", flags, b"01-Jan-2024 00:00:00 +0000",
               b"Subject: m%d\r\n\r\n%s\r\n" % (i, b"x" * i))
    untagged = c.ok(b"SELECT INBOX")
    assert b"* 60 EXISTS\r\n" in untagged
    assert b"* OK [UNSEEN 3] First unseen\r\n" in untagged
    # gaps: uids 10..19 and 41 go
    c.ok(b"UID STORE 10:19,41 +FLAGS.SILENT (\\Deleted)")
    c.ok(b"EXPUNGE")
    untagged = c.ok(b"SELECT INBOX")
    assert b"* 49 EXISTS\r\n" in untagged

    def sizes(text):
        return [tuple(int(x) for x in re.search(rb"UID (\d+) RFC822.SIZE (\d+)", r).groups())
                for r in c.fetch(text)]

    def size_of(uid):
        return len(b"Subject: m%d\r\n\r\n%s\r\n" % (uid, b"x" * uid))

    everything = sizes(b"UID FETCH 1:* (UID RFC822.SIZE)")
    assert [u for u, _ in everything] == [u for u in range(1, 61) if not 10 <= u <= 19 and u != 41]
    assert all(n == size_of(u) for u, n in everything)
    # few, far apart, one of them expunged, one never given
    assert sizes(b"UID FETCH 2,15,33,60,500 (UID RFC822.SIZE)") == [
        (2, size_of(2)), (33, size_of(33)), (60, size_of(60))]
    # many in a row across a gap: only those named
    assert sizes(b"UID FETCH 8,9,18,20,21,22,24 (UID RFC822.SIZE)") == [
        (u, size_of(u)) for u in (8, 9, 20, 21, 22, 24)]
    # by sequence number: 9..12 are uids 9, 20, 21, 22
    assert sizes(b"FETCH 9:12 (UID RFC822.SIZE)") == [(u, size_of(u)) for u in (9, 20, 21, 22)]
    assert sizes(b"FETCH 1,49 (UID RFC822.SIZE)") == [(1, size_of(1)), (60, size_of(60))]

    # \\Deleted set, then taken off one of them again
    c.ok(b"UID STORE 3,25,40,42,60 +FLAGS.SILENT (\\Deleted)")
    c.ok(b"UID STORE 40 -FLAGS.SILENT (\\Deleted)")
    # UID EXPUNGE removes only the \\Deleted ones of its set
    untagged = c.ok(b"UID EXPUNGE 20:42")
    # uid 42 is message 31, uid 25 message 15 (highest first: RFC 3501 7.4.1)
    assert untagged == [b"* 31 EXPUNGE\r\n", b"* 15 EXPUNGE\r\n"]
    assert [u for u, _ in sizes(b"UID FETCH 3,25,40,42,60 (UID RFC822.SIZE)")] == [3, 40, 60]
    untagged = c.ok(b"EXPUNGE")
    assert untagged == [b"* 47 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n"]
    assert c.ok(b"EXPUNGE") == []
    untagged = c.ok(b"SELECT INBOX")
    assert b"* 45 EXISTS\r\n" in untagged
    assert [u for u, _ in sizes(b"UID FETCH 1:* (UID RFC822.SIZE)")] == [
        u for u in range(1, 61) if u not in (3, 25, 41, 42, 60) and not 10 <= u <= 19]
    c.close()


def test_fetch_errors(mail):
    bad = [
        b"FETCH 5 FLAGS",              # beyond EXISTS
        b"FETCH 0 FLAGS",
        b"FETCH 1:9 FLAGS",
        b"FETCH 1 (FLAGS FOO)",        # unknown item: nothing written before BAD
        b"FETCH 1 (FLAGS BODY[FOO])",
        b"FETCH 1 (FLAGS ALL)",        # macros stand alone
        b"FETCH 1 ()",
        b"FETCH 1 BODY[]<0.0>",
        b"FETCH 1 BODY[]<1>",
        b"FETCH 1 BODY[0]",
        b"FETCH 1 BODY[1.]",
        b"FETCH 1 BODY[MIME]",
        b"FETCH 1 BODY[HEADER.FIELDS]",
        b"FETCH 1 BODY[HEADER.FIELDS ()]",
        b"FETCH 1 BINARY[HEADER]",
        b"FETCH 1 BINARY.SIZE[1]<0.5>",
        b"FETCH 1",
        b"FETCH 1 FLAGS UID",
        b"FETCH x FLAGS",
    ]
    for cmd in bad:
        untagged, tagged = mail.cmd(cmd)
        assert untagged == [] and b" BAD " in tagged, (cmd, untagged, tagged)
        mail.ok(b"NOOP")  # stay under max_errors consecutive BADs
    mail.ok(b"CREATE Empty")
    mail.ok(b"SELECT Empty")
    untagged, tagged = mail.cmd(b"FETCH 1:* FLAGS")
    assert b" BAD " in tagged
    assert mail.fetch(b"UID FETCH 1:* FLAGS") == []


def test_fetch_large_streamed(petrel_factory):
    """Output larger than output_high goes out in pieces; a command pipelined
    behind it waits; a client that goes away mid-way does not hurt."""
    p = petrel_factory(listen=LISTEN, extra={"limits": {"output_high": "4096"}})
    c = Imap(p.ports["imap"], rcvbuf=8192)
    c.ok(b"LOGIN alice@example.test secret-alice")
    bodies = []
    for i in range(4):
        body = b"".join(b"line %d of message %d .........................................\r\n"
                        % (j, i) for j in range(5000))
        msg = b"Subject: big %d\r\n\r\n" % i + body
        bodies.append(msg)
        append(c, b"INBOX", b"()", b"01-Jan-2024 00:00:00 +0000", msg)
    c.ok(b"SELECT INBOX")
    t1 = c.send(b"FETCH 1:* (UID BODY[])")
    t2 = c.send(b"NOOP")
    time.sleep(0.3)
    untagged, tagged = c.wait(t1)
    assert b"OK" in tagged
    got = [r for r in untagged if not RECENT_FLAG_RE.match(r)]
    assert got == [b"* %d FETCH (UID %d BODY[] %s FLAGS (\\Seen \\Recent))\r\n"
                   % (i + 1, i + 1, lit(b)) for i, b in enumerate(bodies)]
    untagged, tagged = c.wait(t2)
    assert b"OK" in tagged
    # go away in the middle of a long response (~30 MB: more than the
    # socket buffers hold, so the server is suspended when the client goes)
    items = b" ".join(b"BODY.PEEK[]<%d.400000>" % k for k in range(20))
    c.send(b"FETCH 1:* (" + items + b")")
    c.f.read(50000)
    c.close()
    d = Imap(p.ports["imap"])
    d.ok(b"LOGIN alice@example.test secret-alice")
    d.ok(b"SELECT INBOX")
    assert d.fetch(b"FETCH 4 (BODY.PEEK[]<0.15>)") == [
        b"* 4 FETCH (BODY[]<0> %s)\r\n" % lit(b"Subject: big 3\r")]
    d.ok(b"LOGOUT")


# ----------------------------------------------------------------- SEARCH


def search(c, keys, uid=False):
    untagged, tagged = c.cmd((b"UID SEARCH " if uid else b"SEARCH ") + keys)
    assert b" OK " in tagged, (keys, untagged, tagged)
    res = [r for r in untagged if r.startswith(b"* SEARCH")]
    assert len(res) == 1, untagged
    return res[0][len(b"* SEARCH"):].split()


SEARCH_CASES = [
    (b"ALL", b"1 2 3 4"),
    (b"ANSWERED", b"2"), (b"UNANSWERED", b"1 3 4"),
    (b"DELETED", b"4"), (b"UNDELETED", b"1 2 3"),
    (b"DRAFT", b"2"), (b"UNDRAFT", b"1 3 4"),
    (b"FLAGGED", b"1"), (b"UNFLAGGED", b"2 3 4"),
    (b"SEEN", b"4"), (b"UNSEEN", b"1 2 3"),
    (b"KEYWORD $Work", b"1"), (b"KEYWORD $work", b"1"), (b"KEYWORD $Other", b""),
    (b"UNKEYWORD $Work", b"2 3 4"),
    (b"RECENT", b"1 2 3 4"), (b"NEW", b"1 2 3"), (b"OLD", b""),
    (b"BEFORE 10-Feb-2024", b"1"), (b"ON 10-Feb-2024", b"2"), (b"ON 11-Feb-2024", b""),
    (b"SINCE 11-Feb-2024", b"3 4"), (b"BEFORE 1-Mar-2024", b"1 2"),
    (b'SINCE "1-Mar-2024"', b"3 4"),
    # the Date: header as written, time and zone disregarded
    (b"SENTON 7-Feb-1994", b"1"), (b"SENTON 8-Feb-1994", b""),
    (b"SENTBEFORE 8-Feb-1994", b"1"), (b"SENTON 10-Feb-2024", b"2"),
    (b"SENTSINCE 1-Mar-2024", b"3 4"), (b"SENTBEFORE 1-Mar-2024", b"1 2"),
    (b"FROM alice", b"1"), (b'FROM "Alice Example"', b"1"), (b"FROM ERIN", b"2"),
    (b"FROM smtp-sender", b"3"), (b"FROM nobody", b""),
    (b"TO bob", b"1"), (b"TO alice@example.test", b"2 3"),
    (b"CC carol", b"1"), (b"CC bob", b""), (b"BCC dave", b"1"),
    (b"SUBJECT report", b"2"), (b"SUBJECT menu", b"1"), (b"SUBJECT quarterly", b""),
    (b"HEADER X-Priority blue", b"1"), (b'HEADER x-priority ""', b"1"),
    (b"HEADER Message-ID m2@", b"2"), (b'HEADER X-Nothing ""', b""),
    (b"HEADER Subject caf", b"1"),
    (b"BODY hello", b"1"), (b"BODY NAIVE", b""), (b"BODY AAECAw", b""),
    (b'BODY "inner body"', b"2"), (b'BODY "plain smtp"', b"3"),
    (b"TEXT urgent-blue", b"1"), (b"TEXT quarterly", b"2"), (b"TEXT frank", b"2"),
    (b'TEXT "see attached"', b"2"), (b"TEXT nothing-like-this", b""),
    (b"LARGER 10000", b""), (b"SMALLER 1", b""),
    (b"UID 3:4", b"2 3"), (b"UID 4:*", b"3 4"), (b"UID 1", b""),
    (b"2,4", b"2 4"), (b"*", b"4"), (b"3:*", b"3 4"), (b"2:1", b"1 2"), (b"7", b""),
    (b"NOT SEEN", b"1 2 3"), (b"NOT NOT SEEN", b"4"),
    (b"OR FLAGGED DRAFT", b"1 2"), (b"OR (FLAGGED) (OR SEEN 3)", b"1 3 4"),
    (b"(FLAGGED SINCE 1-Jan-2024)", b"1"), (b"FLAGGED SEEN", b""),
    (b"UNSEEN NOT (FROM alice) BODY attached", b"2"),
    (b"CHARSET US-ASCII FROM alice", b"1"), (b"charset utf-8 ALL", b"1 2 3 4"),
]


def test_search_keys(mail):
    wrong = [(keys, want, got) for keys, want in SEARCH_CASES
             for got in [b" ".join(search(mail, keys))] if got != want]
    assert wrong == []


def test_search_sizes(mail):
    sizes = [len(M1), len(M2), None, len(M4)]
    r = mail.fetch(b"FETCH 3 RFC822.SIZE")
    sizes[2] = int(re.search(rb"RFC822.SIZE (\d+)", r[0]).group(1))
    for i, size in enumerate(sizes):
        larger = [str(k + 1).encode() for k, sz in enumerate(sizes) if sz > size]
        smaller = [str(k + 1).encode() for k, sz in enumerate(sizes) if sz < size]
        assert search(mail, b"LARGER %d" % size) == larger
        assert search(mail, b"SMALLER %d" % size) == smaller
    assert search(mail, b"LARGER %d SMALLER %d" % (len(M1) - 1, len(M1) + 1)) == [b"1"]


def test_search_utf8(mail):
    for keys, want in [
        (b"SUBJECT " + lit("café".encode()), [b"1"]),
        (b"SUBJECT " + lit("CAFÉ".encode()), [b"1"]),       # Latin-1 letters fold
        (b"BODY " + lit("wörld".encode()), [b"1"]),          # decoded QP
        (b"BODY " + lit("NAÏVE".encode()), [b"1"]),
        (b"TEXT " + lit("café".encode()), [b"1"]),
        (b"HEADER Subject " + lit("café".encode()), [b"1"]),  # RFC 2047 decoded
    ]:
        untagged, tagged = mail.cmd(b"SEARCH CHARSET UTF-8 " + keys.replace(b"}\r\n", b"+}\r\n"))
        assert b" OK " in tagged, (keys, tagged)
        assert [r for r in untagged if r.startswith(b"* SEARCH")] == [
            b"* SEARCH" + b"".join(b" " + w for w in want) + b"\r\n"], keys


def test_uid_search(mail):
    assert search(mail, b"ALL", uid=True) == [b"2", b"3", b"4", b"5"]
    assert search(mail, b"FLAGGED", uid=True) == [b"2"]
    assert search(mail, b"UID 3:*", uid=True) == [b"3", b"4", b"5"]
    assert search(mail, b"2:3", uid=True) == [b"3", b"4"]   # message numbers 2:3
    assert search(mail, b"NOT ALL", uid=True) == []
    # an empty result is a bare "* SEARCH"
    untagged, tagged = mail.cmd(b"UID SEARCH NOT ALL")
    assert untagged == [b"* SEARCH\r\n"] and tagged.endswith(b"OK UID SEARCH completed\r\n")


def test_search_after_changes(mail):
    """Results follow flags changed in this session and by another one."""
    mail.fetch(b"FETCH 1 BODY[1]")
    assert search(mail, b"SEEN") == [b"1", b"4"]
    other = Imap(mail.p.ports["imap"])
    other.ok(b"LOGIN alice@example.test secret-alice")
    other.ok(b"SELECT INBOX")
    assert search(other, b"RECENT") == []
    assert search(other, b"OLD") == [b"1", b"2", b"3", b"4"]
    other.ok(b"STORE 2 +FLAGS (\\Flagged)")
    other.close()
    time.sleep(0.3)
    assert search(mail, b"FLAGGED") == [b"1", b"2"]


def test_search_errors(mail):
    for keys in [b"", b"FOO", b"OR SEEN", b"NOT", b"BEFORE 32-Jan-2024", b"SINCE 1-Foo-2024",
                 b"ON 2024-01-01", b"LARGER x", b"LARGER", b"UID x", b"HEADER", b"HEADER X",
                 b"KEYWORD", b"()", b"FROM", b"1:x", b"0", b"CHARSET",
                 b"NOT " * 100 + b"ALL"]:
        untagged, tagged = mail.cmd(b"SEARCH " + keys if keys else b"SEARCH")
        assert untagged == [] and b" BAD " in tagged, (keys, untagged, tagged)
        mail.ok(b"NOOP")  # stay under max_errors consecutive BADs
    untagged, tagged = mail.cmd(b"SEARCH CHARSET KOI8-R ALL")
    assert untagged == [] and b"NO [BADCHARSET (UTF-8 US-ASCII)]" in tagged
