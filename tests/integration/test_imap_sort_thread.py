"""IMAP SORT and THREAD (RFC 5256) with Python imaplib and raw sockets.

Messages with chosen headers are APPENDed (with chosen INTERNALDATEs) after
a first message that is expunged, so that UIDs differ from message numbers
(uid = number + 1). Every response is checked for its exact order or thread
structure.
"""
import imaplib
import re

import pytest

from imap_helpers import ALICE, RawImap

LISTEN = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0"}


def message(headers, body="body\r\n"):
    lines = ["%s: %s" % (k, v) for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def internaldate(text):
    return '"%s"' % text


@pytest.fixture
def server(petrel_factory):
    return petrel_factory(listen=LISTEN)


def connect(server, messages):
    """imaplib client logged in, INBOX selected, holding messages (a list of
    (bytes, internaldate) in message number order; uid = number + 1)."""
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
    imap.login(*ALICE)
    imap.append("INBOX", None, None, message([("Subject", "placeholder")]))
    imap.select("INBOX")
    imap.store("1", "+FLAGS", "\\Deleted")
    imap.expunge()
    for data, date in messages:
        typ, _ = imap.append("INBOX", None, internaldate(date), data)
        assert typ == "OK"
    imap.noop()
    return imap


# M1..M6: sent dates in UTC: M4 07:00, M3 08:00 (no Date: its INTERNALDATE),
# M1 10:00, M2 11:00 (09:00 -0200), M6 11:00, M5 12:00.
SORT_MSGS = [
    (message([("From", "Zed <zed@example.test>"), ("To", "bob@example.test"),
              ("Subject", "Re: apple"), ("Date", "Mon, 1 Jan 2024 10:00:00 +0000")],
             "x" * 40 + "\r\n"),
     "05-Mar-2024 10:00:00 +0000"),
    (message([("From", "Amy <amy@example.test>"), ("To", "Carl <carl@example.test>"),
              ("Cc", "dave@example.test"), ("Subject", "Banana"),
              ("Date", "Mon, 1 Jan 2024 09:00:00 -0200")],
             "x" * 10 + "\r\n"),
     "01-Mar-2024 10:00:00 +0000"),
    (message([("From", "bob@example.test"), ("To", "\"Alice\" <alice@example.test>"),
              ("Subject", "[list] apple (fwd)")],
             "x" * 300 + "\r\n"),
     "01-Jan-2024 08:00:00 +0000"),
    (message([("From", "Carol <Carol@example.test>"),
              ("To", "zz@example.test, aa@example.test"),
              ("Cc", "\"B\" <bea@example.test>"),
              ("Subject", "=?utf-8?q?=C3=A9clair?="),
              ("Date", "Sun, 31 Dec 2023 23:00:00 -0800")],
             "x" * 5 + "\r\n"),
     "03-Mar-2024 10:00:00 +0000"),
    (message([("Date", "Mon, 1 Jan 2024 12:00:00 +0000")], "x" * 70 + "\r\n"),
     "02-Mar-2024 10:00:00 +0000"),
    (message([("From", "amy@example.test"), ("To", "carl@example.test"),
              ("Subject", "banana"), ("Date", "Mon, 1 Jan 2024 11:00:00 +0000")],
             "x" * 1000 + "\r\n"),
     "04-Mar-2024 10:00:00 +0000"),
]


def sort(imap, criteria, *search, charset="UTF-8"):
    typ, data = imap.sort(criteria, charset, *search)
    assert typ == "OK", (typ, data)
    return data[0].decode() if data[0] is not None else ""


def test_capabilities(server):
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
    imap.login(*ALICE)
    typ, data = imap.capability()
    caps = data[0].decode().split()
    for cap in ("SORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"):
        assert cap in caps, caps
    assert not [c for c in caps if c.startswith("ESORT")], caps
    imap.logout()


def test_sort_single_criteria(server):
    imap = connect(server, SORT_MSGS)
    # 2.2: Date: in UTC; ties (M2/M6) by message number
    assert sort(imap, "(DATE)", "ALL") == "4 3 1 2 6 5"
    assert sort(imap, "(ARRIVAL)", "ALL") == "3 2 5 4 6 1"
    # base subjects: "", apple, apple, banana, banana, éclair (casemap)
    assert sort(imap, "(SUBJECT)", "ALL") == "5 1 3 2 6 4"
    # first mailbox's local part: "", amy, amy, bob, Carol, zed
    assert sort(imap, "(FROM)", "ALL") == "5 2 6 3 4 1"
    # first To: M4's is zz, not aa
    assert sort(imap, "(TO)", "ALL") == "5 3 1 2 6 4"
    # absent Cc is "", before anything
    assert sort(imap, "(CC)", "ALL") == "1 3 5 6 4 2"
    sizes = [len(m) for m, _ in SORT_MSGS]
    by_size = sorted(range(1, 7), key=lambda n: (sizes[n - 1], n))
    assert sort(imap, "(SIZE)", "ALL") == " ".join(map(str, by_size))
    imap.logout()


def test_sort_reverse_and_multiple(server):
    imap = connect(server, SORT_MSGS)
    # REVERSE reverses its criterion only: ties stay in message order
    assert sort(imap, "(REVERSE DATE)", "ALL") == "5 2 6 1 3 4"
    assert sort(imap, "(SUBJECT DATE)", "ALL") == "5 3 1 2 6 4"
    assert sort(imap, "(SUBJECT REVERSE DATE)", "ALL") == "5 1 3 2 6 4"
    assert sort(imap, "(REVERSE SUBJECT)", "ALL") == "4 2 6 1 3 5"
    assert sort(imap, "(CC REVERSE ARRIVAL)", "ALL") == "1 6 5 3 4 2"
    sizes = [len(m) for m, _ in SORT_MSGS]
    by_size = sorted(range(1, 7), key=lambda n: (-sizes[n - 1], n))
    assert sort(imap, "(reverse size)", "ALL") == " ".join(map(str, by_size))
    assert by_size[0] == 6
    assert sort(imap, "(FROM DATE)", "ALL") == "5 2 6 3 4 1"
    imap.logout()


def test_sort_with_search_keys(server):
    imap = connect(server, SORT_MSGS)
    assert sort(imap, "(DATE)", "FROM", "amy") == "2 6"
    assert sort(imap, "(SUBJECT)", "SUBJECT", "apple", charset="US-ASCII") == "1 3"
    assert sort(imap, "(ARRIVAL)", "NOT", "FROM", "amy") == "3 5 4 1"
    assert sort(imap, "(REVERSE ARRIVAL)", "OR", "2", "4:5") == "4 5 2"
    assert sort(imap, "(DATE)", "TEXT", "\"not in mailbox\"") == ""
    # SEARCHRES: "$" as a search key (RFC 5182)
    typ, _ = imap.search(None, "RETURN", "(SAVE)", "FROM", "amy")
    assert typ == "OK"
    assert sort(imap, "(REVERSE ARRIVAL)", "$") == "6 2"
    imap.logout()


def test_uid_sort(server):
    imap = connect(server, SORT_MSGS)
    typ, data = imap.uid("SORT", "(DATE)", "UTF-8", "ALL")
    assert typ == "OK"
    assert data[0].decode() == "5 4 2 3 7 6"
    # the keys are interpreted as in SORT: message numbers stay numbers
    typ, data = imap.uid("SORT", "(REVERSE DATE)", "UTF-8", "1:2")
    assert data[0].decode() == "3 2"
    typ, data = imap.uid("SORT", "(SUBJECT)", "UTF-8", "UID", "2:4")
    assert data[0].decode() == "2 4 3"
    imap.logout()


def test_sort_modseq(server):
    """RFC 7162 3.1.9: a MODSEQ key appends the highest mod-sequence."""
    imap = connect(server, SORT_MSGS)
    out = sort(imap, "(ARRIVAL)", "MODSEQ", "1")
    assert re.fullmatch(r"3 2 5 4 6 1 \(MODSEQ \d+\)", out), out
    assert sort(imap, "(ARRIVAL)", "MODSEQ", "999999") == ""
    imap.logout()


def test_sort_errors(server):
    imap = connect(server, SORT_MSGS)
    for criteria in ("(FOO)", "()", "(REVERSE)", "(REVERSE REVERSE DATE)", "(DATE FOO)",
                     "(\"DATE\")", "(DATE (SIZE))"):
        with pytest.raises(imaplib.IMAP4.error):
            imap.sort(criteria, "UTF-8", "ALL")
    typ, data = imap.sort("(DATE)", "ISO-8859-1", "ALL")
    assert typ == "NO"
    assert data[0].startswith(b"[BADCHARSET (UTF-8 US-ASCII)]"), data
    with pytest.raises(imaplib.IMAP4.error):
        imap.sort("(DATE)", "UTF-8")            # no search keys
    with pytest.raises(imaplib.IMAP4.error):
        imap.sort("(DATE)", "UTF-8", "NOSUCHKEY")
    with pytest.raises(imaplib.IMAP4.error):
        imap.thread("NOSUCHALG", "UTF-8", "ALL")
    typ, data = imap.thread("REFERENCES", "KOI8-R", "ALL")
    assert typ == "NO" and data[0].startswith(b"[BADCHARSET (UTF-8 US-ASCII)]"), data
    with pytest.raises(imaplib.IMAP4.error):
        imap.thread("REFERENCES", "UTF-8")
    # the session goes on
    assert sort(imap, "(DATE)", "ALL") == "4 3 1 2 6 5"
    imap.logout()


def test_sort_thread_need_selected_mailbox(server):
    c = RawImap(server.ports["imap"]).login()
    for cmd in (b"SORT (DATE) UTF-8 ALL", b"UID SORT (DATE) UTF-8 ALL",
                b"THREAD REFERENCES UTF-8 ALL", b"UID THREAD ORDEREDSUBJECT UTF-8 ALL"):
        untagged, tagged = c.cmd(cmd)
        assert tagged.split(b" ")[1] in (b"BAD", b"NO"), tagged
        assert untagged == [], untagged
    c.ok(b"SELECT INBOX")
    untagged, tagged = c.cmd(b"SORT (DATE) UTF-8 ALL")
    assert untagged == [b"* SORT\r\n"] and b" OK " in tagged
    untagged, tagged = c.cmd(b"THREAD REFERENCES UTF-8 ALL")
    assert untagged == [b"* THREAD\r\n"] and b" OK " in tagged
    c.close()


# T1..T10 for THREAD (dates on 1 Jan 2024, UTC):
#   T1 <t1> "Plans" 10:00        T6 <t6> "Fwd: Plans" 11:00 (no references)
#   T2 <t2> refs t1, 10:30       T7 <t1> (a duplicate ID) "Other" 08:00
#   T3 <t3> In-Reply-To t2, 10:20  T8 <"t8"@x> "Quote" 12:00
#   T4 <t4> refs <missing> 09:00  T9 refs <t8@x> (unquoted) 12:30
#   T5 <t5> refs <missing> 09:30  T10 "[fwd: Lunch]" 09:45 (no references)
def thread_msg(subject, time, mid=None, refs=None, irt=None):
    headers = [("From", "someone@example.test"), ("Subject", subject),
               ("Date", "Mon, 1 Jan 2024 %s:00 +0000" % time)]
    if mid:
        headers.append(("Message-ID", mid))
    if refs:
        headers.append(("References", refs))
    if irt:
        headers.append(("In-Reply-To", irt))
    return (message(headers), "01-Feb-2024 00:00:00 +0000")


THREAD_MSGS = [
    thread_msg("Plans", "10:00", "<t1@x>"),
    thread_msg("Re: Plans", "10:30", "<t2@x>", refs="<t1@x>"),
    thread_msg("Re: Plans", "10:20", "<t3@x>", irt="<t2@x>"),
    thread_msg("Lunch", "09:00", "<t4@x>", refs="<missing@x>"),
    thread_msg("Re: Lunch", "09:30", "<t5@x>", refs="<missing@x>"),
    thread_msg("Fwd: Plans", "11:00", "<t6@x>"),
    thread_msg("Other", "08:00", "<t1@x>"),
    thread_msg("Quote", "12:00", "<\"t8\"@x>"),
    thread_msg("Re: Quote", "12:30", "<t9@x>", refs="<t8@x>"),
    thread_msg("[fwd: Lunch]", "09:45", "<t10@x>"),
]


def thread(imap, alg, *search):
    typ, data = imap.thread(alg, "UTF-8", *search)
    assert typ == "OK", (typ, data)
    return data[0].decode() if data[0] is not None else ""


def test_thread_references(server):
    imap = connect(server, THREAD_MSGS)
    # T7's duplicate ID is its own; T4/T5 under a dummy for <missing>, which
    # takes T10 in by subject; T6 (a forward) goes under T1; T2 before T6
    # by date; quoting does not separate T8 and T9
    assert thread(imap, "REFERENCES", "ALL") == "(7)((4)(5)(10))(1 (2 3)(6))(8 9)"
    assert thread(imap, "references", "SUBJECT", "lunch") == "((4)(5)(10))"
    # T2 not searched: T3's parent is a dummy that gives way to it; then
    # T3 (a reply) and T6 (a forward) are gathered under T1 by subject
    assert thread(imap, "REFERENCES", "1,3,6") == "(1 (3)(6))"
    assert thread(imap, "REFERENCES", "TEXT", "\"not in mailbox\"") == ""
    typ, data = imap.uid("THREAD", "REFERENCES", "UTF-8", "ALL")
    assert typ == "OK"
    assert data[0].decode() == "(8)((5)(6)(11))(2 (3 4)(7))(9 10)"
    imap.logout()


def test_thread_orderedsubject(server):
    imap = connect(server, THREAD_MSGS)
    # by base subject then date; threads by their first message's date
    assert thread(imap, "ORDEREDSUBJECT", "ALL") == "(7)(4 (5)(10))(1 (3)(2)(6))(8 9)"
    assert thread(imap, "ORDEREDSUBJECT", "NOT", "SUBJECT", "plans") == "(7)(4 (5)(10))(8 9)"
    typ, data = imap.uid("THREAD", "ORDEREDSUBJECT", "US-ASCII", "SUBJECT", "plans")
    assert typ == "OK"
    assert data[0].decode() == "(2 (4)(3)(7))"
    imap.logout()
