-- lb_test.lua -- the paper's load-balancing test (SPEC section 6): traffic
-- capped at 4 Gb/s, per-port utilisation compared without and with
-- balancing (the paper shows node4, 4 ports, and master, 8 ports).
--
--   DMPD_NODE=node4 pktgen -l 0-4 -n 4 --file-prefix pg -a <pci> ... -- \
--       -P -m "[1:2].0, [3:4].1, ..." -f pktgen-scripts/lb_test.lua
--
-- The 4 Gb/s (DMPD_LB_CAP_MBPS) is offered on the node's ports (DMPD_PORTS,
-- default the node's paper port count) as a per-port Pktgen rate percentage
-- of DMPD_LINK_MBPS (default 1000): node4, 4 x 1 Gb/s -> 100 % each;
-- master, 8 x 1 Gb/s -> 50 % each. The summed offered rate is always the cap.
-- Frames: the node's paper frame size, IPv4/UDP, range mode over addresses
-- and UDP ports (32512 flows per port), as in paper_mix.lua.
--
-- Two windows of DMPD_WINDOW_S seconds (default 60), DMPD_GAP_S seconds
-- (default 10) of silence between them, counters sampled every
-- DMPD_SAMPLE_S (5) seconds into DMPD_CSV (default
-- dmpd_lb_test_<node>.csv) with a "phase" column:
--   phase "no_balance" then phase "balance".
-- DMPD_LB_MODE selects where the difference comes from:
--   agent   (default) Pktgen offers the same even load in both windows and
--           the agents in the path balance or not: before each window the
--           script runs DMPD_LB_TOGGLE_CMD (if set) through the shell with
--           DMPD_LB_PHASE=no_balance|balance exported to it, for the
--           operator's command that switches the agents' balancing; compare
--           the agents' own per-port utilisation (observability output)
--           over the two windows.
--   emulate Pktgen alone, on the node's own ports: "no_balance" places the
--           cap as a static assignment whose flows pile onto the first ports
--           (filled to line rate in port order, the rest idle), "balance"
--           spreads it evenly. With 4 Gb/s on 4 x 1 Gb/s ports both windows
--           are at line rate on every port: only nodes with more capacity
--           than the cap (master) show a difference.
--
-- Settings come from globals set before loading, else from the environment
-- (see paper_mix.lua and README.md).

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
local exec = rawget(_G, "DMPD_EXEC") or os.execute

local cfg = T.config("lb_test")
if cfg.lb_mode ~= "agent" and cfg.lb_mode ~= "emulate" then
    error("DMPD_LB_MODE must be 'agent' or 'emulate', not '" .. cfg.lb_mode .. "'", 0)
end

local n = #cfg.ports
local even = T.cap_rates(n, cfg.cap_mbps, cfg.link_mbps, "even")
local windows = {
    { phase = "no_balance",
      rates = (cfg.lb_mode == "emulate") and T.cap_rates(n, cfg.cap_mbps, cfg.link_mbps, "packed") or even },
    { phase = "balance", rates = even },
}

T.say("DMPD lb_test: %s (%s mode), ports %s, %d B frames, cap %g Mb/s on %d x %g Mb/s -> %s",
      cfg.node, cfg.lb_mode, cfg.portlist, cfg.size, cfg.cap_mbps, n, cfg.link_mbps, cfg.csv)

-- Frames, flows and range mode once; only the rates change per window.
for i, pid in ipairs(cfg.ports) do
    T.configure_port(pg, cfg, pid, even[i])
end
pg.set_range(cfg.portlist, "on")

local sampler = T.open_sampler(pg, cfg)

local function run_all()
    for w, win in ipairs(windows) do
        if w > 1 and cfg.gap_s > 0 then
            pg.delay(math.floor(cfg.gap_s * 1000 + 0.5))
            sampler:advance(cfg.gap_s)
        end
        if cfg.toggle_cmd then
            T.say("DMPD lb_test: switching agents to %s", win.phase)
            exec("DMPD_LB_PHASE=" .. win.phase .. "; export DMPD_LB_PHASE; " .. cfg.toggle_cmd)
        end
        local active, by_port, total = {}, {}, 0
        for i, pid in ipairs(cfg.ports) do
            local r = win.rates[i]
            by_port[pid] = r
            if r > 0 then
                pg.set(tostring(pid), "rate", r)
                active[#active + 1] = pid
                total = total + r * cfg.link_mbps / 100
            end
        end
        T.say("DMPD lb_test: window %s, %g Mb/s offered on ports %s",
              win.phase, total, T.portlist(active))
        T.run_window(pg, sampler, active, cfg.window_s, win.phase, by_port)
    end
end

local ok, err = pcall(run_all)
sampler:close()
if not ok then
    pcall(pg.stop, cfg.portlist)
    error(err, 0)
end

T.say("DMPD lb_test: done, %d rows in %s", sampler.rows, cfg.csv)
return { cfg = cfg, windows = windows, rows = sampler.rows }
