/*
 * pop3_parse.h - the pure parts of the POP3 server: no I/O, no store, no
 * libraries, so that they can be unit-tested byte by byte and fuzzed.
 *
 *  - a resumable line reader: feed it whatever arrived, it says need-more,
 *    a line, or an overlong line (then discards through its end);
 *  - splitting a command line into keyword and arguments (RFC 1939 3,
 *    RFC 2449 4) and reading message numbers;
 *  - the multi-line response encoder: byte-stuffing (RFC 1939 3) and the
 *    TOP cut (header, blank line, n body lines), streamed chunk by chunk;
 *  - strict base64 for SASL (RFC 5034);
 *  - MD5 and the APOP digest (RFC 1939 7, RFC 1321).
 */
#ifndef PETREL_POP3_PARSE_H
#define PETREL_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ line reader */

enum pop3_parse_result {
	POP3_PARSE_NEED_MORE, /* everything given was consumed */
	POP3_PARSE_LINE,      /* a line: pop3_parser_line() */
	POP3_PARSE_TOO_LONG,  /* the line exceeded the limit; the rest of it,
				 through its LF, is discarded by later feeds */
	POP3_PARSE_NUL,       /* a complete line holding a NUL octet (refused) */
};

struct pop3_parser {
	char *buf;          /* the line so far, NUL-terminated when complete */
	size_t len, cap;
	size_t max;         /* octets per line, counting CR LF */
	int discarding;     /* inside an overlong line */
	int bad_nul;        /* the current line holds a NUL */
	int complete;       /* buf holds a finished line (dropped at the next feed) */
};

/* max: the longest line accepted, its CR LF included (at least 3). */
void pop3_parser_init(struct pop3_parser *p, size_t max);
void pop3_parser_free(struct pop3_parser *p);
/* Change the limit for the next line (a SASL response may be longer than a
 * command, RFC 5034 4). */
void pop3_parser_set_max(struct pop3_parser *p, size_t max);
/* Forget a partial line (STLS: nothing before the handshake counts). */
void pop3_parser_reset(struct pop3_parser *p);

/* Consume octets from data[0..len) up to and including the end of the
 * first line (LF; a CR before it is dropped, a bare LF also ends a line).
 * *used_r says how many were consumed; the rest must be fed again.
 * TOO_LONG is reported as soon as the limit is passed (with *used_r up to
 * that point); the remaining octets of that line are then consumed silently
 * and produce no result of their own. */
enum pop3_parse_result pop3_parser_feed(struct pop3_parser *p, const char *data, size_t len,
					size_t *used_r);
/* After POP3_PARSE_LINE: the line without its ending, NUL-terminated,
 * valid until the next feed, reset or wipe. */
const char *pop3_parser_line(const struct pop3_parser *p, size_t *len_r);
/* Overwrite the line just returned (it may hold a password). */
void pop3_parser_wipe(struct pop3_parser *p);

/* ---------------------------------------------------------------- command */

#define POP3_KEYWORD_MAX 16
#define POP3_ARGS_MAX 4

struct pop3_command {
	char keyword[POP3_KEYWORD_MAX + 1]; /* upper-cased */
	/* Arguments split at spaces (runs of spaces count as one; trailing
	 * spaces are ignored). At most POP3_ARGS_MAX; more set too_many. */
	char *args[POP3_ARGS_MAX];
	size_t n_args;
	int too_many;
	/* Everything after the keyword and its one space, as sent: PASS takes
	 * it whole, spaces included (RFC 1939 7). Empty when none. */
	const char *rest;
};

/* Split line (len octets, NUL-terminated at line[len], as pop3_parser_line
 * gives it) into cmd. The arguments are NUL-terminated copies in buf, which
 * must hold len + 1 octets; rest points into line itself (both must outlive
 * cmd). 0 ok, -1 when the keyword is empty, too long or not letters
 * (*error_r says why). */
int pop3_command_parse(const char *line, size_t len, char *buf, struct pop3_command *cmd,
		       const char **error_r);

/* A decimal number: digits only, no sign or space. Values above UINT64_MAX
 * saturate (a huge message number is out of range, not malformed). 0 ok,
 * -1 not a number. */
int pop3_parse_number(const char *s, uint64_t *value_r);

/* ----------------------------------------------------- multi-line encoder */

struct pop3_stuffer {
	int line_start;        /* the next octet starts a line */
	int last_lf;           /* the last octet emitted was LF */
	int emitted;           /* anything emitted at all */
	/* TOP */
	int limit;             /* stop after the header and body_left lines */
	int in_header;
	uint64_t body_left;
	size_t line_len;       /* octets in the current line, LF excluded */
	int line_cr_only;      /* ... and they are a single CR */
	int done;              /* the cut is reached: ignore further input */
};

/* RETR: everything; TOP: limit = 1 with n body lines. */
void pop3_stuffer_init(struct pop3_stuffer *st, int limit, uint64_t body_lines);
/* Encode in[0..len) into out, which must hold 2 * len octets. Returns the
 * number of octets written. Lines starting with "." get another "." in front
 * (a line starts at the beginning and after every LF, so that a client
 * splitting at bare LF is not fooled either). Once st->done, nothing more
 * is written. */
size_t pop3_stuffer_encode(struct pop3_stuffer *st, const char *in, size_t len, char *out);
/* The end of the response: CR LF if the content did not end with LF, then
 * ".\r\n". out must hold 5 octets; returns the count. */
size_t pop3_stuffer_finish(const struct pop3_stuffer *st, char *out);

/* -------------------------------------------------------------------- MD5 */

void pop3_md5(const void *data, size_t len, unsigned char digest[16]);
/* APOP: lower-case hex of MD5(timestamp || secret) into hex[33]. */
void pop3_apop_digest(const char *timestamp, const char *secret, char hex[33]);
/* Whether the client's digest (32 hex digits, either case) matches, in
 * time independent of where they differ. */
int pop3_apop_check(const char *timestamp, const char *secret, const char *client_hex);

#endif
