#!/usr/bin/env bash
# Balancing quality: DPDK's Link Bonding PMD (net_bonding mode 2 with
# xmit_policy=l34, and mode 5, adaptive transmit load balancing) against the
# dmpd balancer (lb: Toeplitz hash of IPv4 addresses + UDP ports, then the
# balancer's decision) and the plain hash modulo the port count, sending the
# same seeded IPv4/UDP traffic (heavy-tailed flow sizes, sequence numbers in
# the payload) over the same member ports: net_af_packet on veth pairs, the
# peers read as 100 Mb/s links (benches/src/bin/bond-compare.rs).
#
# Usage: benches/bond-compare.sh [--quick]
#   --quick: CI mode (0.5 s of traffic, one seed); asserts that every mode
#   delivered frames and that the table is complete.
# Environment: SEEDS ("1 2 3"), TICKS (50000 x 100 us), MEMBERS (4),
#   PREFIX (veth name prefix, "dmpdbc"), BOND_COMPARE (binary; default:
#   built here). Needs root (veths).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
    SEEDS=${SEEDS:-"1"}; TICKS=${TICKS:-5000}
else
    SEEDS=${SEEDS:-"1 2 3"}; TICKS=${TICKS:-50000}
fi
MEMBERS=${MEMBERS:-4}
PREFIX=${PREFIX:-dmpdbc}
OUT=${OUT:-$(mktemp -d /tmp/dmpd-bond.XXXXXX)}
mkdir -p "$OUT"

if [ -z "${BOND_COMPARE:-}" ]; then
    cargo build --release -q -p dmpd-benches --bin bond-compare
    BOND_COMPARE="${CARGO_TARGET_DIR:-target}/release/bond-compare"
fi

A=(); B=()
cleanup() {
    for ((i = 0; i < MEMBERS; i++)); do ip link del "${PREFIX}A$i" 2>/dev/null || true; done
}
trap cleanup EXIT
for ((i = 0; i < MEMBERS; i++)); do
    a="${PREFIX}A$i"; b="${PREFIX}B$i"
    ip link del "$a" 2>/dev/null || true
    ip link add "$a" type veth peer name "$b"
    for d in "$a" "$b"; do
        sysctl -qw "net.ipv6.conf.$d.disable_ipv6=1"
        ip link set "$d" up
    done
    A+=("$a"); B+=("$b")
done
members=$(IFS=,; echo "${A[*]}")
peers=$(IFS=,; echo "${B[*]}")

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
echo "loadavg start: $(cat /proc/loadavg)"
for seed in $SEEDS; do
    for mode in bond2 bond5 dmpd hash; do
        "$BOND_COMPARE" --mode "$mode" --members "$members" --peers "$peers" \
            --ticks "$TICKS" --seed "$seed" --file-prefix "dmpd-bc-$$" \
            2>"$OUT/$mode-$seed.log" >>"$RESULTS" || { echo "bond-compare --mode $mode failed:" >&2; cat "$OUT/$mode-$seed.log" >&2; exit 1; }
        tail -n1 "$RESULTS" >&2
    done
done
echo "loadavg end: $(cat /proc/loadavg)"

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = {"bond2": "net_bonding mode 2, l34", "bond5": "net_bonding mode 5 (TLB)",
         "dmpd": "dmpd balancer (lb)", "hash": "Toeplitz hash % ports"}
fails = []
print()
print(f"{len({r['seed'] for r in rows})} seed(s); per-port share of bytes sent, summed over the runs:")
print()
n = rows[0]["members"]
print("| sender | " + " | ".join(f"port {i}" for i in range(n))
      + " | spread (std-dev, pp) | spread per 10 ms (pp) | reordered | reordered % | lost | frames |")
print("|---|" + "---:|" * n + "---:|---:|---:|---:|---:|---:|")
for mode in ["bond2", "bond5", "dmpd", "hash"]:
    rs = [r for r in rows if r["mode"] == mode]
    if not rs:
        fails.append(f"no run of {mode}")
        continue
    tx = [sum(r["tx_bytes"][i] for r in rs) for i in range(n)]
    total = sum(tx)
    share = [100 * b / max(total, 1) for b in tx]
    spread = (sum((s - 100 / n) ** 2 for s in share) / n) ** 0.5
    per = statistics.mean(r["period_spread_pp"] for r in rs)
    reo = sum(r["reordered"] for r in rs)
    rec = sum(r["received"] for r in rs)
    lost = sum(r["lost"] + r["refused"] for r in rs)
    sent = sum(r["sent"] for r in rs)
    if rec <= 0:
        fails.append(f"{mode}: nothing received")
    print(f"| {names[mode]} | " + " | ".join(f"{s:.1f}%" for s in share)
          + f" | {spread:.2f} | {per:.2f} | {reo} | {100 * reo / max(rec, 1):.2f}% | {lost} | {sent} |")
if fails:
    print("\nFAILED: " + "; ".join(fails), file=sys.stderr)
    sys.exit(1)
EOF
echo "raw results: $RESULTS"
