/*
 * pop3-load - POP3 load generator for bench/pop3-load (Petrel against Dovecot).
 *
 *   pop3-load [-c CLIENTS] [-t SECS] [-w SECS] [-u USERS] [-U FMT] [-P PASS]
 *             [-p DEPTH] HOST:PORT
 *
 * One thread, epoll, non-blocking sockets. Each client runs sessions back to
 * back: connect, greeting, USER, PASS, STAT, LIST, UIDL, RETR 1..n (n from
 * STAT), QUIT, close; client i logs in as user i % USERS (default USERS =
 * CLIENTS, so that no two sessions want the same maildrop at once). Without
 * -p every command waits for its reply, like a raw-socket client; with -p
 * DEPTH up to DEPTH RETRs are in flight (RFC 2449 PIPELINING).
 *
 * Prints messages/s (RETRs completed in the measured window), MB/s,
 * sessions/s and latency percentiles of RETR and of the login (USER+PASS).
 * Each session must retrieve exactly STAT's count with LIST's octet total
 * (counted without the byte-stuffing dots); any -ERR or mismatch is an error
 * and makes the exit status 1.
 *
 * Build: cc -O2 -o pop3-load pop3-load.c (bench/pop3-load does it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum step { P_GREETING, P_USER, P_PASS, P_STAT, P_LIST, P_UIDL, P_RETR, P_QUIT };

struct client {
	int fd;
	int idx, user;
	int connecting;
	int epout;
	enum step step;       /* reply expected next */
	int multi;            /* inside a multi-line body */
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;
	long n_msgs, octets;  /* STAT */
	long next_retr;       /* next message number to send RETR for */
	long done_retr;       /* RETR replies received */
	long body_octets;     /* RETR octets this session, unstuffed */
	int at_line_start;
	uint64_t t_login, *t_retr; /* send times, a ring of DEPTH */
};

static int n_clients = 4, n_users = -1, depth = 1;
static double measure_secs = 20, warmup_secs = 3;
static const char *user_fmt = "user%d@example.test";
static const char *password = "bench-password";
static struct sockaddr_in addr;
static int epfd;
static struct client *clients;
static uint64_t t_measure, t_end;
static uint64_t msgs, bytes, sessions, errors, conn_errors, logins;
static int printed;
static uint32_t *lat_retr, *lat_login;
static size_t n_lat_retr, cap_lat_retr, n_lat_login, cap_lat_login;

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pop3-load: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL)
		die("out of memory");
	return p;
}

static void push(uint32_t **a, size_t *n, size_t *cap, uint64_t v)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 65536;
		*a = xrealloc(*a, *cap * sizeof(uint32_t));
	}
	(*a)[(*n)++] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int in_window(uint64_t t)
{
	return t >= t_measure && t <= t_end;
}

static void set_epout(struct client *c, int on)
{
	if (c->epout == on)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->epout = on;
}

static void out_printf(struct client *c, const char *fmt, ...)
{
	char line[300];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + (size_t)n > c->out_cap) {
		c->out_cap = (c->out_len + (size_t)n) * 2 + 256;
		c->out = xrealloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, line, (size_t)n);
	c->out_len += (size_t)n;
}

static int flush_out(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				set_epout(c, 1);
				return 0;
			}
			if (errno == EINTR)
				continue;
			return -1;
		}
		c->out_off += (size_t)w;
	}
	c->out_off = c->out_len = 0;
	set_epout(c, 0);
	return 0;
}

static void client_connect(struct client *c);

static void client_close(struct client *c)
{
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->in_len = c->out_len = c->out_off = 0;
	c->epout = 0;
}

static void restart(struct client *c)
{
	client_close(c);
	if (now_us() < t_end)
		client_connect(c);
}

static void fail(struct client *c, int conn, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (now_us() >= t_end)
		return; /* the run is over; whatever happens now does not count */
	if (conn)
		conn_errors++;
	else
		errors++;
	if (printed++ < 10)
		fprintf(stderr, "pop3-load: client %d (user %d): %s\n", c->idx, c->user, why);
	restart(c);
}

static void send_retrs(struct client *c)
{
	while (c->next_retr <= c->n_msgs && c->next_retr - c->done_retr <= depth) {
		c->t_retr[c->next_retr % depth] = now_us();
		out_printf(c, "RETR %ld\r\n", c->next_retr);
		c->next_retr++;
	}
}

/* A status line ("+OK ..." or "-ERR ...") for c->step; the line's CRLF is
 * still in the buffer when a body follows. Returns 1 when the client was
 * closed. */
static int status_line(struct client *c, const char *line, size_t len)
{
	uint64_t t = now_us();
	if (len < 3 || memcmp(line, "+OK", 3) != 0) {
		fail(c, 0, "step %d: %.*s", (int)c->step, (int)(len > 200 ? 200 : len), line);
		return 1;
	}
	char user[128];
	switch (c->step) {
	case P_GREETING:
		snprintf(user, sizeof(user), user_fmt, c->user);
		out_printf(c, "USER %s\r\n", user);
		c->t_login = t;
		c->step = P_USER;
		break;
	case P_USER:
		out_printf(c, "PASS %s\r\n", password);
		c->step = P_PASS;
		break;
	case P_PASS:
		if (in_window(t)) {
			logins++;
			push(&lat_login, &n_lat_login, &cap_lat_login, t - c->t_login);
		}
		out_printf(c, "STAT\r\n");
		c->step = P_STAT;
		break;
	case P_STAT:
		if (sscanf(line, "+OK %ld %ld", &c->n_msgs, &c->octets) != 2) {
			fail(c, 0, "bad STAT reply: %.*s", (int)len, line);
			return 1;
		}
		out_printf(c, "LIST\r\n");
		c->step = P_LIST;
		c->multi = 1;
		break;
	case P_LIST:
		c->multi = 1;
		break;
	case P_UIDL:
		c->multi = 1;
		break;
	case P_RETR:
		c->multi = 1;
		c->at_line_start = 0; /* the status line's CRLF comes first */
		break;
	case P_QUIT:
		if (in_window(t))
			sessions++;
		restart(c);
		return 1;
	}
	return 0;
}

/* The end of a multi-line reply. */
static int body_done(struct client *c)
{
	uint64_t t = now_us();
	switch (c->step) {
	case P_LIST:
		out_printf(c, "UIDL\r\n");
		c->step = P_UIDL;
		break;
	case P_UIDL:
		c->next_retr = 1;
		c->done_retr = 0;
		c->body_octets = 0;
		if (c->n_msgs == 0) {
			out_printf(c, "QUIT\r\n");
			c->step = P_QUIT;
			break;
		}
		c->step = P_RETR;
		send_retrs(c);
		break;
	case P_RETR:
		c->done_retr++;
		if (in_window(t)) {
			msgs++;
			push(&lat_retr, &n_lat_retr, &cap_lat_retr, t - c->t_retr[c->done_retr % depth]);
		}
		if (c->done_retr == c->n_msgs) {
			if (c->body_octets != c->octets) {
				fail(c, 0, "RETR sent %ld octets, STAT said %ld", c->body_octets,
				     c->octets);
				return 1;
			}
			out_printf(c, "QUIT\r\n");
			c->step = P_QUIT;
		} else {
			send_retrs(c);
		}
		break;
	default:
		break;
	}
	return 0;
}

/* Returns 1 when the client was closed. */
static int process(struct client *c)
{
	size_t pos = 0;
	while (pos < c->in_len) {
		char *s = c->in + pos;
		size_t avail = c->in_len - pos;
		if (c->multi) {
			/* line by line: count unstuffed octets, stop at "." */
			char *e = memmem(s, avail, "\r\n", 2);
			if (e == NULL)
				break;
			size_t len = (size_t)(e - s) + 2;
			if (!c->at_line_start) {
				/* the CRLF that ended the status line */
				c->at_line_start = 1;
				pos += len;
				continue;
			}
			if (len == 3 && s[0] == '.') {
				pos += len;
				c->multi = 0;
				if (body_done(c))
					return 1;
				continue;
			}
			if (c->step == P_RETR) {
				long n = (long)len - (s[0] == '.' ? 1 : 0);
				c->body_octets += n;
				if (in_window(now_us()))
					bytes += (uint64_t)n;
			}
			pos += len;
			continue;
		}
		char *e = memmem(s, avail, "\r\n", 2);
		if (e == NULL)
			break;
		size_t len = (size_t)(e - s);
		int multi_follows = c->step == P_LIST || c->step == P_UIDL || c->step == P_RETR;
		/* leave the CRLF when a body follows (see at_line_start) */
		pos += multi_follows && len >= 3 && memcmp(s, "+OK", 3) == 0 ? len : len + 2;
		c->at_line_start = 0;
		if (status_line(c, s, len))
			return 1;
	}
	if (pos > 0) {
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
	return 0;
}

static void client_connect(struct client *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->connecting = 1;
	c->step = P_GREETING;
	c->multi = 0;
	c->epout = 1;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS)
		fail(c, 1, "connect: %s", strerror(errno));
}

static void on_event(struct client *c, uint32_t evs)
{
	if (c->fd < 0)
		return;
	if (c->connecting) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			fail(c, 1, "connect: %s", strerror(err));
			return;
		}
		c->connecting = 0;
		set_epout(c, 0);
	}
	if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		for (;;) {
			if (c->in_cap - c->in_len < 65536) {
				c->in_cap = c->in_len + 262144;
				c->in = xrealloc(c->in, c->in_cap);
			}
			ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
			if (r < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				if (errno == EINTR)
					continue;
				fail(c, 1, "recv: %s", strerror(errno));
				return;
			}
			if (r == 0) {
				fail(c, 1, "connection closed by the server (step %d)", (int)c->step);
				return;
			}
			c->in_len += (size_t)r;
			if (process(c))
				return;
			if ((size_t)r < 65536)
				break;
		}
	}
	if (c->fd >= 0 && c->out_off < c->out_len && flush_out(c) < 0)
		fail(c, 1, "send failed");
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void pct(const char *name, uint32_t *a, size_t n)
{
	if (n == 0)
		return;
	qsort(a, n, sizeof(*a), cmp_u32);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += a[i];
	printf("latency %s ms: avg %.3f p50 %.3f p99 %.3f max %.3f\n", name, sum / (double)n / 1e3,
	       a[n / 2] / 1e3, a[n * 99 / 100] / 1e3, a[n - 1] / 1e3);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "c:t:w:u:U:P:p:")) != -1) {
		switch (opt) {
		case 'c': n_clients = atoi(optarg); break;
		case 't': measure_secs = atof(optarg); break;
		case 'w': warmup_secs = atof(optarg); break;
		case 'u': n_users = atoi(optarg); break;
		case 'U': user_fmt = optarg; break;
		case 'P': password = optarg; break;
		case 'p': depth = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: pop3-load [-c CLIENTS] [-t SECS] [-w SECS] [-u USERS] "
					"[-U FMT] [-P PASS] [-p DEPTH] HOST:PORT\n");
			return 2;
		}
	}
	if (optind + 1 != argc)
		die("need HOST:PORT");
	char host[256];
	snprintf(host, sizeof(host), "%s", argv[optind]);
	char *colon = strrchr(host, ':');
	if (colon == NULL)
		die("need HOST:PORT");
	*colon = 0;
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		die("%s: not an IPv4 address", host);
	if (n_clients < 1 || depth < 1)
		die("need CLIENTS >= 1, DEPTH >= 1");
	if (n_users < 1)
		n_users = n_clients;

	clients = calloc((size_t)n_clients, sizeof(*clients));
	if (clients == NULL)
		die("out of memory");
	epfd = epoll_create1(EPOLL_CLOEXEC);
	uint64_t t0 = now_us();
	t_measure = t0 + (uint64_t)(warmup_secs * 1e6);
	t_end = t_measure + (uint64_t)(measure_secs * 1e6);
	for (int i = 0; i < n_clients; i++) {
		struct client *c = &clients[i];
		c->fd = -1;
		c->idx = i;
		c->user = i % n_users;
		c->t_retr = calloc((size_t)depth + 1, sizeof(uint64_t));
		client_connect(c);
	}
	struct epoll_event evs[256];
	while (now_us() < t_end) {
		int n = epoll_wait(epfd, evs, 256, 50);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		for (int i = 0; i < n_clients; i++) {
			struct client *c = &clients[i];
			if (c->fd >= 0 && !c->connecting && c->out_off < c->out_len &&
			    flush_out(c) < 0)
				fail(c, 1, "send failed");
		}
	}
	double secs = (double)(t_end - t_measure) / 1e6;
	printf("clients %d users %d depth %d seconds %.2f\n", n_clients, n_users, depth, secs);
	printf("messages %llu msg/s %.1f MB/s %.2f sessions %llu sessions/s %.2f logins %llu "
	       "errors %llu conn_errors %llu\n",
	       (unsigned long long)msgs, (double)msgs / secs, (double)bytes / secs / 1e6,
	       (unsigned long long)sessions, (double)sessions / secs, (unsigned long long)logins,
	       (unsigned long long)errors, (unsigned long long)conn_errors);
	pct("RETR", lat_retr, n_lat_retr);
	pct("login", lat_login, n_lat_login);
	/* Connections stay open a moment: the caller reads the server's CPU
	 * time now, before processes serving them exit (Dovecot). */
	fflush(stdout);
	sleep(1);
	return errors || conn_errors ? 1 : 0;
}
