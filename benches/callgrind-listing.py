#!/usr/bin/env python3
"""Per-instruction listing of one function from a callgrind profile.

Reads a callgrind output written with --dump-instr=yes (for example
`CG_OPTS=--dump-instr=yes bash benches/datapath-callgrind.sh`), finds the
function whose name contains FUNCTION, disassembles it from BINARY with
objdump, and prints each instruction executed at least MIN times per frame
with its count per frame and source line, then the total per frame: where a
hot loop's instructions go (spills, checks, loads) at a glance.

Usage: benches/callgrind-listing.py CALLGRIND_OUT BINARY FUNCTION FRAMES [MIN]
       benches/callgrind-listing.py --calls CALLGRIND_OUT FUNCTION
  FRAMES: frames in the profile (datapath-callgrind.sh prints it).
  MIN: smallest count per frame listed (default 0.5).
  --calls: prints how many times FUNCTION (exact name) was called, from the
  profile's call records (no debug info needed).
Exits non-zero when the function is not in the profile.
"""

import collections
import re
import subprocess
import sys


def parse_pos(tok, prev):
    """A callgrind position: absolute (hex or decimal), relative (+n/-n) or '*'."""
    if tok == "*":
        return prev
    if tok[0] in "+-":
        sign = 1 if tok[0] == "+" else -1
        body = tok[1:]
        return prev + sign * (int(body, 16) if body.startswith("0x") else int(body))
    return int(tok, 16) if tok.startswith("0x") else int(tok)


def calls_of(path, callee):
    """How many calls the profile records to the function named `callee`:
    fn=/cfn=(id) name a function the first time (one id space), cfn= sets
    the callee of the next calls= line."""
    names, cur, n = {}, None, 0
    with open(path, errors="replace") as f:
        for raw in f:
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", raw.strip())
            if m:
                kind, i, name = m.groups()
                if name:
                    names[i] = name
                if kind == "cfn":
                    cur = names.get(i, "")
            elif raw.startswith("calls=") and cur == callee:
                n += int(raw[6:].split()[0])
    return n


def costs_of(path, want):
    """Instruction address -> Ir, summed over every context of functions
    whose name contains `want` (call lines' inclusive costs left out)."""
    names, costs = {}, collections.Counter()
    cur, addr, line, skip_call_cost = None, 0, 0, False
    with open(path, errors="replace") as f:
        for raw in f:
            s = raw.strip()
            if not s:
                continue
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", s)
            if m:
                kind, i, name = m.groups()
                if name:
                    names[i] = name
                if kind == "fn":
                    cur = names.get(i, i)
                continue
            if s.startswith("calls="):
                skip_call_cost = True
                continue
            if not (s[0] in "+-*" or s[0].isdigit()):
                continue
            toks = s.split()
            addr = parse_pos(toks[0], addr)
            if len(toks) > 2:
                line = parse_pos(toks[1], line)
            if skip_call_cost:
                skip_call_cost = False
                continue
            if cur and want in cur and len(toks) >= 3:
                costs[addr] += int(toks[-1])
    return costs


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--calls":
        print(calls_of(sys.argv[2], sys.argv[3]))
        return
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    out, binary, func, frames = sys.argv[1:5]
    frames = int(frames)
    low = float(sys.argv[5]) if len(sys.argv) == 6 else 0.5
    if frames <= 0:
        sys.exit("FRAMES must be positive")
    costs = costs_of(out, func)
    if not costs:
        sys.exit(f"no function matching {func!r} in {out}")
    first, last = min(costs), max(costs)
    listing = subprocess.run(
        ["objdump", "-d", "-l", "--no-show-raw-insn", "-C",
         f"--start-address={first}", f"--stop-address={last + 16}", binary],
        capture_output=True, text=True, check=True,
    ).stdout
    src, shown_src, total = "", None, 0.0
    for l in listing.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s*(.*)", l)
        if not m:
            if l.startswith("/"):
                src = l.rsplit("/", 1)[-1]
            continue
        n = costs.get(int(m.group(1), 16), 0) / frames
        if n < low:
            continue
        total += n
        where = src if src != shown_src else ""
        shown_src = src
        print(f"{m.group(1)} {n:5.2f}  {m.group(2)[:60]:60s} {where}")
    print(f"listed: {total:.1f} instructions per frame (of {sum(costs.values()) / frames:.1f} "
          f"in functions matching {func!r})")


if __name__ == "__main__":
    main()
