#include "mime/mime_store.h"

#include "mime/mime_parse.h"

int mime_store_attach(store_delivery_t *d, const char **error_r)
{
	const char *data;
	size_t len;
	int fd;
	struct mime_summary sum;
	if (store_delivery_content(d, &data, &len, &fd) < 0) {
		*error_r = "cannot read the message back";
		return -1;
	}
	int r = fd >= 0 ? mime_parse_fd(fd, &sum, error_r) : mime_parse_mem(data, len, &sum, error_r);
	if (r < 0)
		return -1;
	struct store_msg_cache c = {
		.envelope = sum.envelope, .bodystructure = sum.bodystructure, .body = sum.body,
		.parts = sum.parts, .subject = sum.subject, .from = sum.from, .to = sum.to,
		.cc = sum.cc, .bcc = sum.bcc, .message_id = sum.message_id,
		.in_reply_to = sum.in_reply_to, .references = sum.references,
		.sent_date = sum.sent_date,
	};
	store_delivery_set_cache(d, &c);
	store_delivery_set_subject(d, sum.subject != NULL ? sum.subject : "");
	mime_summary_free(&sum);
	return 0;
}
