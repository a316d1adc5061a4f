/*
 * Unit tests for mime/mime.c: the bounded header collector and the decoded
 * Subject (RFC 5322 2.2.3 unfolding, RFC 2047 encoded-words, via GMime).
 *
 * Every message is fed whole, byte by byte and (when short) in every 2-way
 * split, from exact-size malloc'd chunks; all must give the same collected
 * length, completeness and Subject. mime_init() runs once, in the group setup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"
#include "smtp/smtp_parse.h" /* smtp_utf8_valid */

/* Allocations a failing assertion would leak are freed by the teardown. */
#define MAX_TRACKED 16
static void *tracked[MAX_TRACKED];
static struct mime_head *live_head;

static void *track(void *p)
{
	assert_non_null(p);
	for (size_t i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == NULL) {
			tracked[i] = p;
			return p;
		}
	fail_msg("test bug: too many live allocations");
	return NULL;
}

static void untrack_free(void *p)
{
	for (size_t i = 0; i < MAX_TRACKED && p != NULL; i++)
		if (tracked[i] == p)
			tracked[i] = NULL;
	free(p);
}

static int free_tracked(void **state)
{
	(void)state;
	for (size_t i = 0; i < MAX_TRACKED; i++) {
		free(tracked[i]);
		tracked[i] = NULL;
	}
	if (live_head != NULL)
		mime_head_free(live_head);
	live_head = NULL;
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	mime_init();
	return 0;
}

struct fed {
	char *subject; /* tracked */
	size_t len;
	int complete;
};

/* Feed msg[0..len) in chunks ending at cuts[]; collect the Subject. */
static void feed(const char *msg, size_t len, const size_t *cuts, size_t ncuts, struct fed *r)
{
	struct mime_head h;
	size_t start = 0;

	mime_head_init(&h);
	live_head = &h;
	for (size_t c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : len;
		size_t n = end - start;
		char *chunk = track(malloc(n ? n : 1)); /* exact size */
		memcpy(chunk, msg + start, n);
		mime_head_feed(&h, chunk, n);
		untrack_free(chunk);
		assert_true(h.len <= MIME_HEAD_MAX);
		start = end;
	}
	r->len = h.len;
	r->complete = h.complete;
	r->subject = track(mime_head_subject(&h));
	live_head = NULL;
	mime_head_free(&h);
}

static void compare(const char *how, const struct fed *r, const char *want_subject,
		    size_t want_len, int want_complete)
{
	if (strcmp(r->subject, want_subject) != 0 || r->len != want_len ||
	    r->complete != want_complete)
		fail_msg("fed %s: subject \"%s\" len %zu complete %d; want \"%s\" %zu %d", how,
			 r->subject, r->len, r->complete, want_subject, want_len, want_complete);
}

static void check_subject_n(const char *msg, size_t len, const char *want_subject,
			    size_t want_len, int want_complete)
{
	struct fed r;
	char how[64];

	feed(msg, len, NULL, 0, &r);
	compare("whole", &r, want_subject, want_len, want_complete);
	untrack_free(r.subject);

	size_t *cuts = track(malloc((len + 1) * sizeof(*cuts)));
	for (size_t i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	feed(msg, len, cuts, len > 0 ? len - 1 : 0, &r);
	compare("byte by byte", &r, want_subject, want_len, want_complete);
	untrack_free(r.subject);
	untrack_free(cuts);

	if (len <= 1024) {
		for (size_t k = 0; k <= len; k++) {
			feed(msg, len, &k, 1, &r);
			snprintf(how, sizeof(how), "split at %zu", k);
			compare(how, &r, want_subject, want_len, want_complete);
			untrack_free(r.subject);
		}
	}
}

/* want_head: the octets the collector keeps (the header and its empty line). */
#define CHECK(msg_lit, subject, head_len, complete)                                \
	check_subject_n(msg_lit, sizeof(msg_lit) - 1, subject, head_len, complete)

/* ------------------------------------------------------------------------ */

static void test_plain_subject(void **state)
{
	(void)state;
	CHECK("From: a@b.example\r\nSubject: Hello world\r\n\r\nbody\r\nSubject: no\r\n",
	      "Hello world", 43, 1);
	CHECK("Subject: x\r\n\r\n", "x", 14, 1);
	/* leading and trailing white space of the field body are not content */
	CHECK("Subject:   two  spaces  \r\n\r\n", "two  spaces", 28, 1);
	/* header field names are case-insensitive (RFC 5322 1.2.2) */
	CHECK("SUBJECT: upper\r\n\r\n", "upper", 18, 1);
	/* raw UTF-8 (RFC 6532) passes through */
	CHECK("Subject: caf\xc3\xa9\r\n\r\n", "caf\xc3\xa9", 18, 1);
}

static void test_no_subject(void **state)
{
	(void)state;
	CHECK("From: a@b.example\r\nTo: c@d.example\r\n\r\nSubject: in the body\r\n", "", 38, 1);
	CHECK("", "", 0, 0);
	/* an empty line first: no header at all */
	CHECK("\r\nSubject: body\r\n", "", 2, 1);
	CHECK("\nSubject: body\n", "", 1, 1);
	CHECK("Subject:\r\n\r\n", "", 12, 1);
}

/* RFC 2047 4.1 "B" and 4.2 "Q" encodings, in UTF-8 and ISO-8859-1; the
 * result is UTF-8. */
static void test_encoded_words(void **state)
{
	(void)state;
	CHECK("Subject: =?UTF-8?B?w6l0w6kgZMOpasOg?=\r\n\r\n", "\xc3\xa9t\xc3\xa9 d\xc3\xa9j\xc3\xa0",
	      41, 1);
	CHECK("Subject: =?utf-8?q?caf=C3=A9_cr=C3=A8me?=\r\n\r\n",
	      "caf\xc3\xa9 cr\xc3\xa8me", 45, 1);
	CHECK("Subject: =?ISO-8859-1?Q?caf=E9?=\r\n\r\n", "caf\xc3\xa9", 36, 1);
	CHECK("Subject: =?iso-8859-1?b?Y2Fm6Q==?=\r\n\r\n", "caf\xc3\xa9", 38, 1);
	CHECK("Subject: =?ISO-8859-1?B?R3L832UgYXVzIEv2bG4=?=\r\n\r\n",
	      "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln", 50, 1);
	/* encoded-words among ordinary text */
	CHECK("Subject: Re: =?UTF-8?Q?caf=C3=A9?= ok\r\n\r\n", "Re: caf\xc3\xa9 ok", 41, 1);
	/* RFC 2047 6.2: white space between adjacent encoded-words is ignored */
	CHECK("Subject: =?UTF-8?Q?a?= =?UTF-8?Q?b?=\r\n\r\n", "ab", 40, 1);
	CHECK("Subject: =?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?=\r\n\r\n", "ab", 42, 1);
	/* ...but not between an encoded-word and ordinary text */
	CHECK("Subject: =?UTF-8?Q?a?= b\r\n\r\n", "a b", 28, 1);
}

/* RFC 5322 2.2.3: unfolding removes the CRLF before the folding white space. */
static void test_folded_subject(void **state)
{
	(void)state;
	CHECK("Subject: a long\r\n subject line\r\nFrom: x@y\r\n\r\n", "a long subject line", 45, 1);
	CHECK("Subject: a\r\n\tb\r\n\r\n", "a\tb", 18, 1);
	CHECK("Subject: one\r\n two\r\n three\r\n\r\n", "one two three", 30, 1);
	CHECK("Subject: lf\n folded\n\n", "lf folded", 21, 1);
}

/* A message that is all header (no empty line): the collector never sees the
 * end of the header but still yields the Subject. */
static void test_header_only(void **state)
{
	(void)state;
	CHECK("From: a@b.example\r\nSubject: only\r\n", "only", 34, 0);
	CHECK("Subject: only", "only", 13, 0);
	CHECK("Subject: only\r\nFrom: a@b", "only", 24, 0);
}

/* Bare LF line ends (as files written by other software have them). */
static void test_lf_only(void **state)
{
	(void)state;
	CHECK("From: a@b.example\nSubject: lf\n\nbody\n", "lf", 31, 1);
	CHECK("Subject: =?UTF-8?Q?caf=C3=A9?=\n\nbody", "caf\xc3\xa9", 32, 1);
	/* mixed: LF then CRLF for the empty line */
	CHECK("Subject: mixed\n\r\nbody", "mixed", 17, 1);
}

/* Raw 8-bit octets that are not UTF-8 still give a UTF-8 Subject (the
 * store keeps UTF-8), and malformed encoded-words do not break anything. */
static void test_result_is_utf8(void **state)
{
	static const char *const msgs[] = {
		"Subject: caf\xe9\r\n\r\n",
		"Subject: \xff\xfe\x80\r\n\r\n",
		"Subject: =?UTF-8?B?!!!?=\r\n\r\n",
		"Subject: =?UTF-8?Q?=FF=FE?=\r\n\r\n",
		"Subject: =?X-UNKNOWN?Q?abc?=\r\n\r\n",
		"Subject: =?UTF-8?B?w6\r\n\r\n",
		"Subject: \x00nul\r\n\r\n",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct fed r;
		size_t len = strlen(msgs[i]);
		if (i == sizeof(msgs) / sizeof(msgs[0]) - 1)
			len = 17; /* "Subject: " NUL "nul" CRLF CRLF */
		feed(msgs[i], len, NULL, 0, &r);
		if (!smtp_utf8_valid(r.subject, strlen(r.subject)))
			fail_msg("message %zu: subject is not UTF-8", i);
		untrack_free(r.subject);
	}
	struct fed r;
	feed(msgs[0], strlen(msgs[0]), NULL, 0, &r);
	assert_string_equal(r.subject, "caf\xc3\xa9"); /* read as Latin-1 */
	untrack_free(r.subject);
}

/* The collector keeps at most MIME_HEAD_MAX octets, however the header is
 * fed, and stops there. */
static void test_head_bounded(void **state)
{
	const size_t total = 3 * MIME_HEAD_MAX;
	char *msg = track(malloc(total));
	size_t o = 0;
	struct fed r;
	(void)state;

	o += (size_t)sprintf(msg, "Subject: big\r\n");
	for (int n = 0; o + 100 < total; n++)
		o += (size_t)sprintf(msg + o, "X-Filler-%06d: %060d\r\n", n, n);
	memcpy(msg + o, "\r\nbody", 6);
	o += 6;

	feed(msg, o, NULL, 0, &r);
	compare("whole", &r, "big", MIME_HEAD_MAX, 1);
	untrack_free(r.subject);

	size_t *cuts = track(malloc(o * sizeof(*cuts)));
	for (size_t i = 0; i + 1 < o; i++)
		cuts[i] = i + 1;
	feed(msg, o, cuts, o - 1, &r);
	compare("byte by byte", &r, "big", MIME_HEAD_MAX, 1);
	untrack_free(r.subject);
	size_t n = 0;
	for (size_t pos = 4093; pos < o && n < o; pos += 4093)
		cuts[n++] = pos;
	feed(msg, o, cuts, n, &r);
	compare("in 4093-octet chunks", &r, "big", MIME_HEAD_MAX, 1);
	untrack_free(r.subject);
	/* a chunk ending exactly at the bound, then more */
	size_t at = MIME_HEAD_MAX;
	feed(msg, o, &at, 1, &r);
	compare("split at MIME_HEAD_MAX", &r, "big", MIME_HEAD_MAX, 1);
	untrack_free(r.subject);
	untrack_free(cuts);

	/* one endless line */
	memset(msg, 'a', total);
	memcpy(msg, "Subject: ", 9);
	feed(msg, total, NULL, 0, &r);
	assert_int_equal(r.len, MIME_HEAD_MAX);
	assert_int_equal(r.complete, 1);
	untrack_free(r.subject);
	untrack_free(msg);
}

/* The header just fits: the empty line is the last octet kept. */
static void test_head_exactly_max(void **state)
{
	char *msg = track(malloc(MIME_HEAD_MAX + 16));
	struct fed r;
	(void)state;

	size_t o = (size_t)sprintf(msg, "Subject: fits\r\nX: ");
	memset(msg + o, 'x', MIME_HEAD_MAX - o - 4);
	o = MIME_HEAD_MAX - 4;
	memcpy(msg + o, "\r\n\r\nbody", 8);
	feed(msg, MIME_HEAD_MAX + 4, NULL, 0, &r);
	compare("whole", &r, "fits", MIME_HEAD_MAX, 1);
	untrack_free(r.subject);
	size_t cut = MIME_HEAD_MAX - 1;
	feed(msg, MIME_HEAD_MAX + 4, &cut, 1, &r);
	compare("split before the last LF", &r, "fits", MIME_HEAD_MAX, 1);
	untrack_free(r.subject);
	untrack_free(msg);
}

/* Once the header is complete, more input changes nothing. */
static void test_feed_after_complete(void **state)
{
	struct mime_head h;
	(void)state;

	mime_head_init(&h);
	live_head = &h;
	mime_head_feed(&h, "Subject: s\r\n\r\n", 14);
	assert_int_equal(h.complete, 1);
	assert_int_equal(h.len, 14);
	mime_head_feed(&h, "Subject: t\r\n\r\n", 14);
	mime_head_feed(&h, "", 0);
	assert_int_equal(h.len, 14);
	char *s = track(mime_head_subject(&h));
	assert_string_equal(s, "s");
	untrack_free(s);
	s = track(mime_head_subject(&h)); /* asking twice gives the same */
	assert_string_equal(s, "s");
	untrack_free(s);
	live_head = NULL;
	mime_head_free(&h);
	assert_null(h.buf);
	assert_int_equal(h.len, 0);

	/* a fresh head after free works */
	mime_head_init(&h);
	live_head = &h;
	s = track(mime_head_subject(&h));
	assert_string_equal(s, "");
	untrack_free(s);
	live_head = NULL;
	mime_head_free(&h);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, free_tracked)
	const struct CMUnitTest tests[] = {
		T(test_plain_subject),
		T(test_no_subject),
		T(test_encoded_words),
		T(test_folded_subject),
		T(test_header_only),
		T(test_lf_only),
		T(test_result_is_utf8),
		T(test_head_bounded),
		T(test_head_exactly_max),
		T(test_feed_after_complete),
	};
#undef T
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
