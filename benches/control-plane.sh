#!/usr/bin/env bash
# Control-plane cost (issue 7), as root:
#  1. CPU time of the master's heartbeat round and table aggregation at 100,
#     1,000 and 4,096 nodes, against HMAC-SHA256 over the same frames, and
#     control bytes per node per period (benches/src/bin/control-cost.rs);
#  2. failure detection and failover of the real agents on the emulated
#     cluster (scripts/cluster: 3 nodes x 2 ports, net_af_packet over
#     veths, each agent pinned to one core) at heartbeat periods of 10 ms,
#     100 ms and 1 s: SIGKILL of the master, SIGKILL of a non-master node,
#     a steady window counting spurious master changes; and keepalived
#     (VRRP, default advert_int 1 s) between two namespaces of the same kind
#     as the anchor (benches/failover.py).
#
#   bash benches/control-plane.sh            full run (about 8 min; scripts/full)
#   bash benches/control-plane.sh --quick    CI: P = 100 ms, one kill of each
#                                            kind, one keepalived failover (< 1 min)
#
# Environment: DMPD_AGENT, DMPD_CONTROL_COST (binaries; default: built here
# with cargo build --release), DMPD_NS (namespace prefix, default dcp),
# DMPD_RUN (state dir, default run/control-plane). Prints markdown tables;
# exits non-zero if a sanity check or a failover failed. Results are in
# docs/benchmarks.md ("Control-plane cost").
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case ${1:-} in
  --quick) quick=1 ;;
  "") ;;
  -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
  *) echo "usage: benches/control-plane.sh [--quick]" >&2; exit 2 ;;
esac
((EUID == 0)) || { echo "control-plane: must run as root (namespaces, veths)" >&2; exit 1; }

target=${CARGO_TARGET_DIR:-$PWD/target}
agent=${DMPD_AGENT:-}
cost=${DMPD_CONTROL_COST:-}
if [[ -z $agent || -z $cost ]]; then
  cargo build -q --release -p dmpd-agent --bin dmpd-agent -p dmpd-benches --bin control-cost
  agent=${agent:-$target/release/dmpd-agent}
  cost=${cost:-$target/release/control-cost}
fi
export DMPD_NS=${DMPD_NS:-dcp}
export DMPD_RUN=${DMPD_RUN:-$PWD/run/control-plane}
mkdir -p "$DMPD_RUN"

echo "# control plane, $(date -u +%FT%TZ), $(nproc) CPUs: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "load average: $(cat /proc/loadavg)"
echo
echo "## CPU time of a master round and control bytes"
echo
if ((quick)); then "$cost" --quick; else "$cost"; fi
echo
echo "## Failure detection and failover on the emulated cluster"
if ((quick)); then
  python3 benches/failover.py --agent "$agent" --periods 100 --reps 1 --follower-reps 1 \
    --steady 3 --steady-periods 0 --keepalived-reps 1
else
  python3 benches/failover.py --agent "$agent" --json "$DMPD_RUN/failover.json"
fi
echo
echo "load average at end: $(cat /proc/loadavg)"
