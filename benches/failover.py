#!/usr/bin/env python3
"""Failure detection and failover of the real agents on the emulated cluster
(scripts/cluster: namespaces, veths, a Linux bridge, net_af_packet), at
several heartbeat periods, and of keepalived (VRRP) between two of the same
kind of namespaces as an anchor. Run by benches/control-plane.sh, as root.

Every time is taken from the agents' own logs (tracing timestamps, us) or,
for keepalived, from `ip -ts monitor address` in the backup's namespace,
against the wall-clock time read just before the SIGKILL. The control
socket is only polled to know when to go on.

Prints markdown tables; exits non-zero if a fault was not detected or a
failover did not complete within its time limit.
"""

import argparse
import datetime
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+(\w+)\s+(\S+): (.*)$")
NODES = 3
PORTS = 2


def log(msg):
    print(f"failover: {msg}", file=sys.stderr, flush=True)


def loadavg():
    return Path("/proc/loadavg").read_text().strip()


class Cluster:
    def __init__(self, args, period_ms):
        self.args = args
        self.period_ms = period_ms
        self.run = Path(args.run)
        self.env = dict(os.environ, DMPD_NS=args.ns, DMPD_RUN=str(self.run), DMPD_AGENT=args.agent)
        self.cpus = args.cpus

    def script(self, *a, cpu=None, check=True):
        cmd = ["bash", str(REPO / "scripts/cluster"), *map(str, a)]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
        return r

    def cpu_of(self, i):
        return self.cpus[(i - 1) % len(self.cpus)]

    def up(self, nodes=NODES, ports=PORTS, start=True):
        self.script("down")
        self.script("up", "-n", nodes, "-p", ports, "--period-ms", self.period_ms, "--no-start", "--no-build")
        if not start:
            return
        for i in range(1, nodes + 1):
            # both EAL lcores (control, polling) on the node's one core;
            # taskset puts the agent's other threads there too
            p = self.run / f"node{i}.toml"
            s = re.sub(r'(?m)^lcores = .*$', f'lcores = "(0,1)@({self.cpu_of(i)})"', p.read_text())
            p.write_text(s)
            self.start(i)

    def start(self, i):
        self.script("start", i, cpu=self.cpu_of(i))

    def down(self):
        self.script("down", check=False)

    def pid(self, i):
        try:
            pid = int((self.run / f"node{i}.pid").read_text())
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if f"node{i}.toml".encode() in cmd else None

    def kill9(self, i):
        pid = self.pid(i)
        if pid is None:
            raise RuntimeError(f"node {i}: agent not running")
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        return t0

    def status(self, i):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(str(self.run / f"node{i}.sock"))
                s.sendall(b'{"cmd":"status"}\n')
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            return json.loads(buf).get("status")
        except (OSError, ValueError):
            return None

    def converged(self, live):
        """The master every node of `live` follows, if they agree, exactly
        one says it is master, and each lists every live node up with every
        port usable."""
        master, masters = None, 0
        for i in live:
            st = self.status(i)
            if st is None or st.get("master") is None:
                return None
            if master is None:
                master = st["master"]
            if st["master"] != master or master not in live:
                return None
            masters += st.get("role") == "master"
            for j in live:
                n = next((n for n in st.get("cluster", []) if n["node"] == j), None)
                if n is None or n["state"] != "up" or len(n["ports"]) != PORTS:
                    return None
                if not all(p["usable"] for p in n["ports"]):
                    return None
        return master if masters == 1 else None

    def events(self, i, since=0.0):
        """(time, event text) of node i's cluster events after `since`."""
        out = []
        try:
            text = (self.run / f"node{i}.log").read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            m = LOG_LINE.match(ANSI.sub("", line))
            if not m:
                continue
            t = datetime.datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f")
            t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
            if t < since:
                continue
            msg = m.group(4)
            if "cluster event" in msg:
                out.append((t, msg.split("ev=", 1)[-1]))
            elif "control loop stalled;" in msg or "self-monitoring" in msg:
                out.append((t, msg))
        return out


def wait(timeout, f, poll):
    end = time.time() + timeout
    while time.time() < end:
        v = f()
        if v:
            return v
        time.sleep(poll)
    return None


def first(events, pattern):
    r = re.compile(pattern)
    return next((t for t, e in events if r.search(e)), None)


def count(events, pattern):
    r = re.compile(pattern)
    return sum(1 for _, e in events if r.search(e))


def measure_period(args, p_ms, results):
    c = Cluster(args, p_ms)
    p = p_ms / 1000.0
    poll = min(max(p / 4, 0.02), 0.1)
    allnodes = list(range(1, NODES + 1))
    res = {"period_ms": p_ms, "load_start": loadavg(), "master": [], "follower": [], "errors": []}
    results.append(res)
    log(f"P = {p_ms} ms: cluster up ({NODES} nodes x {PORTS} ports, agent i on cpu {[c.cpu_of(i) for i in allnodes]})")
    c.up()
    try:
        if not wait(30 + 10 * p, lambda: c.converged(allnodes), poll):
            raise RuntimeError("no initial convergence")
        # steady state: master changes and stalls while nothing happens
        steady = max(args.steady, args.steady_periods * p)
        t_s = time.time()
        time.sleep(steady)
        evs = [(t, i, e) for i in allnodes for t, e in c.events(i, t_s)]
        res["steady"] = {
            "seconds": round(time.time() - t_s, 1),
            "periods": round((time.time() - t_s) / p),
            "master_changes": sum(1 for _, _, e in evs if "MasterChanged" in e),
            "stalls": sum(1 for _, _, e in evs if "stalled" in e),
            "self_faulty": sum(1 for _, _, e in evs if "self-monitoring: no port" in e),
            # what happened, for the report: (s after the window start, node, event)
            "events": [(round(t - t_s, 4), i, e) for t, i, e in sorted(evs)
                       if re.search(r"MasterChanged|RoleChanged|stalled|self-monitoring", e)],
        }
        log(f"P = {p_ms} ms: steady {res['steady']}")
        limit = 20 * p + 5  # generous: this is a loaded 2-core machine
        for rep in range(args.reps):
            m = wait(10 + 10 * p, lambda: c.converged(allnodes), poll)
            if not m:
                raise RuntimeError("cluster not converged before a master kill")
            rest = [i for i in allnodes if i != m]
            # at a random phase of the period
            time.sleep(p * (2 + random.random()))
            t0 = c.kill9(m)

            def agreed():
                new = c.converged(rest)
                return new if new and new != m else None

            new = wait(limit, agreed, poll)
            if not new:
                res["errors"].append(f"master kill {rep}: no failover within {limit:.1f} s")
                c.start(m)
                continue
            entry = None
            evs = {i: c.events(i, t0) for i in rest}
            detect = min((first(evs[i], r"MasterChanged \{ master: None") or 1e30) for i in rest)
            follows = [first(evs[i], rf"MasterChanged \{{ master: Some\({new}\)") for i in rest]
            if detect > 1e29 or None in follows:
                res["errors"].append(f"master kill {rep}: events missing in the logs")
            else:
                entry = {
                    "victim": m,
                    "new": new,
                    "detect_ms": (detect - t0) * 1000,
                    "failover_ms": (max(follows) - t0) * 1000,
                    "master_changes": sum(count(evs[i], r"MasterChanged \{ master: Some") for i in rest),
                }
                res["master"].append(entry)
                log(f"P = {p_ms} ms: master {m} killed: detect {(detect - t0) * 1000:.1f} ms, "
                    f"failover to {new} {(max(follows) - t0) * 1000:.1f} ms")
            # the killed node restarts and rejoins: master and term unchanged?
            t_r = time.time()
            c.start(m)
            if not wait(10 + 10 * p, lambda: c.converged(allnodes) == new, poll):
                res["errors"].append(f"master kill {rep}: the old master did not rejoin")
                continue
            if entry is not None:
                entry["rejoin_changes"] = sum(count(c.events(i, t_r), r"MasterChanged") for i in rest)
        for rep in range(args.follower_reps):
            m = wait(10 + 10 * p, lambda: c.converged(allnodes), poll)
            if not m:
                raise RuntimeError("cluster not converged before a follower kill")
            f = [i for i in allnodes if i != m][rep % (NODES - 1)]
            other = [i for i in allnodes if i not in (m, f)][0]
            time.sleep(p * (2 + random.random()))
            t0 = c.kill9(f)
            seen = wait(limit, lambda: first(c.events(other, t0), rf"NodeExpired \{{ node: {f} \}}"), poll)
            if not seen:
                res["errors"].append(f"follower kill {rep}: node {f} not expired within {limit:.1f} s")
            else:
                me = c.events(m, t0)
                ports = first(me, rf"PortDown \{{ node: {f}, port")
                expired = first(me, rf"NodeExpired \{{ node: {f} \}}")
                mchg = sum(count(c.events(i, t0), r"MasterChanged") for i in (m, other))
                res["follower"].append({
                    "victim": f,
                    "ports_down_ms": (ports - t0) * 1000 if ports else None,
                    "expired_ms": (expired - t0) * 1000 if expired else None,
                    "seen_ms": (seen - t0) * 1000,
                    "master_changes": mchg,
                    # the master changed meanwhile (e.g. its control loop
                    # stalled): not a clean measurement of this fault
                    "disturbed": mchg > 0 or ports is None or expired is None,
                })
                x = res["follower"][-1]
                log(f"P = {p_ms} ms: follower {f} killed: at the master its ports down after "
                    f"{x['ports_down_ms'] or -1:.1f} ms, expired {x['expired_ms'] or -1:.1f} ms; "
                    f"node {other} saw it expired after {x['seen_ms']:.1f} ms")
            c.start(f)
            if not wait(10 + 10 * p, lambda: c.converged(allnodes), poll):
                res["errors"].append(f"follower kill {rep}: node {f} did not rejoin")
    except RuntimeError as e:
        res["errors"].append(str(e))
    finally:
        res["load_end"] = loadavg()
        whole = [e for i in allnodes for _, e in c.events(i, 0.0)]
        res["stalls_total"] = sum(1 for e in whole if "control loop stalled;" in e)
        res["self_faulty_total"] = sum(1 for e in whole if "self-monitoring: no port" in e)
        # keep the agents' logs of this period (the next `up` clears them)
        keep = c.run / f"logs-{p_ms}ms"
        keep.mkdir(exist_ok=True)
        for i in allnodes:
            src = c.run / f"node{i}.log"
            if src.exists():
                (keep / src.name).write_bytes(src.read_bytes())
        c.down()


KEEPALIVED_CONF = """global_defs {{
  router_id {ns}
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface p0
  virtual_router_id 51
  priority {prio}
  advert_int 1
  virtual_ipaddress {{
    {vip}/24
  }}
}}
"""


def keepalived(args, results):
    """VRRP with keepalived's defaults (advert_int 1 s, VRRPv2) between
    nodes 1 (priority 150) and 2 (100): SIGKILL of every keepalived process
    of node 1, time until the virtual address is on node 2's interface."""
    res = {"load_start": loadavg(), "reps": [], "errors": []}
    results.append(res)
    c = Cluster(args, 1000)
    c.up(nodes=2, ports=1, start=False)
    ka = c.run / "keepalived"
    ka.mkdir(parents=True, exist_ok=True)
    vip = "10.99.0.100"
    procs = {}
    ns = {i: f"{args.ns}-n{i}" for i in (1, 2)}

    def start(i):
        # a killed keepalived leaves its pid files, and its pids may live on
        # as zombies: "daemon is already running"
        for f in ("pid", "vrrp.pid", "checkers.pid"):
            (ka / f"n{i}.{f}").unlink(missing_ok=True)
        conf = ka / f"n{i}.conf"
        conf.write_text(KEEPALIVED_CONF.format(ns=ns[i], prio=150 if i == 1 else 100, vip=vip))
        logf = open(ka / f"n{i}.log", "a")
        procs[i] = subprocess.Popen(
            ["taskset", "-c", str(c.cpu_of(i)), "ip", "netns", "exec", ns[i], "keepalived",
             "--dont-fork", "--log-console", "--vrrp", "-f", str(conf),
             "-p", str(ka / f"n{i}.pid"), "-r", str(ka / f"n{i}.vrrp.pid"),
             "-c", str(ka / f"n{i}.checkers.pid")],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def has_vip(i):
        r = subprocess.run(["ip", "-n", ns[i], "-o", "addr", "show", "dev", "p0"],
                           capture_output=True, text=True)
        return f"inet {vip}/" in r.stdout

    def ka_pids(i):
        r = subprocess.run(["ip", "netns", "pids", ns[i]], capture_output=True, text=True)
        out = []
        for pid in r.stdout.split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "keepalived":
                    out.append(int(pid))
            except OSError:
                pass
        return out

    try:
        for i in (1, 2):
            c.script("exec", i, "ip", "addr", "add", f"10.99.0.{i}/24", "dev", "p0")
            start(i)
        if not wait(20, lambda: has_vip(1) and not has_vip(2), 0.05):
            raise RuntimeError("keepalived: node 1 never took the virtual address")
        for rep in range(args.keepalived_reps):
            mon = subprocess.Popen(["ip", "netns", "exec", ns[2], "ip", "-ts", "monitor", "address"],
                                   stdout=subprocess.PIPE, text=True, start_new_session=True)
            # at a random phase of the 1 s advertisement interval
            time.sleep(1.5 + random.random())
            if not ka_pids(1):
                raise RuntimeError("keepalived: node 1 runs no keepalived")
            # the whole process group at once: killed one by one, the VRRP
            # child may outlive its parent long enough to send a priority-0
            # advertisement (a graceful hand-over in 0.61 s, not a crash)
            t0 = time.time()
            os.killpg(procs[1].pid, signal.SIGKILL)
            got = wait(15, lambda: has_vip(2), 0.01)
            time.sleep(0.2)
            mon.send_signal(signal.SIGTERM)
            out, _ = mon.communicate(timeout=5)
            procs[1].wait(timeout=5)
            if not got:
                res["errors"].append(f"rep {rep}: node 2 did not take the address within 15 s")
                break
            t = None
            for line in out.splitlines():
                m = re.match(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\](.*)$", line)
                if not m or m.group(2).startswith("Deleted") or f"inet {vip}/" not in m.group(2):
                    continue
                # `ip -ts` prints local time
                ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
                if ts >= t0:
                    t = ts
                    break
            if t is None:
                res["errors"].append(f"rep {rep}: no address event in ip monitor")
            elif t - t0 < 1.0:
                res["errors"].append(f"rep {rep}: the backup took over after {(t - t0) * 1000:.0f} ms: "
                                     "a graceful hand-over, not a crash")
            else:
                res["reps"].append({"failover_ms": (t - t0) * 1000})
                log(f"keepalived: failover {(t - t0) * 1000:.1f} ms")
            # node 1 comes back and preempts (default): ready for the next rep
            start(1)
            if not wait(20, lambda: has_vip(1) and not has_vip(2), 0.05):
                raise RuntimeError("keepalived: node 1 did not take the address back")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        res["errors"].append(str(e))
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
        res["load_end"] = loadavg()
        c.down()


def fmt(vals, p_ms=None, unit="P"):
    if not vals:
        return "-"
    med = statistics.median(vals)
    s = f"{med:.1f} ({min(vals):.1f}-{max(vals):.1f})"
    if p_ms:
        s += f" = {med / p_ms:.2f} {unit} ({min(vals) / p_ms:.2f}-{max(vals) / p_ms:.2f})"
    return s


def report(dmpd, ka):
    print("\n### Real agents: SIGKILL of the master (3 nodes x 2 ports)\n")
    print("| P | kills | first survivor stands, ms (min-max) = periods | every survivor follows the new master, ms = periods | extra master changes | rejoin changed master/term | steady window: master changes / stalls | control-loop stalls, whole run | load avg start / end |")
    print("|---:|---:|---|---|---:|---:|---|---:|---|")
    for r in dmpd:
        p = r["period_ms"]
        ms = r["master"]
        extra = sum(x["master_changes"] - (NODES - 1) for x in ms)
        rejoin = sum(1 for x in ms if x.get("rejoin_changes"))
        st = r.get("steady", {})
        print(f"| {p} ms | {len(ms)} | {fmt([x['detect_ms'] for x in ms], p)} | "
              f"{fmt([x['failover_ms'] for x in ms], p)} | {extra} | {rejoin} of {len(ms)} | "
              f"{st.get('master_changes', '-')} / {st.get('stalls', '-')} in {st.get('periods', '-')} P "
              f"({st.get('seconds', '-')} s) | {r.get('stalls_total', '-')} | "
              f"{r['load_start'].split()[0]} / {r['load_end'].split()[0]} |")
    for r in dmpd:
        for t, i, e in r.get("steady", {}).get("events", []):
            print(f"- P = {r['period_ms']} ms, steady window: +{t:.3f} s node {i}: {e}")
    print("\n### Real agents: SIGKILL of a non-master node\n")
    print("| P | clean kills | master: first port of the node unreachable, ms = periods | master: node expired | the other node sees it expired | kills left out: the master changed meanwhile |")
    print("|---:|---:|---|---|---|---:|")
    for r in dmpd:
        p = r["period_ms"]
        fs = [x for x in r["follower"] if not x["disturbed"]]
        bad = len(r["follower"]) - len(fs)
        print(f"| {p} ms | {len(fs)} | {fmt([x['ports_down_ms'] for x in fs], p)} | "
              f"{fmt([x['expired_ms'] for x in fs], p)} | {fmt([x['seen_ms'] for x in fs], p)} | "
              f"{bad} |")
    if ka:
        print("\n### keepalived (VRRP) anchor: SIGKILL of the master's keepalived\n")
        print("| advert_int | kills | backup holds the address, ms (min-max) = advert intervals | load avg start / end |")
        print("|---:|---:|---|---|")
        for r in ka:
            v = [x["failover_ms"] for x in r["reps"]]
            print(f"| 1 s (default) | {len(v)} | {fmt(v, 1000, 'intervals')} | {r['load_start'].split()[0]} / {r['load_end'].split()[0]} |")
    errors = [e for r in dmpd + ka for e in r["errors"]]
    for r in dmpd:
        # nobody may stand before its master was silent for the election
        # timeout (3 P from the last heartbeat, so at least 2 P after a kill)
        for x in r["master"]:
            if x["detect_ms"] < r["period_ms"]:
                errors.append(f"P = {r['period_ms']} ms: a survivor stood {x['detect_ms']:.1f} ms after the kill")
        if not r["master"]:
            errors.append(f"P = {r['period_ms']} ms: no master kill measured")
        if not r["follower"] and r.get("wanted_follower"):
            errors.append(f"P = {r['period_ms']} ms: no follower kill measured")
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--periods", default="10,100,1000", help="heartbeat periods, ms")
    ap.add_argument("--reps", type=int, default=10, help="master kills per period")
    ap.add_argument("--follower-reps", type=int, default=4, help="non-master kills per period")
    ap.add_argument("--steady", type=float, default=30.0, help="steady window, s (at least)")
    ap.add_argument("--steady-periods", type=float, default=60.0, help="steady window, periods (at least)")
    ap.add_argument("--keepalived-reps", type=int, default=10, help="0: no keepalived anchor")
    ap.add_argument("--cpus", default=None, help="CPUs to pin agents to, round robin (default: all allowed)")
    ap.add_argument("--ns", default=os.environ.get("DMPD_NS", "dcp"))
    ap.add_argument("--run", default=os.environ.get("DMPD_RUN", str(REPO / "run/control-plane")))
    ap.add_argument("--agent", default=os.environ.get("DMPD_AGENT", str(REPO / "target/release/dmpd-agent")))
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args()
    args.cpus = [int(x) for x in args.cpus.split(",")] if args.cpus else sorted(os.sched_getaffinity(0))
    if os.geteuid() != 0:
        sys.exit("failover: must run as root")
    if not os.access(args.agent, os.X_OK):
        sys.exit(f"failover: no agent binary at {args.agent}")
    dmpd, ka = [], []
    for p in [int(x) for x in args.periods.split(",") if x]:
        measure_period(args, p, dmpd)
        dmpd[-1]["wanted_follower"] = args.follower_reps > 0
    if args.keepalived_reps > 0:
        if subprocess.run(["sh", "-c", "command -v keepalived"], capture_output=True).returncode != 0:
            sys.exit("failover: keepalived is not installed (scripts/setup installs it)")
        keepalived(args, ka)
    errors = report(dmpd, ka)
    if args.json:
        Path(args.json).write_text(json.dumps({"dmpd": dmpd, "keepalived": ka}, indent=1))
    if errors:
        for e in errors:
            print(f"failover: FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
