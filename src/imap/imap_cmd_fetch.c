/* FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8, 7.4.2; RFC 3516 BINARY).
 *
 * Every item is parsed before anything is written. Message metadata comes
 * from one store_msg_get_uids (the uids named, nothing else); ENVELOPE, BODY[STRUCTURE] and section offsets
 * from the parse cache made at delivery (a message is never re-parsed);
 * content is streamed from the store in chunks as IMAP literals. When
 * non-PEEK content is fetched from a read-write mailbox, \Seen is set on all
 * of those messages in one store operation first, and their responses carry
 * the new FLAGS.
 *
 * A long response is produced one message at a time: when the output is
 * above the high watermark the state hangs on s->cont_ctx and s->cont
 * resumes it once the output drains (imap_fetch_abort frees it if the
 * connection goes first). */
#include "imap/imap_fetch.h"
#include "imap/imap_fetch_private.h"
#include "imap/imap_session.h"

#include "core/log.h"
#include "mime/mime_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FETCH_CHUNK (64 * 1024)
/* BINARY[] of unencoded content up to this size is read first, to send it as
 * a <string> when it holds no NUL; larger goes as literal8 unread. */
#define BINARY_SCAN_MAX (1024 * 1024)

struct fetch_msg {
	uint32_t uid;
	int found;          /* still in the store */
	int flags_changed;  /* \Seen was set by this FETCH: send FLAGS */
	uint32_t flags;
	char *keywords;
	int64_t internaldate;
	uint64_t size;
	int64_t blob_id;
	uint64_t modseq;
};

/* What one item of the current message writes after its name. */
struct fetch_data {
	enum { DATA_NONE, DATA_NIL, DATA_BLOB, DATA_MEM } src;
	int literal8;
	uint64_t off, len; /* within the blob, or within mem */
	char *mem;
	uint64_t number;   /* BINARY.SIZE */
};

struct fetch_state {
	char tag[128];
	int uid_cmd;
	int async;               /* imap_cmd_async was called */
	store_t *store;
	struct fetch_items items;
	struct fetch_msg *msgs;  /* the requested uids, ascending */
	size_t n_msgs, scan_i, pos;
	/* the message being written */
	int in_msg;
	size_t item_i;
	struct store_msg_cache cache;
	int have_cache;
	const char *parts;
	char fallback_parts[256];
	struct fetch_data *data; /* one per item */
	/* a literal being streamed: data[lit_item] */
	int streaming;
	size_t lit_item;
	uint64_t lit_done;
	char *buf;               /* FETCH_CHUNK octets */
	/* outcome */
	int failed, unknown_cte, missing;
	/* \Seen operation result (filled on the committer thread) */
	net_handle_t *handle;
	int op_status;
	struct store_msg *changed;
	char **changed_kw;
	size_t n_changed;
};

static void data_clear(struct fetch_state *st)
{
	if (st->data != NULL) {
		for (size_t i = 0; i < st->items.n; i++) {
			free(st->data[i].mem);
			memset(&st->data[i], 0, sizeof(st->data[i]));
		}
	}
	if (st->have_cache)
		store_msg_cache_free(&st->cache);
	st->have_cache = 0;
	st->parts = NULL;
	st->streaming = 0;
}

static void state_free(struct fetch_state *st)
{
	if (st == NULL)
		return;
	data_clear(st);
	free(st->data);
	for (size_t i = 0; i < st->n_msgs; i++)
		free(st->msgs[i].keywords);
	free(st->msgs);
	for (size_t i = 0; i < st->n_changed; i++)
		free(st->changed_kw[i]);
	free(st->changed);
	free(st->changed_kw);
	free(st->buf);
	imap_fetch_items_free(&st->items);
	free(st);
}

static void fetch_continue(struct imap_session *s);

void imap_fetch_abort(struct imap_session *s)
{
	if (s->cont == fetch_continue) {
		state_free(s->cont_ctx);
		s->cont = NULL;
		s->cont_ctx = NULL;
	}
}

/* ------------------------------------------------------------- preparing */

static void apply_partial(const struct fetch_item *it, struct fetch_data *d)
{
	if (!it->partial)
		return;
	if (it->origin >= d->len) {
		d->off += d->len;
		d->len = 0;
		return;
	}
	d->off += it->origin;
	d->len -= it->origin;
	if (d->len > it->count)
		d->len = it->count;
}

static const char *section_suffix(enum fetch_text t)
{
	switch (t) {
	case FETCH_TEXT_HEADER:
	case FETCH_TEXT_FIELDS:
	case FETCH_TEXT_FIELDS_NOT:
		return "HEADER";
	case FETCH_TEXT_TEXT:
		return "TEXT";
	case FETCH_TEXT_MIME:
		return "MIME";
	default:
		return NULL;
	}
}

/* BODY[...]: 0, or -1 on a store error. */
static int prepare_section(struct fetch_state *st, const struct fetch_msg *m,
			   const struct fetch_item *it, struct fetch_data *d)
{
	struct mime_section sec = { 0, m->size };
	const char *err;
	if (it->part[0] != '\0' || it->text != FETCH_TEXT_NONE) {
		if (mime_section_find(st->parts, m->size, it->part, section_suffix(it->text), &sec) <= 0)
			sec.offset = sec.len = 0; /* no such part: an empty string */
	}
	if (it->text == FETCH_TEXT_FIELDS || it->text == FETCH_TEXT_FIELDS_NOT) {
		char *hdr;
		size_t hlen;
		if (imap_msg_read(st->store, m->blob_id, sec.offset, sec.len, &hdr, &hlen, &err) < 0) {
			log_error("imap", 0, "event=store-error error=\"%s\"", err);
			return -1;
		}
		char *out = NULL;
		size_t olen = 0;
		int r = sec.len == 0 ? 0
				     : mime_header_fields(hdr, hlen, (const char *const *)it->fields,
							  it->n_fields, it->text == FETCH_TEXT_FIELDS_NOT,
							  &out, &olen);
		free(hdr);
		if (r < 0)
			return -1;
		d->src = DATA_MEM;
		d->mem = out;
		d->off = 0;
		d->len = olen;
	} else {
		d->src = DATA_BLOB;
		d->off = sec.offset;
		d->len = sec.len;
	}
	apply_partial(it, d);
	return 0;
}

static int is_identity_cte(const char *enc)
{
	return strcmp(enc, "7bit") == 0 || strcmp(enc, "8bit") == 0 || strcmp(enc, "binary") == 0;
}

/* BINARY[...] / BINARY.SIZE[...]: 0, -1 on a store error, -2 when the
 * content transfer encoding cannot be undone. */
static int prepare_binary(struct fetch_state *st, const struct fetch_msg *m,
			  const struct fetch_item *it, struct fetch_data *d)
{
	const char *enc = "binary";
	struct mime_section sec = { 0, m->size };
	if (it->part[0] != '\0') {
		enc = mime_section_encoding(st->parts, it->part);
		if (enc == NULL || mime_section_find(st->parts, m->size, it->part, NULL, &sec) <= 0) {
			d->src = DATA_NIL; /* no such part */
			return 0;
		}
	}
	if (strcmp(enc, "unknown") == 0)
		return -2;
	if (is_identity_cte(enc) &&
	    (it->kind == FETCH_BINARY_SIZE || sec.len > BINARY_SCAN_MAX)) {
		d->src = DATA_BLOB;
		d->off = sec.offset;
		d->len = sec.len;
		/* content that may hold NULs goes as literal8 (RFC 3516 4.3) */
		d->literal8 = 1;
	} else if (is_identity_cte(enc)) {
		/* RFC 9051 6.4.5: a <string> unless there is a NUL, which only
		 * literal8 may carry: look */
		const char *err;
		if (imap_msg_read(st->store, m->blob_id, sec.offset, sec.len, &d->mem, &d->len,
				  &err) < 0) {
			log_error("imap", 0, "event=store-error error=\"%s\"", err);
			return -1;
		}
		d->src = DATA_MEM;
		d->off = 0;
		d->literal8 = memchr(d->mem, '\0', d->len) != NULL;
	} else {
		char *raw, *dec;
		size_t rlen, dlen;
		const char *err;
		if (imap_msg_read(st->store, m->blob_id, sec.offset, sec.len, &raw, &rlen, &err) < 0) {
			log_error("imap", 0, "event=store-error error=\"%s\"", err);
			return -1;
		}
		int r = mime_decode_transfer(enc, raw, rlen, &dec, &dlen);
		free(raw);
		if (r < 0)
			return -2;
		d->src = DATA_MEM;
		d->mem = dec;
		d->off = 0;
		d->len = dlen;
		d->literal8 = memchr(dec, '\0', dlen) != NULL;
	}
	d->number = d->len;
	if (it->kind == FETCH_BINARY_SIZE) {
		free(d->mem);
		d->mem = NULL;
		d->src = DATA_NONE;
	} else {
		apply_partial(it, d);
	}
	return 0;
}

/* Load what the message's items need. 0, -1 store error, -2 unknown CTE. */
static int msg_prepare(struct fetch_state *st, const struct fetch_msg *m)
{
	const char *err;
	if (st->items.need_cache) {
		int r = store_msg_cache_get(st->store, m->blob_id, &st->cache, &err);
		if (r < 0) {
			log_error("imap", 0, "event=store-error error=\"%s\"", err);
			return -1;
		}
		st->have_cache = r > 0;
		st->parts = st->have_cache ? st->cache.parts : NULL;
		if (st->parts == NULL) {
			/* no cache row (should not happen): one text/plain part */
			st->parts = imap_msg_fallback_parts(st->store, m->blob_id, m->size,
							    st->fallback_parts,
							    sizeof(st->fallback_parts));
			if (st->parts == NULL)
				return -1;
		}
	}
	for (size_t i = 0; i < st->items.n; i++) {
		const struct fetch_item *it = &st->items.v[i];
		int r = 0;
		if (it->kind == FETCH_SECTION)
			r = prepare_section(st, m, it, &st->data[i]);
		else if (it->kind == FETCH_BINARY || it->kind == FETCH_BINARY_SIZE)
			r = prepare_binary(st, m, it, &st->data[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --------------------------------------------------------------- writing */

static int recent(struct imap_session *s, uint32_t uid)
{
	return !s->rev2 && imap_is_recent(s->sel, uid);
}

/* Stream the pending literal: 1 when suspended (output full), 0 done. */
/* RFC 9051 4.3 / RFC 3501 4.3: a literal carries any octet except NUL; only
 * literal8 (BINARY) may. Mail that arrived with NUL octets (SMTP takes them
 * in 8BITMIME/BINARYMIME bodies) goes out with 0x80 in their place, as
 * Dovecot does; the announced length stays right. buf: FETCH_CHUNK octets
 * the chunk may be copied into (p may already point there). */
static void write_chunk(struct imap_session *s, char *buf, const char *p, size_t n,
			int literal8)
{
	const char *nul = literal8 ? NULL : memchr(p, '\0', n);
	if (nul == NULL) {
		imap_write(s, p, n);
		return;
	}
	if (p != buf)
		memcpy(buf, p, n);
	for (char *q = buf + (nul - p); q != NULL; q = memchr(q, '\0', n - (size_t)(q - buf)))
		*q = (char)0x80;
	imap_write(s, buf, n);
}

static int stream_literal(struct imap_session *s, struct fetch_state *st,
			  const struct fetch_msg *m)
{
	const struct fetch_data *d = &st->data[st->lit_item];
	while (st->lit_done < d->len) {
		if (!net_conn_can_process(s->conn))
			return 1;
		uint64_t left = d->len - st->lit_done;
		size_t n = left < FETCH_CHUNK ? (size_t)left : FETCH_CHUNK;
		if (d->src == DATA_MEM) {
			write_chunk(s, st->buf, d->mem + d->off + st->lit_done, n, d->literal8);
		} else {
			size_t got = 0;
			const char *err = NULL;
			if (store_blob_read(st->store, m->blob_id, d->off + st->lit_done, st->buf, n,
					    &got, &err) < 0 ||
			    got < n) {
				/* the literal's length is announced: keep the
				 * stream in step, and fail the command */
				log_error("imap", s->id, "event=store-error uid=%u error=\"%s\"", m->uid,
					  err != NULL ? err : "content shorter than expected");
				if (got > n)
					got = 0;
				memset(st->buf + got, ' ', n - got);
				st->failed = 1;
			}
			write_chunk(s, st->buf, st->buf, n, d->literal8);
		}
		st->lit_done += n;
	}
	st->streaming = 0;
	return 0;
}

static void write_item(struct imap_session *s, struct fetch_state *st, const struct fetch_msg *m,
		       size_t i)
{
	const struct fetch_item *it = &st->items.v[i];
	struct fetch_data *d = &st->data[i];
	if (i > 0)
		imap_write(s, " ", 1);
	switch (it->kind) {
	case FETCH_UID:
		imap_printf(s, "UID %u", m->uid);
		break;
	case FETCH_FLAGS:
		imap_write(s, "FLAGS ", 6);
		imap_write_flags(s, m->flags, m->keywords, recent(s, m->uid));
		break;
	case FETCH_INTERNALDATE: {
		char date[64];
		imap_format_internaldate(m->internaldate, date, sizeof(date));
		imap_printf(s, "INTERNALDATE \"%s\"", date);
		break;
	}
	case FETCH_RFC822_SIZE:
		imap_printf(s, "RFC822.SIZE %llu", (unsigned long long)m->size);
		break;
	case FETCH_MODSEQ:
		imap_printf(s, "MODSEQ (%llu)", (unsigned long long)m->modseq);
		break;
	case FETCH_ENVELOPE:
		imap_write(s, "ENVELOPE ", 9);
		if (st->have_cache && st->cache.envelope != NULL)
			imap_write(s, st->cache.envelope, strlen(st->cache.envelope));
		else
			imap_write(s, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", 41);
		break;
	case FETCH_BODY:
	case FETCH_BODYSTRUCTURE: {
		int ext = it->kind == FETCH_BODYSTRUCTURE;
		const char *v = !st->have_cache ? NULL : ext ? st->cache.bodystructure : st->cache.body;
		imap_printf(s, "%s ", ext ? "BODYSTRUCTURE" : "BODY");
		if (v != NULL)
			imap_write(s, v, strlen(v));
		else
			imap_printf(s, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" "
				       "%llu 0%s)",
				    (unsigned long long)m->size, ext ? " NIL NIL NIL NIL" : "");
		break;
	}
	case FETCH_BINARY_SIZE:
		imap_printf(s, "%s %llu", it->resp, (unsigned long long)d->number);
		break;
	case FETCH_SECTION:
	case FETCH_BINARY:
		imap_printf(s, "%s ", it->resp);
		if (d->src == DATA_NIL) {
			imap_write(s, "NIL", 3);
		} else if (d->len == 0) {
			imap_write(s, "\"\"", 2);
		} else {
			imap_printf(s, "%s{%llu}\r\n", d->literal8 ? "~" : "",
				    (unsigned long long)d->len);
			st->streaming = 1;
			st->lit_item = i;
			st->lit_done = 0;
		}
		break;
	}
}

static void fetch_finish(struct imap_session *s, struct fetch_state *st)
{
	s->cont = NULL;
	s->cont_ctx = NULL;
	imap_mailbox_sync(s, st->uid_cmd);
	if (st->unknown_cte)
		imap_tagged(s, st->tag, "NO", "[UNKNOWN-CTE] Cannot decode the content of a part");
	else if (st->failed)
		imap_tagged(s, st->tag, "NO", "[SERVERBUG] Some messages could not be read");
	else if (st->missing && !st->uid_cmd)
		imap_tagged(s, st->tag, "NO", "[EXPUNGEISSUED] Some messages were expunged");
	else
		imap_tagged(s, st->tag, "OK", "%sFETCH completed", st->uid_cmd ? "UID " : "");
	int async = st->async;
	state_free(st);
	if (async)
		imap_cmd_done(s);
}

/* Write responses until done or the output is full. */
static void fetch_run(struct imap_session *s, struct fetch_state *st)
{
	/* every message costs a few reads (cache row, content): in one
	 * snapshot they do not each look for other sessions' commits */
	const char *err;
	int snapshot = store_read_begin(st->store, &err) == 0;
	while (st->pos < st->n_msgs) {
		struct fetch_msg *m = &st->msgs[st->pos];
		if (!st->in_msg) {
			if (!m->found) {
				st->missing = 1;
				st->pos++;
				continue;
			}
			uint32_t seq = imap_seq_of_uid(s->sel, m->uid);
			int r = msg_prepare(st, m);
			if (r < 0 || seq == 0) {
				data_clear(st);
				if (r == -2) {
					st->unknown_cte = 1;
					break; /* RFC 3516: fail the request */
				}
				if (r == -1)
					st->failed = 1;
				st->pos++;
				continue;
			}
			imap_printf(s, "* %u FETCH (", seq);
			st->in_msg = 1;
			st->item_i = 0;
		}
		for (;;) {
			if (st->streaming) {
				if (stream_literal(s, st, m) != 0)
					goto suspend;
				continue;
			}
			if (st->item_i == st->items.n)
				break;
			write_item(s, st, m, st->item_i++);
			if (!st->streaming && !net_conn_can_process(s->conn))
				goto suspend;
		}
		if (m->flags_changed && !st->items.has_flags) {
			imap_write(s, " FLAGS ", 7);
			imap_write_flags(s, m->flags, m->keywords, recent(s, m->uid));
		}
		imap_write(s, ")\r\n", 3);
		data_clear(st);
		st->in_msg = 0;
		st->pos++;
		if (st->pos < st->n_msgs && !net_conn_can_process(s->conn))
			goto suspend;
	}
	if (snapshot)
		store_read_end(st->store);
	fetch_finish(s, st);
	return;
suspend:
	if (snapshot)
		store_read_end(st->store);
	s->cont = fetch_continue;
	s->cont_ctx = st;
}

static void fetch_continue(struct imap_session *s)
{
	fetch_run(s, s->cont_ctx);
}

/* ------------------------------------------------------------ \Seen first */

static int cmp_msg_uid(const void *key, const void *elem)
{
	uint32_t u = *(const uint32_t *)key;
	const struct fetch_msg *m = elem;
	return u < m->uid ? -1 : u > m->uid;
}

static void seen_done(void *session, void *arg)
{
	struct imap_session *s = session;
	struct fetch_state *st = arg;
	if (s == NULL) {
		state_free(st); /* the session closed meanwhile */
		return;
	}
	if (st->op_status != 0)
		log_error("imap", s->id, "event=store-error error=\"cannot set \\\\Seen\"");
	for (size_t i = 0; i < st->n_changed; i++) {
		struct fetch_msg *m = bsearch(&st->changed[i].uid, st->msgs, st->n_msgs,
					      sizeof(*st->msgs), cmp_msg_uid);
		if (m == NULL || !m->found)
			continue;
		m->flags = st->changed[i].flags;
		m->modseq = st->changed[i].modseq;
		free(m->keywords);
		m->keywords = st->changed_kw[i];
		st->changed_kw[i] = NULL;
		m->flags_changed = 1;
	}
	if (st->n_changed > 0 && s->sel != NULL) {
		/* our own change, reported by this FETCH: the sync skips it */
		s->notify_pending = 1;
		s->sel->own_modseq = st->changed[0].modseq;
	}
	fetch_run(s, st);
}

/* Committer thread: copy what the result says and hand it back. */
static void seen_cb(void *ctx, const struct store_op_result *res)
{
	struct fetch_state *st = ctx;
	st->op_status = res->status;
	if (res->status == 0 && res->n_changed > 0) {
		st->changed = calloc(res->n_changed, sizeof(*st->changed));
		st->changed_kw = calloc(res->n_changed, sizeof(*st->changed_kw));
		if (st->changed != NULL && st->changed_kw != NULL) {
			for (size_t i = 0; i < res->n_changed; i++) {
				st->changed[i] = res->changed[i];
				st->changed[i].keywords = NULL;
				st->changed_kw[i] = strdup(res->changed[i].keywords != NULL
								   ? res->changed[i].keywords
								   : "");
				if (st->changed_kw[i] == NULL) {
					/* keep the old keywords for this one */
					st->changed[i].uid = 0;
				}
			}
			st->n_changed = res->n_changed;
		}
	}
	net_handle_post(st->handle, seen_done, st);
}

/* --------------------------------------------------------------- command */

static void scan_cb(void *ctx, const struct store_msg *sm)
{
	struct fetch_state *st = ctx;
	while (st->scan_i < st->n_msgs && st->msgs[st->scan_i].uid < sm->uid)
		st->scan_i++;
	if (st->scan_i == st->n_msgs || st->msgs[st->scan_i].uid != sm->uid)
		return;
	struct fetch_msg *m = &st->msgs[st->scan_i++];
	m->keywords = strdup(sm->keywords != NULL ? sm->keywords : "");
	if (m->keywords == NULL)
		return; /* treated as gone: fails softly */
	m->found = 1;
	m->flags = sm->flags;
	m->internaldate = sm->internaldate;
	m->size = sm->size;
	m->blob_id = sm->blob_id;
	m->modseq = sm->modseq;
}

/* RFC 3516: a part whose encoding cannot be undone fails the whole request,
 * so look before writing anything (or setting \Seen). 0 fine, -1 store
 * error, -2 unknown CTE. */
static int binary_precheck(struct fetch_state *st)
{
	int any = 0;
	for (size_t i = 0; i < st->items.n; i++)
		if ((st->items.v[i].kind == FETCH_BINARY || st->items.v[i].kind == FETCH_BINARY_SIZE) &&
		    st->items.v[i].part[0] != '\0')
			any = 1;
	if (!any)
		return 0;
	int r = 0;
	for (size_t k = 0; k < st->n_msgs && r == 0; k++) {
		const struct fetch_msg *m = &st->msgs[k];
		if (!m->found)
			continue;
		struct store_msg_cache c;
		const char *err;
		int got = store_msg_cache_get(st->store, m->blob_id, &c, &err);
		if (got < 0) {
			log_error("imap", 0, "event=store-error error=\"%s\"", err);
			return -1;
		}
		if (got == 0 || c.parts == NULL) {
			if (got > 0)
				store_msg_cache_free(&c);
			continue; /* one text/plain part: nothing to refuse */
		}
		for (size_t i = 0; i < st->items.n && r == 0; i++) {
			const struct fetch_item *it = &st->items.v[i];
			if ((it->kind != FETCH_BINARY && it->kind != FETCH_BINARY_SIZE) ||
			    it->part[0] == '\0')
				continue;
			const char *enc = mime_section_encoding(c.parts, it->part);
			if (enc != NULL && strcmp(enc, "unknown") == 0)
				r = -2;
		}
		store_msg_cache_free(&c);
	}
	return r;
}

/* Message numbers must exist (RFC 3501 6.4.5 / 9: a number beyond EXISTS
 * is an error); UIDs need not. */
int imap_seqset_in_range(const char *str, uint32_t n)
{
	struct imap_seqset set;
	if (imap_seqset_parse(str, 1, &set) < 0)
		return 0;
	int ok = 1;
	if (!set.dollar) {
		size_t plain = set.star ? set.n - 1 : set.n;
		if (n == 0)
			ok = 0;
		for (size_t i = 0; i < plain; i++)
			if (set.r[i].hi > n)
				ok = 0;
		if (set.star && set.star_hi > n)
			ok = 0;
	}
	imap_seqset_free(&set);
	return ok;
}

/* FETCH modifiers (RFC 4466 2.4): CHANGEDSINCE (RFC 7162 3.1.4.1) and,
 * for UID FETCH after ENABLE QRESYNC, VANISHED (3.2.6). NULL or a reason. */
static const char *parse_modifiers(struct imap_session *s, struct imap_cmd *cmd,
				   const struct imap_arg *a, uint64_t *changedsince_r,
				   int *changedsince_given_r, int *vanished_r)
{
	if (a->type != IMAP_ARG_LIST || a->list_count == 0)
		return "Syntax: FETCH set items (modifiers)";
	for (size_t i = 0; i < a->list_count; i++) {
		const char *name = imap_arg_atom(&a->list[i]);
		if (name != NULL && strcasecmp(name, "CHANGEDSINCE") == 0 && !*changedsince_given_r) {
			const char *num = i + 1 < a->list_count && a->list[i + 1].type == IMAP_ARG_ATOM
						  ? a->list[++i].str
						  : NULL;
			uint64_t v = 0;
			if (num == NULL || *num == '\0' || strlen(num) > 19)
				return "CHANGEDSINCE needs a mod-sequence";
			for (const char *p = num; *p != '\0'; p++) {
				if (*p < '0' || *p > '9')
					return "CHANGEDSINCE needs a mod-sequence";
				v = v * 10 + (uint64_t)(*p - '0');
			}
			if (v > INT64_MAX)
				return "CHANGEDSINCE needs a mod-sequence";
			*changedsince_r = v;
			*changedsince_given_r = 1;
		} else if (name != NULL && strcasecmp(name, "VANISHED") == 0 && !*vanished_r) {
			if (!cmd->uid)
				return "VANISHED is only for UID FETCH";
			if (!s->qresync)
				return "VANISHED needs ENABLE QRESYNC";
			*vanished_r = 1;
		} else {
			return "Unknown FETCH modifier";
		}
	}
	if (*vanished_r && !*changedsince_given_r)
		return "VANISHED needs CHANGEDSINCE";
	return NULL;
}

struct vanished_ctx {
	struct imap_session *s;
	struct imap_seqset set;
	uint32_t *uids;
	size_t n, cap;
	int oom;
};

static void vanished_cb(void *ctx, uint32_t uid, uint64_t modseq)
{
	struct vanished_ctx *vc = ctx;
	(void)modseq;
	/* one still in the view goes out as a plain VANISHED when the sync
	 * at the end of the command removes it */
	if (!imap_seqset_contains(&vc->set, uid) || imap_seq_of_uid(vc->s->sel, uid) != 0)
		return;
	if (vc->n == vc->cap) {
		size_t c = vc->cap ? vc->cap * 2 : 64;
		uint32_t *u = realloc(vc->uids, c * sizeof(*u));
		if (u == NULL) {
			vc->oom = 1;
			return;
		}
		vc->uids = u;
		vc->cap = c;
	}
	vc->uids[vc->n++] = uid;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* UID FETCH ... (CHANGEDSINCE m VANISHED): VANISHED (EARLIER) for uids of
 * the set expunged after m (RFC 7162 3.2.6). 0, -1 on a store error. */
static int write_vanished_earlier(struct imap_session *s, const char *setstr, uint64_t since)
{
	struct vanished_ctx vc = { .s = s };
	struct imap_mailbox *mb = s->sel;
	if (strcmp(setstr, "$") == 0) {
		/* the saved result (RFC 5182), kept in ascending order */
		if (s->n_saved == 0)
			return 0;
		char *str = imap_seqset_format(s->saved, s->n_saved);
		int r = str == NULL ? -1 : imap_seqset_parse(str, 0, &vc.set);
		free(str);
		if (r < 0)
			return -1;
	} else if (imap_seqset_parse(setstr, 0, &vc.set) < 0) {
		return -1;
	}
	/* "*" is the highest UID the session knows of, expunged or not */
	uint32_t max = mb->uidnext > 1 ? mb->uidnext - 1 : 0;
	if (mb->n > 0 && mb->uids[mb->n - 1] > max)
		max = mb->uids[mb->n - 1];
	imap_seqset_resolve(&vc.set, max);
	const char *err;
	int r = store_msg_changes(s->srv->store, mb->id, since, NULL, vanished_cb, &vc, &err);
	if (r < 0)
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
	if (r == 0 && !vc.oom) {
		if (vc.n > 1)
			qsort(vc.uids, vc.n, sizeof(*vc.uids), cmp_u32);
		imap_write_vanished(s, 1, vc.uids, vc.n);
	}
	imap_seqset_free(&vc.set);
	free(vc.uids);
	return r == 0 && !vc.oom ? 0 : -1;
}

void imap_cmd_fetch(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *setstr = cmd->n_args == 2 || cmd->n_args == 3 ? imap_arg_atom(&cmd->args[0])
								    : NULL;
	if (setstr == NULL || cmd->args[0].type != IMAP_ARG_ATOM) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %sFETCH sequence-set items [(modifiers)]",
			    cmd->uid ? "UID " : "");
		return;
	}
	uint64_t changedsince = 0;
	int changedsince_given = 0, vanished = 0;
	if (cmd->n_args == 3) {
		const char *why = parse_modifiers(s, cmd, &cmd->args[2], &changedsince,
						  &changedsince_given, &vanished);
		if (why != NULL) {
			imap_tagged(s, cmd->tag, "BAD", "%s", why);
			return;
		}
	}
	struct fetch_state *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	snprintf(st->tag, sizeof(st->tag), "%s", cmd->tag);
	st->uid_cmd = cmd->uid;
	st->store = s->srv->store;
	const char *err;
	if (imap_fetch_items_parse(&cmd->args[1], &st->items, &err) < 0) {
		state_free(st);
		imap_tagged(s, cmd->tag, "BAD", "%s", err);
		return;
	}
	/* RFC 3501 6.4.8: UID FETCH answers always carry UID (first).
	 * RFC 7162: CHANGEDSINCE implies MODSEQ (3.1.4.1); once CONDSTORE is
	 * on, a FETCH that sets \Seen reports UID and MODSEQ too (3.2.4). */
	int seen_report = (s->condstore || st->items.has_modseq || changedsince_given) &&
			  st->items.sets_seen && !s->sel->readonly;
	if (((cmd->uid || seen_report) && imap_fetch_items_add(&st->items, "UID", 1) < 0) ||
	    ((changedsince_given || seen_report) &&
	     imap_fetch_items_add(&st->items, "MODSEQ", 0) < 0)) {
		state_free(st);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	uint32_t *uids = NULL;
	size_t n = 0;
	if ((!cmd->uid && !imap_seqset_in_range(setstr, (uint32_t)s->sel->n)) ||
	    imap_seqset_uids(s, setstr, cmd->uid, &uids, &n) < 0) {
		free(uids);
		state_free(st);
		imap_tagged(s, cmd->tag, "BAD", "Invalid sequence set");
		return;
	}
	if (st->items.has_modseq)
		imap_condstore_enable(s); /* RFC 7162 3.1: an enabling command */
	st->msgs = calloc(n ? n : 1, sizeof(*st->msgs));
	st->data = calloc(st->items.n, sizeof(*st->data));
	st->buf = malloc(FETCH_CHUNK);
	if (st->msgs == NULL || st->data == NULL || st->buf == NULL) {
		free(uids);
		state_free(st);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	/* a sequence set may name a message twice ("1,1") */
	for (size_t i = 0; i < n; i++)
		if (st->n_msgs == 0 || uids[i] != uids[st->n_msgs - 1])
			uids[st->n_msgs++] = uids[i];
	for (size_t i = 0; i < st->n_msgs; i++)
		st->msgs[i].uid = uids[i];
	/* only the messages named, not the mailbox from the first of them on */
	int r = store_msg_get_uids(st->store, s->sel->id, uids, st->n_msgs, scan_cb, st, &err);
	free(uids);
	if (r < 0) {
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
		state_free(st);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot read the mailbox");
		return;
	}
	if (changedsince_given) {
		/* only the messages changed since (RFC 7162 3.1.4.1); those
		 * gone meanwhile stay, to be reported as before */
		size_t w = 0;
		for (size_t i = 0; i < st->n_msgs; i++) {
			if (st->msgs[i].found && st->msgs[i].modseq <= changedsince) {
				free(st->msgs[i].keywords);
				continue;
			}
			st->msgs[w++] = st->msgs[i];
		}
		st->n_msgs = w;
	}
	if (vanished && write_vanished_earlier(s, setstr, changedsince) < 0) {
		state_free(st);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot read the mailbox");
		return;
	}
	int pre = binary_precheck(st);
	if (pre < 0) {
		state_free(st);
		if (pre == -2)
			imap_tagged(s, cmd->tag, "NO", "[UNKNOWN-CTE] Cannot decode the content of a part");
		else
			imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot read the mailbox");
		return;
	}
	if (st->items.sets_seen && !s->sel->readonly) {
		uint32_t *unseen = malloc(st->n_msgs * sizeof(*unseen) + 1);
		size_t n_unseen = 0;
		for (size_t i = 0; unseen != NULL && i < st->n_msgs; i++)
			if (st->msgs[i].found && !(st->msgs[i].flags & STORE_FLAG_SEEN))
				unseen[n_unseen++] = st->msgs[i].uid;
		if (n_unseen > 0) {
			store_op_t *op = store_op_new(st->store);
			store_op_flags(op, s->sel->id, unseen, n_unseen, STORE_FLAGS_ADD,
				       STORE_FLAG_SEEN, NULL, 0);
			free(unseen);
			imap_cmd_async(s, cmd);
			st->async = 1;
			st->handle = net_handle_ref(s->handle);
			store_op_commit(op, seen_cb, st);
			return;
		}
		free(unseen);
	}
	fetch_run(s, st);
}
