#include "core/base64.h"

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode(const char *in, size_t len, char *out, size_t *n_r)
{
	size_t o = 0;
	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			v[k] = c == '=' ? -2 : b64val(c);
			/* '=' only in the last quantum, only in its last two places */
			if (v[k] == -1 || (v[k] == -2 && (i + 4 < len || k < 2)))
				return -1;
		}
		if (v[2] == -2 && v[3] != -2)
			return -1;
		/* the bits a padded quantum leaves over must be zero (canonical) */
		if ((v[2] == -2 && (v[1] & 15) != 0) || (v[2] >= 0 && v[3] == -2 && (v[2] & 3) != 0))
			return -1;
		out[o++] = (char)(v[0] << 2 | v[1] >> 4);
		if (v[2] >= 0)
			out[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
		if (v[3] >= 0)
			out[o++] = (char)((v[2] & 3) << 6 | v[3]);
	}
	out[o] = '\0';
	*n_r = o;
	return 0;
}
