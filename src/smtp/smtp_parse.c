#include "smtp/smtp_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 5322 atext, extended by RFC 6531 with any non-ASCII octet (validated
 * as UTF-8 separately). */
static int is_atext(unsigned char c)
{
	if (c >= 0x80)
		return 1;
	if (isalnum(c))
		return 1;
	return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != '\0';
}

int smtp_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return 0;
		if (len - i <= n) /* the continuation bytes are not all there */
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static int parse_domain(const char **sp, struct smtp_path *path, const char **why_r)
{
	const char *s = *sp;
	size_t o = 0;
	if (*s == '[') {
		/* address-literal: keep as is, check the characters (4.1.3) */
		const char *e = strchr(s, ']');
		if (e == NULL || e == s + 1 || (size_t)(e - s + 1) >= sizeof(path->domain)) {
			*why_r = "bad address literal";
			return -1;
		}
		/* 4.1.3: IPv4 dotted quad, or Standardized-tag ":" dcontent */
		size_t tag = strspn(s + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
		int ipv4 = strspn(s + 1, "0123456789.") == (size_t)(e - s - 1);
		if (!ipv4 && (tag == 0 || s[1 + tag] != ':' || s + 2 + tag >= e)) {
			*why_r = "bad address literal";
			return -1;
		}
		for (const char *p = s + 1; p < e; p++) {
			unsigned char c = (unsigned char)*p;
			if (c < 33 || c > 126 || c == '[' || c == '\\' || c == '>') {
				*why_r = "bad address literal";
				return -1;
			}
		}
		memcpy(path->domain, s, e - s + 1);
		path->domain[e - s + 1] = '\0';
		path->domain_literal = 1;
		*sp = e + 1;
		return 0;
	}
	/* sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] or U-label */
	int label_len = 0;
	char prev = '.';
	while (*s != '\0' && *s != '>') {
		unsigned char c = (unsigned char)*s;
		if (c == '.') {
			if (label_len == 0 || prev == '-') {
				*why_r = "bad domain";
				return -1;
			}
			label_len = 0;
		} else if (isalnum(c) || c >= 0x80) {
			label_len++;
			if (c >= 0x80)
				path->utf8 = 1;
		} else if (c == '-') {
			if (label_len == 0) {
				*why_r = "bad domain";
				return -1;
			}
			label_len++;
		} else {
			*why_r = "bad character in domain";
			return -1;
		}
		if (label_len > 63 || o + 1 >= sizeof(path->domain)) {
			*why_r = "domain too long";
			return -1;
		}
		path->domain[o++] = (char)c;
		prev = (char)c;
		s++;
	}
	if (o == 0 || label_len == 0 || prev == '-') {
		*why_r = "bad domain";
		return -1;
	}
	path->domain[o] = '\0';
	*sp = s;
	return 0;
}

int smtp_parse_path(const char *s, int allow_null, struct smtp_path *path,
		    const char **params_r, const char **why_r)
{
	memset(path, 0, sizeof(*path));
	while (*s == ' ')
		s++;
	if (*s != '<') {
		*why_r = "address must be in angle brackets";
		return -1;
	}
	s++;
	if (*s == '>') {
		if (!allow_null) {
			*why_r = "empty address";
			return -1;
		}
		path->null = 1;
		s++;
		goto params;
	}
	/* A-d-l (source route): obsolete; accepted and ignored (4.1.1.3). */
	if (*s == '@') {
		/* A-d-l = At-domain *( "," At-domain ); At-domain = "@" Domain */
		for (;;) {
			if (*s != '@') {
				*why_r = "bad source route";
				return -1;
			}
			s++;
			size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
			if (n == 0) {
				*why_r = "bad source route";
				return -1;
			}
			s += n;
			if (*s == ',') {
				s++;
				continue;
			}
			if (*s != ':') {
				*why_r = "bad source route";
				return -1;
			}
			s++;
			break;
		}
	}
	size_t o = 0;
	if (*s == '"') {
		s++;
		for (;;) {
			unsigned char c = (unsigned char)*s;
			if (c == '"')
				break;
			if (c == '\\') {
				s++;
				c = (unsigned char)*s;
				if (c < 32 || c > 126) {
					*why_r = "bad quoted pair";
					return -1;
				}
			} else if (c < 32 || c == 127) {
				*why_r = "bad character in quoted local part";
				return -1;
			}
			if (c >= 0x80)
				path->utf8 = 1;
			if (o + 1 >= sizeof(path->local)) {
				*why_r = "local part too long";
				return -1;
			}
			path->local[o++] = (char)c;
			s++;
		}
		s++; /* closing quote */
	} else {
		char prev = '.';
		while (*s != '@' && *s != '>' && *s != '\0') {
			unsigned char c = (unsigned char)*s;
			if (c == '.') {
				if (prev == '.') {
					*why_r = "bad dot in local part";
					return -1;
				}
			} else if (!is_atext(c)) {
				*why_r = "bad character in local part";
				return -1;
			}
			if (c >= 0x80)
				path->utf8 = 1;
			if (o + 1 >= sizeof(path->local)) {
				*why_r = "local part too long";
				return -1;
			}
			path->local[o++] = (char)c;
			prev = (char)c;
			s++;
		}
		if (o == 0 || prev == '.') {
			*why_r = "bad local part";
			return -1;
		}
	}
	path->local[o] = '\0';
	if (*s == '>') {
		/* Only <Postmaster> may come without a domain (4.5.1). */
		if (strcasecmp(path->local, "postmaster") != 0) {
			*why_r = "address needs a domain";
			return -1;
		}
		path->postmaster_only = 1;
		s++;
		goto params;
	}
	if (*s != '@') {
		*why_r = "address needs a domain";
		return -1;
	}
	s++;
	if (parse_domain(&s, path, why_r) < 0)
		return -1;
	if (*s != '>') {
		*why_r = "missing '>'";
		return -1;
	}
	s++;
params:
	if (*s != '\0' && *s != ' ') {
		*why_r = "garbage after address";
		return -1;
	}
	while (*s == ' ')
		s++;
	if (path->utf8 && (!smtp_utf8_valid(path->local, strlen(path->local)) ||
			   !smtp_utf8_valid(path->domain, strlen(path->domain)))) {
		*why_r = "malformed UTF-8 in address";
		return -1;
	}
	*params_r = s;
	return 0;
}

int smtp_next_param(const char **sp, char *key, size_t keysz, char *value, size_t valuesz)
{
	const char *s = *sp;
	while (*s == ' ')
		s++;
	if (*s == '\0') {
		*sp = s;
		return 0;
	}
	size_t k = 0, v = 0;
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	if (!isalnum((unsigned char)*s))
		return -1;
	while (isalnum((unsigned char)*s) || *s == '-') {
		if (k + 1 >= keysz)
			return -1;
		key[k++] = *s++;
	}
	key[k] = '\0';
	value[0] = '\0';
	if (*s == '=') {
		s++;
		/* esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 allowed by RFC 6531 */
		while (*s != '\0' && *s != ' ') {
			unsigned char c = (unsigned char)*s;
			if ((c < 33 || c == '=' || c == 127) || v + 1 >= valuesz)
				return -1;
			value[v++] = *s++;
		}
		if (v == 0)
			return -1;
		value[v] = '\0';
	}
	if (*s != '\0' && *s != ' ')
		return -1;
	*sp = s;
	return 1;
}

void smtp_path_address(const struct smtp_path *path, char *out, size_t outsz)
{
	if (path->null) {
		snprintf(out, outsz, "%s", "");
		return;
	}
	int quote = 0;
	const char *l = path->local;
	if (*l == '\0' || *l == '.' || l[strlen(l) - 1] == '.' || strstr(l, "..") != NULL)
		quote = 1;
	for (const char *p = l; *p != '\0' && !quote; p++)
		if (*p != '.' && !is_atext((unsigned char)*p))
			quote = 1;
	/* Worst case: every octet escaped, two quotes, "@", the domain, NUL:
	 * callers size out with SMTP_ADDRESS_MAX. */
	size_t o = 0;
	if (outsz == 0)
		return;
	if (quote && o + 1 < outsz)
		out[o++] = '"';
	for (const char *p = l; *p != '\0'; p++) {
		int esc = quote && (*p == '"' || *p == '\\');
		if (o + (size_t)esc + 1 >= outsz)
			break;
		if (esc)
			out[o++] = '\\';
		out[o++] = *p;
	}
	if (quote && o + 1 < outsz)
		out[o++] = '"';
	out[o] = '\0';
	if (!path->postmaster_only)
		snprintf(out + o, outsz - o, "@%s", path->domain);
}

int smtp_parse_bdat(const char *s, uint64_t *size_r, int *last_r)
{
	if (!isdigit((unsigned char)*s))
		return -1;
	uint64_t v = 0;
	while (isdigit((unsigned char)*s)) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		s++;
	}
	*last_r = 0;
	if (*s == ' ') {
		while (*s == ' ')
			s++;
		if (strcasecmp(s, "LAST") != 0)
			return -1;
		*last_r = 1;
	} else if (*s != '\0') {
		return -1;
	}
	*size_r = v;
	return 0;
}
