/*
 * decode.h — capture files to JSON Lines (the core of `pgferry decode`).
 */
#ifndef PGFERRY_DECODE_H
#define PGFERRY_DECODE_H

#include "pgferry/error.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Decodes a whole capture held in memory, writing JSON Lines to out (NULL:
 * decode only, as the fuzz target does). Returns PGF_OK, or PGF_ERR with
 * err naming the record number and byte offset; what was decoded before
 * the error has been written. */
int decode_capture(const uint8_t *data, size_t len, int proto_version, FILE *out, pgf_error_t *err);

#endif
