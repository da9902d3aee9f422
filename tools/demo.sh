#!/usr/bin/env bash
# demo.sh — "make demo": the main job on an embedded default. Until the
# relay and lag monitor land, it says so.
echo "pgferry demo: not available yet — the replication pipeline and lag monitor are still being built."
echo "Run 'make check' to build and test what exists."
exit 0
