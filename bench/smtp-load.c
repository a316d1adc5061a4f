/*
 * smtp-load - SMTP load generator: many persistent sessions, PIPELINING.
 *
 *   smtp-load [-s SESSIONS] [-l SIZE] [-m MESSAGES] [-f FROM] [-t TO] [-P]
 *             HOST:PORT
 *
 * Opens SESSIONS connections, sends EHLO on each, then sends MESSAGES
 * messages in total over them, each session one transaction after the
 * other on the same connection: MAIL, RCPT and DATA in one write when the
 * server offers PIPELINING (RFC 2920; -P: never pipeline), the content
 * after the 354, then waits for the final reply before the next MAIL.
 * SIZE is the body length in bytes (lines of 78 characters + CRLF), after a
 * few header lines. Any unexpected reply ends the run with exit status 1.
 *
 * Prints the rate and the latency of a transaction (MAIL sent to the final
 * 250 received) and of the commit alone (final dot sent to the 250):
 *   messages 20000 seconds 2.85 msgs/s 7017
 *   latency ms txn p50 2.61 p90 3.50 p99 5.01 max 12.3 commit p50 ...
 *
 * Plain poll(2), one thread, no dependencies: cc -O2 -o smtp-load smtp-load.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

enum state {
	ST_GREETING,  /* waiting for 220 */
	ST_EHLO,      /* waiting for the EHLO reply */
	ST_MAIL,      /* waiting for the MAIL reply (and more, pipelined) */
	ST_RCPT,
	ST_DATA,      /* waiting for 354 */
	ST_DOT,       /* content sent (or being sent); waiting for 250 */
	ST_QUIT,      /* waiting for 221 */
	ST_DONE,
};

struct session {
	int fd;
	enum state state;
	int pipelining;
	int index;
	/* output: up to three segments, written with writev */
	struct iovec iov[3];
	int n_iov;
	char cmd[1024];       /* commands, or the per-message header */
	/* input */
	char in[8192];
	size_t in_len;
	char reply_kw[4];     /* PIPELINING seen in the EHLO reply */
	double t_mail, t_dot;
};

static const char *opt_from = "sender@remote.example";
static const char *opt_to = "alice@example.test";
static char *body;          /* body followed by ".\r\n" */
static size_t body_len;
static long total, started, finished;
static double *lat_txn, *lat_commit;
static int no_pipelining;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	fputs("smtp-load: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void make_body(size_t size)
{
	size_t o = 0;
	int line = 0;

	body = malloc(size + 3 + 80);
	if (body == NULL)
		die("out of memory");
	while (o < size) {
		/* a line of up to 78 characters + CRLF, never starting with "." */
		size_t n = size - o;
		if (n > 80)
			n = 80;
		if (n < 3) {
			memset(body + o, 'X', n);
			o += n;
			break;
		}
		body[o] = (char)('0' + line++ % 10);
		memset(body + o + 1, 'X', n - 3);
		body[o + n - 2] = '\r';
		body[o + n - 1] = '\n';
		o += n;
	}
	/* end with CRLF so that the terminator is on a line of its own */
	if (o >= 2 && (body[o - 2] != '\r' || body[o - 1] != '\n')) {
		body[o++] = '\r';
		body[o++] = '\n';
	}
	memcpy(body + o, ".\r\n", 3);
	body_len = o + 3;
}

static void queue_out(struct session *s, const char *a, size_t alen, const char *b,
		      size_t blen)
{
	s->n_iov = 0;
	if (alen > 0)
		s->iov[s->n_iov++] = (struct iovec){ (void *)a, alen };
	if (blen > 0)
		s->iov[s->n_iov++] = (struct iovec){ (void *)b, blen };
}

static void flush_out(struct session *s)
{
	while (s->n_iov > 0) {
		ssize_t n = writev(s->fd, s->iov, s->n_iov);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0)
			die("session %d: write: %s", s->index, strerror(errno));
		size_t left = (size_t)n;
		int i = 0;
		while (i < s->n_iov && left >= s->iov[i].iov_len)
			left -= s->iov[i++].iov_len;
		memmove(s->iov, s->iov + i, (size_t)(s->n_iov - i) * sizeof(s->iov[0]));
		s->n_iov -= i;
		if (s->n_iov > 0) {
			s->iov[0].iov_base = (char *)s->iov[0].iov_base + left;
			s->iov[0].iov_len -= left;
		}
	}
	if (s->state == ST_DOT && s->t_dot == 0)
		s->t_dot = now();  /* the final dot has left */
}

static void send_cmd(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void send_cmd(struct session *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->cmd, sizeof(s->cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s->cmd))
		die("command too long");
	queue_out(s, s->cmd, (size_t)n, NULL, 0);
	flush_out(s);
}

/* Start the next transaction on s, or QUIT when all are started. */
static void next_message(struct session *s)
{
	if (started >= total) {
		send_cmd(s, "QUIT\r\n");
		s->state = ST_QUIT;
		return;
	}
	started++;
	s->t_mail = now();
	s->state = ST_MAIL;
	if (s->pipelining)
		send_cmd(s, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", opt_from, opt_to);
	else
		send_cmd(s, "MAIL FROM:<%s>\r\n", opt_from);
}

static void send_content(struct session *s)
{
	char date[64];
	time_t t = time(NULL);
	struct tm tm;
	int n;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	n = snprintf(s->cmd, sizeof(s->cmd),
		     "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
		     "Message-ID: <%ld.%d.%ld@smtp-load.invalid>\r\n"
		     "Subject: smtp-load %ld\r\n\r\n",
		     opt_from, opt_to, date, (long)getpid(), s->index, started, started);
	queue_out(s, s->cmd, (size_t)n, body, body_len);
	s->state = ST_DOT;
	s->t_dot = 0;
	flush_out(s);
}

/* One complete reply (all lines) of code `code`. */
static void on_reply(struct session *s, int code)
{
	double t;

	switch (s->state) {
	case ST_GREETING:
		if (code != 220)
			die("session %d: greeting %d", s->index, code);
		send_cmd(s, "EHLO client.remote.example\r\n");
		s->state = ST_EHLO;
		break;
	case ST_EHLO:
		if (code != 250)
			die("session %d: EHLO: %d", s->index, code);
		s->pipelining = s->reply_kw[0] && !no_pipelining;
		next_message(s);
		break;
	case ST_MAIL:
		if (code != 250)
			die("session %d: MAIL: %d", s->index, code);
		s->state = ST_RCPT;
		if (!s->pipelining)
			send_cmd(s, "RCPT TO:<%s>\r\n", opt_to);
		break;
	case ST_RCPT:
		if (code != 250 && code != 251)
			die("session %d: RCPT: %d", s->index, code);
		s->state = ST_DATA;
		if (!s->pipelining)
			send_cmd(s, "DATA\r\n");
		break;
	case ST_DATA:
		if (code != 354)
			die("session %d: DATA: %d", s->index, code);
		send_content(s);
		break;
	case ST_DOT:
		if (code != 250)
			die("session %d: end of data: %d", s->index, code);
		t = now();
		lat_txn[finished] = t - s->t_mail;
		lat_commit[finished] = t - s->t_dot;
		finished++;
		next_message(s);
		break;
	case ST_QUIT:
		close(s->fd);
		s->fd = -1;
		s->state = ST_DONE;
		break;
	case ST_DONE:
		break;
	}
}

static void on_input(struct session *s)
{
	ssize_t n = read(s->fd, s->in + s->in_len, sizeof(s->in) - s->in_len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0)
		die("session %d: read: %s", s->index, strerror(errno));
	if (n == 0) {
		if (s->state == ST_QUIT) {
			on_reply(s, 221);
			return;
		}
		die("session %d: server closed the connection", s->index);
	}
	s->in_len += (size_t)n;
	for (;;) {
		char *eol = memchr(s->in, '\n', s->in_len);
		size_t line_len;

		if (eol == NULL) {
			if (s->in_len == sizeof(s->in))
				die("session %d: reply line too long", s->index);
			return;
		}
		line_len = (size_t)(eol - s->in) + 1;
		if (line_len < 4 || s->in[0] < '2' || s->in[0] > '5')
			die("session %d: bad reply line: %.*s", s->index, (int)line_len, s->in);
		if (s->state == ST_EHLO && line_len >= 14 &&
		    strncasecmp(s->in + 4, "PIPELINING", 10) == 0)
			s->reply_kw[0] = 1;
		int last = s->in[3] != '-';
		int code = atoi(s->in);
		memmove(s->in, s->in + line_len, s->in_len - line_len);
		s->in_len -= line_len;
		if (last) {
			on_reply(s, code);
			if (s->fd < 0)
				return;
		}
	}
}

static int connect_to(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int fd, one = 1, rc;

	if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host))
		die("%s: want HOST:PORT", hostport);
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
		die("%s: %s", hostport, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
		die("connect %s: %s", hostport, strerror(errno));
	freeaddrinfo(res);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double p)
{
	long i = (long)(p / 100.0 * (double)n);

	if (i >= n)
		i = n - 1;
	return v[i] * 1e3;
}

static void usage(void)
{
	fprintf(stderr, "usage: smtp-load [-s SESSIONS] [-l SIZE] [-m MESSAGES] "
			"[-f FROM] [-t TO] [-P] HOST:PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int n_sessions = 20, c;
	long size = 4096;
	struct session *ss;
	struct pollfd *pfd;
	double t0, t1;

	total = 20000;
	while ((c = getopt(argc, argv, "s:l:m:f:t:P")) != -1) {
		switch (c) {
		case 's': n_sessions = atoi(optarg); break;
		case 'l': size = atol(optarg); break;
		case 'm': total = atol(optarg); break;
		case 'f': opt_from = optarg; break;
		case 't': opt_to = optarg; break;
		case 'P': no_pipelining = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || n_sessions < 1 || size < 0 || total < 1)
		usage();
	make_body((size_t)size);
	lat_txn = calloc((size_t)total, sizeof(double));
	lat_commit = calloc((size_t)total, sizeof(double));
	ss = calloc((size_t)n_sessions, sizeof(*ss));
	pfd = calloc((size_t)n_sessions, sizeof(*pfd));
	if (lat_txn == NULL || lat_commit == NULL || ss == NULL || pfd == NULL)
		die("out of memory");

	t0 = now();
	for (int i = 0; i < n_sessions; i++) {
		ss[i].index = i;
		ss[i].fd = connect_to(argv[optind]);
		ss[i].state = ST_GREETING;
	}
	for (;;) {
		int live = 0;

		for (int i = 0; i < n_sessions; i++) {
			pfd[i].fd = ss[i].fd;
			pfd[i].events = ss[i].fd < 0 ? 0 : POLLIN | (ss[i].n_iov > 0 ? POLLOUT : 0);
			pfd[i].revents = 0;
			live += ss[i].fd >= 0;
		}
		if (live == 0)
			break;
		if (poll(pfd, (nfds_t)n_sessions, 60000) <= 0)
			die("poll: %s", errno ? strerror(errno) : "60 s without progress");
		for (int i = 0; i < n_sessions; i++) {
			if (pfd[i].revents & POLLOUT)
				flush_out(&ss[i]);
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				on_input(&ss[i]);
		}
	}
	t1 = now();

	if (finished != total)
		die("only %ld of %ld messages accepted", finished, total);
	qsort(lat_txn, (size_t)total, sizeof(double), cmp_double);
	qsort(lat_commit, (size_t)total, sizeof(double), cmp_double);
	printf("messages %ld seconds %.2f msgs/s %.0f\n", total, t1 - t0,
	       (double)total / (t1 - t0));
	printf("latency ms txn p50 %.2f p90 %.2f p99 %.2f max %.1f"
	       " | commit p50 %.2f p90 %.2f p99 %.2f max %.1f\n",
	       pct(lat_txn, total, 50), pct(lat_txn, total, 90), pct(lat_txn, total, 99),
	       lat_txn[total - 1] * 1e3, pct(lat_commit, total, 50),
	       pct(lat_commit, total, 90), pct(lat_commit, total, 99),
	       lat_commit[total - 1] * 1e3);
	return 0;
}
