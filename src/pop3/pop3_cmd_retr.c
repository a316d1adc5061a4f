/* RETR and TOP (RFC 1939 7): the message streamed from the store in chunks,
 * byte-stuffed, continued as the output drains (the writable hook), so that
 * a large message never sits whole in memory or in the output buffer.
 * Inline content (at most 128 KiB) comes out whole, a content file is read
 * with pread as the output drains.
 *
 * Read ahead: clients retrieve in order, so a RETR/TOP that follows the
 * previous message also reads the next messages' inline content in its
 * read transaction ([pop3] read_ahead octets at most), and the RETRs after
 * it read nothing from the store: one transaction for a run of small
 * messages instead of one each. No transaction stays open meanwhile; what
 * was read ahead is sent for at most [pop3] read_ahead_ms after it was
 * read. A message that IMAP expunges in that time may therefore still be
 * sent whole: RFC 1939 5 fixes the maildrop at login, so it is still the
 * session's message; after that, or when it was not read ahead, it is
 * -ERR as before. */
#include "pop3/pop3_session.h"

#include "core/config.h"
#include "core/log.h"
#include "store/store_mail.h"

#include <stdlib.h>
#include <time.h>

/* Stuffing goes through a buffer on the stack in pieces of this much. */
#define STUFF_PIECE (16 * 1024)

/* Allocated at the first RETR/TOP and kept for the session: the reader
 * keeps its buffer between messages. */
struct pop3_body {
	store_blob_reader_t *reader;
	uint64_t left;      /* octets of the message still to send */
	uint32_t index;
	int64_t last;       /* the message sent before (-1: none yet) */
	uint64_t ahead_at;  /* when the reader last read ahead (ms, monotonic) */
	struct pop3_stuffer st;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Open message i in the reader: from what was read ahead while it is
 * fresh, else from the store, reading ahead when i follows the message
 * before it. 0, or -1 with *error_r. */
static int body_open(struct pop3_session *s, struct pop3_body *b, uint32_t i, uint64_t *size_r,
		     const char **error_r)
{
	const struct config *cfg = s->srv->config;
	int64_t next[POP3_AHEAD_MAX];
	size_t n = 0;
	uint64_t now = now_ms();

	if (now - b->ahead_at > cfg->pop3_read_ahead_ms)
		store_blob_reader_forget(b->reader);
	if (cfg->pop3_read_ahead > 0 && cfg->pop3_read_ahead_ms > 0 && (int64_t)i == b->last + 1) {
		uint64_t octets = 0;
		for (uint32_t j = i + 1; j < s->md.n && n < POP3_AHEAD_MAX; j++) {
			const struct pop3_msg *m = &s->md.msgs[j];
			if (m->deleted)
				continue;
			if ((octets += m->size) > cfg->pop3_read_ahead)
				break;
			next[n++] = m->blob_id;
		}
	}
	b->last = i;
	int r = store_blob_reader_open_ahead(b->reader, s->md.msgs[i].blob_id, next, n,
					     (size_t)cfg->pop3_read_ahead, size_r, error_r);
	if (r == 0 && n > 0)
		b->ahead_at = now;
	return r < 0 ? -1 : 0;
}

void pop3_body_free(struct pop3_session *s)
{
	struct pop3_body *b = s->body;
	if (b == NULL)
		return;
	store_blob_reader_free(b->reader);
	free(b);
	s->body = NULL;
}

/* Stuff and write data[0..len) (the stuffer at most doubles it): straight
 * into the output buffer where the connection allows, else through a
 * buffer on the stack. */
static void write_stuffed(struct pop3_session *s, struct pop3_body *b, const char *data,
			  size_t len)
{
	char out[2 * STUFF_PIECE];
	while (len > 0 && !b->st.done) {
		size_t n = len < STUFF_PIECE ? len : STUFF_PIECE;
		char *room = net_conn_write_reserve(s->conn, 2 * n);
		if (room != NULL) {
			net_conn_write_commit(s->conn, pop3_stuffer_encode(&b->st, data, n, room));
		} else {
			pop3_write(s, out, pop3_stuffer_encode(&b->st, data, n, out));
		}
		data += n;
		len -= n;
	}
}

static void body_continue(struct pop3_session *s)
{
	struct pop3_body *b = s->body;
	while (!b->st.done && b->left > 0) {
		if (!net_conn_can_process(s->conn))
			return; /* continued by the writable hook */
		const void *data;
		size_t got = 0;
		const char *err = "content shorter than recorded";
		size_t want = b->left < POP3_READ_CHUNK ? (size_t)b->left : POP3_READ_CHUNK;
		if (store_blob_reader_next(b->reader, want, &data, &got, &err) < 0 || got == 0) {
			log_warn("pop3", s->id, "event=read-failed msg=%u error=\"%s\"",
				 b->index + 1, err);
			/* The +OK is out and a multi-line response cannot say
			 * -ERR: all that is left is to end the session. */
			store_blob_reader_close(b->reader);
			s->cont = NULL;
			pop3_session_close(s);
			return;
		}
		b->left -= got;
		write_stuffed(s, b, data, got);
	}
	char end[5];
	pop3_write(s, end, pop3_stuffer_finish(&b->st, end));
	store_blob_reader_close(b->reader);
	pop3_cont_done(s);
}

static void send_message(struct pop3_session *s, uint32_t i, int top, uint64_t lines)
{
	const struct pop3_msg *m = &s->md.msgs[i];
	struct pop3_body *b = s->body;
	if (b == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL ||
		    (b->reader = store_blob_reader_new(s->srv->store)) == NULL) {
			free(b);
			pop3_fail(s, "[SYS/TEMP] Out of memory");
			return;
		}
		b->last = -1;
		s->body = b;
	}
	/* Opened before the +OK: a message that IMAP expunged (and whose
	 * content is gone) still gets a proper -ERR. */
	uint64_t size = 0;
	const char *err = NULL;
	if (body_open(s, b, i, &size, &err) == 0 && size < m->size)
		err = "content shorter than recorded";
	if (err != NULL) {
		log_warn("pop3", s->id, "event=read-failed msg=%u error=\"%s\"", i + 1, err);
		store_blob_reader_close(b->reader);
		pop3_fail(s, "Message %u is no longer available", i + 1);
		return;
	}
	b->left = m->size;
	b->index = i;
	pop3_stuffer_init(&b->st, top, lines);
	if (top)
		pop3_ok(s, "Top of message %u follows", i + 1);
	else
		pop3_ok(s, "%llu octets", (unsigned long long)m->size);
	s->retrieved += !top;
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
