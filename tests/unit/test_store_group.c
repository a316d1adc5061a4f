/* Unit tests for groups of deliveries stored all or none
 * (store_delivery_group_*, store_mail.h), which IMAP MULTIAPPEND uses
 * (RFC 3502 6.3.11: "no partial appending is permitted"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
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
	int64_t work;      /* mailbox "Work" */
};

struct op_done {
	bool called;
	int status;
};

static void op_cb(void *ctx, const struct store_op_result *res)
{
	struct op_done *r = ctx;

	r->called = true;
	r->status = res->status;
}

static struct store_mailbox_status status_of(struct fixture *f, const char *name)
{
	struct store_mailbox_status st;
	const char *error = NULL;

	if (store_mailbox_status(f->store, f->alice, name, &st, &error) != 1)
		fail_msg("no mailbox %s (%s)", name, error == NULL ? "" : error);
	return st;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct op_done r = { 0 };
	store_op_t *op;

	assert_non_null(f);
	store_fixture_open(f->dir, &f->store);
	f->alice = store_fixture_add_alice(f->store);
	op = store_op_new(f->store);
	store_op_mailbox_create(op, f->alice, "Work", STORE_SPECIAL_NONE);
	store_op_commit(op, op_cb, &r);
	assert_true(r.called);
	assert_int_equal(r.status, 0);
	f->work = status_of(f, "Work").id;
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

static unsigned char *make_content(size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 31u + seed) ^ (i >> 9));
	return buf;
}

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

/* Files under DATA_DIR/sub (blobs, tmp), the store's lock file aside. */
static size_t count_files(struct fixture *f, const char *sub)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s/.lock", f->dir, sub);
	file_count = access(path, F_OK) == 0 ? (size_t)-1 : 0;
	snprintf(path, sizeof(path), "%s/%s", f->dir, sub);
	if (nftw(path, count_entry, 16, FTW_PHYS) < 0)
		return 0;
	return file_count;
}

/* Descriptors open in this process (a parked delivery holds none). */
static size_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

#define MAX_UIDS 2048

struct group_result {
	bool called;
	int status;
	char error[256];
	uint32_t n;
	uint32_t uids[MAX_UIDS];
};

static void group_cb(void *ctx, const struct store_delivery_result *res)
{
	struct group_result *r = ctx;

	r->called = true;
	r->status = res->status;
	snprintf(r->error, sizeof(r->error), "%s", res->error == NULL ? "" : res->error);
	r->n = res->n_rcpts;
	for (uint32_t i = 0; i < res->n_rcpts && i < MAX_UIDS; i++)
		r->uids[i] = res->uids[i];
}

/* A delivery of content into mailbox_id with flags. */
static store_delivery_t *message(struct fixture *f, int64_t mailbox_id, const void *content,
				 size_t len, uint32_t flags, const char *keywords)
{
	store_delivery_t *d = store_delivery_new(f->store);
	const char *error = NULL;

	assert_non_null(d);
	if (store_delivery_write(d, content, len, &error) < 0)
		fail_msg("store_delivery_write: %s", error);
	store_delivery_add_mailbox(d, mailbox_id, flags, keywords);
	return d;
}

static void add_ok(store_delivery_group_t *g, store_delivery_t *d, time_t date)
{
	const char *error = NULL;

	if (store_delivery_group_add(g, d, date, &error) < 0)
		fail_msg("store_delivery_group_add: %s", error);
}

struct msgs {
	size_t count;
	struct store_msg items[MAX_UIDS];
	char keywords[MAX_UIDS][32];
};

static void collect_msg(void *ctx, const struct store_msg *m)
{
	struct msgs *l = ctx;

	assert_true(l->count < MAX_UIDS);
	l->items[l->count] = *m;
	snprintf(l->keywords[l->count], sizeof(l->keywords[0]), "%s", m->keywords);
	l->items[l->count].keywords = l->keywords[l->count];
	l->count++;
}

static struct msgs *scan(struct fixture *f, int64_t mailbox_id)
{
	static struct msgs l;
	const char *error = NULL;

	memset(&l, 0, sizeof(l));
	if (store_msg_scan(f->store, mailbox_id, 1, collect_msg, &l, &error) < 0)
		fail_msg("store_msg_scan: %s", error);
	return &l;
}

static void assert_content(struct fixture *f, int64_t blob_id, const void *want, size_t len)
{
	unsigned char *buf = malloc(len + 1);
	const char *error = NULL;
	size_t got = 0;

	assert_non_null(buf);
	if (store_blob_read(f->store, blob_id, 0, buf, len + 1, &got, &error) < 0)
		fail_msg("store_blob_read: %s", error);
	assert_int_equal(got, len);
	assert_memory_equal(buf, want, len);
	free(buf);
}

/* ---- tests ---- */

/* Three messages, one of them spilled to a file: all stored, with their
 * own flags and dates, consecutive uids in add order. */
static void test_group_all_stored(void **state)
{
	struct fixture *f = *state;
	static const char m1[] = "Subject: one\r\n\r\n1\r\n", m3[] = "Subject: three\r\n\r\n3\r\n";
	unsigned char *big = make_content(BIG_SIZE, 9);
	store_delivery_group_t *g = store_delivery_group_new(f->store);
	struct group_result r = { 0 };
	struct msgs *l;

	assert_non_null(g);
	add_ok(g, message(f, f->work, m1, sizeof(m1) - 1, STORE_FLAG_SEEN, "$Label1"), 1000);
	add_ok(g, message(f, f->work, big, BIG_SIZE, 0, NULL), 2000);
	add_ok(g, message(f, f->work, m3, sizeof(m3) - 1, STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT,
			  NULL),
	       3000);
	assert_int_equal(store_delivery_group_count(g), 3);
	store_delivery_group_commit(g, group_cb, &r);
	assert_true(r.called);
	if (r.status != 0)
		fail_msg("group failed: %s", r.error);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.uids[0], 1);
	assert_int_equal(r.uids[1], 2);
	assert_int_equal(r.uids[2], 3);

	l = scan(f, f->work);
	assert_int_equal(l->count, 3);
	assert_int_equal(l->items[0].flags, STORE_FLAG_SEEN);
	assert_string_equal(l->items[0].keywords, "$Label1");
	assert_int_equal(l->items[0].internaldate, 1000);
	assert_int_equal(l->items[1].flags, 0);
	assert_int_equal(l->items[1].internaldate, 2000);
	assert_int_equal(l->items[1].size, BIG_SIZE);
	assert_int_equal(l->items[2].flags, STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT);
	assert_int_equal(l->items[2].internaldate, 3000);
	assert_true(l->items[0].modseq < l->items[1].modseq);
	assert_true(l->items[1].modseq < l->items[2].modseq);
	assert_int_equal(l->items[2].modseq, status_of(f, "Work").highestmodseq);
	assert_content(f, l->items[0].blob_id, m1, sizeof(m1) - 1);
	assert_content(f, l->items[1].blob_id, big, BIG_SIZE);
	assert_content(f, l->items[2].blob_id, m3, sizeof(m3) - 1);
	assert_int_equal(status_of(f, "Work").uidnext, 4);
	assert_int_equal(count_files(f, "blobs"), 1);
	assert_int_equal(count_files(f, "tmp"), 0);
	free(big);
}

/* A message whose mailbox is gone (deleted meanwhile) in the middle: the
 * others, stored before it in the same savepoint, are undone too; the
 * spilled message's file is removed; the uids are not used up. */
static void test_group_failure_midway(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 3);
	store_delivery_group_t *g = store_delivery_group_new(f->store);
	struct group_result r = { 0 };
	struct store_mailbox_status before = status_of(f, "Work");

	add_ok(g, message(f, f->work, big, BIG_SIZE, 0, NULL), 1);
	add_ok(g, message(f, f->work, "a", 1, 0, NULL), 1);
	add_ok(g, message(f, 31337, "b", 1, 0, NULL), 1);
	add_ok(g, message(f, f->work, "c", 1, 0, NULL), 1);
	store_delivery_group_commit(g, group_cb, &r);
	assert_true(r.called);
	assert_int_equal(r.status, -1);
	assert_non_null(strstr(r.error, "message 3"));
	for (uint32_t i = 0; i < r.n; i++)
		assert_int_equal(r.uids[i], 0);
	assert_int_equal(scan(f, f->work)->count, 0);
	assert_int_equal(status_of(f, "Work").uidnext, before.uidnext);
	assert_int_equal(status_of(f, "Work").highestmodseq, before.highestmodseq);
	assert_int_equal(count_files(f, "blobs"), 0);
	assert_int_equal(count_files(f, "tmp"), 0);

	/* the mailbox still takes a group afterwards, from uid 1 */
	g = store_delivery_group_new(f->store);
	add_ok(g, message(f, f->work, "d", 1, 0, NULL), 1);
	add_ok(g, message(f, f->work, "e", 1, 0, NULL), 1);
	memset(&r, 0, sizeof(r));
	store_delivery_group_commit(g, group_cb, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.uids[0], 1);
	assert_int_equal(r.uids[1], 2);
	free(big);
}

/* A delivery that failed before it was added (no target here) fails the
 * group at once: the commit then stores nothing. An empty group fails. */
static void test_group_bad_member(void **state)
{
	struct fixture *f = *state;
	store_delivery_group_t *g = store_delivery_group_new(f->store);
	struct group_result r = { 0 };
	store_delivery_t *d;
	const char *error = NULL;

	add_ok(g, message(f, f->work, "a", 1, 0, NULL), 1);
	d = store_delivery_new(f->store);
	assert_int_equal(store_delivery_write(d, "b", 1, &error), 0);
	assert_int_equal(store_delivery_group_add(g, d, 1, &error), -1);
	assert_non_null(strstr(error, "message 2"));
	add_ok(g, message(f, f->work, "c", 1, 0, NULL), 1);
	store_delivery_group_commit(g, group_cb, &r);
	assert_true(r.called);
	assert_int_equal(r.status, -1);
	assert_int_equal(scan(f, f->work)->count, 0);

	g = store_delivery_group_new(f->store);
	memset(&r, 0, sizeof(r));
	store_delivery_group_commit(g, group_cb, &r);
	assert_true(r.called);
	assert_int_equal(r.status, -1);
	assert_int_equal(r.n, 0);
}

/* Aborting a group drops every delivery and its spill file. */
static void test_group_abort(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 1);
	store_delivery_group_t *g = store_delivery_group_new(f->store);
	size_t fds = open_fds();

	add_ok(g, message(f, f->work, big, BIG_SIZE, 0, NULL), 1);
	add_ok(g, message(f, f->work, big, BIG_SIZE, 0, NULL), 1);
	assert_int_equal(count_files(f, "tmp"), 2);
	/* parked: the spill files are closed */
	assert_int_equal(open_fds(), fds);
	store_delivery_group_abort(g);
	store_delivery_group_abort(NULL);
	assert_int_equal(count_files(f, "tmp"), 0);
	assert_int_equal(scan(f, f->work)->count, 0);
	free(big);
}

/* Many small messages: beyond STORE_GROUP_MEM_MAX they go to files, and
 * every one is stored with its own content. */
static void test_group_memory_bound(void **state)
{
	struct fixture *f = *state;
	enum { N = 40, SIZE = 64 * 1024 };
	unsigned char *content[N];
	store_delivery_group_t *g = store_delivery_group_new(f->store);
	struct group_result r = { 0 };
	struct msgs *l;

	for (int i = 0; i < N; i++) {
		content[i] = make_content(SIZE, (unsigned)i);
		add_ok(g, message(f, f->work, content[i], SIZE, 0, NULL), i);
	}
	/* 40 * 64 KiB = 2.5 MiB: all but the first 1 MiB went to files */
	assert_int_equal(count_files(f, "tmp"), N - STORE_GROUP_MEM_MAX / SIZE);
	store_delivery_group_commit(g, group_cb, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n, N);
	l = scan(f, f->work);
	assert_int_equal(l->count, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r.uids[i], (uint32_t)i + 1);
		assert_int_equal(l->items[i].internaldate, i);
		assert_content(f, l->items[i].blob_id, content[i], SIZE);
		free(content[i]);
	}
	assert_int_equal(count_files(f, "tmp"), 0);
}

/* Through the committer, with single deliveries to the same mailbox
 * queued before and after: the group's uids are consecutive. */
struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;
};

struct waited {
	struct waiter *w;
	struct group_result r;
};

static void waited_cb(void *ctx, const struct store_delivery_result *res)
{
	struct waited *x = ctx;

	group_cb(&x->r, res);
	pthread_mutex_lock(&x->w->lock);
	x->w->pending--;
	pthread_cond_signal(&x->w->cond);
	pthread_mutex_unlock(&x->w->lock);
}

static void test_group_with_committer(void **state)
{
	struct fixture *f = *state;
	enum { ROUNDS = 20, PER_GROUP = 5 };
	static struct waited groups[ROUNDS], singles[2 * ROUNDS];
	struct waiter w = { .pending = 3 * ROUNDS };
	const char *error = NULL;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	if (store_start_committer(f->store, &error) < 0)
		fail_msg("store_start_committer: %s", error);
	for (int i = 0; i < ROUNDS; i++) {
		store_delivery_group_t *g = store_delivery_group_new(f->store);

		singles[2 * i].w = singles[2 * i + 1].w = groups[i].w = &w;
		store_delivery_commit(message(f, f->work, "s", 1, 0, NULL), 0, waited_cb,
				      &singles[2 * i]);
		for (int k = 0; k < PER_GROUP; k++)
			add_ok(g, message(f, f->work, "g", 1, 0, NULL), 0);
		store_delivery_group_commit(g, waited_cb, &groups[i]);
		store_delivery_commit(message(f, f->work, "t", 1, 0, NULL), 0, waited_cb,
				      &singles[2 * i + 1]);
	}
	pthread_mutex_lock(&w.lock);
	while (w.pending > 0)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	for (int i = 0; i < ROUNDS; i++) {
		assert_int_equal(groups[i].r.status, 0);
		assert_int_equal(groups[i].r.n, PER_GROUP);
		for (int k = 1; k < PER_GROUP; k++)
			assert_int_equal(groups[i].r.uids[k], groups[i].r.uids[0] + (uint32_t)k);
		/* queue order is commit order */
		assert_true(singles[2 * i].r.uids[0] < groups[i].r.uids[0]);
		assert_true(singles[2 * i + 1].r.uids[0] > groups[i].r.uids[PER_GROUP - 1]);
	}
	assert_int_equal(scan(f, f->work)->count, ROUNDS * (PER_GROUP + 2));
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group_all_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_failure_midway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_bad_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_memory_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_with_committer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
