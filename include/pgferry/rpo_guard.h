/*
 * rpo_guard.h — the RPO guard of `pgferry source` (rpo_guard = on).
 *
 * When the RPO bound passes rpo_guard_budget, the guard adds the source's
 * own application_name to the primary's synchronous_standby_names (ALTER
 * SYSTEM and pg_reload_conf()), merged with the DBA's entries: the primary's
 * commits then wait until the source confirms them as flushed, which it
 * does only once the DR database committed them. It releases the guard when
 * the bound is back under half the budget, when the DR side has confirmed
 * nothing for rpo_guard_max_wait, and when the source stops. A watchdog
 * process forked at start releases it when the source dies without doing so.
 *
 * The bound the guard acts on is the source's own (README, "Holding an RPO
 * budget"): the time since it sent the heartbeat of the newest primary fact
 * the DR side has confirmed past; before the first such proof, the age of
 * the oldest fact the DR side has not confirmed (a lower bound).
 */
#ifndef PGFERRY_RPO_GUARD_H
#define PGFERRY_RPO_GUARD_H

#include "pgferry/config.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- synchronous_standby_names, pure --------------------------------------- */

/* Writes into out (outlen bytes) the value of synchronous_standby_names
 * that also makes commits wait for name: `"name"` alone for an empty value,
 * FIRST n+1 ("name", theirs...) for a plain list (FIRST 1), FIRST n or ANY n
 * (an ANY quorum cannot require one member, so it becomes FIRST n+1 with
 * name first: still n of theirs, chosen by priority). Returns 1 when name
 * is already listed (out is current), 0 when added, PGF_ERR on a value it
 * cannot parse or that does not fit (err says which). */
int rpo_guard_names_add(const char *current, const char *name, char *out, size_t outlen,
                        pgf_error_t *err);

/* The reverse: current without name, one fewer required (FIRST n+1 (name,
 * ...) becomes FIRST n (...); the last one gone, ''). Returns 1 when name
 * was removed, 0 when it was not listed (out is current), PGF_ERR as above. */
int rpo_guard_names_remove(const char *current, const char *name, char *out, size_t outlen,
                           pgf_error_t *err);

/* ---- the guard ----------------------------------------------------------------- */

typedef enum {
	RPO_GUARD_OFF = 0,      /* rpo_guard = off (not shipped) */
	RPO_GUARD_RELEASED = 1, /* the primary commits asynchronously */
	RPO_GUARD_ENGAGED = 2,  /* the primary's commits wait for the DR side */
} rpo_guard_state_t;

typedef struct rpo_guard rpo_guard_t;

/* What the sink learns (PRIMARY_FACTS' optional trailing fields). */
typedef struct rpo_guard_report {
	uint8_t state;        /* rpo_guard_state_t */
	int64_t bound_ms;     /* the source's bound, -1 unknown */
	uint64_t engagements; /* since the source started */
	char reason[256];     /* why it is in that state */
} rpo_guard_report_t;

/* Checks the role's privileges on the primary (when it can be reached) and
 * forks the watchdog; call before any other connection or thread exists.
 * cfg must outlive the guard. NULL and err set on failure. */
rpo_guard_t *rpo_guard_create(const config_t *cfg, pgf_error_t *err);
/* Releases (if engaged), stops the watchdog, frees. NULL is fine. */
void rpo_guard_free(rpo_guard_t *g);

/* The guard's clock (monotonic seconds): pass it as sent_at below. */
double rpo_guard_clock(void);
/* A primary fact: the heartbeat query sent at sent_at returned position_lsn
 * (every commit visible when it ran lies below it). */
void rpo_guard_on_fact(rpo_guard_t *g, uint64_t position_lsn, double sent_at);
/* The sink confirmed applied_lsn as committed on the DR database. */
void rpo_guard_on_applied(rpo_guard_t *g, uint64_t applied_lsn);
/* Decides, every few hundred milliseconds: engage (only while streaming)
 * or release. Blocking SQL on its own connection to the primary, bounded
 * by short timeouts. */
void rpo_guard_tick(rpo_guard_t *g, bool streaming);
/* Releases now, saying why (the source stops). */
void rpo_guard_release(rpo_guard_t *g, const char *why);
void rpo_guard_fill_report(rpo_guard_t *g, rpo_guard_report_t *r);

#endif
