#include "net/net.h"

#include "core/log.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ZLIB_CONST
#include <zlib.h>

/* Input is read at most this far ahead of the protocol (bounds memory per
 * connection whatever the peer sends). */
#define NET_INPUT_MAX (256 * 1024)

/* Deflate level for compressed connections: RFC 4978 4 suggests 1-5 for
 * IMAP responses (cheap, and most of the gain). */
#define NET_DEFLATE_LEVEL 5
/* Stack buffer for one round of deflate/inflate output. */
#define NET_ZCHUNK (16 * 1024)

/* A compression layer between the protocol and the socket (or TLS):
 * the protocol reads plain octets from `in` and its writes are deflated
 * straight into the bufferevent's output. */
struct net_zlayer {
	z_stream deflate;
	z_stream inflate;
	struct evbuffer *in;   /* inflated input, at most NET_INPUT_MAX */
	struct event *flush;   /* Z_SYNC_FLUSH once the current batch of writes ends */
	int flush_pending;
	int inflate_end;       /* the peer finished its deflate stream */
	int error;             /* corrupt input: the connection closes */
};

struct post_item {
	void (*fn)(void *);
	void *arg;
	struct post_item *next;
};

struct net_worker {
	net_server_t *srv;
	struct event_base *base;
	pthread_t thread;
	struct event *notify;
	pthread_mutex_t lock;
	struct post_item *posts, *posts_tail;
	net_conn_t *conns; /* doubly linked */
	unsigned n_conns;
	int stopping;
};

struct listener {
	net_server_t *srv;
	struct evconnlistener *evl;
	const struct net_proto_ops *ops;
	void *proto_ctx;
	int implicit_tls;
	struct listener *next;
};

struct net_server {
	struct event_base *base; /* main thread: listeners and signals */
	net_worker_t *workers;
	unsigned n_workers, next_worker;
	unsigned max_connections;
	size_t output_high;
	tls_server_t *tls;
	struct listener *listeners;
	atomic_uint n_conns;
	atomic_uint_fast64_t next_id;
	void (*on_hup)(void *);
	void *hup_arg;
	int stopping;
	struct event *sig_term, *sig_int, *sig_hup, *grace_timer;
	struct timespec stop_deadline;
};

struct net_conn {
	net_worker_t *worker;
	const struct net_proto_ops *ops;
	void *session;
	struct bufferevent *bev;
	struct event *kick;
	struct event *timer;
	void (*timer_fn)(void *);
	void *timer_arg;
	int fd;
	uint64_t id;
	unsigned timeout;
	char peer[INET6_ADDRSTRLEN + 8];
	char peer_ip[INET6_ADDRSTRLEN];
	int loopback;
	int tls;            /* TLS active (or handshaking) */
	int tls_pending;    /* STARTTLS accepted: switch once output is flushed */
	int paused;
	int closing;        /* close once output is flushed */
	int closed;
	int discarding;     /* inside an overlong line */
	int in_input;       /* reentrancy guard */
	/* Direct writes (conn_run_input): EV_WRITE is off while the output is
	 * empty (write_off), and writes made while handling input are only
	 * collected (write_hold). Anything else added to the output turns
	 * EV_WRITE back on (conn_output_cb). */
	int write_off, write_hold;
	char *line;
	size_t line_cap;
	struct net_zlayer *z; /* COMPRESS active */
	struct evbuffer_iovec reserved; /* net_conn_write_reserve */
	net_conn_t *prev, *next;
};

static void conn_setup_bev(net_conn_t *c);
static void conn_free(net_conn_t *c);
static void conn_kick(net_conn_t *c);

static void conn_kick(net_conn_t *c)
{
	event_active(c->kick, EV_READ, 0);
}

/* ------------------------------------------------------------------ workers */

static void worker_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	net_worker_t *w = arg;
	pthread_mutex_lock(&w->lock);
	struct post_item *items = w->posts;
	w->posts = w->posts_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while (items != NULL) {
		struct post_item *next = items->next;
		items->fn(items->arg);
		free(items);
		items = next;
	}
	if (w->stopping && w->n_conns == 0)
		event_base_loopbreak(w->base);
}

void net_worker_post(net_worker_t *w, void (*fn)(void *), void *arg)
{
	struct post_item *it = malloc(sizeof(*it));
	if (it == NULL)
		abort(); /* cannot lose a completion */
	it->fn = fn;
	it->arg = arg;
	it->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->posts_tail != NULL)
		w->posts_tail->next = it;
	else
		w->posts = it;
	w->posts_tail = it;
	pthread_mutex_unlock(&w->lock);
	event_active(w->notify, EV_READ, 0);
}

/* --------------------------------------------------------- session handles */

struct net_handle {
	void *session;       /* NULL once the session is gone (worker thread only) */
	atomic_int refs;
	net_worker_t *worker;
};

net_handle_t *net_handle_new(net_worker_t *w, void *session)
{
	net_handle_t *h = malloc(sizeof(*h));
	if (h == NULL)
		return NULL;
	h->session = session;
	atomic_init(&h->refs, 1);
	h->worker = w;
	return h;
}

net_handle_t *net_handle_ref(net_handle_t *h)
{
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
	return h;
}

void net_handle_unref(net_handle_t **hp)
{
	net_handle_t *h = *hp;
	*hp = NULL;
	if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
		free(h);
}

void net_handle_detach(net_handle_t **hp)
{
	(*hp)->session = NULL;
	net_handle_unref(hp);
}

struct handle_post {
	net_handle_t *h;
	void (*fn)(void *session, void *arg);
	void *arg;
};

static void handle_post_run(void *arg)
{
	struct handle_post *p = arg;
	p->fn(p->h->session, p->arg);
	net_handle_unref(&p->h);
	free(p);
}

void net_handle_post(net_handle_t *h, void (*fn)(void *session, void *arg), void *arg)
{
	struct handle_post *p = malloc(sizeof(*p));
	if (p == NULL)
		abort(); /* the reference and the answer would be lost */
	p->h = h;
	p->fn = fn;
	p->arg = arg;
	net_worker_post(h->worker, handle_post_run, p);
}

static void *worker_main(void *arg)
{
	net_worker_t *w = arg;
	sigset_t set;
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* ------------------------------------------------------------- connections */

uint64_t net_conn_id(const net_conn_t *c) { return c->id; }
const char *net_conn_peer(const net_conn_t *c) { return c->peer; }
const char *net_conn_peer_ip(const net_conn_t *c) { return c->peer_ip; }
int net_conn_is_loopback(const net_conn_t *c) { return c->loopback; }
int net_conn_is_tls(const net_conn_t *c) { return c->tls; }
net_worker_t *net_conn_worker(net_conn_t *c) { return c->worker; }
int net_conn_tls_available(net_conn_t *c) { return c->worker->srv->tls != NULL && !c->tls; }

void net_conn_tls_describe(net_conn_t *c, char *buf, size_t bufsz)
{
	if (!c->tls) {
		buf[0] = '\0';
		return;
	}
	tls_describe(c->bev, buf, bufsz);
}

/* ------------------------------------------------------------- compression */

/* Inflate buffered compressed input into z->in, up to NET_INPUT_MAX plain
 * octets: the plain input obeys the same bound as uncompressed input (a small
 * "zip bomb" cannot grow it), and what is left stays compressed in the
 * bufferevent, whose own read watermark stops reading from the socket. */
static void z_fill(net_conn_t *c)
{
	struct net_zlayer *z = c->z;
	struct evbuffer *raw = bufferevent_get_input(c->bev);
	unsigned char out[NET_ZCHUNK];
	while (!z->error) {
		size_t have = evbuffer_get_length(z->in);
		if (have >= NET_INPUT_MAX || evbuffer_get_length(raw) == 0)
			return;
		if (z->inflate_end) {
			z->error = 1; /* octets after the end of the client's stream */
			return;
		}
		struct evbuffer_iovec v;
		if (evbuffer_peek(raw, -1, NULL, &v, 1) < 1)
			return;
		size_t room = NET_INPUT_MAX - have < sizeof(out) ? NET_INPUT_MAX - have : sizeof(out);
		size_t avail = v.iov_len < NET_ZCHUNK * 4 ? v.iov_len : NET_ZCHUNK * 4;
		z->inflate.next_in = v.iov_base;
		z->inflate.avail_in = (uInt)avail;
		z->inflate.next_out = out;
		z->inflate.avail_out = (uInt)room;
		int r = inflate(&z->inflate, Z_NO_FLUSH);
		size_t used = avail - z->inflate.avail_in;
		size_t produced = room - z->inflate.avail_out;
		evbuffer_drain(raw, used);
		if (produced > 0)
			evbuffer_add(z->in, out, produced);
		if (r == Z_STREAM_END)
			z->inflate_end = 1;
		else if (r != Z_OK && !(r == Z_BUF_ERROR && (used > 0 || produced > 0)))
			z->error = 1;
	}
}

/* Where the protocol reads: plain octets, topped up from the compressed
 * stream on every access. */
static struct evbuffer *conn_input(net_conn_t *c)
{
	if (c->z == NULL)
		return bufferevent_get_input(c->bev);
	z_fill(c);
	return c->z->in;
}

static void z_deflate(net_conn_t *c, const void *data, size_t len, int flush)
{
	z_stream *zs = &c->z->deflate;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	unsigned char buf[NET_ZCHUNK];
	const unsigned char *p = data;
	do {
		/* avail_in is a uInt: feed very large writes in slices */
		size_t slice = len < (1u << 30) ? len : (1u << 30);
		zs->next_in = p;
		zs->avail_in = (uInt)slice;
		do {
			zs->next_out = buf;
			zs->avail_out = sizeof(buf);
			deflate(zs, slice == len ? flush : Z_NO_FLUSH);
			size_t n = sizeof(buf) - zs->avail_out;
			if (n > 0)
				evbuffer_add(out, buf, n);
		} while (zs->avail_out == 0);
		p += slice;
		len -= slice;
	} while (len > 0);
}

/* End of a batch of writes: push everything deflate holds to the peer, so a
 * client never waits for a response kept in the compressor (IDLE updates,
 * tagged replies). One flush per batch keeps the ratio of small writes. */
static void z_flush_now(net_conn_t *c)
{
	if (c->z == NULL || !c->z->flush_pending)
		return;
	c->z->flush_pending = 0;
	z_deflate(c, NULL, 0, Z_SYNC_FLUSH);
}

static void z_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	net_conn_t *c = arg;
	if (!c->closed)
		z_flush_now(c);
}

static void z_free(struct net_zlayer *z)
{
	if (z == NULL)
		return;
	deflateEnd(&z->deflate);
	inflateEnd(&z->inflate);
	evbuffer_free(z->in);
	event_free(z->flush);
	free(z);
}

int net_conn_compress(net_conn_t *c)
{
	if (c->z != NULL || c->closed || c->closing || c->tls_pending)
		return -1;
	struct net_zlayer *z = calloc(1, sizeof(*z));
	if (z == NULL)
		return -1;
	/* raw deflate (windowBits -15), RFC 4978 4 */
	if (deflateInit2(&z->deflate, NET_DEFLATE_LEVEL, Z_DEFLATED, -15, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		return -1;
	}
	if (inflateInit2(&z->inflate, -15) != Z_OK) {
		deflateEnd(&z->deflate);
		free(z);
		return -1;
	}
	z->in = evbuffer_new();
	z->flush = event_new(c->worker->base, -1, 0, z_flush_cb, c);
	if (z->in == NULL || z->flush == NULL) {
		if (z->in != NULL)
			evbuffer_free(z->in);
		if (z->flush != NULL)
			event_free(z->flush);
		deflateEnd(&z->deflate);
		inflateEnd(&z->inflate);
		free(z);
		return -1;
	}
	/* Output written so far is already in the bufferevent, uncompressed;
	 * everything written from now on is deflated behind it. Input still
	 * buffered (pipelined after the command) is compressed: conn_input
	 * inflates it on the next read. */
	c->z = z;
	c->discarding = 0;
	conn_kick(c);
	return 0;
}

int net_conn_is_compressed(const net_conn_t *c)
{
	return c->z != NULL;
}

/* The peer's compressed stream is corrupt: nothing after it can be trusted
 * or even found; close (the output written so far is flushed first). */
static void z_fail(net_conn_t *c)
{
	log_info("net", c->id, "event=inflate-error peer=%s error=\"%s\"", c->peer,
		 c->z->inflate.msg != NULL ? c->z->inflate.msg
		 : c->z->inflate_end  ? "data after the end of the stream"
				      : "corrupt stream");
	net_conn_close(c);
}

/* Replies written directly. Left to the bufferevent, a reply costs an
 * epoll_ctl to watch the socket for writing, a pass through epoll_wait to
 * hear that it is writable (it nearly always is), the writev, and another
 * epoll_ctl to stop watching: for a client sending one command at a time,
 * that is most of a round trip's system calls. So on a plain socket with
 * nothing queued, what the protocol writes while handling input is
 * collected with EV_WRITE off and sent with one writev when it returns;
 * only a remainder (socket buffer full) is left to the bufferevent.
 * Not for TLS or any filtering bufferevent, and not for output that must
 * go through write_cb (closing, STARTTLS, a response suspended at the high
 * watermark, which waits for the writable hook). */
static int conn_hold_writes(net_conn_t *c)
{
	if (c->tls || c->tls_pending || c->closing || bufferevent_get_underlying(c->bev) != NULL ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return 0;
	if (!c->write_off) {
		bufferevent_disable(c->bev, EV_WRITE);
		c->write_off = 1;
	}
	c->write_hold = 1;
	return 1;
}

static void conn_write_on(net_conn_t *c)
{
	if (c->write_off && !c->write_hold) {
		c->write_off = 0;
		bufferevent_enable(c->bev, EV_WRITE);
	}
}

/* On the output buffer itself, so that every writer is covered, whatever
 * path its octets take into the buffer. */
static void conn_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	if (info->n_added > 0)
		conn_write_on(arg);
}

static void conn_release_writes(net_conn_t *c, struct bufferevent *held)
{
	if (c->bev != held)
		return; /* switched to TLS meanwhile: a new bufferevent, EV_WRITE on */
	c->write_hold = 0;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = evbuffer_get_length(out);
	if (len == 0)
		return; /* nothing written: EV_WRITE stays off */
	if (!c->closing && !c->tls_pending && len < c->worker->srv->output_high) {
		/* The bufferevent keeps the start of its output frozen
		 * except while it writes itself. Errors are left to it:
		 * the data stays, and its next write reports them. */
		evbuffer_unfreeze(out, 1);
		evbuffer_write(out, c->fd);
		evbuffer_freeze(out, 1);
		if (evbuffer_get_length(out) == 0) {
			/* write_cb would have run input again after the drain */
			if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
				conn_kick(c);
			return;
		}
	}
	conn_write_on(c);
}

static void conn_run_input(net_conn_t *c)
{
	if (c->closed || c->closing || c->paused || c->tls_pending || c->in_input)
		return;
	struct evbuffer *in = conn_input(c);
	if (evbuffer_get_length(in) == 0) {
		if (c->z != NULL && c->z->error)
			z_fail(c);
		return;
	}
	if (!net_conn_can_process(c))
		return;
	struct bufferevent *held = conn_hold_writes(c) ? c->bev : NULL;
	c->in_input = 1;
	c->ops->input(c->session);
	c->in_input = 0;
	if (c->closed) {
		conn_free(c);
		return;
	}
	if (held != NULL) {
		z_flush_now(c); /* one sync flush per batch, sent with it */
		conn_release_writes(c, held);
	}
	if (c->z == NULL || c->closing)
		return;
	if (c->z->error) {
		z_fail(c);
		return;
	}
	/* The plain input was full when last topped up and the protocol has
	 * consumed some since: more compressed input waits, and no socket
	 * event may come for it. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 &&
	    evbuffer_get_length(c->z->in) < NET_INPUT_MAX)
		conn_kick(c);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	conn_run_input(arg);
}

/* The peer is gone or the close finished: tell the protocol, free later. */
static void conn_gone(net_conn_t *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	c->ops->closed(c->session);
	c->session = NULL;
	if (!c->in_input)
		conn_free(c);
}

static void conn_free(net_conn_t *c)
{
	net_worker_t *w = c->worker;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->n_conns--;
	atomic_fetch_sub(&w->srv->n_conns, 1);
	event_free(c->kick);
	if (c->timer != NULL)
		event_free(c->timer);
	z_free(c->z);
	bufferevent_free(c->bev);
	/* A TLS bufferevent owns the fd and its SSL (freed with it). */
	if (!c->tls)
		close(c->fd);
	free(c->line);
	free(c);
	if (w->stopping && w->n_conns == 0)
		event_base_loopbreak(w->base);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_run_input(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	net_conn_t *c = arg;
	if (c->closing)
		z_flush_now(c); /* words written after the close asked for it */
	size_t out = evbuffer_get_length(bufferevent_get_output(bev));
	if (out == 0 && c->closing) {
		conn_gone(c);
		return;
	}
	if (out == 0 && c->tls_pending) {
		/* The STARTTLS reply is on the wire: from here on, TLS. Input
		 * buffered as plaintext was dropped when STARTTLS was accepted;
		 * drop anything read since, too. */
		c->tls_pending = 0;
		bufferevent_free(c->bev);
		c->bev = tls_bufferevent_accept(c->worker->srv->tls, c->worker->base, c->fd);
		if (c->bev == NULL) {
			c->bev = bufferevent_socket_new(c->worker->base, -1, 0);
			conn_gone(c);
			return;
		}
		c->tls = 1;
		conn_setup_bev(c);
		return;
	}
	/* Output drained below the low watermark: resume commands. */
	if (c->ops->writable != NULL && !c->closed && !c->closing && !c->in_input) {
		c->in_input = 1;
		c->ops->writable(c->session);
		c->in_input = 0;
		if (c->closed) {
			conn_free(c);
			return;
		}
	}
	conn_run_input(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	net_conn_t *c = arg;
	if (c->closed || c->timer_fn == NULL)
		return;
	void (*fn)(void *) = c->timer_fn;
	c->timer_fn = NULL;
	c->in_input = 1;
	fn(c->timer_arg);
	c->in_input = 0;
	if (c->closed)
		conn_free(c);
}

void net_conn_after(net_conn_t *c, unsigned ms, void (*fn)(void *), void *arg)
{
	if (c->timer == NULL)
		c->timer = evtimer_new(c->worker->base, timer_cb, c);
	c->timer_fn = fn;
	c->timer_arg = arg;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	evtimer_add(c->timer, &tv);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	net_conn_t *c = arg;
	if (what & BEV_EVENT_CONNECTED)
		return; /* TLS handshake done */
	if ((what & BEV_EVENT_TIMEOUT) && !(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		/* A peer that does not read our output, or that we are only
		 * waiting for to take our last words, is dropped. */
		if ((what & BEV_EVENT_WRITING) || c->closing) {
			conn_gone(c);
			return;
		}
		/* Read timeout: the protocol says goodbye (EV_WRITE still on). */
		c->ops->timeout(c->session);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && c->tls)
		log_info("net", c->id, "event=tls-error peer=%s", c->peer);
	conn_gone(c);
}

static void conn_setup_bev(net_conn_t *c)
{
	size_t high = c->worker->srv->output_high;
	c->write_off = c->write_hold = 0;
	evbuffer_add_cb(bufferevent_get_output(c->bev), conn_output_cb, c);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, NET_INPUT_MAX);
	bufferevent_setwatermark(c->bev, EV_WRITE, high / 2, 0);
	net_conn_set_timeout(c, c->timeout);
	bufferevent_enable(c->bev, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
}

struct accept_item {
	net_worker_t *w;
	int fd;
	struct listener *l;
	struct sockaddr_storage ss;
};

static void conn_start(void *arg)
{
	struct accept_item *ai = arg;
	net_worker_t *w = ai->w;

	net_conn_t *c = calloc(1, sizeof(*c));
	c->worker = w;
	c->ops = ai->l->ops;
	c->fd = ai->fd;
	c->id = atomic_fetch_add(&w->srv->next_id, 1);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (ai->ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ai->ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		c->loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
		snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
	} else if (ai->ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ai->ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		c->loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
			      (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
			       sin6->sin6_addr.s6_addr[12] == 127);
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, port);
	}
	snprintf(c->peer_ip, sizeof(c->peer_ip), "%s", host);
	if (ai->l->implicit_tls) {
		c->bev = tls_bufferevent_accept(w->srv->tls, w->base, c->fd);
		c->tls = c->bev != NULL;
	} else {
		c->bev = bufferevent_socket_new(w->base, c->fd, BEV_OPT_DEFER_CALLBACKS);
	}
	c->kick = event_new(w->base, -1, 0, kick_cb, c);
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	void *proto_ctx = ai->l->proto_ctx;
	free(ai);
	if (c->bev == NULL) {
		c->bev = bufferevent_socket_new(w->base, -1, 0);
		c->closed = 1;
		conn_free(c);
		return;
	}
	conn_setup_bev(c);
	c->in_input = 1;
	c->session = c->ops->open(c, proto_ctx);
	c->in_input = 0;
	if (c->session == NULL) {
		c->closed = 1;
		conn_free(c);
		return;
	}
	if (c->closed)
		conn_free(c);
}

int net_conn_readline(net_conn_t *c, size_t max, char **line_r, size_t *len_r)
{
	struct evbuffer *in = conn_input(c);
	for (;;) {
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (p.pos < 0) {
			size_t have = evbuffer_get_length(in);
			if (have >= max || c->discarding) {
				/* Keep a trailing CR: it may pair with the coming LF. */
				size_t drop = have;
				if (drop > 0) {
					unsigned char last;
					struct evbuffer_ptr lp;
					evbuffer_ptr_set(in, &lp, have - 1, EVBUFFER_PTR_SET);
					if (evbuffer_copyout_from(in, &lp, &last, 1) == 1 && last == '\r')
						drop--;
				}
				evbuffer_drain(in, drop);
				c->discarding = 1;
			}
			return 0;
		}
		size_t len = (size_t)p.pos;
		if (c->discarding || len + eol_len > max) {
			evbuffer_drain(in, len + eol_len);
			c->discarding = 0;
			return -1;
		}
		if (c->line_cap < len + 1) {
			size_t cap = len + 1 < 256 ? 256 : len + 1;
			char *n = realloc(c->line, cap);
			if (n == NULL)
				return -1;
			c->line = n;
			c->line_cap = cap;
		}
		evbuffer_remove(in, c->line, len);
		evbuffer_drain(in, eol_len);
		c->line[len] = '\0';
		*line_r = c->line;
		*len_r = len;
		return 1;
	}
}

size_t net_conn_peek(net_conn_t *c, const char **data_r)
{
	struct evbuffer *in = conn_input(c);
	struct evbuffer_iovec v;
	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) {
		*data_r = NULL;
		return 0;
	}
	*data_r = v.iov_base;
	return v.iov_len;
}

size_t net_conn_input_len(net_conn_t *c)
{
	return evbuffer_get_length(conn_input(c));
}

void net_conn_consume(net_conn_t *c, size_t len)
{
	evbuffer_drain(c->z != NULL ? c->z->in : bufferevent_get_input(c->bev), len);
}

int net_conn_can_process(net_conn_t *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) < c->worker->srv->output_high;
}

void net_conn_write(net_conn_t *c, const void *data, size_t len)
{
	if (c->closed)
		return;
	if (c->z != NULL) {
		if (len == 0)
			return;
		z_deflate(c, data, len, Z_NO_FLUSH);
		if (!c->z->flush_pending) {
			c->z->flush_pending = 1;
			event_active(c->z->flush, EV_READ, 0);
		}
		return;
	}
	bufferevent_write(c->bev, data, len);
}

void *net_conn_write_reserve(net_conn_t *c, size_t len)
{
	if (c->closed || c->z != NULL)
		return NULL;
	/* One extent: contiguous room of at least len octets. */
	if (evbuffer_reserve_space(bufferevent_get_output(c->bev), (ev_ssize_t)len, &c->reserved,
				   1) != 1)
		return NULL;
	return c->reserved.iov_base;
}

void net_conn_write_commit(net_conn_t *c, size_t used)
{
	if (used == 0)
		return;
	c->reserved.iov_len = used;
	(void)evbuffer_commit_space(bufferevent_get_output(c->bev), &c->reserved, 1);
}

void net_conn_printf(net_conn_t *c, const char *fmt, ...)
{
	if (c->closed)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (c->z == NULL) {
		evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
		va_end(ap);
		return;
	}
	char buf[1024];
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n >= 0 && (size_t)n < sizeof(buf)) {
		net_conn_write(c, buf, (size_t)n);
	} else if (n >= 0) {
		char *big = malloc((size_t)n + 1);
		if (big != NULL) {
			vsnprintf(big, (size_t)n + 1, fmt, ap2);
			net_conn_write(c, big, (size_t)n);
			free(big);
		}
	}
	va_end(ap2);
	va_end(ap);
}

size_t net_conn_output_len(net_conn_t *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void net_conn_set_timeout(net_conn_t *c, unsigned seconds)
{
	c->timeout = seconds;
	if (c->bev == NULL)
		return;
	if (seconds == 0) {
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	} else {
		struct timeval tv = { .tv_sec = seconds };
		/* The write timeout catches peers that stop reading our output. */
		bufferevent_set_timeouts(c->bev, &tv, &tv);
	}
}

void net_conn_pause(net_conn_t *c)
{
	c->paused = 1;
	bufferevent_disable(c->bev, EV_READ);
}

void net_conn_resume(net_conn_t *c)
{
	if (c->closed)
		return;
	c->paused = 0;
	if (!c->closing && !c->tls_pending)
		bufferevent_enable(c->bev, EV_READ);
	conn_kick(c);
}

void net_conn_close(net_conn_t *c)
{
	if (c->closed || c->closing)
		return;
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	z_flush_now(c); /* the last words may still sit in the compressor */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		if (c->in_input) {
			/* Freed on the way out of the input callback. */
			c->closed = 1;
			c->ops->closed(c->session);
			c->session = NULL;
		} else {
			conn_gone(c);
		}
		return;
	}
	/* Bound the time we wait for a peer to read our last words. */
	struct timeval tv = { .tv_sec = 10 };
	bufferevent_set_timeouts(c->bev, NULL, &tv);
}

int net_conn_starttls(net_conn_t *c)
{
	/* TLS goes below compression (RFC 4978 3), never above it */
	if (!net_conn_tls_available(c) || c->tls_pending || c->z != NULL)
		return -1;
	/* CVE-2011-0411 class: nothing the client sent before the handshake
	 * may be taken as a command after it. */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	c->discarding = 0;
	c->tls_pending = 1;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		write_cb(c->bev, c); /* nothing to flush: switch now */
	return 0;
}

/* ------------------------------------------------------------------ server */

unsigned net_server_connections(net_server_t *srv)
{
	return atomic_load(&srv->n_conns);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	(void)evl;
	struct listener *l = arg;
	net_server_t *srv = l->srv;
	if (srv->stopping || atomic_load(&srv->n_conns) >= srv->max_connections) {
		if (!l->implicit_tls && !srv->stopping) {
			const char *msg = l->ops->busy_reply;
			if (msg != NULL) {
				ssize_t w = send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
				(void)w;
			}
		}
		log_warn("net", 0, "event=refused reason=%s",
			 srv->stopping ? "stopping" : "max-connections");
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	atomic_fetch_add(&srv->n_conns, 1);
	struct accept_item *ai = calloc(1, sizeof(*ai));
	ai->fd = fd;
	ai->l = l;
	memcpy(&ai->ss, sa, (size_t)salen < sizeof(ai->ss) ? (size_t)salen : sizeof(ai->ss));
	net_worker_t *w = &srv->workers[srv->next_worker++ % srv->n_workers];
	ai->w = w;
	net_worker_post(w, conn_start, ai);
}

void net_block_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

net_server_t *net_server_new(unsigned workers, unsigned max_connections, size_t output_high,
			     tls_server_t *tls)
{
	static int threads_ready;
	if (!threads_ready) {
		evthread_use_pthreads();
		threads_ready = 1;
	}
	if (workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		workers = n > 0 ? (unsigned)n : 1;
	}
	net_server_t *srv = calloc(1, sizeof(*srv));
	srv->base = event_base_new();
	srv->n_workers = workers;
	srv->max_connections = max_connections;
	srv->output_high = output_high;
	srv->tls = tls;
	atomic_init(&srv->n_conns, 0);
	atomic_init(&srv->next_id, ((uint64_t)time(NULL) & 0xffffff) << 20 | 1);
	srv->workers = calloc(workers, sizeof(net_worker_t));
	for (unsigned i = 0; i < workers; i++) {
		net_worker_t *w = &srv->workers[i];
		w->srv = srv;
		w->base = event_base_new();
		pthread_mutex_init(&w->lock, NULL);
		w->notify = event_new(w->base, -1, EV_PERSIST, worker_notify_cb, w);
		event_add(w->notify, NULL);
	}
	return srv;
}

int net_server_listen(net_server_t *srv, const char *host, const char *port, int implicit_tls,
		      const struct net_proto_ops *ops, void *proto_ctx, const char **error_r)
{
	static _Thread_local char err[256];
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, sizeof(err), "%s:%s: %s", host, port, gai_strerror(rc));
		*error_r = err;
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (res->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, sizeof(err), "cannot listen on %s:%s: %s", host, port, strerror(errno));
		*error_r = err;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	struct listener *l = calloc(1, sizeof(*l));
	l->srv = srv;
	l->ops = ops;
	l->proto_ctx = proto_ctx;
	l->implicit_tls = implicit_tls;
	l->evl = evconnlistener_new(srv->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	l->next = srv->listeners;
	srv->listeners = l;

	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";
	unsigned bound = 0;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
		bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		log_info("net", 0, "event=listen proto=%s addr=%s:%u tls=%s", ops->name, addr, bound,
			 implicit_tls ? "implicit" : "starttls");
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
		bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		log_info("net", 0, "event=listen proto=%s addr=[%s]:%u tls=%s", ops->name, addr,
			 bound, implicit_tls ? "implicit" : "starttls");
	}
	return 0;
}

static void worker_shutdown(void *arg)
{
	net_worker_t *w = arg;
	w->stopping = 1;
	for (net_conn_t *c = w->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (!c->closed && !c->closing)
			c->ops->shutdown(c->session);
	}
	if (w->n_conns == 0)
		event_base_loopbreak(w->base);
}

static void stop_listening(net_server_t *srv)
{
	for (struct listener *l = srv->listeners, *next; l != NULL; l = next) {
		next = l->next;
		evconnlistener_free(l->evl);
		free(l);
	}
	srv->listeners = NULL;
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	net_server_t *srv = arg;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (atomic_load(&srv->n_conns) == 0 ||
	    now.tv_sec > srv->stop_deadline.tv_sec ||
	    (now.tv_sec == srv->stop_deadline.tv_sec && now.tv_nsec >= srv->stop_deadline.tv_nsec)) {
		event_base_loopbreak(srv->base);
		return;
	}
	struct timeval tv = { .tv_usec = 50000 };
	evtimer_add(srv->grace_timer, &tv);
}

static unsigned grace_seconds;

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	net_server_t *srv = arg;
	if (sig == SIGHUP) {
		log_info("net", 0, "event=sighup");
		if (srv->on_hup != NULL)
			srv->on_hup(srv->hup_arg);
		return;
	}
	if (srv->stopping)
		return;
	srv->stopping = 1;
	log_info("net", 0, "event=stopping signal=%d connections=%u", (int)sig,
		 atomic_load(&srv->n_conns));
	stop_listening(srv);
	for (unsigned i = 0; i < srv->n_workers; i++)
		net_worker_post(&srv->workers[i], worker_shutdown, &srv->workers[i]);
	clock_gettime(CLOCK_MONOTONIC, &srv->stop_deadline);
	srv->stop_deadline.tv_sec += grace_seconds;
	srv->grace_timer = evtimer_new(srv->base, grace_cb, srv);
	struct timeval tv = { .tv_usec = 50000 };
	evtimer_add(srv->grace_timer, &tv);
}

int net_server_run(net_server_t *srv, unsigned grace, void (*on_hup)(void *), void *arg)
{
	srv->on_hup = on_hup;
	srv->hup_arg = arg;
	grace_seconds = grace;
	signal(SIGPIPE, SIG_IGN);
	srv->sig_term = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, signal_cb, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, signal_cb, srv);
	evsignal_add(srv->sig_term, NULL);
	evsignal_add(srv->sig_int, NULL);
	evsignal_add(srv->sig_hup, NULL);
	/* Signals were blocked since start-up (net_block_signals): those that
	 * arrived meanwhile are delivered to the handlers now. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		net_worker_t *w = &srv->workers[i];
		pthread_create(&w->thread, NULL, worker_main, w);
	}
	event_base_dispatch(srv->base);
	unsigned left = atomic_load(&srv->n_conns);
	log_info("net", 0, "event=stopped connections_left=%u", left);
	if (left == 0) {
		for (unsigned i = 0; i < srv->n_workers; i++)
			pthread_join(srv->workers[i].thread, NULL);
		return 0;
	}
	return 1; /* workers still hold connections: the caller exits anyway */
}

void net_server_free(net_server_t *srv)
{
	if (srv == NULL)
		return;
	stop_listening(srv);
	/* Workers are joined only when they finished; freeing their bases is
	 * then safe. Otherwise the process is about to exit. */
	if (atomic_load(&srv->n_conns) == 0) {
		for (unsigned i = 0; i < srv->n_workers; i++) {
			net_worker_t *w = &srv->workers[i];
			event_free(w->notify);
			event_base_free(w->base);
			pthread_mutex_destroy(&w->lock);
		}
		free(srv->workers);
		if (srv->grace_timer)
			event_free(srv->grace_timer);
		if (srv->sig_term) {
			event_free(srv->sig_term);
			event_free(srv->sig_int);
			event_free(srv->sig_hup);
		}
		event_base_free(srv->base);
		free(srv);
	}
}
