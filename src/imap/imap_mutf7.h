/*
 * imap_mutf7.h - modified UTF-7 mailbox names (RFC 3501 5.1.3, RFC 9051
 * appendix A.1), converted to and from the store's UTF-8. Pure functions.
 *
 * In modified UTF-7, the printable US-ASCII characters 0x20-0x7e except "&"
 * stand for themselves, "&" is "&-", and every other character is written as
 * UTF-16 (surrogate pairs beyond U+FFFF) in base64 with "," for "/", no "=",
 * between "&" and "-".
 */
#ifndef PETREL_IMAP_MUTF7_H
#define PETREL_IMAP_MUTF7_H

#include <stddef.h>

/* Decode modified UTF-7 in [in, in+len) to UTF-8. Strict: only the one
 * canonical form of a name is accepted. Refused, with a reason in *error_r
 * (a static string):
 *  - octets outside 0x20-0x7e (controls, DEL, 8-bit) outside base64;
 *  - an "&" that neither starts base64 nor is "&-";
 *  - base64 that is not closed by "-" (also at the end of the name);
 *  - characters outside the modified base64 alphabet (A-Z a-z 0-9 + ,),
 *    including "/" and "=";
 *  - a base64 run whose length leaves 6 or more bits over, or whose
 *    leftover bits (fewer than 6) are not all zero;
 *  - an unpaired UTF-16 surrogate (high without low, low alone);
 *  - a printable US-ASCII character (U+0020-U+007E, "&" included) in
 *    base64, and U+0000 (a name cannot hold it);
 *  - a superfluous shift: "-&" between two base64 runs (the two runs must
 *    be one), as RFC 3501 5.1.3 "&U,BTFw-&ZeVnLIqe-".
 * Returns a malloc'd NUL-terminated string, or NULL with *error_r (out of
 * memory included). */
char *imap_mutf7_to_utf8(const char *in, size_t len, const char **error_r);

/* Encode UTF-8 in [in, in+len) as modified UTF-7 (the canonical form: each
 * run of characters that cannot stand for themselves is one base64 run).
 * Refused, with *error_r: input that is not well-formed UTF-8 (RFC 3629:
 * overlong forms, surrogates, beyond U+10FFFF, truncated sequences), and
 * U+0000. Returns a malloc'd NUL-terminated US-ASCII string, or NULL. */
char *imap_utf8_to_mutf7(const char *in, size_t len, const char **error_r);

#endif
