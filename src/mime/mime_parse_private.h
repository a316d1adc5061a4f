/*
 * mime_parse_private.h - internals shared by src/mime/mime_*.c (parse once).
 * Not for other layers: include mime/mime_parse.h instead.
 */
#ifndef PETREL_MIME_PARSE_PRIVATE_H
#define PETREL_MIME_PARSE_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "mime/mime_parse.h"

/* Growable string. On allocation failure it sets oom and ignores further
 * appends, so callers check once at the end instead of after every append. */
struct mime_buf {
	char *s;
	size_t len, cap;
	int oom;
};

void mime_buf_add(struct mime_buf *b, const void *p, size_t n);
void mime_buf_adds(struct mime_buf *b, const char *s);
void mime_buf_addc(struct mime_buf *b, char c);
void mime_buf_addu64(struct mime_buf *b, uint64_t v);
/* NUL-terminated malloc'd copy of the content ("" when empty), NULL on oom;
 * the buffer is freed and reset either way. */
char *mime_buf_steal(struct mime_buf *b);
void mime_buf_free(struct mime_buf *b);

/* IMAP string (RFC 3501 9: quoted when every octet is a TEXT-CHAR, else a
 * literal {n}CRLF...). NUL octets are dropped: no IMAP string can carry them. */
void mime_buf_imap_string(struct mime_buf *b, const char *s, size_t n);
/* As above for a C string, NIL for NULL. */
void mime_buf_imap_nstring(struct mime_buf *b, const char *s);
/* Quoted string of s upper-cased (ASCII), NIL for NULL. */
void mime_buf_imap_upper(struct mime_buf *b, const char *s);

int mime_ascii_casecmp(const char *a, const char *b);
int mime_ascii_ncasecmp(const char *a, const char *b, size_t n);
void mime_ascii_lower(char *s);

/* One field of a header block. */
struct mime_hdr_field {
	const char *name;  /* not NUL-terminated; name_len 0 for a line without ':' */
	size_t name_len;
	const char *value; /* after the ':', folding and final line end included */
	size_t value_len;
	const char *field; /* the whole field with its line end(s) */
	size_t field_len;
};

struct mime_hdr_iter {
	const char *p, *end;
	int saw_blank; /* iteration stopped at the empty line ending the header */
};

void mime_hdr_iter_init(struct mime_hdr_iter *it, const char *hdr, size_t len);
/* 1 and the next field, 0 at the empty line or the end of the block. */
int mime_hdr_next(struct mime_hdr_iter *it, struct mime_hdr_field *f);
/* Unfolded value: CR, LF and NUL removed, leading/trailing blanks trimmed.
 * malloc'd, NULL on oom. */
char *mime_hdr_unfold(const char *v, size_t n);

struct mime_param {
	char *name;  /* lower-case; "name*" for an RFC 2231 extended value */
	char *value; /* unquoted; extended values stay charset'lang'%XX */
};

struct mime_params {
	struct mime_param *v;
	size_t n;
};

/* Content-Type: 0 and type/subtype (lower-case, malloc'd) plus parameters
 * with RFC 2231 continuations joined; -1 when syntactically invalid (RFC 2045
 * 5.2: treat as the default) or on oom (*oom_r set). */
int mime_parse_content_type(const char *value, char **type_r, char **subtype_r,
			    struct mime_params *params_r, int *oom_r);
/* Content-Disposition: as above with one token; type keeps its case. */
int mime_parse_disposition(const char *value, char **type_r,
			   struct mime_params *params_r, int *oom_r);
const char *mime_params_get(const struct mime_params *p, const char *name);
void mime_params_free(struct mime_params *p);
/* body-fld-param: ("NAME" "value" ...) or NIL. */
void mime_buf_imap_params(struct mime_buf *b, const struct mime_params *p);
/* body-fld-lang from a Content-Language value: ("en" "de") or NIL. */
void mime_buf_imap_language(struct mime_buf *b, const char *value);

/* Raw (unfolded, still RFC 2047 encoded) values of a message header, NULL
 * when the field is absent. */
struct mime_env_fields {
	char *date, *subject, *from, *sender, *reply_to, *to, *cc, *bcc,
		*in_reply_to, *message_id, *references;
};

/* RFC 3501 7.4.2 ENVELOPE of a message header. */
void mime_buf_imap_envelope(struct mime_buf *b, const struct mime_env_fields *f);
/* The address list of a header value as ((name adl mailbox host)...), with
 * RFC 5322 groups; appends nothing and returns 0 when it holds no address. */
size_t mime_buf_imap_addresses(struct mime_buf *b, const char *value);

#endif
