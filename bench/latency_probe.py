"""latency_probe.py — commit-to-visible latency, measured from outside.

Its own connections, none of the replica's: every INTERVAL_MS a row carrying
its commit-time stamp (clock_timestamp() inside its transaction, so at most
the commit's own duration early) is committed on the primary; a persistent
connection to the DR database polls every POLL_MS (1 ms) for rows it has
not seen and notes, for each, how long after its stamp it became visible:
at the latest when the query that found it was sent (its snapshot is taken
after that), so the figure is high by at most the time between two queries
(the poll interval and one query, about 1.5 ms), the same for every system.
Both run on this machine, so they read one clock. On SIGTERM the writer stops; the
reader goes on until it has seen every row written (2 minutes at most, so a
slow replica's tail counts too), then prints "probe n=N p50=… p90=… p99=…
max=… unseen=K" in milliseconds (K: rows not visible after those 2 minutes). Its ids start after FIRST_ID, which
the DR side must already hold (bench_probe's ids grow across runs). With
PROBE_SAMPLES=FILE every row's stamp (epoch seconds) and latency (ms) go to
FILE, one a line: a tail's stalls show there as runs of rows released
together.

usage: latency_probe.py PRIMARY_DSN DR_DSN INTERVAL_MS FIRST_ID
"""
import os
import signal
import sys
import threading
import time

import psycopg2

primary_dsn, dr_dsn, interval_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
first_id = int(sys.argv[4])
POLL_MS = 1.0
stop = threading.Event()
writer_done = threading.Event()
written = [0]


def writer():
    conn = psycopg2.connect(primary_dsn)
    conn.autocommit = True
    cur = conn.cursor()
    n = first_id
    next_at = time.time()
    while not stop.is_set():
        n += 1
        cur.execute(
            "INSERT INTO bench_probe VALUES (%s, extract(epoch FROM clock_timestamp()))", (n,)
        )
        written[0] = n
        next_at += interval_ms / 1000
        delay = next_at - time.time()
        if delay > 0:
            stop.wait(delay)
    writer_done.set()


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def main():
    samples = open(os.environ["PROBE_SAMPLES"], "w") if os.environ.get("PROBE_SAMPLES") else None
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    conn = psycopg2.connect(dr_dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT coalesce(max(id), 0) FROM bench_probe")
    if cur.fetchone()[0] != first_id:
        sys.exit("the DR side must hold bench_probe up to id %d" % first_id)
    seen = first_id
    written[0] = first_id
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    latencies = []
    deadline = None
    while True:
        if stop.is_set() and deadline is None:
            writer_done.wait()
            deadline = time.time() + 120
        if deadline is not None and (seen >= written[0] or time.time() > deadline):
            break
        sent = time.time()
        cur.execute("SELECT id, stamp FROM bench_probe WHERE id > %s ORDER BY id", (seen,))
        rows = cur.fetchall()
        for row_id, stamp in rows:
            latencies.append((sent - float(stamp)) * 1000)
            if samples is not None:
                samples.write("%.3f %.1f\n" % (float(stamp), latencies[-1]))
            seen = row_id
        time.sleep(POLL_MS / 1000)
    if samples is not None:
        samples.close()
    latencies.sort()
    print(
        "probe n=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f unseen=%d"
        % (
            len(latencies),
            percentile(latencies, 50),
            percentile(latencies, 90),
            percentile(latencies, 99),
            latencies[-1] if latencies else float("nan"),
            written[0] - seen,
        ),
        flush=True,
    )


main()
