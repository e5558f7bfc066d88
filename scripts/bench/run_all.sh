#!/usr/bin/env bash
# Run every benchmark in scripts/bench/ in --quick mode (what CI calls to keep them working).
# Figures go to stdout as JSON lines, progress to stderr. A missed target is not a failure;
# the exit status is 1 if any benchmark run itself broke (every one still runs).
# Extra arguments are passed to each benchmark (e.g. --rounds 1).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/_venv.sh
status=0
for bench in scripts/bench/[!_]*.py; do
    echo "== $bench --quick" >&2
    started=$(date +%s)
    if ! python "$bench" --quick "$@"; then
        echo "run_all: $bench failed" >&2
        status=1
    fi
    echo "== $bench: $(( $(date +%s) - started )) s" >&2
done
exit "$status"
