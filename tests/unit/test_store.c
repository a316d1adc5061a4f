/* Unit tests for the store (src/store/), through store.h only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "store_fixture.h"

#define BIG_SIZE (300u * 1024u)

struct fixture {
	char dir[STORE_FIXTURE_DIR_MAX];
	store_t *store;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	store_fixture_open(f->dir, &f->store);
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

struct names {
	char items[16][128];
	size_t count;
};

static void collect_name(void *ctx, const char *name)
{
	struct names *n = ctx;

	assert_true(n->count < 16);
	snprintf(n->items[n->count++], sizeof(n->items[0]), "%s", name);
}

static int64_t add_user(store_t *store, const char *address)
{
	const char *error = NULL;
	int64_t id = 0;

	if (store_user_add(store, address, "$y$fake", &error) < 0)
		fail_msg("store_user_add %s: %s", address, error);
	assert_int_equal(store_user_lookup(store, address, &id, &error), 1);
	return id;
}

struct sync_result {
	bool called;
	int status;
	uint32_t n_rcpts;
	uint32_t uids[8];
};

static void sync_cb(void *ctx, const struct store_delivery_result *res)
{
	struct sync_result *r = ctx;

	r->called = true;
	r->status = res->status;
	r->n_rcpts = res->n_rcpts;
	for (uint32_t i = 0; i < res->n_rcpts && i < 8; i++)
		r->uids[i] = res->uids[i];
}

/* Deliver content (written in uneven pieces) synchronously. */
static void deliver(store_t *store, const void *content, size_t len,
		    const char *subject, const int64_t *rcpts, size_t n_rcpts,
		    struct sync_result *r)
{
	const unsigned char *p = content;
	store_delivery_t *d = store_delivery_new(store);
	const char *error = NULL;
	size_t off = 0, piece = 1;

	assert_non_null(d);
	while (off < len) {
		size_t n = len - off < piece ? len - off : piece;

		if (store_delivery_write(d, p + off, n, &error) < 0)
			fail_msg("store_delivery_write: %s", error);
		off += n;
		piece = piece * 3 + 7;
	}
	assert_int_equal(store_delivery_size(d), len);
	if (subject != NULL)
		store_delivery_set_subject(d, subject);
	for (size_t i = 0; i < n_rcpts; i++)
		store_delivery_add_rcpt(d, rcpts[i]);
	memset(r, 0, sizeof(*r));
	store_delivery_commit(d, 1700000000, sync_cb, r);
	assert_true(r->called);
}

static unsigned char *make_content(size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 31u + seed) ^ (i >> 9));
	return buf;
}

/* The message's bytes as store_message_write streams them. */
static void assert_message_equals(store_t *store, int64_t user_id, uint32_t uid,
				  const void *expected, size_t len)
{
	const char *error = NULL;
	FILE *out = tmpfile();
	unsigned char *got = malloc(len + 1);

	assert_non_null(out);
	assert_non_null(got);
	if (store_message_write(store, user_id, "INBOX", uid, out, &error) != 1)
		fail_msg("store_message_write: %s", error);
	assert_int_equal(ftell(out), (long)len);
	rewind(out);
	assert_int_equal(fread(got, 1, len + 1, out), len);
	assert_memory_equal(got, expected, len);
	free(got);
	fclose(out);
}

static int count_entry(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw);
static size_t file_count;

static int count_entry(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	(void)path;
	(void)st;
	(void)ftw;
	if (flag == FTW_F)
		file_count++;
	return 0;
}

static size_t count_files(const char *dir, const char *sub)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	file_count = 0;
	assert_int_equal(nftw(path, count_entry, 16, FTW_PHYS), 0);
	return file_count;
}

struct messages {
	struct store_message_info items[256];
	char subjects[256][32];
	size_t count;
};

static void collect_message(void *ctx, const struct store_message_info *msg)
{
	struct messages *m = ctx;

	assert_true(m->count < 256);
	m->items[m->count] = *msg;
	snprintf(m->subjects[m->count], sizeof(m->subjects[0]), "%s", msg->subject);
	m->items[m->count].subject = m->subjects[m->count];
	m->count++;
}

static void list_inbox(store_t *store, int64_t user_id, struct messages *m)
{
	const char *error = NULL;

	m->count = 0;
	if (store_message_list(store, user_id, "INBOX", collect_message, m, &error) != 1)
		fail_msg("store_message_list: %s", error);
}

/* ---- domains ---- */

static void test_domain_add_list_exists(void **state)
{
	struct fixture *f = *state;
	struct names names = { .count = 0 };
	const char *error = NULL;

	assert_int_equal(store_domain_add(f->store, "Example.ORG", &error), 0);
	assert_int_equal(store_domain_add(f->store, "a.example", &error), 0);
	assert_int_equal(store_domain_add(f->store, "example.org", &error), -1);
	assert_non_null(strstr(error, "already exists"));
	assert_int_equal(store_domain_add(f->store, "", &error), -1);
	assert_int_equal(store_domain_add(f->store, "bad domain", &error), -1);

	assert_int_equal(store_domain_list(f->store, collect_name, &names, &error), 0);
	assert_int_equal(names.count, 2);
	assert_string_equal(names.items[0], "a.example");
	assert_string_equal(names.items[1], "example.org");

	assert_int_equal(store_domain_exists(f->store, "EXAMPLE.org", &error), 1);
	assert_int_equal(store_domain_exists(f->store, "example.com", &error), 0);
}

static void test_domain_del(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	add_user(f->store, "alice@example.org");
	assert_int_equal(store_domain_del(f->store, "example.org", &error), -1);
	assert_non_null(strstr(error, "1 user"));
	assert_int_equal(store_domain_exists(f->store, "example.org", &error), 1);

	assert_int_equal(store_user_del(f->store, "alice@example.org", &error), 0);
	assert_int_equal(store_domain_del(f->store, "EXAMPLE.ORG", &error), 0);
	assert_int_equal(store_domain_exists(f->store, "example.org", &error), 0);
	assert_int_equal(store_domain_del(f->store, "example.org", &error), -1);
}

/* ---- users ---- */

struct mailboxes {
	struct store_mailbox_info items[8];
	char names[8][32];
	size_t count;
};

static void collect_mailbox(void *ctx, const struct store_mailbox_info *mb)
{
	struct mailboxes *m = ctx;

	assert_true(m->count < 8);
	m->items[m->count] = *mb;
	snprintf(m->names[m->count], sizeof(m->names[0]), "%s", mb->name);
	m->items[m->count].name = m->names[m->count];
	m->count++;
}

static void test_user_add_creates_mailboxes(void **state)
{
	struct fixture *f = *state;
	struct mailboxes mbs = { .count = 0 };
	const char *error = NULL;
	static const struct {
		const char *name;
		enum store_special_use special_use;
	} expected[] = {
		{ "INBOX", STORE_SPECIAL_NONE }, { "Drafts", STORE_SPECIAL_DRAFTS },
		{ "Junk", STORE_SPECIAL_JUNK }, { "Sent", STORE_SPECIAL_SENT },
		{ "Trash", STORE_SPECIAL_TRASH },
	};
	int64_t id;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	id = add_user(f->store, "alice@example.org");
	assert_int_equal(store_mailbox_list(f->store, id, collect_mailbox, &mbs, &error), 0);
	assert_int_equal(mbs.count, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_string_equal(mbs.items[i].name, expected[i].name);
		assert_int_equal(mbs.items[i].special_use, expected[i].special_use);
		assert_int_not_equal(mbs.items[i].uidvalidity, 0);
		assert_int_equal(mbs.items[i].uidnext, 1);
		assert_int_equal(mbs.items[i].messages, 0);
	}
}

static void test_user_lookup_and_errors(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;
	int64_t id, id2;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	assert_int_equal(store_user_add(f->store, "nobody@example.com", "$y$x", &error), -1);
	assert_int_equal(store_user_add(f->store, "@example.org", "$y$x", &error), -1);
	assert_int_equal(store_user_add(f->store, "alice@", "$y$x", &error), -1);
	assert_int_equal(store_user_add(f->store, "alice", "$y$x", &error), -1);

	id = add_user(f->store, "Alice@Example.org");
	assert_int_equal(store_user_add(f->store, "ALICE@example.org", "$y$x", &error), -1);
	assert_non_null(strstr(error, "already exists"));
	assert_int_equal(store_user_lookup(f->store, "alice@EXAMPLE.ORG", &id2, &error), 1);
	assert_int_equal(id2, id);
	assert_int_equal(store_user_lookup(f->store, "bob@example.org", &id2, &error), 0);
	assert_int_equal(store_user_lookup(f->store, "alice@example.com", &id2, &error), 0);

	/* Split at the last '@'. */
	id = add_user(f->store, "\"a@b\"@example.org");
	assert_int_equal(store_user_lookup(f->store, "\"a@b\"@example.org", &id2, &error), 1);
	assert_int_equal(id2, id);

	assert_int_equal(store_user_del(f->store, "alice@example.org", &error), 0);
	assert_int_equal(store_user_lookup(f->store, "alice@example.org", &id2, &error), 0);
	assert_int_equal(store_user_del(f->store, "alice@example.org", &error), -1);
}

static void test_user_password_hash(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;
	char *hash = NULL;
	int64_t id = 0, id2 = 0;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	assert_int_equal(store_user_add(f->store, "alice@example.org", "$y$first", &error), 0);
	assert_int_equal(store_user_password_hash(f->store, "ALICE@example.org", &id,
						  &hash, &error), 1);
	assert_string_equal(hash, "$y$first");
	free(hash);
	assert_int_equal(store_user_lookup(f->store, "alice@example.org", &id2, &error), 1);
	assert_int_equal(id, id2);

	assert_int_equal(store_user_set_password(f->store, "alice@example.org",
						 "$y$second", &error), 0);
	assert_int_equal(store_user_password_hash(f->store, "alice@example.org", &id,
						  &hash, &error), 1);
	assert_string_equal(hash, "$y$second");
	free(hash);

	assert_int_equal(store_user_password_hash(f->store, "bob@example.org", &id,
						  &hash, &error), 0);
	assert_null(hash);
	assert_int_equal(store_user_set_password(f->store, "bob@example.org",
						 "$y$x", &error), -1);
}

struct reentrant {
	store_t *store;
	struct names names;
	int found;
};

/* A list callback may call back into the store (e.g. the CLI). */
static void lookup_each(void *ctx, const char *address)
{
	struct reentrant *r = ctx;
	const char *error = NULL;
	int64_t id;

	collect_name(&r->names, address);
	r->found += store_user_lookup(r->store, address, &id, &error);
}

static void test_user_list(void **state)
{
	struct fixture *f = *state;
	struct reentrant r = { .store = f->store };
	struct names names = { .count = 0 };
	const char *error = NULL;

	assert_int_equal(store_domain_add(f->store, "b.example", &error), 0);
	assert_int_equal(store_domain_add(f->store, "a.example", &error), 0);
	add_user(f->store, "zed@a.example");
	add_user(f->store, "bob@b.example");
	add_user(f->store, "Alice@b.example");

	assert_int_equal(store_user_list(f->store, NULL, lookup_each, &r, &error), 0);
	assert_int_equal(r.names.count, 3);
	assert_string_equal(r.names.items[0], "Alice@b.example");
	assert_string_equal(r.names.items[1], "bob@b.example");
	assert_string_equal(r.names.items[2], "zed@a.example");
	assert_int_equal(r.found, 3);

	assert_int_equal(store_user_list(f->store, "A.EXAMPLE", collect_name, &names,
					 &error), 0);
	assert_int_equal(names.count, 1);
	assert_string_equal(names.items[0], "zed@a.example");
}

/* ---- delivery ---- */

static void test_delivery_small(void **state)
{
	struct fixture *f = *state;
	static const char msg[] = "Subject: hello\r\n\r\nHi there.\r\n";
	struct messages m;
	struct sync_result r;
	const char *error = NULL;
	int64_t alice;
	FILE *out;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	alice = add_user(f->store, "alice@example.org");
	deliver(f->store, msg, sizeof(msg) - 1, "hello", &alice, 1, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n_rcpts, 1);
	assert_int_equal(r.uids[0], 1);

	list_inbox(f->store, alice, &m);
	assert_int_equal(m.count, 1);
	assert_int_equal(m.items[0].uid, 1);
	assert_int_equal(m.items[0].size, sizeof(msg) - 1);
	assert_int_equal(m.items[0].internaldate, 1700000000);
	assert_string_equal(m.items[0].subject, "hello");
	assert_int_equal(m.items[0].flags, 0);
	assert_message_equals(f->store, alice, 1, msg, sizeof(msg) - 1);
	assert_int_equal(count_files(f->dir, "blobs"), 0);

	/* "INBOX" is case-insensitive, other names are not. */
	m.count = 0;
	assert_int_equal(store_message_list(f->store, alice, "inbox", collect_message,
					    &m, &error), 1);
	assert_int_equal(m.count, 1);
	assert_int_equal(store_message_list(f->store, alice, "Sent", collect_message,
					    &m, &error), 1);
	assert_int_equal(store_message_list(f->store, alice, "sent", collect_message,
					    &m, &error), 0);
	assert_int_equal(store_message_list(f->store, alice, "Nope", collect_message,
					    &m, &error), 0);
	out = tmpfile();
	assert_int_equal(store_message_write(f->store, alice, "INBOX", 2, out, &error), 0);
	assert_int_equal(store_message_write(f->store, alice, "Nope", 1, out, &error), 0);
	assert_int_equal(ftell(out), 0);
	fclose(out);
}

static void test_delivery_empty_and_no_subject(void **state)
{
	struct fixture *f = *state;
	struct messages m;
	struct sync_result r;
	const char *error = NULL;
	int64_t alice;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	alice = add_user(f->store, "alice@example.org");
	deliver(f->store, "", 0, NULL, &alice, 1, &r);
	assert_int_equal(r.status, 0);
	list_inbox(f->store, alice, &m);
	assert_int_equal(m.count, 1);
	assert_int_equal(m.items[0].size, 0);
	assert_string_equal(m.items[0].subject, "");
	assert_message_equals(f->store, alice, 1, "", 0);
}

static void test_delivery_large_spills_to_file(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 7);
	struct messages m;
	struct sync_result r;
	const char *error = NULL;
	int64_t alice;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	alice = add_user(f->store, "alice@example.org");
	deliver(f->store, big, BIG_SIZE, "big", &alice, 1, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.uids[0], 1);
	assert_int_equal(count_files(f->dir, "blobs"), 1);
	assert_int_equal(count_files(f->dir, "tmp"), 1);   /* only tmp/.lock */

	list_inbox(f->store, alice, &m);
	assert_int_equal(m.count, 1);
	assert_int_equal(m.items[0].size, BIG_SIZE);
	assert_message_equals(f->store, alice, 1, big, BIG_SIZE);

	/* The last reference gone, the file goes too. */
	assert_int_equal(store_user_del(f->store, "alice@example.org", &error), 0);
	assert_int_equal(count_files(f->dir, "blobs"), 0);
	free(big);
}

static void test_delivery_exactly_inline_limit(void **state)
{
	struct fixture *f = *state;
	size_t len = 128u * 1024u;
	unsigned char *content = make_content(len + 1, 3);
	struct sync_result r;
	const char *error = NULL;
	int64_t alice;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	alice = add_user(f->store, "alice@example.org");
	deliver(f->store, content, len, NULL, &alice, 1, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(count_files(f->dir, "blobs"), 0);
	deliver(f->store, content, len + 1, NULL, &alice, 1, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(count_files(f->dir, "blobs"), 1);
	assert_message_equals(f->store, alice, 1, content, len);
	assert_message_equals(f->store, alice, 2, content, len + 1);
	free(content);
}

static void test_two_recipients_share_blob(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 11);
	struct sync_result r;
	struct messages m;
	const char *error = NULL;
	int64_t rcpts[2];

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	rcpts[0] = add_user(f->store, "alice@example.org");
	rcpts[1] = add_user(f->store, "bob@example.org");
	deliver(f->store, big, BIG_SIZE, NULL, rcpts, 2, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n_rcpts, 2);
	assert_int_equal(r.uids[0], 1);
	assert_int_equal(r.uids[1], 1);
	assert_int_equal(count_files(f->dir, "blobs"), 1);
	list_inbox(f->store, rcpts[1], &m);
	assert_int_equal(m.count, 1);

	/* One reference dropped: the content stays for the other. */
	assert_int_equal(store_user_del(f->store, "alice@example.org", &error), 0);
	assert_int_equal(count_files(f->dir, "blobs"), 1);
	assert_message_equals(f->store, rcpts[1], 1, big, BIG_SIZE);
	assert_int_equal(store_user_del(f->store, "bob@example.org", &error), 0);
	assert_int_equal(count_files(f->dir, "blobs"), 0);
	free(big);
}

static void test_duplicate_rcpt_stored_once(void **state)
{
	struct fixture *f = *state;
	static const char msg[] = "Subject: dup\r\n\r\nx\r\n";
	struct sync_result r;
	struct messages m;
	const char *error = NULL;
	int64_t alice, bob, rcpts[3];

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	alice = add_user(f->store, "alice@example.org");
	bob = add_user(f->store, "bob@example.org");
	deliver(f->store, msg, sizeof(msg) - 1, NULL, &bob, 1, &r);
	rcpts[0] = alice;
	rcpts[1] = bob;
	rcpts[2] = alice;
	deliver(f->store, msg, sizeof(msg) - 1, NULL, rcpts, 3, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n_rcpts, 3);
	assert_int_equal(r.uids[0], 1);
	assert_int_equal(r.uids[1], 2);
	assert_int_equal(r.uids[2], 1);
	list_inbox(f->store, alice, &m);
	assert_int_equal(m.count, 1);
	list_inbox(f->store, bob, &m);
	assert_int_equal(m.count, 2);
}

static void test_uids_ascending(void **state)
{
	struct fixture *f = *state;
	struct mailboxes mbs = { .count = 0 };
	struct sync_result r;
	struct messages m;
	const char *error = NULL;
	int64_t alice;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	alice = add_user(f->store, "alice@example.org");
	for (uint32_t i = 1; i <= 3; i++) {
		deliver(f->store, "x", 1, NULL, &alice, 1, &r);
		assert_int_equal(r.status, 0);
		assert_int_equal(r.uids[0], i);
	}
	list_inbox(f->store, alice, &m);
	assert_int_equal(m.count, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(m.items[i].uid, i + 1);
		if (i > 0)
			assert_true(m.items[i].modseq > m.items[i - 1].modseq);
	}
	assert_int_equal(store_mailbox_list(f->store, alice, collect_mailbox, &mbs, &error), 0);
	assert_string_equal(mbs.items[0].name, "INBOX");
	assert_int_equal(mbs.items[0].uidnext, 4);
	assert_int_equal(mbs.items[0].messages, 3);
	assert_int_equal(mbs.items[0].highestmodseq, m.items[2].modseq);
}

static void test_delivery_failures(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 5);
	struct sync_result r;
	const char *error = NULL;
	int64_t ghost = 999999;
	store_delivery_t *d;

	/* Unknown recipient: fails alone, and leaves no file behind. */
	deliver(f->store, big, BIG_SIZE, NULL, &ghost, 1, &r);
	assert_int_equal(r.status, -1);
	assert_int_equal(count_files(f->dir, "blobs"), 0);
	/* No recipient at all. */
	deliver(f->store, "x", 1, NULL, NULL, 0, &r);
	assert_int_equal(r.status, -1);

	/* Aborted after spilling: the temporary file goes away. */
	d = store_delivery_new(f->store);
	assert_int_equal(store_delivery_write(d, big, BIG_SIZE, &error), 0);
	assert_int_equal(count_files(f->dir, "tmp"), 2);
	store_delivery_abort(d);
	assert_int_equal(count_files(f->dir, "tmp"), 1);
	store_delivery_abort(NULL);
	free(big);
}

/* ---- the committer ---- */

#define N_THREADS 4
#define PER_THREAD 50

struct concurrent {
	store_t *store;
	int64_t user_id;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned done, failed;
	bool seen[N_THREADS * PER_THREAD + 1];
	unsigned char *big;
};

static void concurrent_cb(void *ctx, const struct store_delivery_result *res)
{
	struct concurrent *c = ctx;

	pthread_mutex_lock(&c->lock);
	if (res->status != 0 || res->n_rcpts != 1 || res->uids[0] == 0 ||
	    res->uids[0] > N_THREADS * PER_THREAD || c->seen[res->uids[0]])
		c->failed++;
	else
		c->seen[res->uids[0]] = true;
	c->done++;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void *submit_thread(void *arg)
{
	struct concurrent *c = arg;
	const char *error = NULL;
	char msg[64];

	for (int i = 0; i < PER_THREAD; i++) {
		store_delivery_t *d = store_delivery_new(c->store);
		int len = snprintf(msg, sizeof(msg), "Subject: %d\r\n\r\n", i);

		if (d == NULL || store_delivery_write(d, msg, (size_t)len, &error) < 0)
			return "write failed";
		/* Some large ones, to sync files inside batches too. */
		if (i % 10 == 0 && store_delivery_write(d, c->big, BIG_SIZE, &error) < 0)
			return "write failed";
		store_delivery_add_rcpt(d, c->user_id);
		store_delivery_commit(d, 1700000000 + i, concurrent_cb, c);
	}
	return NULL;
}

static void test_committer_concurrent(void **state)
{
	struct fixture *f = *state;
	struct concurrent c = { .store = f->store };
	pthread_t threads[N_THREADS];
	static struct messages m;
	const char *error = NULL;
	void *ret;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	c.user_id = add_user(f->store, "alice@example.org");
	c.big = make_content(BIG_SIZE, 1);
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	if (store_start_committer(f->store, &error) < 0)
		fail_msg("store_start_committer: %s", error);
	assert_int_equal(store_start_committer(f->store, &error), -1);

	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, submit_thread, &c), 0);
	for (int i = 0; i < N_THREADS; i++) {
		assert_int_equal(pthread_join(threads[i], &ret), 0);
		assert_null(ret);
	}
	pthread_mutex_lock(&c.lock);
	while (c.done < N_THREADS * PER_THREAD)
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);
	assert_int_equal(c.failed, 0);

	list_inbox(f->store, c.user_id, &m);
	assert_int_equal(m.count, N_THREADS * PER_THREAD);
	for (size_t i = 0; i < m.count; i++)
		assert_int_equal(m.items[i].uid, i + 1);
	assert_int_equal(count_files(f->dir, "blobs"), N_THREADS * PER_THREAD / 10);
	assert_int_equal(count_files(f->dir, "tmp"), 1);

	pthread_mutex_destroy(&c.lock);
	pthread_cond_destroy(&c.cond);
	free(c.big);
}

/* store_close() finishes what was queued before it returns. */
static void test_close_drains_queue(void **state)
{
	struct fixture *f = *state;
	struct sync_result results[20];
	struct messages m;
	const char *error = NULL;
	int64_t alice;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	alice = add_user(f->store, "alice@example.org");
	assert_int_equal(store_start_committer(f->store, &error), 0);
	for (int i = 0; i < 20; i++) {
		store_delivery_t *d = store_delivery_new(f->store);

		assert_int_equal(store_delivery_write(d, "x", 1, &error), 0);
		store_delivery_add_rcpt(d, alice);
		memset(&results[i], 0, sizeof(results[i]));
		store_delivery_commit(d, 0, sync_cb, &results[i]);
	}
	store_close(f->store);
	for (int i = 0; i < 20; i++) {
		assert_true(results[i].called);
		assert_int_equal(results[i].status, 0);
	}
	if (store_open(f->dir, &f->store, &error) < 0)
		fail_msg("store_open: %s", error);
	list_inbox(f->store, alice, &m);
	assert_int_equal(m.count, 20);
}

/* ---- opening ---- */

static void test_reopen_keeps_data_and_cleans_tmp(void **state)
{
	struct fixture *f = *state;
	const char *error = NULL;
	char path[256];
	int64_t id;
	int fd;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	add_user(f->store, "alice@example.org");
	store_close(f->store);
	f->store = NULL;

	snprintf(path, sizeof(path), "%s/tmp/spill-leftover", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	if (store_open(f->dir, &f->store, &error) < 0)
		fail_msg("store_open: %s", error);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(store_user_lookup(f->store, "alice@example.org", &id, &error), 1);
}

/* A second open store (another process, here simulated in-process) must
 * not delete the first one's spill files. */
static void test_second_open_keeps_spills(void **state)
{
	struct fixture *f = *state;
	unsigned char *big = make_content(BIG_SIZE, 9);
	struct sync_result r;
	const char *error = NULL;
	store_t *second = NULL;
	store_delivery_t *d;
	int64_t alice;

	assert_int_equal(store_domain_add(f->store, "example.org", &error), 0);
	alice = add_user(f->store, "alice@example.org");
	d = store_delivery_new(f->store);
	assert_int_equal(store_delivery_write(d, big, BIG_SIZE, &error), 0);
	if (store_open(f->dir, &second, &error) < 0)
		fail_msg("store_open: %s", error);
	assert_int_equal(count_files(f->dir, "tmp"), 2);
	store_delivery_add_rcpt(d, alice);
	memset(&r, 0, sizeof(r));
	store_delivery_commit(d, 0, sync_cb, &r);
	assert_int_equal(r.status, 0);
	/* The second store sees the first one's writes. */
	assert_message_equals(second, alice, 1, big, BIG_SIZE);
	store_close(second);
	free(big);
}

static void test_two_stores_one_thread(void **state)
{
	struct fixture *f = *state;
	struct fixture other;
	struct names names = { .count = 0 };
	const char *error = NULL;

	store_fixture_open(other.dir, &other.store);
	assert_int_equal(store_domain_add(f->store, "one.example", &error), 0);
	assert_int_equal(store_domain_add(other.store, "two.example", &error), 0);
	assert_int_equal(store_domain_exists(f->store, "two.example", &error), 0);
	assert_int_equal(store_domain_exists(other.store, "one.example", &error), 0);
	assert_int_equal(store_domain_list(other.store, collect_name, &names, &error), 0);
	assert_int_equal(names.count, 1);
	assert_string_equal(names.items[0], "two.example");
	store_fixture_close(other.dir, other.store);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_domain_add_list_exists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_add_creates_mailboxes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_lookup_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_password_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_empty_and_no_subject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_large_spills_to_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_exactly_inline_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_recipients_share_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_rcpt_stored_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_ascending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_committer_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_drains_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data_and_cleans_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_keeps_spills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_stores_one_thread, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
