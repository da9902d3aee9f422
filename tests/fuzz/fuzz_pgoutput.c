/*
 * fuzz_pgoutput.c — libFuzzer target for the pgoutput message parser (whole
 * and header only) and the relation cache. The first byte picks the protocol version and whether
 * the message is inside a stream block; the rest is one message.
 */
#include "pgferry/decoder.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pgoutput_message_t *m;
	static relcache_t *rc;
	pgoutput_decoder_t d;
	pgf_error_t err;
	walsender_message_t wm;

	if (m == NULL) {
		m = malloc(sizeof(*m));
		rc = relcache_create();
	}
	if (size < 1)
		return 0;
	pgoutput_decoder_init(&d, 1 + (data[0] & 3));
	d.in_stream = (data[0] & 4) != 0;
	if (pgoutput_decode(&d, data + 1, size - 1, m, &err) == PGF_OK) {
		if (m->type == PGOUTPUT_RELATION)
			relcache_update(rc, m, &err);
		else if (m->type == PGOUTPUT_TYPE)
			relcache_update_type(rc, m, &err);
		else if (m->type == PGOUTPUT_INSERT)
			(void)relcache_get(rc, m->u.insert.relid);
		else if (m->type == PGOUTPUT_TRUNCATE && m->u.truncate.nrelids)
			(void)pgoutput_truncate_relid(m, m->u.truncate.nrelids - 1);
	}
	if ((data[0] & 8) != 0)
		relcache_clear(rc);
	/* the sink's network thread reads only this much of a change */
	pgoutput_decoder_init(&d, 1 + (data[0] & 3));
	d.in_stream = (data[0] & 4) != 0;
	(void)pgoutput_decode_header(&d, data + 1, size - 1, m, &err);
	(void)walsender_parse(data + 1, size - 1, &wm, &err);
	return 0;
}
