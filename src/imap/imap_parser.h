/*
 * imap_parser.h - resumable parser for IMAP client commands (RFC 3501 9,
 * RFC 9051 9, RFC 7888 LITERAL+/LITERAL-, RFC 3516/4466 literal8).
 *
 * No I/O and no libevent: the caller feeds whatever octets it has, in chunks
 * of any size (one octet at a time works), and gets back one of
 * NEED_MORE / DONE / ERROR / LITERAL. A command is
 *
 *     tag SP command-name *(SP argument) CRLF
 *
 * where an argument is an atom, a quoted string, a literal, NIL or a
 * parenthesized list of arguments. Bare LF is accepted as a line end.
 *
 * Syntax decisions, for the command handlers:
 *  - tag: 1*<ASTRING-CHAR except "+">; the command name is an atom, returned
 *    upper-cased ("UID FETCH" is command "UID" with "FETCH" as first arg).
 *  - exactly one SP between arguments: a double space, a space after "(" or
 *    before ")", and a trailing space before CRLF are syntax errors.
 *  - atoms take ATOM-CHAR plus "\" (flags), "*" and "%" (LIST wildcards) and
 *    "]" (astrings); 8-bit octets are refused outside quoted strings and
 *    literals. An unquoted NIL (any case) is IMAP_ARG_NIL, "NIL" is QUOTED.
 *  - "[" inside an atom opens a section that lasts to the matching "]": in it
 *    SP, "(", ")" and quoted strings are part of the atom, so
 *    BODY.PEEK[HEADER.FIELDS (From "To")]<0.512> is ONE atom whose str is that
 *    exact text. A section that used SP/()/quotes must be closed before the
 *    line ends; one that did not (a mailbox atom "foo[bar") simply ends with
 *    the atom. Literals inside a section are refused.
 *  - quoted strings: escapes \\ and \" only; 8-bit octets allowed (UTF8=ACCEPT);
 *    CR/LF/NUL refused. The str of a QUOTED arg is unescaped.
 *  - literals {n}, {n+}, ~{n}, ~{n+}: n up to 2^63-1 (number64). NUL is refused
 *    everywhere except in literal8 (~{n}) bodies.
 *
 * Limits (struct imap_parser_limits; a 0 field means the default below):
 *  - max_line: octets of one command that are not literal bodies, CRLFs included;
 *  - max_literal: largest literal the parser buffers (streamed ones are exempt);
 *  - max_literal_total: sum of buffered literal sizes in one command;
 *  - max_depth: nesting of parenthesized lists (and of ( [ inside a section);
 *  - max_args: arguments in one command, counted at every level, lists included.
 * Memory is bounded by these: about 3 * max_line + max_literal_total +
 * max_args * (2 * sizeof(struct imap_arg) + malloc overhead) per command, and
 * about 1 KiB between commands. Nothing is allocated from an announced
 * literal size until the literal is accepted.
 */
#ifndef PETREL_IMAP_PARSER_H
#define PETREL_IMAP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#define IMAP_PARSER_DEFAULT_MAX_LINE          (64 * 1024)
#define IMAP_PARSER_DEFAULT_MAX_LITERAL       (64 * 1024)
#define IMAP_PARSER_DEFAULT_MAX_LITERAL_TOTAL (256 * 1024)
#define IMAP_PARSER_DEFAULT_MAX_DEPTH         16
#define IMAP_PARSER_DEFAULT_MAX_ARGS          10000

typedef struct imap_parser imap_parser_t;

enum imap_arg_type {
	IMAP_ARG_ATOM,
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,
	IMAP_ARG_STREAMED
};

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM / QUOTED / LITERAL / NIL: a NUL-terminated copy owned by the parser
	 * (QUOTED: unescaped; NIL: the atom as sent). len excludes the NUL; a
	 * literal8 may hold NULs, so use len. STREAMED: str is NULL, len = n. */
	const char *str;
	size_t len;
	/* LIST: the children (NULL when list_count is 0). */
	struct imap_arg *list;
	size_t list_count;
	int literal8; /* LITERAL / STREAMED announced as ~{n} */
};

struct imap_parser_limits {
	size_t max_line;
	size_t max_literal;
	size_t max_literal_total;
	unsigned max_depth;
	unsigned max_args;
};

/* lim may be NULL (all defaults). Returns NULL when out of memory. */
imap_parser_t *imap_parser_new(const struct imap_parser_limits *lim);
/* Change the limits, e.g. wider after authentication. They apply from the
 * next octet on; call it between commands. */
void imap_parser_set_limits(imap_parser_t *p, const struct imap_parser_limits *lim);
void imap_parser_free(imap_parser_t *p);

enum imap_parse_result {
	IMAP_PARSE_NEED_MORE, /* all of the data was consumed; feed more */
	IMAP_PARSE_DONE,      /* a complete command (through its LF) was read */
	IMAP_PARSE_ERROR,     /* reply BAD with imap_parser_error(), then reset */
	IMAP_PARSE_LITERAL    /* a literal was announced: see below */
};

/* Feed input. *consumed_r gets the octets used: all of them for NEED_MORE;
 * possibly fewer after DONE / ERROR / LITERAL, the rest belongs to what comes
 * next and must be fed again (after reset, or after handling the literal).
 * Feeding after DONE or ERROR without imap_parser_reset() resets implicitly
 * (the previous arguments are freed). */
enum imap_parse_result imap_parser_feed(imap_parser_t *p, const char *data, size_t len,
					size_t *consumed_r);

/* After DONE (and, partially, after LITERAL): the tag, the upper-cased command
 * name and the top-level arguments. While a LITERAL is pending, args holds the
 * top-level arguments completed so far (not a list that is still open). The
 * strings live until imap_parser_reset() / the next feed after DONE. Before a
 * tag / command was read they return "" (never NULL). */
const char *imap_parser_tag(imap_parser_t *p);
const char *imap_parser_command(imap_parser_t *p);
const struct imap_arg *imap_parser_args(imap_parser_t *p, size_t *count_r);

/* After ERROR: a human-readable reason for the BAD reply (no CR/LF), and the
 * tag if it was read completely ("*" otherwise).
 *
 * The session survives an error: the parser discards the rest of the
 * offending line on later feeds (after imap_parser_reset()), before parsing
 * the next command. While discarding it still follows the literal syntax at
 * the end of a line: a non-synchronizing {n+} announces n octets that come
 * anyway and are skipped (RFC 7888 4, choice 1), a synchronizing {n} ends the
 * line (no continuation was sent, so the client sends no literal). The rest
 * of an accepted literal whose body was refused (NUL) is skipped too. A
 * "literal too large" error on a synchronizing literal therefore ends the
 * line at the {n}; on a {n+} the n octets are skipped. */
const char *imap_parser_error(imap_parser_t *p);
const char *imap_parser_error_tag(imap_parser_t *p);
/* After ERROR: 1 if the parser cannot find the start of the next command
 * (a {n+} literal whose size does not even fit 63 bits, out of memory, or an
 * API misuse). The caller should send "* BYE" and close the connection. */
int imap_parser_error_fatal(imap_parser_t *p);

/* After LITERAL: a literal {n} / {n+} / ~{n} / ~{n+} was announced and its
 * CRLF consumed; the next octets on the wire (for {n}: after the caller's
 * "+" continuation) are its n octets. The caller must call exactly one of:
 *  - imap_parser_literal_accept(): the parser buffers the literal, within
 *    max_literal and max_literal_total. Returns 0 when accepted: then (sync
 *    literal) send "+ ..." and keep feeding. Returns -1 when refused (too
 *    large): the parser is now in the ERROR state exactly as if feed had
 *    returned IMAP_PARSE_ERROR - do NOT send "+", reply BAD, reset. So the
 *    size check happens before any continuation is sent.
 *  - imap_parser_literal_stream(): the caller consumes exactly n raw octets
 *    itself (APPEND into the store; no size limit applies here), then calls
 *    imap_parser_literal_streamed() and feeds the rest of the line. The
 *    argument is recorded as IMAP_ARG_STREAMED with len = n. Do not feed the
 *    parser in between.
 *  - imap_parser_literal_reject(reason): the parser turns to ERROR with that
 *    reason (copied); for a {n+} it will skip the n octets, for {n} there is
 *    nothing to skip. Reply BAD, reset, feed on.
 * After a refused accept or a reject, the caller may also simply feed on
 * without reset: that feed returns IMAP_PARSE_ERROR once, consuming nothing,
 * and the error is handled like any other. (It must still not send "+".)
 */
uint64_t imap_parser_literal_size(imap_parser_t *p);
int imap_parser_literal_is_sync(imap_parser_t *p);
int imap_parser_literal_is_literal8(imap_parser_t *p);
int imap_parser_literal_accept(imap_parser_t *p);
void imap_parser_literal_stream(imap_parser_t *p);
void imap_parser_literal_streamed(imap_parser_t *p);
void imap_parser_literal_reject(imap_parser_t *p, const char *reason);

/* Ready the parser for the next command: frees the arguments, the tag and the
 * error. After DONE or ERROR this is the normal step. Called in the middle of
 * a command (e.g. a pending LITERAL), it abandons the command: the rest of its
 * line is discarded as after an error (a pending {n} counts as rejected, a
 * streamed literal as consumed by the caller). */
void imap_parser_reset(imap_parser_t *p);

#endif
