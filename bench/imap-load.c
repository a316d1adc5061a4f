/*
 * imap-load - IMAP load generator for bench/imap-load (Petrel against Dovecot).
 *
 *   imap-load [options] HOST:PORT
 *
 * One thread, epoll, non-blocking sockets: CLIENTS connections each run a
 * scripted IMAP conversation, one command at a time (no pipelining), and the
 * program prints completed operations per second for every command, with
 * latency percentiles. Every command must end in a tagged OK; anything else
 * counts as an error and makes the exit status 1.
 *
 * Modes (-m):
 *   login  a new login per session: connect, LOGIN, SELECT INBOX, FETCH an
 *          overview of 5 messages, FETCH one message's body, STORE +FLAGS
 *          (\Seen) on it, LOGOUT, close; then the same client starts again.
 *   long   one login per connection (LOGIN, SELECT INBOX), then the cycle
 *            FETCH  a:a+9 (UID FLAGS RFC822.SIZE INTERNALDATE
 *                   BODY.PEEK[HEADER.FIELDS (DATE FROM TO SUBJECT MESSAGE-ID)])
 *            FETCH  r (UID BODY.PEEK[])
 *            STORE  r +FLAGS (\Flagged)
 *            FETCH  r2 (UID FLAGS ENVELOPE BODYSTRUCTURE)
 *            STORE  r2 -FLAGS (\Flagged)
 *            FETCH  r3 (UID RFC822.SIZE BODY.PEEK[HEADER])
 *            APPEND INBOX (\Seen) {SIZE}        (synchronizing literal)
 *            STORE  * +FLAGS.SILENT (\Deleted)
 *            EXPUNGE
 *            SELECT INBOX                       (re-select, as a folder switch)
 *          until the time is up (r, r2, r3, a random). APPEND + EXPUNGE keep
 *          the mailbox size constant.
 *   seed   fill the INBOX of users 0..USERS-1 with -n messages each over
 *          CLIENTS connections (LOGIN, APPEND x n, LOGOUT per user).
 *   idle   CLIENTS connections (user = client % USERS) that LOGIN, SELECT
 *          INBOX, IDLE and stay. When all idle the program prints "READY n"
 *          and waits -H seconds (so that the caller can measure the server),
 *          then APPENDs one message to each of the first -N users over new
 *          connections and reports how long until every IDLE session of those
 *          users saw the new EXISTS. Then it exits.
 *
 * Options:
 *   -m MODE login | long | seed | idle (default long)
 *   -c N   clients (connections) in parallel (default 8)
 *   -t S   measured seconds (default 20)          -w S  warm-up seconds (default 3)
 *   -u N   users: client i logs in as user (i % N) (default: = clients)
 *   -U FMT user name format, %d = index (default user%d@example.test)
 *   -P PW  password (default bench-password)
 *   -s N   APPEND message size in bytes (default 4096; seed: sizes vary
 *          between N/2 and 3N/2)
 *   -n N   seed: messages per user (default 200)
 *   -r N   idle: connections being set up at once (default 200)
 *   -H S   idle: seconds to hold after READY (default 10)
 *   -N N   idle: users to notify (default 10)
 *
 * Build: cc -O2 -o imap-load imap-load.c (bench/imap-load does it).
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

enum mode { M_LOGIN, M_LONG, M_SEED, M_IDLE };
enum cmd { K_LOGIN, K_SELECT, K_FETCH, K_STORE, K_EXPUNGE, K_APPEND, K_LOGOUT, K_IDLE, K_COUNT };
static const char *const cmd_names[K_COUNT] = {
	"LOGIN", "SELECT", "FETCH", "STORE", "EXPUNGE", "APPEND", "LOGOUT", "IDLE"
};

enum cstate { S_FREE, S_CONNECTING, S_GREETING, S_WAIT, S_APPEND_CONT, S_IDLE_CONT, S_IDLING };

struct client {
	int fd;
	int idx;
	int user;
	int notifier;         /* idle mode: a connection that APPENDs */
	enum cstate st;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;
	char *lit;            /* APPEND literal waiting for "+" */
	size_t lit_len, lit_cap;
	size_t lit_left;      /* bytes of a server literal still to skip */
	int cont;             /* the next line continues a logical line */
	int step;             /* position in the script */
	int seeded;           /* seed mode: messages appended for this user */
	unsigned tagn;
	char tag[16];
	enum cmd cmd;
	uint64_t t_sent;
	long exists;
	int epout;
	uint64_t rng;
	int notified;
};

/* ---------------------------------------------------------------- options */
static enum mode mode = M_LONG;
static int n_clients = 8;
static double measure_secs = 20, warmup_secs = 3;
static int n_users = -1;
static const char *user_fmt = "user%d@example.test";
static const char *password = "bench-password";
static size_t msg_size = 4096;
static int seed_n = 200;
static int ramp = 200;
static double hold_secs = 10;
static int notify_users = 10;
static struct sockaddr_in addr;

/* ---------------------------------------------------------------- state */
static int epfd;
static struct client *clients;
static int n_slots;
static uint64_t t_start, t_measure, t_end;
static int measuring;
static uint64_t ops[K_COUNT], errors, sessions, conn_errors;
static uint32_t *lat[K_COUNT];
static size_t lat_n[K_COUNT], lat_cap[K_COUNT];
static uint64_t appended_total;
static int printed_errors;
/* seed */
static int seed_next_user, seed_done_users, seed_active;
/* idle */
static int idle_started, idle_count, idle_failed, in_setup;
static int notify_phase, notifiers_done;
static long notify_expected, notify_seen;
static uint64_t notify_max_us, notify_sum_us, *notify_t0;

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t rnd(struct client *c)
{
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 2685821657736338717ull;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("imap-load: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL)
		die("out of memory");
	return p;
}

/* ---------------------------------------------------------------- messages */

/* A plausible message of about `size` bytes; every 4th one is
 * multipart/alternative so that BODYSTRUCTURE has something to say. */
static size_t make_message(char *buf, size_t cap, uint64_t serial, size_t size, int user)
{
	static const char words[] =
		"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
		"incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud "
		"exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat ";
	char user_addr[128];
	unsigned long long s = (unsigned long long)serial;
	snprintf(user_addr, sizeof(user_addr), user_fmt, user);
	int multi = serial % 4 == 3;
	size_t n = (size_t)snprintf(buf, cap,
		"Return-Path: <sender%llu@remote.example>\r\n"
		"Date: Sat, 21 Nov 2026 10:%02llu:%02llu +0000\r\n"
		"From: Sender %llu <sender%llu@remote.example>\r\n"
		"To: <%s>\r\n"
		"Subject: Benchmark message %llu about item %llu\r\n"
		"Message-ID: <%llu.%d.bench@remote.example>\r\n"
		"MIME-Version: 1.0\r\n",
		s % 97, s / 60 % 60, s % 60, s % 97, s % 97, user_addr, s, s * 7919 % 1000,
		s, user);
	if (multi)
		n += (size_t)snprintf(buf + n, cap - n,
			"Content-Type: multipart/alternative; boundary=\"b-%llu\"\r\n\r\n"
			"--b-%llu\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", s, s);
	else
		n += (size_t)snprintf(buf + n, cap - n,
			"Content-Type: text/plain; charset=utf-8\r\n\r\n");
	size_t tail = multi ? 120 : 0;
	size_t wl = sizeof(words) - 1, off = serial % wl;
	size_t target = size > n + tail + 2 ? size - tail : n;
	while (n + 2 < target && n + 200 < cap) {
		size_t line = target - n - 2 < 72 ? target - n - 2 : 72;
		for (size_t i = 0; i < line; i++)
			buf[n++] = words[(off + i) % wl];
		off = (off + line) % wl;
		buf[n++] = '\r';
		buf[n++] = '\n';
	}
	if (multi)
		n += (size_t)snprintf(buf + n, cap - n,
			"\r\n--b-%llu\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
			"<p>benchmark</p>\r\n--b-%llu--\r\n", s, s);
	return n;
}

/* ---------------------------------------------------------------- output */

static void out_reserve(struct client *c, size_t more)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + more > c->out_cap) {
		c->out_cap = (c->out_len + more) * 2;
		c->out = xrealloc(c->out, c->out_cap);
	}
}

static void out_add(struct client *c, const char *data, size_t n)
{
	out_reserve(c, n);
	memcpy(c->out + c->out_len, data, n);
	c->out_len += n;
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

/* Write what is pending; EPOLLOUT is armed only while the socket is full. */
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

static void send_cmd(struct client *c, enum cmd k, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		die("command too long");
	snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagn);
	out_add(c, c->tag, strlen(c->tag));
	out_add(c, " ", 1);
	out_add(c, line, (size_t)n);
	out_add(c, "\r\n", 2);
	c->cmd = k;
	c->st = S_WAIT;
	c->t_sent = now_us();
}

/* ---------------------------------------------------------------- script */

static void client_connect(struct client *c);
static void client_close(struct client *c);

static void cmd_login(struct client *c)
{
	char user[128];
	snprintf(user, sizeof(user), user_fmt, c->user);
	send_cmd(c, K_LOGIN, "LOGIN \"%s\" \"%s\"", user, password);
}

static void cmd_append(struct client *c)
{
	size_t sz = msg_size;
	uint64_t serial;
	if (mode == M_SEED) {
		sz = msg_size / 2 + (size_t)((uint64_t)(c->seeded * 7919 + c->user * 104729) %
					     (msg_size + 1));
		serial = (uint64_t)c->user * 100000u + (uint64_t)c->seeded;
	} else {
		serial = 1000000000u + appended_total++;
	}
	if (c->lit_cap < sz + 4096) {
		c->lit_cap = sz + 4096;
		c->lit = xrealloc(c->lit, c->lit_cap);
	}
	c->lit_len = make_message(c->lit, c->lit_cap, serial, sz, c->user);
	memcpy(c->lit + c->lit_len, "\r\n", 2);
	send_cmd(c, K_APPEND, "APPEND INBOX (\\Seen) {%zu}", c->lit_len);
	c->lit_len += 2;
	c->st = S_APPEND_CONT;
}

static long pick(struct client *c)
{
	long n = c->exists > 0 ? c->exists : 1;
	return 1 + (long)(rnd(c) % (uint64_t)n);
}

static void fetch_overview(struct client *c, long count)
{
	long n = c->exists > 0 ? c->exists : 1;
	long a = 1 + (long)(rnd(c) % (uint64_t)(n > count ? n - count + 1 : 1));
	long b = a + count - 1 < n ? a + count - 1 : n;
	send_cmd(c, K_FETCH, "FETCH %ld:%ld (UID FLAGS RFC822.SIZE INTERNALDATE "
		 "BODY.PEEK[HEADER.FIELDS (DATE FROM TO SUBJECT MESSAGE-ID)])", a, b);
}

/* Issue the command at c->step. */
static void next_step(struct client *c)
{
	int s = c->step;
	if (c->notifier) {
		if (s == 0)
			cmd_login(c);
		else if (s == 1)
			cmd_append(c);
		else
			send_cmd(c, K_LOGOUT, "LOGOUT");
		return;
	}
	switch (mode) {
	case M_LOGIN:
		switch (s) {
		case 0: cmd_login(c); break;
		case 1: send_cmd(c, K_SELECT, "SELECT INBOX"); break;
		case 2: fetch_overview(c, 5); break;
		case 3: send_cmd(c, K_FETCH, "FETCH %ld (UID BODY.PEEK[])", pick(c)); break;
		case 4: send_cmd(c, K_STORE, "STORE %ld +FLAGS (\\Seen)", pick(c)); break;
		default: send_cmd(c, K_LOGOUT, "LOGOUT"); break;
		}
		break;
	case M_LONG:
		if (s == 0) {
			cmd_login(c);
			break;
		}
		if (s == 1) {
			send_cmd(c, K_SELECT, "SELECT INBOX");
			break;
		}
		switch ((s - 2) % 10) {
		case 0: fetch_overview(c, 10); break;
		case 1: send_cmd(c, K_FETCH, "FETCH %ld (UID BODY.PEEK[])", pick(c)); break;
		case 2: send_cmd(c, K_STORE, "STORE %ld +FLAGS (\\Flagged)", pick(c)); break;
		case 3: send_cmd(c, K_FETCH, "FETCH %ld (UID FLAGS ENVELOPE BODYSTRUCTURE)", pick(c)); break;
		case 4: send_cmd(c, K_STORE, "STORE %ld -FLAGS (\\Flagged)", pick(c)); break;
		case 5: send_cmd(c, K_FETCH, "FETCH %ld (UID RFC822.SIZE BODY.PEEK[HEADER])", pick(c)); break;
		case 6: cmd_append(c); break;
		case 7: send_cmd(c, K_STORE, "STORE * +FLAGS.SILENT (\\Deleted)"); break;
		case 8: send_cmd(c, K_EXPUNGE, "EXPUNGE"); break;
		default: send_cmd(c, K_SELECT, "SELECT INBOX"); break;
		}
		break;
	case M_SEED:
		if (s == 0)
			cmd_login(c);
		else if (c->seeded < seed_n)
			cmd_append(c);
		else
			send_cmd(c, K_LOGOUT, "LOGOUT");
		break;
	case M_IDLE:
		if (s == 0)
			cmd_login(c);
		else if (s == 1)
			send_cmd(c, K_SELECT, "SELECT INBOX");
		else {
			send_cmd(c, K_IDLE, "IDLE");
			c->st = S_IDLE_CONT;
		}
		break;
	}
}

static void record(enum cmd k, uint64_t us)
{
	ops[k]++;
	if (lat_n[k] == lat_cap[k]) {
		lat_cap[k] = lat_cap[k] ? lat_cap[k] * 2 : 4096;
		lat[k] = xrealloc(lat[k], lat_cap[k] * sizeof(uint32_t));
	}
	lat[k][lat_n[k]++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void idle_launch(void);

/* A client that will not come back (idle mode): let the next one start. */
static void idle_setup_over(int ok)
{
	in_setup--;
	if (ok)
		idle_count++;
	else
		idle_failed++;
	idle_launch();
}

static void conn_failed(struct client *c, const char *why)
{
	conn_errors++;
	if (printed_errors++ < 10)
		fprintf(stderr, "imap-load: client %d (user %d): %s\n", c->idx, c->user, why);
	int was_setting_up = mode == M_IDLE && !c->notifier && c->st != S_IDLING;
	client_close(c);
	if (mode == M_IDLE) {
		if (c->notifier)
			notifiers_done++;
		else if (was_setting_up)
			idle_setup_over(0);
		return;
	}
	if (mode == M_SEED) {
		seed_active--;
		return;
	}
	if (t_end == 0 || now_us() < t_end) {
		c->step = 0;
		client_connect(c);
	}
}

/* A tagged reply. Returns 1 when the client was closed. */
static int tagged(struct client *c, const char *line, size_t len)
{
	uint64_t t = now_us();
	size_t tl = strlen(c->tag);
	int ok = len >= tl + 3 && memcmp(line + tl + 1, "OK", 2) == 0;
	if (!ok) {
		errors++;
		if (printed_errors++ < 10)
			fprintf(stderr, "imap-load: client %d (user %d): %s -> %.*s\n", c->idx,
				c->user, cmd_names[c->cmd], (int)(len > 300 ? 300 : len), line);
	} else if (measuring && (t_end == 0 || t <= t_end)) {
		record(c->cmd, t - c->t_sent);
	}
	enum cmd k = c->cmd;
	c->step++;
	if (k == K_APPEND && (mode == M_SEED || c->notifier))
		c->seeded++;
	if (k == K_LOGOUT) {
		client_close(c);
		if (c->notifier) {
			notifiers_done++;
			return 1;
		}
		if (mode == M_SEED) {
			seed_done_users++;
			if (seed_next_user < n_users) {
				c->user = seed_next_user++;
				c->seeded = 0;
				c->step = 0;
				client_connect(c);
			} else {
				seed_active--;
			}
			return 1;
		}
		if (measuring && t <= t_end)
			sessions++;
		if (t_end == 0 || t < t_end) {
			c->step = 0;
			client_connect(c);
		}
		return 1;
	}
	if (k == K_LOGIN && !ok && mode != M_LOGIN && mode != M_LONG) {
		conn_failed(c, "LOGIN failed");
		return 1;
	}
	if (mode == M_LONG && !c->notifier && t_end != 0 && t >= t_end)
		return 0; /* stop issuing: the run is over */
	next_step(c);
	return 0;
}

static void untagged(struct client *c, const char *line, size_t len)
{
	/* "* N EXISTS", "* N EXPUNGE" */
	char buf[64];
	size_t n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
	memcpy(buf, line, n);
	buf[n] = 0;
	char *end;
	long num = strtol(buf + 2, &end, 10);
	if (end == buf + 2 || *end != ' ')
		return;
	if (strncmp(end, " EXISTS", 7) == 0) {
		if (c->st == S_IDLING && notify_phase && c->user < notify_users && !c->notified &&
		    notify_t0[c->user] != 0 && num > c->exists) {
			uint64_t d = now_us() - notify_t0[c->user];
			c->notified = 1;
			notify_seen++;
			notify_sum_us += d;
			if (d > notify_max_us)
				notify_max_us = d;
		}
		c->exists = num;
	} else if (strncmp(end, " EXPUNGE", 8) == 0) {
		c->exists--;
	}
}

/* The first line of a server response. Returns 1 when the client was closed. */
static int handle_line(struct client *c, const char *line, size_t len)
{
	if (c->st == S_GREETING) {
		if (len >= 4 && memcmp(line, "* OK", 4) == 0) {
			c->step = 0;
			next_step(c);
			return 0;
		}
		conn_failed(c, "bad greeting");
		return 1;
	}
	if (len >= 2 && line[0] == '*' && line[1] == ' ') {
		untagged(c, line, len);
		return 0;
	}
	if (len >= 1 && line[0] == '+') {
		if (c->st == S_APPEND_CONT) {
			out_add(c, c->lit, c->lit_len);
			c->st = S_WAIT;
			if (c->notifier)
				notify_t0[c->user] = now_us();
		} else if (c->st == S_IDLE_CONT) {
			c->st = S_IDLING;
			if (mode == M_IDLE && !c->notifier)
				idle_setup_over(1);
		}
		return 0;
	}
	size_t tl = strlen(c->tag);
	if (len > tl && memcmp(line, c->tag, tl) == 0 && line[tl] == ' ') {
		if (c->st == S_APPEND_CONT) {
			/* refused before the literal */
			c->st = S_WAIT;
		}
		return tagged(c, line, len);
	}
	if (printed_errors++ < 10)
		fprintf(stderr, "imap-load: client %d: unexpected line: %.*s\n", c->idx,
			(int)(len > 200 ? 200 : len), line);
	return 0;
}

/* Returns 1 when the client was closed. */
static int process_input(struct client *c)
{
	size_t pos = 0;
	while (pos < c->in_len) {
		if (c->lit_left > 0) {
			size_t n = c->in_len - pos < c->lit_left ? c->in_len - pos : c->lit_left;
			pos += n;
			c->lit_left -= n;
			continue;
		}
		char *s = c->in + pos;
		char *e = memmem(s, c->in_len - pos, "\r\n", 2);
		if (e == NULL)
			break;
		size_t len = (size_t)(e - s);
		int first = !c->cont;
		c->cont = 0;
		if (len >= 3 && s[len - 1] == '}') {
			size_t i = len - 2;
			if (s[i] == '+')
				i--;
			size_t d_end = i + 1;
			while (i > 0 && s[i] >= '0' && s[i] <= '9')
				i--;
			if (s[i] == '{' && i + 1 < d_end) {
				c->lit_left = strtoull(s + i + 1, NULL, 10);
				c->cont = 1;
			}
		}
		pos += len + 2;
		if (first && handle_line(c, s, len))
			return 1;
	}
	if (pos > 0) {
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
	return 0;
}

/* ---------------------------------------------------------------- sockets */

static void client_close(struct client *c)
{
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->st = S_FREE;
	c->in_len = c->out_len = c->out_off = 0;
	c->lit_left = 0;
	c->cont = 0;
	c->epout = 0;
	c->exists = 0;
}

static void client_connect(struct client *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s (raise ulimit -n)", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->st = S_CONNECTING;
	c->tagn = 0;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	c->epout = 1;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS) {
		char why[128];
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		conn_failed(c, why);
	}
}

static void on_event(struct client *c, uint32_t evs)
{
	if (c->st == S_FREE)
		return;
	if (c->st == S_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			char why[128];
			snprintf(why, sizeof(why), "connect: %s", strerror(err));
			conn_failed(c, why);
			return;
		}
		if (!(evs & (EPOLLOUT | EPOLLIN)))
			return;
		c->st = S_GREETING;
		set_epout(c, 0);
	}
	if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		for (;;) {
			if (c->in_cap - c->in_len < 65536) {
				c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
				if (c->in_cap < c->in_len + 65536)
					c->in_cap = c->in_len + 65536;
				c->in = xrealloc(c->in, c->in_cap);
			}
			ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
			if (r < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				if (errno == EINTR)
					continue;
				char why[128];
				snprintf(why, sizeof(why), "recv: %s", strerror(errno));
				conn_failed(c, why);
				return;
			}
			if (r == 0) {
				conn_failed(c, "connection closed by the server");
				return;
			}
			c->in_len += (size_t)r;
			if (process_input(c))
				return;
			if ((size_t)r < 16384)
				break;
		}
	}
	if (c->out_off < c->out_len && flush_out(c) < 0)
		conn_failed(c, "send failed");
}

/* ---------------------------------------------------------------- modes */

static void idle_launch(void)
{
	while (in_setup < ramp && idle_started < n_clients) {
		struct client *c = &clients[idle_started++];
		in_setup++;
		client_connect(c);
	}
}

static void flush_all(void)
{
	for (int i = 0; i < n_slots; i++) {
		struct client *c = &clients[i];
		if (c->fd >= 0 && c->st != S_CONNECTING && c->out_off < c->out_len &&
		    flush_out(c) < 0)
			conn_failed(c, "send failed");
	}
}

static void loop_once(int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(epfd, evs, 512, timeout_ms);
	if (n < 0 && errno != EINTR)
		die("epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++)
		on_event(evs[i].data.ptr, evs[i].events);
	/* Commands issued while handling input go out here, in one send each. */
	flush_all();
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void report(double secs)
{
	static const char *const mode_names[] = { "login", "long", "seed", "idle" };
	uint64_t total = 0;
	printf("mode %s clients %d users %d seconds %.2f\n", mode_names[mode], n_clients, n_users,
	       secs);
	printf("%-8s %9s %9s %8s %8s %8s %8s\n", "command", "ops", "ops/s", "avg_ms", "p50_ms",
	       "p99_ms", "max_ms");
	for (int k = 0; k < K_COUNT; k++) {
		if (ops[k] == 0)
			continue;
		total += ops[k];
		qsort(lat[k], lat_n[k], sizeof(uint32_t), cmp_u32);
		double sum = 0;
		for (size_t i = 0; i < lat_n[k]; i++)
			sum += lat[k][i];
		printf("%-8s %9llu %9.1f %8.2f %8.2f %8.2f %8.2f\n", cmd_names[k],
		       (unsigned long long)ops[k], (double)ops[k] / secs, sum / (double)lat_n[k] / 1e3,
		       lat[k][lat_n[k] / 2] / 1e3, lat[k][lat_n[k] * 99 / 100] / 1e3,
		       lat[k][lat_n[k] - 1] / 1e3);
	}
	printf("total ops %llu ops/s %.1f sessions %llu sessions/s %.1f errors %llu conn_errors %llu\n",
	       (unsigned long long)total, (double)total / secs, (unsigned long long)sessions,
	       (double)sessions / secs, (unsigned long long)errors, (unsigned long long)conn_errors);
}

static void run_timed(void)
{
	t_start = now_us();
	t_measure = t_start + (uint64_t)(warmup_secs * 1e6);
	t_end = t_measure + (uint64_t)(measure_secs * 1e6);
	for (int i = 0; i < n_clients; i++)
		client_connect(&clients[i]);
	for (;;) {
		uint64_t t = now_us();
		if (!measuring && t >= t_measure)
			measuring = 1;
		if (t >= t_end)
			break;
		loop_once(50);
	}
	report((double)(t_end - t_measure) / 1e6);
	/* Connections stay open a moment: the caller reads the server's CPU
	 * time now, before processes serving them exit (Dovecot). */
	fflush(stdout);
	sleep(1);
}

static void run_seed(void)
{
	uint64_t t0 = now_us();
	int n = n_clients < n_users ? n_clients : n_users;
	measuring = 1;
	for (int i = 0; i < n; i++) {
		clients[i].user = seed_next_user++;
		seed_active++;
		client_connect(&clients[i]);
	}
	while (seed_active > 0)
		loop_once(100);
	double secs = (double)(now_us() - t0) / 1e6;
	printf("seeded %d users x %d messages in %.2f s (%.0f APPEND/s) errors %llu conn_errors %llu\n",
	       seed_done_users, seed_n, secs, ops[K_APPEND] / secs, (unsigned long long)errors,
	       (unsigned long long)conn_errors);
}

static void run_idle(void)
{
	uint64_t t0 = now_us();
	measuring = 0;
	idle_launch();
	while (idle_count + idle_failed < n_clients)
		loop_once(100);
	double setup = (double)(now_us() - t0) / 1e6;
	printf("READY %d idling, %d failed, set up in %.2f s (%.0f connections/s)\n", idle_count,
	       idle_failed, setup, idle_count / setup);
	fflush(stdout);
	uint64_t until = now_us() + (uint64_t)(hold_secs * 1e6);
	while (now_us() < until)
		loop_once(100);
	/* Notify: one APPEND for each of the first notify_users users. */
	int nu = notify_users < n_users ? notify_users : n_users;
	for (int i = 0; i < n_clients; i++)
		if (clients[i].st == S_IDLING && clients[i].user < nu)
			notify_expected++;
	notify_phase = 1;
	for (int u = 0; u < nu; u++) {
		struct client *c = &clients[n_clients + u];
		c->notifier = 1;
		c->user = u;
		client_connect(c);
	}
	until = now_us() + 10 * 1000000u;
	while ((notify_seen < notify_expected || notifiers_done < nu) && now_us() < until)
		loop_once(50);
	int still = 0;
	for (int i = 0; i < n_clients; i++)
		still += clients[i].st == S_IDLING;
	printf("notify users %d sessions %ld seen %ld avg_ms %.1f max_ms %.1f; still idling %d\n",
	       nu, notify_expected, notify_seen,
	       notify_seen ? notify_sum_us / 1e3 / (double)notify_seen : 0.0, notify_max_us / 1e3,
	       still);
	if (notify_seen < notify_expected || idle_failed > 0 || still < idle_count)
		errors++;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "m:c:t:w:u:U:P:s:n:r:H:N:")) != -1) {
		switch (opt) {
		case 'm':
			if (strcmp(optarg, "login") == 0) mode = M_LOGIN;
			else if (strcmp(optarg, "long") == 0) mode = M_LONG;
			else if (strcmp(optarg, "seed") == 0) mode = M_SEED;
			else if (strcmp(optarg, "idle") == 0) mode = M_IDLE;
			else die("-m: login, long, seed or idle");
			break;
		case 'c': n_clients = atoi(optarg); break;
		case 't': measure_secs = atof(optarg); break;
		case 'w': warmup_secs = atof(optarg); break;
		case 'u': n_users = atoi(optarg); break;
		case 'U': user_fmt = optarg; break;
		case 'P': password = optarg; break;
		case 's': msg_size = strtoul(optarg, NULL, 10); break;
		case 'n': seed_n = atoi(optarg); break;
		case 'r': ramp = atoi(optarg); break;
		case 'H': hold_secs = atof(optarg); break;
		case 'N': notify_users = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: imap-load [-m login|long|seed|idle] [-c CLIENTS] "
					"[-t SECS] [-w SECS] [-u USERS] [-U FMT] [-P PASS] [-s SIZE] "
					"[-n SEED_MSGS] [-r RAMP] [-H HOLD] [-N NOTIFY] HOST:PORT\n");
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
	if (n_clients < 1 || msg_size < 512)
		die("need CLIENTS >= 1 and SIZE >= 512");
	if (n_users < 1)
		n_users = n_clients;

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	n_slots = n_clients + (mode == M_IDLE ? notify_users : 0);
	clients = calloc((size_t)n_slots, sizeof(*clients));
	notify_t0 = calloc((size_t)(notify_users > 0 ? notify_users : 1), sizeof(*notify_t0));
	if (clients == NULL || notify_t0 == NULL)
		die("out of memory");
	for (int i = 0; i < n_slots; i++) {
		clients[i].fd = -1;
		clients[i].idx = i;
		clients[i].user = i % n_users;
		clients[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) + 12345;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));

	switch (mode) {
	case M_LOGIN:
	case M_LONG: run_timed(); break;
	case M_SEED: run_seed(); break;
	case M_IDLE: run_idle(); break;
	}
	fflush(stdout);
	return errors || conn_errors ? 1 : 0;
}
