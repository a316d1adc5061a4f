"""The verified-credentials cache ([auth] cache_ttl, cache_size).

With the cache on, a login repeating the password last verified for a user
skips the slow hash; the auth pool logs every check at debug level as
`event=verify user=... result=ok|fail|tempfail cache=hit|miss|off`, which is
what these tests observe. The protocol answers must not change: a wrong
password is still refused (RFC 5530 AUTHENTICATIONFAILED for IMAP, RFC 3206
[AUTH] for POP3), a changed password takes effect at once, and entries expire.
"""
import imaplib
import poplib
import re
import time

import pytest

from imap_helpers import ALICE, BOB
from pop3_helpers import pop3_port

LISTEN = {"imap": "127.0.0.1:0", "pop3": "127.0.0.1:0"}


def server(petrel_factory, ttl=None, size=None):
    extra = {"server": {"log_level": "debug"}}
    auth = {}
    if ttl is not None:
        auth["cache_ttl"] = str(ttl)
    if size is not None:
        auth["cache_size"] = str(size)
    if auth:
        extra["auth"] = auth
    return petrel_factory(extra=extra, listen=LISTEN)


def verifies(p):
    """[(user, result, cache)] of the auth pool's event=verify lines so far."""
    out = []
    for line in p.log_lines:
        m = re.search(r"event=verify user=(\S+) result=(\w+) cache=(\w+)", line)
        if m:
            out.append(m.groups())
    return out


def wait_verifies(p, n, timeout=10):
    """The verify lines once there are at least n (the log is read by a
    thread, so the line may trail the protocol reply by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        v = verifies(p)
        if len(v) >= n or time.monotonic() > deadline:
            assert len(v) >= n, p.log()
            return v
        time.sleep(0.02)


def imap_login(p, user, password):
    """Logs in with imaplib, returns True, or False on NO (after checking
    it carries AUTHENTICATIONFAILED)."""
    c = imaplib.IMAP4("127.0.0.1", p.ports["imap"])
    try:
        c.login(user, password)
    except imaplib.IMAP4.error as e:
        assert "AUTHENTICATIONFAILED" in str(e), e
        c.shutdown()
        return False
    typ, data = c.select("INBOX")
    assert typ == "OK", data
    c.logout()
    return True


def pop3_login(p, user, password):
    c = poplib.POP3("127.0.0.1", pop3_port(p), timeout=30)
    try:
        c.user(user)
        c.pass_(password)
    except poplib.error_proto as e:
        assert str(e).startswith("b'-ERR [AUTH]"), e
        c.close()
        return False
    count, _ = c.stat()
    assert count == 0
    c.quit()
    return True


def test_second_login_is_a_cache_hit(petrel_factory):
    p = server(petrel_factory, ttl=300)
    assert imap_login(p, *ALICE)
    assert imap_login(p, *ALICE)
    v = wait_verifies(p, 2)
    assert v[0] == (ALICE[0], "ok", "miss")
    assert v[1] == (ALICE[0], "ok", "hit")
    # POP3 USER/PASS goes through the same pool and the same entry
    assert pop3_login(p, *ALICE)
    assert wait_verifies(p, 3)[2] == (ALICE[0], "ok", "hit")
    # another user has an entry of their own
    assert pop3_login(p, *BOB)
    assert pop3_login(p, *BOB)
    v = wait_verifies(p, 5)
    assert v[3] == (BOB[0], "ok", "miss")
    assert v[4] == (BOB[0], "ok", "hit")


def test_authenticate_plain_uses_the_cache(petrel_factory):
    p = server(petrel_factory, ttl=300)
    for _ in range(2):
        c = imaplib.IMAP4("127.0.0.1", p.ports["imap"])
        typ, _ = c.authenticate("PLAIN", lambda _: f"\0{ALICE[0]}\0{ALICE[1]}".encode())
        assert typ == "OK"
        c.logout()
    assert [x[2] for x in wait_verifies(p, 2)] == ["miss", "hit"]


def test_wrong_password_after_cached_login_is_refused(petrel_factory):
    p = server(petrel_factory, ttl=300)
    assert imap_login(p, *ALICE)
    assert imap_login(p, *ALICE)
    t0 = time.monotonic()
    assert not imap_login(p, ALICE[0], "secret-alicE")
    # the normal failure delay still applies
    assert time.monotonic() - t0 >= 1.0
    v = wait_verifies(p, 3)
    assert v[2] == (ALICE[0], "fail", "miss")
    # the failure dropped the entry: the right password pays the hash again
    assert imap_login(p, *ALICE)
    assert wait_verifies(p, 4)[3] == (ALICE[0], "ok", "miss")
    assert not pop3_login(p, ALICE[0], BOB[1])
    assert not pop3_login(p, ALICE[0], ALICE[1] + "x")
    v = wait_verifies(p, 6)
    assert [x[1:] for x in v[4:6]] == [("fail", "miss"), ("fail", "miss")]
    # unknown users are refused as before
    assert not imap_login(p, "nobody@example.test", ALICE[1])
    assert wait_verifies(p, 7)[6] == ("nobody@example.test", "fail", "miss")


def test_password_change_invalidates_at_once(petrel_factory):
    p = server(petrel_factory, ttl=300)
    assert imap_login(p, *ALICE)
    assert pop3_login(p, *ALICE)
    assert wait_verifies(p, 2)[1][2] == "hit"
    p.cli("user", "passwd", ALICE[0], input="new-secret\n")
    assert not imap_login(p, *ALICE)
    assert not pop3_login(p, *ALICE)
    assert imap_login(p, ALICE[0], "new-secret")
    assert pop3_login(p, ALICE[0], "new-secret")
    v = wait_verifies(p, 6)
    assert [x[1:] for x in v[2:6]] == [("fail", "miss"), ("fail", "miss"), ("ok", "miss"),
                                       ("ok", "hit")]


def test_entry_expires(petrel_factory):
    p = server(petrel_factory, ttl=1)
    assert imap_login(p, *ALICE)
    assert imap_login(p, *ALICE)
    v = wait_verifies(p, 2)
    if v[1][2] != "hit":
        # a second went by between the two (a loaded machine); not what is tested here
        pytest.skip("the machine is too slow for a 1 s TTL")
    time.sleep(1.5)
    assert imap_login(p, *ALICE)
    assert wait_verifies(p, 3)[2] == (ALICE[0], "ok", "miss")


def test_small_cache_evicts(petrel_factory):
    p = server(petrel_factory, ttl=300, size=1)
    assert imap_login(p, *ALICE)
    assert imap_login(p, *BOB)   # evicts alice's entry
    assert imap_login(p, *BOB)
    assert imap_login(p, *ALICE)
    v = wait_verifies(p, 4)
    assert [x[2] for x in v] == ["miss", "miss", "hit", "miss"]


def test_off_by_default(petrel_factory):
    p = server(petrel_factory)
    for _ in range(3):
        assert imap_login(p, *ALICE)
        assert pop3_login(p, *ALICE)
    v = wait_verifies(p, 6)
    assert {x[2] for x in v} == {"off"}
    assert "cache=hit" not in p.log()


@pytest.mark.parametrize("key,value", [("cache_ttl", "-1"), ("cache_ttl", "86401"),
                                       ("cache_ttl", "soon"), ("cache_size", "0"),
                                       ("cache_size", "1000001"), ("cache", "yes")])
def test_bad_config_is_refused(petrel_factory, key, value):
    p = petrel_factory(extra={"auth": {key: value}}, listen=LISTEN, users=False, start=False)
    r = p.cli("check", check=False)
    assert r.returncode == 78, r
    assert f"[auth] {key}" in r.stderr, r.stderr
