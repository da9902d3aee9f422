/*
 * prom.h — Prometheus text helpers shared by the sink's and the source's
 * /metrics.
 */
#ifndef PGFERRY_PROM_H
#define PGFERRY_PROM_H

#include "pgferry/buf.h"

/* Copies the Prometheus text in to out with the labels slot and database
 * added to every series (after its own labels), their values escaped as
 * the text format wants. Comment lines pass unchanged. */
void prom_add_labels(const buf_t *in, const char *slot, const char *database, buf_t *out);

#endif
