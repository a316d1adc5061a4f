/*
 * Unit tests for imap/imap_mutf7.c: modified UTF-7 mailbox names (RFC 3501
 * 5.1.3) to and from UTF-8, and every form the strict decoder refuses.
 * Inputs are copied into exact-size buffers (no NUL) so that ASan sees
 * over-reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_mutf7.h"

static char *decode(const char *s, const char **err)
{
	size_t n = strlen(s);
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, s, n);
	*err = NULL;
	char *r = imap_mutf7_to_utf8(copy, n, err);
	free(copy);
	assert_true((r == NULL) == (*err != NULL));
	return r;
}

static char *encode(const char *s, size_t n, const char **err)
{
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, s, n);
	*err = NULL;
	char *r = imap_utf8_to_mutf7(copy, n, err);
	free(copy);
	assert_true((r == NULL) == (*err != NULL));
	return r;
}

/* utf8 <-> mutf7 both ways */
static void both_ways(const char *utf8, const char *mutf7)
{
	const char *err;
	char *e = encode(utf8, strlen(utf8), &err);
	assert_non_null(e);
	assert_string_equal(e, mutf7);
	free(e);
	char *d = decode(mutf7, &err);
	assert_non_null(d);
	assert_string_equal(d, utf8);
	free(d);
}

static void refused(const char *mutf7)
{
	const char *err;
	char *d = decode(mutf7, &err);
	if (d != NULL)
		fail_msg("accepted \"%s\" as \"%s\"", mutf7, d);
	assert_non_null(err);
}

/* RFC 3501 5.1.3: the example mixing English, Chinese and Japanese */
static void test_rfc_example(void **state)
{
	(void)state;
	both_ways("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		  "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	/* ... and its correct form of two adjacent runs */
	both_ways("\xe5\x8f\xb0\xe5\x8c\x97\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&U,BTF2XlZyyKng-");
	/* "&Jjo-!": U+263A then "!" */
	both_ways("\xe2\x98\xba!", "&Jjo-!");
}

static void test_ascii_and_ampersand(void **state)
{
	(void)state;
	both_ways("", "");
	both_ways("INBOX", "INBOX");
	both_ways("&", "&-");
	both_ways("Tom & Jerry", "Tom &- Jerry");
	both_ways("&&", "&-&-");
	/* every printable US-ASCII character but "&" stands for itself */
	char all[96];
	size_t n = 0;
	for (int c = 0x20; c <= 0x7e; c++)
		if (c != '&')
			all[n++] = (char)c;
	all[n] = '\0';
	both_ways(all, all);
	both_ways("a+b,c/d\\e~f-g", "a+b,c/d\\e~f-g");
}

static void test_non_ascii(void **state)
{
	(void)state;
	both_ways("Entw\xc3\xbcrfe", "Entw&APw-rfe");                  /* U+00FC */
	both_ways("\xc3\xa9", "&AOk-");                               /* one unit */
	both_ways("\xc3\xa9\xc3\xa9", "&AOkA6Q-");                    /* two units */
	both_ways("\xc3\xa9\xc3\xa9\xc3\xa9", "&AOkA6QDp-");           /* three: no padding */
	both_ways("\xf0\x9f\x93\xa7", "&2D3c5w-");                    /* U+1F4E7: a pair */
	both_ways("a\xf0\x9f\x93\xa7&\xc3\xa9", "a&2D3c5w-&-&AOk-");   /* run, "&-", run */
	both_ways("\x7f", "&AH8-");                                   /* DEL is encoded */
	both_ways("\x01", "&AAE-");                                   /* so are controls */
	/* the longest output per input octet (5): ASan checks the buffer */
	both_ways("\x01\x02", "&AAEAAg-");
	both_ways("\x01" "a\x1f", "&AAE-a&AB8-");
	both_ways("\xef\xbf\xbd", "&,,0-");                           /* U+FFFD */
	both_ways("\xf4\x8f\xbf\xbf", "&2,,f,w-");                    /* U+10FFFF */
}

/* RFC 3501 5.1.3: "&Jjo!" has no shift back before "!" */
static void test_refuse_unterminated(void **state)
{
	(void)state;
	refused("&Jjo!");
	refused("&Jjo");
	refused("abc&ZeVnLIqe");
	refused("&");
	refused("a&");
}

/* "&" not written "&-" */
static void test_refuse_bare_ampersand(void **state)
{
	(void)state;
	refused("Tom & Jerry");
	refused("&!");
	refused("&&-");
}

/* RFC 3501 5.1.3: "&U,BTFw-&ZeVnLIqe-" has a superfluous shift */
static void test_refuse_superfluous_shift(void **state)
{
	(void)state;
	refused("&U,BTFw-&ZeVnLIqe-");
	refused("&AOk-&AOk-");
	/* a run, then a literal "&": fine */
	const char *err;
	char *d = decode("&AOk-&-", &err);
	assert_non_null(d);
	assert_string_equal(d, "\xc3\xa9&");
	free(d);
}

static void test_refuse_bad_base64(void **state)
{
	(void)state;
	refused("&AO/-");    /* "/" is not modified base64 */
	refused("&AOk=-");   /* no "=" padding */
	refused("&AO k-");
	refused("&AO\x01k-");
	refused("&A-");      /* 6 bits: no unit */
	refused("&AO-");     /* 12 bits */
	refused("&AOkA-");   /* 16 + 6 bits */
	refused("&AOkA6-");  /* 32 + 4, then a partial 6 */
	refused("&AOkA6QD-"); /* 48 + 6 */
}

static void test_refuse_padding_bits(void **state)
{
	(void)state;
	refused("&AOl-");    /* U+00E9 with the 2 leftover bits set */
	refused("&AOn-");
	refused("&AOkA6R-"); /* 4 leftover bits not zero */
}

static void test_refuse_surrogates(void **state)
{
	(void)state;
	refused("&2D0-");     /* U+D83D alone */
	refused("&2D0AQQ-");  /* high then not-low (also ASCII) */
	refused("&2D0A6Q-");  /* high then U+00E9 */
	refused("&3OcA6Q-");  /* low first */
	refused("&3Oc-");     /* low alone */
	refused("&2D3YPQ-");  /* high, high */
}

/* RFC 3501 5.1.3: base64 MUST NOT encode a character that stands for itself */
static void test_refuse_ascii_in_base64(void **state)
{
	(void)state;
	refused("&AEE-");     /* "A" */
	refused("&ACY-");     /* "&" itself */
	refused("&ACA-");     /* space */
	refused("&AH4-");     /* "~" */
	refused("&AOkAQQ-");  /* U+00E9 then "A" in one run */
	refused("&AAA-");     /* U+0000 */
}

/* RFC 3501 5.1.3: octets outside 0x20-0x7e only in base64 */
static void test_refuse_raw_octets(void **state)
{
	(void)state;
	refused("Entw\xc3\xbcrfe");
	refused("a\x7f");
	refused("a\tb");
	refused("\x80");
	const char *err;
	char nul[3] = { 'a', '\0', 'b' };
	char *copy = malloc(3);
	assert_non_null(copy);
	memcpy(copy, nul, 3);
	assert_null(imap_mutf7_to_utf8(copy, 3, &err));
	free(copy);
}

static void test_encode_refuses_bad_utf8(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"\xc3",             /* truncated */
		"\xe6\x97",         /* truncated */
		"\xc0\xaf",         /* overlong "/" */
		"\xe0\x80\xaf",     /* overlong */
		"\xed\xa0\xbd",     /* a surrogate in UTF-8 */
		"\xf4\x90\x80\x80", /* beyond U+10FFFF */
		"\xff",
		"\x80",
		"a\xc3(",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err;
		char *e = encode(bad[i], strlen(bad[i]), &err);
		if (e != NULL)
			fail_msg("encoded bad UTF-8 #%zu as \"%s\"", i, e);
	}
	const char *err;
	assert_null(encode("a\0b", 3, &err));
}

/* Every BMP character and a sample beyond goes there and back. */
static void test_round_trip_all(void **state)
{
	(void)state;
	for (uint32_t cp = 1; cp <= 0x10ffff; cp += cp < 0x10000 ? 1 : 97) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		char u[8];
		size_t n;
		if (cp < 0x80) {
			u[0] = (char)cp, n = 1;
		} else if (cp < 0x800) {
			u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
		} else if (cp < 0x10000) {
			u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
			u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
		} else {
			u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
			u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		u[n++] = 'x'; /* a run that ends before an ASCII character */
		u[n] = '\0';
		const char *err;
		char *e = encode(u, n, &err);
		assert_non_null(e);
		char *d = decode(e, &err);
		if (d == NULL)
			fail_msg("U+%04X: \"%s\" refused: %s", (unsigned)cp, e, err);
		assert_string_equal(d, u);
		free(d);
		free(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_example),
		cmocka_unit_test(test_ascii_and_ampersand),
		cmocka_unit_test(test_non_ascii),
		cmocka_unit_test(test_refuse_unterminated),
		cmocka_unit_test(test_refuse_bare_ampersand),
		cmocka_unit_test(test_refuse_superfluous_shift),
		cmocka_unit_test(test_refuse_bad_base64),
		cmocka_unit_test(test_refuse_padding_bits),
		cmocka_unit_test(test_refuse_surrogates),
		cmocka_unit_test(test_refuse_ascii_in_base64),
		cmocka_unit_test(test_refuse_raw_octets),
		cmocka_unit_test(test_encode_refuses_bad_utf8),
		cmocka_unit_test(test_round_trip_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
