"""wait_progress.py — the end of a catch-up, seen from the DR database.

Polls, every 10 ms over one connection it holds, whether a replication
origin on the DR database has reached TARGET_LSN, and exits 0 when it has
(1 after TIMEOUT seconds). A psql started for every poll (about 30 ms of
CPU each: a process, a connection, a backend) took a sixth of these two
cores at 10 polls a second, from whichever system was catching up, and saw
the end up to 100 ms late; one connection's query costs a fraction of a
millisecond. It prints "ready" once connected, so the clock starts after
its own start-up.

usage: wait_progress.py DR_DSN ORIGIN_EXPR TARGET_LSN TIMEOUT_S
"""
import sys
import time

import psycopg2

dsn, origin, target, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
conn = psycopg2.connect(dsn)
conn.autocommit = True
cur = conn.cursor()
query = "SELECT coalesce(pg_replication_origin_progress(%s, true) >= %%s::pg_lsn, false)" % origin
print("ready", flush=True)
deadline = time.monotonic() + timeout
while True:
    cur.execute(query, (target,))
    if cur.fetchone()[0]:
        sys.exit(0)
    if time.monotonic() > deadline:
        sys.exit("origin %s did not reach %s in %.0f s" % (origin, target, timeout))
    time.sleep(0.01)
