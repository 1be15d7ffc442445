#!/usr/bin/env bash
# Test of the DMPD Wireshark dissector (tools/wireshark/dmpd.lua), as root.
#
# 1. Fuzz corpus: dmpd/fuzz/corpus/parse/* (raw frames) -> pcap (by hand,
#    raw2pcap.py), as is and with ~17 000 hostile variants (every truncation,
#    byte changes, random corruption): tshark must raise no Lua error, and the
#    corpus frames (all well-formed) get no expert info at all.
# 2. Live: the emulated cluster (scripts/cluster: 3 nodes x 2 ports, 250 ms),
#    node 3 a plain agent, nodes 1 and 2 the example app dmpd-stream sending
#    500 messages to each other on pipe 1. The bridge dmpdbr0 is captured for
#    6 s with tshark, dissected with the Lua dissector, and compared with what
#    node 3's agent reports (`dmpd-agent status --json`): master = heartbeat
#    sender, term, incarnation, table records (node numbers, port MACs and
#    states), data five-tuples, no Lua error and no expert info.
#
# Prints one line per check and finally "N passed, M failed"; exits non-zero
# on any failure. The cluster is torn down on exit (trap), also on failure.
# If another session's cluster (dmpd-sw / dmpd-n*) exists, waits for it to go
# away (poll every 15 s, up to 10 min) instead of tearing it down.
#
# Environment: CARGO_TARGET_DIR (default <repo>/target), DMPD_WS_SKIP_BUILD=1
# to use already built binaries, DMPD_WS_KEEP=DIR to keep the capture there.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tools/wireshark
LUA=$HERE/dmpd.lua
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
# DMPD_AGENT / DMPD_STREAM: use these binaries (and skip the build).
AGENT=${DMPD_AGENT:-$CARGO_TARGET_DIR/release/dmpd-agent}
STREAM=${DMPD_STREAM:-$CARGO_TARGET_DIR/release/dmpd-stream}
[[ -n ${DMPD_AGENT:-} ]] && DMPD_WS_SKIP_BUILD=1

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION COMMAND...
  local d=$1
  shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}

((EUID == 0)) || { echo "test.sh: must run as root" >&2; exit 2; }
for t in tshark python3 cargo; do
  command -v $t >/dev/null || { echo "test.sh: $t not found" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/dmpd-ws.XXXXXX)
RUN=$TMP/run
CAP=$TMP/bridge.pcapng
UP=0
TSHARK_PID=
cleanup() {
  local rc=$?
  if [[ -n $TSHARK_PID ]]; then kill "$TSHARK_PID" 2>/dev/null || true; fi
  if ((UP)); then
    DMPD_RUN=$RUN DMPD_AGENT=$AGENT DMPD_STREAM=$STREAM bash "$REPO/scripts/cluster" down >/dev/null 2>&1 || true
  fi
  if [[ -n ${DMPD_WS_KEEP:-} ]]; then
    mkdir -p "$DMPD_WS_KEEP" && cp -r "$TMP"/. "$DMPD_WS_KEEP"/ 2>/dev/null
    echo "test.sh: capture and logs kept in $DMPD_WS_KEEP"
  fi
  rm -rf "$TMP"
  echo "$PASS passed, $FAIL failed"
  if ((FAIL > 0 && rc == 0)); then rc=1; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# tshark with the dissector; stderr kept apart (Lua load errors land there).
ts() { tshark -X "lua_script:$LUA" "$@" 2>>"$TMP/tshark.err"; }
no_lua_stderr() { ! grep -qiE 'lua|error' "$TMP/tshark.err"; }

echo "# 1. fuzz corpus"
CORPUS=("$REPO"/dmpd/fuzz/corpus/parse/*)
python3 "$HERE/raw2pcap.py" "$TMP/corpus.pcap" "${CORPUS[@]}" 2>/dev/null
python3 "$HERE/raw2pcap.py" --mutate 1 "$TMP/mutated.pcap" "${CORPUS[@]}" 2>"$TMP/raw2pcap.err"
: >"$TMP/tshark.err"
n=$(ts -r "$TMP/corpus.pcap" -Y dmpd -T fields -e frame.number | wc -l)
check "corpus: all ${#CORPUS[@]} frames dissected as DMPD ($n)" test "$n" -eq "${#CORPUS[@]}"
n=$(ts -r "$TMP/corpus.pcap" -Y '_ws.expert || _ws.lua.error || _ws.malformed' -T fields -e frame.number | wc -l)
check "corpus: no expert info, Lua error or malformed on well-formed frames ($n)" test "$n" -eq 0
kinds=$(ts -r "$TMP/corpus.pcap" -T fields -e dmpd.kind | sort -u | tr '\n' ' ')
check "corpus: every kind decoded (${kinds% })" test "$kinds" = "0x01 0x02 0x03 0x04 0x05 0x20 "
total=$(grep -o '[0-9]* frames' "$TMP/raw2pcap.err" | cut -d' ' -f1)
ts -r "$TMP/mutated.pcap" -T fields -E separator=/t -e frame.number -e _ws.lua.error -e _ws.expert.group >"$TMP/mutated.tsv"
n=$(awk -F'\t' '$2 != ""' "$TMP/mutated.tsv" | wc -l)
check "corpus: ${total:-?} mutated/truncated frames, $n Lua errors" test "$n" -eq 0
n=$(awk -F'\t' '$3 ~ /117440512/' "$TMP/mutated.tsv" | wc -l) # PI_MALFORMED
check "corpus: malformed variants flagged by malformed expert infos ($n)" test "$n" -gt 1000
check "corpus: no Lua messages on tshark's stderr" no_lua_stderr

echo "# 2. live cluster"
if [[ -z ${DMPD_WS_SKIP_BUILD:-} ]]; then
  if (cd "$REPO" && cargo build -q --release -p dmpd-agent) >"$TMP/build.log" 2>&1; then
    ok "cargo build --release -p dmpd-agent (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  else
    tail -20 "$TMP/build.log"
    bad "cargo build --release -p dmpd-agent"
    exit 1
  fi
fi
[[ -x $AGENT && -x $STREAM ]] || { bad "binaries $AGENT and $STREAM exist"; exit 1; }

busy() { [[ -e /run/netns/dmpd-sw ]] || compgen -G '/run/netns/dmpd-n*' >/dev/null; }
for ((w = 0; w < 40; w++)); do
  busy || break
  echo "test.sh: another dmpd cluster exists ($(ip netns list | grep -o 'dmpd-[a-z0-9]*' | tr '\n' ' ')); waiting 15 s"
  sleep 15
done
if busy; then
  bad "emulated cluster free within 10 min (another session's cluster still up; not touched)"
  exit 1
fi

cluster() { DMPD_RUN=$RUN DMPD_AGENT=$AGENT DMPD_STREAM=$STREAM bash "$REPO/scripts/cluster" "$@"; }
UP=1
cluster up -n 3 -p 2 --period-ms 250 --no-start --no-build >"$TMP/up.log" 2>&1 ||
  { cat "$TMP/up.log"; bad "scripts/cluster up"; exit 1; }
ok "scripts/cluster up -n 3 -p 2 --period-ms 250"

status() { "$AGENT" status --config "$RUN/node3.toml" --json 2>/dev/null; }
cluster start 3 >/dev/null
# node 3 alone: master after the election timeout (about 1 s)
for ((i = 0; i < 40; i++)); do
  status >"$TMP/status0.json" && python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("master") else 1)' "$TMP/status0.json" 2>/dev/null && break
  sleep 0.25
done
check "node 3's agent answers status and has a master" python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("master") else 1)' "$TMP/status0.json"

ip netns exec dmpd-sw tshark -i dmpdbr0 -a duration:6 -w "$CAP" >"$TMP/capture.log" 2>&1 &
TSHARK_PID=$!
# dumpcap is ready when it says "Capturing on"
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$TMP/capture.log" 2>/dev/null && break
  sleep 0.1
done
cluster start 1 --stream pipe=1,to=2:1,count=500,rate=500 >/dev/null
cluster start 2 --stream pipe=1,to=1:1,count=500,rate=500 >/dev/null
wait "$TSHARK_PID"
TSHARK_PID=
status >"$TMP/status.json"
check "capture written ($(stat -c %s "$CAP" 2>/dev/null || echo 0) bytes)" test -s "$CAP"
check "node 3 status after the capture" test -s "$TMP/status.json"

: >"$TMP/tshark.err"
ts -r "$CAP" -Y dmpd -T fields -E separator=/t -E occurrence=a -E aggregator=';' \
  -e frame.number -e dmpd.kind -e dmpd.sender -e dmpd.term -e dmpd.incarnation -e dmpd.cluster_id \
  -e dmpd.node.num -e dmpd.node.state -e dmpd.node.n_ports -e dmpd.port.idx -e dmpd.port.mac -e dmpd.port.state \
  -e dmpd.data.snode -e dmpd.data.dnode -e dmpd.data.spipe -e dmpd.data.dpipe -e dmpd.data.seq \
  -e dmpd.response.master -e dmpd.heartbeat.round -e eth.src \
  -e dmpd.data.flags -e dmpd.data.ack -e dmpd.data.payload_len -e dmpd.data.payload >"$TMP/fields.tsv"
nbad=$(ts -r "$CAP" -Y '_ws.lua.error || _ws.malformed || _ws.expert' -T fields -e frame.number | wc -l)
check "capture: no Lua error, malformed or expert info on real frames ($nbad)" test "$nbad" -eq 0
check "capture: no Lua messages on tshark's stderr" no_lua_stderr

python3 - "$TMP/fields.tsv" "$TMP/status.json" >"$TMP/checks.txt" <<'EOF'
import json, sys

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
st = json.load(open(sys.argv[2]))
out = []
def check(desc, cond):
    out.append(("ok" if cond else "FAIL") + "\t" + desc)

def ints(s):
    return [int(x, 0) for x in s.split(";") if x != ""]

K = {"0x01": "HEARTBEAT", "0x02": "RESPONSE", "0x03": "TABLE", "0x04": "ANNOUNCE", "0x05": "LEAVE", "0x20": "DATA"}
(FN, KIND, SENDER, TERM, INC, CID, NNUM, NSTATE, NPORTS, PIDX, PMAC, PSTATE,
 SN, DN, SP, DP, DSEQ, RMASTER, ROUND, ESRC, DFLAGS, DACK, DLEN, DPAY) = range(24)
by = {}
for r in rows:
    r += [""] * (24 - len(r))
    by.setdefault(K.get(r[KIND], r[KIND]), []).append(r)
check("frames by kind: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(by.items())), True)
for k in ("HEARTBEAT", "RESPONSE", "TABLE", "DATA"):
    check(f"capture has {k} frames", len(by.get(k, [])) > 0)

master, term = st.get("master"), st.get("term")
cl = {n["node"]: n for n in st.get("cluster", [])}
check(f"status: master {master}, term {term}, {len(cl)} nodes in the table", master is not None and len(cl) == 3)
check("every frame carries cluster id " + str(st.get("cluster_id")),
      all(int(r[CID]) == st.get("cluster_id") for r in rows if r[CID]))

hb = by.get("HEARTBEAT", [])
senders = sorted({int(r[SENDER]) for r in hb})
check(f"heartbeat senders {senders} == status master {master}", senders == [master])
hterms = sorted({int(r[TERM]) for r in hb})
check(f"heartbeat terms {hterms} == status term {term}", hterms == [term])
if master in cl:
    incs = {int(r[INC]) for r in hb}
    check(f"heartbeat incarnation == master's incarnation in the table ({cl[master]['incarnation']})",
          incs == {cl[master]["incarnation"]})
rounds = [int(r[ROUND]) for r in hb if r[ROUND]]
check("heartbeat rounds never decrease", rounds == sorted(rounds))
# 2 ports: each heartbeat goes out on both ports with the same sequence
check("heartbeats leave on both of the master's ports (2 source MACs)", len({r[ESRC] for r in hb}) == 2)

tb = by.get("TABLE", [])
check("table segments are sent by the master", {int(r[SENDER]) for r in tb} <= {master})
seen_nodes, macs_ok, macs_bad, states_ok = set(), 0, [], True
for r in tb:
    nums, nports = ints(r[NNUM]), ints(r[NPORTS])
    pidx, pmac = ints(r[PIDX]), [m for m in r[PMAC].split(";") if m]
    states = ints(r[NSTATE])
    k = 0
    for n, np, s in zip(nums, nports, states):
        seen_nodes.add(n)
        for _ in range(np):
            idx, mac = pidx[k], pmac[k]
            k += 1
            want = {p["idx"]: p["mac"].lower() for p in cl.get(n, {}).get("ports", [])}
            if want.get(idx) == mac.lower():
                macs_ok += 1
            else:
                macs_bad.append((n, idx, mac, want.get(idx)))
        if n in cl and s != 1:
            states_ok = False
    check_len = (k == len(pidx) == len(pmac))
    if not check_len:
        macs_bad.append(("frame", r[FN], "port count mismatch"))
check(f"table records cover the status's nodes: {sorted(seen_nodes)} == {sorted(cl)}", seen_nodes == set(cl))
check(f"table port MACs match the status ({macs_ok} matched, mismatches {macs_bad[:3]})", macs_ok > 0 and not macs_bad)
check("port MACs follow scripts/cluster's 02:dd:00:<node>:<port>:01",
      all(p["mac"].lower() == "02:dd:00:%02x:%02x:01" % (n, p["idx"]) for n, x in cl.items() for p in x["ports"]))
check("table records of live nodes are Up (state 1)", states_ok)

rs = by.get("RESPONSE", [])
check("responses come from the followers", rs != [] and {int(r[SENDER]) for r in rs} <= set(cl) - {master})
check("responses name the master and its term",
      all(int(r[RMASTER]) == master and int(r[TERM]) == term for r in rs))

dt = by.get("DATA", [])
tuples = {}
for r in dt:
    t = (int(r[SN]), int(r[DN]), int(r[SP]), int(r[DP]))
    tuples[t] = tuples.get(t, 0) + 1
check(f"data five-tuples are 1/2/1/1 or 2/1/1/1: {tuples}", set(tuples) <= {(1, 2, 1, 1), (2, 1, 1, 1)})
check("data flows both ways", (1, 2, 1, 1) in tuples and (2, 1, 1, 1) in tuples)
# dmpd-stream's payload: source node (2), source pipe (2), app sequence (8),
# then bytes seq+i; unreliable streams leave the header's msg seq / ack at 0.
check("data payload_len equals the payload's length",
      all(int(r[DLEN]) * 2 == len(r[DPAY].replace(":", "")) for r in dt))
app, dups = {}, 0
pay_ok = True
for r in dt:
    p = bytes.fromhex(r[DPAY].replace(":", ""))
    if len(p) < 12 or int.from_bytes(p[0:2], "big") != int(r[SN]) or int.from_bytes(p[2:4], "big") != int(r[SP]):
        pay_ok = False
        continue
    q = int.from_bytes(p[4:12], "big")
    dups += q in app.setdefault(int(r[SN]), set())
    app[int(r[SN])].add(q)
check("data payloads start with (snode, spipe) of the header", pay_ok)
check("app sequences in the payloads: 0..499, no duplicate ("
      + ", ".join(f"from node {n}: {len(s)} of 500" for n, s in sorted(app.items())) + ")",
      dups == 0 and app and all(s <= set(range(500)) for s in app.values()))
hdr = sorted({(r[DFLAGS], int(r[DSEQ]), int(r[DACK])) for r in dt})[:3]
check(f"data header flags/msg seq/ack decoded (unreliable streams: {hdr})", all(r[DFLAGS] and r[DSEQ] and r[DACK] for r in dt))
print("\n".join(out))
EOF
while IFS=$'\t' read -r res desc; do
  if [[ $res == ok ]]; then ok "$desc"; else bad "$desc"; fi
done <"$TMP/checks.txt"
[[ -s $TMP/checks.txt ]] || bad "capture analysis ran"

cluster down >/dev/null 2>&1 && UP=0
check "scripts/cluster down" test "$UP" -eq 0
exit 0
