#!/usr/bin/env bash
# The agent's data path against dpdk-testpmd, on the same net_ring loopback
# ports with the same lcore layout (lcore 0 = main on CPU $MAIN_CPU, lcore 1
# = the one forwarding lcore on CPU $FWD_CPU):
#
#   testpmd io       rx burst -> tx burst, frames untouched (upper bound)
#   testpmd macswap  swaps the MAC addresses of every frame
#   testpmd 5tswap   parses and swaps L2/L3/L4 addresses of every frame
#   dmpd agent       rx burst -> DMPD parse/checks -> echo pipe (turned round
#                    onto the pipe's tx ring) -> Toeplitz hash -> balancer
#                    decision -> MACs -> tx burst: the agent's own engine
#                    (benches/src/bin/datapath-agent.rs), balancing on
#
# Each port is a net_ring loopback (what it sends it receives); 32 frames
# per port are in flight (testpmd: --tx-first; the agent: preloaded through
# the pipe). Rates are frames forwarded per second of the forwarding lcore's
# CPU time (/proc/.../schedstat), i.e. Mpps per lcore: on this shared
# 2-vCPU machine the lcore gets only part of a CPU, and wall-clock rates
# mostly measure the neighbours. Wall-clock Mpps are printed too. Every
# variant runs once per round, rounds interleave, the table gives medians.
#
# Usage: benches/datapath.sh [--quick]
#   --quick: CI mode (64 and 1518 bytes, one round, 1 s each): asserts that
#   every variant forwarded frames and that the table is complete.
# Environment: SIZES ("64 128 256 512 1024 1518", wire sizes with FCS),
#   ROUNDS (3), DURATION (3 s), WARMUP (1), PORTS (4), MAIN_CPU (0),
#   FWD_CPU (1), DATAPATH_AGENT (binary; default: built here), OUT (dir),
#   MEMORY (EAL memory of both: "huge", 2 MB pages reserved by
#   scripts/hugepages, as DPDK runs in production; "nohuge", 4 KiB pages
#   (--no-huge); default "auto": huge when the pages can be reserved).
#   On 4 KiB pages the mbuf pool spans thousands of pages; testpmd's
#   macswap, for one, runs at less than half its hugepage rate.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
    SIZES=${SIZES:-"64 1518"}; ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-1}; WARMUP=${WARMUP:-0.5}
else
    SIZES=${SIZES:-"64 128 256 512 1024 1518"}; ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}
fi
PORTS=${PORTS:-4}
MAIN_CPU=${MAIN_CPU:-0}
FWD_CPU=${FWD_CPU:-1}
OUT=${OUT:-$(mktemp -d /tmp/dmpd-datapath.XXXXXX)}
mkdir -p "$OUT"
PREFIX="dmpd-dp-$$"
MEMORY=${MEMORY:-auto}
if [ "$MEMORY" = auto ]; then
    # Each process maps 256 MB (128 pages); runs never overlap.
    if [ "$EUID" = 0 ] && scripts/hugepages 512 >/dev/null 2>&1 &&
        [ "$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)" -ge 128 ]; then
        MEMORY=huge
    else
        MEMORY=nohuge
        echo "note: no 128 free hugepages (not root, or scripts/hugepages failed, or in use): 4 KiB pages" >&2
    fi
fi
case "$MEMORY" in
    # --huge-unlink: no page files are left behind in /dev/hugepages.
    huge) EAL_MEM=(-m 256 --huge-unlink) ;;
    nohuge) EAL_MEM=(--no-huge -m 256 --no-shconf) ;;
    *) echo "MEMORY=$MEMORY: huge, nohuge or auto" >&2; exit 1 ;;
esac
LCORES="0@$MAIN_CPU,1@$FWD_CPU"

command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not found (scripts/setup installs dpdk)" >&2; exit 1; }
if [ -z "${DATAPATH_AGENT:-}" ]; then
    cargo build --release -q -p dmpd-benches --bin datapath-agent
    DATAPATH_AGENT="${CARGO_TARGET_DIR:-target}/release/datapath-agent"
fi

VDEVS=()
for ((i = 0; i < PORTS; i++)); do VDEVS+=("--vdev=net_ring$i"); done

# The forwarding thread of process $1 (EAL calls it rte-worker-1).
fwd_task() {
    local t
    for t in /proc/"$1"/task/*; do
        if [ "$(cat "$t/comm" 2>/dev/null)" = "rte-worker-1" ]; then echo "$t"; return; fi
    done
    return 1
}
oncpu() { cut -d' ' -f1 "$1/schedstat"; }

# testpmd MODE LEN -> one JSON line on stdout.
run_testpmd() {
    local mode=$1 len=$2 log="$OUT/testpmd-$1-$2.log" fifo="$OUT/fifo"
    rm -f "$fifo"; mkfifo "$fifo"
    # Line-buffered, so that each command's output follows its echo in the log.
    stdbuf -oL dpdk-testpmd --lcores="$LCORES" "${EAL_MEM[@]}" --no-pci \
        --file-prefix="$PREFIX-tp" "${VDEVS[@]}" --log-level=lib.eal:error -- \
        -i --nb-cores=1 --total-num-mbufs=8192 --port-topology=loop \
        --forward-mode="$mode" --txpkts="$len" --burst=32 <"$fifo" >"$log" 2>&1 &
    local pid=$!
    exec 3>"$fifo"
    # Ports are set up when the first prompt shows.
    local task="" i
    for ((i = 0; i < 300; i++)); do
        grep -q "testpmd> " "$log" && task=$(fwd_task $pid) && break
        sleep 0.1
    done
    [ -n "$task" ] || { echo "testpmd $mode: no forwarding lcore (see $log)" >&2; exec 3>&-; wait $pid || true; return 1; }
    echo "start tx_first" >&3
    sleep "$WARMUP"
    echo "show port stats all" >&3
    local c0 t0 c1 t1
    c0=$(oncpu "$task"); t0=$(date +%s.%N)
    sleep "$DURATION"
    echo "show port stats all" >&3
    c1=$(oncpu "$task"); t1=$(date +%s.%N)
    sleep 0.2
    echo "stop" >&3
    echo "quit" >&3
    exec 3>&-
    wait $pid || true
    python3 - "$log" "$mode" "$len" "$c0" "$c1" "$t0" "$t1" "$PORTS" <<'EOF'
import json, re, sys
log, mode, length, c0, c1, t0, t1, ports = sys.argv[1:]
text = open(log, errors="replace").read()
tx = [int(x) for x in re.findall(r"TX-packets:\s+(\d+)\s+TX-errors", text)]
pps = [int(x) for x in re.findall(r"Tx-pps:\s+(\d+)", text)]
ports = int(ports)
if len(tx) < 2 * ports:
    sys.exit(f"testpmd {mode}: expected two port stats readings in {log}")
frames = sum(tx[ports:2 * ports]) - sum(tx[:ports])
cpu = (int(c1) - int(c0)) / 1e9
print(json.dumps({"tool": "testpmd", "mode": mode, "size": int(length),
                  "frames": frames, "seconds": float(t1) - float(t0),
                  "mpps": sum(pps[ports:2 * ports]) / 1e6,
                  "cpu_seconds": cpu, "mpps_per_cpu": frames / max(cpu, 1e-9) / 1e6}))
EOF
}

run_agent() {
    local len=$1
    "$DATAPATH_AGENT" --ports "$PORTS" --size "$len" --lcores "$LCORES" \
        --file-prefix "$PREFIX-agent" --memory "$MEMORY" --warmup "$WARMUP" --seconds "$DURATION" \
        2>"$OUT/agent-$len.log"
}

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
echo "memory: $MEMORY" | tee "$OUT/memory"
echo "loadavg start: $(cat /proc/loadavg)" | tee "$OUT/loadavg"
for ((r = 1; r <= ROUNDS; r++)); do
    for size in $SIZES; do
        len=$((size - 4))
        # Rotate the order each round so no variant always runs first.
        variants=(io macswap 5tswap agent)
        k=$(( (r - 1) % 4 ))
        variants=("${variants[@]:$k}" "${variants[@]:0:$k}")
        for v in "${variants[@]}"; do
            if [ "$v" = agent ]; then
                line=$(run_agent "$len")
            else
                line=$(run_testpmd "$v" "$len")
            fi
            echo "{\"round\": $r, \"wire_size\": $size, \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"r\": $line}" >>"$RESULTS"
            echo "round $r, $size B, $v: $line" >&2
        done
    done
done
echo "loadavg end: $(cat /proc/loadavg)" | tee -a "$OUT/loadavg"

python3 - "$RESULTS" "$QUICK" "$SIZES" "$MEMORY" <<'EOF'
import json, statistics, sys
path, quick, sizes, memory = sys.argv[1], sys.argv[2] == "1", [int(s) for s in sys.argv[3].split()], sys.argv[4]
rows = [json.loads(l) for l in open(path)]
names = ["io", "macswap", "5tswap", "agent"]
def key(r):
    return "agent" if r["r"]["tool"] == "dmpd-agent" else r["r"]["mode"]
fails = []
for r in rows:
    x = r["r"]
    if x["frames"] <= 0 or x["cpu_seconds"] <= 0:
        fails.append(f"{key(r)} at {r['wire_size']} B forwarded {x['frames']} frames")
    if x["tool"] == "dmpd-agent":
        lost = {k: v for k, v in x["drops"].items() if v}
        if lost:
            fails.append(f"agent at {r['wire_size']} B dropped frames: {lost}")
def med(size, name, field):
    v = [r["r"][field] for r in rows if r["wire_size"] == size and key(r) == name]
    return statistics.median(v) if v else None
def ratio(size, a, b):
    # median over rounds of the per-round ratio (same minutes, same load)
    v = []
    for rnd in sorted({r["round"] for r in rows}):
        x = [r["r"]["mpps_per_cpu"] for r in rows if r["round"] == rnd and r["wire_size"] == size and key(r) == a]
        y = [r["r"]["mpps_per_cpu"] for r in rows if r["round"] == rnd and r["wire_size"] == size and key(r) == b]
        if x and y and y[0] > 0:
            v.append(x[0] / y[0])
    return statistics.median(v) if v else None
print()
print(f"Mpps per lcore (frames per second of the forwarding lcore's CPU time, EAL memory: {memory}), "
      f"median of {len({r['round'] for r in rows})} round(s):")
print()
print("| frame (B) | testpmd io | testpmd macswap | testpmd 5tswap | dmpd agent | agent / macswap | agent / 5tswap | agent / io |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in sizes:
    m = {n: med(s, n, "mpps_per_cpu") for n in names}
    if any(v is None for v in m.values()):
        fails.append(f"missing variant at {s} B")
        continue
    rs = [ratio(s, "agent", b) for b in ("macswap", "5tswap", "io")]
    print(f"| {s} | {m['io']:.1f} | {m['macswap']:.1f} | {m['5tswap']:.1f} | {m['agent']:.1f} | "
          + " | ".join(f"{x:.2f}x" for x in rs) + " |")
print()
print("Wall-clock Mpps (the lcore's share of a CPU varies with the machine's load):")
print()
print("| frame (B) | testpmd io | testpmd macswap | testpmd 5tswap | dmpd agent | agent CPU share |")
print("|---:|---:|---:|---:|---:|---:|")
for s in sizes:
    m = {n: med(s, n, "mpps") for n in names}
    if any(v is None for v in m.values()):
        continue
    share = med(s, "agent", "cpu_seconds") / med(s, "agent", "seconds")
    print(f"| {s} | {m['io']:.1f} | {m['macswap']:.1f} | {m['5tswap']:.1f} | {m['agent']:.1f} | {share:.2f} |")
if fails:
    print("\nFAILED:\n  " + "\n  ".join(fails), file=sys.stderr)
    sys.exit(1)
EOF
echo "raw results: $RESULTS"
