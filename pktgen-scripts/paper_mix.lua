-- paper_mix.lua -- the paper's per-node traffic mix (SPEC section 6).
--
-- Runs on one node of the cluster, inside Pktgen-DPDK:
--
--   DMPD_NODE=node3 pktgen -l 0-4 -n 4 --file-prefix pg -a <pci> ... -- \
--       -P -m "[1:2].0, [3:4].1, ..." -f pktgen-scripts/paper_mix.lua
--
-- What it does, on every port of the node (8 ports on master, node1, node3,
-- node6, node7; 4 on the others; override with DMPD_PORTS):
--   * IPv4/UDP frames of the node's size: node1/node2 64 B, node3/node4 128 B,
--     node9 256 B, node5/node6 512 B, node7/node8 1024 B, master 1518 B
--     (DMPD_JUMBO=1: 9000 B, start pktgen with -j);
--   * range mode over source/destination IPv4 address and UDP ports, so that
--     each port carries 32512 distinct flows (different source subnets per
--     node and port);
--   * rate DMPD_RATE_PCT percent of line rate (default 100: the paper's
--     "rate nears line rate as frames grow" is measured at full offered load);
--   * sends for DMPD_DURATION_S seconds (default 60), sampling the port
--     counters every DMPD_SAMPLE_S seconds (default 5, the paper's period)
--     into DMPD_CSV (default dmpd_paper_mix_<node>.csv), one row per port per
--     sample: packets, pps, Mb/s, wire utilisation, rx drops and loss rate.
--
-- Settings are read from a global of the same name set before the script is
-- loaded (e.g. `DMPD_NODE = "node3"` in a wrapper script), else from the
-- environment. Other settings: DMPD_LINK_MBPS (1000), DMPD_DST_MACS (one
-- destination MAC per port, in port order: the agent port each Pktgen port
-- feeds) or DMPD_DST_MAC (one for all; default: Pktgen's own),
-- DMPD_WIRE_OVERHEAD (24), DMPD_SCRIPTS_DIR (where lib/ is, if Pktgen's Lua
-- cannot tell the script's path). See README.md.

local function script_dir()
    local dir = rawget(_G, "DMPD_SCRIPTS_DIR") or (os.getenv and os.getenv("DMPD_SCRIPTS_DIR"))
    if dir and dir ~= "" then return (dir:gsub("/*$", "/")) end
    local info = debug and debug.getinfo and debug.getinfo(1, "S")
    local src = info and info.source or ""
    if src:sub(1, 1) == "@" then
        local d = src:sub(2):match("^(.*[/\\])")
        if d then return d end
    end
    return "./"
end

local dir = script_dir()
if not package.path:find(dir .. "lib/?.lua", 1, true) then
    package.path = dir .. "lib/?.lua;" .. package.path
end

local T = require("dmpd_traffic")
local pg = pktgen

local cfg = T.config("paper_mix")

T.say("DMPD paper_mix: %s, ports %s, %d B frames, rate %s%%, %gs, sample every %gs -> %s",
      cfg.node, cfg.portlist, cfg.size, tostring(cfg.rate_pct), cfg.duration_s,
      cfg.sample_s, cfg.csv)
if cfg.size > T.STD_MAX_FRAME then
    T.say("DMPD paper_mix: jumbo frames on: pktgen must run with -j and the ports' MTU >= %d", cfg.size)
end

local rates = {}
for _, pid in ipairs(cfg.ports) do
    local rate = T.pct(cfg.rate_pct)
    T.configure_port(pg, cfg, pid, rate)
    rates[pid] = rate
end
pg.set_range(cfg.portlist, "on")

local sampler = T.open_sampler(pg, cfg)
local ok, err = pcall(T.run_window, pg, sampler, cfg.ports, cfg.duration_s, "mix", rates)
sampler:close()
if not ok then
    pcall(pg.stop, cfg.portlist)
    error(err, 0)
end

T.say("DMPD paper_mix: done, %d rows in %s", sampler.rows, cfg.csv)
return { cfg = cfg, rows = sampler.rows }
