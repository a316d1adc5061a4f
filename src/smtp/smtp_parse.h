/*
 * smtp_parse.h - pure parsers for SMTP commands (RFC 5321 4.1, RFC 6531),
 * with no I/O, so that they can be unit-tested and fuzzed on their own.
 */
#ifndef PETREL_SMTP_PARSE_H
#define PETREL_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_ADDR_MAX 512 /* RFC 5321 4.5.3.1.3: path up to 256 octets; leave room */

/* Room for smtp_path_address() output: local part fully escaped and quoted,
 * "@", domain, NUL. */
#define SMTP_ADDRESS_MAX (2 * SMTP_ADDR_MAX + 2 + 1 + 256 + 1)

struct smtp_path {
	int null;                   /* "<>" */
	char local[SMTP_ADDR_MAX];  /* unquoted local part */
	char domain[256];           /* domain or address literal incl. brackets */
	int domain_literal;
	int utf8;                   /* contains non-ASCII */
	int postmaster_only;        /* "<Postmaster>" without a domain (4.5.1) */
};

/* Parse "<path> [params]" after "FROM:" / "TO:" (leading spaces allowed, as
 * many clients send them). allow_null: the reverse-path may be "<>".
 * On success *params_r points at the parameters (may be ""), 0 is returned.
 * -1: syntax error (*why_r says what). */
int smtp_parse_path(const char *s, int allow_null, struct smtp_path *path,
		    const char **params_r, const char **why_r);

/* Next "KEY[=VALUE]" of an ESMTP parameter list. Returns 1 and advances *s,
 * 0 at the end, -1 on syntax error. key/value are copied, NUL-terminated. */
int smtp_next_param(const char **s, char *key, size_t keysz, char *value, size_t valuesz);

/* "local@domain" as used for store lookups, with the local part quoted again
 * when it needs quoting. */
void smtp_path_address(const struct smtp_path *path, char *out, size_t outsz);

/* Whether a UTF-8 byte string is well formed (no overlongs, no surrogates). */
int smtp_utf8_valid(const char *s, size_t len);

/* Parse "BDAT" arguments: "<size> [LAST]". 0 ok, -1 syntax error. */
int smtp_parse_bdat(const char *s, uint64_t *size_r, int *last_r);

#endif
