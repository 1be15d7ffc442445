-- dmpd_traffic.lua -- shared code for the DMPD Pktgen-DPDK scripts.
--
-- The profile table below is the paper's experiment (../shared/SPEC.md
-- section 6, seed 001 section 4): ten servers on one gigabit switch; master,
-- node1, node3, node6 and node7 have 8 DPDK ports, the others 4; Pktgen-DPDK
-- frame sizes node1/node2 64 B, node3/node4 128 B, node9 256 B, node5/node6
-- 512 B, node7/node8 1024 B, master "> 1024 B" (we use 1518 B, the largest
-- standard Ethernet frame; DMPD_JUMBO=1 switches master to 9000 B jumbo
-- frames, which needs `pktgen ... -- -j` and a jumbo MTU on the switch and
-- on the agents' ports). Port statistics are sampled every 5 s, as in the
-- paper. The load-balancing test caps the offered traffic at 4 Gb/s.
--
-- Frame sizes are Pktgen's "size": the whole Ethernet frame including the
-- 4-byte FCS (64 is the minimum frame). Pktgen's "rate" is a percentage of
-- the port's line rate counted on the wire (frame + preamble + gap), the same
-- convention as the agents' utilisation (SPEC section 3).
--
-- Written for Pktgen's Lua API as registered in Pktgen-DPDK app/lpktgenlib.c
-- (pktgen.set / set_type / set_proto / set_mac / set_range / start / stop /
-- delay / portStats and the pktgen.range.* table); the functions that
-- changed between Pktgen releases (portStats) are called defensively.
-- Only Lua 5.3 features are used: Pktgen embeds Lua 5.3 or 5.4.

local M = {}

M.LINK_MBPS = 1000        -- the paper's ports are 1 Gb/s
M.LB_CAP_MBPS = 4000      -- load-balancing test: total offered load
M.SAMPLE_S = 5            -- paper: samples every 5 s
M.DURATION_S = 60         -- default length of a paper_mix run
M.WINDOW_S = 60           -- default length of each lb_test window
M.GAP_S = 10              -- idle gap between lb_test windows
M.STD_MAX_FRAME = 1518    -- largest standard frame (Pktgen's default max)
M.JUMBO_FRAME = 9000      -- master's frame with DMPD_JUMBO=1 (pktgen -j)
-- Bytes per frame on the wire that rte_eth_stats' byte counters leave out:
-- preamble+SFD 8, inter-frame gap 12, FCS 4 (most PMDs count bytes without
-- the FCS). Override with DMPD_WIRE_OVERHEAD if your PMD counts the FCS.
M.WIRE_OVERHEAD = 24

-- index: used to build per-node address ranges; ports: DPDK ports of the
-- node in the paper; size: frame size of the node's Pktgen traffic.
M.PROFILES = {
    master = { index = 0, ports = 8, size = 1518, jumbo_size = 9000 },
    node1  = { index = 1, ports = 8, size = 64 },
    node2  = { index = 2, ports = 4, size = 64 },
    node3  = { index = 3, ports = 8, size = 128 },
    node4  = { index = 4, ports = 4, size = 128 },
    node5  = { index = 5, ports = 4, size = 512 },
    node6  = { index = 6, ports = 8, size = 512 },
    node7  = { index = 7, ports = 8, size = 1024 },
    node8  = { index = 8, ports = 4, size = 1024 },
    node9  = { index = 9, ports = 4, size = 256 },
}

function M.node_names()
    local names = {}
    for name in pairs(M.PROFILES) do names[#names + 1] = name end
    table.sort(names, function(a, b)
        return M.PROFILES[a].index < M.PROFILES[b].index
    end)
    return names
end

---------------------------------------------------------------------------
-- Settings: a global set before the script is loaded wins over an
-- environment variable of the same name, which wins over the default.
---------------------------------------------------------------------------

-- (DMPD_NO_ENV = true, a global, ignores the environment: used by the tests.)
function M.setting(name, default)
    local v = rawget(_G, name)
    if v == nil and os.getenv and not rawget(_G, "DMPD_NO_ENV") then v = os.getenv(name) end
    if v == nil or v == "" then return default end
    return v
end

local function num_setting(name, default)
    local v = M.setting(name, nil)
    if v == nil then return default end
    local n = tonumber(v)
    if n == nil then error(string.format("%s=%s is not a number", name, tostring(v)), 0) end
    return n
end

local function bool_setting(name)
    local v = M.setting(name, nil)
    if v == nil or v == false then return false end
    v = tostring(v):lower()
    return v == "1" or v == "true" or v == "yes" or v == "on"
end

-- "0-3,6" -> {0,1,2,3,6}
function M.parse_ports(s)
    local ids, seen = {}, {}
    for part in tostring(s):gmatch("[^,%s]+") do
        local a, b = part:match("^(%d+)%-(%d+)$")
        if not a then a = part:match("^(%d+)$"); b = a end
        if not a then error("bad port list '" .. tostring(s) .. "'", 0) end
        a, b = tonumber(a), tonumber(b)
        if b < a then error("bad port range '" .. part .. "'", 0) end
        for p = a, b do
            if not seen[p] then seen[p] = true; ids[#ids + 1] = p end
        end
    end
    table.sort(ids)
    if #ids == 0 then error("empty port list", 0) end
    return ids
end

-- {0,1,2,3,6} -> "0-3,6" (Pktgen's portlist syntax)
function M.portlist(ids)
    local out, i = {}, 1
    while i <= #ids do
        local j = i
        while j < #ids and ids[j + 1] == ids[j] + 1 do j = j + 1 end
        if j > i then out[#out + 1] = ids[i] .. "-" .. ids[j]
        else out[#out + 1] = tostring(ids[i]) end
        i = j + 1
    end
    return table.concat(out, ",")
end

function M.frame_size(profile, jumbo)
    if jumbo and profile.jumbo_size then return profile.jumbo_size end
    return profile.size
end

-- Resolve the run's configuration for a script ("paper_mix" or "lb_test").
function M.config(script)
    local node = M.setting("DMPD_NODE", nil)
    if node == nil then
        error("DMPD_NODE is not set (one of: " .. table.concat(M.node_names(), ", ") .. ")", 0)
    end
    node = tostring(node)
    local profile = M.PROFILES[node]
    if profile == nil then
        error("unknown DMPD_NODE '" .. node .. "' (one of: " ..
              table.concat(M.node_names(), ", ") .. ")", 0)
    end
    local cfg = { script = script, node = node, profile = profile }
    local ports = M.setting("DMPD_PORTS", nil)
    if ports ~= nil then
        cfg.ports = M.parse_ports(ports)
    else
        cfg.ports = {}
        for p = 0, profile.ports - 1 do cfg.ports[#cfg.ports + 1] = p end
    end
    cfg.portlist = M.portlist(cfg.ports)
    cfg.jumbo = bool_setting("DMPD_JUMBO")
    cfg.size = M.frame_size(profile, cfg.jumbo)
    cfg.link_mbps = num_setting("DMPD_LINK_MBPS", M.LINK_MBPS)
    cfg.rate_pct = num_setting("DMPD_RATE_PCT", 100)
    cfg.sample_s = num_setting("DMPD_SAMPLE_S", M.SAMPLE_S)
    cfg.duration_s = num_setting("DMPD_DURATION_S", M.DURATION_S)
    cfg.window_s = num_setting("DMPD_WINDOW_S", M.WINDOW_S)
    cfg.gap_s = num_setting("DMPD_GAP_S", M.GAP_S)
    cfg.cap_mbps = num_setting("DMPD_LB_CAP_MBPS", M.LB_CAP_MBPS)
    cfg.lb_mode = tostring(M.setting("DMPD_LB_MODE", "agent"))
    cfg.toggle_cmd = M.setting("DMPD_LB_TOGGLE_CMD", nil)
    cfg.wire_overhead = num_setting("DMPD_WIRE_OVERHEAD", M.WIRE_OVERHEAD)
    -- Destination MACs: DMPD_DST_MACS, one per port in port order (the agent
    -- port each Pktgen port faces), or DMPD_DST_MAC for all ports.
    cfg.dst_mac_of = {}
    local one = M.setting("DMPD_DST_MAC", nil)
    local many = M.setting("DMPD_DST_MACS", nil)
    if many ~= nil then
        local macs = {}
        for m in tostring(many):gmatch("[^,%s]+") do macs[#macs + 1] = m end
        if #macs ~= #cfg.ports then
            error(string.format("DMPD_DST_MACS has %d MACs for %d ports", #macs, #cfg.ports), 0)
        end
        for i, pid in ipairs(cfg.ports) do cfg.dst_mac_of[pid] = macs[i] end
    elseif one ~= nil then
        for _, pid in ipairs(cfg.ports) do cfg.dst_mac_of[pid] = tostring(one) end
    end
    cfg.csv = tostring(M.setting("DMPD_CSV", "dmpd_" .. script .. "_" .. node .. ".csv"))
    if cfg.size < 64 then error("frame size below 64 B", 0) end
    if cfg.rate_pct <= 0 or cfg.rate_pct > 100 then
        error("DMPD_RATE_PCT must be in (0, 100]", 0)
    end
    if cfg.sample_s <= 0 then error("DMPD_SAMPLE_S must be > 0", 0) end
    if cfg.link_mbps <= 0 then error("DMPD_LINK_MBPS must be > 0", 0) end
    return cfg
end

---------------------------------------------------------------------------
-- Rates
---------------------------------------------------------------------------

-- Round a percentage to 1/100 %, and give an integer when it is one (older
-- Pktgen releases read the rate with luaL_checkinteger).
function M.pct(x)
    local r = math.floor(x * 100 + 0.5) / 100
    return math.tointeger(r) or r
end

-- Per-port rate percentages that place cap_mbps on n ports of link_mbps.
-- mode "agent" / "even": the same share on every port (what Pktgen offers
-- while the agents balance, or not, downstream).
-- mode "packed": fill ports in order up to line rate, the placement of a
-- static assignment where the flows pile onto the first ports; used by
-- lb_test's "emulate" mode for the window without balancing.
function M.cap_rates(n, cap_mbps, link_mbps, mode)
    if cap_mbps > n * link_mbps + 1e-9 then
        error(string.format("%g Mb/s does not fit on %d port(s) of %g Mb/s",
                            cap_mbps, n, link_mbps), 0)
    end
    local rates = {}
    if mode == "packed" then
        local left = cap_mbps
        for i = 1, n do
            local share = math.min(link_mbps, left)
            left = left - share
            rates[i] = M.pct(share / link_mbps * 100)
        end
    else
        for i = 1, n do rates[i] = M.pct(cap_mbps / n / link_mbps * 100) end
    end
    return rates
end

---------------------------------------------------------------------------
-- Flows: Pktgen range mode, IPv4/UDP. Every field steps by "inc" from
-- "start" and wraps at "max", each on its own, so one cycle holds
-- lcm(#src ip, #dst ip, #src port, #dst port) distinct 4-tuples:
-- lcm(254, 64, 256, 16) = 32512 flows per port.
---------------------------------------------------------------------------

function M.flow_plan(profile, port)
    local n = profile.index
    return {
        src_ip = { start = string.format("10.%d.%d.1", 10 + n, port), inc = "0.0.0.1",
                   min = string.format("10.%d.%d.1", 10 + n, port),
                   max = string.format("10.%d.%d.254", 10 + n, port) },
        dst_ip = { start = "10.200.0.1", inc = "0.0.0.1",
                   min = "10.200.0.1", max = "10.200.0.64" },
        src_port = { start = 1024, inc = 1, min = 1024, max = 1279 },
        dst_port = { start = 5000, inc = 1, min = 5000, max = 5015 },
    }
end

local FIELDS = { "start", "inc", "min", "max" }

-- Configure one port: IPv4/UDP, fixed frame size, endless count, the flow
-- ranges, and the rate. Range mode is switched on by the caller.
function M.configure_port(pg, cfg, pid, rate_pct)
    local p = tostring(pid)
    local plan = M.flow_plan(cfg.profile, pid)
    pg.set_type(p, "ipv4")
    pg.set_proto(p, "udp")
    pg.set(p, "size", cfg.size)       -- single-packet size (also drives rate maths)
    pg.set(p, "count", 0)             -- 0 = send until stopped
    pg.set(p, "rate", rate_pct)
    local mac = cfg.dst_mac_of[pid]
    if mac then
        pg.set_mac(p, "dst", mac)
        pg.range.dst_mac(p, "start", mac)
    end
    if pg.range.ip_proto then pg.range.ip_proto(p, "udp") end
    for _, f in ipairs(FIELDS) do pg.range.src_ip(p, f, plan.src_ip[f]) end
    for _, f in ipairs(FIELDS) do pg.range.dst_ip(p, f, plan.dst_ip[f]) end
    for _, f in ipairs(FIELDS) do pg.range.src_port(p, f, plan.src_port[f]) end
    for _, f in ipairs(FIELDS) do pg.range.dst_port(p, f, plan.dst_port[f]) end
    -- In range mode the frame size comes from the range's pkt_size.
    pg.range.pkt_size(p, "start", cfg.size)
    pg.range.pkt_size(p, "inc", 0)
    pg.range.pkt_size(p, "min", cfg.size)
    pg.range.pkt_size(p, "max", cfg.size)
    return plan
end

---------------------------------------------------------------------------
-- Port statistics -> CSV, one row per port per sample.
---------------------------------------------------------------------------

-- pktgen.portStats changed shape between releases: older ones (2014, 2020 sources) take
-- (portlist, "port"|"rate") and returns flat counters per port id; newer
-- releases take (portlist) and put the counters under .curr. Accept both.
function M.read_stats(pg, portlist)
    local ok, t = pcall(pg.portStats, portlist, "port")
    if not ok or type(t) ~= "table" then t = pg.portStats(portlist) end
    local out = {}
    for k, e in pairs(t) do
        if type(k) == "number" and type(e) == "table" then
            local c = e.curr or e
            out[k] = {
                ipackets = c.ipackets or 0, opackets = c.opackets or 0,
                ibytes = c.ibytes or 0, obytes = c.obytes or 0,
                ierrors = c.ierrors or 0, oerrors = c.oerrors or 0,
                imissed = c.imissed or 0, rx_nombuf = c.rx_nombuf or 0,
            }
        end
    end
    return out
end

M.CSV_HEADER = table.concat({
    "t_s", "unix_time", "node", "script", "phase", "port", "frame_size",
    "rate_pct", "tx_pkts", "rx_pkts", "tx_pps", "rx_pps", "tx_mbps",
    "rx_mbps", "tx_util_pct", "rx_util_pct", "rx_dropped", "rx_loss_pct",
    "ierrors", "oerrors",
}, ",")

local Sampler = {}
Sampler.__index = Sampler

function M.open_sampler(pg, cfg)
    local f, err = io.open(cfg.csv, "w")
    if not f then error("cannot open " .. cfg.csv .. ": " .. tostring(err), 0) end
    f:write(M.CSV_HEADER, "\n")
    local s = setmetatable({ pg = pg, cfg = cfg, f = f, rows = 0, t = 0,
                             prev = nil, rates = {} }, Sampler)
    return s
end

-- Start a phase: remember the counters now, so every row is a delta.
function Sampler:begin(phase, rates_by_port)
    self.phase = phase
    self.rates = rates_by_port or {}
    self.prev = M.read_stats(self.pg, self.cfg.portlist)
end

local function fmt(x)
    if math.type(x) == "integer" then return tostring(x) end
    return string.format("%.3f", x)
end

function Sampler:sample(dt_s)
    local cfg = self.cfg
    self.t = self.t + dt_s
    local now = M.read_stats(self.pg, cfg.portlist)
    local link_bps = cfg.link_mbps * 1e6
    for _, pid in ipairs(cfg.ports) do
        local c, p = now[pid], self.prev[pid]
        if c and p then
            local dtx = c.opackets - p.opackets
            local drx = c.ipackets - p.ipackets
            local dtxb = c.obytes - p.obytes
            local drxb = c.ibytes - p.ibytes
            local ddrop = (c.imissed - p.imissed) + (c.rx_nombuf - p.rx_nombuf) +
                          (c.ierrors - p.ierrors)
            local tx_wire = (dtxb + dtx * cfg.wire_overhead) * 8 / dt_s
            local rx_wire = (drxb + drx * cfg.wire_overhead) * 8 / dt_s
            local loss = 0.0
            if drx + ddrop > 0 then loss = ddrop / (drx + ddrop) * 100 end
            self.f:write(table.concat({
                fmt(self.t), tostring(os.time()), cfg.node, cfg.script,
                self.phase or "", tostring(pid), tostring(cfg.size),
                fmt(self.rates[pid] or 0), fmt(dtx), fmt(drx),
                fmt(dtx / dt_s), fmt(drx / dt_s),
                fmt(dtxb * 8 / dt_s / 1e6), fmt(drxb * 8 / dt_s / 1e6),
                fmt(tx_wire / link_bps * 100), fmt(rx_wire / link_bps * 100),
                fmt(ddrop), fmt(loss),
                fmt(c.ierrors - p.ierrors), fmt(c.oerrors - p.oerrors),
            }, ","), "\n")
            self.rows = self.rows + 1
        end
    end
    self.f:flush()
    self.prev = now
end

-- Move the clock on without sampling (idle gaps between windows).
function Sampler:advance(dt_s)
    self.t = self.t + dt_s
end

function Sampler:close()
    if self.f then self.f:close(); self.f = nil end
end

-- Send on `ports` for duration_s, sampling every cfg.sample_s seconds.
function M.run_window(pg, sampler, ports, duration_s, phase, rates_by_port)
    local list = M.portlist(ports)
    sampler:begin(phase, rates_by_port)
    pg.start(list)
    local t = 0
    while t < duration_s - 1e-9 do
        local step = math.min(sampler.cfg.sample_s, duration_s - t)
        pg.delay(math.floor(step * 1000 + 0.5))
        t = t + step
        sampler:sample(step)
    end
    pg.stop(list)
end

function M.say(fmtstr, ...)
    if rawget(_G, "DMPD_QUIET") then return end
    io.write(string.format(fmtstr, ...), "\n")
    if io.stdout and io.stdout.flush then io.stdout:flush() end
end

return M
