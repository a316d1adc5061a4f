/*
 * mime_collate.h - the i;unicode-casemap collation (RFC 5051) that IMAP SORT
 * and THREAD compare strings with (RFC 5256 7, RFC 5255 I18NLEVEL=1).
 * Reentrant; needs nothing initialised.
 */
#ifndef PETREL_MIME_COLLATE_H
#define PETREL_MIME_COLLATE_H

/* The collation key of a UTF-8 string: every character mapped to its
 * titlecase form, then decomposed (NFKD), as RFC 5051 2 describes; two
 * strings collate as their keys compare with strcmp (UTF-8 octet order is
 * code point order). A string that is not valid UTF-8 keeps its octets,
 * with ASCII letters upper-cased. malloc'd; NULL when out of memory. */
char *mime_casemap_key(const char *utf8);

/* Whether a UTF-8 string is in Normalization Form C (Unicode UAX #15), as
 * Net-Unicode (RFC 5198 2) wants: 1 yes (every ASCII string is), 0 no or
 * not valid UTF-8. */
int mime_utf8_is_nfc(const char *utf8);

#endif
