/*
 * libFuzzer target for imap/imap_mutf7.c: modified UTF-7 mailbox names
 * (RFC 3501 5.1.3). The input is tried both as modified UTF-7 and as UTF-8.
 *
 * Properties checked (abort() on violation):
 *  - a name the decoder accepts is well-formed UTF-8 without NUL, and
 *    encodes back to exactly the input: the decoder accepts only the one
 *    canonical form of each name;
 *  - UTF-8 the encoder accepts gives printable US-ASCII that decodes back
 *    to the input;
 *  - every refusal comes with a reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_mutf7.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

/* A strict RFC 3629 check of its own, so as not to trust the encoder's. */
static int utf8_ok(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned c = p[i];
		size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
				       : c >= 0xf0 && c <= 0xf4	  ? 4 : 0;
		if (c == 0 || n == 0 || len - i < n)
			return 0;
		for (size_t k = 1; k < n; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
		if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) ||
		    (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
			return 0;
		i += n;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, no NUL after it: ASan sees over-reads */
	char *in = malloc(size ? size : 1);
	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	const char *err = NULL;
	char *utf8 = imap_mutf7_to_utf8(in, size, &err);
	if (utf8 == NULL) {
		check(err != NULL);
	} else {
		size_t n = strlen(utf8);
		check(utf8_ok((const unsigned char *)utf8, n));
		char *back = imap_utf8_to_mutf7(utf8, n, &err);
		check(back != NULL && strlen(back) == size && memcmp(back, in, size) == 0);
		free(back);
		free(utf8);
	}
	err = NULL;
	char *m = imap_utf8_to_mutf7(in, size, &err);
	if (m == NULL) {
		check(err != NULL);
	} else {
		check(utf8_ok(data, size));
		size_t n = strlen(m);
		for (size_t i = 0; i < n; i++)
			check(m[i] >= 0x20 && m[i] <= 0x7e);
		char *back = imap_mutf7_to_utf8(m, n, &err);
		check(back != NULL && strlen(back) == size && memcmp(back, in, size) == 0);
		free(back);
		free(m);
	}
	free(in);
	return 0;
}
