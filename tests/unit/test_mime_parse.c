/*
 * Unit tests for mime/mime_parse.h: the parse-once summary (ENVELOPE, BODY,
 * BODYSTRUCTURE, decoded header values), section location by the part table
 * (RFC 3501 6.4.5), HEADER.FIELDS filtering, transfer decoding for BINARY and
 * the SEARCH text.
 *
 * Every message goes through check_parse(): parsed from a copy that ends
 * against a PROT_NONE page (an over-read crashes), then again from a file
 * descriptor, which must give the very same summary; every output string must
 * be well-formed IMAP and every part record must lie inside the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mime/mime.h"
#include "mime/mime_parse.h"

/* Live results, freed by the teardown when an assertion fails. */
static struct mime_summary S, F;
static char *tracked[8];
static void *guard_base;
static size_t guard_size;

static char *track(char *p)
{
	assert_non_null(p);
	for (size_t i = 0; i < sizeof(tracked) / sizeof(tracked[0]); i++)
		if (tracked[i] == NULL) {
			tracked[i] = p;
			return p;
		}
	fail_msg("test bug: too many tracked allocations");
	return NULL;
}

static void untrack_free(char *p)
{
	for (size_t i = 0; i < sizeof(tracked) / sizeof(tracked[0]); i++)
		if (tracked[i] == p)
			tracked[i] = NULL;
	free(p);
}

static void guard_release(void)
{
	if (guard_base != NULL)
		munmap(guard_base, guard_size);
	guard_base = NULL;
}

static int teardown(void **state)
{
	(void)state;
	mime_summary_free(&S);
	mime_summary_free(&F);
	for (size_t i = 0; i < sizeof(tracked) / sizeof(tracked[0]); i++) {
		free(tracked[i]);
		tracked[i] = NULL;
	}
	guard_release();
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	mime_init();
	return 0;
}

/* A copy of msg whose last byte sits just before an inaccessible page. */
static const char *guarded(const char *msg, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t span = (len + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
	guard_release();
	guard_size = span + (size_t)pg;
	guard_base = mmap(NULL, guard_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	assert_true(guard_base != MAP_FAILED);
	assert_int_equal(mprotect((char *)guard_base + span, (size_t)pg, PROT_NONE), 0);
	char *p = (char *)guard_base + span - len;
	if (len > 0)
		memcpy(p, msg, len);
	return p;
}

static int tmp_fd(const char *data, size_t len)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	int fd = dup(fileno(f));
	fclose(f);
	assert_true(fd >= 0);
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
	/* The offset stays at the end, as with the store's spool file: the
	 * parser must pread from 0 and leave the offset alone. */
	return fd;
}

/* ---- IMAP syntax check: nil, number, quoted, literal, (list) ---- */

static const char *imap_value(const char *p, const char *end);

static const char *imap_list(const char *p, const char *end)
{
	p++; /* '(' */
	if (p < end && *p == ')')
		return NULL; /* "()" is never valid in these structures */
	for (;;) {
		p = imap_value(p, end);
		if (p == NULL || p >= end)
			return NULL;
		if (*p == ')')
			return p + 1;
		if (*p == ' ')
			p++;
		else if (*p != '(' || p[-1] != ')') /* body-type-mpart: ")(" */
			return NULL;
	}
}

static const char *imap_value(const char *p, const char *end)
{
	if (p >= end)
		return NULL;
	if (*p == '(')
		return imap_list(p, end);
	if (end - p >= 3 && memcmp(p, "NIL", 3) == 0)
		return p + 3;
	if (*p >= '0' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		return p;
	}
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '\\') {
				p++;
				if (p >= end || (*p != '"' && *p != '\\'))
					return NULL;
			} else if (c == 0 || c >= 0x80 || c == '\r' || c == '\n') {
				return NULL;
			}
		}
		return p < end ? p + 1 : NULL;
	}
	if (*p == '{') {
		char *e;
		unsigned long n = strtoul(p + 1, &e, 10);
		if (e >= end || *e != '}' || end - e < 3 || e[1] != '\r' || e[2] != '\n')
			return NULL;
		p = e + 3;
		if ((size_t)(end - p) < n || memchr(p, '\0', n) != NULL)
			return NULL;
		return p + n;
	}
	return NULL;
}

static void assert_imap(const char *what, const char *s)
{
	size_t n = strlen(s);
	const char *e = imap_value(s, s + n);
	if (e != s + n || s[0] != '(')
		fail_msg("%s is not a valid IMAP list: %s", what, s);
}

/* Every record of the part table lies inside the message. */
static void assert_parts_sane(const char *parts, size_t len)
{
	assert_memory_equal(parts, "P1\n-", 4);
	const char *p = parts + 3;
	size_t n = 0;
	while (*p != '\0') {
		char path[600], kind, enc[32];
		unsigned long long ho, hl, bo, bl, mh;
		int used = 0;
		if (sscanf(p, "%599s %c %llu %llu %llu %llu %31s %llu\n%n", path, &kind, &ho, &hl,
			   &bo, &bl, enc, &mh, &used) != 8 || used == 0)
			fail_msg("bad part record: %.80s", p);
		if (ho + hl > bo || bo + bl > len || mh > bl || strchr("mrl", kind) == NULL)
			fail_msg("part %s out of range: %llu+%llu %llu+%llu (%zu)", path, ho, hl, bo,
				 bl, len);
		p += used;
		n++;
	}
	assert_true(n >= 2);
}

static void assert_summary_equal(const struct mime_summary *a, const struct mime_summary *b)
{
	assert_string_equal(a->envelope, b->envelope);
	assert_string_equal(a->bodystructure, b->bodystructure);
	assert_string_equal(a->body, b->body);
	assert_string_equal(a->parts, b->parts);
	assert_string_equal(a->subject, b->subject);
	assert_string_equal(a->from, b->from);
	assert_string_equal(a->to, b->to);
	assert_string_equal(a->cc, b->cc);
	assert_string_equal(a->bcc, b->bcc);
	assert_string_equal(a->message_id, b->message_id);
	assert_string_equal(a->in_reply_to, b->in_reply_to);
	assert_string_equal(a->references, b->references);
	assert_string_equal(a->date_hdr, b->date_hdr);
	assert_int_equal(a->sent_date, b->sent_date);
	assert_int_equal(a->lines, b->lines);
}

/* Parses msg into S, checking the fd path and the output syntax. */
static void check_parse_n(const char *msg, size_t len)
{
	const char *err = NULL;
	mime_summary_free(&S);
	mime_summary_free(&F);
	assert_int_equal(mime_parse_mem(guarded(msg, len), len, &S, &err), 0);
	guard_release();
	assert_imap("ENVELOPE", S.envelope);
	assert_imap("BODYSTRUCTURE", S.bodystructure);
	assert_imap("BODY", S.body);
	assert_parts_sane(S.parts, len);

	int fd = tmp_fd(msg, len);
	int ret = mime_parse_fd(fd, &F, &err);
	off_t pos = lseek(fd, 0, SEEK_CUR);
	close(fd);
	assert_int_equal(ret, 0);
	assert_int_equal(pos, (off_t)len);
	assert_summary_equal(&S, &F);
	mime_summary_free(&F);
}

static void check_parse(const char *msg)
{
	check_parse_n(msg, strlen(msg));
}

static void expect_section(const char *msg, const char *path, const char *suffix,
			   const char *want)
{
	struct mime_section sec;
	size_t len = strlen(msg);
	int ret = mime_section_find(S.parts, len, path, suffix, &sec);
	if (ret != 1)
		fail_msg("section %s%s%s: %d", path, suffix ? "." : "", suffix ? suffix : "", ret);
	if (sec.len != strlen(want) || memcmp(msg + sec.offset, want, sec.len) != 0)
		fail_msg("section %s%s%s: got \"%.*s\" want \"%s\"", path, suffix ? "." : "",
			 suffix ? suffix : "", (int)sec.len, msg + sec.offset, want);
}

static void expect_no_section(const char *path, const char *suffix, int want_ret)
{
	struct mime_section sec;
	assert_int_equal(mime_section_find(S.parts, 1000000, path, suffix, &sec), want_ret);
}

/* ---- messages ---- */

#define SIMPLE_HDR                                                                       \
	"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"                                \
	"From: Terry Gray <gray@cac.washington.edu>\r\n"                                 \
	"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"                              \
	"To: imap@cac.washington.edu\r\n"                                                \
	"cc: minutes@CNRI.Reston.VA.US,\r\n"                                             \
	"    John Klensin <KLENSIN@MIT.EDU>\r\n"                                         \
	"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"                            \
	"MIME-Version: 1.0\r\n"                                                          \
	"\r\n"
static const char simple_msg[] = SIMPLE_HDR "Hello, Joe\r\n";

static void test_simple_text(void **state)
{
	(void)state;
	check_parse(simple_msg);
	assert_string_equal(
		S.envelope,
		"(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" "
		"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
		"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
		"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
		"((NIL NIL \"imap\" \"cac.washington.edu\")) "
		"((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) "
		"NIL NIL \"<B27397-0100000@cac.washington.edu>\")");
	assert_string_equal(S.bodystructure,
			    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 12 1 "
			    "NIL NIL NIL NIL)");
	assert_string_equal(S.body,
			    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 12 1)");
	assert_string_equal(S.subject, "IMAP4rev1 WG mtg summary and minutes");
	assert_string_equal(S.from, "Terry Gray <gray@cac.washington.edu>");
	assert_string_equal(S.to, "imap@cac.washington.edu");
	assert_string_equal(S.cc, "minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>");
	assert_string_equal(S.bcc, "");
	assert_string_equal(S.message_id, "<B27397-0100000@cac.washington.edu>");
	assert_string_equal(S.in_reply_to, "");
	assert_string_equal(S.references, "");
	assert_string_equal(S.date_hdr, "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)");
	assert_int_equal(S.sent_date, 837595405);
	assert_int_equal(S.lines, 1);

	expect_section(simple_msg, "", NULL, simple_msg);
	expect_section(simple_msg, "", "HEADER", SIMPLE_HDR);
	expect_section(simple_msg, "", "TEXT", "Hello, Joe\r\n");
	expect_section(simple_msg, "1", NULL, "Hello, Joe\r\n");
	expect_section(simple_msg, "1", "MIME", SIMPLE_HDR);
	expect_no_section("2", NULL, 0);
	expect_no_section("1.1", NULL, 0);
	expect_no_section("1", "HEADER", 0);
	expect_no_section("1", "TEXT", 0);
	assert_string_equal(mime_section_encoding(S.parts, "1"), "7bit");
	assert_string_equal(mime_section_encoding(S.parts, ""), "binary");
	assert_null(mime_section_encoding(S.parts, "2"));
}

static void test_sender_reply_to(void **state)
{
	(void)state;
	check_parse("From: a@b.c\r\nSender: s@b.c\r\nReply-To:\r\nSubject:\r\n\r\n");
	assert_string_equal(S.envelope, "(NIL \"\" ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"s\" \"b.c\")) "
					"((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL)");
}

#define ATT_TEXT_MIME "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
#define ATT_BIN_MIME                                                                     \
	"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"                  \
	"Content-Transfer-Encoding: base64\r\n"                                          \
	"Content-Disposition: attachment;\r\n filename=\"data.bin\"\r\n"                 \
	"Content-ID: <att1@example.org>\r\n"                                             \
	"Content-Description: some bytes\r\n"                                            \
	"\r\n"
#define ATT_BODY                                                                         \
	"This is a MIME message.\r\n"                                                    \
	"--=_b1\r\n" ATT_TEXT_MIME "See attached.\r\n"                                   \
	"--=_b1\r\n" ATT_BIN_MIME "AAECAwQFBgcICQ==\r\n"                                 \
	"--=_b1--\r\n"
static const char att_msg[] = "From: a@example.org\r\n"
			      "To: b@example.org\r\n"
			      "Subject: attachment\r\n"
			      "MIME-Version: 1.0\r\n"
			      "Content-Type: multipart/mixed; boundary=\"=_b1\"\r\n"
			      "\r\n" ATT_BODY;

static void test_multipart_attachment(void **state)
{
	(void)state;
	check_parse(att_msg);
	assert_string_equal(
		S.bodystructure,
		"((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 13 1 NIL NIL NIL NIL)"
		"(\"APPLICATION\" \"OCTET-STREAM\" (\"NAME\" \"data.bin\") \"<att1@example.org>\" "
		"\"some bytes\" \"BASE64\" 16 NIL (\"attachment\" (\"FILENAME\" \"data.bin\")) NIL NIL) "
		"\"MIXED\" (\"BOUNDARY\" \"=_b1\") NIL NIL NIL)");
	assert_string_equal(S.body,
			    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 13 1)"
			    "(\"APPLICATION\" \"OCTET-STREAM\" (\"NAME\" \"data.bin\") "
			    "\"<att1@example.org>\" \"some bytes\" \"BASE64\" 16) \"MIXED\")");
	expect_section(att_msg, "", "TEXT", ATT_BODY);
	expect_section(att_msg, "1", NULL, "See attached.");
	expect_section(att_msg, "1", "MIME", ATT_TEXT_MIME);
	expect_section(att_msg, "2", NULL, "AAECAwQFBgcICQ==");
	expect_section(att_msg, "2", "MIME", ATT_BIN_MIME);
	expect_no_section("3", NULL, 0);
	expect_no_section("2", "TEXT", 0);

	const char *enc = mime_section_encoding(S.parts, "2");
	assert_string_equal(enc, "base64");
	struct mime_section sec;
	assert_int_equal(mime_section_find(S.parts, strlen(att_msg), "2", NULL, &sec), 1);
	char *out;
	size_t out_len;
	assert_int_equal(mime_decode_transfer(enc, att_msg + sec.offset, sec.len, &out, &out_len), 0);
	track(out);
	assert_int_equal(out_len, 10);
	assert_memory_equal(out, "\0\1\2\3\4\5\6\7\10\11", 10);
	untrack_free(out);
}

#define ALT_PART                                                                         \
	"--inner\r\n"                                                                    \
	"Content-Type: text/plain\r\n"                                                   \
	"\r\n"                                                                           \
	"plain text\r\n"                                                                 \
	"--inner\r\n"                                                                    \
	"Content-Type: text/html; charset=utf-8\r\n"                                     \
	"Content-Transfer-Encoding: quoted-printable\r\n"                                \
	"\r\n"                                                                           \
	"<p>caf=C3=A9</p>\r\n"                                                           \
	"--inner--\r\n"
static const char nested_msg[] = "Subject: nested\r\n"
				 "Content-Type: multipart/mixed; boundary=outer\r\n"
				 "\r\n"
				 "--outer\r\n"
				 "Content-Type: multipart/alternative; boundary=inner\r\n"
				 "\r\n" ALT_PART "\r\n"
				 "--outer\r\n"
				 "Content-Type: image/png\r\n"
				 "Content-Transfer-Encoding: base64\r\n"
				 "Content-Disposition: inline\r\n"
				 "Content-Language: en, de\r\n"
				 "Content-Location: http://example.org/x.png\r\n"
				 "\r\n"
				 "iVBORw0KGgo=\r\n"
				 "--outer--\r\n";

static void test_alternative_in_mixed(void **state)
{
	(void)state;
	check_parse(nested_msg);
	assert_string_equal(
		S.bodystructure,
		"(((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL)"
		"(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 16 1 NIL NIL NIL NIL)"
		" \"ALTERNATIVE\" (\"BOUNDARY\" \"inner\") NIL NIL NIL)"
		"(\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 12 NIL (\"inline\" NIL) (\"en\" \"de\") "
		"\"http://example.org/x.png\")"
		" \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)");
	expect_section(nested_msg, "1", NULL, ALT_PART);
	expect_section(nested_msg, "1", "MIME",
		       "Content-Type: multipart/alternative; boundary=inner\r\n\r\n");
	expect_section(nested_msg, "1.1", NULL, "plain text");
	expect_section(nested_msg, "1.1", "MIME", "Content-Type: text/plain\r\n\r\n");
	expect_section(nested_msg, "1.2", NULL, "<p>caf=C3=A9</p>");
	expect_section(nested_msg, "2", NULL, "iVBORw0KGgo=");
	expect_no_section("1.3", NULL, 0);
	expect_no_section("1.1.1", NULL, 0);
	assert_string_equal(mime_section_encoding(S.parts, "1.2"), "quoted-printable");
}

#define INNER_HDR                                                                        \
	"Date: Tue, 1 Jan 2019 10:00:00 +0000\r\n"                                       \
	"From: Inner Sender <inner@example.com>\r\n"                                     \
	"Subject: the inner one\r\n"                                                     \
	"Message-ID: <inner@example.com>\r\n"                                            \
	"\r\n"
#define INNER_BODY "inner line 1\r\ninner line 2"
#define RFC822_MIME "Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
static const char rfc822_msg[] = "From: outer@example.org\r\n"
				 "Subject: fwd\r\n"
				 "Content-Type: multipart/mixed; boundary=b\r\n"
				 "\r\n"
				 "--b\r\n"
				 "\r\n"
				 "see below\r\n"
				 "--b\r\n" RFC822_MIME INNER_HDR INNER_BODY "\r\n"
				 "--b--\r\n";

static void test_message_rfc822(void **state)
{
	(void)state;
	check_parse(rfc822_msg);
	assert_string_equal(
		S.bodystructure,
		"((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 9 1 NIL NIL NIL NIL)"
		"(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 163 "
		"(\"Tue, 1 Jan 2019 10:00:00 +0000\" \"the inner one\" "
		"((\"Inner Sender\" NIL \"inner\" \"example.com\")) "
		"((\"Inner Sender\" NIL \"inner\" \"example.com\")) "
		"((\"Inner Sender\" NIL \"inner\" \"example.com\")) NIL NIL NIL NIL "
		"\"<inner@example.com>\") "
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 26 2 NIL NIL NIL NIL) "
		"7 NIL (\"attachment\" NIL) NIL NIL) \"MIXED\" (\"BOUNDARY\" \"b\") NIL NIL NIL)");
	assert_string_equal(S.subject, "fwd");
	expect_section(rfc822_msg, "1", NULL, "see below");
	expect_section(rfc822_msg, "1", "MIME", "\r\n");
	expect_section(rfc822_msg, "2", NULL, INNER_HDR INNER_BODY);
	expect_section(rfc822_msg, "2", "MIME", RFC822_MIME);
	expect_section(rfc822_msg, "2", "HEADER", INNER_HDR);
	expect_section(rfc822_msg, "2", "header", INNER_HDR);
	expect_section(rfc822_msg, "2", "TEXT", INNER_BODY);
	expect_section(rfc822_msg, "2.1", NULL, INNER_BODY);
	expect_section(rfc822_msg, "2.1", "MIME", INNER_HDR);
	expect_no_section("2.2", NULL, 0);
	expect_no_section("2.1", "HEADER", 0);
	expect_no_section("1", "HEADER", 0);
}

/* A message/rfc822 top-level body whose message is multipart. */
#define FWD_INNER_HDR "Subject: inner\r\nContent-Type: multipart/alternative; boundary=\"a b\"\r\n\r\n"
#define FWD_INNER_BODY                                                                   \
	"--a b\r\nContent-Type: text/plain\r\n\r\none\r\n"                                \
	"--a b \r\nContent-Type: text/html\r\n\r\n<b>two</b>\r\n--a b--\r\n"
static const char fwd_msg[] = "Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n" FWD_INNER_HDR
			      FWD_INNER_BODY;

static void test_message_rfc822_top(void **state)
{
	(void)state;
	check_parse(fwd_msg);
	assert_string_equal(
		S.body,
		"(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 167 (NIL \"inner\" NIL NIL NIL NIL NIL "
		"NIL NIL NIL) ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 3 1)(\"TEXT\" \"HTML\" NIL "
		"NIL NIL \"7BIT\" 10 1) \"ALTERNATIVE\") 12)");
	expect_section(fwd_msg, "", "TEXT", FWD_INNER_HDR FWD_INNER_BODY);
	expect_section(fwd_msg, "1", NULL, FWD_INNER_HDR FWD_INNER_BODY);
	expect_section(fwd_msg, "1", "HEADER", FWD_INNER_HDR);
	expect_section(fwd_msg, "1", "TEXT", FWD_INNER_BODY);
	expect_section(fwd_msg, "1.1", NULL, "one");
	expect_section(fwd_msg, "1.2", NULL, "<b>two</b>");
	expect_section(fwd_msg, "1.2", "MIME", "Content-Type: text/html\r\n\r\n");
	expect_no_section("1.3", NULL, 0);
	expect_no_section("2", NULL, 0);
}

static void test_rfc2047_subject(void **state)
{
	(void)state;
	check_parse("From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\r\n"
		    "To: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>\r\n"
		    "Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"
		    " =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\r\n"
		    "\r\n"
		    "body\r\n");
	assert_string_equal(
		S.envelope,
		"(NIL \"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= "
		"=?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\" "
		"((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\")) "
		"((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\")) "
		"((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\")) "
		"((\"=?US-ASCII?Q?Keith_Moore?=\" NIL \"moore\" \"cs.utk.edu\")) NIL NIL NIL NIL)");
	assert_string_equal(S.subject, "If you can read this you understand the example.");
	assert_string_equal(S.from, "Keld J\xc3\xb8rn Simonsen <keld@dkuug.dk>");
	assert_string_equal(S.to, "Keith Moore <moore@cs.utk.edu>");
}

static void test_addresses(void **state)
{
	(void)state;
	check_parse("To: A Group: a@b.c, \"x y\" <d@e>;, undisclosed-recipients:;,\r\n"
		    "  last@x (Last Person)\r\n"
		    "Cc: <@r1,@r2:u@h>, \"a b\"@h, root, \"Joe \\\"JJ\\\" Doe\" <j@d>,,\r\n"
		    "  John Q. Public <jqp@h>, Mailer <>\r\n"
		    "Bcc: \r\n"
		    "\r\n");
	assert_string_equal(
		S.envelope,
		"(NIL NIL NIL NIL NIL "
		"((NIL NIL \"A Group\" NIL)(NIL NIL \"a\" \"b.c\")(\"x y\" NIL \"d\" \"e\")"
		"(NIL NIL NIL NIL)(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)"
		"(\"Last Person\" NIL \"last\" \"x\")) "
		"((NIL \"@r1,@r2\" \"u\" \"h\")(NIL NIL \"\\\"a b\\\"\" \"h\")(NIL NIL \"root\" \"\")"
		"(\"Joe \\\"JJ\\\" Doe\" NIL \"j\" \"d\")(\"John Q. Public\" NIL \"jqp\" \"h\")"
		"(\"Mailer\" NIL \"\" \"\")) NIL NIL NIL)");
	assert_string_equal(S.bcc, "");
}

static void test_missing_date(void **state)
{
	(void)state;
	check_parse("Subject: no date\r\n\r\nx\r\n");
	assert_string_equal(S.envelope,
			    "(NIL \"no date\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_int_equal(S.sent_date, 0);
	assert_string_equal(S.date_hdr, "");

	check_parse("Date: not a date at all\r\n\r\n");
	assert_int_equal(S.sent_date, 0);
	assert_string_equal(S.date_hdr, "not a date at all");
}

static void test_8bit_header(void **state)
{
	(void)state;
	check_parse("Subject: caf\xc3\xa9 \"q\"\r\nFrom: J\xc3\xb6rg <j@x.de>\r\n\r\n");
	assert_string_equal(S.envelope,
			    "(NIL {9}\r\ncaf\xc3\xa9 \"q\" "
			    "(({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x.de\")) "
			    "(({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x.de\")) "
			    "(({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x.de\")) NIL NIL NIL NIL NIL)");
	assert_string_equal(S.subject, "caf\xc3\xa9 \"q\"");
	assert_string_equal(S.from, "J\xc3\xb6rg <j@x.de>");

	/* Latin-1 octets: literal in ENVELOPE, UTF-8 in the summary. */
	check_parse("Subject: caf\xe9\r\n\r\n");
	assert_string_equal(S.envelope, "(NIL {4}\r\ncaf\xe9 NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_string_equal(S.subject, "caf\xc3\xa9");
}

static void test_header_fields(void **state)
{
	(void)state;
	static const char hdr[] = "Subject: hello\r\n world\r\n"
				  "From: a@b\r\n"
				  "X-Long: one\r\n\ttwo\r\n three\r\n"
				  "not a field line\r\n"
				  "to : c@d\r\n"
				  "\r\n";
	const char *names[] = { "SUBJECT", "To" };
	char *out;
	size_t n;

	assert_int_equal(mime_header_fields(hdr, sizeof(hdr) - 1, names, 2, 0, &out, &n), 0);
	track(out);
	assert_int_equal(n, strlen(out));
	assert_string_equal(out, "Subject: hello\r\n world\r\nto : c@d\r\n\r\n");
	untrack_free(out);

	const char *not_names[] = { "subject", "x-long" };
	assert_int_equal(mime_header_fields(hdr, sizeof(hdr) - 1, not_names, 2, 1, &out, &n), 0);
	track(out);
	assert_string_equal(out, "From: a@b\r\nnot a field line\r\nto : c@d\r\n\r\n");
	untrack_free(out);

	const char *prefix[] = { "Subj", "X-Long-Er" };
	assert_int_equal(mime_header_fields(hdr, sizeof(hdr) - 1, prefix, 2, 0, &out, &n), 0);
	track(out);
	assert_string_equal(out, "\r\n");
	untrack_free(out);

	/* No empty line (no body): none is added; a last field gets CRLF. */
	static const char bare[] = "Subject: s\r\nFrom: a@b";
	const char *from[] = { "from" };
	assert_int_equal(mime_header_fields(bare, sizeof(bare) - 1, from, 1, 0, &out, &n), 0);
	track(out);
	assert_string_equal(out, "From: a@b\r\n");
	untrack_free(out);

	/* Works on a located section: BODY[2.MIME] of the attachment message. */
	check_parse(att_msg);
	struct mime_section sec;
	assert_int_equal(mime_section_find(S.parts, strlen(att_msg), "2", "MIME", &sec), 1);
	const char *disp[] = { "content-disposition" };
	assert_int_equal(mime_header_fields(att_msg + sec.offset, sec.len, disp, 1, 0, &out, &n), 0);
	track(out);
	assert_string_equal(out, "Content-Disposition: attachment;\r\n filename=\"data.bin\"\r\n\r\n");
	untrack_free(out);
}

static void expect_decode(const char *enc, const char *in, const char *want, size_t want_len)
{
	char *out;
	size_t n;
	assert_int_equal(mime_decode_transfer(enc, in, strlen(in), &out, &n), 0);
	track(out);
	assert_int_equal(n, want_len);
	assert_memory_equal(out, want, n);
	assert_int_equal(out[n], '\0');
	untrack_free(out);
}

static void test_decode_transfer(void **state)
{
	(void)state;
	expect_decode("base64", "SGVsbG8sIHdvcmxkIQ==", "Hello, world!", 13);
	expect_decode("BASE64", "SGVs\r\nbG8s\r\nIHdvcmxkIQ==\r\n", "Hello, world!", 13);
	expect_decode("base64", "", "", 0);
	expect_decode("quoted-printable", "caf=C3=A9 =3D x=\r\ny\r\nsoft=\nend=", "caf\xc3\xa9 = xy\r\nsoftend",
		      19);
	expect_decode("7bit", "as is=3D", "as is=3D", 8);
	expect_decode(NULL, "raw\0", "raw", 3);
	expect_decode("binary", "", "", 0);

	char *out = (char *)1;
	size_t n = 1;
	assert_int_equal(mime_decode_transfer("base64", "SGVs*bG8=", 9, &out, &n), -1);
	assert_null(out);
	assert_int_equal(mime_decode_transfer("base64", "SGVsb", 5, &out, &n), -1);
	assert_int_equal(mime_decode_transfer("x-uuencode", "begin", 5, &out, &n), -1);
	assert_int_equal(mime_decode_transfer("unknown", "x", 1, &out, &n), -1);
}

struct collected {
	char buf[4096];
	size_t len;
	int bad_utf8;
};

static int utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		if (c < 0x80)
			k = 0;
		else if ((c & 0xe0) == 0xc0)
			k = 1;
		else if ((c & 0xf0) == 0xe0)
			k = 2;
		else if ((c & 0xf8) == 0xf0)
			k = 3;
		else
			return 0;
		if (k > n - i - 1)
			return 0; /* a chunk ends inside a sequence */
		for (size_t j = 1; j <= k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

static void collect(void *ctx, const char *utf8, size_t n)
{
	struct collected *c = ctx;
	if (!utf8_ok((const unsigned char *)utf8, n))
		c->bad_utf8 = 1;
	if (n > sizeof(c->buf) - 1 - c->len)
		n = sizeof(c->buf) - 1 - c->len;
	memcpy(c->buf + c->len, utf8, n);
	c->len += n;
	c->buf[c->len] = '\0';
}

static const char search_msg[] =
	"Subject: search\r\n"
	"Content-Type: multipart/mixed; boundary=s\r\n"
	"\r\n"
	"--s\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"Caf=E9 cr=E8me=\r\n br=FBl=E9e\r\n"
	"--s\r\n"
	"Content-Type: text/plain; charset=\"UTF-8\"\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"R3LDvMOfZSBhdXMg\r\nS8O2bG4K\r\n"
	"--s\r\n"
	"Content-Type: application/pdf\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"JVBERi0xLjQK\r\n"
	"--s\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"Subject: not in the text\r\n"
	"\r\n"
	"inner text\r\n"
	"--s--\r\n";

static void test_search_text(void **state)
{
	(void)state;
	struct collected c = { .len = 0 };
	assert_int_equal(mime_search_text_mem(search_msg, strlen(search_msg), collect, &c), 0);
	assert_false(c.bad_utf8);
	assert_string_equal(c.buf, "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e\r\n"
				   "\n"
				   "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\n"
				   "\n"
				   "inner text\r\n");

	struct collected d = { .len = 0 };
	int fd = tmp_fd(search_msg, strlen(search_msg));
	assert_int_equal(mime_search_text_fd(fd, collect, &d), 0);
	close(fd);
	assert_string_equal(c.buf, d.buf);

	/* Unknown charset and invalid octets: read as UTF-8, bad octets dropped. */
	static const char odd[] = "Content-Type: text/plain; charset=x-nonesuch\r\n\r\nok \xff\xc3\xa9!\r\n";
	struct collected e = { .len = 0 };
	assert_int_equal(mime_search_text_mem(odd, strlen(odd), collect, &e), 0);
	assert_false(e.bad_utf8);
	assert_string_equal(e.buf, "ok \xc3\xa9!\r\n");
}

static void test_malformed_missing_end(void **state)
{
	(void)state;
	static const char msg[] = "Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
				  "--zz\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
				  "--zz\r\n\r\nsecond part runs to the end\r\n";
	check_parse(msg);
	assert_string_equal(S.bodystructure,
			    "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)"
			    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 29 1 NIL NIL "
			    "NIL NIL) \"MIXED\" (\"BOUNDARY\" \"zz\") NIL NIL NIL)");
	expect_section(msg, "2", NULL, "second part runs to the end\r\n");

	/* An inner multipart without its close delimiter ends at the outer one. */
	static const char msg2[] = "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
				   "--o\r\nContent-Type: multipart/related; boundary=i\r\n\r\n"
				   "--i\r\n\r\nA\r\n--i\r\n\r\nB\r\n"
				   "--o\r\n\r\nC\r\n--o--\r\n";
	check_parse(msg2);
	assert_string_equal(S.body,
			    "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 1)"
			    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 1) "
			    "\"RELATED\")(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
			    "\"7BIT\" 1 1) \"MIXED\")");
	expect_section(msg2, "1.2", NULL, "B");
	expect_section(msg2, "2", NULL, "C");
	expect_section(msg2, "1", NULL, "--i\r\n\r\nA\r\n--i\r\n\r\nB");
}

static void test_malformed_bad_base64(void **state)
{
	(void)state;
	static const char msg[] = "Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\n"
				  "R0lG!!not base64!!\r\n";
	check_parse(msg);
	assert_string_equal(S.body, "(\"IMAGE\" \"GIF\" NIL NIL NIL \"BASE64\" 20)");
	struct mime_section sec;
	assert_int_equal(mime_section_find(S.parts, strlen(msg), "1", NULL, &sec), 1);
	char *out;
	size_t n;
	assert_int_equal(mime_decode_transfer(mime_section_encoding(S.parts, "1"), msg + sec.offset,
					      sec.len, &out, &n),
			 -1);
}

static void test_malformed_header_only(void **state)
{
	(void)state;
	static const char msg[] = "Subject: only a header\r\nFrom: a@b";
	check_parse(msg);
	assert_string_equal(S.envelope, "(NIL \"only a header\" ((NIL NIL \"a\" \"b\")) "
					"((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)");
	assert_string_equal(S.body,
			    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)");
	expect_section(msg, "", "HEADER", msg);
	expect_section(msg, "", "TEXT", "");
	expect_section(msg, "1", NULL, "");

	/* Not even a field: all of it is the header. */
	check_parse("just some text\r\nand more");
	assert_string_equal(S.body,
			    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)");
}

static void test_malformed_empty(void **state)
{
	(void)state;
	check_parse("");
	assert_string_equal(S.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_string_equal(S.bodystructure, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
					     "\"7BIT\" 0 0 NIL NIL NIL NIL)");
	assert_string_equal(S.subject, "");
	expect_section("", "", NULL, "");
	expect_section("", "", "HEADER", "");
	expect_section("", "1", NULL, "");

	check_parse("\r\n");
	assert_string_equal(S.body, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)");
	expect_section("\r\n", "", "HEADER", "\r\n");
}

static void test_malformed_multipart(void **state)
{
	(void)state;
	/* No boundary parameter: a text/plain stand-in with the real encoding. */
	check_parse("Content-Type: multipart/mixed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n--x\r\nhi\r\n");
	assert_string_equal(S.bodystructure, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
					     "\"8BIT\" 9 2 NIL NIL NIL NIL)");
	/* The boundary never appears: no part, same stand-in. */
	check_parse("Content-Type: multipart/mixed; boundary=nope\r\n\r\n--x\r\nhi\r\n");
	assert_string_equal(S.body, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 9 2)");
	expect_section("Content-Type: multipart/mixed; boundary=nope\r\n\r\n--x\r\nhi\r\n", "1", NULL,
		       "--x\r\nhi\r\n");
	struct collected c = { .len = 0 };
	static const char nob[] = "Content-Type: multipart/mixed\r\n\r\n--x\r\nhi\r\n";
	assert_int_equal(mime_search_text_mem(nob, strlen(nob), collect, &c), 0);
	assert_string_equal(c.buf, "--x\r\nhi\r\n");
	/* A MIME header cut short by a boundary: its CRLF goes with the boundary. */
	static const char cut[] = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
				  "--b\r\nContent-Type: text/html\r\n--b\r\n--b--\r\n";
	check_parse(cut);
	assert_string_equal(S.body, "((\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 0 0)"
				    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0) "
				    "\"MIXED\")");
	expect_section(cut, "1", "MIME", "Content-Type: text/html");
	expect_section(cut, "1", NULL, "");
	expect_section(cut, "2", "MIME", "");
	/* Invalid Content-Type: the default. */
	check_parse("Content-Type: ;;;\r\n\r\nx");
	assert_string_equal(S.body, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 1)");
	/* A boundary look-alike with trailing junk is content, not a boundary. */
	static const char junk[] = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
				   "--b\r\n\r\none\r\n--bx\r\n--b-- \r\n";
	check_parse(junk);
	expect_section(junk, "1", NULL, "one\r\n--bx");
	/* Transfer-encoded message/rfc822 is not descended into. */
	check_parse("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA==\r\n");
	assert_string_equal(S.body, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"BASE64\" 18 1)");
	/* Unquoted boundary with '=' (common) and an unknown encoding. */
	static const char eq[] = "Content-Type: multipart/mixed; boundary=----=_Part_0_1.2\r\n\r\n"
				 "------=_Part_0_1.2\r\nContent-Transfer-Encoding: X-UUENCODE\r\n\r\nbegin\r\n"
				 "------=_Part_0_1.2--\r\n";
	check_parse(eq);
	assert_string_equal(S.body, "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"X-UUENCODE\" 5 1) \"MIXED\")");
	assert_string_equal(mime_section_encoding(S.parts, "1"), "unknown");
}

static void test_lf_only(void **state)
{
	(void)state;
	static const char msg[] = "Subject: lf\nContent-Type: multipart/mixed; boundary=b\n\n"
				  "--b\nContent-Type: text/plain\n\nline one\nline two\n\n--b--\n";
	check_parse(msg);
	assert_string_equal(S.body, "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 18 2) \"MIXED\")");
	expect_section(msg, "1", NULL, "line one\nline two\n");
	expect_section(msg, "1", "MIME", "Content-Type: text/plain\n\n");
	expect_section(msg, "", "HEADER", "Subject: lf\nContent-Type: multipart/mixed; boundary=b\n\n");
}

static void test_rfc2231_params(void **state)
{
	(void)state;
	check_parse("Content-Type: application/x-stuff;\r\n"
		    " title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
		    " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n"
		    " title*2=\"isn't it!\"; name*1=\"name.txt\"; name*0=long\r\n"
		    "Content-Disposition: attachment; filename*=utf-8''%C3%A9t%C3%A9.txt (comment)\r\n"
		    "\r\n");
	assert_string_equal(S.bodystructure,
			    "(\"APPLICATION\" \"X-STUFF\" (\"TITLE*\" "
			    "\"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!\" "
			    "\"NAME\" \"longname.txt\") NIL NIL \"7BIT\" 0 NIL "
			    "(\"attachment\" (\"FILENAME*\" \"utf-8''%C3%A9t%C3%A9.txt\")) NIL NIL)");
}

static void test_digest_default(void **state)
{
	(void)state;
	static const char msg[] = "Content-Type: multipart/digest; boundary=d\r\n\r\n"
				  "--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n"
				  "--d\r\nContent-Type: text/plain\r\n\r\nplain\r\n--d--\r\n";
	check_parse(msg);
	assert_string_equal(S.body,
			    "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 21 (NIL \"one\" NIL NIL NIL "
			    "NIL NIL NIL NIL NIL) (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
			    "\"7BIT\" 5 1) 3)(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 5 1) \"DIGEST\")");
	expect_section(msg, "1", "HEADER", "Subject: one\r\n\r\n");
	expect_section(msg, "1.1", NULL, "first");
}

static void test_section_syntax(void **state)
{
	(void)state;
	check_parse(rfc822_msg);
	expect_no_section("0", NULL, -1);
	expect_no_section("01", NULL, -1);
	expect_no_section("1.", NULL, -1);
	expect_no_section(".1", NULL, -1);
	expect_no_section("1..2", NULL, -1);
	expect_no_section("a", NULL, -1);
	expect_no_section("1a", NULL, -1);
	expect_no_section("1234567890", NULL, -1);
	expect_no_section("", "MIME", -1);
	expect_no_section("1", "FOO", -1);
	expect_no_section("1", "HEADER.FIELDS", -1);
	expect_no_section("999999999", NULL, 0);
	expect_no_section("1", "", 1);
	struct mime_section sec;
	assert_int_equal(mime_section_find("garbage", 10, "1", NULL, &sec), -1);
	assert_null(mime_section_encoding(S.parts, "0"));
	assert_null(mime_section_encoding("garbage", "1"));
	/* A range never reaches past the stored size. */
	assert_int_equal(mime_section_find(S.parts, 10, "2", NULL, &sec), 1);
	assert_true(sec.offset + sec.len <= 10);
}

static char *build(size_t cap)
{
	char *p = malloc(cap);
	return track(p);
}

static void test_depth_limit(void **state)
{
	(void)state;
	char *msg = build(64 * 1024);
	size_t n = 0;
	const int levels = 30;
	for (int i = 0; i < levels; i++)
		n += (size_t)sprintf(msg + n, "%sContent-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n",
				     i == 0 ? "" : "", i, i);
	n += (size_t)sprintf(msg + n, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	for (int i = levels - 1; i >= 0; i--)
		n += (size_t)sprintf(msg + n, "--b%d--\r\n", i);
	check_parse_n(msg, n);

	char path[128] = "1";
	for (int i = 1; i < MIME_PARSE_MAX_DEPTH; i++)
		strcat(path, ".1");
	struct mime_section sec;
	assert_int_equal(mime_section_find(S.parts, n, path, NULL, &sec), 1);
	assert_memory_equal(msg + sec.offset, "--b20\r\n", 7); /* opaque from here */
	strcat(path, ".1");
	assert_int_equal(mime_section_find(S.parts, n, path, NULL, &sec), 0);
	size_t depth = 0, max = 0;
	for (const char *p = S.bodystructure; *p; p++) {
		if (*p == '(' && ++depth > max)
			max = depth;
		if (*p == ')')
			depth--;
	}
	assert_true(max <= MIME_PARSE_MAX_DEPTH + 3);
	untrack_free(msg);
}

static void test_part_limit(void **state)
{
	(void)state;
	const int parts = 1500;
	char *msg = build((size_t)parts * 32 + 256);
	size_t n = (size_t)sprintf(msg, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (int i = 1; i <= parts; i++)
		n += (size_t)sprintf(msg + n, "--p\r\n\r\npart %d\r\n", i);
	n += (size_t)sprintf(msg + n, "--p--\r\n");
	check_parse_n(msg, n);
	/* the root and 999 parts */
	struct mime_section sec;
	assert_int_equal(mime_section_find(S.parts, n, "999", NULL, &sec), 1);
	assert_int_equal(sec.len, 8);
	assert_memory_equal(msg + sec.offset, "part 999", 8);
	assert_int_equal(mime_section_find(S.parts, n, "1000", NULL, &sec), 0);
	untrack_free(msg);
}

/* A 2 MiB message: text plus a base64 attachment, read from a file. */
static char *big_message(size_t *len_r)
{
	size_t cap = 2 * 1024 * 1024 + 4096;
	char *msg = build(cap);
	size_t n = (size_t)sprintf(msg, "From: big@example.org\r\nSubject: big\r\n"
					"Content-Type: multipart/mixed; boundary=big\r\n\r\n"
					"--big\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n"
					"--big\r\nContent-Type: application/octet-stream\r\n"
					"Content-Transfer-Encoding: base64\r\n\r\n");
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned x = 12345;
	while (n < 2 * 1024 * 1024) {
		for (int i = 0; i < 76; i++) {
			x = x * 1103515245u + 12345u;
			msg[n++] = b64[(x >> 16) & 63];
		}
		msg[n++] = '\r';
		msg[n++] = '\n';
	}
	n += (size_t)sprintf(msg + n, "--big--\r\n");
	*len_r = n;
	return msg;
}

static void test_parse_fd_large(void **state)
{
	(void)state;
	size_t len;
	char *msg = big_message(&len);
	assert_true(len >= 2 * 1024 * 1024);
	check_parse_n(msg, len); /* mem vs fd equality is part of it */
	struct mime_section sec;
	assert_int_equal(mime_section_find(S.parts, len, "2", NULL, &sec), 1);
	assert_int_equal(sec.offset + sec.len, len - strlen("\r\n--big--\r\n"));
	untrack_free(msg);
}

/* Lines longer than the 64 KiB read chunk split into fragments on the fd
 * path; the result must not change. */
static void test_long_lines(void **state)
{
	(void)state;
	size_t cap = 600 * 1024;
	char *msg = build(cap);
	size_t n = (size_t)sprintf(msg, "Subject: ");
	memset(msg + n, 's', 150 * 1024);
	n += 150 * 1024;
	n += (size_t)sprintf(msg + n, "\r\nContent-Type: multipart/mixed; boundary=L\r\n\r\n--L\r\n\r\n");
	memset(msg + n, 'x', 200 * 1024);
	n += 200 * 1024;
	msg[n++] = '\r'; /* CR at a 64 KiB edge is handled wherever it falls */
	n += (size_t)sprintf(msg + n, "\n--L\r\nContent-Type: text/plain\r\n\r\n");
	memset(msg + n, 'y', 65536 - 1);
	n += 65536 - 1;
	n += (size_t)sprintf(msg + n, "\r\n--L--\r\n");
	check_parse_n(msg, n);
	assert_int_equal(strlen(S.subject), 150 * 1024);
	struct mime_section sec;
	assert_int_equal(mime_section_find(S.parts, n, "1", NULL, &sec), 1);
	assert_int_equal(sec.len, 200 * 1024);
	assert_int_equal(mime_section_find(S.parts, n, "2", NULL, &sec), 1);
	assert_int_equal(sec.len, 65535);
	untrack_free(msg);
}

struct feeder {
	int fd;
	const char *data;
	size_t len;
};

static void *feed_slowly(void *arg)
{
	struct feeder *f = arg;
	for (size_t off = 0; off < f->len;) {
		size_t k = f->len - off < 7 ? f->len - off : 7;
		ssize_t w = write(f->fd, f->data + off, k);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(f->fd);
	return NULL;
}

/* Short reads (a socket fed 7 octets at a time: not seekable, so read()
 * from where it is) give the same summary. */
static void test_parse_fd_short_reads(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct feeder f = { sv[1], nested_msg, strlen(nested_msg) };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, feed_slowly, &f), 0);
	const char *err;
	int ret = mime_parse_fd(sv[0], &F, &err);
	pthread_join(th, NULL);
	close(sv[0]);
	assert_int_equal(ret, 0);
	mime_summary_free(&S);
	assert_int_equal(mime_parse_mem(nested_msg, strlen(nested_msg), &S, &err), 0);
	assert_summary_equal(&S, &F);
	mime_summary_free(&F);

	assert_int_equal(mime_parse_fd(-1, &F, &err), -1);
	assert_string_equal(err, "read error");
	assert_null(F.envelope);
}

/* Random damage to real structures never breaks the invariants. */
static void test_mutations(void **state)
{
	(void)state;
	const char *seeds[] = { att_msg, nested_msg, rfc822_msg, fwd_msg, search_msg };
	static const char alphabet[] = "-\r\n:;=\"<>()@,b \t\\x";
	char *buf = build(8192);
	unsigned x = 42;
	for (int iter = 0; iter < 3000; iter++) {
		const char *seed = seeds[iter % 5];
		size_t n = strlen(seed);
		memcpy(buf, seed, n);
		int edits = 1 + iter % 8;
		for (int e = 0; e < edits; e++) {
			x = x * 1103515245u + 12345u;
			size_t at = (x >> 8) % (n + 1);
			x = x * 1103515245u + 12345u;
			char c = alphabet[(x >> 8) % (sizeof(alphabet) - 1)];
			switch ((x >> 20) % 3) {
			case 0:
				if (at < n)
					buf[at] = c;
				break;
			case 1:
				if (n < 8000) {
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = c;
					n++;
				}
				break;
			default:
				if (at < n) {
					memmove(buf + at, buf + at + 1, n - at - 1);
					n--;
				}
			}
		}
		if (iter % 7 == 0)
			buf[(x >> 4) % (n + 1) < n ? (x >> 4) % (n + 1) : 0] = '\0'; /* a NUL */
		check_parse_n(buf, n);
		struct collected c = { .len = 0 };
		assert_int_equal(mime_search_text_mem(buf, n, collect, &c), 0);
		assert_false(c.bad_utf8);
	}
	untrack_free(buf);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Not a pass/fail test: prints parse times for the record. */
static void test_timing(void **state)
{
	(void)state;
	char *small = build(8192);
	size_t sn = 0;
	sn += (size_t)sprintf(small, "%s", att_msg);
	static const char filler[] = "filler line of text for the 4 KiB message body...\r\n";
	while (sn < 4096) {
		memcpy(small + sn, filler, sizeof(filler) - 1);
		sn += sizeof(filler) - 1;
	}
	const char *err;
	int rounds = 2000;
	double t0 = now();
	for (int i = 0; i < rounds; i++) {
		mime_summary_free(&S);
		assert_int_equal(mime_parse_mem(small, sn, &S, &err), 0);
	}
	double t_small = (now() - t0) / rounds;

	size_t len;
	char *big = big_message(&len);
	size_t mib = 1024 * 1024;
	memcpy(big + mib - 11, "\r\n--big--\r\n", 11);
	rounds = 50;
	t0 = now();
	for (int i = 0; i < rounds; i++) {
		mime_summary_free(&S);
		assert_int_equal(mime_parse_mem(big, mib, &S, &err), 0);
	}
	double t_big = (now() - t0) / rounds;
	print_message("parse time: %zu octets %.1f us, 1 MiB %.2f ms\n", sn, t_small * 1e6,
		      t_big * 1e3);
	untrack_free(big);
	untrack_free(small);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, teardown)
	const struct CMUnitTest tests[] = {
		T(test_simple_text),
		T(test_sender_reply_to),
		T(test_multipart_attachment),
		T(test_alternative_in_mixed),
		T(test_message_rfc822),
		T(test_message_rfc822_top),
		T(test_rfc2047_subject),
		T(test_addresses),
		T(test_missing_date),
		T(test_8bit_header),
		T(test_header_fields),
		T(test_decode_transfer),
		T(test_search_text),
		T(test_malformed_missing_end),
		T(test_malformed_bad_base64),
		T(test_malformed_header_only),
		T(test_malformed_empty),
		T(test_malformed_multipart),
		T(test_lf_only),
		T(test_rfc2231_params),
		T(test_digest_default),
		T(test_section_syntax),
		T(test_depth_limit),
		T(test_part_limit),
		T(test_parse_fd_large),
		T(test_long_lines),
		T(test_parse_fd_short_reads),
		T(test_mutations),
		T(test_timing),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
