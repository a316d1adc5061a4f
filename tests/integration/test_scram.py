"""SCRAM-SHA-256 (RFC 5802, RFC 7677) in IMAP AUTHENTICATE (RFC 9051 6.2.2,
SASL-IR RFC 4959) and POP3 AUTH (RFC 5034).

curl 7.88 has no SCRAM-SHA-256 for IMAP/POP3 (no GNU SASL), so a minimal
client is written here with hashlib/hmac; it also checks the server's
signature. Users come from `petrel user add`, which stores SCRAM secrets.
"""
import base64
import hashlib
import hmac
import imaplib
import os
import time

import pytest

from imap_helpers import RawImap
from pop3_helpers import ALICE, BOB, LISTEN, RawPop3, imap_port, pop3_port


@pytest.fixture
def srv(petrel_factory):
    return petrel_factory(listen=LISTEN)


def b64(data):
    return base64.b64encode(data)


def saslname(name):
    return name.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    """The client side of one SCRAM-SHA-256 exchange (no channel binding)."""

    def __init__(self, user, password, authzid=""):
        self.user, self.password = user, password
        self.gs2 = "n," + (f"a={saslname(authzid)}" if authzid else "") + ","
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.server_sig = None

    def client_first(self):
        self.bare = f"n={saslname(self.user)},r={self.cnonce}"
        return (self.gs2 + self.bare).encode()

    def client_final(self, server_first):
        self.server_first = sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.cnonce) and len(nonce) > len(self.cnonce), sf
        self.salt, self.iters = salt, iters
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iters)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={b64(self.gs2.encode()).decode()},r={nonce}"
        auth = f"{self.bare},{sf},{without_proof}".encode()
        proof = bytes(a ^ b for a, b in zip(client_key, hmac.digest(stored_key, auth, "sha256")))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_sig = b64(hmac.digest(server_key, auth, "sha256")).decode()
        return f"{without_proof},p={b64(proof).decode()}".encode()

    def check_server_final(self, server_final):
        assert server_final.decode() == "v=" + self.server_sig, server_final


def cont(line):
    """The decoded data of a "+ ..." continuation line."""
    assert line.startswith(b"+ ") and line.endswith(b"\r\n"), line
    return base64.b64decode(line[2:-2])


# ---------------------------------------------------------------------- IMAP

def imap_scram(port, user, password, ir=True, authzid=""):
    """(tagged reply, seconds from client-final to the reply, client,
    connection)."""
    c = RawImap(port)
    sc = ScramClient(user, password, authzid)
    if ir:
        c.sendraw(b"a AUTHENTICATE SCRAM-SHA-256 " + b64(sc.client_first()) + b"\r\n")
    else:
        c.sendraw(b"a AUTHENTICATE SCRAM-SHA-256\r\n")
        assert c.readline() == b"+ \r\n"
        c.sendraw(b64(sc.client_first()) + b"\r\n")
    server_first = cont(c.readline())
    c.sendraw(b64(sc.client_final(server_first)) + b"\r\n")
    start = time.monotonic()
    line = c.readline()
    if line.startswith(b"+ "):
        sc.check_server_final(cont(line))
        c.sendraw(b"\r\n")  # RFC 4422: the empty response
        line = c.readline()
    return line, time.monotonic() - start, sc, c


def test_imap_scram_ok(srv):
    port = imap_port(srv)
    for ir in (True, False):
        line, _, sc, c = imap_scram(port, *ALICE, ir=ir)
        assert line.startswith(b"a OK [CAPABILITY IMAP4rev1 ") and b"AUTH=" not in line, line
        assert sc.iters == 4096 and len(sc.salt) == 16
        c.ok(b"SELECT INBOX")
        c.close()
    # the domain is case-insensitive; authzid naming the user itself is fine
    line, _, _, c = imap_scram(port, "bob@EXAMPLE.test", BOB[1])
    assert line.startswith(b"a OK "), line
    c.close()
    line, _, _, c = imap_scram(port, *BOB, authzid=BOB[0])
    assert line.startswith(b"a OK "), line
    c.close()


def test_imap_capability(srv):
    c = RawImap(imap_port(srv))
    untagged, _ = c.cmd(b"CAPABILITY")
    assert b" AUTH=SCRAM-SHA-256" in untagged[0], untagged
    c.close()


def test_imap_scram_failures_alike(srv):
    port = imap_port(srv)
    fail = b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    salts = []
    for user, pw in [(ALICE[0], "wrong"), ("nobody@example.test", "wrong"),
                     ("nobody@example.test", "other"), ("alice@nowhere.test", "x")]:
        line, took, sc, c = imap_scram(port, user, pw)
        # the server-first message looked normal, the failure came at the end
        assert line == fail, (user, line)
        assert took >= 1.0, (user, took)
        assert sc.iters == 4096 and len(sc.salt) == 16
        salts.append(sc.salt)
        c.close()
    # a made-up salt is stable per name (asking again shows nothing)
    assert salts[1] == salts[2] and salts[0] != salts[1] != salts[3]
    # proxy authorization is refused the same way
    line, _, _, c = imap_scram(port, *ALICE, authzid=BOB[0])
    assert line == fail, line
    c.close()


def test_imap_scram_cancel_and_garbage(srv):
    c = RawImap(imap_port(srv))
    tag = c.send(b"AUTHENTICATE SCRAM-SHA-256")
    assert c.readline() == b"+ \r\n"
    c.sendraw(b"*\r\n")
    assert c.readline().startswith(tag + b" BAD ")
    # cancelled after the server-first message
    sc = ScramClient(*ALICE)
    tag = c.send(b"AUTHENTICATE SCRAM-SHA-256 " + b64(sc.client_first()))
    cont(c.readline())
    c.sendraw(b"*\r\n")
    assert c.readline().startswith(tag + b" BAD ")
    # not SCRAM at all: a failure like a wrong password
    _, tagged = c.cmd(b"AUTHENTICATE SCRAM-SHA-256 " + b64(b"hello"))
    assert tagged.startswith(b"t3 NO [AUTHENTICATIONFAILED]"), tagged
    assert c.cmd(b"SELECT INBOX")[1].split()[1] == b"BAD"
    c.close()


def test_imaplib_scram(srv):
    """imaplib's AUTHENTICATE with a callable: the server-final message comes
    in a continuation, answered with an empty line."""
    sc = ScramClient(*ALICE)
    steps = []

    def mech(challenge):
        steps.append(challenge)
        if len(steps) == 1:
            return sc.client_first()
        if len(steps) == 2:
            return sc.client_final(challenge)
        sc.check_server_final(challenge)
        return b""

    M = imaplib.IMAP4("127.0.0.1", imap_port(srv))
    typ, _ = M.authenticate("SCRAM-SHA-256", mech)
    assert typ == "OK" and len(steps) == 3
    assert M.select("INBOX")[0] == "OK"
    M.logout()


def test_passwd_replaces_secrets(srv):
    port = imap_port(srv)
    srv.cli("user", "passwd", ALICE[0], input="new-secret\n")
    line, _, _, c = imap_scram(port, ALICE[0], "new-secret")
    assert line.startswith(b"a OK "), line
    c.close()
    line, _, _, c = imap_scram(port, *ALICE)
    assert line.startswith(b"a NO [AUTHENTICATIONFAILED]"), line
    c.close()


# ---------------------------------------------------------------------- POP3

def pop3_scram(port, user, password, ir=True):
    c = RawPop3(port)
    sc = ScramClient(user, password)
    if ir:
        c.send(b"AUTH SCRAM-SHA-256 " + b64(sc.client_first()) + b"\r\n")
    else:
        c.send(b"AUTH SCRAM-SHA-256\r\n")
        assert c.readline() == b"+ \r\n"
        c.send(b64(sc.client_first()) + b"\r\n")
    server_first = cont(c.readline())
    c.send(b64(sc.client_final(server_first)) + b"\r\n")
    start = time.monotonic()
    line = c.readline()
    if line.startswith(b"+ "):
        sc.check_server_final(cont(line))
        c.send(b"\r\n")
        line = c.readline()
    return line, time.monotonic() - start, sc, c


def test_pop3_scram(srv):
    port = pop3_port(srv)
    for ir in (True, False):
        line, _, _, c = pop3_scram(port, *ALICE, ir=ir)
        assert line.startswith(b"+OK"), line
        assert c.cmd("STAT").startswith(b"+OK 0 0")
        assert c.cmd("QUIT").startswith(b"+OK")
        c.close()
    c = RawPop3(port)
    assert c.cmd("CAPA").startswith(b"+OK")
    assert b"SASL PLAIN LOGIN SCRAM-SHA-256\r\n" in c.multiline()
    # cancel
    assert c.cmd("AUTH SCRAM-SHA-256") == b"+ "
    assert c.cmd("*").startswith(b"-ERR")
    c.close()


def test_pop3_scram_failures_alike(srv):
    port = pop3_port(srv)
    for user, pw in [(ALICE[0], "wrong"), ("nobody@example.test", "wrong")]:
        line, took, sc, c = pop3_scram(port, user, pw)
        assert line == b"-ERR [AUTH] Authentication failed\r\n", (user, line)
        assert took >= 1.0, (user, took)
        assert sc.iters == 4096 and len(sc.salt) == 16
        c.close()
