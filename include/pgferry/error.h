/*
 * error.h — errors as values.
 *
 * Every function that can fail returns a status and fills a pgf_error_t.
 * Only main and the event loops decide to log, retry or exit. The parts
 * follow PostgreSQL's error reports: what happened (message), the facts
 * (detail), what the operator can do (hint), and where (file, LSN, peer).
 */
#ifndef PGFERRY_ERROR_H
#define PGFERRY_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#define PGF_OK  0
#define PGF_ERR (-1)

typedef struct pgf_error {
	int code;          /* PGF_E_* below; 0 when no error */
	char message[512]; /* one line: what went wrong */
	char detail[512];  /* the facts, may be empty */
	char hint[512];    /* what the operator can do, may be empty */
	char where[256];   /* file:line, LSN, peer..., may be empty */
} pgf_error_t;

enum {
	PGF_E_NONE = 0,
	PGF_E_CONFIG,   /* bad configuration */
	PGF_E_IO,       /* file or socket I/O */
	PGF_E_PROTOCOL, /* malformed bytes from outside */
	PGF_E_DATABASE, /* a PostgreSQL server said no */
	PGF_E_IDENTITY, /* stream from the wrong primary */
	PGF_E_TLS,      /* TLS handshake or certificate */
	PGF_E_APPLY,    /* a change could not be applied */
	PGF_E_MEMORY,   /* allocation failed or over a limit */
	PGF_E_USAGE,    /* bad command-line use */
	PGF_E_FENCED,   /* the DR database was promoted: apply nothing more */
	PGF_E_DRIFT,    /* the DR table does not match what the primary sends */
};

/* Sets code and message (printf-style); clears detail, hint and where. */
int error_set(pgf_error_t *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void error_detail(pgf_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_hint(pgf_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_where(pgf_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_clear(pgf_error_t *err);

/* Writes "message (where)\nDETAIL: ...\nHINT: ..." into buf for a person. */
void error_format(const pgf_error_t *err, char *buf, size_t len);

#endif
