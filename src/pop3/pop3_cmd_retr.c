/* RETR and TOP (RFC 1939 7): the message streamed from the store in chunks,
 * byte-stuffed, continued as the output drains (the writable hook), so that
 * a large message never sits whole in memory or in the output buffer. */
#include "pop3/pop3_session.h"

#include "core/log.h"
#include "store/store_mail.h"

#include <stdlib.h>

struct pop3_body {
	int64_t blob_id;
	uint64_t size, offset;
	uint32_t index;
	struct pop3_stuffer st;
	size_t chunk;
	char *in;          /* chunk octets */
	char *out;         /* 2 * chunk: stuffing at most doubles them */
};

void pop3_body_free(struct pop3_session *s)
{
	struct pop3_body *b = s->body;
	if (b == NULL)
		return;
	free(b->in);
	free(b);
	s->body = NULL;
}

/* Read the next chunk into b->in; the octet count, or -1 (logged). */
static long read_chunk(struct pop3_session *s, struct pop3_body *b)
{
	uint64_t left = b->size - b->offset;
	size_t want = left < b->chunk ? (size_t)left : b->chunk;
	size_t got = 0;
	const char *err = "content shorter than recorded";
	if (store_blob_read(s->srv->store, b->blob_id, b->offset, b->in, want, &got, &err) < 0 ||
	    got != want) {
		log_warn("pop3", s->id, "event=read-failed msg=%u error=\"%s\"", b->index + 1, err);
		return -1;
	}
	b->offset += got;
	return (long)got;
}

static void body_continue(struct pop3_session *s)
{
	struct pop3_body *b = s->body;
	while (!b->st.done && b->offset < b->size) {
		if (!net_conn_can_process(s->conn))
			return; /* continued by the writable hook */
		long got = read_chunk(s, b);
		if (got < 0) {
			/* The +OK is out and a multi-line response cannot say
			 * -ERR: all that is left is to end the session. */
			pop3_body_free(s);
			s->cont = NULL;
			pop3_session_close(s);
			return;
		}
		pop3_write(s, b->out, pop3_stuffer_encode(&b->st, b->in, (size_t)got, b->out));
	}
	char end[5];
	pop3_write(s, end, pop3_stuffer_finish(&b->st, end));
	pop3_body_free(s);
	pop3_cont_done(s);
}

static void send_message(struct pop3_session *s, uint32_t i, int top, uint64_t lines)
{
	const struct pop3_msg *m = &s->md.msgs[i];
	struct pop3_body *b = calloc(1, sizeof(*b));
	size_t chunk = m->size < POP3_READ_CHUNK ? (size_t)m->size : POP3_READ_CHUNK;
	if (chunk == 0)
		chunk = 1;
	if (b == NULL || (b->in = malloc(3 * chunk)) == NULL) {
		free(b);
		pop3_fail(s, "[SYS/TEMP] Out of memory");
		return;
	}
	b->out = b->in + chunk;
	b->chunk = chunk;
	b->blob_id = m->blob_id;
	b->size = m->size;
	b->index = i;
	pop3_stuffer_init(&b->st, top, lines);
	s->body = b;
	/* The first chunk before the +OK: a message that IMAP expunged (and
	 * whose content is gone) still gets a proper -ERR. */
	long got = b->size > 0 ? read_chunk(s, b) : 0;
	if (got < 0) {
		pop3_body_free(s);
		pop3_fail(s, "Message %u is no longer available", i + 1);
		return;
	}
	if (top)
		pop3_ok(s, "Top of message %u follows", i + 1);
	else
		pop3_ok(s, "%llu octets", (unsigned long long)m->size);
	s->retrieved += !top;
	pop3_write(s, b->out, pop3_stuffer_encode(&b->st, b->in, (size_t)got, b->out));
	s->cont = body_continue;
	body_continue(s);
}

void pop3_cmd_retr(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	uint32_t i;
	if (pop3_msg_arg(s, a->args[0], &i) < 0)
		return;
	send_message(s, i, 0, 0);
}

void pop3_cmd_top(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	uint32_t i;
	uint64_t lines;
	if (pop3_msg_arg(s, a->args[0], &i) < 0)
		return;
	/* RFC 1939 7: n non-negative; more lines than there are is the
	 * whole body */
	if (pop3_parse_number(a->args[1], &lines) < 0) {
		pop3_err(s, "Invalid number of lines");
		return;
	}
	send_message(s, i, 1, lines);
}
