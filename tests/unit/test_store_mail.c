/* Unit tests for the mail access side of the store (store_mail.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_mail.h"
#include "store_fixture.h"

#define BIG_SIZE (300u * 1024u)

struct fixture {
	char dir[STORE_FIXTURE_DIR_MAX];
	store_t *store;
	int64_t alice;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	store_fixture_open(f->dir, &f->store);
	f->alice = store_fixture_add_alice(f->store);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_fixture_close(f->dir, f->store);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static size_t file_count;

static int count_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)st;
	(void)ftw;
	if (flag == FTW_F)
		file_count++;
	return 0;
}

static size_t count_blob_files(const char *dir)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/blobs", dir);
	file_count = 0;
	assert_int_equal(nftw(path, count_entry, 16, FTW_PHYS), 0);
	return file_count;
}

static unsigned char *make_content(size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 31u + seed) ^ (i >> 9));
	return buf;
}

struct deliv_result {
	bool called;
	int status;
	uint32_t n;
	uint32_t uids[8];
};

static void deliv_cb(void *ctx, const struct store_delivery_result *res)
{
	struct deliv_result *r = ctx;

	r->called = true;
	r->status = res->status;
	r->n = res->n_rcpts;
	for (uint32_t i = 0; i < res->n_rcpts && i < 8; i++)
		r->uids[i] = res->uids[i];
}

/* Deliver content to a user's INBOX synchronously; the uid. */
static uint32_t deliver(store_t *store, int64_t user_id, const void *content, size_t len)
{
	store_delivery_t *d = store_delivery_new(store);
	struct deliv_result r = { 0 };
	const char *error = NULL;

	assert_non_null(d);
	if (store_delivery_write(d, content, len, &error) < 0)
		fail_msg("store_delivery_write: %s", error);
	store_delivery_add_rcpt(d, user_id);
	store_delivery_commit(d, 1700000000, deliv_cb, &r);
	assert_true(r.called);
	assert_int_equal(r.status, 0);
	return r.uids[0];
}

static const char small_msg[] = "Subject: hi\r\n\r\nhello\r\n";

static uint32_t deliver_small(struct fixture *f)
{
	return deliver(f->store, f->alice, small_msg, sizeof(small_msg) - 1);
}

/* What an operation's callback saw, copied out of the result. */
struct op_res {
	bool called;
	int status;
	enum store_op_error code;
	char error[256];
	uint64_t highestmodseq;
	size_t n_changed;
	struct store_msg changed[64];
	char keywords[64][128];
	size_t n_modified;
	uint32_t modified[64];
	uint32_t dst_uidvalidity;
	size_t n_copied;
	uint32_t src_uids[64], dst_uids[64];
	size_t n_expunged;
	uint32_t expunged[64];
};

static void op_cb(void *ctx, const struct store_op_result *res)
{
	struct op_res *r = ctx;

	r->called = true;
	r->status = res->status;
	r->code = res->code;
	snprintf(r->error, sizeof(r->error), "%s", res->error == NULL ? "" : res->error);
	r->highestmodseq = res->highestmodseq;
	r->n_changed = res->n_changed;
	for (size_t i = 0; i < res->n_changed && i < 64; i++) {
		r->changed[i] = res->changed[i];
		snprintf(r->keywords[i], sizeof(r->keywords[i]), "%s", res->changed[i].keywords);
		r->changed[i].keywords = r->keywords[i];
	}
	r->n_modified = res->n_modified;
	for (size_t i = 0; i < res->n_modified && i < 64; i++)
		r->modified[i] = res->modified[i];
	r->dst_uidvalidity = res->dst_uidvalidity;
	r->n_copied = res->n_copied;
	for (size_t i = 0; i < res->n_copied && i < 64; i++) {
		r->src_uids[i] = res->src_uids[i];
		r->dst_uids[i] = res->dst_uids[i];
	}
	r->n_expunged = res->n_expunged;
	for (size_t i = 0; i < res->n_expunged && i < 64; i++)
		r->expunged[i] = res->expunged[i];
}

/* Commit op synchronously (no committer) and return what it reported. */
static void run_op(store_op_t *op, struct op_res *r)
{
	memset(r, 0, sizeof(*r));
	store_op_commit(op, op_cb, r);
	assert_true(r->called);
}

static void op_ok(store_op_t *op, struct op_res *r)
{
	run_op(op, r);
	if (r->status != 0)
		fail_msg("operation failed: %s", r->error);
}

static void create_mailbox(struct fixture *f, const char *name)
{
	store_op_t *op = store_op_new(f->store);
	struct op_res r;

	store_op_mailbox_create(op, f->alice, name, STORE_SPECIAL_NONE);
	op_ok(op, &r);
}

static int op_create_code(struct fixture *f, const char *name)
{
	store_op_t *op = store_op_new(f->store);
	struct op_res r;

	store_op_mailbox_create(op, f->alice, name, STORE_SPECIAL_NONE);
	run_op(op, &r);
	return r.status == 0 ? STORE_OK : (int)r.code;
}

static struct store_mailbox_status status_of(struct fixture *f, const char *name)
{
	struct store_mailbox_status st;
	const char *error = NULL;

	if (store_mailbox_status(f->store, f->alice, name, &st, &error) != 1)
		fail_msg("no mailbox %s (%s)", name, error == NULL ? "" : error);
	return st;
}

static bool mailbox_exists(struct fixture *f, const char *name)
{
	struct store_mailbox_status st;
	const char *error = NULL;
	int ret = store_mailbox_status(f->store, f->alice, name, &st, &error);

	assert_true(ret >= 0);
	return ret == 1;
}

struct msgs {
	size_t count;
	struct store_msg items[256];
	char keywords[256][128];
	size_t n_expunged;
	uint32_t expunged[256];
	uint64_t expunged_modseq[256];
};

static void collect_msg(void *ctx, const struct store_msg *m)
{
	struct msgs *l = ctx;

	assert_true(l->count < 256);
	l->items[l->count] = *m;
	snprintf(l->keywords[l->count], sizeof(l->keywords[0]), "%s", m->keywords);
	l->items[l->count].keywords = l->keywords[l->count];
	l->count++;
}

static void collect_expunged(void *ctx, uint32_t uid, uint64_t modseq)
{
	struct msgs *l = ctx;

	assert_true(l->n_expunged < 256);
	l->expunged[l->n_expunged] = uid;
	l->expunged_modseq[l->n_expunged++] = modseq;
}

static void scan(struct fixture *f, int64_t mailbox_id, struct msgs *l)
{
	const char *error = NULL;

	memset(l, 0, sizeof(*l));
	if (store_msg_scan(f->store, mailbox_id, 1, collect_msg, l, &error) < 0)
		fail_msg("store_msg_scan: %s", error);
}

static const struct store_msg *find_uid(const struct msgs *l, uint32_t uid)
{
	for (size_t i = 0; i < l->count; i++) {
		if (l->items[i].uid == uid)
			return &l->items[i];
	}
	return NULL;
}

static void flags_op(struct fixture *f, int64_t mailbox_id, const uint32_t *uids, size_t n,
		     enum store_flags_mode mode, uint32_t flags, const char *kw,
		     uint64_t unchangedsince, struct op_res *r)
{
	store_op_t *op = store_op_new(f->store);

	store_op_flags(op, mailbox_id, uids, n, mode, flags, kw, unchangedsince);
	op_ok(op, r);
}

struct status_list {
	size_t count;
	struct store_mailbox_status items[32];
};

static void collect_status(void *ctx, const struct store_mailbox_status *st)
{
	struct status_list *l = ctx;

	assert_true(l->count < 32);
	l->items[l->count++] = *st;
}

static const struct store_mailbox_status *find_status(const struct status_list *l,
						      const char *name)
{
	for (size_t i = 0; i < l->count; i++) {
		if (strcmp(l->items[i].name, name) == 0)
			return &l->items[i];
	}
	return NULL;
}

static void read_all(store_t *store, int64_t blob_id, unsigned char *buf, size_t len)
{
	const char *error = NULL;
	size_t got = 0;

	if (store_blob_read(store, blob_id, 0, buf, len, &got, &error) < 0)
		fail_msg("store_blob_read: %s", error);
	assert_int_equal(got, len);
}

/* ---- mailboxes ---- */

static void test_mailbox_create(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox_status inbox = status_of(f, "inbox"), work, deep;
	static const char *const invalid[] = {
		"", "a*", "a%b", "/a", "a/", "a//b", "tab\there", "del\x7f",
	};
	char long_name[STORE_MAILBOX_NAME_MAX + 2];

	assert_string_equal(inbox.name, "INBOX");
	create_mailbox(f, "Work");
	work = status_of(f, "Work");
	assert_int_equal(work.uidnext, 1);
	assert_int_equal(work.highestmodseq, 1);
	assert_int_equal(work.messages, 0);
	assert_int_equal(work.subscribed, 0);
	assert_true(work.uidvalidity > inbox.uidvalidity);
	/* Parents are not needed. */
	create_mailbox(f, "a/b/c");
	deep = status_of(f, "a/b/c");
	assert_true(deep.uidvalidity > work.uidvalidity);
	assert_false(mailbox_exists(f, "a"));
	assert_false(mailbox_exists(f, "work"));

	assert_int_equal(op_create_code(f, "Work"), STORE_ERR_EXISTS);
	assert_int_equal(op_create_code(f, "INBOX"), STORE_ERR_EXISTS);
	assert_int_equal(op_create_code(f, "iNbOx"), STORE_ERR_EXISTS);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		assert_int_equal(op_create_code(f, invalid[i]), STORE_ERR_INVALID);
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(op_create_code(f, long_name), STORE_ERR_INVALID);
	long_name[STORE_MAILBOX_NAME_MAX] = '\0';
	assert_int_equal(op_create_code(f, long_name), STORE_OK);
	/* A failed step undoes the op's earlier ones. */
	{
		store_op_t *op = store_op_new(f->store);
		struct op_res r;

		store_op_mailbox_create(op, f->alice, "First", STORE_SPECIAL_NONE);
		store_op_mailbox_create(op, f->alice, "Work", STORE_SPECIAL_NONE);
		run_op(op, &r);
		assert_int_equal(r.status, -1);
		assert_int_equal(r.code, STORE_ERR_EXISTS);
		assert_false(mailbox_exists(f, "First"));
	}
	/* NULL op (out of memory) still reports through the callback. */
	{
		struct op_res r;

		store_op_flags(NULL, 1, NULL, 0, STORE_FLAGS_ADD, 0, NULL, 0);
		run_op(NULL, &r);
		assert_int_equal(r.status, -1);
		assert_int_equal(r.code, STORE_ERR_INTERNAL);
		store_op_abort(NULL);
		store_op_abort(store_op_new(f->store));
	}
}

static void test_mailbox_delete(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 3);
	struct store_mailbox_status trash, work, again;
	uint32_t uids[3];
	store_op_t *op;
	struct op_res r;

	op = store_op_new(f->store);
	store_op_mailbox_delete(op, f->alice, "inbox");
	run_op(op, &r);
	assert_int_equal(r.status, -1);
	assert_int_equal(r.code, STORE_ERR_INBOX);
	op = store_op_new(f->store);
	store_op_mailbox_delete(op, f->alice, "Nope");
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_NONEXISTENT);

	/* Work holds a big message of its own and a copy of INBOX's. */
	uids[0] = deliver_small(f);
	uids[1] = deliver(f->store, f->alice, big, BIG_SIZE);
	uids[2] = deliver(f->store, f->alice, big, BIG_SIZE);
	assert_int_equal(count_blob_files(f->dir), 2);
	create_mailbox(f, "Work");
	create_mailbox(f, "Work/child");
	work = status_of(f, "Work");
	trash = status_of(f, "Trash");
	op = store_op_new(f->store);
	store_op_copy(op, status_of(f, "INBOX").id, uids, 3, work.id, 0);
	store_op_expunge(op, status_of(f, "INBOX").id, &uids[2], 1);
	op_ok(op, &r);
	assert_int_equal(status_of(f, "Work").messages, 3);
	assert_int_equal(status_of(f, "INBOX").messages, 2);

	op = store_op_new(f->store);
	store_op_mailbox_delete(op, f->alice, "Work");
	op_ok(op, &r);
	assert_false(mailbox_exists(f, "Work"));
	assert_true(mailbox_exists(f, "Work/child"));
	/* uids[2]'s content had only Work's reference left: gone; the
	 * other big one is still INBOX's. */
	assert_int_equal(count_blob_files(f->dir), 1);
	assert_int_equal(status_of(f, "INBOX").messages, 2);

	/* Trash is a default mailbox: deletable, and a new one gets a new
	 * UIDVALIDITY. */
	op = store_op_new(f->store);
	store_op_mailbox_delete(op, f->alice, "Trash");
	op_ok(op, &r);
	create_mailbox(f, "Trash");
	again = status_of(f, "Trash");
	assert_true(again.uidvalidity > trash.uidvalidity);
	assert_true(again.id != trash.id);
	create_mailbox(f, "Work");
	assert_true(status_of(f, "Work").uidvalidity > work.uidvalidity);
	free(big);
}

static void test_mailbox_rename(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox_status a, ab, abc;
	struct status_list l = { 0 };
	const char *error = NULL;
	store_op_t *op;
	struct op_res r;

	create_mailbox(f, "a");
	create_mailbox(f, "a/b");
	create_mailbox(f, "a/b/c");
	create_mailbox(f, "ab");
	create_mailbox(f, "a0");
	a = status_of(f, "a");
	ab = status_of(f, "a/b");
	abc = status_of(f, "a/b/c");
	op = store_op_new(f->store);
	store_op_subscribe(op, f->alice, "a/b", 1);
	op_ok(op, &r);

	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "a", "x");
	op_ok(op, &r);
	assert_false(mailbox_exists(f, "a"));
	assert_false(mailbox_exists(f, "a/b"));
	assert_int_equal(status_of(f, "x").id, a.id);
	assert_int_equal(status_of(f, "x").uidvalidity, a.uidvalidity);
	assert_int_equal(status_of(f, "x/b").id, ab.id);
	assert_int_equal(status_of(f, "x/b").subscribed, 1);
	assert_int_equal(status_of(f, "x/b/c").uidvalidity, abc.uidvalidity);
	/* Names that only share the prefix stay. */
	assert_true(mailbox_exists(f, "ab"));
	assert_true(mailbox_exists(f, "a0"));
	assert_int_equal(store_mailbox_list_status(f->store, f->alice, 1, collect_status, &l,
						   &error), 0);
	assert_null(find_status(&l, "a/b"));

	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "nope", "y");
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_NONEXISTENT);
	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "x", "ab");
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_EXISTS);
	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "x", "Inbox");
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_EXISTS);
	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "x", "x/y");
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_INVALID);
	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "x", "bad//name");
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_INVALID);
	/* A child's new name taken by an unrelated mailbox. */
	create_mailbox(f, "z/b");
	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "x", "z");
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_EXISTS);
	assert_true(mailbox_exists(f, "x/b/c"));

	/* Moving up: "p/q" -> "p" renames "p/q/q" to "p/q", a name that is
	 * itself being renamed away. */
	create_mailbox(f, "p/q");
	create_mailbox(f, "p/q/q");
	ab = status_of(f, "p/q/q");
	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "p/q", "p");
	op_ok(op, &r);
	assert_int_equal(status_of(f, "p/q").id, ab.id);
	assert_true(mailbox_exists(f, "p"));
	assert_false(mailbox_exists(f, "p/q/q"));
}

static void test_rename_inbox(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox_status inbox, old;
	uint32_t uid = 2;
	struct msgs l;
	store_op_t *op;
	struct op_res r;

	for (int i = 0; i < 3; i++)
		deliver_small(f);
	create_mailbox(f, "INBOX/sub");
	inbox = status_of(f, "INBOX");
	flags_op(f, inbox.id, &uid, 1, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, "$Label1", 0, &r);

	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "inbox", "Old");
	op_ok(op, &r);
	old = status_of(f, "Old");
	assert_int_equal(old.messages, 3);
	assert_int_equal(old.uidnext, 4);
	assert_true(old.uidvalidity > inbox.uidvalidity);
	scan(f, old.id, &l);
	assert_int_equal(l.count, 3);
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(l.items[i].uid, i + 1);
	assert_int_equal(l.items[1].flags, STORE_FLAG_FLAGGED);
	assert_string_equal(l.items[1].keywords, "$Label1");

	/* INBOX stays, empty, same id, uidnext unchanged. */
	assert_int_equal(status_of(f, "INBOX").id, inbox.id);
	assert_int_equal(status_of(f, "INBOX").messages, 0);
	assert_int_equal(status_of(f, "INBOX").uidnext, 4);
	assert_int_equal(status_of(f, "INBOX").uidvalidity, inbox.uidvalidity);
	assert_true(mailbox_exists(f, "INBOX/sub"));
	assert_int_equal(deliver_small(f), 4);

	op = store_op_new(f->store);
	store_op_mailbox_rename(op, f->alice, "INBOX", "Old");
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_EXISTS);
}

static void test_subscribe_and_list(void **state)
{
	struct fixture *f = *state;
	struct status_list l = { 0 };
	const struct store_mailbox_status *st;
	const char *error = NULL;
	store_op_t *op;
	struct op_res r;

	create_mailbox(f, "Archive");
	op = store_op_new(f->store);
	store_op_subscribe(op, f->alice, "Ghost", 1);
	store_op_subscribe(op, f->alice, "Sent", 0);
	store_op_subscribe(op, f->alice, "Archive", 1);
	store_op_subscribe(op, f->alice, "Archive", 1);
	store_op_subscribe(op, f->alice, "NeverSubscribed", 0);
	op_ok(op, &r);
	op = store_op_new(f->store);
	store_op_subscribe(op, f->alice, "bad*", 1);
	run_op(op, &r);
	assert_int_equal(r.code, STORE_ERR_INVALID);

	assert_int_equal(store_mailbox_list_status(f->store, f->alice, 1, collect_status, &l,
						   &error), 0);
	assert_int_equal(l.count, 7);
	/* INBOX first, then byte order, missing names in place. */
	assert_string_equal(l.items[0].name, "INBOX");
	assert_string_equal(l.items[1].name, "Archive");
	assert_string_equal(l.items[2].name, "Drafts");
	assert_string_equal(l.items[3].name, "Ghost");
	assert_string_equal(l.items[4].name, "Junk");
	assert_string_equal(l.items[5].name, "Sent");
	assert_string_equal(l.items[6].name, "Trash");
	st = find_status(&l, "Ghost");
	assert_int_equal(st->id, 0);
	assert_int_equal(st->subscribed, 1);
	assert_int_equal(find_status(&l, "Sent")->subscribed, 0);
	assert_int_equal(find_status(&l, "Sent")->special_use, STORE_SPECIAL_SENT);
	assert_int_equal(find_status(&l, "INBOX")->subscribed, 1);
	assert_int_equal(find_status(&l, "Archive")->subscribed, 1);

	l.count = 0;
	assert_int_equal(store_mailbox_list_status(f->store, f->alice, 0, collect_status, &l,
						   &error), 0);
	assert_int_equal(l.count, 6);
	assert_null(find_status(&l, "Ghost"));

	/* Creating the subscribed name: listed once, with its id. */
	create_mailbox(f, "Ghost");
	l.count = 0;
	assert_int_equal(store_mailbox_list_status(f->store, f->alice, 1, collect_status, &l,
						   &error), 0);
	assert_int_equal(l.count, 7);
	assert_true(find_status(&l, "Ghost")->id != 0);
	assert_int_equal(find_status(&l, "Ghost")->subscribed, 1);
	/* Deleting a mailbox keeps its subscription. */
	op = store_op_new(f->store);
	store_op_mailbox_delete(op, f->alice, "Archive");
	op_ok(op, &r);
	l.count = 0;
	assert_int_equal(store_mailbox_list_status(f->store, f->alice, 1, collect_status, &l,
						   &error), 0);
	assert_int_equal(find_status(&l, "Archive")->id, 0);
}

static void test_status_counts(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 8);
	struct store_mailbox_status st;
	uint32_t seen[] = { 1, 3 }, del = 3;
	struct op_res r;

	for (int i = 0; i < 3; i++)
		deliver_small(f);
	deliver(f->store, f->alice, big, BIG_SIZE);
	st = status_of(f, "INBOX");
	assert_int_equal(st.messages, 4);
	assert_int_equal(st.unseen, 4);
	assert_int_equal(st.deleted, 0);
	assert_int_equal(st.size, 3 * (sizeof(small_msg) - 1) + BIG_SIZE);
	flags_op(f, st.id, seen, 2, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, &r);
	flags_op(f, st.id, &del, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, &r);
	st = status_of(f, "INBOX");
	assert_int_equal(st.messages, 4);
	assert_int_equal(st.unseen, 2);
	assert_int_equal(st.deleted, 1);
	assert_int_equal(st.uidnext, 5);
	st = status_of(f, "Junk");
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.size, 0);
	assert_int_equal(st.special_use, STORE_SPECIAL_JUNK);
	free(big);
}

/* ---- flags ---- */

static void test_flags(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox_status inbox;
	uint32_t one_two[] = { 2, 1, 2, 99 }, all[] = { 1, 2, 3 }, one = 1;
	uint64_t m3;
	struct msgs l;
	struct op_res r;

	for (int i = 0; i < 3; i++)
		deliver_small(f);
	inbox = status_of(f, "INBOX");
	scan(f, inbox.id, &l);
	m3 = l.items[2].modseq;

	/* ADD on 1 and 2 (duplicates and absent uids ignored). */
	flags_op(f, inbox.id, one_two, 4, STORE_FLAGS_ADD, STORE_FLAG_SEEN, "foo $Junk", 0, &r);
	assert_int_equal(r.n_changed, 2);
	assert_int_equal(r.highestmodseq, inbox.highestmodseq + 1);
	assert_int_equal(r.changed[0].uid, 1);
	assert_int_equal(r.changed[1].uid, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r.changed[i].modseq, inbox.highestmodseq + 1);
		assert_int_equal(r.changed[i].flags, STORE_FLAG_SEEN);
		assert_string_equal(r.changed[i].keywords, "$Junk foo");
		assert_int_equal(r.changed[i].size, sizeof(small_msg) - 1);
	}

	/* DEL foo on all: 3 has none, so it keeps its modseq. */
	flags_op(f, inbox.id, all, 3, STORE_FLAGS_DEL, 0, "FOO", 0, &r);
	assert_int_equal(r.n_changed, 2);
	assert_int_equal(r.highestmodseq, inbox.highestmodseq + 2);
	scan(f, inbox.id, &l);
	assert_string_equal(l.items[0].keywords, "$Junk");
	assert_int_equal(l.items[0].modseq, inbox.highestmodseq + 2);
	assert_int_equal(l.items[2].modseq, m3);
	assert_string_equal(l.items[2].keywords, "");

	/* Nothing changes: no new modseq at all. */
	flags_op(f, inbox.id, all, 3, STORE_FLAGS_ADD, 0, "$junk", 0, &r);
	assert_int_equal(r.n_changed, 1);               /* only 3 gains it */
	assert_int_equal(r.changed[0].uid, 3);
	flags_op(f, inbox.id, all, 3, STORE_FLAGS_ADD, 0, "$JUNK", 0, &r);
	assert_int_equal(r.n_changed, 0);
	assert_int_equal(r.highestmodseq, inbox.highestmodseq + 3);
	assert_int_equal(status_of(f, "INBOX").highestmodseq, inbox.highestmodseq + 3);

	/* SET replaces flags and keywords; normalised (sorted, unique). */
	flags_op(f, inbox.id, &one, 1, STORE_FLAGS_SET, STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT,
		 "  zeta Alpha beta alpha ", 0, &r);
	assert_int_equal(r.n_changed, 1);
	assert_int_equal(r.changed[0].flags, STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT);
	assert_string_equal(r.changed[0].keywords, "Alpha beta zeta");
	flags_op(f, inbox.id, &one, 1, STORE_FLAGS_SET, 0, NULL, 0, &r);
	assert_int_equal(r.n_changed, 1);
	assert_int_equal(r.changed[0].flags, 0);
	assert_string_equal(r.changed[0].keywords, "");
	scan(f, inbox.id, &l);
	assert_int_equal(l.items[0].flags, 0);
	assert_string_equal(l.items[0].keywords, "");
	assert_int_equal(l.items[0].modseq, status_of(f, "INBOX").highestmodseq);

	/* A missing mailbox. */
	{
		store_op_t *op = store_op_new(f->store);

		store_op_flags(op, 987654, all, 3, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0);
		run_op(op, &r);
		assert_int_equal(r.status, -1);
		assert_int_equal(r.code, STORE_ERR_NONEXISTENT);
	}
}

static void test_unchangedsince(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox_status inbox;
	uint32_t two = 2, all[] = { 1, 2, 3 };
	uint64_t seen_at;
	struct msgs l;
	struct op_res r;

	for (int i = 0; i < 3; i++)
		deliver_small(f);
	inbox = status_of(f, "INBOX");
	seen_at = inbox.highestmodseq;
	/* Someone else changes 2 after the client looked. */
	flags_op(f, inbox.id, &two, 1, STORE_FLAGS_ADD, STORE_FLAG_ANSWERED, NULL, 0, &r);
	flags_op(f, inbox.id, all, 3, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, seen_at, &r);
	assert_int_equal(r.n_modified, 1);
	assert_int_equal(r.modified[0], 2);
	assert_int_equal(r.n_changed, 2);
	assert_int_equal(r.changed[0].uid, 1);
	assert_int_equal(r.changed[1].uid, 3);
	scan(f, inbox.id, &l);
	assert_int_equal(l.items[1].flags, STORE_FLAG_ANSWERED);
	assert_int_equal(l.items[0].flags, STORE_FLAG_DELETED);
}

/* ---- expunge and changes ---- */

static void test_expunge_changes(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox_status inbox;
	uint32_t gone[] = { 4, 2, 99 }, five = 5;
	const char *error = NULL;
	uint64_t since;
	struct msgs l;
	store_op_t *op;
	struct op_res r;

	for (int i = 0; i < 5; i++)
		deliver_small(f);
	inbox = status_of(f, "INBOX");
	since = inbox.highestmodseq;

	op = store_op_new(f->store);
	store_op_expunge(op, inbox.id, gone, 3);
	op_ok(op, &r);
	assert_int_equal(r.n_expunged, 2);
	assert_int_equal(r.expunged[0], 2);
	assert_int_equal(r.expunged[1], 4);
	assert_int_equal(r.highestmodseq, since + 1);
	assert_int_equal(status_of(f, "INBOX").messages, 3);
	flags_op(f, inbox.id, &five, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, &r);

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_changes(f->store, inbox.id, since, collect_msg,
					   collect_expunged, &l, &error), 0);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.items[0].uid, 5);
	assert_int_equal(l.items[0].modseq, since + 2);
	assert_int_equal(l.n_expunged, 2);
	assert_int_equal(l.expunged[0], 2);
	assert_int_equal(l.expunged[1], 4);
	assert_int_equal(l.expunged_modseq[0], since + 1);
	/* Since the expunge: only the flag change. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_changes(f->store, inbox.id, since + 1, collect_msg,
					   collect_expunged, &l, &error), 0);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.n_expunged, 0);
	/* From the start: every message and the expunges. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_changes(f->store, inbox.id, 0, collect_msg,
					   collect_expunged, &l, &error), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.n_expunged, 2);

	/* Expunging nothing changes nothing. */
	op = store_op_new(f->store);
	store_op_expunge(op, inbox.id, gone, 3);
	op_ok(op, &r);
	assert_int_equal(r.n_expunged, 0);
	assert_int_equal(r.highestmodseq, since + 2);

	/* Scan from a uid. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan(f->store, inbox.id, 3, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.items[0].uid, 3);
}

/* ---- copy and move ---- */

static void test_copy(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 21), *got = malloc(BIG_SIZE);
	struct store_mailbox_status inbox, work;
	uint32_t src[] = { 3, 1 }, big_uid, all[] = { 1, 2, 3 };
	struct msgs l, wl;
	store_op_t *op;
	struct op_res r;

	assert_non_null(got);
	deliver_small(f);
	deliver_small(f);
	big_uid = deliver(f->store, f->alice, big, BIG_SIZE);
	create_mailbox(f, "Work");
	inbox = status_of(f, "INBOX");
	work = status_of(f, "Work");
	flags_op(f, inbox.id, &big_uid, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, "$Forwarded", 0, &r);
	inbox = status_of(f, "INBOX");

	op = store_op_new(f->store);
	store_op_copy(op, inbox.id, src, 2, work.id, 0);
	op_ok(op, &r);
	assert_int_equal(r.dst_uidvalidity, work.uidvalidity);
	assert_int_equal(r.n_copied, 2);
	assert_int_equal(r.src_uids[0], 1);
	assert_int_equal(r.dst_uids[0], 1);
	assert_int_equal(r.src_uids[1], 3);
	assert_int_equal(r.dst_uids[1], 2);
	assert_int_equal(r.n_expunged, 0);
	assert_int_equal(r.highestmodseq, work.highestmodseq + 1);
	assert_int_equal(count_blob_files(f->dir), 1);

	scan(f, inbox.id, &l);
	scan(f, work.id, &wl);
	assert_int_equal(wl.count, 2);
	assert_int_equal(wl.items[1].flags, STORE_FLAG_SEEN);
	assert_string_equal(wl.items[1].keywords, "$Forwarded");
	assert_int_equal(wl.items[1].internaldate, 1700000000);
	assert_int_equal(wl.items[1].modseq, work.highestmodseq + 1);
	assert_int_equal(wl.items[0].modseq, work.highestmodseq + 1);
	/* Content stored once. */
	assert_int_equal(wl.items[1].blob_id, find_uid(&l, 3)->blob_id);
	assert_int_equal(wl.items[0].blob_id, find_uid(&l, 1)->blob_id);
	assert_int_equal(status_of(f, "INBOX").highestmodseq, inbox.highestmodseq);

	/* The original goes; the copy keeps the content. */
	op = store_op_new(f->store);
	store_op_expunge(op, inbox.id, all, 3);
	op_ok(op, &r);
	assert_int_equal(count_blob_files(f->dir), 1);
	read_all(f->store, wl.items[1].blob_id, got, BIG_SIZE);
	assert_memory_equal(got, big, BIG_SIZE);
	op = store_op_new(f->store);
	store_op_expunge(op, work.id, all, 3);
	op_ok(op, &r);
	assert_int_equal(count_blob_files(f->dir), 0);

	/* Into a missing mailbox: nothing happens. */
	deliver_small(f);
	op = store_op_new(f->store);
	store_op_copy(op, inbox.id, all, 3, 424242, 0);
	run_op(op, &r);
	assert_int_equal(r.status, -1);
	assert_int_equal(r.code, STORE_ERR_NONEXISTENT);
	assert_int_equal(r.n_copied, 0);

	/* Into itself: the copies get new uids and are not copied again. */
	op = store_op_new(f->store);
	{
		uint32_t everything[] = { 4, 5, 6, 7 };

		store_op_copy(op, inbox.id, everything, 4, inbox.id, 0);
	}
	op_ok(op, &r);
	assert_int_equal(r.n_copied, 1);
	assert_int_equal(r.src_uids[0], 4);
	assert_int_equal(r.dst_uids[0], 5);
	assert_int_equal(status_of(f, "INBOX").messages, 2);
	free(big);
	free(got);
}

static void test_move(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox_status inbox, work;
	uint32_t uids[] = { 2, 1 };
	const char *error = NULL;
	struct msgs l;
	store_op_t *op;
	struct op_res r;

	for (int i = 0; i < 3; i++)
		deliver_small(f);
	create_mailbox(f, "Work");
	deliver(f->store, f->alice, "x", 1);  /* 4 */
	inbox = status_of(f, "INBOX");
	work = status_of(f, "Work");
	/* Work already has a message: the moved ones follow it. */
	op = store_op_new(f->store);
	{
		uint32_t four = 4;

		store_op_copy(op, inbox.id, &four, 1, work.id, 0);
	}
	op_ok(op, &r);

	op = store_op_new(f->store);
	store_op_copy(op, inbox.id, uids, 2, work.id, 1);
	op_ok(op, &r);
	assert_int_equal(r.n_copied, 2);
	assert_int_equal(r.src_uids[0], 1);
	assert_int_equal(r.dst_uids[0], 2);
	assert_int_equal(r.src_uids[1], 2);
	assert_int_equal(r.dst_uids[1], 3);
	assert_int_equal(r.n_expunged, 2);
	assert_int_equal(r.expunged[0], 1);
	assert_int_equal(r.expunged[1], 2);
	assert_int_equal(r.dst_uidvalidity, work.uidvalidity);
	/* The source's: the move's last change is its expunge. */
	assert_int_equal(r.highestmodseq, inbox.highestmodseq + 1);
	assert_int_equal(status_of(f, "INBOX").messages, 2);
	assert_int_equal(status_of(f, "Work").messages, 3);
	assert_int_equal(status_of(f, "Work").uidnext, 4);

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_changes(f->store, inbox.id, inbox.highestmodseq, collect_msg,
					   collect_expunged, &l, &error), 0);
	assert_int_equal(l.count, 0);
	assert_int_equal(l.n_expunged, 2);
	assert_int_equal(l.expunged_modseq[1], inbox.highestmodseq + 1);

	/* Moved content keeps exactly one reference: expunging it frees it. */
	op = store_op_new(f->store);
	{
		uint32_t w[] = { 1, 2, 3 }, in[] = { 3, 4 };

		store_op_expunge(op, work.id, w, 3);
		store_op_expunge(op, inbox.id, in, 2);
	}
	op_ok(op, &r);
	scan(f, work.id, &l);
	assert_int_equal(l.count, 0);
}

/* ---- append, cache, content ---- */

static void test_append_and_cache(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 5), buf[64];
	static const char msg[] = "Subject: appended\r\n\r\nbody\r\n";
	struct store_msg_cache cache = {
		.envelope = "(NIL \"appended\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		.bodystructure = "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 6 1)",
		.subject = "appended",
		.from = "bob@example.org",
		.message_id = "<1@example.org>",
		.sent_date = 1699999999,
	}, got;
	struct store_mailbox_status work;
	struct deliv_result r = { 0 };
	const char *error = NULL, *data = NULL;
	size_t len = 0;
	int fd = -2;
	struct msgs l;
	store_delivery_t *d;

	create_mailbox(f, "Work");
	work = status_of(f, "Work");
	d = store_delivery_new(f->store);
	assert_int_equal(store_delivery_write(d, msg, sizeof(msg) - 1, &error), 0);
	assert_int_equal(store_delivery_content(d, &data, &len, &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(len, sizeof(msg) - 1);
	assert_memory_equal(data, msg, len);
	store_delivery_set_cache(d, &cache);
	cache.subject = "changed after set";            /* copied */
	store_delivery_add_mailbox(d, work.id, STORE_FLAG_SEEN | STORE_FLAG_DRAFT, "b A b");
	store_delivery_add_rcpt(d, f->alice);
	store_delivery_add_mailbox(d, work.id, 0, NULL);  /* same mailbox: one copy */
	store_delivery_commit(d, 1690000000, deliv_cb, &r);
	assert_true(r.called);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.uids[0], 1);
	assert_int_equal(r.uids[1], 1);
	assert_int_equal(r.uids[2], 1);

	scan(f, work.id, &l);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.items[0].flags, STORE_FLAG_SEEN | STORE_FLAG_DRAFT);
	assert_string_equal(l.items[0].keywords, "A b");
	assert_int_equal(l.items[0].internaldate, 1690000000);
	assert_int_equal(l.items[0].modseq, status_of(f, "Work").highestmodseq);
	assert_int_equal(status_of(f, "Work").uidnext, 2);
	assert_int_equal(status_of(f, "INBOX").messages, 1);
	assert_int_equal(store_msg_cache_get(f->store, l.items[0].blob_id, &got, &error), 1);
	assert_string_equal(got.envelope, "(NIL \"appended\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_string_equal(got.bodystructure, "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 6 1)");
	assert_string_equal(got.subject, "appended");
	assert_string_equal(got.from, "bob@example.org");
	assert_string_equal(got.message_id, "<1@example.org>");
	assert_null(got.body);
	assert_null(got.references);
	assert_int_equal(got.sent_date, 1699999999);
	store_msg_cache_free(&got);
	store_msg_cache_free(&got);
	assert_int_equal(store_msg_cache_get(f->store, 999999, &got, &error), 0);

	/* A spilled delivery's content through its file. */
	d = store_delivery_new(f->store);
	assert_int_equal(store_delivery_write(d, big, BIG_SIZE - 10, &error), 0);
	assert_int_equal(store_delivery_content(d, &data, &len, &fd), 0);
	assert_null(data);
	assert_true(fd >= 0);
	assert_int_equal(len, BIG_SIZE - 10);
	assert_int_equal(pread(fd, buf, sizeof(buf), BIG_SIZE - 10 - 64), 64);
	assert_memory_equal(buf, big + BIG_SIZE - 10 - 64, 64);
	assert_int_equal(store_delivery_write(d, big + BIG_SIZE - 10, 10, &error), 0);
	assert_int_equal(store_delivery_content(d, &data, &len, &fd), 0);
	assert_int_equal(len, BIG_SIZE);
	assert_int_equal(pread(fd, buf, 10, BIG_SIZE - 10), 10);
	assert_memory_equal(buf, big + BIG_SIZE - 10, 10);
	store_delivery_add_mailbox(d, work.id, 0, "");
	memset(&r, 0, sizeof(r));
	store_delivery_commit(d, 0, deliv_cb, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.uids[0], 2);

	/* A deleted target mailbox fails the delivery. */
	d = store_delivery_new(f->store);
	assert_int_equal(store_delivery_write(d, "x", 1, &error), 0);
	store_delivery_add_mailbox(d, 31337, 0, NULL);
	memset(&r, 0, sizeof(r));
	store_delivery_commit(d, 0, deliv_cb, &r);
	assert_int_equal(r.status, -1);
	free(big);
}

static void test_blob_read(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 77), *small = make_content(1000, 4);
	unsigned char buf[4096];
	const char *error = NULL;
	struct msgs l;
	size_t got;

	deliver(f->store, f->alice, small, 1000);
	deliver(f->store, f->alice, big, BIG_SIZE);
	deliver(f->store, f->alice, "", 0);
	scan(f, status_of(f, "INBOX").id, &l);
	assert_int_equal(count_blob_files(f->dir), 1);
	{
		const struct { int idx; size_t size; const unsigned char *data; } blobs[] = {
			{ 0, 1000, small }, { 1, BIG_SIZE, big },
		};

		for (size_t b = 0; b < 2; b++) {
			int64_t id = l.items[blobs[b].idx].blob_id;
			size_t size = blobs[b].size;
			const uint64_t offsets[] = { 0, 1, size / 2, size - 100, size - 1 };

			for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
				size_t want = size - offsets[i] < sizeof(buf) ?
					size - offsets[i] : sizeof(buf);

				if (store_blob_read(f->store, id, offsets[i], buf, sizeof(buf), &got,
						    &error) < 0)
					fail_msg("store_blob_read: %s", error);
				assert_int_equal(got, want);
				assert_memory_equal(buf, blobs[b].data + offsets[i], want);
			}
			assert_int_equal(store_blob_read(f->store, id, size, buf, sizeof(buf), &got,
							 &error), 0);
			assert_int_equal(got, 0);
			assert_int_equal(store_blob_read(f->store, id, size + 5000, buf, 10, &got,
							 &error), 0);
			assert_int_equal(got, 0);
			assert_int_equal(store_blob_read(f->store, id, 10, buf, 0, &got, &error), 0);
			assert_int_equal(got, 0);
		}
	}
	/* Empty content, and content that does not exist. */
	assert_int_equal(store_blob_read(f->store, l.items[2].blob_id, 0, buf, 10, &got,
					 &error), 0);
	assert_int_equal(got, 0);
	assert_int_equal(store_blob_read(f->store, 999999, 0, buf, 10, &got, &error), -1);
	free(big);
	free(small);
}

/* Read a whole blob through r in pieces of at most max octets. */
static void reader_check(store_blob_reader_t *r, int64_t blob_id, const unsigned char *want,
			 size_t size, size_t max)
{
	const char *error = NULL;
	const void *data;
	uint64_t got_size = 99;
	size_t pos = 0, len;

	if (store_blob_reader_open(r, blob_id, &got_size, &error) < 0)
		fail_msg("store_blob_reader_open: %s", error);
	assert_int_equal(got_size, size);
	for (;;) {
		if (store_blob_reader_next(r, max, &data, &len, &error) < 0)
			fail_msg("store_blob_reader_next: %s", error);
		if (len == 0)
			break;
		assert_true(len <= max);
		assert_true(pos + len <= size);
		assert_memory_equal(data, want + pos, len);
		pos += len;
	}
	assert_int_equal(pos, size);
	/* at the end it stays at the end */
	assert_int_equal(store_blob_reader_next(r, max, &data, &len, &error), 0);
	assert_int_equal(len, 0);
}

static void test_blob_reader(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 78), *small = make_content(1000, 5);
	unsigned char *inl = make_content(128 * 1024, 6);
	store_blob_reader_t *r = store_blob_reader_new(f->store);
	const char *error = NULL;
	const void *data;
	uint64_t size;
	size_t len;
	struct msgs l;
	struct op_res res;
	store_op_t *op;

	assert_non_null(r);
	deliver(f->store, f->alice, small, 1000);
	deliver(f->store, f->alice, big, BIG_SIZE);
	deliver(f->store, f->alice, "", 0);
	deliver(f->store, f->alice, inl, 128 * 1024); /* the largest inline size */
	scan(f, status_of(f, "INBOX").id, &l);
	assert_int_equal(l.count, 4);
	assert_int_equal(count_blob_files(f->dir), 1);

	/* One reader, message after message, in pieces of various sizes. */
	const size_t maxes[] = { 1, 7, 4096, 64 * 1024, 1024 * 1024 };
	for (size_t k = 0; k < sizeof(maxes) / sizeof(maxes[0]); k++) {
		if (maxes[k] >= 4096)
			reader_check(r, l.items[1].blob_id, big, BIG_SIZE, maxes[k]);
		reader_check(r, l.items[0].blob_id, small, 1000, maxes[k]);
		reader_check(r, l.items[2].blob_id, (const unsigned char *)"", 0, maxes[k]);
		if (maxes[k] >= 4096)
			reader_check(r, l.items[3].blob_id, inl, 128 * 1024, maxes[k]);
	}
	/* Opening a new blob in the middle of one starts over. */
	assert_int_equal(store_blob_reader_open(r, l.items[1].blob_id, &size, &error), 0);
	assert_int_equal(store_blob_reader_next(r, 10, &data, &len, &error), 0);
	reader_check(r, l.items[0].blob_id, small, 1000, 300);

	/* Content that does not exist. */
	assert_int_equal(store_blob_reader_open(r, 999999, &size, &error), -1);
	assert_non_null(error);
	assert_int_equal(store_blob_reader_next(r, 10, &data, &len, &error), 0);
	assert_int_equal(len, 0);

	/* Expunged while being read: a file opened before stays readable,
	 * inline content was copied at open; after that, opening fails. */
	assert_int_equal(store_blob_reader_open(r, l.items[1].blob_id, &size, &error), 0);
	assert_int_equal(store_blob_reader_next(r, 1000, &data, &len, &error), 0);
	assert_memory_equal(data, big, 1000);
	op = store_op_new(f->store);
	store_op_expunge(op, status_of(f, "INBOX").id, &l.items[1].uid, 1);
	op_ok(op, &res);
	assert_int_equal(count_blob_files(f->dir), 0);
	size_t pos = 1000;
	while (store_blob_reader_next(r, 64 * 1024, &data, &len, &error) == 0 && len > 0) {
		assert_memory_equal(data, big + pos, len);
		pos += len;
	}
	assert_int_equal(pos, BIG_SIZE);
	assert_int_equal(store_blob_reader_open(r, l.items[0].blob_id, &size, &error), 0);
	op = store_op_new(f->store);
	store_op_expunge(op, status_of(f, "INBOX").id, &l.items[0].uid, 1);
	op_ok(op, &res);
	assert_int_equal(store_blob_reader_next(r, 2000, &data, &len, &error), 0);
	assert_int_equal(len, 1000);
	assert_memory_equal(data, small, 1000);
	assert_int_equal(store_blob_reader_open(r, l.items[0].blob_id, &size, &error), -1);
	assert_int_equal(store_blob_reader_open(r, l.items[1].blob_id, &size, &error), -1);

	store_blob_reader_close(r);
	store_blob_reader_close(NULL);
	store_blob_reader_free(r);
	store_blob_reader_free(NULL);
	free(big);
	free(small);
	free(inl);
}

/* The rest of the current content of r equals want[0..size). */
static void reader_rest(store_blob_reader_t *r, const unsigned char *want, size_t size)
{
	const char *error = NULL;
	const void *data;
	size_t pos = 0, len;

	while (store_blob_reader_next(r, 4096, &data, &len, &error) == 0 && len > 0) {
		assert_true(pos + len <= size);
		assert_memory_equal(data, want + pos, len);
		pos += len;
	}
	assert_int_equal(pos, size);
}

static void test_blob_reader_ahead(void **state)
{
	struct fixture *f = *state;
	unsigned char *c[6];
	const size_t sizes[6] = { 3000, 5000, BIG_SIZE, 2000, 0, 7000 };
	store_blob_reader_t *r = store_blob_reader_new(f->store);
	const char *error = NULL;
	uint64_t size;
	int64_t ids[6];
	struct msgs l;
	struct op_res res;
	store_op_t *op;

	assert_non_null(r);
	for (int i = 0; i < 6; i++) {
		c[i] = make_content(sizes[i], 20 + i);
		deliver(f->store, f->alice, c[i], sizes[i]);
	}
	scan(f, status_of(f, "INBOX").id, &l);
	assert_int_equal(l.count, 6);
	for (int i = 0; i < 6; i++)
		ids[i] = l.items[i].blob_id;

	/* 0 reads 1 ahead; the file (2) ends the run. */
	assert_int_equal(store_blob_reader_open_ahead(r, ids[0], ids + 1, 5, 64 * 1024, &size,
						      &error), 0);
	assert_int_equal(size, 3000);
	/* what was read ahead is served even after its message is expunged */
	op = store_op_new(f->store);
	store_op_expunge(op, status_of(f, "INBOX").id, &l.items[1].uid, 1);
	op_ok(op, &res);
	reader_rest(r, c[0], 3000);
	assert_int_equal(store_blob_reader_open_ahead(r, ids[1], ids + 2, 4, 64 * 1024, &size,
						      &error), 1);
	assert_int_equal(size, 5000);
	reader_rest(r, c[1], 5000);
	/* The file is read from the store, and reads 3..5 ahead; its chunks
	 * do not disturb them. */
	assert_int_equal(store_blob_reader_open_ahead(r, ids[2], ids + 3, 3, 64 * 1024, &size,
						      &error), 0);
	reader_rest(r, c[2], BIG_SIZE);
	for (int i = 3; i < 6; i++) {
		assert_int_equal(store_blob_reader_open(r, ids[i], &size, &error), 0);
		assert_int_equal(size, sizes[i]);
		reader_rest(r, c[i], sizes[i]);
	}
	/* out of order, and again */
	assert_int_equal(store_blob_reader_open_ahead(r, ids[5], NULL, 0, 0, &size, &error), 1);
	reader_rest(r, c[5], 7000);
	assert_int_equal(store_blob_reader_open_ahead(r, ids[3], NULL, 0, 0, &size, &error), 1);
	reader_rest(r, c[3], 2000);
	/* forgotten: the expunged message is gone */
	store_blob_reader_forget(r);
	assert_int_equal(store_blob_reader_open(r, ids[1], &size, &error), -1);
	/* max bounds the octets read ahead: 5000 fits 3 (2000) and 4 (0), not 5 */
	assert_int_equal(store_blob_reader_open_ahead(r, ids[0], ids + 3, 3, 2000, &size,
						      &error), 0);
	assert_int_equal(store_blob_reader_open_ahead(r, ids[4], NULL, 0, 0, &size, &error), 1);
	assert_int_equal(size, 0);
	assert_int_equal(store_blob_reader_open_ahead(r, ids[3], NULL, 0, 0, &size, &error), 1);
	assert_int_equal(store_blob_reader_open_ahead(r, ids[5], NULL, 0, 0, &size, &error), 0);
	reader_rest(r, c[5], 7000);
	/* a missing blob ends the run; the current one still opens */
	assert_int_equal(store_blob_reader_open_ahead(r, ids[0], ids + 1, 5, 64 * 1024, &size,
						      &error), 0);
	assert_int_equal(store_blob_reader_open_ahead(r, ids[3], NULL, 0, 0, &size, &error), 0);
	store_blob_reader_free(r);
	for (int i = 0; i < 6; i++)
		free(c[i]);
}

/* ---- watchers ---- */

struct watch_count {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned calls;
};

static void watch_cb(void *ctx)
{
	struct watch_count *w = ctx;

	pthread_mutex_lock(&w->lock);
	w->calls++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static unsigned watch_calls(struct watch_count *w)
{
	unsigned n;

	pthread_mutex_lock(&w->lock);
	n = w->calls;
	pthread_mutex_unlock(&w->lock);
	return n;
}

static void test_watch(void **state)
{
	struct fixture *f = *state;
	struct watch_count in = { .calls = 0 }, work = { .calls = 0 }, work2 = { .calls = 0 };
	struct store_mailbox_status inbox, wk;
	store_watch_t *w_in, *w_work, *w_work2;
	struct deliv_result dr = { 0 };
	uint32_t one = 1;
	store_op_t *op;
	struct op_res r;

	pthread_mutex_init(&in.lock, NULL);
	pthread_mutex_init(&work.lock, NULL);
	pthread_mutex_init(&work2.lock, NULL);
	pthread_cond_init(&in.cond, NULL);
	pthread_cond_init(&work.cond, NULL);
	pthread_cond_init(&work2.cond, NULL);
	create_mailbox(f, "Work");
	inbox = status_of(f, "INBOX");
	wk = status_of(f, "Work");
	w_in = store_watch(f->store, inbox.id, watch_cb, &in);
	w_work = store_watch(f->store, wk.id, watch_cb, &work);
	/* Same bucket as INBOX, another mailbox. */
	w_work2 = store_watch(f->store, wk.id + 256, watch_cb, &work2);
	assert_non_null(w_in);
	assert_non_null(w_work);

	deliver_small(f);
	assert_int_equal(watch_calls(&in), 1);
	assert_int_equal(watch_calls(&work), 0);

	flags_op(f, inbox.id, &one, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, &r);
	assert_int_equal(watch_calls(&in), 2);
	/* No change, no notification. */
	flags_op(f, inbox.id, &one, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, &r);
	assert_int_equal(watch_calls(&in), 2);
	/* A copy tells the destination; a move both. */
	op = store_op_new(f->store);
	store_op_copy(op, inbox.id, &one, 1, wk.id, 0);
	op_ok(op, &r);
	assert_int_equal(watch_calls(&in), 2);
	assert_int_equal(watch_calls(&work), 1);
	op = store_op_new(f->store);
	store_op_copy(op, inbox.id, &one, 1, wk.id, 1);
	op_ok(op, &r);
	assert_int_equal(watch_calls(&in), 3);
	assert_int_equal(watch_calls(&work), 2);
	/* A failed op tells nobody. */
	op = store_op_new(f->store);
	store_op_flags(op, wk.id, &one, 1, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, NULL, 0);
	store_op_mailbox_create(op, f->alice, "Work", STORE_SPECIAL_NONE);
	run_op(op, &r);
	assert_int_equal(r.status, -1);
	assert_int_equal(watch_calls(&work), 2);

	/* With the committer: the notification comes from its thread. */
	{
		const char *error = NULL;

		assert_int_equal(store_start_committer(f->store, &error), 0);
		op = store_op_new(f->store);
		store_op_expunge(op, wk.id, &one, 1);
		memset(&r, 0, sizeof(r));
		store_op_commit(op, op_cb, &r);
		pthread_mutex_lock(&work.lock);
		while (work.calls < 3)
			pthread_cond_wait(&work.cond, &work.lock);
		pthread_mutex_unlock(&work.lock);
		/* Results come before notifications. */
		assert_true(r.called);
		assert_int_equal(r.n_expunged, 1);
	}

	store_unwatch(w_in);
	store_unwatch(w_work);
	store_unwatch(NULL);
	{
		store_delivery_t *d = store_delivery_new(f->store);
		const char *error = NULL;

		assert_int_equal(store_delivery_write(d, "x", 1, &error), 0);
		store_delivery_add_rcpt(d, f->alice);
		store_delivery_commit(d, 0, deliv_cb, &dr);
	}
	op = store_op_new(f->store);
	store_op_mailbox_delete(op, f->alice, "Work");
	memset(&r, 0, sizeof(r));
	store_op_commit(op, op_cb, &r);
	/* Drain: closing waits for the queue (the fixture reopens). */
	store_close(f->store);
	assert_true(r.called);
	assert_int_equal(r.status, 0);
	assert_true(dr.called);
	assert_int_equal(dr.status, 0);
	assert_int_equal(in.calls, 3);
	assert_int_equal(work.calls, 3);
	assert_int_equal(work2.calls, 0);
	(void)w_work2;          /* freed by store_close */
	{
		const char *error = NULL;

		if (store_open(f->dir, &f->store, &error) < 0)
			fail_msg("store_open: %s", error);
	}
	pthread_mutex_destroy(&in.lock);
	pthread_mutex_destroy(&work.lock);
	pthread_mutex_destroy(&work2.lock);
	pthread_cond_destroy(&in.cond);
	pthread_cond_destroy(&work.cond);
	pthread_cond_destroy(&work2.cond);
}

/* ---- the committer, from many threads ---- */

#define OP_THREADS 4
#define OPS_PER_THREAD 25

struct concurrent {
	store_t *store;
	int64_t src, dst;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned done, failed, order_errors;
	/* highestmodseqs in callback order, per mailbox */
	uint64_t src_seen[OP_THREADS * OPS_PER_THREAD], dst_seen[OP_THREADS * OPS_PER_THREAD];
	size_t n_src, n_dst;
	unsigned deliveries;
};

struct op_ctx {
	struct concurrent *c;
	bool is_copy;
};

static void concurrent_op_cb(void *ctx, const struct store_op_result *res)
{
	struct op_ctx *oc = ctx;
	struct concurrent *c = oc->c;

	pthread_mutex_lock(&c->lock);
	if (res->status != 0) {
		c->failed++;
	} else if (oc->is_copy) {
		if (res->n_copied != 1 || (c->n_dst > 0 && c->dst_seen[c->n_dst - 1] >= res->highestmodseq))
			c->order_errors++;
		c->dst_seen[c->n_dst++] = res->highestmodseq;
	} else {
		if (res->n_changed != 1 || res->changed[0].modseq != res->highestmodseq ||
		    (c->n_src > 0 && c->src_seen[c->n_src - 1] >= res->highestmodseq))
			c->order_errors++;
		c->src_seen[c->n_src++] = res->highestmodseq;
	}
	c->done++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	free(oc);
}

static void concurrent_deliv_cb(void *ctx, const struct store_delivery_result *res)
{
	struct concurrent *c = ctx;

	pthread_mutex_lock(&c->lock);
	if (res->status != 0)
		c->failed++;
	c->deliveries++;
	c->done++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

struct thread_arg {
	struct concurrent *c;
	int t;
	int64_t user_id;
};

static void *op_thread(void *arg)
{
	struct thread_arg *ta = arg;
	struct concurrent *c = ta->c;
	const char *error = NULL;
	uint32_t one = 1;
	char kw[32];

	for (int i = 0; i < OPS_PER_THREAD; i++) {
		store_op_t *op = store_op_new(c->store);
		struct op_ctx *oc = malloc(sizeof(*oc));

		if (op == NULL || oc == NULL)
			return "out of memory";
		oc->c = c;
		oc->is_copy = i % 2 == 1;
		if (oc->is_copy) {
			store_op_copy(op, c->src, &one, 1, c->dst, 0);
		} else {
			/* A new keyword each time: every op is a change. */
			snprintf(kw, sizeof(kw), "k%d_%d", ta->t, i);
			store_op_flags(op, c->src, &one, 1, STORE_FLAGS_ADD, 0, kw, 0);
		}
		store_op_commit(op, concurrent_op_cb, oc);
		/* Deliveries interleaved into the same batches. */
		if (i % 5 == 0) {
			store_delivery_t *d = store_delivery_new(c->store);

			if (d == NULL || store_delivery_write(d, "x", 1, &error) < 0)
				return "delivery failed";
			store_delivery_add_rcpt(d, ta->user_id);
			store_delivery_commit(d, 0, concurrent_deliv_cb, c);
		}
	}
	return NULL;
}

static void test_ops_concurrent(void **state)
{
	struct fixture *f = *state;
	static struct concurrent c;
	struct thread_arg args[OP_THREADS];
	pthread_t threads[OP_THREADS];
	struct store_mailbox_status src0, dst0;
	const char *error = NULL;
	unsigned expected = OP_THREADS * OPS_PER_THREAD + OP_THREADS * ((OPS_PER_THREAD + 4) / 5);
	void *ret;

	memset(&c, 0, sizeof(c));
	c.store = f->store;
	create_mailbox(f, "Src");
	create_mailbox(f, "Dst");
	{
		store_delivery_t *d = store_delivery_new(f->store);
		struct deliv_result r = { 0 };

		assert_int_equal(store_delivery_write(d, "y", 1, &error), 0);
		store_delivery_add_mailbox(d, status_of(f, "Src").id, 0, NULL);
		store_delivery_commit(d, 0, deliv_cb, &r);
		assert_int_equal(r.status, 0);
	}
	src0 = status_of(f, "Src");
	dst0 = status_of(f, "Dst");
	c.src = src0.id;
	c.dst = dst0.id;
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	if (store_start_committer(f->store, &error) < 0)
		fail_msg("store_start_committer: %s", error);
	for (int i = 0; i < OP_THREADS; i++) {
		args[i].c = &c;
		args[i].t = i;
		args[i].user_id = f->alice;
		assert_int_equal(pthread_create(&threads[i], NULL, op_thread, &args[i]), 0);
	}
	for (int i = 0; i < OP_THREADS; i++) {
		assert_int_equal(pthread_join(threads[i], &ret), 0);
		assert_null(ret);
	}
	pthread_mutex_lock(&c.lock);
	while (c.done < expected)
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);

	assert_int_equal(c.failed, 0);
	assert_int_equal(c.order_errors, 0);
	assert_int_equal(c.n_src + c.n_dst, OP_THREADS * OPS_PER_THREAD);
	/* One modseq step per op: the results are exactly the range. */
	for (size_t i = 0; i < c.n_src; i++)
		assert_int_equal(c.src_seen[i], src0.highestmodseq + 1 + i);
	for (size_t i = 0; i < c.n_dst; i++)
		assert_int_equal(c.dst_seen[i], dst0.highestmodseq + 1 + i);
	assert_int_equal(status_of(f, "Src").highestmodseq, src0.highestmodseq + c.n_src);
	assert_int_equal(status_of(f, "Dst").highestmodseq, dst0.highestmodseq + c.n_dst);
	assert_int_equal(status_of(f, "Dst").messages, c.n_dst);
	assert_int_equal(status_of(f, "INBOX").messages, c.deliveries);
	{
		struct msgs l;

		scan(f, c.src, &l);
		assert_int_equal(l.count, 1);
		/* Every keyword landed, sorted. */
		assert_int_equal(strlen(l.items[0].keywords) > 0, 1);
		assert_int_equal(l.items[0].modseq, src0.highestmodseq + c.n_src);
	}
	pthread_mutex_destroy(&c.lock);
	pthread_cond_destroy(&c.cond);
}

/* ---- bounded reads ---- */

struct uid_flags {
	size_t count;
	uint32_t uids[256], flags[256];
};

static void collect_uid_flags(void *ctx, uint32_t uid, uint32_t flags)
{
	struct uid_flags *l = ctx;

	assert_true(l->count < 256);
	l->uids[l->count] = uid;
	l->flags[l->count++] = flags;
}

static void collect_uid(void *ctx, uint32_t uid)
{
	collect_uid_flags(ctx, uid, 0);
}

static void expunge_op(struct fixture *f, int64_t mailbox_id, const uint32_t *uids, size_t n)
{
	store_op_t *op = store_op_new(f->store);
	struct op_res r;

	store_op_expunge(op, mailbox_id, uids, n);
	op_ok(op, &r);
}

static void test_mailbox_find(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox_status st, full;
	const char *error = NULL;

	deliver_small(f);
	deliver_small(f);
	full = status_of(f, "INBOX");
	assert_int_equal(store_mailbox_find(f->store, f->alice, "inbox", &st, &error), 1);
	assert_int_equal(st.id, full.id);
	assert_string_equal(st.name, "INBOX");
	assert_int_equal(st.uidvalidity, full.uidvalidity);
	assert_int_equal(st.uidnext, full.uidnext);
	assert_int_equal(st.uidnext, 3);
	assert_int_equal(st.highestmodseq, full.highestmodseq);
	assert_int_equal(st.special_use, full.special_use);
	assert_int_equal(st.subscribed, full.subscribed);
	/* the counts are not computed */
	assert_int_equal(full.messages, 2);
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.unseen, 0);
	assert_int_equal(st.size, 0);

	assert_int_equal(store_mailbox_find(f->store, f->alice, "Trash", &st, &error), 1);
	assert_int_equal(st.special_use, STORE_SPECIAL_TRASH);
	assert_int_equal(store_mailbox_find(f->store, f->alice, "Nope", &st, &error), 0);
	/* names other than INBOX are exact */
	assert_int_equal(store_mailbox_find(f->store, f->alice, "trash", &st, &error), 0);
}

static void test_msg_scan_range(void **state)
{
	struct fixture *f = *state;
	int64_t inbox = status_of(f, "INBOX").id;
	const char *error = NULL;
	struct msgs l;
	uint32_t gone[] = { 4 };

	for (int i = 0; i < 8; i++)
		deliver_small(f);
	expunge_op(f, inbox, gone, 1);

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_range(f->store, inbox, 3, 6, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.items[0].uid, 3);
	assert_int_equal(l.items[1].uid, 5);
	assert_int_equal(l.items[2].uid, 6);
	assert_true(l.items[0].size > 0);
	assert_true(l.items[0].blob_id > 0);

	/* one uid, an empty range, a range past the end */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_range(f->store, inbox, 8, 8, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.items[0].uid, 8);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_range(f->store, inbox, 6, 5, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 0);
	assert_int_equal(store_msg_scan_range(f->store, inbox, 9, UINT32_MAX, collect_msg, &l,
					      &error), 0);
	assert_int_equal(l.count, 0);
	assert_int_equal(store_msg_scan_range(f->store, inbox, 7, UINT32_MAX, collect_msg, &l,
					      &error), 0);
	assert_int_equal(l.count, 2);
	/* another mailbox's messages are not seen */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_range(f->store, status_of(f, "Sent").id, 1, UINT32_MAX,
					      collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 0);
}

static void test_msg_get_uids(void **state)
{
	struct fixture *f = *state;
	int64_t inbox = status_of(f, "INBOX").id;
	const char *error = NULL;
	struct msgs l, all;
	uint32_t gone[] = { 10 };
	uint32_t seen[] = { 7 };
	struct op_res r;

	for (int i = 0; i < 40; i++)
		deliver_small(f);
	expunge_op(f, inbox, gone, 1);
	flags_op(f, inbox, seen, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, "$Work", 0, &r);
	scan(f, inbox, &all);

	/* few and far apart (looked up one by one), one of them gone */
	uint32_t sparse[] = { 1, 7, 10, 30, 40 };
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_get_uids(f->store, inbox, sparse, 5, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 4);
	assert_int_equal(l.items[0].uid, 1);
	assert_int_equal(l.items[1].uid, 7);
	assert_int_equal(l.items[2].uid, 30);
	assert_int_equal(l.items[3].uid, 40);
	/* the same metadata as a full scan */
	assert_int_equal(l.items[1].flags, STORE_FLAG_SEEN);
	assert_string_equal(l.items[1].keywords, "$Work");
	assert_int_equal(l.items[1].modseq, find_uid(&all, 7)->modseq);
	assert_int_equal(l.items[1].blob_id, find_uid(&all, 7)->blob_id);
	assert_int_equal(l.items[1].size, find_uid(&all, 7)->size);
	assert_int_equal(l.items[1].internaldate, find_uid(&all, 7)->internaldate);

	/* dense (one scan): only the uids asked for come back */
	uint32_t dense[] = { 5, 6, 8, 9, 10, 11 };
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_get_uids(f->store, inbox, dense, 6, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 5);
	assert_int_equal(l.items[0].uid, 5);
	assert_int_equal(l.items[1].uid, 6);
	assert_int_equal(l.items[2].uid, 8);
	assert_int_equal(l.items[3].uid, 9);
	assert_int_equal(l.items[4].uid, 11);
	assert_int_equal(l.items[4].blob_id, find_uid(&all, 11)->blob_id);

	/* one uid; none; uids that never existed */
	uint32_t one[] = { 7 }, none[] = { 41, 500 };
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_get_uids(f->store, inbox, one, 1, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 1);
	assert_string_equal(l.items[0].keywords, "$Work");
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_get_uids(f->store, inbox, one, 0, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 0);
	assert_int_equal(store_msg_get_uids(f->store, inbox, none, 2, collect_msg, &l, &error), 0);
	assert_int_equal(l.count, 0);
}

static void test_msg_scan_flags_deleted(void **state)
{
	struct fixture *f = *state;
	int64_t inbox = status_of(f, "INBOX").id;
	const char *error = NULL;
	struct uid_flags l;
	struct op_res r;
	uint32_t del[] = { 2, 4, 5, 9 }, undel[] = { 5 }, gone[] = { 9 }, flagged[] = { 3 };

	for (int i = 0; i < 10; i++)
		deliver_small(f);
	flags_op(f, inbox, del, 4, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, &r);
	flags_op(f, inbox, undel, 1, STORE_FLAGS_DEL, STORE_FLAG_DELETED, NULL, 0, &r);
	flags_op(f, inbox, flagged, 1, STORE_FLAGS_SET, STORE_FLAG_FLAGGED | STORE_FLAG_SEEN,
		 NULL, 0, &r);
	expunge_op(f, inbox, gone, 1);

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_flags(f->store, inbox, collect_uid_flags, &l, &error), 0);
	assert_int_equal(l.count, 9);
	for (size_t i = 0; i < l.count; i++) {
		uint32_t want = l.uids[i] == 2 || l.uids[i] == 4 ? STORE_FLAG_DELETED
				: l.uids[i] == 3 ? STORE_FLAG_FLAGGED | STORE_FLAG_SEEN : 0;
		assert_int_equal(l.uids[i], i < 8 ? i + 1 : 10);
		assert_int_equal(l.flags[i], want);
	}

	/* \Deleted only: 5 lost it again, 9 is gone */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_deleted(f->store, inbox, 1, UINT32_MAX, collect_uid, &l,
						&error), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.uids[0], 2);
	assert_int_equal(l.uids[1], 4);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_deleted(f->store, inbox, 3, 10, collect_uid, &l, &error), 0);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.uids[0], 4);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_deleted(f->store, inbox, 3, 2, collect_uid, &l, &error), 0);
	assert_int_equal(l.count, 0);
	/* an appended message with \Deleted counts too */
	flags_op(f, inbox, (uint32_t[]){ 10 }, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, &r);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_deleted(f->store, inbox, 1, UINT32_MAX, collect_uid, &l,
						&error), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.uids[2], 10);
	/* empty and missing mailboxes */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_flags(f->store, status_of(f, "Junk").id, collect_uid_flags,
					      &l, &error), 0);
	assert_int_equal(store_msg_scan_deleted(f->store, 999999, 1, UINT32_MAX, collect_uid, &l,
						&error), 0);
	assert_int_equal(l.count, 0);
}

static void *deliver_thread(void *arg)
{
	struct fixture *f = arg;

	deliver_small(f);
	return NULL;
}

static size_t count_msgs(struct fixture *f, int64_t mailbox_id)
{
	struct msgs l;

	scan(f, mailbox_id, &l);
	return l.count;
}

/* Between store_read_begin and store_read_end every read sees the state
 * of the first one; pairs nest. */
static void test_read_snapshot(void **state)
{
	struct fixture *f = *state;
	int64_t inbox = status_of(f, "INBOX").id;
	struct store_mailbox_status st;
	const char *error = NULL;
	pthread_t t;

	deliver_small(f);
	assert_int_equal(store_read_begin(f->store, &error), 0);
	assert_int_equal(count_msgs(f, inbox), 1);
	/* another thread (its own connection) commits meanwhile */
	assert_int_equal(pthread_create(&t, NULL, deliver_thread, f), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(count_msgs(f, inbox), 1);
	assert_int_equal(store_read_begin(f->store, &error), 0);
	assert_int_equal(store_mailbox_find(f->store, f->alice, "INBOX", &st, &error), 1);
	assert_int_equal(st.uidnext, 2);
	store_read_end(f->store);
	/* the inner end does not end the snapshot */
	assert_int_equal(count_msgs(f, inbox), 1);
	store_read_end(f->store);
	assert_int_equal(count_msgs(f, inbox), 2);
	assert_int_equal(store_mailbox_find(f->store, f->alice, "INBOX", &st, &error), 1);
	assert_int_equal(st.uidnext, 3);
	/* an unmatched end is harmless, and writes work again */
	store_read_end(f->store);
	deliver_small(f);
	assert_int_equal(count_msgs(f, inbox), 3);
}

/* ---- schema migration ---- */

static void test_migrate_from_v1(void **state)
{
	struct fixture *f = *state;
	struct status_list l = { 0 };
	const char *error = NULL;
	char path[128];
	sqlite3 *db;

	store_close(f->store);
	f->store = NULL;
	/* Make it look like a schema 1 database. */
	snprintf(path, sizeof(path), "%s/petrel.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"DROP TABLE subscriptions; DROP TABLE msg_cache;"
		"DELETE FROM meta WHERE key = 'uidvalidity';"
		"UPDATE meta SET value = 1 WHERE key = 'schema_version';"
		"UPDATE mailboxes SET subscribed = (name <> 'Junk');",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	if (store_open(f->dir, &f->store, &error) < 0)
		fail_msg("store_open: %s", error);
	assert_int_equal(store_mailbox_list_status(f->store, f->alice, 1, collect_status, &l,
						   &error), 0);
	assert_int_equal(l.count, 5);
	assert_int_equal(find_status(&l, "Junk")->subscribed, 0);
	assert_int_equal(find_status(&l, "Sent")->subscribed, 1);
	/* The counter starts above the existing UIDVALIDITYs. */
	create_mailbox(f, "New");
	assert_true(status_of(f, "New").uidvalidity > status_of(f, "INBOX").uidvalidity);
}

/* 4 -> 5 adds the indexes of the bounded reads to an existing database;
 * the reads then work on the messages it already had. */
static void test_migrate_from_v4(void **state)
{
	struct fixture *f = *state;
	int64_t inbox = status_of(f, "INBOX").id;
	struct uid_flags l = { 0 };
	const char *error = NULL;
	char path[128];
	sqlite3 *db;
	uint32_t del[] = { 2, 3 };
	struct op_res r;

	for (int i = 0; i < 4; i++)
		deliver_small(f);
	flags_op(f, inbox, del, 2, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, &r);
	store_close(f->store);
	f->store = NULL;
	snprintf(path, sizeof(path), "%s/petrel.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"DROP INDEX messages_flags; DROP INDEX messages_deleted;"
		"UPDATE meta SET value = 4 WHERE key = 'schema_version';",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	if (store_open(f->dir, &f->store, &error) < 0)
		fail_msg("store_open: %s", error);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *stmt;
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT (SELECT value FROM meta WHERE key = 'schema_version'),"
		" (SELECT count(*) FROM sqlite_master WHERE type = 'index'"
		"  AND name IN ('messages_flags', 'messages_deleted'))", -1, &stmt, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(stmt, 0), 5);
	assert_int_equal(sqlite3_column_int(stmt, 1), 2);
	sqlite3_finalize(stmt);
	sqlite3_close(db);

	assert_int_equal(store_msg_scan_deleted(f->store, inbox, 1, UINT32_MAX, collect_uid, &l,
						&error), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.uids[0], 2);
	assert_int_equal(l.uids[1], 3);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_msg_scan_flags(f->store, inbox, collect_uid_flags, &l, &error), 0);
	assert_int_equal(l.count, 4);
	assert_int_equal(l.flags[1], STORE_FLAG_DELETED);
	/* opening again leaves it at 5 */
	store_close(f->store);
	f->store = NULL;
	if (store_open(f->dir, &f->store, &error) < 0)
		fail_msg("store_open: %s", error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mailbox_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_inbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unchangedsince, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_and_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_reader_ahead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ops_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msg_scan_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msg_get_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msg_scan_flags_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_v4, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
