/* QUIT (RFC 1939 6): from TRANSACTION, the UPDATE state removes the marked
 * messages in one group-committed operation, and +OK is said only once that
 * is durable. IMAP sessions watching INBOX learn of the expunges from the
 * store. */
#include "pop3/pop3_session.h"

#include "core/log.h"
#include "store/store_mail.h"

#include <stdio.h>
#include <stdlib.h>

struct quit_job {
	net_handle_t *h;
	int64_t user_id;           /* the maildrop lock passes to the job */
	uint32_t n_marked;
	int status;
	char error[160];
};

static void quit_done(void *session, void *arg)
{
	struct pop3_session *s = session;
	struct quit_job *job = arg;
	/* Free the maildrop before the client hears +OK: a new session
	 * right after it must not be refused. */
	pop3_lock_release(job->user_id);
	if (s != NULL) {
		if (job->status == 0) {
			log_info("pop3", s->id, "event=update user=%s deleted=%u", s->address,
				 job->n_marked);
			pop3_ok(s, "Logging out, %u message%s deleted", job->n_marked,
				job->n_marked == 1 ? "" : "s");
		} else {
			log_error("pop3", s->id, "event=update-failed user=%s error=\"%s\"",
				  s->address, job->error);
			pop3_fail(s, "[SYS/TEMP] Could not delete the messages; none were deleted");
		}
		s->busy = 0;
		pop3_session_close(s);
	} else if (job->status != 0) {
		log_error("pop3", 0, "event=update-failed error=\"%s\"", job->error);
	}
	free(job);
}

/* On the committer thread. */
static void quit_committed(void *ctx, const struct store_op_result *res)
{
	struct quit_job *job = ctx;
	job->status = res->status;
	if (res->status != 0)
		snprintf(job->error, sizeof(job->error), "%s", res->error ? res->error : "?");
	net_handle_post(job->h, quit_done, job);
}

void pop3_cmd_quit(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	(void)a;
	if (s->state == POP3_AUTHORIZATION || s->md.n_deleted == 0) {
		if (s->locked) {
			pop3_lock_release(s->user_id);
			s->locked = 0;
		}
		pop3_ok(s, "Logging out%s", s->state == POP3_TRANSACTION ? ", no messages deleted" : "");
		pop3_session_close(s);
		return;
	}
	uint32_t *uids = malloc(s->md.n_deleted * sizeof(*uids));
	struct quit_job *job = calloc(1, sizeof(*job));
	if (uids == NULL || job == NULL) {
		free(uids);
		free(job);
		pop3_fail(s, "[SYS/TEMP] Out of memory; no messages deleted");
		return;
	}
	size_t n = 0;
	for (uint32_t i = 0; i < s->md.n; i++) /* UID order: the snapshot is */
		if (s->md.msgs[i].deleted)
			uids[n++] = s->md.msgs[i].uid;
	store_op_t *op = store_op_new(s->srv->store);
	store_op_expunge(op, s->md.mailbox_id, uids, n);
	free(uids);
	job->h = net_handle_ref(s->handle);
	job->user_id = s->user_id;
	job->n_marked = (uint32_t)n;
	s->locked = 0;
	pop3_set_state(s, POP3_UPDATE);
	pop3_async(s);
	store_op_commit(op, quit_committed, job); /* NULL op: reports the failure */
}
