#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A day: the cache trades memory exposure for CPU, and the first login of
 * the day paying the hash is no loss. A million entries is ~200 MB. */
#define AUTH_CACHE_TTL_MAX 86400u
#define AUTH_CACHE_SIZE_MAX 1000000u

static const char *const proto_names[PROTO_COUNT] = {
	"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "nntp", "nntps",
};

const char *config_proto_name(enum listen_proto proto)
{
	return proto_names[proto];
}

int config_proto_implemented(enum listen_proto proto)
{
	return proto == PROTO_SMTP || proto == PROTO_IMAP || proto == PROTO_IMAPS ||
	       proto == PROTO_POP3 || proto == PROTO_POP3S;
}

int config_proto_implicit_tls(enum listen_proto proto)
{
	return proto == PROTO_SUBMISSIONS || proto == PROTO_IMAPS || proto == PROTO_POP3S ||
	       proto == PROTO_NNTPS;
}

struct parse_state {
	struct config *config;
	char *error;
	int line; /* inih does not pass line numbers: count them ourselves */
	int bad_line; /* first line the reader refused (too long, unknown section) */
	char bad_why[128];
	int multiappend_line; /* where max_multiappend_size was set, 0 if not */
};

static int fail(struct parse_state *st, const char *section, const char *key, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));

static int fail(struct parse_state *st, const char *section, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (st->error != NULL)
		return 0; /* inih goes on after an error: report the first */
	if (asprintf(&st->error, "[%s] %s: %s", section, key, msg) < 0)
		st->error = NULL;
	return 0;
}

static int parse_uint(const char *value, uint64_t max, uint64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)value[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(value, &end, 10);
	if (errno != 0)
		return -1;
	uint64_t mult = 1;
	if (*end == 'k' || *end == 'K')
		mult = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mult = 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mult = 1024ull * 1024 * 1024, end++;
	if (*end != '\0' || v > max / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static int set_string(char **field, const char *value)
{
	free(*field);
	*field = strdup(value);
	return *field != NULL;
}

/* "addr:port, [v6]:port" */
static int parse_listen(struct parse_state *st, enum listen_proto proto, const char *key,
			const char *value)
{
	struct config *c = st->config;
	char *copy = strdup(value), *save = NULL;
	if (copy == NULL)
		return 0;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*tok))
			tok++;
		char *e = tok + strlen(tok);
		while (e > tok && isspace((unsigned char)e[-1]))
			*--e = '\0';
		struct listen_addr la = { .proto = proto, .config_line = st->line };
		char *host = tok, *port;
		if (*tok == '[') {
			char *close = strchr(tok, ']');
			if (close == NULL || close[1] != ':') {
				fail(st, "listen", key, "'%s' is not [address]:port", tok);
				free(copy);
				return 0;
			}
			*close = '\0';
			host = tok + 1;
			port = close + 2;
		} else {
			char *colon = strrchr(tok, ':');
			if (colon == NULL) {
				fail(st, "listen", key, "'%s' is not address:port", tok);
				free(copy);
				return 0;
			}
			*colon = '\0';
			port = colon + 1;
		}
		uint64_t pnum;
		/* port 0: the kernel picks a free port (tests); the log shows it */
		if (parse_uint(port, 65535, &pnum) < 0 || port[strspn(port, "0123456789")] != '\0' ||
		    strlen(host) == 0 ||
		    strlen(host) >= sizeof(la.host)) {
			fail(st, "listen", key, "'%s' needs a numeric address and a port 0-65535",
			     value);
			free(copy);
			return 0;
		}
		snprintf(la.host, sizeof(la.host), "%s", host);
		snprintf(la.port, sizeof(la.port), "%u", (unsigned)pnum);
		struct listen_addr *n = realloc(c->listens, (c->n_listens + 1) * sizeof(*n));
		if (n == NULL) {
			free(copy);
			return 0;
		}
		c->listens = n;
		c->listens[c->n_listens++] = la;
	}
	free(copy);
	return 1;
}

struct limit_key {
	const char *name;
	size_t offset;
	size_t size;
	uint64_t min, max;
};

#define LIMIT(field, lo, hi) \
	{ #field, offsetof(struct config_limits, field), sizeof(((struct config_limits *)0)->field), lo, hi }
static const struct limit_key limit_keys[] = {
	LIMIT(max_message_size, 1024, 1ull << 40),
	LIMIT(smtp_line_max, 512, 65536),
	LIMIT(max_recipients, 1, 100000),
	LIMIT(max_errors, 1, 1000),
	LIMIT(max_connections, 1, 1000000),
	LIMIT(command_timeout, 1, 86400),
	LIMIT(data_timeout, 1, 86400),
	LIMIT(output_high, 4096, 1ull << 30),
	LIMIT(max_multiappend_size, 1024, 1ull << 40),
};

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	struct config *c = st->config;

	if (name == NULL) { /* new section (INI_CALL_HANDLER_ON_NEW_SECTION builds only) */
		return 1;
	}
	if (strcmp(section, "server") == 0) {
		if (strcmp(name, "hostname") == 0) {
			if (*value == '\0' || strchr(value, ' ') != NULL)
				return fail(st, section, name, "must be a host name");
			return set_string(&c->hostname, value);
		}
		if (strcmp(name, "data_dir") == 0) {
			if (*value == '\0')
				return fail(st, section, name, "must be a directory");
			return set_string(&c->data_dir, value);
		}
		if (strcmp(name, "user") == 0)
			return set_string(&c->user, value);
		if (strcmp(name, "workers") == 0) {
			uint64_t v;
			if (parse_uint(value, 256, &v) < 0)
				return fail(st, section, name, "'%s' is not 0-256 (0: one per core)", value);
			c->workers = (unsigned)v;
			return 1;
		}
		if (strcmp(name, "fsync") == 0) {
			if (strcmp(value, "always") != 0 && strcmp(value, "optimized") != 0)
				return fail(st, section, name, "'%s' is not always or optimized", value);
			c->fsync_optimized = strcmp(value, "optimized") == 0;
			return 1;
		}
		if (strcmp(name, "log_level") == 0) {
			if (strcmp(value, "debug") != 0 && strcmp(value, "info") != 0 &&
			    strcmp(value, "warn") != 0 && strcmp(value, "error") != 0)
				return fail(st, section, name, "'%s' is not debug, info, warn or error", value);
			return set_string(&c->log_level, value);
		}
	} else if (strcmp(section, "tls") == 0) {
		if (strcmp(name, "cert") == 0)
			return set_string(&c->tls_cert, value);
		if (strcmp(name, "key") == 0)
			return set_string(&c->tls_key, value);
	} else if (strcmp(section, "smtp") == 0) {
		if (strcmp(name, "postmaster") == 0) {
			const char *at = strrchr(value, '@');
			if (at == NULL || at == value || at[1] == '\0')
				return fail(st, section, name, "'%s' is not an address user@domain", value);
			return set_string(&c->postmaster, value);
		}
	} else if (strcmp(section, "imap") == 0) {
		if (strcmp(name, "literal_plus") == 0) {
			if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
				return fail(st, section, name, "'%s' is not yes or no", value);
			c->imap_literal_plus = strcmp(value, "yes") == 0;
			return 1;
		}
	} else if (strcmp(section, "pop3") == 0) {
		if (strcmp(name, "allow_plaintext_auth") == 0) {
			if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
				return fail(st, section, name, "'%s' is not yes or no", value);
			c->pop3_plaintext_auth = strcmp(value, "yes") == 0;
			return 1;
		}
		if (strcmp(name, "read_ahead") == 0) {
			uint64_t v;
			if (parse_uint(value, 1024 * 1024, &v) < 0)
				return fail(st, section, name, "'%s' is not 0-1M", value);
			c->pop3_read_ahead = v;
			return 1;
		}
		if (strcmp(name, "read_ahead_ms") == 0) {
			uint64_t v;
			if (parse_uint(value, 60000, &v) < 0)
				return fail(st, section, name, "'%s' is not 0-60000", value);
			c->pop3_read_ahead_ms = (unsigned)v;
			return 1;
		}
	} else if (strcmp(section, "auth") == 0) {
		uint64_t v;
		if (strcmp(name, "cache_ttl") == 0) {
			if (parse_uint(value, AUTH_CACHE_TTL_MAX, &v) < 0)
				return fail(st, section, name, "'%s' is not 0-%u seconds (0: no cache)",
					    value, AUTH_CACHE_TTL_MAX);
			c->auth_cache_ttl = (unsigned)v;
			return 1;
		}
		if (strcmp(name, "cache_size") == 0) {
			if (parse_uint(value, AUTH_CACHE_SIZE_MAX, &v) < 0 || v < 1)
				return fail(st, section, name, "'%s' is not a number from 1 to %u",
					    value, AUTH_CACHE_SIZE_MAX);
			c->auth_cache_size = (size_t)v;
			return 1;
		}
	} else if (strcmp(section, "listen") == 0) {
		for (int p = 0; p < PROTO_COUNT; p++)
			if (strcmp(name, proto_names[p]) == 0)
				return parse_listen(st, (enum listen_proto)p, name, value);
	} else if (strcmp(section, "limits") == 0) {
		for (size_t i = 0; i < sizeof(limit_keys) / sizeof(limit_keys[0]); i++) {
			const struct limit_key *k = &limit_keys[i];
			if (strcmp(name, k->name) != 0)
				continue;
			uint64_t v;
			if (parse_uint(value, k->max, &v) < 0 || v < k->min)
				return fail(st, section, name, "'%s' is not a number from %llu to %llu",
					    value, (unsigned long long)k->min,
					    (unsigned long long)k->max);
			if (strcmp(k->name, "max_multiappend_size") == 0)
				st->multiappend_line = st->line;
			char *p = (char *)&c->limits + k->offset;
			if (k->size == sizeof(uint64_t)) {
				uint64_t v64 = v;
				memcpy(p, &v64, sizeof(v64));
			} else {
				unsigned v32 = (unsigned)v;
				memcpy(p, &v32, sizeof(v32));
			}
			return 1;
		}
	} else {
		return fail(st, section, name, "unknown section [%s]", section);
	}
	return fail(st, section, name, "unknown key");
}

/* inih reports the first failing line; we also count lines to know which
 * line a handler call belongs to (for listen entries), refuse lines longer
 * than inih's buffer (it would parse the rest as a new line), and check
 * section names here because inih reports sections only with their keys. */
static const char *const sections[] = { "server", "tls",    "smtp",   "imap",
					"pop3",   "auth",   "listen", "limits" };

static char *reader(char *str, int num, void *stream)
{
	struct parse_state *st = ((void **)stream)[1];
	FILE *f = ((void **)stream)[0];
	char *r = fgets(str, num, f);
	if (r == NULL || st->bad_line != 0)
		return NULL;
	st->line++;
	size_t len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(f)) {
		st->bad_line = st->line;
		snprintf(st->bad_why, sizeof(st->bad_why), "line too long (max %d octets)", num - 2);
		return NULL;
	}
	const char *p = str + strspn(str, " \t");
	if (*p == '[') {
		size_t n = strcspn(p + 1, "]");
		int known = 0;
		for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
			if (strlen(sections[i]) == n && strncmp(p + 1, sections[i], n) == 0)
				known = 1;
		if (!known && p[1 + n] == ']') {
			st->bad_line = st->line;
			snprintf(st->bad_why, sizeof(st->bad_why), "unknown section [%.*s]",
				 (int)(n < 64 ? n : 64), p + 1);
			return NULL;
		}
	}
	return r;
}

int config_load(const char *path, struct config **config_r, char **error_r)
{
	*error_r = NULL;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		if (asprintf(error_r, "%s: cannot open: %s", path, strerror(errno)) < 0)
			*error_r = NULL;
		return -1;
	}
	struct config *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		fclose(f);
		return -1;
	}
	c->path = strdup(path);
	c->hostname = strdup("localhost");
	c->data_dir = strdup("/var/lib/petrel");
	c->limits = (struct config_limits){
		.max_message_size = 25 * 1024 * 1024,
		.smtp_line_max = 1000,
		.max_recipients = 100,
		.max_errors = 10,
		.max_connections = 10000,
		.command_timeout = 300,
		.data_timeout = 600,
		.output_high = 1024 * 1024,
	};
	c->imap_literal_plus = 1;
	c->pop3_read_ahead = 64 * 1024;
	c->pop3_read_ahead_ms = 1000;
	c->auth_cache_size = 10000;
	struct parse_state st = { .config = c };
	void *stream[2] = { f, &st };
	int rc = ini_parse_stream(reader, stream, handler, &st);
	fclose(f);
	if (st.bad_line != 0 && (rc == 0 || st.bad_line < rc)) {
		if (asprintf(error_r, "%s:%d: %s", path, st.bad_line, st.bad_why) < 0)
			*error_r = NULL;
		free(st.error);
		config_free(c);
		return -1;
	}
	if (rc != 0) {
		if (rc > 0) {
			if (asprintf(error_r, "%s:%d: %s", path, rc,
				     st.error != NULL ? st.error : "syntax error (expected key = value)") < 0)
				*error_r = NULL;
		} else {
			if (asprintf(error_r, "%s: cannot read", path) < 0)
				*error_r = NULL;
		}
		free(st.error);
		config_free(c);
		return -1;
	}
	free(st.error);
	/* A MULTIAPPEND total below one message's limit would refuse single
	 * APPENDs that max_message_size allows. */
	if (st.multiappend_line == 0) {
		c->limits.max_multiappend_size = c->limits.max_message_size > UINT64_MAX / 4
							 ? UINT64_MAX
							 : 4 * c->limits.max_message_size;
	} else if (c->limits.max_multiappend_size < c->limits.max_message_size) {
		if (asprintf(error_r,
			     "%s:%d: [limits] max_multiappend_size: %llu is below max_message_size "
			     "(%llu)",
			     path, st.multiappend_line,
			     (unsigned long long)c->limits.max_multiappend_size,
			     (unsigned long long)c->limits.max_message_size) < 0)
			*error_r = NULL;
		config_free(c);
		return -1;
	}
	*config_r = c;
	return 0;
}

int config_validate(const struct config *c, char **error_r)
{
	int need_tls = 0, smtp = 0;
	*error_r = NULL;
	for (size_t i = 0; i < c->n_listens; i++) {
		const struct listen_addr *la = &c->listens[i];
		if (!config_proto_implemented(la->proto)) {
			if (asprintf(error_r,
				     "%s:%d: [listen] %s: Petrel does not serve %s yet; remove this listener",
				     c->path, la->config_line, proto_names[la->proto],
				     proto_names[la->proto]) < 0)
				*error_r = NULL;
			return -1;
		}
		if (la->proto == PROTO_SMTP)
			smtp = 1;
		need_tls = 1; /* every protocol offers STARTTLS or is implicit TLS */
	}
	if (need_tls) {
		const char *files[2] = { c->tls_cert, c->tls_key };
		const char *keys[2] = { "cert", "key" };
		for (int i = 0; i < 2; i++) {
			if (files[i] == NULL) {
				if (asprintf(error_r, "%s: [tls] %s: required by the listeners", c->path,
					     keys[i]) < 0)
					*error_r = NULL;
				return -1;
			}
			if (access(files[i], R_OK) != 0) {
				if (asprintf(error_r, "%s: [tls] %s: cannot read %s: %s", c->path, keys[i],
					     files[i], strerror(errno)) < 0)
					*error_r = NULL;
				return -1;
			}
		}
	}
	if (smtp && c->postmaster == NULL) {
		if (asprintf(error_r,
			     "%s: [smtp] postmaster: required when SMTP listens (RFC 5321 4.5.1: "
			     "postmaster@ every local domain must be deliverable); name a user",
			     c->path) < 0)
			*error_r = NULL;
		return -1;
	}
	return 0;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->hostname);
	free(c->data_dir);
	free(c->user);
	free(c->log_level);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->postmaster);
	free(c->listens);
	free(c);
}
