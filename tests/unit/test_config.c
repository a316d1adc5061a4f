/*
 * Unit tests for core/config.c: petrel.conf loading and validation.
 *
 * Each test writes its config files into a fresh mkdtemp() directory, which
 * the teardown removes. Errors must name "file:line" and the key (config.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define HAVE_DEATH_CALLBACK 1
#endif

struct fixture {
	char dir[64];
	char path[128];      /* the config file */
	char cert[128];      /* readable PEM-ish files for [tls] */
	char key[128];
	struct config *config;
	char *error;
};

static struct fixture *fx; /* the running test's fixture */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/petrel-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/petrel.conf", f->dir);
	snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
	write_file(f->cert, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
	write_file(f->key, "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n");
	fx = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	config_free(f->config);
	free(f->error);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	fx = NULL;
	return 0;
}

#ifdef HAVE_DEATH_CALLBACK
/* A sanitizer report ends the process without the teardown: remove the
 * running test's directory all the same. */
static void remove_dir_on_death(void)
{
	if (fx != NULL)
		nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
#endif

static int group_setup(void **state)
{
	(void)state;
#ifdef HAVE_DEATH_CALLBACK
	__sanitizer_set_death_callback(remove_dir_on_death);
#endif
	return 0;
}

/* Write text as the config file and load it; must succeed. */
static struct config *load_ok(const char *text)
{
	config_free(fx->config);
	fx->config = NULL;
	free(fx->error);
	fx->error = NULL;
	write_file(fx->path, text);
	if (config_load(fx->path, &fx->config, &fx->error) != 0)
		fail_msg("config_load failed: %s\n--- config:\n%s", fx->error ? fx->error : "(null)",
			 text);
	assert_null(fx->error);
	assert_non_null(fx->config);
	return fx->config;
}

/* Write text and load it; must fail with an error that contains every one
 * of the NULL-terminated strings (the first "%s" in each is replaced by the
 * config file's path). */
static void load_err(const char *text, ...)
{
	struct config *c = NULL;
	va_list ap;

	free(fx->error);
	fx->error = NULL;
	write_file(fx->path, text);
	if (config_load(fx->path, &c, &fx->error) == 0) {
		fx->config = c;
		fail_msg("config_load accepted:\n%s", text);
	}
	if (fx->error == NULL)
		fail_msg("config_load failed without an error message:\n%s", text);
	va_start(ap, text);
	for (const char *want = va_arg(ap, const char *); want != NULL;
	     want = va_arg(ap, const char *)) {
		char expect[512];
		snprintf(expect, sizeof(expect), want, fx->path);
		if (strstr(fx->error, expect) == NULL) {
			va_end(ap);
			fail_msg("error \"%s\" does not contain \"%s\"\n--- config:\n%s", fx->error,
				 expect, text);
		}
	}
	va_end(ap);
}

/* config_validate() on the loaded config must fail naming every string. */
static void validate_err(const char *text, ...)
{
	struct config *c = load_ok(text);
	char *error = NULL;
	va_list ap;

	if (config_validate(c, &error) == 0)
		fail_msg("config_validate accepted:\n%s", text);
	if (error == NULL)
		fail_msg("config_validate failed without an error message:\n%s", text);
	fx->error = error;
	va_start(ap, text);
	for (const char *want = va_arg(ap, const char *); want != NULL;
	     want = va_arg(ap, const char *)) {
		char expect[512];
		snprintf(expect, sizeof(expect), want, fx->path);
		if (strstr(error, expect) == NULL) {
			va_end(ap);
			fail_msg("error \"%s\" does not contain \"%s\"", error, expect);
		}
	}
	va_end(ap);
}

/* ------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
	(void)state;
	struct config *c = load_ok("");
	assert_string_equal(c->path, fx->path);
	assert_string_equal(c->hostname, "localhost");
	assert_string_equal(c->data_dir, "/var/lib/petrel");
	assert_null(c->user);
	assert_int_equal(c->workers, 0);
	assert_null(c->tls_cert);
	assert_null(c->tls_key);
	assert_null(c->postmaster);
	assert_int_equal(c->n_listens, 0);
	assert_true(c->limits.max_message_size == 25u * 1024 * 1024);
	assert_int_equal(c->limits.smtp_line_max, 1000);
	assert_int_equal(c->limits.max_recipients, 100);
	assert_int_equal(c->limits.max_errors, 10);
	assert_int_equal(c->limits.max_connections, 10000);
	assert_int_equal(c->limits.command_timeout, 300);
	assert_int_equal(c->limits.data_timeout, 600);
	assert_int_equal(c->limits.output_high, 1024 * 1024);

	/* comments and blank lines only: still the defaults */
	c = load_ok("; comment\n# another\n\n[server]\n\n");
	assert_string_equal(c->hostname, "localhost");
}

static void test_all_keys(void **state)
{
	char text[2048];
	(void)state;
	snprintf(text, sizeof(text),
		 "# Petrel test configuration\n"
		 "[server]\n"
		 "hostname = mx.example.org\n"
		 "data_dir = /srv/petrel\n"
		 "user = petrel\n"
		 "workers = 4\n"
		 "log_level = debug\n"
		 "\n"
		 "[tls]\n"
		 "cert = %s\n"
		 "key = %s\n"
		 "\n"
		 "[smtp]\n"
		 "postmaster = admin@example.org\n"
		 "\n"
		 "[listen]\n"
		 "smtp = 127.0.0.1:2525\n"
		 "\n"
		 "[limits]\n"
		 "max_message_size = 50000000\n"
		 "smtp_line_max = 2048\n"
		 "max_recipients = 500\n"
		 "max_errors = 3\n"
		 "max_connections = 200\n"
		 "command_timeout = 60\n"
		 "data_timeout = 120\n"
		 "output_high = 65536\n",
		 fx->cert, fx->key);
	struct config *c = load_ok(text);
	assert_string_equal(c->hostname, "mx.example.org");
	assert_string_equal(c->data_dir, "/srv/petrel");
	assert_string_equal(c->user, "petrel");
	assert_int_equal(c->workers, 4);
	assert_string_equal(c->log_level, "debug");
	assert_string_equal(c->tls_cert, fx->cert);
	assert_string_equal(c->tls_key, fx->key);
	assert_string_equal(c->postmaster, "admin@example.org");
	assert_int_equal(c->n_listens, 1);
	assert_int_equal(c->listens[0].proto, PROTO_SMTP);
	assert_string_equal(c->listens[0].host, "127.0.0.1");
	assert_string_equal(c->listens[0].port, "2525");
	assert_int_equal(c->listens[0].config_line, 17);
	assert_true(c->limits.max_message_size == 50000000);
	assert_int_equal(c->limits.smtp_line_max, 2048);
	assert_int_equal(c->limits.max_recipients, 500);
	assert_int_equal(c->limits.max_errors, 3);
	assert_int_equal(c->limits.max_connections, 200);
	assert_int_equal(c->limits.command_timeout, 60);
	assert_int_equal(c->limits.data_timeout, 120);
	assert_int_equal(c->limits.output_high, 65536);

	char *error = NULL;
	if (config_validate(c, &error) != 0)
		fail_msg("config_validate: %s", error);
	assert_null(error);

	/* a later value replaces an earlier one; inline "; comments" go */
	c = load_ok("[server]\nhostname = a.example\nhostname = b.example ; the real one\n");
	assert_string_equal(c->hostname, "b.example");
	/* each log level */
	c = load_ok("[server]\nlog_level = info\n");
	assert_string_equal(c->log_level, "info");
	c = load_ok("[server]\nlog_level = warn\n");
	assert_string_equal(c->log_level, "warn");
	c = load_ok("[server]\nlog_level = error\n");
	assert_string_equal(c->log_level, "error");
}

static void test_missing_file(void **state)
{
	struct config *c = NULL;
	char path[160];
	(void)state;
	snprintf(path, sizeof(path), "%s/nonexistent.conf", fx->dir);
	assert_int_equal(config_load(path, &c, &fx->error), -1);
	assert_non_null(fx->error);
	assert_non_null(strstr(fx->error, path));
}

static void test_unknown_section(void **state)
{
	(void)state;
	/* reported at the section line itself */
	load_err("[server]\nhostname = a\n[bogus]\nx = 1\n", "%s:3:", "bogus", NULL);
	load_err("hostname = a\n", "%s:1:", "hostname", NULL); /* before any section */
	load_err("[Server]\nhostname = a\n", "%s:1:", "Server", NULL); /* names are exact */
}

/* config.h: "Unknown sections ... are errors": one without keys as well
 * (a misspelt "[limts]" whose keys were commented out must not pass). */
static void test_unknown_empty_section(void **state)
{
	(void)state;
	load_err("[server]\nhostname = a\n[bogus]\n", "%s:3:", "bogus", NULL);
}

static void test_unknown_key(void **state)
{
	(void)state;
	load_err("[server]\nhostname = a\nhostnme = b\n", "%s:3:", "hostnme", NULL);
	load_err("[tls]\ncertificate = /x\n", "%s:2:", "certificate", NULL);
	load_err("[smtp]\n\n\npostmaster_address = a@b\n", "%s:4:", "postmaster_address", NULL);
	load_err("[limits]\nmax_size = 10\n", "%s:2:", "max_size", NULL);
	load_err("[listen]\nsmtps = 127.0.0.1:465\n", "%s:2:", "smtps", NULL);
	load_err("[server]\nhostname\n", "%s:2:", NULL); /* no "=" */
}

/* When several lines are wrong, the message is about the first one: its
 * line number and its key, not the line of one and the key of another. */
static void test_first_error_reported(void **state)
{
	(void)state;
	load_err("[server]\nfoo = 1\nbar = 2\n", "%s:2:", "foo", NULL);
	load_err("[limits]\nmax_errors = 0\n[server]\nworkers = 999\n", "%s:2:", "max_errors",
		 NULL);
}

/* inih reads at most INI_MAX_LINE (200) octets a line. A longer line must
 * not be split in two lines, the tail parsed as a line of its own: that
 * misnumbers errors and can turn the tail of a comment into a setting. */
static void test_long_line_not_split(void **state)
{
	char text[1024];
	(void)state;

	/* 199 octets of comment, then what would be a key if read on its own */
	memset(text, 0, sizeof(text));
	strcpy(text, "[server]\n# ");
	memset(text + strlen(text), 'c', 197);
	strcat(text, "workers = 7\n");
	write_file(fx->path, text);
	struct config *c = NULL;
	if (config_load(fx->path, &c, &fx->error) == 0) {
		fx->config = c;
		assert_int_equal(c->workers, 0); /* a comment sets nothing */
	} else {
		/* or the long line is refused, naming its line */
		char want[256];
		snprintf(want, sizeof(want), "%s:2:", fx->path);
		if (strstr(fx->error, want) == NULL)
			fail_msg("error \"%s\" does not name line 2", fx->error);
	}

	/* a long value: kept whole, or refused naming its line (2) */
	config_free(fx->config);
	fx->config = NULL;
	free(fx->error);
	fx->error = NULL;
	char dir[301];
	memset(dir, 'd', 300);
	dir[0] = '/';
	dir[300] = '\0';
	snprintf(text, sizeof(text), "[server]\ndata_dir = %s\nworkers = 3\n", dir);
	write_file(fx->path, text);
	c = NULL;
	if (config_load(fx->path, &c, &fx->error) == 0) {
		fx->config = c;
		assert_string_equal(c->data_dir, dir);
		assert_int_equal(c->workers, 3);
	} else {
		char want[256];
		snprintf(want, sizeof(want), "%s:2:", fx->path);
		if (strstr(fx->error, want) == NULL)
			fail_msg("error \"%s\" does not name line 2", fx->error);
	}
}

static void test_bad_values(void **state)
{
	(void)state;
	load_err("[server]\nhostname =\n", "%s:2:", "hostname", NULL);
	load_err("[server]\nhostname = a b\n", "%s:2:", "hostname", NULL);
	load_err("[server]\ndata_dir =\n", "%s:2:", "data_dir", NULL);
	load_err("[server]\nlog_level = verbose\n", "%s:2:", "log_level", NULL);
	load_err("[server]\nlog_level = DEBUG\n", "%s:2:", "log_level", NULL);
	load_err("[smtp]\npostmaster = admin\n", "%s:2:", "postmaster", NULL);
	load_err("[smtp]\npostmaster = @example.org\n", "%s:2:", "postmaster", NULL);
	load_err("[smtp]\npostmaster = admin@\n", "%s:2:", "postmaster", NULL);
}

static void test_bad_numbers(void **state)
{
	(void)state;
	load_err("[limits]\nmax_recipients = abc\n", "%s:2:", "max_recipients", NULL);
	load_err("[limits]\nmax_recipients = -1\n", "%s:2:", "max_recipients", NULL);
	load_err("[limits]\nmax_recipients = 1x\n", "%s:2:", "max_recipients", NULL);
	load_err("[limits]\nmax_recipients = 0x10\n", "%s:2:", "max_recipients", NULL);
	load_err("[limits]\nmax_recipients = 1.5\n", "%s:2:", "max_recipients", NULL);
	load_err("[limits]\nmax_recipients = 10 M\n", "%s:2:", "max_recipients", NULL);
	load_err("[limits]\nmax_recipients =\n", "%s:2:", "max_recipients", NULL);
	load_err("[limits]\nmax_message_size = 99999999999999999999999\n", "%s:2:",
		 "max_message_size", NULL);
	load_err("[server]\nworkers = many\n", "%s:2:", "workers", NULL);
}

static void test_numbers_out_of_range(void **state)
{
	(void)state;
	load_err("[limits]\nmax_recipients = 0\n", "%s:2:", "max_recipients", NULL);
	load_err("[limits]\nmax_recipients = 100001\n", "%s:2:", "max_recipients", NULL);
	/* RFC 5321 4.5.3.1.4: a command line is at least 512 octets */
	load_err("[limits]\nsmtp_line_max = 511\n", "%s:2:", "smtp_line_max", NULL);
	load_err("[limits]\nsmtp_line_max = 65537\n", "%s:2:", "smtp_line_max", NULL);
	load_err("[limits]\nmax_errors = 0\n", "%s:2:", "max_errors", NULL);
	load_err("[limits]\ncommand_timeout = 86401\n", "%s:2:", "command_timeout", NULL);
	load_err("[limits]\ndata_timeout = 0\n", "%s:2:", "data_timeout", NULL);
	load_err("[limits]\nmax_connections = 1000001\n", "%s:2:", "max_connections", NULL);
	load_err("[limits]\noutput_high = 4095\n", "%s:2:", "output_high", NULL);
	load_err("[limits]\nmax_message_size = 1023\n", "%s:2:", "max_message_size", NULL);
	load_err("[limits]\nmax_message_size = 1025G\n", "%s:2:", "max_message_size", NULL);
	load_err("[server]\nworkers = 257\n", "%s:2:", "workers", NULL);

	/* the bounds themselves are fine */
	struct config *c = load_ok("[limits]\nsmtp_line_max = 512\nmax_recipients = 100000\n"
				   "command_timeout = 86400\nmax_message_size = 1024G\n"
				   "[server]\nworkers = 256\n");
	assert_int_equal(c->limits.smtp_line_max, 512);
	assert_int_equal(c->limits.max_recipients, 100000);
	assert_int_equal(c->limits.command_timeout, 86400);
	assert_true(c->limits.max_message_size == 1ull << 40);
	assert_int_equal(c->workers, 256);
}

static void test_size_suffixes(void **state)
{
	(void)state;
	struct config *c = load_ok("[limits]\nmax_message_size = 10M\noutput_high = 64k\n");
	assert_true(c->limits.max_message_size == 10u * 1024 * 1024);
	assert_int_equal(c->limits.output_high, 64 * 1024);
	c = load_ok("[limits]\nmax_message_size = 2G\noutput_high = 2M\nsmtp_line_max = 4K\n");
	assert_true(c->limits.max_message_size == 2ull * 1024 * 1024 * 1024);
	assert_int_equal(c->limits.output_high, 2 * 1024 * 1024);
	assert_int_equal(c->limits.smtp_line_max, 4096);
	c = load_ok("[limits]\nmax_message_size = 3m\noutput_high = 1g\n");
	assert_true(c->limits.max_message_size == 3u * 1024 * 1024);
	assert_int_equal(c->limits.output_high, 1024 * 1024 * 1024);

	load_err("[limits]\nmax_message_size = 1T\n", "%s:2:", "max_message_size", NULL);
	load_err("[limits]\nmax_message_size = 10MB\n", "%s:2:", "max_message_size", NULL);
	load_err("[limits]\nmax_message_size = M\n", "%s:2:", "max_message_size", NULL);
	/* 65 k exceeds smtp_line_max's 65536 */
	load_err("[limits]\nsmtp_line_max = 65k\n", "%s:2:", "smtp_line_max", NULL);
}

static void test_pop3_read_ahead_keys(void **state)
{
	(void)state;
	struct config *c = load_ok("");
	assert_true(c->pop3_read_ahead == 64 * 1024);
	assert_int_equal(c->pop3_read_ahead_ms, 1000);
	c = load_ok("[pop3]\nread_ahead = 0\nread_ahead_ms = 250\n");
	assert_true(c->pop3_read_ahead == 0);
	assert_int_equal(c->pop3_read_ahead_ms, 250);
	c = load_ok("[pop3]\nread_ahead = 1M\n");
	assert_true(c->pop3_read_ahead == 1024 * 1024);
	load_err("[pop3]\nread_ahead = 2M\n", "%s:2:", "[pop3] read_ahead", NULL);
	load_err("[pop3]\nread_ahead = -1\n", "%s:2:", "[pop3] read_ahead", NULL);
	load_err("[pop3]\nread_ahead_ms = 1h\n", "%s:2:", "[pop3] read_ahead_ms", NULL);
	load_err("[pop3]\nread_ahead_ms = 60001\n", "%s:2:", "[pop3] read_ahead_ms", NULL);
}

static void test_imap_keys(void **state)
{
	(void)state;
	/* RFC 7888 5: LITERAL+ or LITERAL-, never both; LITERAL+ by default */
	struct config *c = load_ok("");
	assert_int_equal(c->imap_literal_plus, 1);
	assert_true(c->limits.max_multiappend_size == 100u * 1024 * 1024);
	c = load_ok("[imap]\nliteral_plus = no\n");
	assert_int_equal(c->imap_literal_plus, 0);
	c = load_ok("[imap]\nliteral_plus = yes\n");
	assert_int_equal(c->imap_literal_plus, 1);
	load_err("[imap]\nliteral_plus = maybe\n", "%s:2:", "[imap] literal_plus", NULL);
	load_err("[imap]\nliteral_minus = yes\n", "%s:2:", "literal_minus", "unknown key", NULL);

	/* the MULTIAPPEND total follows max_message_size unless set */
	c = load_ok("[limits]\nmax_message_size = 10M\n");
	assert_true(c->limits.max_multiappend_size == 40u * 1024 * 1024);
	c = load_ok("[limits]\nmax_multiappend_size = 10M\nmax_message_size = 10M\n");
	assert_true(c->limits.max_multiappend_size == 10u * 1024 * 1024);
	/* below one message's limit: named with its own line */
	load_err("[limits]\nmax_message_size = 10M\n\nmax_multiappend_size = 1M\n", "%s:4:",
		 "max_multiappend_size", "max_message_size", NULL);
	load_err("[limits]\nmax_multiappend_size = 1000\n", "%s:2:", "max_multiappend_size",
		 NULL);
}

static void test_listen(void **state)
{
	(void)state;
	struct config *c = load_ok("[listen]\nsmtp = 127.0.0.1:25, [::1]:25\n");
	assert_int_equal(c->n_listens, 2);
	assert_int_equal(c->listens[0].proto, PROTO_SMTP);
	assert_string_equal(c->listens[0].host, "127.0.0.1");
	assert_string_equal(c->listens[0].port, "25");
	assert_int_equal(c->listens[0].config_line, 2);
	assert_int_equal(c->listens[1].proto, PROTO_SMTP);
	assert_string_equal(c->listens[1].host, "::1"); /* brackets stripped */
	assert_string_equal(c->listens[1].port, "25");
	assert_int_equal(c->listens[1].config_line, 2);

	/* several protocols and lines; port 0 (kernel's choice) is allowed */
	c = load_ok("[listen]\n\nsmtp = 0.0.0.0:0\nsubmission = [::]:587,127.0.0.1:587\n"
		    "imaps = [2001:db8::1]:993\n");
	assert_int_equal(c->n_listens, 4);
	assert_int_equal(c->listens[0].proto, PROTO_SMTP);
	assert_string_equal(c->listens[0].port, "0");
	assert_int_equal(c->listens[0].config_line, 3);
	assert_int_equal(c->listens[1].proto, PROTO_SUBMISSION);
	assert_string_equal(c->listens[1].host, "::");
	assert_int_equal(c->listens[1].config_line, 4);
	assert_int_equal(c->listens[2].proto, PROTO_SUBMISSION);
	assert_string_equal(c->listens[2].host, "127.0.0.1");
	assert_string_equal(c->listens[2].port, "587");
	assert_int_equal(c->listens[3].proto, PROTO_IMAPS);
	assert_string_equal(c->listens[3].host, "2001:db8::1");
	assert_string_equal(c->listens[3].port, "993");
	assert_int_equal(c->listens[3].config_line, 5);

	/* every protocol name is a key */
	for (int p = 0; p < PROTO_COUNT; p++) {
		char text[128];
		snprintf(text, sizeof(text), "[listen]\n%s = 127.0.0.1:1%d\n",
			 config_proto_name((enum listen_proto)p), p);
		c = load_ok(text);
		assert_int_equal(c->n_listens, 1);
		assert_int_equal(c->listens[0].proto, p);
	}
}

static void test_listen_bad(void **state)
{
	(void)state;
	load_err("[listen]\nsmtp = 127.0.0.1:\n", "%s:2:", "smtp", NULL);
	load_err("[listen]\nsmtp = :25\n", "%s:2:", "smtp", NULL);
	load_err("[listen]\nsmtp = []:25\n", "%s:2:", "smtp", NULL);
	load_err("[listen]\nsmtp = 127.0.0.1:65536\n", "%s:2:", "smtp", NULL);
	load_err("[listen]\nsmtp = 127.0.0.1:-1\n", "%s:2:", "smtp", NULL);
	load_err("[listen]\nsmtp = 127.0.0.1:smtp\n", "%s:2:", "smtp", NULL);
	load_err("[listen]\n\nsubmission = 127.0.0.1:587 x\n", "%s:3:", "submission", NULL);
	char text[256];
	char host[80];
	memset(host, '1', 70);
	host[70] = '\0';
	snprintf(text, sizeof(text), "[listen]\nsmtp = %s:25\n", host);
	load_err(text, "%s:2:", "smtp", NULL);
}

/* Entries without a port, or with a malformed "[address]". The error names
 * the entry. (Run last: under ASan a use-after-free in the error path of
 * parse_listen() aborts the binary, and the other tests should run first.) */
static void test_listen_no_port(void **state)
{
	(void)state;
	load_err("[listen]\nsmtp = [::1]\n", "%s:2:", "smtp", "'[::1]'", NULL);
	load_err("[listen]\nsmtp = [::1]25\n", "%s:2:", "smtp", "'[::1]25'", NULL);
	load_err("[listen]\nsmtp = [::1:25\n", "%s:2:", "smtp", "'[::1:25'", NULL);
	load_err("[listen]\nsmtp = 127.0.0.1\n", "%s:2:", "smtp", "'127.0.0.1'", NULL);
	load_err("[listen]\nsmtp = 127.0.0.1:25, 127.0.0.2\n", "%s:2:", "smtp", "127.0.0.2",
		 NULL);
}

/* A port is a plain decimal number: the k/M/G size suffixes do not apply
 * ("127.0.0.1:1k" is not port 1024). */
static void test_listen_port_no_suffix(void **state)
{
	(void)state;
	load_err("[listen]\nsmtp = 127.0.0.1:1k\n", "%s:2:", "smtp", NULL);
}

/* ---- config_validate ---- */

static void test_validate_ok(void **state)
{
	char text[1024];
	char *error = NULL;
	(void)state;

	/* nothing listens: nothing else is needed */
	struct config *c = load_ok("[server]\nhostname = a.example\n");
	assert_int_equal(config_validate(c, &error), 0);
	assert_null(error);

	snprintf(text, sizeof(text),
		 "[tls]\ncert = %s\nkey = %s\n[smtp]\npostmaster = root@example.org\n"
		 "[listen]\nsmtp = 127.0.0.1:0\n",
		 fx->cert, fx->key);
	c = load_ok(text);
	if (config_validate(c, &error) != 0)
		fail_msg("config_validate: %s", error);
	assert_null(error);
}

static void test_validate_unimplemented_proto(void **state)
{
	char text[1024];
	(void)state;
	for (int p = 0; p < PROTO_COUNT; p++) {
		if (config_proto_implemented((enum listen_proto)p))
			continue;
		const char *name = config_proto_name((enum listen_proto)p);
		snprintf(text, sizeof(text),
			 "[tls]\ncert = %s\nkey = %s\n[smtp]\npostmaster = root@example.org\n"
			 "[listen]\nsmtp = 127.0.0.1:25\n%s = 127.0.0.1:1000\n",
			 fx->cert, fx->key, name);
		char want[64];
		snprintf(want, sizeof(want), "[listen] %s", name);
		validate_err(text, "%s:8:", want, NULL);
		free(fx->error);
		fx->error = NULL;
	}
	assert_true(config_proto_implemented(PROTO_SMTP));
}

/* RFC 5321 4.5.1: postmaster@ every local domain must be deliverable. */
static void test_validate_postmaster_required(void **state)
{
	char text[1024];
	(void)state;
	snprintf(text, sizeof(text), "[tls]\ncert = %s\nkey = %s\n[listen]\nsmtp = 127.0.0.1:25\n",
		 fx->cert, fx->key);
	validate_err(text, "%s", "postmaster", NULL);
}

static void test_validate_tls_files(void **state)
{
	char text[1024], missing[160];
	(void)state;
	snprintf(missing, sizeof(missing), "%s/no-such-cert.pem", fx->dir);

	/* cert unreadable (missing; a mode-000 file would be readable by root) */
	snprintf(text, sizeof(text),
		 "[tls]\ncert = %s\nkey = %s\n[smtp]\npostmaster = r@x.org\n"
		 "[listen]\nsmtp = 127.0.0.1:25\n",
		 missing, fx->key);
	validate_err(text, "%s", "cert", missing, NULL);
	free(fx->error);
	fx->error = NULL;

	/* key unreadable */
	snprintf(text, sizeof(text),
		 "[tls]\ncert = %s\nkey = %s\n[smtp]\npostmaster = r@x.org\n"
		 "[listen]\nsmtp = 127.0.0.1:25\n",
		 fx->cert, missing);
	validate_err(text, "%s", "key", missing, NULL);
	free(fx->error);
	fx->error = NULL;

	/* not configured at all */
	validate_err("[smtp]\npostmaster = r@x.org\n[listen]\nsmtp = 127.0.0.1:25\n", "%s",
		     "cert", NULL);
	free(fx->error);
	fx->error = NULL;
	snprintf(text, sizeof(text),
		 "[tls]\ncert = %s\n[smtp]\npostmaster = r@x.org\n[listen]\nsmtp = 127.0.0.1:25\n",
		 fx->cert);
	validate_err(text, "%s", "key", NULL);

	/* unreadable for an unprivileged user: only checkable when not root */
	if (geteuid() != 0) {
		free(fx->error);
		fx->error = NULL;
		assert_int_equal(chmod(fx->cert, 0), 0);
		snprintf(text, sizeof(text),
			 "[tls]\ncert = %s\nkey = %s\n[smtp]\npostmaster = r@x.org\n"
			 "[listen]\nsmtp = 127.0.0.1:25\n",
			 fx->cert, fx->key);
		validate_err(text, "%s", "cert", fx->cert, NULL);
	}
}

static void test_auth_keys(void **state)
{
	(void)state;
	struct config *c = load_ok("[server]\nhostname = a\n");
	assert_int_equal(c->auth_cache_ttl, 0); /* off by default */
	assert_int_equal(c->auth_cache_size, 10000);
	c = load_ok("[auth]\ncache_ttl = 300\ncache_size = 5\n");
	assert_int_equal(c->auth_cache_ttl, 300);
	assert_int_equal(c->auth_cache_size, 5);
	c = load_ok("[auth]\ncache_ttl = 0\ncache_size = 1000000\n");
	assert_int_equal(c->auth_cache_ttl, 0);
	assert_int_equal(c->auth_cache_size, 1000000);
	load_err("[auth]\ncache_ttl = 86401\n", "%s:2:", "[auth] cache_ttl", NULL);
	load_err("[auth]\n\ncache_ttl = -5\n", "%s:3:", "cache_ttl", NULL);
	load_err("[auth]\ncache_size = 0\n", "%s:2:", "[auth] cache_size", NULL);
	load_err("[auth]\ncache_size = 2000000\n", "%s:2:", "cache_size", NULL);
	load_err("[auth]\ncache = yes\n", "%s:2:", "cache", "unknown key", NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_defaults),
		T(test_all_keys),
		T(test_missing_file),
		T(test_unknown_section),
		T(test_unknown_empty_section),
		T(test_unknown_key),
		T(test_first_error_reported),
		T(test_long_line_not_split),
		T(test_bad_values),
		T(test_bad_numbers),
		T(test_numbers_out_of_range),
		T(test_size_suffixes),
		T(test_imap_keys),
		T(test_pop3_read_ahead_keys),
		T(test_auth_keys),
		T(test_listen),
		T(test_listen_bad),
		T(test_listen_port_no_suffix),
		T(test_validate_ok),
		T(test_validate_unimplemented_proto),
		T(test_validate_postmaster_required),
		T(test_validate_tls_files),
		T(test_listen_no_port), /* last: see there */
	};
#undef T
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
