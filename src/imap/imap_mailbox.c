/* The selected mailbox: this session's view, and bringing it up to date
 * with what other sessions and deliveries changed (RFC 3501 5.2, 7.4.1). */
#include "imap/imap_session.h"

#include "core/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* \Recent (RFC 3501 2.3.2) is per process: the first session to select a
 * mailbox after a message arrived sees it as recent. A small table of
 * mailbox id -> first uid not yet claimed. */
struct recent_entry {
	int64_t mailbox_id;
	uint32_t next_unclaimed;
};
static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct recent_entry *recent;
static size_t n_recent, cap_recent;

/* Claim uids up to uidnext for this session; returns the first uid that is
 * recent for it. */
static uint32_t recent_claim(int64_t mailbox_id, uint32_t uidnext)
{
	pthread_mutex_lock(&recent_lock);
	struct recent_entry *e = NULL;
	for (size_t i = 0; i < n_recent; i++)
		if (recent[i].mailbox_id == mailbox_id)
			e = &recent[i];
	if (e == NULL) {
		if (n_recent == cap_recent) {
			size_t cap = cap_recent ? cap_recent * 2 : 64;
			struct recent_entry *n = realloc(recent, cap * sizeof(*n));
			if (n == NULL) {
				pthread_mutex_unlock(&recent_lock);
				return uidnext;
			}
			recent = n;
			cap_recent = cap;
		}
		e = &recent[n_recent++];
		e->mailbox_id = mailbox_id;
		e->next_unclaimed = 1;
	}
	uint32_t first = e->next_unclaimed;
	if (uidnext > e->next_unclaimed)
		e->next_unclaimed = uidnext;
	pthread_mutex_unlock(&recent_lock);
	return first;
}

/* The first uid no session has seen as \Recent yet (without claiming). */
uint32_t imap_recent_first_unclaimed(int64_t mailbox_id)
{
	uint32_t first = 1;
	pthread_mutex_lock(&recent_lock);
	for (size_t i = 0; i < n_recent; i++)
		if (recent[i].mailbox_id == mailbox_id)
			first = recent[i].next_unclaimed;
	pthread_mutex_unlock(&recent_lock);
	return first;
}

static int push_uid(uint32_t **arr, size_t *n, size_t *cap, uint32_t uid)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		uint32_t *a = realloc(*arr, c * sizeof(*a));
		if (a == NULL)
			return -1;
		*arr = a;
		*cap = c;
	}
	(*arr)[(*n)++] = uid;
	return 0;
}

static void notified(void *session, void *arg)
{
	struct imap_session *s = session;
	(void)arg;
	if (s == NULL || s->sel == NULL)
		return;
	s->notify_pending = 1;
	if (s->idling && !s->busy) /* RFC 2177: updates go out while idling */
		imap_mailbox_sync(s, 1);
}

/* Committer thread: hand over to the session's worker. */
static void watch_cb(void *ctx)
{
	net_handle_post(net_handle_ref(ctx), notified, NULL);
}

struct load_ctx {
	struct imap_mailbox *mb;
	uint32_t first_unseen_seq;
	int failed;
};

static void load_cb(void *ctx, uint32_t uid, uint32_t flags)
{
	struct load_ctx *lc = ctx;
	if (push_uid(&lc->mb->uids, &lc->mb->n, &lc->mb->cap, uid) < 0)
		lc->failed = 1;
	if (lc->first_unseen_seq == 0 && !(flags & STORE_FLAG_SEEN))
		lc->first_unseen_seq = (uint32_t)lc->mb->n;
}

int imap_mailbox_open(struct imap_session *s, const char *name, int readonly,
		      struct store_mailbox_status *st)
{
	const char *err;
	imap_mailbox_close(s);
	/* The mailbox row, then one scan of uid and flags gives EXISTS and
	 * UNSEEN: nothing here costs more than one pass over an index. */
	int r = store_mailbox_find(s->srv->store, s->user_id, name, st, &err);
	if (r <= 0) {
		if (r < 0)
			log_error("imap", s->id, "event=store-error error=\"%s\"", err);
		return r;
	}
	struct imap_mailbox *mb = calloc(1, sizeof(*mb));
	mb->id = st->id;
	snprintf(mb->name, sizeof(mb->name), "%s", st->name);
	mb->readonly = readonly;
	mb->uidvalidity = st->uidvalidity;
	mb->uidnext = st->uidnext;
	mb->modseq_seen = st->highestmodseq;
	/* Watch before loading: a change committed in between is then seen
	 * twice at worst, never missed. */
	mb->watch = store_watch(s->srv->store, mb->id, watch_cb, s->handle);
	mb->watch_ref = net_handle_ref(s->handle);
	struct load_ctx lc = { .mb = mb };
	if (store_msg_scan_flags(s->srv->store, mb->id, load_cb, &lc, &err) < 0 || lc.failed) {
		log_error("imap", s->id, "event=store-error error=\"%s\"", lc.failed ? "oom" : err);
		s->sel = mb;
		imap_mailbox_close(s);
		return -1;
	}
	/* The scan may have seen messages newer than the status. */
	if (mb->n > 0 && mb->uids[mb->n - 1] >= mb->uidnext)
		mb->uidnext = mb->uids[mb->n - 1] + 1;
	st->messages = (uint32_t)mb->n;
	st->uidnext = mb->uidnext;
	/* EXAMINE shows \Recent like SELECT but claims nothing (6.3.2) */
	mb->recent_lo = readonly ? imap_recent_first_unclaimed(mb->id)
				 : recent_claim(mb->id, mb->uidnext);
	mb->recent_hi = mb->uidnext;
	s->sel = mb;
	/* [UNSEEN n] is the sequence number of the first unseen message */
	st->unseen = lc.first_unseen_seq;
	return 1;
}

int imap_is_recent(const struct imap_mailbox *mb, uint32_t uid)
{
	return uid >= mb->recent_lo && uid < mb->recent_hi;
}

void imap_mailbox_close(struct imap_session *s)
{
	struct imap_mailbox *mb = s->sel;
	if (mb == NULL)
		return;
	if (mb->watch != NULL) {
		store_unwatch(mb->watch);
		net_handle_unref(&mb->watch_ref);
	}
	free(mb->uids);
	free(mb->pending_expunge);
	free(mb);
	s->sel = NULL;
	s->notify_pending = 0;
}

struct sync_ctx {
	struct imap_session *s;
	uint32_t *new_uids;
	size_t n_new, cap_new;
	struct store_msg *changed;
	char **changed_kw;
	size_t n_changed, cap_changed;
	uint64_t max_modseq;
};

static void sync_msg_cb(void *ctx, const struct store_msg *m)
{
	struct sync_ctx *sc = ctx;
	struct imap_mailbox *mb = sc->s->sel;
	if (m->modseq > sc->max_modseq)
		sc->max_modseq = m->modseq;
	uint32_t last = mb->n ? mb->uids[mb->n - 1] : 0;
	if (m->uid > last) {
		if (sc->n_new == 0 || m->uid > sc->new_uids[sc->n_new - 1])
			push_uid(&sc->new_uids, &sc->n_new, &sc->cap_new, m->uid);
		return;
	}
	if (imap_seq_of_uid(mb, m->uid) == 0)
		return;
	if (sc->n_changed == sc->cap_changed) {
		size_t c = sc->cap_changed ? sc->cap_changed * 2 : 16;
		struct store_msg *a = realloc(sc->changed, c * sizeof(*a));
		char **k = realloc(sc->changed_kw, c * sizeof(*k));
		if (a != NULL)
			sc->changed = a;
		if (k != NULL)
			sc->changed_kw = k;
		if (a == NULL || k == NULL)
			return;
		sc->cap_changed = c;
	}
	sc->changed[sc->n_changed] = *m;
	sc->changed_kw[sc->n_changed] = strdup(m->keywords != NULL ? m->keywords : "");
	sc->n_changed++;
}

static void sync_expunged_cb(void *ctx, uint32_t uid, uint64_t modseq)
{
	struct sync_ctx *sc = ctx;
	struct imap_mailbox *mb = sc->s->sel;
	if (modseq > sc->max_modseq)
		sc->max_modseq = modseq;
	if (imap_seq_of_uid(mb, uid) != 0 &&
	    push_uid(&mb->pending_expunge, &mb->n_pending, &mb->cap_pending, uid) == 0 &&
	    (mb->pending_min_modseq == 0 || modseq < mb->pending_min_modseq))
		mb->pending_min_modseq = modseq;
}

int imap_mailbox_own_change(struct imap_session *s, uint64_t modseq, uint64_t highestmodseq,
			    const uint32_t *expunged, size_t n_expunged)
{
	struct imap_mailbox *mb = s->sel;
	/* Modseqs of a mailbox are handed out one by one, and the view has
	 * seen every change up to modseq_seen: a commit that took the next
	 * one and left it the highest is the only change since. */
	if (mb == NULL || modseq == 0 || modseq != highestmodseq || modseq != mb->modseq_seen + 1)
		return -1;
	struct sync_ctx sc = { .s = s, .max_modseq = modseq };
	for (size_t i = 0; i < n_expunged; i++)
		sync_expunged_cb(&sc, expunged[i], modseq);
	mb->modseq_seen = modseq;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void imap_mailbox_sync(struct imap_session *s, int allow_expunge)
{
	struct imap_mailbox *mb = s->sel;
	if (mb == NULL)
		return;
	struct sync_ctx sc = { .s = s, .max_modseq = mb->modseq_seen };
	if (s->notify_pending) {
		const char *err;
		s->notify_pending = 0;
		/* RFC 2180 3: the selected mailbox deleted or renamed away by
		 * another session: the view cannot go on */
		/* both reads in one snapshot */
		int snapshot = store_read_begin(s->srv->store, &err) == 0;
		struct store_mailbox_status now;
		int r = store_mailbox_find(s->srv->store, s->user_id, mb->name, &now, &err);
		if (r == 0 || (r == 1 && (now.id != mb->id || now.uidvalidity != mb->uidvalidity))) {
			if (snapshot)
				store_read_end(s->srv->store);
			log_info("imap", s->id, "event=selected-mailbox-gone");
			imap_session_close(s, "Selected mailbox was deleted, please reconnect");
			return;
		}
		/* Every change raises the mailbox's HIGHESTMODSEQ: none above
		 * what the view has seen, nothing to read. That is the case of
		 * the notification for a commit whose result this session has
		 * already applied (its own STORE, EXPUNGE or APPEND). */
		if (r == 1 && now.highestmodseq <= mb->modseq_seen) {
			/* up to date */
		} else if (store_msg_changes(s->srv->store, mb->id, mb->modseq_seen, sync_msg_cb,
					     sync_expunged_cb, &sc, &err) < 0) {
			log_error("imap", s->id, "event=store-error error=\"%s\"", err);
			s->notify_pending = 1;
		}
		if (snapshot)
			store_read_end(s->srv->store);
		mb->modseq_seen = sc.max_modseq;
	}
	/* 1. expunges, when allowed, highest first so numbers stay valid */
	if (allow_expunge && mb->n_pending > 0) {
		qsort(mb->pending_expunge, mb->n_pending, sizeof(uint32_t), cmp_u32);
		size_t w = 0;
		for (size_t i = 0; i < mb->n_pending; i++)
			if (i == 0 || mb->pending_expunge[i] != mb->pending_expunge[i - 1])
				mb->pending_expunge[w++] = mb->pending_expunge[i];
		mb->n_pending = w;
		if (s->qresync) {
			/* RFC 7162 3.2.10.2: one VANISHED instead of EXPUNGEs, for
			 * uids the client knows (all of them are in the view) */
			size_t r = 0, k = 0, o = 0;
			for (size_t i = 0; i < mb->n; i++) {
				while (k < mb->n_pending && mb->pending_expunge[k] < mb->uids[i])
					k++;
				if (k < mb->n_pending && mb->pending_expunge[k] == mb->uids[i])
					mb->pending_expunge[r++] = mb->uids[i];
				else
					mb->uids[o++] = mb->uids[i];
			}
			mb->n = o;
			imap_write_vanished(s, 0, mb->pending_expunge, r);
		} else {
			for (size_t i = mb->n_pending; i-- > 0;) {
				uint32_t seq = imap_seq_of_uid(mb, mb->pending_expunge[i]);
				if (seq == 0)
					continue;
				imap_untagged(s, "%u EXPUNGE", seq);
				memmove(&mb->uids[seq - 1], &mb->uids[seq],
					(mb->n - seq) * sizeof(uint32_t));
				mb->n--;
			}
		}
		mb->n_pending = 0;
		mb->pending_min_modseq = 0;
	}
	/* 2. flag changes of messages in the view */
	for (size_t i = 0; i < sc.n_changed; i++) {
		const struct store_msg *m = &sc.changed[i];
		uint32_t seq = imap_seq_of_uid(mb, m->uid);
		/* a change this session made was reported by its own command */
		if (seq != 0 && m->modseq != mb->own_modseq) {
			imap_printf(s, "* %u FETCH (UID %u FLAGS ", seq, m->uid);
			imap_write_flags(s, m->flags, sc.changed_kw[i],
					 !s->rev2 && imap_is_recent(mb, m->uid));
			if (s->condstore)
				imap_printf(s, " MODSEQ (%llu)", (unsigned long long)m->modseq);
			imap_write(s, ")\r\n", 3);
		}
		free(sc.changed_kw[i]);
	}
	free(sc.changed);
	free(sc.changed_kw);
	/* 3. new messages */
	if (sc.n_new > 0) {
		for (size_t i = 0; i < sc.n_new; i++)
			push_uid(&mb->uids, &mb->n, &mb->cap, sc.new_uids[i]);
		mb->uidnext = sc.new_uids[sc.n_new - 1] + 1;
		if (!mb->readonly) {
			/* the new messages are recent here unless another session
			 * claimed them first (RFC 3501 2.3.2) */
			uint32_t first = recent_claim(mb->id, mb->uidnext);
			if (first < mb->uidnext) {
				if (first == mb->recent_hi)
					mb->recent_hi = mb->uidnext;
				else if (mb->recent_lo == mb->recent_hi) {
					mb->recent_lo = first;
					mb->recent_hi = mb->uidnext;
				}
			}
		}
		imap_untagged(s, "%zu EXISTS", mb->n);
		if (!s->rev2) {
			uint32_t r = 0;
			for (size_t i = 0; i < mb->n; i++)
				if (imap_is_recent(mb, mb->uids[i]))
					r++;
			imap_untagged(s, "%u RECENT", r);
		}
	}
	free(sc.new_uids);
	/* RFC 7162 3.2: MODSEQs above an expunge held back may have gone
	 * out; the client must not take them for its HIGHESTMODSEQ */
	if (s->qresync && mb->n_pending > 0)
		imap_untagged(s, "OK [HIGHESTMODSEQ %llu] Expunges pending",
			      (unsigned long long)imap_mailbox_highestmodseq(mb));
}

uint64_t imap_mailbox_highestmodseq(const struct imap_mailbox *mb)
{
	if (mb->n_pending > 0 && mb->pending_min_modseq > 0 &&
	    mb->pending_min_modseq - 1 < mb->modseq_seen)
		return mb->pending_min_modseq - 1;
	return mb->modseq_seen;
}

void imap_condstore_enable(struct imap_session *s)
{
	if (s->condstore)
		return;
	s->condstore = 1;
	if (s->sel != NULL)
		imap_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest",
			      (unsigned long long)imap_mailbox_highestmodseq(s->sel));
}

void imap_write_vanished(struct imap_session *s, int earlier, const uint32_t *uids, size_t n)
{
	if (n == 0)
		return;
	char *set = imap_seqset_format(uids, n);
	if (set == NULL) {
		log_error("imap", s->id, "event=oom what=vanished");
		return;
	}
	imap_untagged(s, "VANISHED %s%s", earlier ? "(EARLIER) " : "", set);
	free(set);
}
