/*
 * store_sqlite_op.c - write operations of store_mail.h (flags, expunge,
 * copy/move, mailbox create/delete/rename, subscriptions).
 *
 * An operation is built on the session's thread (every argument copied),
 * queued to the committer like a delivery and run there inside the batch
 * transaction, in its own savepoint: all of its steps happen or none.
 *
 * Modseqs (RFC 7162): a step that changes a mailbox raises its
 * highestmodseq by exactly one, and every message the step adds or changes
 * in it, and every uid it expunges from it, gets that value. Deliveries
 * raise it once per message. Either way modseqs are per mailbox and only
 * ever grow, because every writer is serialised by SQLite's write lock.
 */
#include "store/store_sqlite_private.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct u32_array {
	uint32_t *v;
	size_t n, cap;
};

enum op_step_kind {
	STEP_FLAGS,
	STEP_EXPUNGE,
	STEP_COPY,
	STEP_CREATE,
	STEP_DELETE,
	STEP_RENAME,
	STEP_SUBSCRIBE,
};

struct op_step {
	struct op_step *next;
	enum op_step_kind kind;
	int64_t mailbox_id, dst_id, user_id;
	uint32_t *uids;                 /* sorted, unique, no 0 */
	size_t n_uids;
	enum store_flags_mode mode;
	uint32_t flags;
	char *keywords;                 /* as given; NULL for none */
	uint64_t unchangedsince;
	bool move, subscribed;
	enum store_special_use special_use;
	char *name, *to;
};

struct store_op {
	struct store_job job;           /* first: the committer queue */
	store_t *store;
	struct op_step *steps, **steps_tail;
	store_op_cb *cb;
	void *ctx;

	/* The first error sticks: an operation that lost a step while being
	 * built must not run the others. */
	int status;
	enum store_op_error code;
	char error[256];

	/* The result (store_op_result), reset when the op is rolled back. */
	uint64_t highestmodseq;
	struct store_msg *changed;      /* keywords malloc'd */
	size_t n_changed, changed_cap;
	struct u32_array modified, src_uids, dst_uids, expunged;
	uint32_t dst_uidvalidity;
	struct store_path_list freed;

	/* The running step's new modseq per mailbox it changed (a copy
	 * changes two: the destination and, for a move, the source). */
	struct {
		int64_t mailbox_id;
		uint64_t modseq;
	} step_modseq[2];
	size_t n_step_modseq;
};

/* ---- keywords ---- */

struct kw_list {
	const char **v;
	size_t *len;
	size_t n, cap;
};

static bool kw_find(const struct kw_list *l, const char *w, size_t len)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->len[i] == len && strncasecmp(l->v[i], w, len) == 0)
			return true;
	}
	return false;
}

/* Add every word of s not yet in l (and, when del is given, not in it). */
static int kw_add_words(struct kw_list *l, const char *s, const struct kw_list *del)
{
	const char **v;
	size_t *len, n;

	while (s != NULL && *s != '\0') {
		while (*s == ' ')
			s++;
		n = strcspn(s, " ");
		if (n > 0 && !kw_find(l, s, n) && (del == NULL || !kw_find(del, s, n))) {
			if (l->n == l->cap) {
				l->cap = l->cap == 0 ? 8 : l->cap * 2;
				if ((v = realloc(l->v, l->cap * sizeof(*v))) == NULL)
					return -1;
				l->v = v;
				if ((len = realloc(l->len, l->cap * sizeof(*len))) == NULL)
					return -1;
				l->len = len;
			}
			l->v[l->n] = s;
			l->len[l->n++] = n;
		}
		s += n;
	}
	return 0;
}

static int kw_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = strncasecmp(a, b, n);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

char *store_keywords_merge(const char *base, const char *add, const char *del)
{
	struct kw_list l = { 0 }, d = { 0 };
	size_t total = 1, pos = 0;
	char *out = NULL;

	if (kw_add_words(&d, del, NULL) < 0 || kw_add_words(&l, base, &d) < 0 ||
	    kw_add_words(&l, add, &d) < 0)
		goto done;
	/* Insertion sort: a message has a handful of keywords. */
	for (size_t i = 1; i < l.n; i++) {
		const char *w = l.v[i];
		size_t wl = l.len[i], j = i;

		for (; j > 0 && kw_cmp(l.v[j - 1], l.len[j - 1], w, wl) > 0; j--) {
			l.v[j] = l.v[j - 1];
			l.len[j] = l.len[j - 1];
		}
		l.v[j] = w;
		l.len[j] = wl;
	}
	for (size_t i = 0; i < l.n; i++)
		total += l.len[i] + 1;
	if ((out = malloc(total)) == NULL)
		goto done;
	for (size_t i = 0; i < l.n; i++) {
		if (i > 0)
			out[pos++] = ' ';
		memcpy(out + pos, l.v[i], l.len[i]);
		pos += l.len[i];
	}
	out[pos] = '\0';
done:
	free(l.v);
	free(l.len);
	free(d.v);
	free(d.len);
	return out;
}

/* ---- building ---- */

static void __attribute__((format(printf, 3, 4)))
op_failf(struct store_op *op, enum store_op_error code, const char *fmt, ...)
{
	va_list args;

	if (op->status == 0) {
		op->status = -1;
		op->code = code;
		va_start(args, fmt);
		vsnprintf(op->error, sizeof(op->error), fmt, args);
		va_end(args);
	}
}

static int u32_push(struct u32_array *a, uint32_t v)
{
	uint32_t *grown;

	if (a->n == a->cap) {
		a->cap = a->cap == 0 ? 16 : a->cap * 2;
		if ((grown = realloc(a->v, a->cap * sizeof(*grown))) == NULL)
			return -1;
		a->v = grown;
	}
	a->v[a->n++] = v;
	return 0;
}

static void results_reset(struct store_op *op)
{
	for (size_t i = 0; i < op->n_changed; i++)
		free((char *)op->changed[i].keywords);
	op->n_changed = 0;
	op->modified.n = op->src_uids.n = op->dst_uids.n = op->expunged.n = 0;
	op->highestmodseq = 0;
	op->dst_uidvalidity = 0;
	op->job.n_touched = 0;
	store_path_list_finish(op->store, &op->freed, false);
}

store_op_t *store_op_new(store_t *store)
{
	struct store_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->job.kind = STORE_JOB_OP;
	op->store = store;
	op->steps_tail = &op->steps;
	return op;
}

static void step_free(struct op_step *step)
{
	free(step->uids);
	free(step->keywords);
	free(step->name);
	free(step->to);
	free(step);
}

static void op_free(struct store_op *op)
{
	struct op_step *step, *next;

	results_reset(op);
	for (step = op->steps; step != NULL; step = next) {
		next = step->next;
		step_free(step);
	}
	free(op->changed);
	free(op->modified.v);
	free(op->src_uids.v);
	free(op->dst_uids.v);
	free(op->expunged.v);
	free(op->job.touched);
	free(op);
}

void store_op_abort(store_op_t *op)
{
	if (op != NULL)
		op_free(op);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static char *op_strdup(struct store_op *op, const char *s)
{
	char *copy;

	if (s == NULL)
		return NULL;
	if ((copy = strdup(s)) == NULL)
		op_failf(op, STORE_ERR_INTERNAL, "out of memory");
	return copy;
}

/* A new step at the end of op, uids copied sorted and unique. NULL when op
 * already failed or memory ran out (op then failed). */
static struct op_step *step_add(struct store_op *op, enum op_step_kind kind,
				const uint32_t *uids, size_t n)
{
	struct op_step *step;
	size_t k = 0;

	if (op == NULL || op->status < 0)
		return NULL;
	if ((step = calloc(1, sizeof(*step))) == NULL) {
		op_failf(op, STORE_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (n > 0) {
		if ((step->uids = malloc(n * sizeof(*uids))) == NULL) {
			free(step);
			op_failf(op, STORE_ERR_INTERNAL, "out of memory");
			return NULL;
		}
		memcpy(step->uids, uids, n * sizeof(*uids));
		qsort(step->uids, n, sizeof(*uids), cmp_u32);
		for (size_t i = 0; i < n; i++) {
			if (step->uids[i] != 0 && (k == 0 || step->uids[k - 1] != step->uids[i]))
				step->uids[k++] = step->uids[i];
		}
	}
	step->n_uids = k;
	step->kind = kind;
	*op->steps_tail = step;
	op->steps_tail = &step->next;
	return step;
}

void store_op_flags(store_op_t *op, int64_t mailbox_id, const uint32_t *uids, size_t n,
		    enum store_flags_mode mode, uint32_t flags, const char *keywords,
		    uint64_t unchangedsince)
{
	struct op_step *step = step_add(op, STEP_FLAGS, uids, n);

	if (step == NULL)
		return;
	step->mailbox_id = mailbox_id;
	step->mode = mode;
	step->flags = flags & STORE_FLAGS_ALL;
	step->keywords = op_strdup(op, keywords);
	step->unchangedsince = unchangedsince;
}

void store_op_expunge(store_op_t *op, int64_t mailbox_id, const uint32_t *uids, size_t n)
{
	struct op_step *step = step_add(op, STEP_EXPUNGE, uids, n);

	if (step != NULL)
		step->mailbox_id = mailbox_id;
}

void store_op_copy(store_op_t *op, int64_t src_mailbox_id, const uint32_t *uids, size_t n,
		   int64_t dst_mailbox_id, int move)
{
	struct op_step *step = step_add(op, STEP_COPY, uids, n);

	if (step == NULL)
		return;
	step->mailbox_id = src_mailbox_id;
	step->dst_id = dst_mailbox_id;
	step->move = move != 0;
}

void store_op_mailbox_create(store_op_t *op, int64_t user_id, const char *name,
			     enum store_special_use special_use)
{
	struct op_step *step = step_add(op, STEP_CREATE, NULL, 0);

	if (step == NULL)
		return;
	step->user_id = user_id;
	step->name = op_strdup(op, name == NULL ? "" : name);
	step->special_use = special_use;
}

void store_op_mailbox_delete(store_op_t *op, int64_t user_id, const char *name)
{
	struct op_step *step = step_add(op, STEP_DELETE, NULL, 0);

	if (step == NULL)
		return;
	step->user_id = user_id;
	step->name = op_strdup(op, name == NULL ? "" : name);
}

void store_op_mailbox_rename(store_op_t *op, int64_t user_id, const char *from, const char *to)
{
	struct op_step *step = step_add(op, STEP_RENAME, NULL, 0);

	if (step == NULL)
		return;
	step->user_id = user_id;
	step->name = op_strdup(op, from == NULL ? "" : from);
	step->to = op_strdup(op, to == NULL ? "" : to);
}

void store_op_subscribe(store_op_t *op, int64_t user_id, const char *name, int subscribed)
{
	struct op_step *step = step_add(op, STEP_SUBSCRIBE, NULL, 0);

	if (step == NULL)
		return;
	step->user_id = user_id;
	step->name = op_strdup(op, name == NULL ? "" : name);
	step->subscribed = subscribed != 0;
}

void store_op_commit(store_op_t *op, store_op_cb *cb, void *ctx)
{
	struct store_op_result res;

	if (op == NULL) {
		/* store_op_new ran out of memory: report it the same way. */
		memset(&res, 0, sizeof(res));
		res.status = -1;
		res.code = STORE_ERR_INTERNAL;
		res.error = "out of memory";
		if (cb != NULL)
			cb(ctx, &res);
		return;
	}
	op->cb = cb;
	op->ctx = ctx;
	if (!store_job_enqueue(op->store, &op->job))
		store_commit_batch(op->store, &op->job);
}

/* ---- running: helpers ---- */

/* For a failed sqlite3_step() inside a step. */
static int db_fail(struct store_op *op, struct store_conn *conn, const char *what)
{
	op_failf(op, STORE_ERR_INTERNAL, "%s: %s", what, sqlite3_errmsg(conn->db));
	return -1;
}

static int oom(struct store_op *op)
{
	op_failf(op, STORE_ERR_INTERNAL, "out of memory");
	return -1;
}

static int stmt_or_fail(struct store_op *op, struct store_conn *conn, enum stmt_id id,
			sqlite3_stmt **stmt_r)
{
	const char *error;

	if ((*stmt_r = stmt_get(conn, id, &error)) == NULL) {
		op_failf(op, STORE_ERR_INTERNAL, "%s", error);
		return -1;
	}
	return 0;
}

/* Run a statement without result rows (or ignoring them). */
static int exec_stmt(struct store_op *op, struct store_conn *conn, sqlite3_stmt *stmt,
		     enum stmt_id id, const char *what)
{
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	stmt_put(conn, id, stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(op, conn, what);
}

struct mailbox_row {
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
};

/* 1 found, 0 not (op failed NONEXISTENT with what), -1 error. */
static int mailbox_get(struct store_op *op, struct store_conn *conn, int64_t id,
		       struct mailbox_row *row, const char *what)
{
	sqlite3_stmt *stmt;
	int rc;

	if (stmt_or_fail(op, conn, STMT_MAILBOX_GET, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		row->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 0);
		row->uidnext = (uint32_t)sqlite3_column_int64(stmt, 1);
		row->highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 2);
	}
	stmt_put(conn, STMT_MAILBOX_GET, stmt);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return db_fail(op, conn, "reading a mailbox");
	op_failf(op, STORE_ERR_NONEXISTENT, "%s does not exist", what);
	return 0;
}

/* 1 found (*id_r), 0 not, -1 error (op failed). */
static int mailbox_find(struct store_op *op, struct store_conn *conn, int64_t user_id,
			const char *name, int64_t *id_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (stmt_or_fail(op, conn, STMT_MAILBOX_ID, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int64(stmt, 0);
	stmt_put(conn, STMT_MAILBOX_ID, stmt);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : db_fail(op, conn, "looking up a mailbox");
}

/* The modseq this step took in mailbox_id, if it raised it. */
static bool step_modseq_taken(const struct store_op *op, int64_t mailbox_id, uint64_t *modseq_r)
{
	for (size_t i = 0; i < op->n_step_modseq; i++) {
		if (op->step_modseq[i].mailbox_id == mailbox_id) {
			*modseq_r = op->step_modseq[i].modseq;
			return true;
		}
	}
	return false;
}

/* The modseq of everything this step changes in mailbox_id: the first
 * call of the step raises the mailbox's highestmodseq, later ones reuse
 * it. Also marks the mailbox for its watchers. */
static int step_modseq(struct store_op *op, struct store_conn *conn, int64_t mailbox_id,
		       uint64_t *modseq_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (step_modseq_taken(op, mailbox_id, modseq_r))
		return 0;
	if (op->n_step_modseq == sizeof(op->step_modseq) / sizeof(op->step_modseq[0])) {
		op_failf(op, STORE_ERR_INTERNAL, "a step changes too many mailboxes");
		return -1;
	}
	if (stmt_or_fail(op, conn, STMT_MAILBOX_MODSEQ_BUMP, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*modseq_r = (uint64_t)sqlite3_column_int64(stmt, 0);
	stmt_put(conn, STMT_MAILBOX_MODSEQ_BUMP, stmt);
	if (rc != SQLITE_ROW)
		return db_fail(op, conn, "raising the modseq");
	op->step_modseq[op->n_step_modseq].mailbox_id = mailbox_id;
	op->step_modseq[op->n_step_modseq++].modseq = *modseq_r;
	return store_job_touch(&op->job, mailbox_id) < 0 ? oom(op) : 0;
}

/* The mailbox's highestmodseq now (the result of a step that may not
 * have changed it): the step's own modseq if it raised it (nothing else
 * runs between the two), else read. */
static int current_modseq(struct store_op *op, struct store_conn *conn, int64_t mailbox_id,
			  uint64_t *modseq_r)
{
	struct mailbox_row row;

	if (step_modseq_taken(op, mailbox_id, modseq_r))
		return 0;
	if (mailbox_get(op, conn, mailbox_id, &row, "the mailbox") <= 0)
		return -1;
	*modseq_r = row.highestmodseq;
	return 0;
}

static int uid_alloc(struct store_op *op, struct store_conn *conn, int64_t mailbox_id,
		     uint32_t *uid_r)
{
	sqlite3_stmt *stmt;
	int64_t uid = 0;
	int rc;

	if (stmt_or_fail(op, conn, STMT_MAILBOX_UID_ALLOC, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		uid = sqlite3_column_int64(stmt, 0);
	stmt_put(conn, STMT_MAILBOX_UID_ALLOC, stmt);
	if (rc != SQLITE_ROW)
		return db_fail(op, conn, "assigning a UID");
	if (uid <= 0 || uid > UINT32_MAX) {
		op_failf(op, STORE_ERR_INTERNAL, "the mailbox has run out of UIDs");
		return -1;
	}
	*uid_r = (uint32_t)uid;
	return 0;
}

/* A message row, strings copied. */
struct msg_row {
	struct store_msg m;             /* keywords: points at kw */
	int64_t id;
	char *kw, *subject;
};

static void msg_row_free(struct msg_row *row)
{
	free(row->kw);
	free(row->subject);
	row->kw = row->subject = NULL;
}

/* 1 found, 0 not, -1 error (op failed). */
static int msg_get(struct store_op *op, struct store_conn *conn, int64_t mailbox_id,
		   uint32_t uid, struct msg_row *row)
{
	sqlite3_stmt *stmt;
	int rc, ret = 1;

	memset(row, 0, sizeof(*row));
	if (stmt_or_fail(op, conn, STMT_MSG_GET, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	sqlite3_bind_int64(stmt, 2, uid);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		row->m.uid = (uint32_t)sqlite3_column_int64(stmt, 0);
		row->m.flags = (uint32_t)sqlite3_column_int64(stmt, 1);
		row->m.modseq = (uint64_t)sqlite3_column_int64(stmt, 3);
		row->m.internaldate = sqlite3_column_int64(stmt, 4);
		row->m.size = (uint64_t)sqlite3_column_int64(stmt, 5);
		row->m.blob_id = sqlite3_column_int64(stmt, 6);
		row->id = sqlite3_column_int64(stmt, 7);
		const char *kw = (const char *)sqlite3_column_text(stmt, 2);
		const char *subject = (const char *)sqlite3_column_text(stmt, 8);
		bool has_subject = sqlite3_column_type(stmt, 8) != SQLITE_NULL;

		row->kw = kw == NULL ? NULL : strdup(kw);
		if (has_subject && subject != NULL)
			row->subject = strdup(subject);
		if (row->kw == NULL || (has_subject && row->subject == NULL))
			ret = oom(op);
		row->m.keywords = row->kw;
	} else {
		ret = rc == SQLITE_DONE ? 0 : db_fail(op, conn, "reading a message");
	}
	stmt_put(conn, STMT_MSG_GET, stmt);
	if (ret < 0)
		msg_row_free(row);
	return ret;
}

static int expunged_log(struct store_op *op, struct store_conn *conn, int64_t mailbox_id,
			uint32_t uid, uint64_t modseq)
{
	sqlite3_stmt *stmt;

	if (stmt_or_fail(op, conn, STMT_EXPUNGED_INSERT, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	sqlite3_bind_int64(stmt, 2, uid);
	sqlite3_bind_int64(stmt, 3, (int64_t)modseq);
	if (exec_stmt(op, conn, stmt, STMT_EXPUNGED_INSERT, "logging an expunge") < 0)
		return -1;
	return u32_push(&op->expunged, uid) < 0 ? oom(op) : 0;
}

/* Remove one message, log it; 1 removed (*blob_id_r), 0 not there. */
static int msg_delete(struct store_op *op, struct store_conn *conn, int64_t mailbox_id,
		      uint32_t uid, int64_t *blob_id_r)
{
	sqlite3_stmt *stmt;
	uint64_t modseq = 0;
	int rc;

	if (stmt_or_fail(op, conn, STMT_MSG_DELETE, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	sqlite3_bind_int64(stmt, 2, uid);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*blob_id_r = sqlite3_column_int64(stmt, 0);
		rc = sqlite3_step(stmt);
	} else if (rc == SQLITE_DONE) {
		stmt_put(conn, STMT_MSG_DELETE, stmt);
		return 0;
	}
	stmt_put(conn, STMT_MSG_DELETE, stmt);
	if (rc != SQLITE_DONE)
		return db_fail(op, conn, "expunging a message");
	if (step_modseq(op, conn, mailbox_id, &modseq) < 0 ||
	    expunged_log(op, conn, mailbox_id, uid, modseq) < 0)
		return -1;
	return 1;
}

/* ---- running: message steps ---- */

static int run_flags(struct store_op *op, struct store_conn *conn, const struct op_step *s)
{
	struct mailbox_row mb;
	struct msg_row row;
	struct store_msg *grown;
	sqlite3_stmt *stmt;
	uint32_t flags;
	uint64_t modseq = 0;
	char *kw;
	int rc;

	if (mailbox_get(op, conn, s->mailbox_id, &mb, "the mailbox") <= 0)
		return -1;
	for (size_t i = 0; i < s->n_uids; i++) {
		if ((rc = msg_get(op, conn, s->mailbox_id, s->uids[i], &row)) <= 0) {
			if (rc < 0)
				return -1;
			continue;
		}
		/* RFC 7162 3.2: changed since the client looked: not touched,
		 * reported instead. */
		if (s->unchangedsince != 0 && row.m.modseq > s->unchangedsince) {
			msg_row_free(&row);
			if (u32_push(&op->modified, s->uids[i]) < 0)
				return oom(op);
			continue;
		}
		switch (s->mode) {
		case STORE_FLAGS_SET:
			flags = s->flags;
			kw = store_keywords_merge(NULL, s->keywords, NULL);
			break;
		case STORE_FLAGS_ADD:
			flags = row.m.flags | s->flags;
			kw = store_keywords_merge(row.kw, s->keywords, NULL);
			break;
		default:
			flags = row.m.flags & ~s->flags;
			kw = store_keywords_merge(row.kw, NULL, s->keywords);
			break;
		}
		if (kw == NULL) {
			msg_row_free(&row);
			return oom(op);
		}
		/* No change, no new modseq (RFC 7162 3.2). */
		if (flags == row.m.flags && strcmp(kw, row.kw) == 0) {
			free(kw);
			msg_row_free(&row);
			continue;
		}
		msg_row_free(&row);
		if (step_modseq(op, conn, s->mailbox_id, &modseq) < 0 ||
		    stmt_or_fail(op, conn, STMT_MSG_SET_FLAGS, &stmt) < 0) {
			free(kw);
			return -1;
		}
		sqlite3_bind_int64(stmt, 1, row.id);
		sqlite3_bind_int64(stmt, 2, flags);
		sqlite3_bind_text(stmt, 3, kw, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 4, (int64_t)modseq);
		if (exec_stmt(op, conn, stmt, STMT_MSG_SET_FLAGS, "changing flags") < 0) {
			free(kw);
			return -1;
		}
		if (op->n_changed == op->changed_cap) {
			size_t cap = op->changed_cap == 0 ? 16 : op->changed_cap * 2;

			if ((grown = realloc(op->changed, cap * sizeof(*grown))) == NULL) {
				free(kw);
				return oom(op);
			}
			op->changed = grown;
			op->changed_cap = cap;
		}
		row.m.flags = flags;
		row.m.keywords = kw;
		row.m.modseq = modseq;
		op->changed[op->n_changed++] = row.m;
	}
	/* the row read at the start, unless the step raised it since */
	if (!step_modseq_taken(op, s->mailbox_id, &op->highestmodseq))
		op->highestmodseq = mb.highestmodseq;
	return 0;
}

static int run_expunge(struct store_op *op, struct store_conn *conn, const struct op_step *s)
{
	struct mailbox_row mb;
	const char *error;
	int64_t blob_id = 0;
	int rc;

	if (mailbox_get(op, conn, s->mailbox_id, &mb, "the mailbox") <= 0)
		return -1;
	for (size_t i = 0; i < s->n_uids; i++) {
		rc = msg_delete(op, conn, s->mailbox_id, s->uids[i], &blob_id);
		if (rc < 0)
			return -1;
		if (rc > 0 && store_blob_unref(conn, blob_id, 1, &op->freed, &error) < 0) {
			op_failf(op, STORE_ERR_INTERNAL, "%s", error);
			return -1;
		}
	}
	/* the row read at the start, unless the step raised it since */
	if (!step_modseq_taken(op, s->mailbox_id, &op->highestmodseq))
		op->highestmodseq = mb.highestmodseq;
	return 0;
}

/* Copy (or move) the given uids of src into dst, new uids in dst in the
 * order given (ascending). */
static int copy_uids(struct store_op *op, struct store_conn *conn, int64_t src,
		     const uint32_t *uids, size_t n, int64_t dst, bool move)
{
	struct mailbox_row src_mb, dst_mb;
	struct msg_row row;
	sqlite3_stmt *stmt;
	uint64_t modseq = 0;
	uint32_t uid = 0;
	int64_t blob_id = 0;
	int rc;

	if (mailbox_get(op, conn, src, &src_mb, "the source mailbox") <= 0 ||
	    mailbox_get(op, conn, dst, &dst_mb, "the destination mailbox") <= 0)
		return -1;
	op->dst_uidvalidity = dst_mb.uidvalidity;
	for (size_t i = 0; i < n; i++) {
		/* Copying a mailbox into itself must not copy the copies. */
		if (uids[i] >= src_mb.uidnext)
			break;
		if ((rc = msg_get(op, conn, src, uids[i], &row)) <= 0) {
			if (rc < 0)
				return -1;
			continue;
		}
		if (step_modseq(op, conn, dst, &modseq) < 0 ||
		    uid_alloc(op, conn, dst, &uid) < 0 ||
		    stmt_or_fail(op, conn, STMT_MESSAGE_INSERT, &stmt) < 0) {
			msg_row_free(&row);
			return -1;
		}
		/* RFC 3501 6.4.7: flags and internal date go with the copy. */
		sqlite3_bind_int64(stmt, 1, dst);
		sqlite3_bind_int64(stmt, 2, uid);
		sqlite3_bind_int64(stmt, 3, (int64_t)modseq);
		sqlite3_bind_int64(stmt, 4, row.m.internaldate);
		sqlite3_bind_int64(stmt, 5, (int64_t)row.m.size);
		sqlite3_bind_int64(stmt, 6, row.m.blob_id);
		if (row.subject != NULL)
			sqlite3_bind_text(stmt, 7, row.subject, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 8, row.m.flags);
		sqlite3_bind_text(stmt, 9, row.kw, -1, SQLITE_STATIC);
		rc = exec_stmt(op, conn, stmt, STMT_MESSAGE_INSERT, "copying a message");
		blob_id = row.m.blob_id;
		msg_row_free(&row);
		if (rc < 0)
			return -1;
		if (u32_push(&op->src_uids, uids[i]) < 0 || u32_push(&op->dst_uids, uid) < 0)
			return oom(op);
		if (move) {
			/* The reference moves with the message: the blob's
			 * count stays. */
			if (msg_delete(op, conn, src, uids[i], &blob_id) < 0)
				return -1;
			continue;
		}
		if (stmt_or_fail(op, conn, STMT_BLOB_REF, &stmt) < 0)
			return -1;
		sqlite3_bind_int64(stmt, 1, blob_id);
		if (exec_stmt(op, conn, stmt, STMT_BLOB_REF, "referencing the content") < 0)
			return -1;
	}
	return current_modseq(op, conn, move ? src : dst, &op->highestmodseq);
}

/* ---- running: mailbox steps ---- */

/* Acceptable as a stored mailbox name: not empty, fits the status name,
 * no wildcards (they would make LIST patterns ambiguous), no control
 * characters, no empty hierarchy level. */
static bool name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > STORE_MAILBOX_NAME_MAX || name[0] == '/' ||
	    name[len - 1] == '/' || strstr(name, "//") != NULL)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f || c == '*' || c == '%')
			return false;
	}
	return true;
}

static int check_name(struct store_op *op, const char *name)
{
	if (name_valid(name))
		return 0;
	op_failf(op, STORE_ERR_INVALID, "invalid mailbox name");
	return -1;
}

static int user_exists(struct store_op *op, struct store_conn *conn, int64_t user_id)
{
	sqlite3_stmt *stmt;
	int rc;

	if (stmt_or_fail(op, conn, STMT_USER_EXISTS, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_USER_EXISTS, stmt);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return db_fail(op, conn, "looking up the user");
	op_failf(op, STORE_ERR_INTERNAL, "no such user");
	return -1;
}

/* Create a mailbox known not to exist. */
static int mailbox_insert(struct store_op *op, struct store_conn *conn, int64_t user_id,
			  const char *name, enum store_special_use special_use,
			  int64_t *id_r)
{
	sqlite3_stmt *stmt;
	uint32_t uidvalidity;
	const char *error;
	int rc;

	if (store_uidvalidity_next(conn, &uidvalidity, &error) < 0) {
		op_failf(op, STORE_ERR_INTERNAL, "%s", error);
		return -1;
	}
	if (stmt_or_fail(op, conn, STMT_MAILBOX_INSERT, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, uidvalidity);
	sqlite3_bind_int(stmt, 4, (int)special_use);
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_MAILBOX_INSERT, stmt);
	if (rc != SQLITE_DONE)
		return db_fail(op, conn, "creating the mailbox");
	*id_r = sqlite3_last_insert_rowid(conn->db);
	op->dst_uidvalidity = uidvalidity;
	op->highestmodseq = 1;
	return 0;
}

static int run_create(struct store_op *op, struct store_conn *conn, const struct op_step *s)
{
	const char *name = store_mailbox_name(s->name);
	int64_t id;
	int rc;

	if (check_name(op, name) < 0 || user_exists(op, conn, s->user_id) < 0)
		return -1;
	/* INBOX always exists, whatever the table says. */
	if (strcmp(name, "INBOX") == 0 ||
	    (rc = mailbox_find(op, conn, s->user_id, name, &id)) > 0) {
		op_failf(op, STORE_ERR_EXISTS, "mailbox already exists");
		return -1;
	}
	if (rc < 0)
		return -1;
	return mailbox_insert(op, conn, s->user_id, name, s->special_use, &id);
}

static int run_delete(struct store_op *op, struct store_conn *conn, const struct op_step *s)
{
	const char *name = store_mailbox_name(s->name), *error;
	struct { int64_t blob_id, refs; } *refs = NULL, *grown;
	size_t n_refs = 0, cap = 0;
	sqlite3_stmt *stmt;
	int64_t id;
	int rc, ret = 0;

	if (strcmp(name, "INBOX") == 0) {
		op_failf(op, STORE_ERR_INBOX, "INBOX cannot be deleted");
		return -1;
	}
	if ((rc = mailbox_find(op, conn, s->user_id, name, &id)) <= 0) {
		if (rc == 0)
			op_failf(op, STORE_ERR_NONEXISTENT, "no such mailbox");
		return -1;
	}
	/* The references per blob, counted before the cascade removes the
	 * message rows that hold them. */
	if (stmt_or_fail(op, conn, STMT_MAILBOX_BLOBS, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (n_refs == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((grown = realloc(refs, cap * sizeof(*refs))) == NULL)
				break;
			refs = grown;
		}
		refs[n_refs].blob_id = sqlite3_column_int64(stmt, 0);
		refs[n_refs++].refs = sqlite3_column_int64(stmt, 1);
	}
	stmt_put(conn, STMT_MAILBOX_BLOBS, stmt);
	if (rc == SQLITE_ROW)
		ret = oom(op);
	else if (rc != SQLITE_DONE)
		ret = db_fail(op, conn, "reading the mailbox");
	if (ret == 0 && stmt_or_fail(op, conn, STMT_MAILBOX_DELETE, &stmt) == 0) {
		sqlite3_bind_int64(stmt, 1, id);
		ret = exec_stmt(op, conn, stmt, STMT_MAILBOX_DELETE, "deleting the mailbox");
	} else {
		ret = -1;
	}
	for (size_t i = 0; ret == 0 && i < n_refs; i++) {
		if (store_blob_unref(conn, refs[i].blob_id, refs[i].refs, &op->freed,
				     &error) < 0) {
			op_failf(op, STORE_ERR_INTERNAL, "%s", error);
			ret = -1;
		}
	}
	free(refs);
	/* Sessions that have it selected learn that it is gone. */
	if (ret == 0 && store_job_touch(&op->job, id) < 0)
		return oom(op);
	return ret;
}

static int subscribe_set(struct store_op *op, struct store_conn *conn, int64_t user_id,
			 const char *name, bool subscribed, bool *changed_r)
{
	enum stmt_id id = subscribed ? STMT_SUBSCRIBE : STMT_UNSUBSCRIBE;
	sqlite3_stmt *stmt;

	if (stmt_or_fail(op, conn, id, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	if (exec_stmt(op, conn, stmt, id, "changing a subscription") < 0)
		return -1;
	if (changed_r != NULL)
		*changed_r = sqlite3_changes(conn->db) > 0;
	return 0;
}

static int run_subscribe(struct store_op *op, struct store_conn *conn, const struct op_step *s)
{
	const char *name = store_mailbox_name(s->name);

	/* Unsubscribing tolerates any name, so that a bad one stored by an
	 * older version can still go. */
	if (s->subscribed && check_name(op, name) < 0)
		return -1;
	return subscribe_set(op, conn, s->user_id, name, s->subscribed, NULL);
}

/* RFC 3501 6.3.5: INBOX's messages move to a new mailbox, INBOX stays
 * (empty, its uidnext unchanged), names below INBOX stay where they are. */
static int rename_inbox(struct store_op *op, struct store_conn *conn, int64_t user_id,
			const char *to)
{
	struct u32_array uids = { 0 };
	sqlite3_stmt *stmt;
	int64_t inbox, dst;
	int rc;

	if ((rc = mailbox_find(op, conn, user_id, "INBOX", &inbox)) <= 0) {
		if (rc == 0)
			op_failf(op, STORE_ERR_NONEXISTENT, "no INBOX");
		return -1;
	}
	if (mailbox_insert(op, conn, user_id, to, STORE_SPECIAL_NONE, &dst) < 0 ||
	    stmt_or_fail(op, conn, STMT_MSG_UIDS, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, inbox);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (u32_push(&uids, (uint32_t)sqlite3_column_int64(stmt, 0)) < 0)
			break;
	}
	stmt_put(conn, STMT_MSG_UIDS, stmt);
	if (rc == SQLITE_ROW)
		rc = oom(op);
	else if (rc != SQLITE_DONE)
		rc = db_fail(op, conn, "reading INBOX");
	else
		rc = copy_uids(op, conn, inbox, uids.v, uids.n, dst, true);
	free(uids.v);
	if (rc == 0 && store_job_touch(&op->job, inbox) < 0)
		return oom(op);
	return rc < 0 ? -1 : 0;
}

struct rename_item {
	int64_t id;
	char *old_name, *new_name;
	bool subscribed;
};

static void rename_items_free(struct rename_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].old_name);
		free(items[i].new_name);
	}
	free(items);
}

static int rename_set(struct store_op *op, struct store_conn *conn, int64_t id,
		      const char *name)
{
	sqlite3_stmt *stmt;

	if (stmt_or_fail(op, conn, STMT_MAILBOX_RENAME, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_TRANSIENT);
	return exec_stmt(op, conn, stmt, STMT_MAILBOX_RENAME, "renaming a mailbox");
}

/* Rename items[] (from and everything below it) to their new names. Two
 * passes through names no valid mailbox can have (a control character), so
 * that a new name may be an old name of another item ("a/b" -> "a" renames
 * "a/b/b" -> "a/b"). Subscriptions follow their mailboxes. */
static int rename_apply(struct store_op *op, struct store_conn *conn, int64_t user_id,
			struct rename_item *items, size_t n)
{
	char tmp[32];

	for (size_t i = 0; i < n; i++) {
		snprintf(tmp, sizeof(tmp), "\x01rename-%" PRId64, items[i].id);
		if (rename_set(op, conn, items[i].id, tmp) < 0 ||
		    subscribe_set(op, conn, user_id, items[i].old_name, false,
				  &items[i].subscribed) < 0)
			return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (rename_set(op, conn, items[i].id, items[i].new_name) < 0 ||
		    (items[i].subscribed &&
		     subscribe_set(op, conn, user_id, items[i].new_name, true, NULL) < 0))
			return -1;
		if (store_job_touch(&op->job, items[i].id) < 0)
			return oom(op);
	}
	return 0;
}

static int run_rename(struct store_op *op, struct store_conn *conn, const struct op_step *s)
{
	const char *from = store_mailbox_name(s->name), *to = store_mailbox_name(s->to);
	struct rename_item *items = NULL, *grown;
	size_t n = 0, cap = 0, from_len = strlen(from), to_len = strlen(to);
	sqlite3_stmt *stmt;
	int64_t id;
	int rc, ret = 0;

	if (check_name(op, to) < 0)
		return -1;
	if (strcmp(to, "INBOX") == 0 || strcmp(from, to) == 0 ||
	    (rc = mailbox_find(op, conn, s->user_id, to, &id)) > 0) {
		op_failf(op, STORE_ERR_EXISTS, "target mailbox already exists");
		return -1;
	}
	if (rc < 0)
		return -1;
	if (strcmp(from, "INBOX") == 0)
		return rename_inbox(op, conn, s->user_id, to);
	if (to_len > from_len && strncmp(to, from, from_len) == 0 && to[from_len] == '/') {
		op_failf(op, STORE_ERR_INVALID, "cannot move a mailbox below itself");
		return -1;
	}

	if (stmt_or_fail(op, conn, STMT_MAILBOX_SUBTREE, &stmt) < 0)
		return -1;
	sqlite3_bind_int64(stmt, 1, s->user_id);
	sqlite3_bind_text(stmt, 2, from, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *old = (const char *)sqlite3_column_text(stmt, 1);

		if (n == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((grown = realloc(items, cap * sizeof(*items))) == NULL)
				break;
			items = grown;
		}
		memset(&items[n], 0, sizeof(items[n]));
		items[n].id = sqlite3_column_int64(stmt, 0);
		items[n].old_name = strdup(old);
		if (asprintf(&items[n].new_name, "%s%s", to, old + from_len) < 0)
			items[n].new_name = NULL;
		n++;
		if (items[n - 1].old_name == NULL || items[n - 1].new_name == NULL)
			break;
	}
	stmt_put(conn, STMT_MAILBOX_SUBTREE, stmt);
	if (rc == SQLITE_ROW)
		ret = oom(op);
	else if (rc != SQLITE_DONE)
		ret = db_fail(op, conn, "reading mailboxes");
	else if (n == 0 || strcmp(items[0].old_name, from) != 0) {
		/* Sorted by name: from itself, if it exists, comes first. */
		op_failf(op, STORE_ERR_NONEXISTENT, "no such mailbox");
		ret = -1;
	}
	for (size_t i = 0; ret == 0 && i < n; i++) {
		if (strlen(items[i].new_name) > STORE_MAILBOX_NAME_MAX) {
			op_failf(op, STORE_ERR_INVALID, "mailbox name too long");
			ret = -1;
		} else if ((rc = mailbox_find(op, conn, s->user_id, items[i].new_name,
					      &id)) < 0) {
			ret = -1;
		} else if (rc > 0) {
			/* Taken, unless by a mailbox renamed away now. */
			size_t j = 0;

			while (j < n && items[j].id != id)
				j++;
			if (j == n) {
				op_failf(op, STORE_ERR_EXISTS, "mailbox %s already exists",
					 items[i].new_name);
				ret = -1;
			}
		}
	}
	if (ret == 0)
		ret = rename_apply(op, conn, s->user_id, items, n);
	rename_items_free(items, n);
	return ret;
}

/* ---- running ---- */

static int run_step(struct store_op *op, struct store_conn *conn, const struct op_step *s)
{
	op->n_step_modseq = 0;
	switch (s->kind) {
	case STEP_FLAGS:
		return run_flags(op, conn, s);
	case STEP_EXPUNGE:
		return run_expunge(op, conn, s);
	case STEP_COPY:
		return copy_uids(op, conn, s->mailbox_id, s->uids, s->n_uids, s->dst_id,
				 s->move);
	case STEP_CREATE:
		return run_create(op, conn, s);
	case STEP_DELETE:
		return run_delete(op, conn, s);
	case STEP_RENAME:
		return run_rename(op, conn, s);
	case STEP_SUBSCRIBE:
		return run_subscribe(op, conn, s);
	}
	op_failf(op, STORE_ERR_INTERNAL, "unknown step");
	return -1;
}

int store_op_run(struct store_conn *conn, struct store_op *op, const char **error_r)
{
	int ret = 0;

	if (stmt_exec(conn, STMT_SAVEPOINT, error_r) != SQLITE_OK)
		return -1;
	for (struct op_step *s = op->steps; ret == 0 && s != NULL; s = s->next)
		ret = run_step(op, conn, s);
	if (ret < 0) {
		op_failf(op, STORE_ERR_INTERNAL, "operation failed");
		results_reset(op);
		if (stmt_exec(conn, STMT_ROLLBACK_TO, error_r) != SQLITE_OK)
			return -1;
	}
	return stmt_exec(conn, STMT_RELEASE, error_r) == SQLITE_OK ? 0 : -1;
}

bool store_op_is_light(const struct store_op *op)
{
	for (const struct op_step *s = op->steps; s != NULL; s = s->next) {
		if (s->kind != STEP_FLAGS && s->kind != STEP_EXPUNGE)
			return false;
	}
	return op->steps != NULL;
}

bool store_op_frees_files(const struct store_op *op)
{
	return op->freed.count > 0;
}

void store_op_keep_files(struct store_op *op)
{
	store_path_list_finish(op->store, &op->freed, false);
}

bool store_op_ok(const struct store_op *op)
{
	return op->status == 0;
}

void store_op_fail(struct store_op *op, const char *error)
{
	results_reset(op);
	op_failf(op, STORE_ERR_INTERNAL, "%s", error);
}

void store_op_finish(struct store_op *op)
{
	struct store_op_result res;

	memset(&res, 0, sizeof(res));
	if (op->status < 0) {
		results_reset(op);
		res.status = -1;
		res.code = op->code;
		res.error = op->error;
	} else {
		/* Committed: now the files may go. */
		store_path_list_finish(op->store, &op->freed, true);
		res.highestmodseq = op->highestmodseq;
		res.changed = op->changed;
		res.n_changed = op->n_changed;
		res.modified = op->modified.v;
		res.n_modified = op->modified.n;
		res.dst_uidvalidity = op->dst_uidvalidity;
		res.src_uids = op->src_uids.v;
		res.dst_uids = op->dst_uids.v;
		res.n_copied = op->src_uids.n;
		res.expunged = op->expunged.v;
		res.n_expunged = op->expunged.n;
	}
	if (op->cb != NULL)
		op->cb(op->ctx, &res);
	op_free(op);
}
