/*
 * config.h - the petrel.conf INI file (parsed with inih).
 *
 * Unknown sections or keys and bad values are errors naming file, line and
 * key. Every limit has a key in [limits] and a sane default.
 */
#ifndef PETREL_CONFIG_H
#define PETREL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum listen_proto {
	PROTO_SMTP,
	PROTO_SUBMISSION,
	PROTO_SUBMISSIONS,
	PROTO_IMAP,
	PROTO_IMAPS,
	PROTO_POP3,
	PROTO_POP3S,
	PROTO_NNTP,
	PROTO_NNTPS,
	PROTO_COUNT
};

struct listen_addr {
	enum listen_proto proto;
	char host[64];   /* numeric address, brackets stripped */
	char port[8];
	int config_line;
};

struct config_limits {
	uint64_t max_message_size;   /* SMTP SIZE; octets */
	size_t smtp_line_max;        /* command line incl. CRLF */
	unsigned max_recipients;
	unsigned max_errors;         /* protocol errors before 421 + close */
	unsigned max_connections;    /* whole server */
	unsigned command_timeout;    /* seconds idle waiting for a command */
	unsigned data_timeout;       /* seconds idle inside DATA/BDAT */
	size_t output_high;          /* stop reading commands above this */
	uint64_t max_multiappend_size; /* all messages of one IMAP APPEND; octets
					  (default 4 * max_message_size) */
};

struct config {
	char *path;
	/* [server] */
	char *hostname;
	char *data_dir;
	char *user;
	unsigned workers;            /* 0: one per core */
	char *log_level;
	int fsync_optimized;         /* fsync = optimized: flag changes and expunges
					are committed without waiting for a sync */
	/* [tls] */
	char *tls_cert;
	char *tls_key;
	/* [smtp] */
	char *postmaster;            /* address postmaster@<local domain> delivers to */
	/* [imap] */
	int imap_literal_plus;       /* advertise LITERAL+ (default) or LITERAL-
					(RFC 7888 5: never both) */
	/* [pop3] */
	int pop3_plaintext_auth;     /* USER/PASS, AUTH PLAIN/LOGIN without TLS from
					non-loopback peers (default no) */
	uint64_t pop3_read_ahead;    /* octets of inline content RETR/TOP read ahead
					(0: none) */
	unsigned pop3_read_ahead_ms; /* how long content read ahead may be sent */
	/* [auth] */
	unsigned auth_cache_ttl;     /* seconds a verified password is remembered;
					0 (default): no cache */
	size_t auth_cache_size;      /* entries (users) at most; default 10000 */
	/* [listen] */
	struct listen_addr *listens;
	size_t n_listens;
	/* [limits] */
	struct config_limits limits;
};

const char *config_proto_name(enum listen_proto proto);
/* Whether Petrel implements the protocol (a listener for one it does not is a
 * start-up error, never a stub that greets and closes). */
int config_proto_implemented(enum listen_proto proto);
/* Implicit TLS from the first byte. */
int config_proto_implicit_tls(enum listen_proto proto);

/* Parse path. On failure *error_r is a malloc'd "file:line: key: reason"
 * message the caller frees. */
int config_load(const char *path, struct config **config_r, char **error_r);
/* Checks that need the whole file: TLS files readable when a listener needs
 * them, implemented protocols, postmaster set when SMTP listens. */
int config_validate(const struct config *config, char **error_r);
void config_free(struct config *config);

#endif
