/*
 * imap_fetch_private.h - FETCH item parsing (imap_fetch_items.c) and the
 * message-access helpers FETCH and SEARCH share (imap_fetch_util.c).
 * Private to src/imap/: nothing here writes to a session.
 */
#ifndef PETREL_IMAP_FETCH_PRIVATE_H
#define PETREL_IMAP_FETCH_PRIVATE_H

#include "imap/imap_parser.h"
#include "store/store_mail.h"

#include <stddef.h>
#include <stdint.h>

/* ---- FETCH items (RFC 3501 6.4.5, RFC 3516) ---- */

enum fetch_kind {
	FETCH_UID,
	FETCH_FLAGS,
	FETCH_INTERNALDATE,
	FETCH_RFC822_SIZE,
	FETCH_ENVELOPE,
	FETCH_BODY,          /* BODY without a section: BODYSTRUCTURE sans extensions */
	FETCH_BODYSTRUCTURE,
	FETCH_SECTION,       /* BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT */
	FETCH_BINARY,        /* BINARY[...], BINARY.PEEK[...] */
	FETCH_BINARY_SIZE,
	FETCH_MODSEQ,        /* RFC 7162 3.1.4.2 */
};

/* The part of a section after the part number (RFC 3501 section-text). */
enum fetch_text {
	FETCH_TEXT_NONE,        /* the part itself ("" = whole message) */
	FETCH_TEXT_HEADER,
	FETCH_TEXT_FIELDS,      /* HEADER.FIELDS (names) */
	FETCH_TEXT_FIELDS_NOT,  /* HEADER.FIELDS.NOT (names) */
	FETCH_TEXT_TEXT,
	FETCH_TEXT_MIME,
};

#define FETCH_PART_MAX 128 /* octets of a part path "1.2.3" */

struct fetch_item {
	enum fetch_kind kind;
	int sets_seen;             /* non-PEEK content: \Seen is set */
	char part[FETCH_PART_MAX]; /* "" or "1.2.3" */
	enum fetch_text text;
	char **fields;             /* HEADER.FIELDS[.NOT] names (malloc'd) */
	size_t n_fields;
	int partial;               /* <origin.count> given */
	uint64_t origin, count;
	char *resp;                /* the name in the response, e.g. "BODY[HEADER]<0>" */
};

struct fetch_items {
	struct fetch_item *v;
	size_t n;
	int sets_seen;  /* some item sets \Seen */
	int need_cache; /* some item needs the parse cache */
	int has_uid, has_flags, has_modseq;
};

/* Parse the FETCH items argument: one atom (an item or the macros ALL, FAST,
 * FULL) or a non-empty list of items. Everything is checked before the
 * command produces output. 0, or -1 with a static reason in *error_r (reply
 * BAD) and *out empty. */
int imap_fetch_items_parse(const struct imap_arg *arg, struct fetch_items *out,
			   const char **error_r);
void imap_fetch_items_free(struct fetch_items *fi);
/* Add one item by name (e.g. "UID", "MODSEQ") unless it is there already;
 * first: put it in front. 0, or -1 when out of memory. */
int imap_fetch_items_add(struct fetch_items *fi, const char *name, int first);

/* ---- message access shared by FETCH and SEARCH ---- */

/* Read content octets [off, off+len) of a blob into a malloc'd buffer, NUL
 * terminated (beyond *len_r, which is shorter only at the end of the
 * content). 0, or -1 with *error_r. */
int imap_msg_read(store_t *store, int64_t blob_id, uint64_t off, uint64_t len, char **buf_r,
		  size_t *len_r, const char **error_r);

/* A part table (mime_parse.h format) for a message that has no cache row:
 * the message as one text/plain part, its header ending at the first empty
 * line within the first 256 KiB (else all of it is header). Written into
 * buf; returns buf, or NULL when the content cannot be read. */
char *imap_msg_fallback_parts(store_t *store, int64_t blob_id, uint64_t size, char *buf,
			      size_t bufsz);

/* "17-Jul-1996 02:44:25 +0000": INTERNALDATE in UTC (the server keeps the
 * instant, not the zone it arrived in). out: at least 32 octets. */
void imap_format_internaldate(int64_t t, char *out, size_t outsz);

/* Days since 1970-01-01 (UTC) of an instant. */
int64_t imap_day_of(int64_t t);
/* RFC 3501 date "1-Feb-1994" (day 1 or 2 digits, month any case) to days
 * since 1970-01-01. 0, or -1 when invalid. */
int imap_parse_date(const char *s, int64_t *day_r);

/* The date of the Date: header as written (its own zone; RFC 3501 SENT*
 * disregard time and zone), from the first field of a cached ENVELOPE.
 * 0, or -1 when absent or unparsable. */
int imap_envelope_day(const char *envelope, int64_t *day_r);

/* Case-insensitive substring test: ASCII letters and the UTF-8 Latin-1
 * letters U+00C0-U+00DE fold; other octets compare exactly. An empty
 * needle matches. */
int imap_ci_contains(const char *hay, size_t hay_len, const char *needle, size_t needle_len);

#endif
