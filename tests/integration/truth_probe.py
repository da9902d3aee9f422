"""truth_probe.py — an independent visibility probe for t_truth.sh.

Its own connections, none of pgferry's: a writer commits a timestamped row
on the primary every 20 ms, a reader polls the DR side for the newest row it
sees, a sampler reads the sink's /v1/status. At each sample it checks that no
row committed before the status was asked for, and not yet visible on the DR
side, is older than the reported rpo_bound_ms (plus a small tolerance).

The scenario in force is read from PHASE_FILE at each sample; the samples are
grouped by it. On SIGTERM it prints, per scenario, the samples, violations,
the worst margin (bound minus the age of the oldest missing row; negative is
a violation) and the typical (median) over-estimate, and exits 1 if any
sample was a violation.

usage: truth_probe.py PRIMARY_DSN DR_DSN STATUS_URL PHASE_FILE TOLERANCE_MS
"""
import json
import signal
import sys
import threading
import time
import urllib.request

import psycopg2

primary_dsn, dr_dsn, status_url, phase_file, tolerance_ms = sys.argv[1:6]
tolerance_ms = float(tolerance_ms)

lock = threading.Lock()
committed = []  # (id, written_at epoch s, commit returned epoch s), in id order
stop = threading.Event()


def writer():
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = psycopg2.connect(primary_dsn, connect_timeout=2)
                conn.autocommit = True
            cur = conn.cursor()
            cur.execute(
                "INSERT INTO truth (written_at) VALUES (clock_timestamp()) "
                "RETURNING id, extract(epoch FROM written_at)")
            row_id, written = cur.fetchone()
            done = time.time()
            with lock:
                committed.append((row_id, float(written), done))
        except psycopg2.Error:
            # the primary is down (kill -9): a row whose commit did not
            # return is not counted as committed
            try:
                if conn is not None:
                    conn.close()
            except psycopg2.Error:
                pass
            conn = None
            time.sleep(0.2)
        time.sleep(0.02)


def phase():
    try:
        with open(phase_file) as f:
            return f.read().strip() or "start"
    except OSError:
        return "start"


def main():
    results = {}  # phase -> list of (margin_ms, overestimate_ms, bound_ms)
    order = []
    violations = []

    def finish(*_):
        stop.set()
        print("%-22s %8s %10s %16s %22s %14s" % (
            "scenario", "samples", "violations", "worst margin ms",
            "typical over-est. ms", "max bound ms"))
        bad = 0
        for name in order:
            rows = results[name]
            margins = sorted(r[0] for r in rows)
            over = sorted(r[1] for r in rows)
            nbad = sum(1 for r in rows if r[0] < -tolerance_ms)
            bad += nbad
            print("%-22s %8d %10d %16.1f %22.1f %14.1f" % (
                name, len(rows), nbad, margins[0], over[len(over) // 2],
                max(r[2] for r in rows)))
        for v in violations[:10]:
            print("VIOLATION: %s" % v)
        sys.stdout.flush()
        sys.exit(1 if bad else 0)

    signal.signal(signal.SIGTERM, finish)
    threading.Thread(target=writer, daemon=True).start()
    dr = None
    while True:
        name = phase()
        asked = time.time()
        try:
            with urllib.request.urlopen(status_url, timeout=5) as r:
                status = json.load(r)
        except Exception:  # the sink must answer; a miss is no sample
            time.sleep(0.05)
            continue
        bound = status.get("rpo_bound_ms")
        try:
            if dr is None:
                dr = psycopg2.connect(dr_dsn, connect_timeout=2)
                dr.autocommit = True
            cur = dr.cursor()
            cur.execute("SELECT coalesce(max(id), 0) FROM truth")
            seen = cur.fetchone()[0]
        except psycopg2.Error:
            # the DR server is down (a fault campaign kills it): no sample
            try:
                if dr is not None:
                    dr.close()
            except psycopg2.Error:
                pass
            dr = None
            time.sleep(0.2)
            continue
        with lock:
            # the oldest row committed before the status was asked for and
            # not visible on DR now (so not then either)
            missing = next((c for c in committed if c[0] > seen and c[2] < asked), None)
        age_ms = (asked - missing[1]) * 1000.0 if missing else 0.0
        if bound is not None:
            if name not in results:
                results[name] = []
                order.append(name)
            results[name].append((bound - age_ms, bound - age_ms, bound))
            if bound - age_ms < -tolerance_ms:
                violations.append(
                    "%s: row %d committed %.1f ms before the sample is not on DR; "
                    "rpo_bound_ms %.1f" % (name, missing[0], age_ms, bound))
        time.sleep(0.05)


main()
