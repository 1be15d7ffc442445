#!/usr/bin/env bash
# Two builds of the agent's data path, same minutes: runs datapath-agent
# binaries A and B alternately (A, B, A, B, ...), N pairs of short runs,
# and prints each one's rates and median in Mpps per CPU second of the
# polling lcore. On a shared machine the rate moves with the neighbours;
# alternating puts both builds under the same conditions.
#
# Usage: benches/datapath-ab.sh BIN_A BIN_B [PAIRS]
# Environment: SIZE (frame bytes without FCS, 60), SECONDS_EACH (1.5),
#   MEMORY (huge, nohuge or auto as in benches/datapath.sh; default auto).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 BIN_A BIN_B [PAIRS]" >&2; exit 2; }
A=$1; B=$2; N=${3:-10}
SIZE=${SIZE:-60}; SECONDS_EACH=${SECONDS_EACH:-1.5}
MEMORY=${MEMORY:-auto}
if [ "$MEMORY" = auto ]; then
    MEMORY=nohuge
    [ "$EUID" = 0 ] && scripts/hugepages 512 >/dev/null 2>&1 &&
        [ "$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)" -ge 128 ] && MEMORY=huge
fi
echo "memory: $MEMORY"
echo "loadavg start: $(cat /proc/loadavg)"
for ((i = 1; i <= N; i++)); do
    for bin in "$A" "$B"; do
        out=$("$bin" --size "$SIZE" --file-prefix "dmpd-ab-$$" --memory "$MEMORY" --seconds "$SECONDS_EACH" --warmup 0.3 2>/dev/null) ||
            { echo "$bin failed" >&2; exit 1; }
        r=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["mpps_per_cpu"])' "$out")
        echo "$bin $r"
    done
done | python3 -c '
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in sys.stdin:
    b, r = line.split()
    runs[b].append(float(r))
if not runs or any(x <= 0 for v in runs.values() for x in v):
    sys.exit("a run forwarded nothing")
for b, v in runs.items():
    rates = ", ".join("%.1f" % x for x in v)
    print("%s: median %.1f Mpps  (%s)" % (b, statistics.median(v), rates))
'
echo "loadavg end: $(cat /proc/loadavg)"
