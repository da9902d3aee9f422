/*
 * prom.h — Prometheus text helpers shared by the sink's and the source's
 * /metrics: one series, and the constant labels.
 */
#ifndef PGFERRY_PROM_H
#define PGFERRY_PROM_H

#include "pgferry/buf.h"

#include <stdint.h>

/* Copies the Prometheus text in to out with the labels slot and database
 * added to every series (after its own labels), their values escaped as
 * the text format wants. Comment lines pass unchanged. */
void prom_add_labels(const buf_t *in, const char *slot, const char *database, buf_t *out);

/* One series with its HELP and TYPE lines: a gauge (NaN is written as
 * NaN: "not known") or a counter. */
void prom_gauge(buf_t *b, const char *name, const char *help, double v);
void prom_counter(buf_t *b, const char *name, const char *help, uint64_t v);

#endif
