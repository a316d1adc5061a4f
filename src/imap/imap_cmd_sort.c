/* SORT, UID SORT, THREAD and UID THREAD (RFC 5256).
 *
 * Both search with the SEARCH program (imap_search.h), then read the values
 * the store cached at delivery (decoded Subject/From/To/Cc, Message-ID,
 * In-Reply-To, References, the Date: header as UTC): nothing is parsed
 * again.
 *
 * Decisions:
 *  - Strings collate with i;unicode-casemap (RFC 5051, as RFC 5256 7 asks):
 *    each value is turned into its collation key once, then compared
 *    octet by octet.
 *  - FROM/TO/CC compare the local part of the first address (the IMAP
 *    addr-mailbox), "" when there is none.
 *  - DATE is the Date: header in UTC; without a usable one, INTERNALDATE
 *    (2.2).
 *  - CHARSET: UTF-8 and US-ASCII (a subset), also after ENABLE
 *    UTF8=ACCEPT, since the argument is mandatory here.
 *  - A MODSEQ search key adds "(MODSEQ n)" to the SORT response (RFC 7162
 *    3.1.9); THREAD has no such data.
 *  - An unknown sort criterion or threading algorithm is BAD. */
#include "imap/imap_search.h"
#include "imap/imap_session.h"
#include "imap/imap_thread.h"

#include "core/log.h"
#include "mime/mime_collate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SORT_MAX_CRITERIA 16

enum sort_key { SK_ARRIVAL, SK_CC, SK_DATE, SK_FROM, SK_SIZE, SK_SUBJECT, SK_TO };

static const char *const sort_key_names[] = { "ARRIVAL", "CC",      "DATE", "FROM",
					       "SIZE",    "SUBJECT", "TO" };

struct sort_crit {
	enum sort_key key;
	int reverse;
};

struct sort_item {
	uint32_t seq, uid;
	int64_t arrival, sent;
	uint64_t size;
	char *subject, *from, *to, *cc; /* collation keys, NULL when not needed */
};

/* "(criterion ...)": 0, or -1 (reply BAD). */
static int parse_criteria(const struct imap_arg *a, struct sort_crit *crit, size_t *n_r)
{
	if (a->type != IMAP_ARG_LIST || a->list_count == 0)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < a->list_count; i++) {
		const char *name = imap_arg_atom(&a->list[i]);
		if (name == NULL || n == SORT_MAX_CRITERIA)
			return -1;
		int reverse = 0;
		if (strcasecmp(name, "REVERSE") == 0) {
			/* sort-criterion = ["REVERSE" SP] sort-key */
			if (++i == a->list_count || (name = imap_arg_atom(&a->list[i])) == NULL)
				return -1;
			reverse = 1;
		}
		size_t k = 0;
		while (k < sizeof(sort_key_names) / sizeof(sort_key_names[0]) &&
		       strcasecmp(name, sort_key_names[k]) != 0)
			k++;
		if (k == sizeof(sort_key_names) / sizeof(sort_key_names[0]))
			return -1;
		crit[n].key = (enum sort_key)k;
		crit[n].reverse = reverse;
		n++;
	}
	*n_r = n;
	return 0;
}

/* The charset argument: 1 accepted, 0 unsupported (NO [BADCHARSET]), -1
 * missing. */
static int check_charset(const struct imap_arg *a)
{
	const char *cs = imap_arg_string(a);
	if (cs == NULL || a->type == IMAP_ARG_NIL)
		return -1;
	return strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "US-ASCII") == 0;
}

/* Collation key of a string (NULL: ""). */
static char *key_of(const char *s, int *oom)
{
	char *k = mime_casemap_key(s != NULL ? s : "");
	if (k == NULL)
		*oom = 1;
	return k;
}

static char *subject_key(const char *subject, int *oom)
{
	char *base = imap_base_subject(subject, NULL);
	if (base == NULL) {
		*oom = 1;
		return NULL;
	}
	char *k = key_of(base, oom);
	free(base);
	return k;
}

static char *mailbox_key(const char *list, int *oom)
{
	char *mbox = imap_first_mailbox(list);
	if (mbox == NULL) {
		*oom = 1;
		return NULL;
	}
	char *k = key_of(mbox, oom);
	free(mbox);
	return k;
}

/* The part shared by SORT and THREAD after their first argument: check the
 * charset (args[1]), parse the search keys after it and run them. 0 with
 * the hits, or -1 after replying. */
static int run_search(struct imap_session *s, struct imap_cmd *cmd,
		      struct imap_search_hit **hits_r, size_t *n_r,
		      struct imap_search_info *info_r)
{
	const struct imap_arg *args = cmd->args;
	size_t n = cmd->n_args;
	int cs = n >= 2 ? check_charset(&args[1]) : -1;
	if (cs < 0) {
		imap_tagged(s, cmd->tag, "BAD", "Missing charset");
		return -1;
	}
	if (cs == 0) {
		imap_tagged(s, cmd->tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
		return -1;
	}
	args += 2;
	n -= 2;
	struct imap_search *prog;
	const char *error;
	if (n == 0) {
		imap_tagged(s, cmd->tag, "BAD", "Missing search criteria");
		return -1;
	}
	if (imap_search_parse(s, args, n, &prog, info_r, &error) < 0) {
		imap_tagged(s, cmd->tag, "BAD", "%s", error);
		return -1;
	}
	if (info_r->modseq)
		imap_condstore_enable(s); /* RFC 7162 3.1: an enabling command */
	int r = imap_search_run(s, prog, hits_r, n_r);
	imap_search_free(prog);
	if (r < 0) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] %s failed", cmd->name);
		return -1;
	}
	return 0;
}

/* The parse cache of a hit: 1 loaded, 0 none (values count as absent), -1
 * store error (logged). */
static int load_cache(struct imap_session *s, const struct imap_search_hit *h,
		      struct store_msg_cache *c)
{
	const char *err;
	memset(c, 0, sizeof(*c));
	int r = store_msg_cache_get(s->srv->store, h->blob_id, c, &err);
	if (r < 0)
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
	return r;
}

/* ------------------------------------------------------------------- SORT */

/* qsort has no context argument; sessions run on several workers */
static _Thread_local const struct sort_crit *cmp_crit;
static _Thread_local size_t cmp_n_crit;

static int cmp_num(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_items(const void *pa, const void *pb)
{
	const struct sort_item *a = pa, *b = pb;
	for (size_t i = 0; i < cmp_n_crit; i++) {
		int c = 0;
		switch (cmp_crit[i].key) {
		case SK_ARRIVAL:
			c = cmp_num(a->arrival, b->arrival);
			break;
		case SK_DATE:
			c = cmp_num(a->sent, b->sent);
			break;
		case SK_SIZE:
			c = a->size < b->size ? -1 : a->size > b->size;
			break;
		case SK_SUBJECT:
			c = strcmp(a->subject, b->subject);
			break;
		case SK_FROM:
			c = strcmp(a->from, b->from);
			break;
		case SK_TO:
			c = strcmp(a->to, b->to);
			break;
		case SK_CC:
			c = strcmp(a->cc, b->cc);
			break;
		}
		if (c != 0)
			return cmp_crit[i].reverse ? -c : c;
	}
	/* the implicit last criterion, never reversed (RFC 5256 3) */
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void free_items(struct sort_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].subject);
		free(items[i].from);
		free(items[i].to);
		free(items[i].cc);
	}
	free(items);
}

/* Fill items from the hits: 0, or -1 (store error or out of memory). */
static int load_items(struct imap_session *s, const struct imap_search_hit *hits, size_t n,
		      const struct sort_crit *crit, size_t n_crit, struct sort_item *items)
{
	unsigned need = 0;
	for (size_t i = 0; i < n_crit; i++)
		need |= 1u << crit[i].key;
	int oom = 0;
	for (size_t i = 0; i < n && !oom; i++) {
		struct sort_item *it = &items[i];
		it->uid = hits[i].uid;
		it->seq = imap_seq_of_uid(s->sel, hits[i].uid);
		it->arrival = hits[i].internaldate;
		it->size = hits[i].size;
		it->sent = hits[i].internaldate;
		if (!(need & ~((1u << SK_ARRIVAL) | (1u << SK_SIZE))))
			continue;
		struct store_msg_cache c;
		int r = load_cache(s, &hits[i], &c);
		if (r < 0)
			return -1;
		if (r > 0 && c.sent_date != 0)
			it->sent = c.sent_date;
		if (need & (1u << SK_SUBJECT))
			it->subject = subject_key(c.subject, &oom);
		if (need & (1u << SK_FROM))
			it->from = mailbox_key(c.from, &oom);
		if (need & (1u << SK_TO))
			it->to = mailbox_key(c.to, &oom);
		if (need & (1u << SK_CC))
			it->cc = mailbox_key(c.cc, &oom);
		store_msg_cache_free(&c);
	}
	return oom ? -1 : 0;
}

/* "* SORT n n n[ (MODSEQ m)]" (RFC 5256 4, RFC 7162 3.1.9) */
static void write_sort(struct imap_session *s, int uid, const struct sort_item *items, size_t n,
		       int with_modseq, uint64_t modseq)
{
	char buf[4096];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "* SORT");
	for (size_t i = 0; i < n; i++) {
		if (o > sizeof(buf) - 16) {
			imap_write(s, buf, o);
			o = 0;
		}
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %u", uid ? items[i].uid : items[i].seq);
	}
	imap_write(s, buf, o);
	if (with_modseq && n > 0)
		imap_printf(s, " (MODSEQ %llu)", (unsigned long long)modseq);
	imap_write(s, "\r\n", 2);
}

void imap_cmd_sort(struct imap_session *s, struct imap_cmd *cmd)
{
	/* SORT (criteria) charset keys */
	const struct imap_arg *args = cmd->args;
	size_t n = cmd->n_args;
	struct sort_crit crit[SORT_MAX_CRITERIA];
	size_t n_crit;
	if (n < 1 || parse_criteria(&args[0], crit, &n_crit) < 0) {
		imap_tagged(s, cmd->tag, "BAD",
			    "Syntax: %sSORT ([REVERSE] ARRIVAL|CC|DATE|FROM|SIZE|SUBJECT|TO ...) "
			    "charset keys",
			    cmd->uid ? "UID " : "");
		return;
	}
	struct imap_search_hit *hits;
	size_t n_hits;
	struct imap_search_info info;
	if (run_search(s, cmd, &hits, &n_hits, &info) < 0)
		return;
	uint64_t modseq = 0;
	for (size_t i = 0; i < n_hits; i++)
		if (hits[i].modseq > modseq)
			modseq = hits[i].modseq;
	struct sort_item *items = calloc(n_hits ? n_hits : 1, sizeof(*items));
	if (items == NULL || load_items(s, hits, n_hits, crit, n_crit, items) < 0) {
		free(hits);
		if (items != NULL)
			free_items(items, n_hits);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] SORT failed");
		return;
	}
	free(hits);
	cmp_crit = crit;
	cmp_n_crit = n_crit;
	qsort(items, n_hits, sizeof(*items), cmp_items);
	write_sort(s, cmd->uid, items, n_hits, info.modseq, modseq);
	free_items(items, n_hits);
	/* RFC 5256 3: no EXPUNGE during SORT; UID SORT allows it (but not
	 * when a key names message numbers, as for UID SEARCH) */
	imap_mailbox_sync(s, cmd->uid && !info.seqnums);
	imap_tagged(s, cmd->tag, "OK", "%sSORT completed", cmd->uid ? "UID " : "");
}

/* ----------------------------------------------------------------- THREAD */

struct thread_vals {
	char *subject, *message_id, *in_reply_to, *references;
};

void imap_cmd_thread(struct imap_session *s, struct imap_cmd *cmd)
{
	/* THREAD algorithm charset keys */
	const struct imap_arg *args = cmd->args;
	size_t n = cmd->n_args;
	const char *alg_name = n >= 1 ? imap_arg_atom(&args[0]) : NULL;
	enum imap_thread_alg alg;
	if (alg_name != NULL && strcasecmp(alg_name, "ORDEREDSUBJECT") == 0) {
		alg = IMAP_THREAD_ORDEREDSUBJECT;
	} else if (alg_name != NULL && strcasecmp(alg_name, "REFERENCES") == 0) {
		alg = IMAP_THREAD_REFERENCES;
	} else {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %sTHREAD ORDEREDSUBJECT|REFERENCES charset keys",
			    cmd->uid ? "UID " : "");
		return;
	}
	struct imap_search_hit *hits;
	size_t n_hits;
	struct imap_search_info info;
	if (run_search(s, cmd, &hits, &n_hits, &info) < 0)
		return;
	size_t cnt = n_hits ? n_hits : 1;
	struct imap_thread_msg *msgs = calloc(cnt, sizeof(*msgs));
	struct thread_vals *vals = calloc(cnt, sizeof(*vals));
	int failed = msgs == NULL || vals == NULL;
	for (size_t i = 0; i < n_hits && !failed; i++) {
		struct store_msg_cache c;
		int r = load_cache(s, &hits[i], &c);
		if (r < 0) {
			failed = 1;
			break;
		}
		/* keep only what threading reads, not the whole cache row */
		vals[i] = (struct thread_vals){ c.subject, c.message_id, c.in_reply_to, c.references };
		c.subject = c.message_id = c.in_reply_to = c.references = NULL;
		msgs[i].seq = imap_seq_of_uid(s->sel, hits[i].uid);
		msgs[i].number = cmd->uid ? hits[i].uid : msgs[i].seq;
		msgs[i].sent = r > 0 && c.sent_date != 0 ? c.sent_date : hits[i].internaldate;
		msgs[i].subject = vals[i].subject;
		msgs[i].message_id = vals[i].message_id;
		msgs[i].in_reply_to = vals[i].in_reply_to;
		msgs[i].references = vals[i].references;
		store_msg_cache_free(&c);
	}
	char *data = failed ? NULL : imap_thread(alg, msgs, n_hits);
	for (size_t i = 0; vals != NULL && i < n_hits; i++) {
		free(vals[i].subject);
		free(vals[i].message_id);
		free(vals[i].in_reply_to);
		free(vals[i].references);
	}
	free(vals);
	free(msgs);
	free(hits);
	if (data == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] THREAD failed");
		return;
	}
	imap_write(s, "* THREAD", 8);
	if (*data != '\0') {
		imap_write(s, " ", 1);
		imap_write(s, data, strlen(data));
	}
	imap_write(s, "\r\n", 2);
	free(data);
	imap_mailbox_sync(s, cmd->uid && !info.seqnums);
	imap_tagged(s, cmd->tag, "OK", "%sTHREAD completed", cmd->uid ? "UID " : "");
}
