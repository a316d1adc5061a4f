/* SEARCH and UID SEARCH (RFC 3501 6.4.4, 6.4.8, 7.2.5); the search
 * program itself is also SORT's and THREAD's (imap_search.h).
 *
 * The keys become a tree; AND/OR children are ordered cheapest first
 * (metadata, then the parse cache, then the header block, then the body)
 * and evaluation short-circuits. The first pass runs inside one
 * store_msg_scan_range over the view with metadata only and settles most messages; the ones
 * left undecided are evaluated afterwards, loading the cache, header and
 * body of each only when a key needs them.
 *
 * Decisions:
 *  - BEFORE/ON/SINCE compare the UTC date of INTERNALDATE (the store keeps
 *    the instant, not the zone; FETCH INTERNALDATE is shown in UTC too).
 *    SENT* compare the date of the Date: header as written, disregarding
 *    time and zone (RFC 3501), read from the cached ENVELOPE; failing that
 *    the UTC date of the Date: header as parsed at delivery; a message
 *    without a usable Date: uses its INTERNALDATE (as RFC 5256 SORT does).
 *  - Strings match as substrings, case-insensitively for ASCII and the
 *    Latin-1 letters (U+00C0-U+00DE); other non-ASCII compares exactly.
 *    FROM/TO/CC/BCC/SUBJECT use the header values decoded at delivery
 *    (RFC 2047, address lists as "Name <a@b>"); HEADER uses the raw,
 *    unfolded field values of the top-level header, plus the decoded value
 *    for those five fields. BODY searches the decoded text parts (UTF-8);
 *    messages above SEARCH_TEXT_MAX are searched raw instead. TEXT is the header (raw and decoded fields), BODY, and
 *    the raw headers of attached messages (message/rfc822 parts).
 *  - CHARSET: UTF-8 and US-ASCII (a subset) only.
 *  - Message numbers beyond EXISTS in a sequence-set key match nothing. */
#include "imap/imap_fetch_private.h"
#include "imap/imap_search.h"
#include "imap/imap_session.h"

#include "core/log.h"
#include "mime/mime_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEARCH_MAX_DEPTH 64                 /* NOT/OR/() nesting */
#define SEARCH_TEXT_MAX  (32u * 1024 * 1024) /* larger messages: raw body search */
#define SEARCH_RAW_CHUNK (1024 * 1024)

enum skey_kind {
	SK_ALL,
	SK_AND,
	SK_OR,
	SK_NOT,
	SK_FLAG,     /* flag set (want 1) or not set (want 0) */
	SK_KEYWORD,  /* likewise for a keyword */
	SK_RECENT,
	SK_NEW,
	SK_LARGER,
	SK_SMALLER,
	SK_BEFORE,
	SK_ON,
	SK_SINCE,
	SK_SENTBEFORE,
	SK_SENTON,
	SK_SENTSINCE,
	SK_UIDS,     /* UID set or message set, as uids in the view */
	SK_FIELD,    /* FROM/TO/CC/BCC/SUBJECT */
	SK_HEADER,
	SK_BODY,
	SK_TEXT,
	SK_MODSEQ,   /* RFC 7162 3.1.5: modseq >= num */
};

enum { COST_META, COST_CACHE, COST_HEADER, COST_BODY };

enum field { F_SUBJECT, F_FROM, F_TO, F_CC, F_BCC };

struct skey {
	enum skey_kind kind;
	int cost;
	int want;
	uint32_t flag;
	uint64_t num;
	int64_t day;
	enum field field;
	const char *str; /* needle (the parser's copy lives as long as the command) */
	size_t len;
	const char *name; /* HEADER field name */
	uint32_t *uids;
	size_t n_uids;
	struct skey *kids;
	size_t n_kids;
};

static void skey_free(struct skey *k)
{
	for (size_t i = 0; i < k->n_kids; i++)
		skey_free(&k->kids[i]);
	free(k->kids);
	free(k->uids);
	k->kids = NULL;
	k->uids = NULL;
	k->n_kids = 0;
}

/* ------------------------------------------------------------------ parse */

struct parse_ctx {
	struct imap_session *s;
	const struct imap_arg *args;
	size_t n, i;
	const char *error;
	struct imap_search_info *info;
};

static const struct imap_arg *next_arg(struct parse_ctx *pc)
{
	return pc->i < pc->n ? &pc->args[pc->i++] : NULL;
}

static int take_string(struct parse_ctx *pc, struct skey *k)
{
	const struct imap_arg *a = next_arg(pc);
	const char *str = imap_arg_string(a);
	if (str == NULL) {
		pc->error = "Missing search string";
		return -1;
	}
	k->str = str;
	k->len = a->type == IMAP_ARG_NIL ? 3 : a->len;
	return 0;
}

static int take_date(struct parse_ctx *pc, struct skey *k)
{
	const char *str = imap_arg_string(next_arg(pc));
	if (str == NULL || imap_parse_date(str, &k->day) < 0) {
		pc->error = "Invalid date";
		return -1;
	}
	return 0;
}

static int take_number(struct parse_ctx *pc, struct skey *k)
{
	const char *str = imap_arg_atom(next_arg(pc));
	uint64_t v = 0;
	if (str == NULL || *str == '\0')
		goto bad;
	for (const char *p = str; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
			goto bad;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	k->num = v;
	return 0;
bad:
	pc->error = "Invalid number";
	return -1;
}

static int take_set(struct parse_ctx *pc, const char *str, int uid, struct skey *k)
{
	if (str == NULL || imap_seqset_uids(pc->s, str, uid, &k->uids, &k->n_uids) < 0) {
		free(k->uids);
		k->uids = NULL;
		pc->error = "Invalid sequence set";
		return -1;
	}
	if (!uid && strcmp(str, "$") != 0)
		pc->info->seqnums = 1;
	k->kind = SK_UIDS;
	return 0;
}

static void sort_by_cost(struct skey *kids, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct skey t = kids[i];
		size_t j = i;
		while (j > 0 && kids[j - 1].cost > t.cost) {
			kids[j] = kids[j - 1];
			j--;
		}
		kids[j] = t;
	}
}

static int parse_key(struct parse_ctx *pc, struct skey *k, unsigned depth);

/* Keys from args[0..n) ANDed into k. */
static int parse_group(struct parse_ctx *pc, const struct imap_arg *args, size_t n, struct skey *k,
		       unsigned depth)
{
	struct parse_ctx sub = { pc->s, args, n, 0, NULL, pc->info };
	k->kind = SK_AND;
	while (sub.i < sub.n) {
		struct skey *kids = realloc(k->kids, (k->n_kids + 1) * sizeof(*kids));
		if (kids == NULL) {
			pc->error = "Out of memory";
			return -1;
		}
		k->kids = kids;
		memset(&kids[k->n_kids], 0, sizeof(*kids));
		k->n_kids++;
		if (parse_key(&sub, &kids[k->n_kids - 1], depth) < 0) {
			pc->error = sub.error;
			return -1;
		}
	}
	if (k->n_kids == 0) {
		pc->error = "Empty search key list";
		return -1;
	}
	sort_by_cost(k->kids, k->n_kids);
	for (size_t i = 0; i < k->n_kids; i++)
		if (k->kids[i].cost > k->cost)
			k->cost = k->kids[i].cost;
	return 0;
}

static const struct {
	const char *name;
	uint32_t flag;
	int want;
} flag_keys[] = {
	{ "ANSWERED", STORE_FLAG_ANSWERED, 1 }, { "UNANSWERED", STORE_FLAG_ANSWERED, 0 },
	{ "DELETED", STORE_FLAG_DELETED, 1 },   { "UNDELETED", STORE_FLAG_DELETED, 0 },
	{ "DRAFT", STORE_FLAG_DRAFT, 1 },       { "UNDRAFT", STORE_FLAG_DRAFT, 0 },
	{ "FLAGGED", STORE_FLAG_FLAGGED, 1 },   { "UNFLAGGED", STORE_FLAG_FLAGGED, 0 },
	{ "SEEN", STORE_FLAG_SEEN, 1 },         { "UNSEEN", STORE_FLAG_SEEN, 0 },
};

static const struct {
	const char *name;
	uint32_t flag;
} system_flags[] = {
	{ "\\Answered", STORE_FLAG_ANSWERED }, { "\\Deleted", STORE_FLAG_DELETED },
	{ "\\Draft", STORE_FLAG_DRAFT },       { "\\Flagged", STORE_FLAG_FLAGGED },
	{ "\\Seen", STORE_FLAG_SEEN },
};

static const struct {
	const char *name;
	enum skey_kind kind;
	int cost;
} date_keys[] = {
	{ "BEFORE", SK_BEFORE, COST_META },	    { "ON", SK_ON, COST_META },
	{ "SINCE", SK_SINCE, COST_META },	    { "SENTBEFORE", SK_SENTBEFORE, COST_CACHE },
	{ "SENTON", SK_SENTON, COST_CACHE },    { "SENTSINCE", SK_SENTSINCE, COST_CACHE },
};

static const char *const field_keys[] = { "SUBJECT", "FROM", "TO", "CC", "BCC" };

static int parse_key(struct parse_ctx *pc, struct skey *k, unsigned depth)
{
	if (depth >= SEARCH_MAX_DEPTH) {
		pc->error = "Search program nested too deeply";
		return -1;
	}
	const struct imap_arg *a = next_arg(pc);
	if (a == NULL) {
		pc->error = "Missing search key";
		return -1;
	}
	if (a->type == IMAP_ARG_LIST)
		return parse_group(pc, a->list, a->list_count, k, depth + 1);
	if (a->type != IMAP_ARG_ATOM) {
		pc->error = "Invalid search key";
		return -1;
	}
	const char *key = a->str;
	k->cost = COST_META;
	if (strcasecmp(key, "ALL") == 0) {
		k->kind = SK_ALL;
		return 0;
	}
	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
		if (strcasecmp(key, flag_keys[i].name) == 0) {
			k->kind = SK_FLAG;
			k->flag = flag_keys[i].flag;
			k->want = flag_keys[i].want;
			return 0;
		}
	}
	if (strcasecmp(key, "KEYWORD") == 0 || strcasecmp(key, "UNKEYWORD") == 0) {
		k->want = (key[0] == 'K' || key[0] == 'k');
		const char *kw = imap_arg_atom(next_arg(pc));
		if (kw == NULL || *kw == '\0') {
			pc->error = "Missing keyword";
			return -1;
		}
		k->kind = SK_KEYWORD;
		k->str = kw;
		k->len = strlen(kw);
		/* a system flag named as a keyword means that flag */
		for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
			if (strcasecmp(kw, system_flags[i].name) == 0) {
				k->kind = SK_FLAG;
				k->flag = system_flags[i].flag;
			}
		}
		return 0;
	}
	if (strcasecmp(key, "RECENT") == 0 || strcasecmp(key, "NEW") == 0) {
		k->kind = key[0] == 'R' || key[0] == 'r' ? SK_RECENT : SK_NEW;
		return 0;
	}
	if (strcasecmp(key, "OLD") == 0) {
		k->kind = SK_NOT;
		k->kids = calloc(1, sizeof(*k->kids));
		if (k->kids == NULL) {
			pc->error = "Out of memory";
			return -1;
		}
		k->n_kids = 1;
		k->kids[0].kind = SK_RECENT;
		return 0;
	}
	if (strcasecmp(key, "LARGER") == 0 || strcasecmp(key, "SMALLER") == 0) {
		k->kind = key[0] == 'L' || key[0] == 'l' ? SK_LARGER : SK_SMALLER;
		return take_number(pc, k);
	}
	for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
		if (strcasecmp(key, date_keys[i].name) == 0) {
			k->kind = date_keys[i].kind;
			k->cost = date_keys[i].cost;
			return take_date(pc, k);
		}
	}
	for (size_t i = 0; i < sizeof(field_keys) / sizeof(field_keys[0]); i++) {
		if (strcasecmp(key, field_keys[i]) == 0) {
			k->kind = SK_FIELD;
			k->field = (enum field)i;
			k->cost = COST_CACHE;
			return take_string(pc, k);
		}
	}
	if (strcasecmp(key, "HEADER") == 0) {
		k->kind = SK_HEADER;
		k->cost = COST_HEADER;
		const char *name = imap_arg_string(next_arg(pc));
		if (name == NULL || *name == '\0' || strchr(name, ':') != NULL) {
			pc->error = "Invalid header field name";
			return -1;
		}
		k->name = name;
		return take_string(pc, k);
	}
	if (strcasecmp(key, "BODY") == 0 || strcasecmp(key, "TEXT") == 0) {
		k->kind = key[0] == 'B' || key[0] == 'b' ? SK_BODY : SK_TEXT;
		k->cost = COST_BODY;
		return take_string(pc, k);
	}
	if (strcasecmp(key, "UID") == 0)
		return take_set(pc, imap_arg_atom(next_arg(pc)), 1, k);
	if (strcasecmp(key, "MODSEQ") == 0) {
		/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer: one
		 * modseq per message here, so the entry is checked and ignored */
		const struct imap_arg *a2 = pc->i < pc->n ? &pc->args[pc->i] : NULL;
		if (a2 != NULL && a2->type != IMAP_ARG_ATOM) {
			const char *entry = imap_arg_string(next_arg(pc));
			const char *type = imap_arg_atom(next_arg(pc));
			if (entry == NULL || strncasecmp(entry, "/flags/", 7) != 0 || entry[7] == '\0' ||
			    type == NULL ||
			    (strcasecmp(type, "priv") != 0 && strcasecmp(type, "shared") != 0 &&
			     strcasecmp(type, "all") != 0)) {
				pc->error = "Syntax: MODSEQ [\"/flags/name\" priv|shared|all] mod-sequence";
				return -1;
			}
		}
		k->kind = SK_MODSEQ;
		if (take_number(pc, k) < 0 || k->num > INT64_MAX) {
			pc->error = "Invalid mod-sequence";
			return -1;
		}
		pc->info->modseq = 1;
		return 0;
	}
	if (strcasecmp(key, "NOT") == 0) {
		k->kind = SK_NOT;
		k->kids = calloc(1, sizeof(*k->kids));
		if (k->kids == NULL) {
			pc->error = "Out of memory";
			return -1;
		}
		k->n_kids = 1;
		if (parse_key(pc, &k->kids[0], depth + 1) < 0)
			return -1;
		k->cost = k->kids[0].cost;
		return 0;
	}
	if (strcasecmp(key, "OR") == 0) {
		k->kind = SK_OR;
		k->kids = calloc(2, sizeof(*k->kids));
		if (k->kids == NULL) {
			pc->error = "Out of memory";
			return -1;
		}
		k->n_kids = 2;
		if (parse_key(pc, &k->kids[0], depth + 1) < 0 ||
		    parse_key(pc, &k->kids[1], depth + 1) < 0)
			return -1;
		sort_by_cost(k->kids, 2);
		k->cost = k->kids[1].cost;
		return 0;
	}
	if ((key[0] >= '1' && key[0] <= '9') || key[0] == '*' || strcmp(key, "$") == 0)
		return take_set(pc, key, 0, k);
	pc->error = "Unknown search key";
	return -1;
}

/* --------------------------------------------------------------- evaluate */

struct search_msg {
	uint32_t uid;
	uint32_t flags;
	char *keywords;
	int64_t internaldate;
	uint64_t size;
	int64_t blob_id;
	uint64_t modseq;
};

struct eval_ctx {
	struct imap_session *s;
	store_t *store;
	const struct search_msg *m;
	int full;           /* may load cache/header/body (second pass) */
	int error;
	/* loaded on demand */
	int cache_loaded;
	int have_cache;
	struct store_msg_cache cache;
	const char *parts;
	char fallback_parts[256];
	int hdr_loaded;
	char *hdr;
	size_t hdr_len;
	int text_loaded;
	int text_raw;       /* too large: search the stored octets */
	char *text;
	size_t text_len, text_cap;
};

static void eval_release(struct eval_ctx *ec)
{
	if (ec->have_cache)
		store_msg_cache_free(&ec->cache);
	free(ec->hdr);
	free(ec->text);
	ec->cache_loaded = ec->have_cache = ec->hdr_loaded = ec->text_loaded = ec->text_raw = 0;
	ec->parts = NULL;
	ec->hdr = ec->text = NULL;
	ec->hdr_len = ec->text_len = ec->text_cap = 0;
}

static int load_cache(struct eval_ctx *ec)
{
	if (ec->cache_loaded)
		return ec->parts != NULL ? 0 : -1;
	ec->cache_loaded = 1;
	const char *err;
	int r = store_msg_cache_get(ec->store, ec->m->blob_id, &ec->cache, &err);
	if (r < 0) {
		log_error("imap", ec->s->id, "event=store-error error=\"%s\"", err);
		ec->error = 1;
		return -1;
	}
	ec->have_cache = r > 0;
	ec->parts = ec->have_cache ? ec->cache.parts : NULL;
	if (ec->parts == NULL)
		ec->parts = imap_msg_fallback_parts(ec->store, ec->m->blob_id, ec->m->size,
						    ec->fallback_parts, sizeof(ec->fallback_parts));
	if (ec->parts == NULL) {
		ec->error = 1;
		return -1;
	}
	return 0;
}

static int load_header(struct eval_ctx *ec)
{
	if (ec->hdr_loaded)
		return ec->hdr != NULL ? 0 : -1;
	ec->hdr_loaded = 1;
	if (load_cache(ec) < 0)
		return -1;
	struct mime_section sec;
	const char *err;
	if (mime_section_find(ec->parts, ec->m->size, "", "HEADER", &sec) <= 0)
		sec.offset = sec.len = 0;
	if (imap_msg_read(ec->store, ec->m->blob_id, sec.offset, sec.len, &ec->hdr, &ec->hdr_len,
			  &err) < 0) {
		log_error("imap", ec->s->id, "event=store-error error=\"%s\"", err);
		ec->error = 1;
		return -1;
	}
	return 0;
}

static void text_cb(void *ctx, const char *utf8, size_t n)
{
	struct eval_ctx *ec = ctx;
	if (ec->text_len + n + 1 > ec->text_cap) {
		size_t cap = ec->text_cap ? ec->text_cap : 4096;
		while (ec->text_len + n + 1 > cap)
			cap *= 2;
		if (cap > 2 * (size_t)SEARCH_TEXT_MAX)
			return; /* bounded: the rest is not searched */
		char *t = realloc(ec->text, cap);
		if (t == NULL)
			return;
		ec->text = t;
		ec->text_cap = cap;
	}
	memcpy(ec->text + ec->text_len, utf8, n);
	ec->text_len += n;
	ec->text[ec->text_len] = '\0';
}

static int load_text(struct eval_ctx *ec)
{
	if (ec->text_loaded)
		return ec->error ? -1 : 0;
	ec->text_loaded = 1;
	if (ec->m->size > SEARCH_TEXT_MAX) {
		ec->text_raw = 1;
		return load_cache(ec);
	}
	char *data;
	size_t len;
	const char *err;
	if (imap_msg_read(ec->store, ec->m->blob_id, 0, ec->m->size, &data, &len, &err) < 0) {
		log_error("imap", ec->s->id, "event=store-error error=\"%s\"", err);
		ec->error = 1;
		return -1;
	}
	int r = mime_search_text_mem(data, len, text_cb, ec);
	free(data);
	if (r < 0) {
		ec->error = 1;
		return -1;
	}
	return 0;
}

/* Case-insensitive search through stored octets [off, off+len), a chunk at
 * a time, chunks overlapping by the needle length. */
static int raw_contains(struct eval_ctx *ec, uint64_t off, uint64_t len, const char *needle,
			size_t nlen)
{
	if (nlen == 0)
		return 1;
	if (nlen > SEARCH_RAW_CHUNK / 2)
		return 0;
	char *buf = malloc(SEARCH_RAW_CHUNK);
	if (buf == NULL) {
		ec->error = 1;
		return 0;
	}
	int found = 0;
	uint64_t pos = 0;
	while (pos < len && !found) {
		size_t want = len - pos < SEARCH_RAW_CHUNK ? (size_t)(len - pos) : SEARCH_RAW_CHUNK;
		size_t got;
		const char *err;
		if (store_blob_read(ec->store, ec->m->blob_id, off + pos, buf, want, &got, &err) < 0) {
			log_error("imap", ec->s->id, "event=store-error error=\"%s\"", err);
			ec->error = 1;
			break;
		}
		found = imap_ci_contains(buf, got, needle, nlen);
		if (got < want || pos + got >= len)
			break;
		pos += got - (nlen - 1);
	}
	free(buf);
	return found;
}

static int body_contains(struct eval_ctx *ec, const char *needle, size_t nlen)
{
	if (load_text(ec) < 0)
		return 0;
	if (!ec->text_raw)
		return imap_ci_contains(ec->text, ec->text_len, needle, nlen);
	struct mime_section sec;
	if (mime_section_find(ec->parts, ec->m->size, "", "TEXT", &sec) <= 0)
		return 0;
	return raw_contains(ec, sec.offset, sec.len, needle, nlen);
}

/* TEXT: the headers of encapsulated messages (message/rfc822 parts) are
 * part of the body too, but not of the decoded text; search them raw. The
 * part table is mime_parse.h's format: "<path> r <hdr_off> <hdr_len>
 * <body_off> <body_len> <enc> <msg_hdr_len>" for those parts. */
static int inner_headers_contain(struct eval_ctx *ec, const char *needle, size_t nlen)
{
	const char *p = ec->parts;
	while (p != NULL && *p != '\0' && !ec->error) {
		char path[64], kind;
		unsigned long long hoff, hlen, boff, blen, mlen;
		char enc[32];
		if (sscanf(p, "%63s %c %llu %llu %llu %llu %31s %llu", path, &kind, &hoff, &hlen, &boff,
			   &blen, enc, &mlen) == 8 &&
		    kind == 'r' && mlen > 0 && boff + mlen <= ec->m->size &&
		    raw_contains(ec, boff, mlen, needle, nlen))
			return 1;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return 0;
}

static const char *cache_field(const struct eval_ctx *ec, enum field f)
{
	if (!ec->have_cache)
		return NULL;
	switch (f) {
	case F_SUBJECT:
		return ec->cache.subject;
	case F_FROM:
		return ec->cache.from;
	case F_TO:
		return ec->cache.to;
	case F_CC:
		return ec->cache.cc;
	case F_BCC:
		return ec->cache.bcc;
	}
	return NULL;
}

static int header_contains(struct eval_ctx *ec, const char *name, const char *needle,
			   size_t nlen);

static int field_contains(struct eval_ctx *ec, enum field f, const char *needle, size_t nlen)
{
	if (!ec->have_cache) {
		/* no parse cache (should not happen): the raw header field */
		return header_contains(ec, field_keys[f], needle, nlen);
	}
	const char *v = cache_field(ec, f);
	return v != NULL && imap_ci_contains(v, strlen(v), needle, nlen);
}

/* Over a block of header fields (as mime_header_fields writes them): does
 * the unfolded value of one of them contain needle? With an empty needle:
 * is there any field? */
static int fields_contain(const char *p, size_t len, const char *needle, size_t nlen)
{
	const char *end = p + len;
	char *val = malloc(len + 1);
	if (val == NULL)
		return 0;
	int found = 0;
	while (p < end && !found) {
		if (*p == '\r' || *p == '\n')
			break; /* the empty line ending the block */
		const char *colon = memchr(p, ':', (size_t)(end - p));
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (colon == NULL || (eol != NULL && colon > eol)) {
			/* not a field: skip the line */
			p = eol != NULL ? eol + 1 : end;
			continue;
		}
		/* the value: to the end of the last continuation line, unfolded */
		size_t n = 0;
		const char *q = colon + 1;
		for (;;) {
			const char *e = memchr(q, '\n', (size_t)(end - q));
			const char *stop = e != NULL ? e : end;
			for (const char *c = q; c < stop; c++)
				if (*c != '\r')
					val[n++] = *c;
			q = e != NULL ? e + 1 : end;
			if (q >= end || (*q != ' ' && *q != '\t'))
				break;
		}
		p = q;
		size_t skip = 0;
		while (skip < n && (val[skip] == ' ' || val[skip] == '\t'))
			skip++;
		found = imap_ci_contains(val + skip, n - skip, needle, nlen);
	}
	free(val);
	return found;
}

static int header_contains(struct eval_ctx *ec, const char *name, const char *needle, size_t nlen)
{
	if (load_header(ec) < 0)
		return 0;
	for (size_t i = 0; ec->have_cache && i < sizeof(field_keys) / sizeof(field_keys[0]); i++) {
		/* the decoded value too: HEADER Subject "é" finds =?utf-8?...?= */
		if (strcasecmp(name, field_keys[i]) == 0 && nlen > 0 &&
		    field_contains(ec, (enum field)i, needle, nlen))
			return 1;
	}
	char *out;
	size_t olen;
	const char *names[1] = { name };
	if (mime_header_fields(ec->hdr, ec->hdr_len, names, 1, 0, &out, &olen) < 0) {
		ec->error = 1;
		return 0;
	}
	int found = fields_contain(out, olen, needle, nlen);
	free(out);
	return found;
}

static int has_keyword(const char *keywords, const char *kw, size_t len)
{
	const char *p = keywords;
	while (p != NULL && *p != '\0') {
		const char *sp = strchr(p, ' ');
		size_t n = sp != NULL ? (size_t)(sp - p) : strlen(p);
		if (n == len && strncasecmp(p, kw, len) == 0)
			return 1;
		p = sp != NULL ? sp + 1 : NULL;
	}
	return 0;
}

static int64_t sent_day(struct eval_ctx *ec)
{
	int64_t day;
	if (ec->have_cache && imap_envelope_day(ec->cache.envelope, &day) == 0)
		return day;
	if (ec->have_cache && ec->cache.sent_date != 0)
		return imap_day_of(ec->cache.sent_date);
	return imap_day_of(ec->m->internaldate);
}

static int eval(struct eval_ctx *ec, const struct skey *k);

/* AND (decisive 0) or OR (decisive 1) of k's children: a child that is
 * decisive settles it; otherwise it is undecided if a child is, else the
 * other value. */
static int eval_kids(struct eval_ctx *ec, const struct skey *k, int decisive)
{
	int r = !decisive;
	for (size_t i = 0; i < k->n_kids; i++) {
		int v = eval(ec, &k->kids[i]);
		if (v == decisive)
			return decisive;
		if (v < 0)
			r = -1;
	}
	return r;
}

/* 1 match, 0 no match, -1 undecided (needs data the first pass lacks). */
static int eval(struct eval_ctx *ec, const struct skey *k)
{
	const struct search_msg *m = ec->m;
	/* first pass: leaves that need more than metadata stay undecided,
	 * but AND/OR/NOT still settle what their cheap children decide */
	if (!ec->full && k->cost > COST_META && k->kind != SK_AND && k->kind != SK_OR &&
	    k->kind != SK_NOT)
		return -1;
	switch (k->kind) {
	case SK_ALL:
		return 1;
	case SK_AND:
		return eval_kids(ec, k, 0);
	case SK_OR:
		return eval_kids(ec, k, 1);
	case SK_NOT: {
		int v = eval(ec, &k->kids[0]);
		return v < 0 ? -1 : !v;
	}
	case SK_FLAG:
		return ((m->flags & k->flag) != 0) == k->want;
	case SK_KEYWORD:
		return has_keyword(m->keywords, k->str, k->len) == k->want;
	case SK_RECENT:
		return imap_is_recent(ec->s->sel, m->uid);
	case SK_NEW:
		return imap_is_recent(ec->s->sel, m->uid) && !(m->flags & STORE_FLAG_SEEN);
	case SK_MODSEQ:
		return m->modseq >= k->num;
	case SK_LARGER:
		return m->size > k->num;
	case SK_SMALLER:
		return m->size < k->num;
	case SK_BEFORE:
		return imap_day_of(m->internaldate) < k->day;
	case SK_ON:
		return imap_day_of(m->internaldate) == k->day;
	case SK_SINCE:
		return imap_day_of(m->internaldate) >= k->day;
	case SK_UIDS: {
		size_t lo = 0, hi = k->n_uids;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (k->uids[mid] < m->uid)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo < k->n_uids && k->uids[lo] == m->uid;
	}
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE: {
		if (load_cache(ec) < 0)
			return 0;
		int64_t d = sent_day(ec);
		return k->kind == SK_SENTBEFORE ? d < k->day : k->kind == SK_SENTON ? d == k->day
										   : d >= k->day;
	}
	case SK_FIELD:
		if (load_cache(ec) < 0)
			return 0;
		return field_contains(ec, k->field, k->str, k->len);
	case SK_HEADER:
		return header_contains(ec, k->name, k->str, k->len);
	case SK_BODY:
		return body_contains(ec, k->str, k->len);
	case SK_TEXT:
		if (load_header(ec) < 0)
			return 0;
		for (size_t i = 0; ec->have_cache && i < sizeof(field_keys) / sizeof(field_keys[0]); i++)
			if (field_contains(ec, (enum field)i, k->str, k->len))
				return 1;
		return imap_ci_contains(ec->hdr, ec->hdr_len, k->str, k->len) ||
		       body_contains(ec, k->str, k->len) || inner_headers_contain(ec, k->str, k->len);
	}
	return 0;
}

/* ---------------------------------------------------------------- command */

struct imap_search {
	struct skey root;
};

struct search_state {
	struct imap_session *s;
	struct skey *prog;
	struct imap_search_hit *match;   /* decided in the first pass */
	size_t n_match, cap_match;
	struct search_msg *later;   /* undecided: evaluated after the scan */
	size_t n_later, cap_later;
	int oom;
};

static int push_hit(struct imap_search_hit **a, size_t *n, size_t *cap,
		    const struct search_msg *m)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct imap_search_hit *na = realloc(*a, c * sizeof(*na));
		if (na == NULL)
			return -1;
		*a = na;
		*cap = c;
	}
	struct imap_search_hit *h = &(*a)[*n];
	h->uid = m->uid;
	h->modseq = m->modseq;
	h->internaldate = m->internaldate;
	h->size = m->size;
	h->blob_id = m->blob_id;
	(*n)++;
	return 0;
}

static void scan_cb(void *ctx, const struct store_msg *sm)
{
	struct search_state *ss = ctx;
	if (imap_seq_of_uid(ss->s->sel, sm->uid) == 0)
		return; /* not in this session's view (yet) */
	struct search_msg m = { sm->uid,     sm->flags,	  (char *)(sm->keywords ? sm->keywords : ""),
				sm->internaldate, sm->size, sm->blob_id,
				sm->modseq };
	struct eval_ctx ec = { .s = ss->s, .m = &m, .full = 0 };
	int r = eval(&ec, ss->prog);
	if (r == 1) {
		if (push_hit(&ss->match, &ss->n_match, &ss->cap_match, &m) < 0)
			ss->oom = 1;
	} else if (r < 0) {
		if (ss->n_later == ss->cap_later) {
			size_t c = ss->cap_later ? ss->cap_later * 2 : 64;
			struct search_msg *nl = realloc(ss->later, c * sizeof(*nl));
			if (nl == NULL) {
				ss->oom = 1;
				return;
			}
			ss->later = nl;
			ss->cap_later = c;
		}
		m.keywords = strdup(m.keywords);
		if (m.keywords == NULL) {
			ss->oom = 1;
			return;
		}
		ss->later[ss->n_later++] = m;
	}
}

/* The numbers a result is given in: UIDs or message numbers. */
static uint32_t hit_number(struct imap_session *s, int uid, const struct imap_search_hit *h)
{
	return uid ? h->uid : imap_seq_of_uid(s->sel, h->uid);
}

/* "* SEARCH n n n[ (MODSEQ m)]" (RFC 3501 7.2.5, RFC 7162 3.1.6) */
static void write_search(struct imap_session *s, int uid, const struct imap_search_hit *hits, size_t n,
			 int with_modseq)
{
	char buf[4096];
	size_t o = 0;
	uint64_t modseq = 0;
	o += (size_t)snprintf(buf, sizeof(buf), "* SEARCH");
	for (size_t i = 0; i < n; i++) {
		if (o > sizeof(buf) - 16) {
			imap_write(s, buf, o);
			o = 0;
		}
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %u", hit_number(s, uid, &hits[i]));
		if (hits[i].modseq > modseq)
			modseq = hits[i].modseq;
	}
	imap_write(s, buf, o);
	if (with_modseq && n > 0)
		imap_printf(s, " (MODSEQ %llu)", (unsigned long long)modseq);
	imap_write(s, "\r\n", 2);
}

/* RETURN options (RFC 4731 3.1, RFC 5182 SAVE). */
#define RET_MIN   0x01
#define RET_MAX   0x02
#define RET_ALL   0x04
#define RET_COUNT 0x08
#define RET_SAVE  0x10

/* "* ESEARCH (TAG "t") [UID] MIN n MAX n ALL set COUNT n [MODSEQ m]" */
static void write_esearch(struct imap_session *s, const char *tag, int uid, unsigned ret,
			  const struct imap_search_hit *hits, size_t n, int with_modseq)
{
	imap_printf(s, "* ESEARCH (TAG ");
	imap_write_string(s, tag, strlen(tag));
	imap_printf(s, ")%s", uid ? " UID" : "");
	uint64_t modseq = 0;
	if (n > 0 && (ret & RET_MIN)) {
		imap_printf(s, " MIN %u", hit_number(s, uid, &hits[0]));
		modseq = hits[0].modseq;
	}
	if (n > 0 && (ret & RET_MAX)) {
		imap_printf(s, " MAX %u", hit_number(s, uid, &hits[n - 1]));
		if (hits[n - 1].modseq > modseq)
			modseq = hits[n - 1].modseq;
	}
	if (n > 0 && (ret & RET_ALL)) {
		uint32_t *v = malloc(n * sizeof(*v));
		char *set = NULL;
		if (v != NULL) {
			for (size_t i = 0; i < n; i++)
				v[i] = hit_number(s, uid, &hits[i]);
			set = imap_seqset_format(v, n);
			free(v);
		}
		if (set != NULL)
			imap_printf(s, " ALL %s", set);
		free(set);
	}
	if (ret & RET_COUNT)
		imap_printf(s, " COUNT %zu", n);
	/* RFC 4731 3.2: the modseq of MIN and/or MAX alone, else of all */
	if (ret & (RET_ALL | RET_COUNT))
		for (size_t i = 0; i < n; i++)
			if (hits[i].modseq > modseq)
				modseq = hits[i].modseq;
	if (with_modseq && n > 0)
		imap_printf(s, " MODSEQ %llu", (unsigned long long)modseq);
	imap_write(s, "\r\n", 2);
}

/* SEARCHRES (RFC 5182 2.1, 2.4): what "$" holds from now on. */
static void save_result(struct imap_session *s, unsigned ret, const struct imap_search_hit *hits,
			size_t n)
{
	free(s->saved);
	s->saved = NULL;
	s->n_saved = 0;
	if (n == 0)
		return;
	s->saved = malloc(n * sizeof(*s->saved));
	if (s->saved == NULL)
		return;
	if (ret & (RET_ALL | RET_COUNT) || !(ret & (RET_MIN | RET_MAX))) {
		for (size_t i = 0; i < n; i++)
			s->saved[i] = hits[i].uid;
		s->n_saved = n;
		return;
	}
	if (ret & RET_MIN)
		s->saved[s->n_saved++] = hits[0].uid;
	if ((ret & RET_MAX) && (s->n_saved == 0 || hits[n - 1].uid != s->saved[0]))
		s->saved[s->n_saved++] = hits[n - 1].uid;
}

static int cmp_hit(const void *a, const void *b)
{
	uint32_t x = ((const struct imap_search_hit *)a)->uid, y = ((const struct imap_search_hit *)b)->uid;
	return x < y ? -1 : x > y;
}

/* "RETURN (opts)": 0, or -1 on a syntax error. */
static int parse_return(const struct imap_arg *a, unsigned *ret_r)
{
	if (a->type != IMAP_ARG_LIST)
		return -1;
	static const struct {
		const char *name;
		unsigned bit;
	} opts[] = { { "MIN", RET_MIN },     { "MAX", RET_MAX },   { "ALL", RET_ALL },
		     { "COUNT", RET_COUNT }, { "SAVE", RET_SAVE } };
	unsigned ret = 0;
	for (size_t i = 0; i < a->list_count; i++) {
		const char *o = imap_arg_atom(&a->list[i]);
		size_t k = 0;
		for (; o != NULL && k < sizeof(opts) / sizeof(opts[0]); k++)
			if (strcasecmp(o, opts[k].name) == 0)
				break;
		if (o == NULL || k == sizeof(opts) / sizeof(opts[0]))
			return -1;
		ret |= opts[k].bit;
	}
	/* RFC 4731 3.1: "RETURN ()" is "RETURN (ALL)" */
	if (ret == 0)
		ret = RET_ALL;
	*ret_r = ret;
	return 0;
}

int imap_search_parse(struct imap_session *s, const struct imap_arg *args, size_t n,
		      struct imap_search **prog_r, struct imap_search_info *info_r,
		      const char **error_r)
{
	memset(info_r, 0, sizeof(*info_r));
	*prog_r = NULL;
	struct imap_search *prog = calloc(1, sizeof(*prog));
	if (prog == NULL) {
		*error_r = "Out of memory";
		return -1;
	}
	struct parse_ctx pc = { s, args, n, 0, NULL, info_r };
	if (parse_group(&pc, args, n, &prog->root, 0) < 0) {
		imap_search_free(prog);
		*error_r = pc.error != NULL ? pc.error : "Invalid search";
		return -1;
	}
	*prog_r = prog;
	return 0;
}

void imap_search_free(struct imap_search *prog)
{
	if (prog == NULL)
		return;
	skey_free(&prog->root);
	free(prog);
}

int imap_search_run(struct imap_session *s, struct imap_search *prog,
		    struct imap_search_hit **hits_r, size_t *n_r)
{
	struct search_state ss = { .s = s, .prog = &prog->root };
	const char *err;
	struct imap_mailbox *mb = s->sel;
	int failed = 0;
	*hits_r = NULL;
	*n_r = 0;
	if (mb->n > 0 && store_msg_scan_range(s->srv->store, mb->id, mb->uids[0], mb->uids[mb->n - 1],
					      scan_cb, &ss, &err) < 0) {
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
		failed = 1;
	}
	/* second pass: the messages the metadata did not decide */
	for (size_t i = 0; i < ss.n_later; i++) {
		struct eval_ctx ec = { .s = s, .store = s->srv->store, .m = &ss.later[i], .full = 1 };
		if (!failed && eval(&ec, &prog->root) == 1 &&
		    push_hit(&ss.match, &ss.n_match, &ss.cap_match, &ss.later[i]) < 0)
			ss.oom = 1;
		if (ec.error)
			failed = 1;
		eval_release(&ec);
		free(ss.later[i].keywords);
	}
	free(ss.later);
	if (failed || ss.oom) {
		free(ss.match);
		return -1;
	}
	if (ss.n_match > 1)
		qsort(ss.match, ss.n_match, sizeof(*ss.match), cmp_hit);
	*hits_r = ss.match;
	*n_r = ss.n_match;
	return 0;
}

void imap_cmd_search(struct imap_session *s, struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	size_t n = cmd->n_args;
	/* SEARCH [RETURN (opts)] [CHARSET charset] keys (RFC 4466 2.6) */
	unsigned ret = 0;
	int extended = 0;
	if (n >= 1 && args[0].type == IMAP_ARG_ATOM && strcasecmp(args[0].str, "RETURN") == 0) {
		if (n < 2 || parse_return(&args[1], &ret) < 0) {
			imap_tagged(s, cmd->tag, "BAD",
				    "Syntax: RETURN ([MIN] [MAX] [ALL] [COUNT] [SAVE])");
			return;
		}
		extended = 1;
		args += 2;
		n -= 2;
	}
	if (s->rev2 && !extended) {
		/* RFC 9051 6.4.4: no result option is ALL, in an ESEARCH */
		extended = 1;
		ret = RET_ALL;
	}
	if (n >= 1 && args[0].type == IMAP_ARG_ATOM && strcasecmp(args[0].str, "CHARSET") == 0) {
		const char *cs = n >= 2 ? imap_arg_string(&args[1]) : NULL;
		if (s->utf8_accept) {
			/* RFC 6855 3: no charset once UTF-8 is on (conflicting labels) */
			imap_tagged(s, cmd->tag, "BAD", "No CHARSET after ENABLE UTF8=ACCEPT");
			return;
		}
		if (cs == NULL) {
			imap_tagged(s, cmd->tag, "BAD", "Syntax: CHARSET charset");
			return;
		}
		if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
			if (ret & RET_SAVE)
				save_result(s, 0, NULL, 0); /* RFC 5182 2.1: NO empties "$" */
			imap_tagged(s, cmd->tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
			return;
		}
		args += 2;
		n -= 2;
	}
	if (n == 0) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %sSEARCH [RETURN (options)] [CHARSET charset] keys",
			    cmd->uid ? "UID " : "");
		return;
	}
	struct imap_search_info info;
	struct imap_search *prog;
	const char *error;
	if (imap_search_parse(s, args, n, &prog, &info, &error) < 0) {
		imap_tagged(s, cmd->tag, "BAD", "%s", error);
		return;
	}
	if (info.modseq)
		imap_condstore_enable(s); /* RFC 7162 3.1: an enabling command */
	struct imap_search_hit *match;
	size_t n_match;
	int r = imap_search_run(s, prog, &match, &n_match);
	imap_search_free(prog);
	if (r < 0) {
		if (ret & RET_SAVE)
			save_result(s, 0, NULL, 0);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Search failed");
		return;
	}
	if (!extended)
		write_search(s, cmd->uid, match, n_match, info.modseq);
	else if (ret & (RET_MIN | RET_MAX | RET_ALL | RET_COUNT))
		write_esearch(s, cmd->tag, cmd->uid, ret, match, n_match, info.modseq);
	if (ret & RET_SAVE)
		save_result(s, ret, match, n_match);
	free(match);
	/* RFC 9051 7.5.1 / RFC 7162 3.2.10.2: not during a UID SEARCH that
	 * names message numbers */
	imap_mailbox_sync(s, cmd->uid && !info.seqnums);
	imap_tagged(s, cmd->tag, "OK", "%sSEARCH completed%s", cmd->uid ? "UID " : "",
		    ret & RET_SAVE ? ", result saved" : "");
}
