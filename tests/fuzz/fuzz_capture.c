/*
 * fuzz_capture.c — libFuzzer target for capture files: the reader, the
 * walsender wrappers, every pgoutput message and the JSON writer, as
 * `pgferry decode` runs them.
 */
#include "pgferry/decode.h"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	pgf_error_t err;

	if (sink == NULL)
		sink = fopen("/dev/null", "w");
	(void)decode_capture(data, size, 4, sink, &err);
	return 0;
}
