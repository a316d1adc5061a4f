/*
 * mime_parse.h - parse a message once, at delivery or APPEND, and keep what
 * IMAP needs (ENVELOPE, BODY, BODYSTRUCTURE, header values for SEARCH/SORT/
 * THREAD, the octet ranges of every BODY[section]); then find sections, filter
 * header fields and decode parts from what was kept, without re-parsing.
 *
 * The MIME structure (header blocks, boundaries, part ranges) is found by a
 * streaming line scanner of our own, because GMime does not report the stream
 * offsets of parts. Header semantics use GMime: RFC 2047 decoding, address
 * lists and dates for the decoded summary fields, transfer decoding and
 * charset conversion. No GMime type appears here.
 *
 * Thread safety: every function is reentrant once mime_init() (mime/mime.h)
 * has run.
 */
#ifndef PETREL_MIME_PARSE_H
#define PETREL_MIME_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Containers (multipart, message/rfc822) nested deeper than this, and parts
 * beyond this count, are not descended into: they stay opaque octets inside
 * their parent (see mime_parse_mem). */
#define MIME_PARSE_MAX_DEPTH 20
#define MIME_PARSE_MAX_PARTS 1000
/* Octets of one header block kept for field parsing; the rest of a longer
 * block is still counted in every offset but its fields are ignored. */
#define MIME_PARSE_HEADER_MAX (256 * 1024)
/* Longest boundary accepted (RFC 2046 allows 70); a multipart with a longer
 * or missing boundary is treated as text/plain. */
#define MIME_PARSE_BOUNDARY_MAX 200

struct mime_summary {
	/* IMAP ENVELOPE: ("date" "subject" from sender reply-to to cc bcc
	 * "in-reply-to" "message-id"). Strings are the raw header values,
	 * unfolded, still RFC 2047 encoded; NIL for an absent field, "" for an
	 * empty one. Sender and reply-to repeat from when absent or empty.
	 * Addresses are (name adl mailbox host); a missing mailbox or host is
	 * ""; a group is (NIL NIL "name" NIL) members... (NIL NIL NIL NIL).
	 * Values with 8-bit octets are literals {n}\r\n... */
	char *envelope;
	/* IMAP BODYSTRUCTURE with extension data, and BODY without it. Type,
	 * subtype, encoding and parameter names are upper-case; a missing
	 * Content-Type is "TEXT" "PLAIN" ("CHARSET" "us-ascii") (message/rfc822
	 * inside multipart/digest); an invalid one counts as missing. A
	 * multipart we cannot split (no/too long boundary, no part found, depth
	 * limit) and a message/rfc822 we do not descend into (depth or part
	 * limit, or a base64/quoted-printable encoding) are described as
	 * "TEXT" "PLAIN" ("CHARSET" "us-ascii") with their own id, description,
	 * encoding, size and extension data. RFC 2231 continuations are joined:
	 * ("FILENAME*" "utf-8''%C3%A9.txt") keeps the extended syntax. */
	char *bodystructure;
	char *body;
	/* Part table for mime_section_find() and friends; opaque text, stored
	 * with the message (format at the end of this file). */
	char *parts;
	/* Top-level header values for SEARCH/SORT/THREAD, "" when absent.
	 * subject: RFC 2047 decoded to UTF-8, unfolded.
	 * from/to/cc/bcc: address lists decoded to UTF-8, as
	 *   `Name <a@b>, "Doe, J" <c@d>` (the raw value, decoded, when it holds
	 *   no address).
	 * message_id, in_reply_to, references, date_hdr: unfolded raw values
	 *   (8-bit octets converted to UTF-8 by GMime's fallback charsets). */
	char *subject, *from, *to, *cc, *bcc, *message_id, *in_reply_to,
		*references, *date_hdr;
	/* Date: header as time_t (UTC), 0 if missing/unparsable. */
	int64_t sent_date;
	/* Text lines of the top-level body (not used by IMAP for the root). */
	uint32_t lines;
};

/* Parse a complete RFC 5322 message in memory (CRLF or LF line ends; CRLF
 * expected: the message as stored, since every offset is into these octets).
 * Returns 0 and fills *out (free with mime_summary_free), or -1 with a static
 * reason in *error_r and *out zeroed; the only failure is running out of
 * memory. Content never fails: a message without a header/body separator is
 * all header, bodies without their closing boundary end at the end of the
 * message, bad encodings are described as they are. */
int mime_parse_mem(const char *data, size_t len, struct mime_summary *out,
		   const char **error_r);
/* The same reading fd 64 KiB at a time (never the whole message in one
 * allocation): a regular file is read with pread from offset 0 to its end,
 * leaving the fd's offset alone; a pipe or socket is read from where it is to
 * EOF. -1 also on a read error (errno kept). The fd is not closed. */
int mime_parse_fd(int fd, struct mime_summary *out, const char **error_r);
/* Frees every string; s may be zeroed or NULL. Leaves *s zeroed. */
void mime_summary_free(struct mime_summary *s);

struct mime_section {
	uint64_t offset, len;
};

/* Locate an RFC 3501 6.4.5 section in the stored message from its part
 * table. part_path: "" or nz-numbers joined by '.' ("1", "2.1"); suffix:
 * NULL (or "") for the part itself, "HEADER", "TEXT" or "MIME"
 * (case-insensitive; HEADER.FIELDS[.NOT] is "HEADER" + mime_header_fields).
 *   ""            whole message          "" + HEADER/TEXT  top header/body
 *   "N..."        body of that part (for a message/rfc822 part: the whole
 *                 encapsulated message; for a multipart: everything after
 *                 its MIME header)
 *   "N...MIME"    MIME header of the part (of a non-multipart message or
 *                 encapsulated message: its RFC 5322 header, as Dovecot)
 *   "N...HEADER", "N...TEXT"  header/body of the message/rfc822 part's
 *                 encapsulated message
 * A non-multipart message has only part 1 (its body); an encapsulated
 * message whose body is not multipart has part N.1 = its body.
 * Header ranges include the empty line ending them (when present).
 * Returns 1 and *out (clipped to msg_size), 0 when there is no such part or
 * HEADER/TEXT is asked of a part that is not message/rfc822 (IMAP answers
 * an empty string), -1 on a syntax error in part_path/suffix ("MIME" with
 * an empty path, a zero or non-numeric part) or an unreadable table. */
int mime_section_find(const char *parts, uint64_t msg_size, const char *part_path,
		      const char *suffix, struct mime_section *out);

/* Content-Transfer-Encoding of a part for BINARY[part] (RFC 3516): one of the
 * static strings "7bit", "8bit", "binary", "base64", "quoted-printable", or
 * "unknown" for anything else (answer NO [UNKNOWN-CTE]); "binary" for the
 * empty path (the whole message is never decoded); NULL when there is no
 * such part or the path is invalid. */
const char *mime_section_encoding(const char *parts, const char *part_path);

/* Decode a part body for BINARY[]: encoding as returned above (any case;
 * NULL means 7bit). 7bit/8bit/binary are copied unchanged. base64 must hold
 * only the base64 alphabet, '=' and white space, and not end one character
 * past a 4-character group; quoted-printable always decodes (soft line
 * breaks removed, bad escapes kept literally). 0 and a malloc'd *out (NUL
 * terminated beyond *out_len) or -1 when undecodable, unknown or oom. */
int mime_decode_transfer(const char *encoding, const char *data, size_t len,
			 char **out, size_t *out_len);

/* BODY[HEADER.FIELDS (A B)] / .NOT: hdr/len is a header block as located by
 * mime_section_find (HEADER or MIME). Writes, in message order, every field
 * whose name matches one of names (case-insensitive, exact; not=1: does not
 * match), each with its continuation lines and its line end (CRLF added to a
 * last field that has none), then the empty line CRLF - unless the block had
 * no empty line (a message with no body and no blank line, RFC 3501 6.4.5).
 * Lines that are not fields are never matched (kept by .NOT). 0 and a
 * malloc'd *out (NUL terminated beyond *out_len), -1 on oom. */
int mime_header_fields(const char *hdr, size_t len, const char *const *names,
		       size_t n_names, int not, char **out, size_t *out_len);

/* Text of a message for SEARCH BODY/TEXT: the body of every part of type "text"
 * (descending into multiparts and message/rfc822 like mime_parse_mem),
 * transfer-decoded and converted from its charset to UTF-8 (us-ascii,
 * missing and unknown charsets are read as UTF-8; invalid octets are
 * dropped). cb gets the text in chunks in message order; a chunk never ends
 * inside a UTF-8 sequence and parts are separated by "\n". Headers are not
 * included: SEARCH uses the decoded summary fields for those.
 * 0, or -1 on oom (after some chunks may have been delivered). */
int mime_search_text_mem(const char *data, size_t len,
			 void (*cb)(void *ctx, const char *utf8, size_t n), void *ctx);
/* The same from fd, read as mime_parse_fd does; -1 also on a read error. */
int mime_search_text_fd(int fd, void (*cb)(void *ctx, const char *utf8, size_t n),
			void *ctx);

/*
 * Part table format (struct mime_summary.parts), version 1. Text lines ending
 * in "\n"; fields separated by one space; numbers in decimal:
 *
 *   P1
 *   <path> <kind> <hdr_off> <hdr_len> <body_off> <body_len> <enc> <msg_hdr_len>
 *   ...
 *
 * The first record after "P1" has path "-": the whole message (hdr = its
 * header, body = its body). Then one record per IMAP part number in
 * depth-first order ("1", "1.1", "2", ...), as RFC 3501 6.4.5 numbers them.
 * kind: 'm' multipart with parts, 'r' message/rfc822 whose encapsulated
 * message starts at body_off and has a header of msg_hdr_len octets (0 for
 * other kinds), 'l' anything else. hdr is the part's MIME header (for part 1
 * of a non-multipart message: that message's header), including its empty
 * line. enc is the lower-case Content-Transfer-Encoding as returned by
 * mime_section_encoding ("7bit" when absent).
 */

#endif
