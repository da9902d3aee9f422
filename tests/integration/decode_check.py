#!/usr/bin/env python3
"""decode_check.py DECODED.jsonl EXPECTED.json

Rebuilds table contents from `pgferry decode` output (transactions applied
at commit, streamed ones at stream commit, prepared ones at COMMIT
PREPARED; aborted work dropped) and compares every column's text value with
what SELECT shows on the primary (EXPECTED: {table: {key: {column: text}}},
keys as JSON arrays of the primary key values). Exit 0 when equal."""
import json
import sys

KEYS = {"kinds": ["id"], "toasty": ["id"], "pkchange": ["id"], "gen": ["id"],
        "bulk": ["id"], "trunc1": ["id"], "trunc2": ["id"], "parted": ["id", "region"]}

def main():
    decoded, expected = sys.argv[1], sys.argv[2]
    state = {t: {} for t in KEYS}
    pending = []            # changes of the open (non-streamed) transaction
    streams = {}            # xid -> [(subxid, change)]
    prepared = {}           # gid -> changes
    in_prepare = None
    current_stream = None
    counts = {}
    for line in open(decoded, encoding="utf-8"):
        m = json.loads(line)
        t = m["type"]
        counts[t] = counts.get(t, 0) + 1
        if t in ("insert", "update", "delete", "truncate"):
            change = m
            if current_stream is not None:
                streams.setdefault(current_stream, []).append((m.get("xid"), change))
            else:
                pending.append(change)
        elif t == "begin":
            pending = []
        elif t == "commit":
            apply(state, pending)
            pending = []
        elif t == "begin_prepare":
            pending = []
        elif t == "prepare":
            prepared[m["gid"]] = pending
            pending = []
        elif t == "commit_prepared":
            apply(state, prepared.pop(m["gid"], pending))
            pending = []
        elif t == "rollback_prepared":
            prepared.pop(m["gid"], None)
        elif t == "stream_start":
            current_stream = m["xid"]
        elif t == "stream_stop":
            current_stream = None
        elif t == "stream_commit":
            apply(state, [c for _, c in streams.pop(m["xid"], [])])
        elif t == "stream_abort":
            if m["subxid"] == m["xid"]:
                streams.pop(m["xid"], None)
            else:
                streams[m["xid"]] = [(x, c) for x, c in streams.get(m["xid"], []) if x != m["subxid"]]
    want = json.load(open(expected, encoding="utf-8"))
    bad = 0
    for table, rows in want.items():
        got = state[table]
        for key, row in rows.items():
            g = got.get(key)
            if g is None:
                print(f"{table} {key}: missing from the decoded stream"); bad += 1; continue
            for col, val in row.items():
                if col in g and g[col] != val:
                    print(f"{table} {key}.{col}: decoded {g[col]!r}, SELECT {val!r}"); bad += 1
                elif col not in g and col != "doubled":   # generated columns are not sent
                    print(f"{table} {key}.{col}: not in the decoded stream"); bad += 1
        for key in got:
            if key not in rows:
                print(f"{table} {key}: decoded but not on the primary"); bad += 1
    print("message counts:", json.dumps(counts, sort_keys=True))
    print("tables:", {t: len(v) for t, v in want.items()})
    sys.exit(1 if bad else 0)

def key_of(table, row):
    return json.dumps([row[k] for k in KEYS[table]])

def apply(state, changes):
    for c in changes:
        if c["type"] == "truncate":
            for n in c["names"]:
                t = n.split(".", 1)[1]
                if t in state:
                    state[t].clear()
            continue
        t = c["name"]
        if t not in state:
            continue
        rows = state[t]
        if c["type"] == "insert":
            rows[key_of(t, c["new"])] = dict(c["new"])
        elif c["type"] == "update":
            old = c.get("key") or c.get("old") or c["new"]
            oldkey = key_of(t, old)
            row = dict(rows.pop(oldkey, {}))
            row.update(c["new"])     # unchanged TOAST columns keep their value
            rows[key_of(t, row)] = row
        elif c["type"] == "delete":
            rows.pop(key_of(t, c.get("key") or c.get("old")), None)

main()
