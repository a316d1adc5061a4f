/* FETCH data items (RFC 3501 6.4.5 and 9, RFC 3516 BINARY): from the
 * arguments to a list of struct fetch_item, each with the name it carries
 * in the response. The command parser keeps a whole item such as
 * BODY.PEEK[HEADER.FIELDS (From "To")]<0.512> as one atom; this file takes
 * that atom apart. */
#include "imap/imap_fetch_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A growing string for the response name. */
struct sbuf {
	char *s;
	size_t len, cap;
	int failed;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *ns = realloc(b->s, cap);
		if (ns == NULL) {
			b->failed = 1;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static int is_atom_char(unsigned char c)
{
	/* ASTRING-CHAR minus "]" (which would end the section) */
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

/* A header field name as RFC 5322 allows: printable ASCII but ":". */
static int valid_field_name(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == ':')
			return 0;
	return 1;
}

/* "(" header-fld-name *(SP header-fld-name) ")" over [p, end). Fills
 * it->fields and echoes the list into resp. Returns the position after ")"
 * or NULL. */
static const char *parse_fields(const char *p, const char *end, struct fetch_item *it,
				struct sbuf *resp)
{
	if (p >= end || *p != '(')
		return NULL;
	p++;
	sb_add(resp, " (", 2);
	for (;;) {
		char name[256];
		size_t n = 0;
		int quoted = 0;
		if (p < end && *p == '"') {
			quoted = 1;
			p++;
			while (p < end && *p != '"') {
				if (*p == '\\') {
					p++;
					if (p >= end || (*p != '\\' && *p != '"'))
						return NULL;
				}
				if (n + 1 >= sizeof(name))
					return NULL;
				name[n++] = *p++;
			}
			if (p >= end)
				return NULL;
			p++; /* closing quote */
		} else {
			while (p < end && is_atom_char((unsigned char)*p)) {
				if (n + 1 >= sizeof(name))
					return NULL;
				name[n++] = *p++;
			}
		}
		name[n] = '\0';
		if (!valid_field_name(name))
			return NULL;
		char **f = realloc(it->fields, (it->n_fields + 1) * sizeof(*f));
		if (f == NULL)
			return NULL;
		it->fields = f;
		if ((f[it->n_fields] = strdup(name)) == NULL)
			return NULL;
		it->n_fields++;
		/* echo the name as the client wrote it (a valid field name
		 * needs no escaping inside quotes but '"' and '\') */
		if (it->n_fields > 1)
			sb_add(resp, " ", 1);
		if (quoted) {
			sb_add(resp, "\"", 1);
			for (size_t i = 0; i < n; i++) {
				if (name[i] == '"' || name[i] == '\\')
					sb_add(resp, "\\", 1);
				sb_add(resp, &name[i], 1);
			}
			sb_add(resp, "\"", 1);
		} else {
			sb_add(resp, name, n);
		}
		if (p < end && *p == ' ') {
			p++;
			continue;
		}
		if (p < end && *p == ')') {
			sb_add(resp, ")", 1);
			return p + 1;
		}
		return NULL;
	}
}

static int prefix_ci(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(end - p) >= n && strncasecmp(p, word, n) == 0;
}

/* section-spec over [p, end) (between "[" and "]"). binary: section-binary,
 * a part number only. */
static int parse_section(const char *p, const char *end, int binary, struct fetch_item *it,
			 struct sbuf *resp)
{
	size_t plen = 0;
	int need_text = 0;
	while (p < end && isdigit((unsigned char)*p)) {
		if (*p == '0')
			return -1; /* nz-number: no zero, no leading zero */
		uint64_t v = 0;
		const char *start = p;
		while (p < end && isdigit((unsigned char)*p)) {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > UINT32_MAX)
				return -1;
			p++;
		}
		size_t n = (size_t)(p - start);
		if (plen + n + 2 > sizeof(it->part))
			return -1;
		if (plen > 0)
			it->part[plen++] = '.';
		memcpy(it->part + plen, start, n);
		plen += n;
		it->part[plen] = '\0';
		if (p == end)
			break;
		if (*p != '.')
			return -1;
		p++;
		if (p < end && isdigit((unsigned char)*p))
			continue;
		need_text = 1;
		break;
	}
	sb_add(resp, it->part, plen);
	if (p == end)
		return need_text ? -1 : 0;
	if (binary)
		return -1;
	if (plen > 0)
		sb_add(resp, ".", 1);
	if (prefix_ci(p, end, "HEADER.FIELDS.NOT ")) {
		it->text = FETCH_TEXT_FIELDS_NOT;
		sb_str(resp, "HEADER.FIELDS.NOT");
		p += strlen("HEADER.FIELDS.NOT ");
	} else if (prefix_ci(p, end, "HEADER.FIELDS ")) {
		it->text = FETCH_TEXT_FIELDS;
		sb_str(resp, "HEADER.FIELDS");
		p += strlen("HEADER.FIELDS ");
	} else if (end - p == 6 && prefix_ci(p, end, "HEADER")) {
		it->text = FETCH_TEXT_HEADER;
		sb_str(resp, "HEADER");
		return 0;
	} else if (end - p == 4 && prefix_ci(p, end, "TEXT")) {
		it->text = FETCH_TEXT_TEXT;
		sb_str(resp, "TEXT");
		return 0;
	} else if (end - p == 4 && prefix_ci(p, end, "MIME") && plen > 0) {
		it->text = FETCH_TEXT_MIME;
		sb_str(resp, "MIME");
		return 0;
	} else {
		return -1;
	}
	p = parse_fields(p, end, it, resp);
	return p == end ? 0 : -1;
}

/* "<" number "." nz-number ">" exactly filling [p, end). */
static int parse_partial(const char *p, const char *end, struct fetch_item *it)
{
	if (p >= end || *p != '<' || end[-1] != '>')
		return -1;
	p++;
	end--;
	uint64_t v[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		const char *start = p;
		while (p < end && isdigit((unsigned char)*p)) {
			if (v[k] > (UINT64_MAX - 9) / 10)
				return -1;
			v[k] = v[k] * 10 + (uint64_t)(*p - '0');
			p++;
		}
		if (p == start)
			return -1;
		if (k == 0) {
			if (p >= end || *p != '.')
				return -1;
			p++;
		}
	}
	if (p != end || v[1] == 0)
		return -1;
	it->partial = 1;
	it->origin = v[0];
	it->count = v[1];
	return 0;
}

static const struct {
	const char *name;
	enum fetch_kind kind;
	enum fetch_text text;
	int sets_seen;
} simple_items[] = {
	{ "UID", FETCH_UID, FETCH_TEXT_NONE, 0 },
	{ "FLAGS", FETCH_FLAGS, FETCH_TEXT_NONE, 0 },
	{ "INTERNALDATE", FETCH_INTERNALDATE, FETCH_TEXT_NONE, 0 },
	{ "RFC822.SIZE", FETCH_RFC822_SIZE, FETCH_TEXT_NONE, 0 },
	{ "ENVELOPE", FETCH_ENVELOPE, FETCH_TEXT_NONE, 0 },
	{ "BODY", FETCH_BODY, FETCH_TEXT_NONE, 0 },
	{ "BODYSTRUCTURE", FETCH_BODYSTRUCTURE, FETCH_TEXT_NONE, 0 },
	{ "MODSEQ", FETCH_MODSEQ, FETCH_TEXT_NONE, 0 },
	/* RFC822 = BODY[], RFC822.HEADER = BODY.PEEK[HEADER], RFC822.TEXT =
	 * BODY[TEXT], answered under their own names (RFC 3501 7.4.2) */
	{ "RFC822", FETCH_SECTION, FETCH_TEXT_NONE, 1 },
	{ "RFC822.HEADER", FETCH_SECTION, FETCH_TEXT_HEADER, 0 },
	{ "RFC822.TEXT", FETCH_SECTION, FETCH_TEXT_TEXT, 1 },
};

static int parse_item(const char *str, struct fetch_item *it)
{
	memset(it, 0, sizeof(*it));
	const char *br = strchr(str, '[');
	if (br == NULL) {
		for (size_t i = 0; i < sizeof(simple_items) / sizeof(simple_items[0]); i++) {
			if (strcasecmp(str, simple_items[i].name) == 0) {
				it->kind = simple_items[i].kind;
				it->text = simple_items[i].text;
				it->sets_seen = simple_items[i].sets_seen;
				it->resp = strdup(simple_items[i].name);
				return it->resp != NULL ? 0 : -1;
			}
		}
		return -1;
	}
	size_t nlen = (size_t)(br - str);
	const char *resp_name;
	int binary = 0;
	if (nlen == 4 && strncasecmp(str, "BODY", 4) == 0) {
		it->kind = FETCH_SECTION;
		it->sets_seen = 1;
		resp_name = "BODY[";
	} else if (nlen == 9 && strncasecmp(str, "BODY.PEEK", 9) == 0) {
		it->kind = FETCH_SECTION;
		resp_name = "BODY[";
	} else if (nlen == 6 && strncasecmp(str, "BINARY", 6) == 0) {
		it->kind = FETCH_BINARY;
		it->sets_seen = 1;
		binary = 1;
		resp_name = "BINARY[";
	} else if (nlen == 11 && strncasecmp(str, "BINARY.PEEK", 11) == 0) {
		it->kind = FETCH_BINARY;
		binary = 1;
		resp_name = "BINARY[";
	} else if (nlen == 11 && strncasecmp(str, "BINARY.SIZE", 11) == 0) {
		it->kind = FETCH_BINARY_SIZE;
		binary = 1;
		resp_name = "BINARY.SIZE[";
	} else {
		return -1;
	}
	/* the first "]" outside a quoted string closes the section */
	const char *p = br + 1, *close = NULL;
	int inq = 0;
	for (; *p != '\0'; p++) {
		if (inq) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				inq = 0;
		} else if (*p == '"') {
			inq = 1;
		} else if (*p == ']') {
			close = p;
			break;
		}
	}
	if (close == NULL)
		return -1;
	struct sbuf resp = { 0 };
	sb_str(&resp, resp_name);
	if (parse_section(br + 1, close, binary, it, &resp) < 0) {
		free(resp.s);
		return -1;
	}
	sb_add(&resp, "]", 1);
	const char *rest = close + 1;
	if (*rest != '\0') {
		if (it->kind == FETCH_BINARY_SIZE || parse_partial(rest, rest + strlen(rest), it) < 0) {
			free(resp.s);
			return -1;
		}
		char num[32];
		snprintf(num, sizeof(num), "<%llu>", (unsigned long long)it->origin);
		sb_str(&resp, num);
	}
	if (resp.failed) {
		free(resp.s);
		return -1;
	}
	it->resp = resp.s;
	return 0;
}

static void item_free(struct fetch_item *it)
{
	for (size_t i = 0; i < it->n_fields; i++)
		free(it->fields[i]);
	free(it->fields);
	free(it->resp);
	it->fields = NULL;
	it->n_fields = 0;
	it->resp = NULL;
}

void imap_fetch_items_free(struct fetch_items *fi)
{
	for (size_t i = 0; i < fi->n; i++)
		item_free(&fi->v[i]);
	free(fi->v);
	memset(fi, 0, sizeof(*fi));
}

static int add_item(struct fetch_items *fi, const char *str)
{
	struct fetch_item it;
	if (parse_item(str, &it) < 0) {
		item_free(&it);
		return -1;
	}
	/* the same response item twice (BODY[] and BODY.PEEK[]): answer once */
	for (size_t i = 0; i < fi->n; i++) {
		if (strcmp(fi->v[i].resp, it.resp) == 0 && fi->v[i].kind == it.kind &&
		    fi->v[i].partial == it.partial && fi->v[i].count == it.count) {
			fi->v[i].sets_seen |= it.sets_seen;
			fi->sets_seen |= it.sets_seen;
			item_free(&it);
			return 0;
		}
	}
	struct fetch_item *v = realloc(fi->v, (fi->n + 1) * sizeof(*v));
	if (v == NULL) {
		item_free(&it);
		return -1;
	}
	fi->v = v;
	fi->v[fi->n++] = it;
	fi->sets_seen |= it.sets_seen;
	switch (it.kind) {
	case FETCH_UID:
		fi->has_uid = 1;
		break;
	case FETCH_FLAGS:
		fi->has_flags = 1;
		break;
	case FETCH_MODSEQ:
		fi->has_modseq = 1;
		break;
	case FETCH_ENVELOPE:
	case FETCH_BODY:
	case FETCH_BODYSTRUCTURE:
		fi->need_cache = 1;
		break;
	case FETCH_SECTION:
	case FETCH_BINARY:
	case FETCH_BINARY_SIZE:
		if (it.part[0] != '\0' || it.text != FETCH_TEXT_NONE)
			fi->need_cache = 1;
		break;
	default:
		break;
	}
	return 0;
}

int imap_fetch_items_add(struct fetch_items *fi, const char *name, int first)
{
	size_t before = fi->n;
	if (add_item(fi, name) < 0)
		return -1;
	if (first && fi->n > before) {
		struct fetch_item it = fi->v[fi->n - 1];
		memmove(fi->v + 1, fi->v, (fi->n - 1) * sizeof(*fi->v));
		fi->v[0] = it;
	}
	return 0;
}

int imap_fetch_items_parse(const struct imap_arg *arg, struct fetch_items *out,
			   const char **error_r)
{
	memset(out, 0, sizeof(*out));
	*error_r = "Invalid FETCH item";
	if (arg->type == IMAP_ARG_ATOM) {
		/* macros, RFC 3501 6.4.5: only alone, never in a list */
		static const char *const macro_all[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE",
							 "ENVELOPE", NULL };
		static const char *const macro_fast[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE",
							  NULL };
		static const char *const macro_full[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE",
							  "ENVELOPE", "BODY", NULL };
		const char *const *macro = strcasecmp(arg->str, "ALL") == 0	 ? macro_all
					   : strcasecmp(arg->str, "FAST") == 0 ? macro_fast
					   : strcasecmp(arg->str, "FULL") == 0 ? macro_full
									       : NULL;
		if (macro != NULL) {
			for (size_t i = 0; macro[i] != NULL; i++)
				if (add_item(out, macro[i]) < 0)
					goto fail;
			return 0;
		}
		if (add_item(out, arg->str) < 0)
			goto fail;
		return 0;
	}
	if (arg->type != IMAP_ARG_LIST || arg->list_count == 0) {
		*error_r = "FETCH items must be an item or a list of items";
		return -1;
	}
	for (size_t i = 0; i < arg->list_count; i++) {
		const struct imap_arg *a = &arg->list[i];
		if (a->type != IMAP_ARG_ATOM || add_item(out, a->str) < 0)
			goto fail;
	}
	return 0;
fail:
	imap_fetch_items_free(out);
	return -1;
}
