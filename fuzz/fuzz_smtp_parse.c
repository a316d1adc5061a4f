/*
 * libFuzzer target for smtp/smtp_parse.c: paths (RFC 5321 4.1.2, RFC 6531),
 * ESMTP parameters, smtp_path_address(), smtp_utf8_valid() and BDAT
 * arguments. The input, up to its first NUL, is the command argument.
 *
 * Properties checked (abort() on violation):
 *  - no parser reads past the NUL-terminated copy (exact-size heap blocks);
 *  - an accepted path has NUL-terminated local/domain, parameters pointing
 *    into the argument, valid UTF-8, and the utf8 flag set iff non-ASCII;
 *  - smtp_path_address() of an accepted path parses back to the same
 *    mailbox, and never writes more than outsz octets, always terminated;
 *  - smtp_next_param() makes progress and fills its buffers within bounds;
 *  - smtp_utf8_valid() agrees with the RFC 3629 section 4 byte table;
 *  - smtp_parse_bdat() agrees with strtoull() on what it accepts.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

/* RFC 3629 4: UTF8-2 = %xC2-DF tail; UTF8-3 = %xE0 %xA0-BF tail /
 * %xE1-EC 2tail / %xED %x80-9F tail / %xEE-EF 2tail; UTF8-4 = %xF0 %x90-BF
 * 2tail / %xF1-F3 3tail / %xF4 %x80-8F 2tail. */
static int utf8_table(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint8_t lo = 0x80, hi = 0xbf; /* range of the second octet */
		if (c <= 0x7f) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 3;
			if (c == 0xe0)
				lo = 0xa0;
			if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 4;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f;
		} else {
			return 0;
		}
		if (len - i < n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k < n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += n;
	}
	return 1;
}

static int has_non_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static void check_params(const char *params)
{
	/* exact-size buffers so that an overrun is seen */
	const size_t keysz = 24, valuesz = 40;
	char *key = malloc(keysz), *value = malloc(valuesz);
	check(key != NULL && value != NULL);
	const char *s = params;
	for (int n = 0; n < 1000; n++) {
		const char *before = s;
		int r = smtp_next_param(&s, key, keysz, value, valuesz);
		if (r != 1) {
			check(r == 0 || r == -1);
			if (r == 0)
				check(*s == '\0');
			break;
		}
		check(s > before);
		check(memchr(key, '\0', keysz) != NULL && key[0] != '\0');
		check(memchr(value, '\0', valuesz) != NULL);
		check(strchr(value, '=') == NULL && strchr(value, ' ') == NULL);
	}
	free(key);
	free(value);
}

static void check_path(const char *arg, int allow_null)
{
	struct smtp_path path, again;
	const char *params = NULL, *why = NULL;

	if (smtp_parse_path(arg, allow_null, &path, &params, &why) != 0) {
		check(why != NULL);
		return;
	}
	size_t arglen = strlen(arg);
	check(params != NULL && params >= arg && params <= arg + arglen);
	check(*params != ' ');
	check(memchr(path.local, '\0', sizeof(path.local)) != NULL);
	check(memchr(path.domain, '\0', sizeof(path.domain)) != NULL);
	check(!path.null || allow_null);
	check(utf8_table((const uint8_t *)path.local, strlen(path.local)));
	check(utf8_table((const uint8_t *)path.domain, strlen(path.domain)));
	check(path.utf8 == (has_non_ascii(path.local) || has_non_ascii(path.domain)));
	check_params(params);

	/* smtp_path_address: complete with room, parses back to the same */
	char addr[2 * SMTP_ADDR_MAX + 300];
	smtp_path_address(&path, addr, sizeof(addr));
	check(strlen(addr) < sizeof(addr) - 1);
	if (!path.null) {
		char *again_arg = malloc(strlen(addr) + 3);
		check(again_arg != NULL);
		sprintf(again_arg, "<%s>", addr);
		const char *p2 = NULL, *why2 = NULL;
		check(smtp_parse_path(again_arg, 0, &again, &p2, &why2) == 0);
		check(strcmp(path.local, again.local) == 0);
		check(strcmp(path.domain, again.domain) == 0);
		check(path.postmaster_only == again.postmaster_only);
		check(path.domain_literal == again.domain_literal);
		check(*p2 == '\0');
		free(again_arg);
	} else {
		check(addr[0] == '\0');
	}
	/* small buffers: in bounds and terminated */
	size_t full = strlen(addr);
	for (size_t outsz = 1; outsz <= full + 3; outsz += 1 + outsz / 4) {
		char *out = malloc(outsz);
		check(out != NULL);
		smtp_path_address(&path, out, outsz);
		check(memchr(out, '\0', outsz) != NULL);
		free(out);
	}
}

static void check_bdat(const char *arg)
{
	uint64_t size = 0;
	int last = -1;
	if (smtp_parse_bdat(arg, &size, &last) != 0)
		return;
	check(last == 0 || last == 1);
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	check(errno == 0 && (uint64_t)v == size);
	check(arg[0] >= '0' && arg[0] <= '9');
	check(last ? *end == ' ' : *end == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *arg = malloc(size + 1); /* exact size: the argument and its NUL */
	if (arg == NULL)
		return 0;
	memcpy(arg, data, size);
	arg[size] = '\0';

	check_path(arg, 0);
	check_path(arg, 1);
	check_params(arg);
	check_bdat(arg);

	/* smtp_utf8_valid on the raw octets, NULs included, in an exact-size copy */
	uint8_t *raw = malloc(size ? size : 1);
	if (raw != NULL) {
		memcpy(raw, data, size);
		check(smtp_utf8_valid((const char *)raw, size) == utf8_table(raw, size));
		free(raw);
	}
	free(arg);
	return 0;
}
