#!/usr/bin/env python3
"""Check docs/grafana/dmpd-dashboard.json.

    python3 docs/grafana/check.py [DASHBOARD.json]

* well-formed JSON, schemaVersion 36..39, unique panel ids, every panel with a
  gridPos inside the 24-column grid;
* the datasource variable DS_PROMETHEUS (type datasource, prometheus) and the
  query variable `node` from `label_values(dmpd_info, node)`;
* every panel and target uses the datasource `${DS_PROMETHEUS}`, every target
  filters on `node=~"$node"`;
* every metric name used in a PromQL expression (and in the variable query)
  is a metric of the table in docs/observability.md;
* the panels the dashboard promises are there (by the metrics they plot);
* with Prometheus' `promtool` installed, every expression parses
  (`promtool check rules` on a generated rules file, Grafana variables
  substituted).

Prints one line per problem and a summary; exits 1 on any problem.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "observability.md")
DS = "${DS_PROMETHEUS}"

# PromQL words that are not metric names.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "atan2",
}

# Metrics each promised panel must plot (title of the promise -> metrics).
REQUIRED = {
    "per-port utilisation": ["dmpd_port_utilisation_ratio"],
    "smoothed load": ["dmpd_port_load_ratio"],
    "balance degree vs threshold": ["dmpd_balance_degree", "dmpd_balancer_threshold"],
    "port rx/tx rates": ["dmpd_port_rx_bytes_total", "dmpd_port_tx_bytes_total"],
    "loss ratio": ["dmpd_port_loss_ratio"],
    "cluster nodes by state": ["dmpd_cluster_nodes"],
    "master and term": ["dmpd_master", "dmpd_term"],
    "peer RTT": ["dmpd_peer_port_rtt_seconds"],
    "pipe rates/caps/refused": ["dmpd_pipe_tx_rate_bytes_per_second", "dmpd_pipe_cap_bytes_per_second",
                                "dmpd_pipe_tx_refused_total"],
    "rejected frames by reason": ["dmpd_frames_rejected_total"],
    "control-loop max time": ["dmpd_control_loop_max_seconds"],
    "RSS": ["dmpd_rss_bytes"],
}


def documented_metrics(path):
    names = set()
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^\|\s*`(dmpd_[a-z0-9_]+)`\s*\|", line)
        if m:
            names.add(m.group(1))
    return names


def metric_names(expr):
    """Metric names of a PromQL expression (good enough for our queries)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                      # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                     # range selectors
    # label lists of by/without/on/ignoring/group_left/group_right
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = []
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):                          # a function call
            continue
        if word.lower() in PROMQL_WORDS or word.startswith("$"):
            continue
        if e[:m.start()].endswith("$"):                   # $__rate_interval etc.
            continue
        names.append(word)
    return names


def substitute(expr):
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
            .replace("$node", ".*"))


def main(argv):
    path = argv[1] if len(argv) > 1 else os.path.join(HERE, "dmpd-dashboard.json")
    problems = []
    try:
        dash = json.load(open(path, encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"FAIL {path}: not valid JSON: {e}")
        return 1
    known = documented_metrics(DOC)
    if len(known) < 50:
        problems.append(f"only {len(known)} metrics found in {DOC}")

    sv = dash.get("schemaVersion")
    if not isinstance(sv, int) or not 36 <= sv <= 39:
        problems.append(f"schemaVersion {sv!r}, want 36..39")
    for k in ("title", "uid", "panels", "templating"):
        if k not in dash:
            problems.append(f"missing top-level key {k}")

    vars_ = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = vars_.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no datasource variable DS_PROMETHEUS of type prometheus")
    node = vars_.get("node")
    q = node and node.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    if not node or node.get("type") != "query" or q != "label_values(dmpd_info, node)":
        problems.append("no query variable node = label_values(dmpd_info, node)")
    elif node.get("datasource", {}).get("uid") != DS:
        problems.append("variable node does not use ${DS_PROMETHEUS}")

    exprs, used, ids = [], set(), set()
    for p in dash.get("panels", []):
        title = p.get("title", "?")
        if p.get("id") in ids:
            problems.append(f"panel {title}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] + g["w"] > 24:
            problems.append(f"panel {title}: bad gridPos {g}")
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != DS:
            problems.append(f"panel {title}: datasource is not ${{DS_PROMETHEUS}}")
        if not p.get("targets"):
            problems.append(f"panel {title}: no targets")
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            if t.get("datasource", {}).get("uid") != DS:
                problems.append(f"panel {title} {t.get('refId')}: datasource is not ${{DS_PROMETHEUS}}")
            if 'node=~"$node"' not in expr:
                problems.append(f"panel {title} {t.get('refId')}: no node=~\"$node\" filter: {expr}")
            exprs.append((title, t.get("refId"), expr))
            for name in metric_names(expr):
                used.add(name)
                if name not in known:
                    problems.append(f"panel {title} {t.get('refId')}: metric {name} is not in observability.md")
    if q:
        m = re.match(r"label_values\((\w+),", q)
        if not m or m.group(1) not in known:
            problems.append(f"variable node: {q} does not name a metric of observability.md")

    for promise, metrics in REQUIRED.items():
        missing = [m for m in metrics if m not in used]
        if missing:
            problems.append(f"no panel for {promise}: {', '.join(missing)} not plotted")

    promtool = shutil.which("promtool")
    if promtool:
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (_, _, expr) in enumerate(exprs):
                f.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(substitute(expr))}\n")
            rules = f.name
        r = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
        os.unlink(rules)
        if r.returncode != 0:
            problems.append("promtool check rules failed:\n" + r.stdout + r.stderr)
        promtool_note = f"promtool: {len(exprs)} expressions parse"
    else:
        promtool_note = "promtool not installed: PromQL syntax not checked"

    for p in problems:
        print("FAIL", p)
    panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
    print(f"{os.path.relpath(path)}: {len(panels)} panels, {len(exprs)} queries, "
          f"{len(used)} metrics (all of them in observability.md: {not any('observability' in p for p in problems)}); "
          f"{promtool_note if not any('promtool' in p for p in problems) else 'promtool: FAILED'}; "
          f"{'OK' if not problems else str(len(problems)) + ' problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
