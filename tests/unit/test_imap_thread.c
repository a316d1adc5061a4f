/*
 * Unit tests for imap/imap_thread.c (RFC 5256): base subject extraction
 * (2.1, every step), the first address's mailbox (3, addr-mailbox),
 * message ID normalisation, and both threading algorithms on constructed
 * messages: references, missing parents (dummies), loops, duplicate
 * Message-IDs, subject grouping, sibling order. Inputs are copied into
 * exact-size buffers so that ASan sees over-reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_thread.h"
#include "mime/mime_collate.h"

static char *dup_exact(const char *s)
{
	size_t n = strlen(s) + 1;
	char *c = malloc(n);
	assert_non_null(c);
	memcpy(c, s, n);
	return c;
}

static void check_base(const char *subject, const char *want, int want_reply)
{
	char *in = dup_exact(subject);
	int reply = -1;
	char *got = imap_base_subject(in, &reply);
	assert_non_null(got);
	if (strcmp(got, want) != 0 || reply != want_reply)
		fail_msg("base subject of \"%s\": got \"%s\" reply=%d, want \"%s\" reply=%d", subject,
			 got, reply, want, want_reply);
	free(got);
	free(in);
}

/* 2.1 (1): tabs, line ends and runs of spaces (the RFC 2047 decoding is
 * done at delivery: the store keeps the decoded subject). */
static void test_base_whitespace(void **state)
{
	(void)state;
	check_base("hello   world", "hello world", 0);
	check_base("hello\t\tworld", "hello world", 0);
	check_base("hello\r\n world", "hello world", 0);
	check_base("  leading and trailing  ", "leading and trailing", 0);
	check_base("", "", 0);
	check_base("   ", "", 0);
	check_base("Café  menu", "Café menu", 0);
}

/* 2.1 (2): subj-trailer = "(fwd)" / WSP, repeatedly; "(fwd)" makes a
 * forward. */
static void test_base_trailer(void **state)
{
	(void)state;
	check_base("hello (fwd)", "hello", 1);
	check_base("hello (FWD)", "hello", 1);
	check_base("hello(fwd)", "hello", 1);
	check_base("hello (fwd) (Fwd)  ", "hello", 1);
	check_base("(fwd)", "", 1);
	check_base("hello (fwd) x", "hello (fwd) x", 0); /* only at the end */
	check_base("hello (fw)", "hello (fw)", 0);
}

/* 2.1 (3): subj-leader = (*subj-blob subj-refwd) / WSP, where
 * subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":". */
static void test_base_leader(void **state)
{
	(void)state;
	check_base("Re: hello", "hello", 1);
	check_base("RE:hello", "hello", 1);
	check_base("re : hello", "hello", 1);
	check_base("Fwd: hello", "hello", 1);
	check_base("FW: hello", "hello", 1);
	check_base("fw:hello", "hello", 1);
	check_base("Re[2]: hello", "hello", 1);
	check_base("Re [list]: hello", "hello", 1);
	check_base("Re: Re: Fwd: hello", "hello", 1);
	check_base("[list] Re: hello", "hello", 1);
	check_base("[a][b] Fwd: hello", "hello", 1);
	check_base("Re:", "", 1);
	check_base("Re: ", "", 1);
	/* not leaders */
	check_base("Ref: hello", "Ref: hello", 0);
	check_base("Reply: hello", "Reply: hello", 0);
	check_base("Re hello", "Re hello", 0);
	check_base("Fwdd: hello", "Fwdd: hello", 0);
	check_base("Aw: hello", "Aw: hello", 0); /* translations are not removed (7) */
}

/* 2.1 (4): a leading subj-blob goes when something is left after it. */
static void test_base_blob(void **state)
{
	(void)state;
	check_base("[list] hello", "hello", 0);
	check_base("[list]hello", "hello", 0);
	check_base("[a] [b] hello", "hello", 0);
	check_base("[list]", "[list]", 0);
	check_base("[list]   ", "[list]", 0);
	check_base("[a] [b]", "[b]", 0);   /* the last blob is the subj-base */
	check_base("[a [b] c", "[a [b] c", 0); /* '[' is no BLOBCHAR */
	check_base("[unterminated hello", "[unterminated hello", 0);
}

/* 2.1 (5): (3) and (4) repeat until neither applies. */
static void test_base_repeat(void **state)
{
	(void)state;
	check_base("[list] Re: [other] Fwd: hello", "hello", 1);
	check_base("Re: [list] Re: hello", "hello", 1);
	check_base("[x] [y] Re: [z] hello", "hello", 1);
}

/* 2.1 (6): "[fwd:" ... "]" is removed, then everything again from (2). */
static void test_base_fwd(void **state)
{
	(void)state;
	check_base("[fwd: hello]", "hello", 1);
	check_base("[FWD: hello world]", "hello world", 1);
	check_base("Re: [Fwd: Re: hello] (fwd)", "hello", 1);
	check_base("[fwd: [fwd: hello]]", "hello", 1);
	check_base("[fwd: hello (fwd)]", "hello", 1);
	/* not ending with "]": the "[fwd: hello] " prefix is a blob (4) */
	check_base("[fwd: hello] world", "world", 0);
	check_base("[fwd:]", "", 1);
}

static void check_mailbox(const char *list, const char *want)
{
	char *in = dup_exact(list);
	char *got = imap_first_mailbox(in);
	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("first mailbox of \"%s\": got \"%s\", want \"%s\"", list, got, want);
	free(got);
	free(in);
}

static void test_first_mailbox(void **state)
{
	(void)state;
	check_mailbox("Alice Example <alice@example.test>", "alice");
	check_mailbox("bob@example.test, carol@example.test", "bob");
	check_mailbox("\"Doe, J\" <jdoe@example.test>, x@y", "jdoe");
	check_mailbox("\"<odd> name\" <real@example.test>", "real");
	check_mailbox("Team: a@example.test, b@example.test;", "a");
	check_mailbox("undisclosed-recipients:;", "");
	check_mailbox("Empty:;, z@example.test", "z");
	check_mailbox("\"a b\"@example.test", "a b");
	check_mailbox("\"a@b\"@example.test", "a@b");
	check_mailbox("", "");
	check_mailbox("no address at all", "no address at all");
}

static void check_ids(const char *value, const char *want)
{
	char *in = dup_exact(value);
	const char *p = in;
	char got[512] = "";
	char *id;
	int oom = 0;
	while ((id = imap_next_message_id(&p, &oom)) != NULL) {
		if (got[0] != '\0')
			strcat(got, " ");
		strcat(got, id);
		free(id);
	}
	assert_false(oom);
	if (strcmp(got, want) != 0)
		fail_msg("message ids of \"%s\": got \"%s\", want \"%s\"", value, got, want);
	free(in);
}

/* RFC 5256 REFERENCES: quoting must not make two IDs differ. */
static void test_message_ids(void **state)
{
	(void)state;
	check_ids("<01KF8JCEOCBS0045PS@xxx.yyy.com>", "01KF8JCEOCBS0045PS@xxx.yyy.com");
	check_ids("<\"01KF8JCEOCBS0045PS\"@xxx.yyy.com>", "01KF8JCEOCBS0045PS@xxx.yyy.com");
	check_ids("<a@b> <c@d>\r\n <e@f>", "a@b c@d e@f");
	check_ids("<a@b>(comment)<c@d>", "a@b c@d");
	check_ids("<noat> <@x> <y@> <ok@x>", "ok@x");
	check_ids("<a@b (sent by <c@d>", "c@d");
	check_ids("<unterminated@x", "");
	check_ids("<\"a\\\"q\"@x>", "a\"q@x");
	check_ids("< sp@x >", "sp@x");
	check_ids("", "");
	check_ids("garbage", "");
}

/* ---------------------------------------------------------------- threads */

struct tm_in {
	const char *subject, *message_id, *in_reply_to, *references;
	int64_t sent;
};

/* Thread msgs numbered 1..n (numbers: seq * mult) and compare. */
static void check_thread_mult(enum imap_thread_alg alg, const struct tm_in *in, size_t n,
			      uint32_t mult, const char *want)
{
	struct imap_thread_msg *m = calloc(n ? n : 1, sizeof(*m));
	assert_non_null(m);
	for (size_t i = 0; i < n; i++) {
		m[i].seq = (uint32_t)i + 1;
		m[i].number = m[i].seq * mult;
		m[i].sent = in[i].sent;
		m[i].subject = in[i].subject;
		m[i].message_id = in[i].message_id;
		m[i].in_reply_to = in[i].in_reply_to;
		m[i].references = in[i].references;
	}
	char *got = imap_thread(alg, m, n);
	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("thread: got \"%s\", want \"%s\"", got, want);
	free(got);
	free(m);
}

static void check_thread(enum imap_thread_alg alg, const struct tm_in *in, size_t n,
			 const char *want)
{
	check_thread_mult(alg, in, n, 1, want);
}

#define REFS IMAP_THREAD_REFERENCES
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_references_basic(void **state)
{
	(void)state;
	static const struct tm_in in[] = {
		{ "A", "<1@x>", NULL, NULL, 100 },
		{ "Re: A", "<2@x>", NULL, "<1@x>", 200 },
		{ "Re: A", "<3@x>", NULL, "<1@x> <2@x>", 300 },
		{ "Re: A", "<4@x>", NULL, "<1@x>", 150 },
		{ "B", "<5@x>", NULL, NULL, 50 },
	};
	/* threads by date (5 first), siblings by date (4 before 2) */
	check_thread(REFS, in, N(in), "(5)(1 (4)(2 3))");
	/* UIDs instead of message numbers */
	check_thread_mult(REFS, in, N(in), 10, "(50)(10 (40)(20 30))");
	check_thread(REFS, in, 0, "");
}

/* 1.A: References, else the first valid ID of In-Reply-To; References
 * wins over In-Reply-To. */
static void test_references_in_reply_to(void **state)
{
	(void)state;
	static const struct tm_in in[] = {
		{ "one", "<1@x>", NULL, NULL, 1 },
		{ "two", "<2@x>", NULL, NULL, 2 },
		{ "three", "<3@x>", "<1@x> (sent by <2@x>)", NULL, 3 },
		{ "four", "<4@x>", "<2@x>", "<1@x>", 4 },
		{ "five", "<5@x>", "<2@x>", "no ids here", 5 },
	};
	check_thread(REFS, in, N(in), "(1 (3)(4))(2 5)");
}

/* Missing parents: dummies, pruned (3). */
static void test_references_missing_parent(void **state)
{
	(void)state;
	/* two replies to an absent message: one thread under a dummy */
	static const struct tm_in two[] = {
		{ "Q", "<a@x>", NULL, "<gone@x>", 10 },
		{ "Re: Q", "<b@x>", NULL, "<gone@x>", 20 },
	};
	check_thread(REFS, two, N(two), "((1)(2))");
	/* one: the dummy at the top with one child is replaced by it */
	static const struct tm_in one[] = {
		{ "Q", "<a@x>", NULL, "<gone@x>", 10 },
	};
	check_thread(REFS, one, N(one), "(1)");
	/* a dummy in the middle: its child goes up a level */
	static const struct tm_in mid[] = {
		{ "P", "<1@x>", NULL, NULL, 10 },
		{ "Re: P", "<2@x>", NULL, "<1@x> <gone@x>", 20 },
		{ "Re: P", "<3@x>", NULL, "<1@x> <gone@x>", 15 },
		{ "Re: P", "<4@x>", NULL, "<1@x> <other@x> <deeper@x>", 5 },
	};
	check_thread(REFS, mid, N(mid), "(1 (4)(3)(2))");
	/* a chain of absent ancestors: one dummy level after pruning */
	static const struct tm_in chain[] = {
		{ "R", "<a@x>", NULL, "<g1@x> <g2@x> <g3@x>", 30 },
		{ "R", "<b@x>", NULL, "<g1@x> <g2@x>", 20 },
		{ "S", "<c@x>", NULL, "<g1@x>", 40 },
	};
	/* g3 (not at the top) gives way to a; then g2, now holding a and b,
	 * gives way to both: g1 keeps a, b and c as siblings */
	check_thread(REFS, chain, N(chain), "((2)(1)(3))");
}

/* Loops: a link that would make a message its own ancestor is not made. */
static void test_references_loops(void **state)
{
	(void)state;
	static const struct tm_in mutual[] = {
		{ "one", "<1@x>", NULL, "<2@x>", 10 },
		{ "two", "<2@x>", NULL, "<1@x>", 20 },
	};
	/* 1 goes under 2 first; 2 under 1 would be a loop */
	check_thread(REFS, mutual, N(mutual), "(2 1)");
	static const struct tm_in self[] = {
		{ "one", "<1@x>", NULL, "<1@x>", 10 },
		{ "two", "<2@x>", "<2@x>", NULL, 20 },
	};
	check_thread(REFS, self, N(self), "(1)(2)");
	static const struct tm_in within[] = {
		{ "one", "<1@x>", NULL, "<a@x> <b@x> <a@x>", 10 },
		{ "two", "<2@x>", NULL, "<b@x> <a@x> <2@x> <1@x>", 20 },
	};
	/* a -> b from message 1 (b -> a is a loop and skipped); 1 under a;
	 * message 2: its own ID in its references, parent 1 */
	check_thread(REFS, within, N(within), "(1 2)");
	static const struct tm_in three[] = {
		{ "x", "<1@x>", NULL, "<3@x>", 1 },
		{ "y", "<2@x>", NULL, "<1@x>", 2 },
		{ "z", "<3@x>", NULL, "<2@x>", 3 },
	};
	check_thread(REFS, three, N(three), "(3 1 2)");
}

/* 1.A: a duplicated Message-ID belongs to the first message; the others
 * get a unique one. Message-ID comparisons are case-sensitive. */
static void test_references_duplicates(void **state)
{
	(void)state;
	static const struct tm_in in[] = {
		{ "X", "<d@x>", NULL, NULL, 10 },
		{ "Y", "<d@x>", NULL, NULL, 20 },
		{ "Re: X", "<r@x>", NULL, "<d@x>", 30 },
		{ "W", "<D@x>", NULL, NULL, 5 },
		{ "Re: W", "<s@x>", NULL, "<\"D\"@x>", 40 },
		{ "V", NULL, NULL, NULL, 50 },
		{ "U", "not an id", NULL, NULL, 60 },
	};
	check_thread(REFS, in, N(in), "(4 5)(1 3)(2)(6)(7)");
}

/* 5: threads at the top with the same base subject are gathered. */
static void test_references_subjects(void **state)
{
	(void)state;
	/* a reply without references goes under the original */
	static const struct tm_in reply[] = {
		{ "Topic", "<1@x>", NULL, NULL, 10 },
		{ "Re: topic", "<2@x>", NULL, NULL, 20 },
	};
	check_thread(REFS, reply, N(reply), "(1 2)");
	/* the reply came first: the original still becomes the parent */
	static const struct tm_in reply_first[] = {
		{ "Re: Topic", "<1@x>", NULL, NULL, 10 },
		{ "Topic", "<2@x>", NULL, NULL, 20 },
	};
	check_thread(REFS, reply_first, N(reply_first), "(2 1)");
	/* two originals: siblings under a new dummy */
	static const struct tm_in both[] = {
		{ "Topic", "<1@x>", NULL, NULL, 10 },
		{ "Other", "<2@x>", NULL, NULL, 15 },
		{ "TOPIC", "<3@x>", NULL, NULL, 20 },
	};
	check_thread(REFS, both, N(both), "((1)(3))(2)");
	/* a thread under a dummy takes same-subject messages in */
	static const struct tm_in dummy[] = {
		{ "S", "<a@x>", NULL, "<gone@x>", 10 },
		{ "Re: S", "<b@x>", NULL, "<gone@x>", 30 },
		{ "Fwd: S", "<c@x>", NULL, NULL, 20 },
	};
	check_thread(REFS, dummy, N(dummy), "((1)(3)(2))");
	/* two dummies with one subject: their children become siblings */
	static const struct tm_in dummies[] = {
		{ "T", "<a@x>", NULL, "<g1@x>", 10 },
		{ "Re: T", "<b@x>", NULL, "<g1@x>", 40 },
		{ "Re: T", "<c@x>", NULL, "<g2@x>", 20 },
		{ "Re: T", "<d@x>", NULL, "<g2@x>", 30 },
	};
	check_thread(REFS, dummies, N(dummies), "((1)(3)(4)(2))");
	/* two replies, no original: a dummy over both */
	static const struct tm_in replies[] = {
		{ "Re: Q", "<1@x>", NULL, NULL, 10 },
		{ "Re: Q", "<2@x>", NULL, NULL, 20 },
	};
	check_thread(REFS, replies, N(replies), "((1)(2))");
	/* empty subjects are never gathered */
	static const struct tm_in empty[] = {
		{ "", "<1@x>", NULL, NULL, 10 },
		{ "Re:", "<2@x>", NULL, NULL, 20 },
		{ NULL, "<3@x>", NULL, NULL, 30 },
	};
	check_thread(REFS, empty, N(empty), "(1)(2)(3)");
	/* subjects compare with i;unicode-casemap */
	static const struct tm_in casemap[] = {
		{ "café", "<1@x>", NULL, NULL, 10 },
		{ "Re: CAFÉ", "<2@x>", NULL, NULL, 20 },
	};
	check_thread(REFS, casemap, N(casemap), "(1 2)");
}

/* 2.2 / 6: equal sent dates fall back to message numbers. */
static void test_references_ties(void **state)
{
	(void)state;
	static const struct tm_in in[] = {
		{ "p", "<1@x>", NULL, NULL, 10 },
		{ "c", "<2@x>", NULL, "<1@x>", 50 },
		{ "c", "<3@x>", NULL, "<1@x>", 50 },
		{ "d", "<4@x>", NULL, "<1@x>", 40 },
		{ "q", "<5@x>", NULL, NULL, 10 },
	};
	check_thread(REFS, in, N(in), "(1 (4)(2)(3))(5)");
}

/* The RFC's response example, "(2)(3 6 (4 23)(44 7 96))", rebuilt. */
static void test_references_rfc_example(void **state)
{
	(void)state;
	struct imap_thread_msg m[8];
	static const struct {
		uint32_t n;
		const char *subject, *id, *refs;
		int64_t sent;
	} six[] = {
		{ 2, "a", "<2@x>", NULL, 1 },
		{ 3, "b", "<3@x>", NULL, 2 },
		{ 4, "b", "<4@x>", "<3@x> <6@x>", 4 },
		{ 6, "b", "<6@x>", "<3@x>", 3 },
		{ 7, "b", "<7@x>", "<3@x> <6@x> <44@x>", 7 },
		{ 23, "b", "<23@x>", "<3@x> <6@x> <4@x>", 5 },
		{ 44, "b", "<44@x>", "<3@x> <6@x>", 6 },
		{ 96, "b", "<96@x>", "<3@x> <6@x> <44@x> <7@x>", 8 },
	};
	for (size_t i = 0; i < 8; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].number = m[i].seq = six[i].n;
		m[i].subject = six[i].subject;
		m[i].message_id = six[i].id;
		m[i].references = six[i].refs;
		m[i].sent = six[i].sent;
	}
	char *got = imap_thread(IMAP_THREAD_REFERENCES, m, 8);
	assert_non_null(got);
	assert_string_equal(got, "(2)(3 6 (4 23)(44 7 96))");
	free(got);
}

/* A long chain: nothing recursive runs out of stack. */
static void test_references_deep(void **state)
{
	(void)state;
	enum { DEEP = 50000 };
	struct imap_thread_msg *m = calloc(DEEP, sizeof(*m));
	char (*ids)[24] = calloc(DEEP, 24);
	assert_non_null(m);
	assert_non_null(ids);
	for (int i = 0; i < DEEP; i++) {
		snprintf(ids[i], 24, "<%d@x>", i + 1);
		m[i].number = m[i].seq = (uint32_t)i + 1;
		m[i].message_id = ids[i];
		m[i].in_reply_to = i > 0 ? ids[i - 1] : NULL;
		m[i].subject = i > 0 ? "Re: deep" : "deep";
		m[i].sent = i;
	}
	char *got = imap_thread(IMAP_THREAD_REFERENCES, m, DEEP);
	assert_non_null(got);
	assert_true(strncmp(got, "(1 2 3 4 ", 9) == 0);
	assert_non_null(strstr(got, " 49999 50000)"));
	free(got);
	/* and a comb: every message has a leaf and a continuing branch */
	for (int i = 1; i < DEEP; i++)
		m[i].in_reply_to = ids[(i - 1) / 2 * 2];
	got = imap_thread(IMAP_THREAD_REFERENCES, m, DEEP);
	assert_non_null(got);
	assert_true(strncmp(got, "(1 (2)(3 (4)(5 (6)(7 ", 21) == 0);
	free(got);
	free(ids);
	free(m);
}

/* ORDEREDSUBJECT: by base subject then date; the first message of each
 * subject is the parent of the others; threads by their first date. */
static void test_orderedsubject(void **state)
{
	(void)state;
	static const struct tm_in in[] = {
		{ "B", "<1@x>", NULL, NULL, 30 },
		{ "A", "<2@x>", NULL, NULL, 20 },
		{ "Re: B", "<3@x>", NULL, NULL, 10 },
		{ "a", "<4@x>", NULL, NULL, 40 },
		{ "re: [list] A", "<5@x>", NULL, NULL, 25 },
		{ "C", "<6@x>", NULL, NULL, 5 },
		{ "A (fwd)", "<7@x>", NULL, NULL, 20 },
	};
	/* references play no part */
	check_thread(IMAP_THREAD_ORDEREDSUBJECT, in, N(in), "(6)(3 1)(2 (7)(5)(4))");
	check_thread_mult(IMAP_THREAD_ORDEREDSUBJECT, in, N(in), 100,
			  "(600)(300 100)(200 (700)(500)(400))");
	static const struct tm_in single[] = {
		{ "only", "<1@x>", NULL, "<0@x>", 1 },
	};
	check_thread(IMAP_THREAD_ORDEREDSUBJECT, single, N(single), "(1)");
	check_thread(IMAP_THREAD_ORDEREDSUBJECT, single, 0, "");
}

static void test_casemap(void **state)
{
	(void)state;
	const char *pairs[][2] = {
		{ "abc", "ABC" }, { "café", "CAFE\xcc\x81" }, { "CAFÉ", "CAFE\xcc\x81" },
		{ "", "" },        { "\xff" "ab", "\xff" "AB" },
	};
	for (size_t i = 0; i < N(pairs); i++) {
		char *k = mime_casemap_key(pairs[i][0]);
		assert_non_null(k);
		assert_string_equal(k, pairs[i][1]);
		free(k);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_whitespace),
		cmocka_unit_test(test_base_trailer),
		cmocka_unit_test(test_base_leader),
		cmocka_unit_test(test_base_blob),
		cmocka_unit_test(test_base_repeat),
		cmocka_unit_test(test_base_fwd),
		cmocka_unit_test(test_first_mailbox),
		cmocka_unit_test(test_message_ids),
		cmocka_unit_test(test_references_basic),
		cmocka_unit_test(test_references_in_reply_to),
		cmocka_unit_test(test_references_missing_parent),
		cmocka_unit_test(test_references_loops),
		cmocka_unit_test(test_references_duplicates),
		cmocka_unit_test(test_references_subjects),
		cmocka_unit_test(test_references_ties),
		cmocka_unit_test(test_references_rfc_example),
		cmocka_unit_test(test_references_deep),
		cmocka_unit_test(test_orderedsubject),
		cmocka_unit_test(test_casemap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
