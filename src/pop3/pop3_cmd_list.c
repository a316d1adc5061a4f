/* STAT, LIST, UIDL (RFC 1939 5, 7), DELE and RSET (RFC 1939 5): all on the
 * maildrop snapshot. Long listings are written as the output drains. */
#include "pop3/pop3_session.h"

#include <stdio.h>

void pop3_cmd_stat(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	(void)a;
	pop3_ok(s, "%u %llu", s->md.n - s->md.n_deleted, (unsigned long long)s->md.size);
}

/* v in decimal at p; returns the end. (A listing has one line per message:
 * no printf for each.) */
static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* One entry without its CRLF, at most ENTRY_MAX octets: its length.
 * UIDL: "<uidvalidity>.<uid>" is unique in the maildrop and stable across
 * sessions, restarts and whatever IMAP does (a UID is never reused within
 * one UIDVALIDITY), and within RFC 1939's 0x21-0x7E, 1-70 octets. */
#define ENTRY_MAX (10 + 1 + 21)
static size_t entry(const struct pop3_session *s, uint32_t i, int uidl, char *buf)
{
	const struct pop3_msg *m = &s->md.msgs[i];
	char *p = put_u64(buf, (uint64_t)i + 1);
	*p++ = ' ';
	if (uidl) {
		p = put_u64(p, s->md.uidvalidity);
		*p++ = '.';
		p = put_u64(p, m->uid);
	} else {
		p = put_u64(p, m->size);
	}
	return (size_t)(p - buf);
}

static void list_continue(struct pop3_session *s)
{
	char buf[8192];
	size_t o = 0;
	while (s->list_next < s->md.n) {
		if (o > sizeof(buf) - 64) {
			pop3_write(s, buf, o);
			o = 0;
			if (!net_conn_can_process(s->conn))
				return; /* continued by the writable hook */
		}
		uint32_t i = s->list_next++;
		if (s->md.msgs[i].deleted)
			continue;
		o += entry(s, i, s->list_uidl, buf + o);
		buf[o++] = '\r';
		buf[o++] = '\n';
	}
	buf[o++] = '.';
	buf[o++] = '\r';
	buf[o++] = '\n';
	pop3_write(s, buf, o);
	pop3_cont_done(s);
}

static void listing(struct pop3_session *s, const struct pop3_cmd_args *a, int uidl)
{
	if (a->n_args == 1) {
		uint32_t i;
		char buf[ENTRY_MAX + 1];
		if (pop3_msg_arg(s, a->args[0], &i) < 0)
			return;
		buf[entry(s, i, uidl, buf)] = '\0';
		pop3_ok(s, "%s", buf);
		return;
	}
	if (uidl)
		pop3_ok(s, "Unique-ID listing follows");
	else
		pop3_ok(s, "%u messages (%llu octets)", s->md.n - s->md.n_deleted,
			(unsigned long long)s->md.size);
	s->list_next = 0;
	s->list_uidl = uidl;
	s->cont = list_continue;
	list_continue(s);
}

void pop3_cmd_list(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	listing(s, a, 0);
}

void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	listing(s, a, 1);
}

void pop3_cmd_dele(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	uint32_t i;
	if (pop3_msg_arg(s, a->args[0], &i) < 0)
		return;
	/* only marked: QUIT removes it (RFC 1939 6) */
	s->md.msgs[i].deleted = 1;
	s->md.n_deleted++;
	s->md.size -= s->md.msgs[i].size;
	pop3_ok(s, "Message %u deleted", i + 1);
}

void pop3_cmd_rset(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	(void)a;
	for (uint32_t i = 0; i < s->md.n; i++) {
		if (s->md.msgs[i].deleted) {
			s->md.msgs[i].deleted = 0;
			s->md.size += s->md.msgs[i].size;
		}
	}
	s->md.n_deleted = 0;
	pop3_ok(s, "Maildrop has %u messages (%llu octets)", s->md.n,
		(unsigned long long)s->md.size);
}
