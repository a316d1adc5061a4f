/*
 * base64.h - strict RFC 4648 base64 decoding for SASL exchanges.
 */
#ifndef PETREL_BASE64_H
#define PETREL_BASE64_H

#include <stddef.h>

/* Strict RFC 4648 base64 (padding required, no whitespace, canonical final
 * bits). out must hold len / 4 * 3 + 1 octets; it is NUL-terminated (the
 * decoded octets may hold NULs themselves). 0 ok with *n_r, -1 malformed. */
int base64_decode(const char *in, size_t len, char *out, size_t *n_r);

#endif
