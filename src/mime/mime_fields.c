/*
 * mime_fields.c - header-level pieces of the parse-once summary: string
 * buffers, IMAP string quoting, header field iteration, Content-Type and
 * Content-Disposition parameters (RFC 2045, RFC 2231), RFC 5322 address lists
 * and the IMAP ENVELOPE (RFC 3501 7.4.2).
 */
#include "mime/mime_parse_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on work per header value; values come from untrusted mail. */
#define MAX_PARAMS 64
#define MAX_PARAM_SECTIONS 64
#define MAX_ADDR_TOKENS 20000

/* ---- buffers ---- */

void mime_buf_add(struct mime_buf *b, const void *p, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (n > SIZE_MAX / 2 - b->len) {
		b->oom = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (s == NULL) {
			b->oom = 1;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void mime_buf_adds(struct mime_buf *b, const char *s)
{
	mime_buf_add(b, s, strlen(s));
}

void mime_buf_addc(struct mime_buf *b, char c)
{
	mime_buf_add(b, &c, 1);
}

void mime_buf_addu64(struct mime_buf *b, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	mime_buf_add(b, tmp, (size_t)n);
}

char *mime_buf_steal(struct mime_buf *b)
{
	char *s = NULL;
	if (!b->oom) {
		s = b->s != NULL ? b->s : strdup("");
		b->s = NULL;
	}
	mime_buf_free(b);
	return s;
}

void mime_buf_free(struct mime_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

/* ---- ASCII helpers (locale-independent) ---- */

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static char upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
}

int mime_ascii_ncasecmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char x = lower(a[i]), y = lower(b[i]);
		if (x != y)
			return (unsigned char)x - (unsigned char)y;
		if (x == '\0')
			return 0;
	}
	return 0;
}

int mime_ascii_casecmp(const char *a, const char *b)
{
	return mime_ascii_ncasecmp(a, b, SIZE_MAX);
}

void mime_ascii_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = lower(*s);
}

/* ---- IMAP strings ---- */

void mime_buf_imap_string(struct mime_buf *b, const char *s, size_t n)
{
	size_t nuls = 0;
	int quoted = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0)
			nuls++;
		else if (c >= 0x80 || c == '\r' || c == '\n')
			quoted = 0;
	}
	if (quoted) {
		mime_buf_addc(b, '"');
		size_t start = 0;
		for (size_t i = 0; i < n; i++) {
			if (s[i] != '"' && s[i] != '\\' && s[i] != '\0')
				continue;
			mime_buf_add(b, s + start, i - start);
			if (s[i] != '\0')
				mime_buf_addc(b, '\\'), mime_buf_addc(b, s[i]);
			start = i + 1;
		}
		mime_buf_add(b, s + start, n - start);
		mime_buf_addc(b, '"');
		return;
	}
	mime_buf_addc(b, '{');
	mime_buf_addu64(b, n - nuls);
	mime_buf_adds(b, "}\r\n");
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\0')
			continue;
		mime_buf_add(b, s + start, i - start);
		start = i + 1;
	}
	mime_buf_add(b, s + start, n - start);
}

void mime_buf_imap_nstring(struct mime_buf *b, const char *s)
{
	if (s == NULL)
		mime_buf_adds(b, "NIL");
	else
		mime_buf_imap_string(b, s, strlen(s));
}

void mime_buf_imap_upper(struct mime_buf *b, const char *s)
{
	if (s == NULL) {
		mime_buf_adds(b, "NIL");
		return;
	}
	size_t n = strlen(s);
	char small[64] = { 0 };
	char *u = n < sizeof(small) ? small : malloc(n + 1);
	if (u == NULL) {
		b->oom = 1;
		return;
	}
	for (size_t i = 0; i < n; i++)
		u[i] = upper(s[i]);
	mime_buf_imap_string(b, u, n);
	if (u != small)
		free(u);
}

/* ---- header blocks ---- */

void mime_hdr_iter_init(struct mime_hdr_iter *it, const char *hdr, size_t len)
{
	it->p = hdr;
	it->end = hdr + len;
	it->saw_blank = 0;
}

static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl != NULL ? nl + 1 : end;
}

static int is_blank_line(const char *p, const char *end)
{
	return (end - p >= 1 && p[0] == '\n') ||
	       (end - p >= 2 && p[0] == '\r' && p[1] == '\n');
}

int mime_hdr_next(struct mime_hdr_iter *it, struct mime_hdr_field *f)
{
	/* A header line that starts with a blank continues the previous field;
	 * one at the very start of the block has no field and is skipped. */
	while (it->p < it->end && (*it->p == ' ' || *it->p == '\t') &&
	       !is_blank_line(it->p, it->end))
		it->p = line_end(it->p, it->end);
	if (it->p >= it->end)
		return 0;
	if (is_blank_line(it->p, it->end)) {
		it->saw_blank = 1;
		return 0;
	}
	const char *start = it->p;
	const char *eol = line_end(start, it->end);
	const char *colon = memchr(start, ':', (size_t)(eol - start));
	const char *p = eol;
	while (p < it->end && (*p == ' ' || *p == '\t'))
		p = line_end(p, it->end);
	it->p = p;

	f->field = start;
	f->field_len = (size_t)(p - start);
	if (colon == NULL) {
		f->name = start;
		f->name_len = 0;
		f->value = start;
		f->value_len = f->field_len;
		return 1;
	}
	size_t nl = (size_t)(colon - start);
	while (nl > 0 && (start[nl - 1] == ' ' || start[nl - 1] == '\t'))
		nl--; /* obs-optional: "Subject :" */
	f->name = start;
	f->name_len = nl;
	f->value = colon + 1;
	f->value_len = (size_t)(p - (colon + 1));
	return 1;
}

char *mime_hdr_unfold(const char *v, size_t n)
{
	char *out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] != '\r' && v[i] != '\n' && v[i] != '\0')
			out[o++] = v[i];
	size_t s = 0;
	while (s < o && (out[s] == ' ' || out[s] == '\t'))
		s++;
	while (o > s && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	memmove(out, out + s, o - s);
	out[o - s] = '\0';
	return out;
}

/* ---- RFC 2045 / RFC 2231 parameters ---- */

static int is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL && c != '\0';
}

static int is_token_char(char c)
{
	unsigned char u = (unsigned char)c;
	return u > 0x20 && u < 0x7f && !is_tspecial(c);
}

/* Skips blanks and (nested) comments. */
static const char *skip_cfws(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '(')
			return p;
		int depth = 0;
		for (; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

struct raw_param {
	char *base;  /* lower-case name without "*N" / "*" */
	char *value;
	int section; /* -1: no "*N" */
	int extended;
};

static void raw_params_free(struct raw_param *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].base);
		free(r[i].value);
	}
}

/* Reads "; name=value" pairs leniently: junk up to the next ';' is skipped,
 * and an unquoted value runs to the next ';' when it holds blanks or
 * tspecials (boundary=----=_Part_1 is common and means what it says). */
static int parse_raw_params(const char *p, struct raw_param *r, size_t *n_r, int *oom_r)
{
	size_t n = 0;
	for (;;) {
		p = skip_cfws(p);
		if (*p == '\0')
			break;
		if (*p != ';') {
			const char *semi = strchr(p, ';');
			if (semi == NULL)
				break;
			p = semi;
		}
		p = skip_cfws(p + 1);
		const char *name = p;
		while (is_token_char(*p))
			p++;
		size_t name_len = (size_t)(p - name);
		p = skip_cfws(p);
		if (name_len == 0 || *p != '=')
			continue;
		p = skip_cfws(p + 1);

		struct mime_buf v = { 0 };
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				mime_buf_addc(&v, *p);
			}
			if (*p == '"')
				p++;
		} else {
			const char *vs = p;
			while (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t' && *p != '"' &&
			       *p != '(')
				p++;
			const char *ve = p;
			const char *after = skip_cfws(p);
			if (*after != '\0' && *after != ';') {
				const char *semi = strchr(after, ';');
				ve = semi != NULL ? semi : after + strlen(after);
				while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
					ve--;
				p = ve;
			}
			mime_buf_add(&v, vs, (size_t)(ve - vs));
		}
		if (n == MAX_PARAMS) {
			mime_buf_free(&v);
			continue;
		}
		struct raw_param *rp = &r[n];
		rp->section = -1;
		rp->extended = 0;
		size_t bl = name_len;
		if (bl > 0 && name[bl - 1] == '*') {
			rp->extended = 1;
			bl--;
		}
		size_t star = bl;
		while (star > 0 && name[star - 1] >= '0' && name[star - 1] <= '9')
			star--;
		if (star > 0 && star < bl && name[star - 1] == '*' && bl - star <= 3) {
			rp->section = atoi(name + star);
			bl = star - 1;
		}
		if (bl == 0) {
			mime_buf_free(&v);
			continue;
		}
		rp->base = dup_n(name, bl);
		rp->value = mime_buf_steal(&v);
		if (rp->base == NULL || rp->value == NULL) {
			free(rp->base);
			free(rp->value);
			*oom_r = 1;
			break;
		}
		mime_ascii_lower(rp->base);
		n++;
	}
	*n_r = n;
	return *oom_r ? -1 : 0;
}

static int attr_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '*' && c != '\'' && c != '%' && !is_tspecial((char)c);
}

static void pct_encode(struct mime_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (attr_char(c)) {
			mime_buf_addc(b, (char)c);
		} else {
			mime_buf_addc(b, '%');
			mime_buf_addc(b, hex[c >> 4]);
			mime_buf_addc(b, hex[c & 15]);
		}
	}
}

static int params_has(const struct mime_params *p, const char *name)
{
	return mime_params_get(p, name) != NULL;
}

static int params_push(struct mime_params *p, char *name, char *value)
{
	if (name == NULL || value == NULL || params_has(p, name)) {
		int oom = name == NULL || value == NULL;
		free(name);
		free(value);
		return oom ? -1 : 0;
	}
	struct mime_param *v = realloc(p->v, (p->n + 1) * sizeof(*v));
	if (v == NULL) {
		free(name);
		free(value);
		return -1;
	}
	p->v = v;
	v[p->n].name = name;
	v[p->n].value = value;
	p->n++;
	return 0;
}

/* RFC 2231 3/4: join name*0, name*1... in order (stopping at a gap). When any
 * section is extended the result is "name*" in extended syntax, the plain
 * sections percent-encoded, so clients decode one value; else plain "name". */
static int merge_params(struct raw_param *r, size_t n, struct mime_params *out)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].base == NULL)
			continue; /* consumed by an earlier merge */
		if (r[i].section < 0) {
			struct mime_buf k = { 0 };
			mime_buf_adds(&k, r[i].base);
			if (r[i].extended)
				mime_buf_addc(&k, '*');
			if (params_push(out, mime_buf_steal(&k), strdup(r[i].value)) < 0)
				return -1;
			continue;
		}
		const char *base = r[i].base;
		struct raw_param *sec[MAX_PARAM_SECTIONS] = { 0 };
		for (size_t j = i; j < n; j++)
			if (r[j].base != NULL && r[j].section >= 0 &&
			    r[j].section < MAX_PARAM_SECTIONS && strcmp(r[j].base, base) == 0 &&
			    sec[r[j].section] == NULL)
				sec[r[j].section] = &r[j];
		size_t count = 0;
		int any_ext = 0;
		while (count < MAX_PARAM_SECTIONS && sec[count] != NULL) {
			any_ext |= sec[count]->extended;
			count++;
		}
		struct mime_buf k = { 0 }, v = { 0 };
		mime_buf_adds(&k, base);
		if (any_ext)
			mime_buf_addc(&k, '*');
		for (size_t s = 0; s < count; s++) {
			if (!any_ext || sec[s]->extended) {
				mime_buf_adds(&v, sec[s]->value);
			} else {
				if (s == 0)
					mime_buf_adds(&v, "''");
				pct_encode(&v, sec[s]->value);
			}
		}
		int ret = count > 0 ? params_push(out, mime_buf_steal(&k), mime_buf_steal(&v)) : 0;
		mime_buf_free(&k);
		mime_buf_free(&v);
		if (ret < 0)
			return -1;
		/* drop every section of this name, used or not */
		for (size_t j = i; j < n; j++)
			if (r[j].base != NULL && j != i && r[j].section >= 0 &&
			    strcmp(r[j].base, base) == 0) {
				free(r[j].base);
				r[j].base = NULL;
			}
		free(r[i].base);
		r[i].base = NULL;
	}
	return 0;
}

static int parse_params(const char *p, struct mime_params *out, int *oom_r)
{
	struct raw_param raw[MAX_PARAMS];
	size_t n = 0;
	int ret = parse_raw_params(p, raw, &n, oom_r);
	if (ret == 0 && merge_params(raw, n, out) < 0) {
		*oom_r = 1;
		ret = -1;
	}
	raw_params_free(raw, n);
	return ret;
}

const char *mime_params_get(const struct mime_params *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].name, name) == 0)
			return p->v[i].value;
	return NULL;
}

void mime_params_free(struct mime_params *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].value);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

static const char *read_token(const char *p, char **tok_r, int *oom_r)
{
	const char *s = p;
	while (is_token_char(*p))
		p++;
	*tok_r = NULL;
	if (p == s)
		return NULL;
	*tok_r = dup_n(s, (size_t)(p - s));
	if (*tok_r == NULL) {
		*oom_r = 1;
		return NULL;
	}
	return p;
}

int mime_parse_content_type(const char *value, char **type_r, char **subtype_r,
			    struct mime_params *params_r, int *oom_r)
{
	char *type = NULL, *subtype = NULL;
	const char *p = read_token(skip_cfws(value), &type, oom_r);
	if (p != NULL) {
		p = skip_cfws(p);
		p = *p == '/' ? read_token(skip_cfws(p + 1), &subtype, oom_r) : NULL;
	}
	if (p == NULL || parse_params(p, params_r, oom_r) < 0) {
		free(type);
		free(subtype);
		mime_params_free(params_r);
		return -1;
	}
	mime_ascii_lower(type);
	mime_ascii_lower(subtype);
	*type_r = type;
	*subtype_r = subtype;
	return 0;
}

int mime_parse_disposition(const char *value, char **type_r,
			   struct mime_params *params_r, int *oom_r)
{
	char *type = NULL;
	const char *p = read_token(skip_cfws(value), &type, oom_r);
	if (p == NULL || parse_params(p, params_r, oom_r) < 0) {
		free(type);
		mime_params_free(params_r);
		return -1;
	}
	*type_r = type;
	return 0;
}

void mime_buf_imap_params(struct mime_buf *b, const struct mime_params *p)
{
	if (p->n == 0) {
		mime_buf_adds(b, "NIL");
		return;
	}
	mime_buf_addc(b, '(');
	for (size_t i = 0; i < p->n; i++) {
		if (i > 0)
			mime_buf_addc(b, ' ');
		mime_buf_imap_upper(b, p->v[i].name);
		mime_buf_addc(b, ' ');
		mime_buf_imap_nstring(b, p->v[i].value);
	}
	mime_buf_addc(b, ')');
}

void mime_buf_imap_language(struct mime_buf *b, const char *value)
{
	size_t count = 0;
	const char *p = value;
	while (value != NULL && *p != '\0') {
		p = skip_cfws(p);
		const char *s = p;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t' && *p != '(')
			p++;
		if (p > s) {
			mime_buf_addc(b, count++ == 0 ? '(' : ' ');
			mime_buf_imap_string(b, s, (size_t)(p - s));
		}
		p = skip_cfws(p);
		if (*p != '\0' && *p != ',') {
			const char *comma = strchr(p, ',');
			p = comma != NULL ? comma : p + strlen(p);
		}
		if (*p == ',')
			p++;
	}
	mime_buf_adds(b, count > 0 ? ")" : "NIL");
}

/* ---- RFC 5322 addresses ---- */

enum tok_type { TOK_ATOM, TOK_QSTR, TOK_DLIT, TOK_SPECIAL, TOK_COMMENT };

struct tok {
	enum tok_type type;
	const char *p; /* raw octets; TOK_QSTR with its quotes, TOK_COMMENT without parens */
	size_t n;
	int ws; /* blank or comment before it */
};

struct toks {
	struct tok *v;
	size_t n, cap;
	int oom;
};

static void toks_push(struct toks *t, enum tok_type type, const char *p, size_t n, int ws)
{
	if (t->oom || t->n == MAX_ADDR_TOKENS)
		return;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct tok *v = realloc(t->v, cap * sizeof(*v));
		if (v == NULL) {
			t->oom = 1;
			return;
		}
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = (struct tok){ type, p, n, ws };
}

static void tokenize(const char *s, struct toks *t)
{
	size_t n = strlen(s), i = 0;
	int ws = 0;
	while (i < n) {
		char c = s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			ws = 1;
			i++;
		} else if (c == '(') {
			size_t j = i, depth = 0;
			for (; j < n; j++) {
				if (s[j] == '\\' && j + 1 < n)
					j++;
				else if (s[j] == '(')
					depth++;
				else if (s[j] == ')' && --depth == 0)
					break;
			}
			size_t end = j < n ? j : n;
			toks_push(t, TOK_COMMENT, s + i + 1, end - i - 1, ws);
			ws = 1;
			i = j < n ? j + 1 : n;
		} else if (c == '"') {
			size_t j = i + 1;
			for (; j < n && s[j] != '"'; j++)
				if (s[j] == '\\' && j + 1 < n)
					j++;
			size_t end = j < n ? j + 1 : n;
			toks_push(t, TOK_QSTR, s + i, end - i, ws);
			ws = 0;
			i = end;
		} else if (c == '[') {
			const char *close = memchr(s + i, ']', n - i);
			size_t end = close != NULL ? (size_t)(close - s) + 1 : n;
			toks_push(t, TOK_DLIT, s + i, end - i, ws);
			ws = 0;
			i = end;
		} else if (strchr("<>@,;:.", c) != NULL) {
			toks_push(t, TOK_SPECIAL, s + i, 1, ws);
			ws = 0;
			i++;
		} else {
			/* at least one octet: a stray ')' or ']' is an atom too */
			size_t j = i + 1;
			while (j < n && strchr(" \t\r\n()<>@,;:.\"[", s[j]) == NULL)
				j++;
			toks_push(t, TOK_ATOM, s + i, j - i, ws);
			ws = 0;
			i = j;
		}
	}
}

static int is_sp(const struct tok *t, char c)
{
	return t->type == TOK_SPECIAL && t->p[0] == c;
}

/* Unquoted content of a quoted string token. */
static void add_unquoted(struct mime_buf *b, const struct tok *t)
{
	size_t n = t->n;
	const char *p = t->p + 1;
	n = n >= 2 && t->p[n - 1] == '"' ? n - 2 : n - 1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' && i + 1 < n)
			i++;
		mime_buf_addc(b, p[i]);
	}
}

/* display-name / group name: words joined by single blanks, quoted strings
 * unquoted, RFC 2047 encoded-words left as they are. NULL when empty. */
static char *phrase(const struct toks *t, size_t from, size_t to, int *oom_r)
{
	struct mime_buf b = { 0 };
	for (size_t i = from; i < to; i++) {
		const struct tok *k = &t->v[i];
		if (k->type == TOK_COMMENT)
			continue;
		if (b.len > 0 && k->ws && !is_sp(k, '.'))
			mime_buf_addc(&b, ' ');
		if (k->type == TOK_QSTR)
			add_unquoted(&b, k);
		else
			mime_buf_add(&b, k->p, k->n);
	}
	if (b.oom)
		*oom_r = 1;
	if (b.len == 0) {
		mime_buf_free(&b);
		return NULL;
	}
	return mime_buf_steal(&b);
}

struct addr {
	char *name, *adl, *mailbox, *host;
};

static void addr_free(struct addr *a)
{
	free(a->name);
	free(a->adl);
	free(a->mailbox);
	free(a->host);
	memset(a, 0, sizeof(*a));
}

/* addr-spec in tokens [from, to): local-part "@" domain. The local part
 * keeps its quotes (mailbox@host must stay a valid address); the domain
 * stops at a blank that does not sit next to a dot. */
static void addr_spec(const struct toks *t, size_t from, size_t to, struct addr *a, int *oom_r)
{
	struct mime_buf local = { 0 }, dom = { 0 };
	size_t i = from;
	for (; i < to && !is_sp(&t->v[i], '@'); i++) {
		const struct tok *k = &t->v[i];
		if (k->type == TOK_COMMENT)
			continue;
		if (local.len > 0 && k->ws && !is_sp(k, '.') && local.s[local.len - 1] != '.')
			mime_buf_addc(&local, ' ');
		mime_buf_add(&local, k->p, k->n);
	}
	int prev_dot = 1;
	for (i++; i < to; i++) {
		const struct tok *k = &t->v[i];
		if (k->type == TOK_COMMENT)
			continue;
		if (k->type == TOK_SPECIAL && !is_sp(k, '.'))
			break;
		if (dom.len > 0 && k->ws && !prev_dot && !is_sp(k, '.'))
			break;
		mime_buf_add(&dom, k->p, k->n);
		prev_dot = is_sp(k, '.');
	}
	a->mailbox = mime_buf_steal(&local);
	a->host = mime_buf_steal(&dom);
	if (a->mailbox == NULL || a->host == NULL)
		*oom_r = 1;
}

static void emit_addr(struct mime_buf *b, const char *name, const char *adl,
		      const char *mailbox, const char *host)
{
	mime_buf_addc(b, '(');
	mime_buf_imap_nstring(b, name);
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, adl);
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, mailbox);
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, host);
	mime_buf_addc(b, ')');
}

/* Index of the first top-level '<' ':' ',' ';' at or after i. */
static size_t find_stop(const struct toks *t, size_t i, size_t *at_r)
{
	*at_r = SIZE_MAX;
	for (; i < t->n; i++) {
		const struct tok *k = &t->v[i];
		if (k->type != TOK_SPECIAL)
			continue;
		if (k->p[0] == '@' && *at_r == SIZE_MAX)
			*at_r = i;
		if (strchr("<:,;", k->p[0]) != NULL)
			break;
	}
	return i;
}

size_t mime_buf_imap_addresses(struct mime_buf *out, const char *value)
{
	struct toks t = { 0 };
	struct mime_buf b = { 0 };
	size_t count = 0, pos = 0;
	int in_group = 0, oom = 0;

	tokenize(value, &t);
	while (pos < t.n && !oom) {
		const struct tok *k = &t.v[pos];
		if (is_sp(k, ',') || k->type == TOK_COMMENT) {
			pos++;
			continue;
		}
		if (is_sp(k, ';')) {
			if (in_group) {
				emit_addr(&b, NULL, NULL, NULL, NULL);
				in_group = 0;
			}
			pos++;
			continue;
		}
		size_t at;
		size_t stop = find_stop(&t, pos, &at);
		struct addr a = { 0 };
		if (stop < t.n && is_sp(&t.v[stop], ':') && at == SIZE_MAX && !in_group) {
			char *name = phrase(&t, pos, stop, &oom);
			emit_addr(&b, NULL, NULL, name != NULL ? name : "", NULL);
			free(name);
			count++;
			in_group = 1;
			pos = stop + 1;
			continue;
		}
		if (stop < t.n && is_sp(&t.v[stop], '<')) {
			a.name = phrase(&t, pos, stop, &oom);
			size_t i = stop + 1;
			if (i < t.n && is_sp(&t.v[i], '@')) {
				/* obs-route: <@a,@b:user@host> */
				size_t r = i;
				while (r < t.n && !is_sp(&t.v[r], ':') && !is_sp(&t.v[r], '>'))
					r++;
				if (r < t.n && is_sp(&t.v[r], ':')) {
					struct mime_buf adl = { 0 };
					for (size_t j = i; j < r; j++)
						if (t.v[j].type != TOK_COMMENT)
							mime_buf_add(&adl, t.v[j].p, t.v[j].n);
					a.adl = mime_buf_steal(&adl);
					oom |= a.adl == NULL;
					i = r + 1;
				}
			}
			size_t end = i;
			while (end < t.n && !is_sp(&t.v[end], '>') && !is_sp(&t.v[end], ',') &&
			       !is_sp(&t.v[end], ';'))
				end++;
			addr_spec(&t, i, end, &a, &oom);
			if (end < t.n && is_sp(&t.v[end], '>'))
				end++;
			/* anything after '>' up to the next separator is junk */
			while (end < t.n && !is_sp(&t.v[end], ',') && !is_sp(&t.v[end], ';'))
				end++;
			pos = end;
		} else {
			addr_spec(&t, pos, stop, &a, &oom);
			/* old style "user@host (Real Name)": the comment names it */
			for (size_t j = pos; j < stop; j++)
				if (t.v[j].type == TOK_COMMENT && t.v[j].n > 0) {
					free(a.name);
					a.name = dup_n(t.v[j].p, t.v[j].n);
					oom |= a.name == NULL;
				}
			pos = stop < t.n && is_sp(&t.v[stop], ':') ? stop + 1 : stop;
			if (a.mailbox != NULL && a.host != NULL && a.mailbox[0] == '\0' &&
			    a.host[0] == '\0' && a.name == NULL) {
				addr_free(&a);
				continue; /* stray junk, not an address */
			}
		}
		if (!oom)
			emit_addr(&b, a.name, a.adl, a.mailbox, a.host);
		addr_free(&a);
		count++;
	}
	if (in_group && !oom) {
		emit_addr(&b, NULL, NULL, NULL, NULL);
	}
	if (t.oom || oom || b.oom)
		out->oom = 1;
	else if (count > 0) {
		mime_buf_addc(out, '(');
		mime_buf_add(out, b.s, b.len);
		mime_buf_addc(out, ')');
	}
	free(t.v);
	mime_buf_free(&b);
	return out->oom ? 0 : count;
}

static void env_addresses(struct mime_buf *b, const char *value, const char *fallback)
{
	if (value != NULL && mime_buf_imap_addresses(b, value) > 0)
		return;
	if (fallback != NULL && mime_buf_imap_addresses(b, fallback) > 0)
		return;
	mime_buf_adds(b, "NIL");
}

void mime_buf_imap_envelope(struct mime_buf *b, const struct mime_env_fields *f)
{
	mime_buf_addc(b, '(');
	mime_buf_imap_nstring(b, f->date);
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, f->subject);
	mime_buf_addc(b, ' ');
	env_addresses(b, f->from, NULL);
	mime_buf_addc(b, ' ');
	env_addresses(b, f->sender, f->from);
	mime_buf_addc(b, ' ');
	env_addresses(b, f->reply_to, f->from);
	mime_buf_addc(b, ' ');
	env_addresses(b, f->to, NULL);
	mime_buf_addc(b, ' ');
	env_addresses(b, f->cc, NULL);
	mime_buf_addc(b, ' ');
	env_addresses(b, f->bcc, NULL);
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, f->in_reply_to);
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, f->message_id);
	mime_buf_addc(b, ')');
}
