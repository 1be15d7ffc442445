#!/usr/bin/env bash
# Instructions per frame of the agent's data path (benches/datapath.sh's
# "dmpd agent" variant), counted by callgrind in steady state: the
# instrumentation is switched on after the warm-up, so every counted poll
# forwards 128 frames (4 net_ring loopback ports, 32 in flight each, one
# tx burst of 32 per port per loop). Frames = 32 x tx_burst calls.
# Instruction counts do not depend on the machine's load, unlike rates.
#
# Usage: benches/datapath-callgrind.sh
# Environment: DATAPATH_AGENT (binary; default: built here), ON (seconds
#   before counting, 15), LEN (seconds counted, 15), OUT (dir), CG_OPTS
#   (more valgrind options, e.g. --dump-instr=yes for counts per instruction).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }
if [ -z "${DATAPATH_AGENT:-}" ]; then
    cargo build --release -q -p dmpd-benches --bin datapath-agent
    DATAPATH_AGENT="${CARGO_TARGET_DIR:-target}/release/datapath-agent"
fi
ON=${ON:-15}; LEN=${LEN:-15}
OUT=${OUT:-$(mktemp -d /tmp/dmpd-callgrind.XXXXXX)}
mkdir -p "$OUT"
echo "loadavg start: $(cat /proc/loadavg)"
valgrind --tool=callgrind ${CG_OPTS:-} --instr-atstart=no --callgrind-out-file="$OUT/cg.out" \
    "$DATAPATH_AGENT" --warmup 600 --seconds 5 --file-prefix "dmpd-cg-$$" \
    >"$OUT/agent.json" 2>"$OUT/valgrind.log" &
pid=$!
sleep "$ON"
callgrind_control -i on "$pid" >/dev/null 2>&1
sleep "$LEN"
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 2
kill "$pid" 2>/dev/null || true
# A busy-polling thread under valgrind can take long to see the signal.
for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
f=$(ls "$OUT"/cg.out.* | head -1)
callgrind_annotate "$f" >"$OUT/annotate.txt" 2>/dev/null
total=$(grep "PROGRAM TOTALS" "$OUT/annotate.txt" | awk '{gsub(",", "", $1); print $1}')
# Calls of the tx burst shim, from the profile's call records (no need for
# debug info).
tx=$(python3 benches/callgrind-listing.py --calls "$f" _rte_eth_tx_burst)
[ -n "$total" ] && [ -n "$tx" ] && [ "$tx" -gt 0 ] || { echo "no steady-state counts in $f" >&2; exit 1; }
frames=$((tx * 32))
echo "instructions: $total, frames: $frames (tx_burst calls: $tx)"
echo "instructions per frame: $(awk -v t="$total" -v f="$frames" 'BEGIN { printf "%.1f", t / f }')"
echo "per source file: $OUT/annotate.txt"
echo "loadavg end: $(cat /proc/loadavg)"
