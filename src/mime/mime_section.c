/*
 * mime_section.c - what FETCH needs from a stored message without parsing it
 * again: section ranges from the part table (RFC 3501 6.4.5), the transfer
 * encoding and decoding for BINARY (RFC 3516), HEADER.FIELDS filtering.
 */
#include "mime/mime_parse_private.h"

#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

struct part_rec {
	char kind;
	uint64_t hdr_off, hdr_len, body_off, body_len, msg_hdr_len;
	const char *enc; /* static */
};

/* "" or nz-number *("." nz-number), each at most 9 digits. */
static int valid_path(const char *p)
{
	if (*p == '\0')
		return 1;
	for (;;) {
		if (*p < '1' || *p > '9')
			return 0;
		size_t n = 0;
		while (*p >= '0' && *p <= '9') {
			p++;
			if (++n > 9)
				return 0;
		}
		if (*p == '\0')
			return 1;
		if (*p != '.')
			return 0;
		p++;
	}
}

static const char *static_encoding(const char *s, size_t n)
{
	static const char *const known[] = { "7bit", "8bit", "binary", "base64",
					     "quoted-printable" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i]) == n && memcmp(known[i], s, n) == 0)
			return known[i];
	return "unknown";
}

static int read_u64(const char **pp, const char *end, uint64_t *v)
{
	const char *p = *pp;
	uint64_t x = 0;
	if (p >= end || *p < '0' || *p > '9')
		return -1;
	while (p < end && *p >= '0' && *p <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (p < end && *p == ' ')
		p++;
	*pp = p;
	*v = x;
	return 0;
}

/* 1 and *r for the record of path ("-" for the whole message), 0 when absent,
 * -1 when the table is not a version 1 table. */
static int find_rec(const char *parts, const char *path, struct part_rec *r)
{
	if (parts == NULL || strncmp(parts, "P1\n", 3) != 0)
		return -1;
	size_t pl = strlen(path);
	const char *p = parts + 3;
	while (*p != '\0') {
		const char *eol = strchr(p, '\n');
		const char *end = eol != NULL ? eol : p + strlen(p);
		if ((size_t)(end - p) > pl + 1 && memcmp(p, path, pl) == 0 && p[pl] == ' ') {
			const char *q = p + pl + 1;
			if (end - q < 2 || q[1] != ' ')
				return -1;
			r->kind = q[0];
			q += 2;
			if (read_u64(&q, end, &r->hdr_off) < 0 || read_u64(&q, end, &r->hdr_len) < 0 ||
			    read_u64(&q, end, &r->body_off) < 0 ||
			    read_u64(&q, end, &r->body_len) < 0)
				return -1;
			const char *sp = memchr(q, ' ', (size_t)(end - q));
			if (sp == NULL)
				return -1;
			r->enc = static_encoding(q, (size_t)(sp - q));
			q = sp + 1;
			if (read_u64(&q, end, &r->msg_hdr_len) < 0 || r->msg_hdr_len > r->body_len)
				return -1;
			return 1;
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return 0;
}

int mime_section_find(const char *parts, uint64_t msg_size, const char *part_path,
		      const char *suffix, struct mime_section *out)
{
	enum { S_NONE, S_HEADER, S_TEXT, S_MIME } sfx;
	if (part_path == NULL || !valid_path(part_path))
		return -1;
	if (suffix == NULL || *suffix == '\0')
		sfx = S_NONE;
	else if (mime_ascii_casecmp(suffix, "HEADER") == 0)
		sfx = S_HEADER;
	else if (mime_ascii_casecmp(suffix, "TEXT") == 0)
		sfx = S_TEXT;
	else if (mime_ascii_casecmp(suffix, "MIME") == 0)
		sfx = S_MIME;
	else
		return -1;

	struct part_rec r;
	uint64_t off, len;
	if (*part_path == '\0') {
		if (sfx == S_MIME)
			return -1;
		if (sfx == S_NONE) {
			out->offset = 0;
			out->len = msg_size;
			return 1;
		}
		if (find_rec(parts, "-", &r) <= 0)
			return -1;
		off = sfx == S_HEADER ? r.hdr_off : r.body_off;
		len = sfx == S_HEADER ? r.hdr_len : r.body_len;
	} else {
		int ret = find_rec(parts, part_path, &r);
		if (ret <= 0)
			return ret;
		switch (sfx) {
		case S_NONE:
			off = r.body_off;
			len = r.body_len;
			break;
		case S_MIME:
			off = r.hdr_off;
			len = r.hdr_len;
			break;
		default:
			if (r.kind != 'r')
				return 0;
			off = sfx == S_HEADER ? r.body_off : r.body_off + r.msg_hdr_len;
			len = sfx == S_HEADER ? r.msg_hdr_len : r.body_len - r.msg_hdr_len;
			break;
		}
	}
	if (off > msg_size)
		off = msg_size;
	if (len > msg_size - off)
		len = msg_size - off;
	out->offset = off;
	out->len = len;
	return 1;
}

const char *mime_section_encoding(const char *parts, const char *part_path)
{
	struct part_rec r;
	if (part_path == NULL || !valid_path(part_path))
		return NULL;
	if (*part_path == '\0')
		return find_rec(parts, "-", &r) > 0 ? "binary" : NULL;
	return find_rec(parts, part_path, &r) > 0 ? r.enc : NULL;
}

/* Only the base64 alphabet, '=' and white space; not 4n+1 symbols. */
static int base64_valid(const char *s, size_t n)
{
	size_t symbols = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/')
			symbols++;
		else if (c != '=' && c != ' ' && c != '\t' && c != '\r' && c != '\n')
			return 0;
	}
	return symbols % 4 != 1;
}

int mime_decode_transfer(const char *encoding, const char *data, size_t len,
			 char **out, size_t *out_len)
{
	GMimeContentEncoding ce;
	*out = NULL;
	*out_len = 0;
	if (encoding == NULL || mime_ascii_casecmp(encoding, "7bit") == 0 ||
	    mime_ascii_casecmp(encoding, "8bit") == 0 || mime_ascii_casecmp(encoding, "binary") == 0) {
		char *o = malloc(len + 1);
		if (o == NULL)
			return -1;
		if (len > 0)
			memcpy(o, data, len);
		o[len] = '\0';
		*out = o;
		*out_len = len;
		return 0;
	}
	if (mime_ascii_casecmp(encoding, "base64") == 0) {
		if (!base64_valid(data, len))
			return -1;
		ce = GMIME_CONTENT_ENCODING_BASE64;
	} else if (mime_ascii_casecmp(encoding, "quoted-printable") == 0) {
		ce = GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
	} else {
		return -1;
	}
	GMimeEncoding st;
	g_mime_encoding_init_decode(&st, ce);
	size_t cap = g_mime_encoding_outlen(&st, len) + 4;
	char *o = malloc(cap);
	if (o == NULL)
		return -1;
	/* flush() with the whole input is step() plus the end of the state. */
	size_t n = g_mime_encoding_flush(&st, data, len, o);
	o[n] = '\0';
	*out = o;
	*out_len = n;
	return 0;
}

static int name_matches(const struct mime_hdr_field *f, const char *const *names, size_t n)
{
	if (f->name_len == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == f->name_len &&
		    mime_ascii_ncasecmp(names[i], f->name, f->name_len) == 0)
			return 1;
	return 0;
}

int mime_header_fields(const char *hdr, size_t len, const char *const *names,
		       size_t n_names, int not, char **out, size_t *out_len)
{
	struct mime_buf b = { 0 };
	struct mime_hdr_iter it;
	struct mime_hdr_field f;

	mime_hdr_iter_init(&it, hdr, len);
	while (mime_hdr_next(&it, &f) > 0) {
		if (name_matches(&f, names, n_names) == !!not)
			continue;
		mime_buf_add(&b, f.field, f.field_len);
		if (f.field[f.field_len - 1] != '\n')
			mime_buf_adds(&b, "\r\n");
	}
	if (it.saw_blank)
		mime_buf_adds(&b, "\r\n");
	*out_len = b.len;
	*out = mime_buf_steal(&b);
	if (*out == NULL) {
		*out_len = 0;
		return -1;
	}
	return 0;
}
