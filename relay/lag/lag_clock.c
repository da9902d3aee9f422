/*
 * lag_clock.c — the lag tracker's clocks (lag_internal.h): the sink's wall
 * clock and its steps, its monotonic clock on which every moment is kept,
 * the offset to the primary's clock estimated from ping samples (the one
 * with the smallest uncertainty), primary times moved to the sink's clock,
 * and clock faults (a step, a time in the future: counted, shown, logged
 * once per kind). The caller holds the tracker's lock.
 */
#include "lag_internal.h"

#include "pgferry/decoder.h"
#include "pgferry/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t lag_mono_us(const lag_tracker_t *l)
{
	return l->mono(l->clock_arg);
}

/* Counted and shown always; logged once per kind of fault (the first
 * words of the message), not once per timestamp. */
void lag_clock_fault(lag_tracker_t *l, const char *fmt, ...)
{
	char msg[sizeof(l->clock_fault)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->clock_faults++;
	l->clock_fault_mono = lag_mono_us(l);
	if (strncmp(msg, l->clock_fault, 24) != 0)
		log_warning("clock fault: %s", msg);
	snprintf(l->clock_fault, sizeof(l->clock_fault), "%s", msg);
}

/* The sink's wall clock (the test-only skew shifts it). A step of it is a
 * clock fault: the offset samples, taken with the old clock, are dropped;
 * figures are monotonic and do not move with it. */
int64_t lag_now_us(lag_tracker_t *l)
{
	int64_t wall = l->clock(l->clock_arg) + l->cfg->test_clock_skew * 1000;
	int64_t base = wall - lag_mono_us(l);

	if (l->wall_base_known && llabs(base - l->wall_base) > STEP_US) {
		lag_clock_fault(l,
		                "the sink's clock stepped by %+.3f s; clock offset samples reset",
		                (double)(base - l->wall_base) / 1e6);
		l->clock_count = 0;
		l->clock_next = 0;
	}
	l->wall_base = base;
	l->wall_base_known = true;
	return wall;
}

/* The best current offset estimate: the sample with the smallest
 * uncertainty among the recent ones (queueing only ever adds delay). */
const clock_sample_t *lag_best_clock(const lag_tracker_t *l)
{
	const clock_sample_t *best = NULL;
	int i;

	for (i = 0; i < l->clock_count; i++)
		if (best == NULL || l->clocks[i].uncertainty_us < best->uncertainty_us)
			best = &l->clocks[i];
	return best;
}

static int64_t offset_us(const lag_tracker_t *l)
{
	const clock_sample_t *c = lag_best_clock(l);
	return c ? c->offset_us : 0;
}

/* a primary pgtime on the sink's clock, Unix µs */
int64_t lag_primary_to_sink_us(const lag_tracker_t *l, int64_t pgtime)
{
	int64_t u = pgtime_to_unix_us(pgtime), o = offset_us(l);

	/* a nonsense timestamp from outside must not overflow */
	if ((o < 0 && u > INT64_MAX + o) || (o > 0 && u < INT64_MIN + o))
		return u;
	return u - o;
}

/*
 * A primary time moved to the sink's monotonic clock, as of now (wall and
 * mono read together). A time later than now by more than the offset's
 * uncertainty cannot be true (whatever it stamps already happened): it is
 * a clock fault and the caller must not use it (false).
 */
bool lag_primary_to_mono(lag_tracker_t *l, int64_t pgtime, int64_t wall, int64_t mono,
                         const char *what, int64_t *at)
{
	const clock_sample_t *c = lag_best_clock(l);
	int64_t slack = (c ? c->uncertainty_us : 0) + FUTURE_SLACK_US;
	int64_t age = wall - lag_primary_to_sink_us(l, pgtime);

	if (age < -slack) {
		lag_clock_fault(
		        l,
		        "%s stamped %.3f s in the future of the sink's clock (after the "
		        "estimated offset): the primary's clock or this sink's is wrong; it "
		        "proves nothing",
		        what, (double)-age / 1e6);
		return false;
	}
	*at = mono - (age > 0 ? age : 0);
	return true;
}

void lag_on_clock_sample(lag_tracker_t *l, int64_t t1, int64_t t2, int64_t t3, int64_t t4)
{
	/* t1, t4 on the sink's clock; t2, t3 on the source's */
	int64_t round_trip;
	clock_sample_t *c;

	/* samples are the peer's numbers: ignore any that cannot be sane */
	if (llabs(t1) > INT64_MAX / 4 || llabs(t2) > INT64_MAX / 4 || llabs(t3) > INT64_MAX / 4 ||
	    llabs(t4) > INT64_MAX / 4 || t4 < t1 || t3 < t2 || t4 - t1 > 60000000)
		return;
	round_trip = (t4 - t1) - (t3 - t2);
	if (round_trip < 0)
		round_trip = 0;
	pthread_mutex_lock(&l->lock);
	c = &l->clocks[l->clock_next];
	c->offset_us = ((t2 - t1) + (t3 - t4)) / 2;
	c->uncertainty_us = round_trip / 2;
	c->at_us = lag_now_us(l);
	l->clock_next = (l->clock_next + 1) % CLOCK_SAMPLES;
	if (l->clock_count < CLOCK_SAMPLES)
		l->clock_count++;
	pthread_mutex_unlock(&l->lock);
}
