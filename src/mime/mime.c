#include "mime/mime.h"

#include <gmime/gmime.h>

void mime_init(void)
{
	g_mime_init();
}
