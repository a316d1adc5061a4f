/* i;unicode-casemap keys (RFC 5051) and the NFC test, with GLib's Unicode
 * tables. */
#include "mime/mime_collate.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

char *mime_casemap_key(const char *utf8)
{
	size_t len = strlen(utf8);
	if (!g_utf8_validate(utf8, (gssize)len, NULL)) {
		char *out = malloc(len + 1);
		if (out == NULL)
			return NULL;
		for (size_t i = 0; i <= len; i++)
			out[i] = utf8[i] >= 'a' && utf8[i] <= 'z' ? (char)(utf8[i] - 'a' + 'A') : utf8[i];
		return out;
	}
	GString *t = g_string_sized_new(len + 1);
	for (const char *p = utf8; *p != '\0'; p = g_utf8_next_char(p))
		g_string_append_unichar(t, g_unichar_totitle(g_utf8_get_char(p)));
	gchar *nfkd = g_utf8_normalize(t->str, (gssize)t->len, G_NORMALIZE_NFKD);
	g_string_free(t, TRUE);
	if (nfkd == NULL)
		return NULL;
	char *out = strdup(nfkd);
	g_free(nfkd);
	return out;
}

int mime_utf8_is_nfc(const char *utf8)
{
	const unsigned char *p = (const unsigned char *)utf8;
	while (*p != '\0' && *p < 0x80)
		p++;
	if (*p == '\0')
		return 1;
	gchar *nfc = g_utf8_normalize(utf8, -1, G_NORMALIZE_NFC);
	if (nfc == NULL)
		return 0; /* not valid UTF-8 */
	int same = strcmp(nfc, utf8) == 0;
	g_free(nfc);
	return same;
}
