/* Message access shared by FETCH and SEARCH: reading content ranges, a part
 * table for messages without a parse cache, dates, case-insensitive
 * matching. */
#include "imap/imap_fetch_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int imap_msg_read(store_t *store, int64_t blob_id, uint64_t off, uint64_t len, char **buf_r,
		  size_t *len_r, const char **error_r)
{
	*buf_r = NULL;
	*len_r = 0;
	if (len >= SIZE_MAX) {
		*error_r = "section too large";
		return -1;
	}
	char *buf = malloc((size_t)len + 1);
	if (buf == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	size_t got = 0;
	if (len > 0 && store_blob_read(store, blob_id, off, buf, (size_t)len, &got, error_r) < 0) {
		free(buf);
		return -1;
	}
	buf[got] = '\0';
	*buf_r = buf;
	*len_r = got;
	return 0;
}

#define FALLBACK_SCAN (256 * 1024)

char *imap_msg_fallback_parts(store_t *store, int64_t blob_id, uint64_t size, char *buf,
			      size_t bufsz)
{
	char *head;
	size_t n;
	const char *err;
	if (imap_msg_read(store, blob_id, 0, size < FALLBACK_SCAN ? size : FALLBACK_SCAN, &head,
			  &n, &err) < 0)
		return NULL;
	uint64_t hdr_len = size;
	for (size_t i = 0; i < n; i++) {
		if (head[i] != '\n')
			continue;
		if (i + 1 < n && head[i + 1] == '\n') {
			hdr_len = i + 2;
			break;
		}
		if (i + 2 < n && head[i + 1] == '\r' && head[i + 2] == '\n') {
			hdr_len = i + 3;
			break;
		}
	}
	if (n >= 2 && head[0] == '\r' && head[1] == '\n')
		hdr_len = 2; /* no header at all */
	else if (n >= 1 && head[0] == '\n')
		hdr_len = 1;
	free(head);
	unsigned long long h = hdr_len, b = size - hdr_len;
	snprintf(buf, bufsz, "P1\n- l 0 %llu %llu %llu 7bit 0\n1 l 0 %llu %llu %llu 7bit 0\n", h, h,
		 b, h, h, b);
	return buf;
}

static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian,
 * no time zone database, no locale). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int64_t imap_day_of(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

void imap_format_internaldate(int64_t t, char *out, size_t outsz)
{
	int64_t day = imap_day_of(t);
	int64_t secs = t - day * 86400;
	int64_t y;
	unsigned m, d;
	civil_from_days(day, &y, &m, &d);
	if (y < 0 || y > 9999) {
		y = 1970;
		m = 1;
		d = 1;
		secs = 0;
	}
	/* date-day-fixed: (SP DIGIT) / 2DIGIT */
	snprintf(out, outsz, "%2u-%s-%04lld %02lld:%02lld:%02lld +0000", d, months[m - 1],
		 (long long)y, (long long)(secs / 3600), (long long)(secs / 60 % 60),
		 (long long)(secs % 60));
}

int imap_parse_date(const char *s, int64_t *day_r)
{
	unsigned d = 0;
	size_t i = 0;
	while (i < 2 && isdigit((unsigned char)s[i]))
		d = d * 10 + (unsigned)(s[i++] - '0');
	if (i == 0 || s[i] != '-')
		return -1;
	s += i + 1;
	int m = -1;
	for (int k = 0; k < 12; k++)
		if (strncasecmp(s, months[k], 3) == 0)
			m = k + 1;
	if (m < 0 || s[3] != '-')
		return -1;
	s += 4;
	int64_t y = 0;
	for (i = 0; i < 4; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		y = y * 10 + (s[i] - '0');
	}
	if (s[4] != '\0')
		return -1;
	static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (d < 1 || d > mdays[m - 1])
		return -1;
	*day_r = days_from_civil(y, (unsigned)m, d);
	return 0;
}

int imap_envelope_day(const char *envelope, int64_t *day_r)
{
	/* ("date" ...: the first envelope field, a quoted string or NIL */
	if (envelope == NULL || envelope[0] != '(' || envelope[1] != '"')
		return -1;
	const char *p = envelope + 2;
	const char *end = strchr(p, '"');
	if (end == NULL)
		return -1;
	/* [day-of-week ","] day month year ...: RFC 5322 3.3 with CFWS */
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (end - p >= 4 && isalpha((unsigned char)p[0]) && p[3] == ',') {
		p += 4;
	}
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	unsigned d = 0;
	int nd = 0;
	while (p < end && isdigit((unsigned char)*p) && nd < 2) {
		d = d * 10 + (unsigned)(*p++ - '0');
		nd++;
	}
	if (nd == 0 || p >= end || (*p != ' ' && *p != '\t' && *p != '-'))
		return -1;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '-'))
		p++;
	int m = -1;
	for (int k = 0; k < 12 && end - p >= 3; k++)
		if (strncasecmp(p, months[k], 3) == 0)
			m = k + 1;
	if (m < 0)
		return -1;
	p += 3;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '-'))
		p++;
	int64_t y = 0;
	int ny = 0;
	while (p < end && isdigit((unsigned char)*p) && ny < 4) {
		y = y * 10 + (*p++ - '0');
		ny++;
	}
	if (ny == 2)
		y += y < 50 ? 2000 : 1900; /* RFC 5322 4.3 obsolete 2-digit years */
	else if (ny == 3)
		y += 1900;
	else if (ny != 4)
		return -1;
	static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (d < 1 || d > mdays[m - 1])
		return -1;
	*day_r = days_from_civil(y, (unsigned)m, d);
	return 0;
}

/* ASCII letters, and the Latin-1 capitals U+00C0-U+00DE (UTF-8 C3 80-9E
 * but the multiplication sign C3 97), which fold to their small letters
 * without changing length. prev: the octet before c (0 at the start). */
static unsigned char fold(unsigned char prev, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c + 32);
	if (prev == 0xc3 && c >= 0x80 && c <= 0x9e && c != 0x97)
		return (unsigned char)(c + 0x20);
	return c;
}

int imap_ci_contains(const char *hay, size_t hay_len, const char *needle, size_t needle_len)
{
	const unsigned char *h = (const unsigned char *)hay, *n = (const unsigned char *)needle;
	if (needle_len == 0)
		return 1;
	if (hay_len < needle_len)
		return 0;
	unsigned char first = fold(0, n[0]);
	for (size_t i = 0; i + needle_len <= hay_len; i++) {
		if (fold(i > 0 ? h[i - 1] : 0, h[i]) != first)
			continue;
		size_t k = 1;
		while (k < needle_len && fold(h[i + k - 1], h[i + k]) == fold(n[k - 1], n[k]))
			k++;
		if (k == needle_len)
			return 1;
	}
	return 0;
}
