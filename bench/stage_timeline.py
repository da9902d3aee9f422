"""stage_timeline.py — where a catch-up waits: when each stage of the data
path reached the end of the backlog.

Every 50 ms, until the DR origin reaches TARGET_LSN (or SIGTERM): how far
the walsender has sent (pg_stat_replication.sent_lsn of the slot's
walsender, i.e. decoded and handed to the source), how far the sink has
received and verified (pgferry_received_lsn_bytes), how far the DR database
has committed (the stream's origin) and how far the sink has reported as
durable (pgferry_applied_lsn_bytes, what the source confirms to the slot).
Each stage's progress is a fraction of the backlog (START_LSN to
TARGET_LSN). Every 5 ms in between it samples what the sink's DR backend is
doing (pg_stat_activity: on CPU, a wait event, or idle: waiting for the
sink), and the walsender (Client:WalSenderWriteData: its socket is full,
the source does not read fast enough). Prints, per stage, the seconds from the start at which it passed 25,
50, 75 and 100 % of the backlog, the DR backend's and the walsender's
samples, then the CPU
seconds used by the walsender, the source and the sink (name=pid pairs) and
the sink's DR backend (found by its application name) over the same time,
so a stage that lags while everything idles shows as a wait, not as work.
With BENCH_TIMELINE=2 in its environment it prints every sample too.

usage: stage_timeline.py PRIMARY_DSN SLOT DR_DSN METRICS_URL START_LSN TARGET_LSN name=pid[,pid]...
"""
import os
import signal
import sys
import time
import urllib.request

import psycopg2

primary_dsn, slot, dr_dsn, metrics_url = sys.argv[1:5]
start_text, target_text = sys.argv[5], sys.argv[6]
procs = [a.split("=", 1) for a in sys.argv[7:]]
hz = os.sysconf("SC_CLK_TCK")
stop = [False]
signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def cpu(pids):
    ticks = 0
    for pid in pids:
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / hz


start, target = lsn(start_text), lsn(target_text)
span = max(target - start, 1)
primary = psycopg2.connect(primary_dsn)
primary.autocommit = True
dr = psycopg2.connect(dr_dsn)
dr.autocommit = True
pc, dc = primary.cursor(), dr.cursor()
stages = ["sent", "received", "committed", "reported"]
marks = [0.25, 0.5, 0.75, 1.0]
reached = {s: {} for s in stages}
walsender = []
backends = []
series = os.environ.get("BENCH_TIMELINE") == "2"  # print every sample too
t0 = time.time()
cpu0 = None


def poll():
    pc.execute(
        "SELECT r.sent_lsn - '0/0'::pg_lsn, r.pid FROM pg_stat_replication r "
        "JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = %s",
        (slot,),
    )
    row = pc.fetchone()
    if row and not walsender:
        walsender.append(str(row[1]))
    if not backends:
        dc.execute(
            "SELECT string_agg(pid::text, ',') FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'pgferry sink'"
        )
        b = dc.fetchone()[0]
        if b:
            backends.append(b)
    dc.execute("SELECT pg_replication_origin_progress(pgferry.origin(), false) - '0/0'::pg_lsn")
    committed = dc.fetchone()[0]
    received = reported = 0
    try:
        with urllib.request.urlopen(metrics_url, timeout=1) as r:
            for line in r.read().decode().splitlines():
                name = line.split("{")[0].split(" ")[0]
                if name == "pgferry_received_lsn_bytes":
                    received = float(line.split()[-1])
                elif name == "pgferry_applied_lsn_bytes":
                    reported = float(line.split()[-1])
    except OSError:
        pass
    return {
        "sent": float(row[0]) if row and row[0] is not None else 0,
        "received": received,
        "committed": float(committed or 0),
        "reported": reported,
    }


waits = {}  # what the DR backends are doing, sampled every 5 ms
sender_waits = {}  # what the walsender is doing, sampled with them


def sample_waits():
    if walsender:
        pc.execute(
            "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') FROM pg_stat_activity "
            "WHERE pid = %s",
            (int(walsender[0]),),
        )
        row = pc.fetchone()
        if row:
            sender_waits[row[0]] = sender_waits.get(row[0], 0) + 1
    if not backends:
        return
    dc.execute(
        "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') FROM pg_stat_activity "
        "WHERE pid = ANY(string_to_array(%s, ',')::int[]) AND state = 'active' "
        "AND application_name = 'pgferry sink'",
        (backends[0],),
    )
    rows = dc.fetchall()
    for (w,) in rows or [("idle (waits for the sink)",)]:
        waits[w] = waits.get(w, 0) + 1


while not stop[0]:
    now = time.time() - t0
    pos = poll()
    if cpu0 is None and walsender and backends:
        watched = procs + [["walsender", walsender[0]], ["DR backend", backends[0]]]
        cpu0 = {n: cpu(p.split(",")) for n, p in watched}
        cpu_t0 = time.time()
    if series:
        print("%6.2f %s" % (now, " ".join("%s=%5.1f%%" % (s, 100 * (pos[s] - start) / span) for s in stages)))
    for s in stages:
        frac = (pos[s] - start) / span
        for m in marks:
            if m not in reached[s] and frac >= m:
                reached[s][m] = now
    if 1.0 in reached["committed"] and 1.0 in reached["reported"]:
        break
    for _ in range(10):
        if pos["sent"] > start and 1.0 not in reached["committed"]:
            sample_waits()
        time.sleep(0.005)

print("stage timeline (seconds from the start at which each stage passed 25/50/75/100 % of the backlog)")
for s in stages:
    print(
        "  %-9s %s"
        % (s, " ".join("%6.2f" % reached[s][m] if m in reached[s] else "     -" for m in marks))
    )
total = sum(waits.values())
if total:
    print(
        "DR backend while applying (%d samples): %s"
        % (total, ", ".join("%s %.0f%%" % (w, 100.0 * n / total) for w, n in sorted(waits.items(), key=lambda x: -x[1])))
    )
total = sum(sender_waits.values())
if total:
    # on CPU and IO: decoding and sending; Client:WalSenderWriteData: a full
    # socket, the source does not read fast enough
    print(
        "walsender while sending (%d samples): %s"
        % (total, ", ".join("%s %.0f%%" % (w, 100.0 * n / total) for w, n in sorted(sender_waits.items(), key=lambda x: -x[1])))
    )
if cpu0 is not None:
    wall = time.time() - cpu_t0
    used = {n: cpu(p.split(",")) - cpu0[n] for n, p in watched}
    print(
        "CPU seconds over %.2f s: %s"
        % (wall, ", ".join("%s %.2f" % (n, used[n]) for n in sorted(used)))
    )
