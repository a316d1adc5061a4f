/* Modified UTF-7 mailbox names (RFC 3501 5.1.3) <-> UTF-8. */
#include "imap/imap_mutf7.h"

#include <stdint.h>
#include <stdlib.h>

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static size_t utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static char *fail(char *out, const char **error_r, const char *why)
{
	free(out);
	*error_r = why;
	return NULL;
}

char *imap_mutf7_to_utf8(const char *in, size_t len, const char **error_r)
{
	/* US-ASCII maps 1:1; n base64 characters carry at most 6n/16 UTF-16
	 * units of at most 3 octets each (a pair: 4 octets for 2 units), so
	 * the output is at most len + len/8 octets. */
	char *out = malloc(len + len / 8 + 4);
	if (out == NULL)
		return fail(NULL, error_r, "Out of memory");
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, o = 0;
	int after_run = 0; /* the previous item was a base64 run */
	while (i < len) {
		unsigned char c = p[i++];
		if (c != '&') {
			if (c < 0x20 || c > 0x7e)
				return fail(out, error_r,
					    "a control or 8-bit octet outside modified base64");
			out[o++] = (char)c;
			after_run = 0;
			continue;
		}
		if (i < len && p[i] == '-') {
			out[o++] = '&'; /* "&-" */
			i++;
			after_run = 0;
			continue;
		}
		if (i == len || b64_value(p[i]) < 0)
			return fail(out, error_r, "\"&\" starts no base64 (\"&\" itself is \"&-\")");
		if (after_run)
			return fail(out, error_r, "a superfluous shift (\"-&\" between base64 runs)");
		uint32_t bits = 0, high = 0;
		unsigned nbits = 0;
		while (i < len && p[i] != '-') {
			int v = b64_value(p[i]);
			if (v < 0)
				return fail(out, error_r,
					    "a character outside modified base64 (\"-\" must end it)");
			i++;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			uint32_t u = (bits >> nbits) & 0xffff;
			bits &= (1u << nbits) - 1;
			if (high != 0) {
				if (u < 0xdc00 || u > 0xdfff)
					return fail(out, error_r, "an unpaired UTF-16 high surrogate");
				o += utf8_put(out + o, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
				high = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				high = u;
			} else if (u >= 0xdc00 && u <= 0xdfff) {
				return fail(out, error_r, "an unpaired UTF-16 low surrogate");
			} else if (u >= 0x20 && u <= 0x7e) {
				return fail(out, error_r, "printable US-ASCII in modified base64");
			} else if (u == 0) {
				return fail(out, error_r, "U+0000 in a name");
			} else {
				o += utf8_put(out + o, u);
			}
		}
		if (i == len)
			return fail(out, error_r, "modified base64 not ended by \"-\"");
		i++; /* "-" */
		if (high != 0)
			return fail(out, error_r, "an unpaired UTF-16 high surrogate");
		if (nbits >= 6)
			return fail(out, error_r, "modified base64 of a partial UTF-16 unit");
		if (bits != 0)
			return fail(out, error_r, "non-zero padding bits in modified base64");
		after_run = 1;
	}
	out[o] = '\0';
	return out;
}

/* The code point at p (strict RFC 3629), its length in *n_r; -1 if
 * malformed. */
static int32_t utf8_next(const unsigned char *p, const unsigned char *end, size_t *n_r)
{
	unsigned c = *p;
	if (c < 0x80) {
		*n_r = 1;
		return (int32_t)c;
	}
	size_t more;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf)
		more = 1, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		more = 2, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		more = 3, cp = c & 0x07, min = 0x10000;
	else
		return -1;
	if ((size_t)(end - p) <= more)
		return -1;
	for (size_t k = 1; k <= more; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return -1;
	*n_r = more + 1;
	return (int32_t)cp;
}

char *imap_utf8_to_mutf7(const char *in, size_t len, const char **error_r)
{
	/* Worst case: a lone control character (1 octet) is "&" + 3 base64 +
	 * "-" (5); a run of k of them 2 + ceil(16k / 6) <= 5k; "&" is 2, other
	 * characters take 2 to 4 octets for at most 8 ("&" + 6 + "-"). */
	if (len > (SIZE_MAX - 1) / 5)
		return fail(NULL, error_r, "Name too long");
	char *out = malloc(5 * len + 1);
	if (out == NULL)
		return fail(NULL, error_r, "Out of memory");
	const unsigned char *p = (const unsigned char *)in, *end = p + len;
	size_t o = 0;
	int in_run = 0;
	uint32_t bits = 0;
	unsigned nbits = 0;
	while (p < end) {
		size_t n;
		int32_t cp = utf8_next(p, end, &n);
		if (cp < 0)
			return fail(out, error_r, "not well-formed UTF-8");
		if (cp == 0)
			return fail(out, error_r, "U+0000 in a name");
		p += n;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (in_run) {
				/* the last bits, zero-padded to a whole character */
				if (nbits > 0)
					out[o++] = b64_chars[(bits << (6 - nbits)) & 0x3f];
				out[o++] = '-';
				in_run = 0;
				bits = 0;
				nbits = 0;
			}
			out[o++] = (char)cp;
			if (cp == '&')
				out[o++] = '-';
			continue;
		}
		if (!in_run) {
			out[o++] = '&';
			in_run = 1;
		}
		uint32_t units[2];
		size_t nu = 0;
		if (cp >= 0x10000) {
			units[nu++] = 0xd800 + (((uint32_t)cp - 0x10000) >> 10);
			units[nu++] = 0xdc00 + (((uint32_t)cp - 0x10000) & 0x3ff);
		} else {
			units[nu++] = (uint32_t)cp;
		}
		for (size_t k = 0; k < nu; k++) {
			bits = (bits << 16) | units[k];
			nbits += 16;
			while (nbits >= 6) {
				nbits -= 6;
				out[o++] = b64_chars[(bits >> nbits) & 0x3f];
			}
			bits &= (1u << nbits) - 1;
		}
	}
	if (in_run) {
		if (nbits > 0)
			out[o++] = b64_chars[(bits << (6 - nbits)) & 0x3f];
		out[o++] = '-';
	}
	out[o] = '\0';
	return out;
}
