/* The maildrop: the INBOX as it stands at login (RFC 1939 5), its lock (one
 * POP3 session per maildrop), message number arguments. */
#include "pop3/pop3_session.h"

#include "core/log.h"
#include "store/store_mail.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------- lock */

/* In-process: sessions of every worker thread share it. A multi-node
 * deployment would need the store to hold this lock instead. */
static pthread_mutex_t lock_mutex = PTHREAD_MUTEX_INITIALIZER;
static int64_t *locked_users;
static size_t n_locked, cap_locked;

int pop3_lock_acquire(int64_t user_id)
{
	int ok = 1;
	pthread_mutex_lock(&lock_mutex);
	for (size_t i = 0; i < n_locked; i++) {
		if (locked_users[i] == user_id) {
			ok = 0;
			break;
		}
	}
	if (ok && n_locked == cap_locked) {
		size_t cap = cap_locked ? cap_locked * 2 : 64;
		int64_t *n = realloc(locked_users, cap * sizeof(*n));
		if (n == NULL) {
			ok = 0;
		} else {
			locked_users = n;
			cap_locked = cap;
		}
	}
	if (ok)
		locked_users[n_locked++] = user_id;
	pthread_mutex_unlock(&lock_mutex);
	return ok;
}

void pop3_lock_release(int64_t user_id)
{
	pthread_mutex_lock(&lock_mutex);
	for (size_t i = 0; i < n_locked; i++) {
		if (locked_users[i] == user_id) {
			locked_users[i] = locked_users[--n_locked];
			break;
		}
	}
	if (n_locked == 0) {
		free(locked_users);
		locked_users = NULL;
		cap_locked = 0;
	}
	pthread_mutex_unlock(&lock_mutex);
}

/* --------------------------------------------------------------- snapshot */

struct scan_ctx {
	struct pop3_maildrop *md;
	size_t cap;
	int failed;
};

static void scan_cb(void *ctx, const struct store_msg *m)
{
	struct scan_ctx *sc = ctx;
	struct pop3_maildrop *md = sc->md;
	if (sc->failed)
		return;
	if (md->n == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 64;
		struct pop3_msg *n = realloc(md->msgs, cap * sizeof(*n));
		if (n == NULL || md->n == UINT32_MAX) {
			sc->failed = 1;
			return;
		}
		md->msgs = n;
		sc->cap = cap;
	}
	struct pop3_msg *pm = &md->msgs[md->n++];
	pm->uid = m->uid;
	pm->deleted = 0;
	pm->size = m->size;
	pm->blob_id = m->blob_id;
	md->size += m->size;
}

static int maildrop_load(struct pop3_session *s, const char **error_r)
{
	struct store_mailbox_status st;
	struct pop3_maildrop *md = &s->md;
	store_t *store = s->srv->store;
	/* One snapshot for the mailbox row and its messages (UIDVALIDITY and
	 * UIDs agree); what arrives after it is for the next session (RFC
	 * 1939 5). The row only: the scan counts and sizes the messages. */
	if (store_read_begin(store, error_r) < 0)
		return -1;
	int r = store_mailbox_find(store, s->user_id, "INBOX", &st, error_r);
	if (r <= 0) {
		if (r == 0)
			*error_r = "no INBOX";
		store_read_end(store);
		return -1;
	}
	memset(md, 0, sizeof(*md));
	md->mailbox_id = st.id;
	md->uidvalidity = st.uidvalidity;
	struct scan_ctx sc = { .md = md };
	r = store_msg_scan(store, st.id, 1, scan_cb, &sc, error_r);
	store_read_end(store);
	if (r < 0 || sc.failed) {
		if (sc.failed)
			*error_r = "out of memory";
		pop3_maildrop_free(md);
		return -1;
	}
	return 0;
}

void pop3_maildrop_free(struct pop3_maildrop *md)
{
	free(md->msgs);
	memset(md, 0, sizeof(*md));
}

void pop3_login(struct pop3_session *s, int64_t user_id, const char *address)
{
	const char *err;
	if (!pop3_lock_acquire(user_id)) {
		log_info("pop3", s->id, "event=login-refused user=%s reason=in-use", address);
		pop3_fail(s, "[IN-USE] Maildrop is locked by another POP3 session");
		return;
	}
	s->locked = 1;
	s->user_id = user_id;
	if (maildrop_load(s, &err) < 0) {
		log_error("pop3", s->id, "event=store-error user=%s error=\"%s\"", address, err);
		pop3_lock_release(user_id);
		s->locked = 0;
		pop3_fail(s, "[SYS/TEMP] Cannot open the maildrop, try again later");
		return;
	}
	snprintf(s->address, sizeof(s->address), "%s", address);
	s->auth_failures = 0;
	pop3_set_state(s, POP3_TRANSACTION);
	log_info("pop3", s->id, "event=login user=%s messages=%u octets=%llu", s->address, s->md.n,
		 (unsigned long long)s->md.size);
	pop3_ok(s, "Logged in, %u message%s (%llu octets)", s->md.n, s->md.n == 1 ? "" : "s",
		(unsigned long long)s->md.size);
}

int pop3_msg_arg(struct pop3_session *s, const char *arg, uint32_t *index_r)
{
	uint64_t v;
	if (pop3_parse_number(arg, &v) < 0) {
		pop3_err(s, "Invalid message number");
		return -1;
	}
	if (v == 0 || v > s->md.n) {
		pop3_err(s, "No such message");
		return -1;
	}
	if (s->md.msgs[v - 1].deleted) {
		pop3_err(s, "Message %llu is deleted", (unsigned long long)v);
		return -1;
	}
	*index_r = (uint32_t)(v - 1);
	return 0;
}
