-- run.lua -- CI test of the Pktgen scripts against test/pktgen_stub.lua.
--
--   lua5.4 pktgen-scripts/test/run.lua      (from any directory)
--
-- Loads paper_mix.lua and lb_test.lua for every node profile with the stub
-- installed as the global `pktgen`, then checks what the scripts asked
-- Pktgen to do: frame sizes on every port of the node, rates (and the 4 Gb/s
-- sum of the lb test), counts, range mode and the number of flows the
-- ranges produce, start/stop/delay sequencing, and the CSV the sampler
-- wrote. Prints one line per check and ends with "N passed, M failed";
-- exits 1 when a check failed.

local function here()
    local src = debug.getinfo(1, "S").source
    local d = src:sub(1, 1) == "@" and src:sub(2):match("^(.*[/\\])") or nil
    return d or "./"
end

local TEST_DIR = here()
local ROOT = TEST_DIR .. "../"
package.path = TEST_DIR .. "?.lua;" .. ROOT .. "lib/?.lua;" .. package.path

local Stub = require("pktgen_stub")
local T = require("dmpd_traffic")

local passed, failed = 0, 0

local function check(name, cond, detail)
    if cond then
        passed = passed + 1
        print("ok   " .. name)
    else
        failed = failed + 1
        print("FAIL " .. name .. (detail and (": " .. tostring(detail)) or ""))
    end
end

-- Expected values, written out independently of the library's table.
local EXPECT = {
    master = { ports = 8, size = 1518 },
    node1 = { ports = 8, size = 64 },
    node2 = { ports = 4, size = 64 },
    node3 = { ports = 8, size = 128 },
    node4 = { ports = 4, size = 128 },
    node5 = { ports = 4, size = 512 },
    node6 = { ports = 8, size = 512 },
    node7 = { ports = 8, size = 1024 },
    node8 = { ports = 4, size = 1024 },
    node9 = { ports = 4, size = 256 },
}
local NODES = { "master", "node1", "node2", "node3", "node4", "node5",
                "node6", "node7", "node8", "node9" }

local SETTINGS = { "DMPD_NODE", "DMPD_PORTS", "DMPD_RATE_PCT", "DMPD_DURATION_S",
    "DMPD_SAMPLE_S", "DMPD_CSV", "DMPD_JUMBO", "DMPD_LINK_MBPS", "DMPD_LB_CAP_MBPS",
    "DMPD_LB_MODE", "DMPD_WINDOW_S", "DMPD_GAP_S", "DMPD_LB_TOGGLE_CMD",
    "DMPD_WIRE_OVERHEAD", "DMPD_DST_MAC", "DMPD_DST_MACS", "DMPD_EXEC", "DMPD_NO_ENV",
    "DMPD_SCRIPTS_DIR", "DMPD_QUIET" }

local tmpfiles = {}

-- Run `script` with the given settings (as globals) against a fresh stub.
local function run(script, settings, stub_opts)
    local st = Stub.new(stub_opts or { ports = 16 })
    for _, k in ipairs(SETTINGS) do _G[k] = nil end
    local csv = os.tmpname()
    tmpfiles[#tmpfiles + 1] = csv
    _G.DMPD_NO_ENV = true
    _G.DMPD_QUIET = not os.getenv("DMPD_TEST_VERBOSE")
    _G.DMPD_CSV = csv
    for k, v in pairs(settings or {}) do _G[k] = v end
    _G.pktgen = st.pg
    local chunk, lerr = loadfile(ROOT .. script)
    local ok, res
    if chunk then ok, res = pcall(chunk) else ok, res = false, lerr end
    _G.pktgen = nil
    for _, k in ipairs(SETTINGS) do _G[k] = nil end
    return { ok = ok, res = res, st = st, csv = csv }
end

local function read_csv(path)
    local f = io.open(path, "r")
    if not f then return nil end
    local header, rows = nil, {}
    for line in f:lines() do
        local fields = {}
        for v in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = v end
        if not header then header = fields
        else
            local r = {}
            for i, h in ipairs(header) do r[h] = fields[i] end
            rows[#rows + 1] = r
        end
    end
    f:close()
    return header, rows
end

local function seq(n)
    local t = {}
    for i = 0, n - 1 do t[#t + 1] = i end
    return t
end

local function ip2int(s)
    local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
end

local function gcd(a, b)
    while b ~= 0 do a, b = b, a % b end
    return a
end

-- Number of values a Pktgen range field walks through before wrapping.
local function cycle_len(f, is_ip)
    if not f or f.min == nil or f.max == nil or f.inc == nil then return 1 end
    local lo, hi, inc = f.min, f.max, f.inc
    if is_ip then lo, hi, inc = ip2int(lo), ip2int(hi), ip2int(inc) end
    if inc == 0 or hi <= lo then return 1 end
    return (hi - lo) // inc + 1
end

-- Distinct (src ip, dst ip, src port, dst port) tuples per range cycle.
local function flows(rf)
    local l = 1
    for _, n in ipairs({ cycle_len(rf.src_ip, true), cycle_len(rf.dst_ip, true),
                         cycle_len(rf.src_port, false), cycle_len(rf.dst_port, false) }) do
        l = l // gcd(l, n) * n
    end
    return l
end

local function same_set(a, b)
    if #a ~= #b then return false end
    local s = {}
    for _, v in ipairs(a) do s[v] = true end
    for _, v in ipairs(b) do if not s[v] then return false end end
    return true
end

local function near(a, b, tol) return math.abs(a - b) <= tol end

local function fmt_list(t)
    local o = {}
    for _, v in ipairs(t) do o[#o + 1] = tostring(v) end
    return "{" .. table.concat(o, ",") .. "}"
end

-- ports touched by any configuration call
local function touched(st)
    local set, out = {}, {}
    for p = 0, st.nports - 1 do
        local s = st.port[p]
        if s.range or next(s.range_fields) or s.sending or s.opackets > 0 then set[p] = true end
    end
    for _, c in ipairs(st:named("set")) do
        local pl = c.args[1]
        for part in tostring(pl):gmatch("[^,]+") do
            local a, b = part:match("^(%d+)%-(%d+)$")
            if not a then a = part; b = part end
            for p = tonumber(a), tonumber(b) do set[p] = true end
        end
    end
    for p in pairs(set) do out[#out + 1] = p end
    table.sort(out)
    return out
end

---------------------------------------------------------------------------
-- paper_mix.lua, every node
---------------------------------------------------------------------------

local function check_port_setup(tag, st, ports, size)
    local bad_size, bad_range_size, bad_count, bad_proto, bad_range, low_flows = {}, {}, {}, {}, {}, {}
    local bad_fields = {}
    local src_nets = {}
    local min_flows = math.huge
    for _, p in ipairs(ports) do
        local s = st.port[p]
        if s.size ~= size then bad_size[#bad_size + 1] = p .. "=" .. tostring(s.size) end
        local ps = s.range_fields.pkt_size or {}
        if ps.start ~= size or ps.min ~= size or ps.max ~= size or ps.inc ~= 0 then
            bad_range_size[#bad_range_size + 1] = p
        end
        if s.count ~= 0 then bad_count[#bad_count + 1] = p end
        if s.proto ~= "udp" or s.type ~= "ipv4" or s.range_proto ~= "udp" then bad_proto[#bad_proto + 1] = p end
        if not s.range then bad_range[#bad_range + 1] = p end
        local rf = s.range_fields
        for _, fld in ipairs({ "src_ip", "dst_ip", "src_port", "dst_port" }) do
            local is_ip = fld:find("ip") ~= nil
            local f = rf[fld]
            if cycle_len(f, is_ip) <= 1 then bad_fields[#bad_fields + 1] = p .. ":" .. fld
            else
                local v = function(x) return is_ip and ip2int(x) or x end
                if v(f.start) < v(f.min) or v(f.start) > v(f.max) then
                    bad_fields[#bad_fields + 1] = p .. ":" .. fld .. " start"
                end
            end
        end
        local n = flows(rf)
        if n < min_flows then min_flows = n end
        if n <= 1000 then low_flows[#low_flows + 1] = p .. "=" .. n end
        local src = s.range_fields.src_ip or {}
        if src.min then src_nets[src.min] = (src_nets[src.min] or 0) + 1 end
    end
    check(tag .. ": size " .. size .. " on all " .. #ports .. " ports", #bad_size == 0, fmt_list(bad_size))
    check(tag .. ": range pkt_size fixed at " .. size, #bad_range_size == 0, fmt_list(bad_range_size))
    check(tag .. ": count 0 (until stopped) on all ports", #bad_count == 0, fmt_list(bad_count))
    check(tag .. ": IPv4/UDP on all ports", #bad_proto == 0, fmt_list(bad_proto))
    check(tag .. ": range mode on for all ports", #bad_range == 0, fmt_list(bad_range))
    check(tag .. ": src/dst IP and UDP port ranges each step over > 1 value",
          #bad_fields == 0, fmt_list(bad_fields))
    check(tag .. ": ranges give > 1000 flows per port (min " .. tostring(min_flows) .. ")",
          #low_flows == 0, fmt_list(low_flows))
    local distinct = 0
    for _ in pairs(src_nets) do distinct = distinct + 1 end
    check(tag .. ": each port has its own source range", distinct == #ports,
          distinct .. " distinct for " .. #ports .. " ports")
end

for _, node in ipairs(NODES) do
    local e = EXPECT[node]
    local tag = "paper_mix " .. node
    local r = run("paper_mix.lua", { DMPD_NODE = node })
    check(tag .. ": runs", r.ok, r.res)
    if r.ok then
        local st = r.st
        local ports = seq(e.ports)
        check(tag .. ": touches exactly ports 0-" .. (e.ports - 1), same_set(touched(st), ports),
              fmt_list(touched(st)))
        check_port_setup(tag, st, ports, e.size)
        local bad_rate = {}
        for _, p in ipairs(ports) do
            if st.port[p].rate ~= 100 then bad_rate[#bad_rate + 1] = p end
        end
        check(tag .. ": rate 100% on all ports", #bad_rate == 0, fmt_list(bad_rate))

        -- start once with all ports, then 12 x 5 s delays, then stop
        local starts, stops, delays = st:named("start"), st:named("stop"), st:named("delay")
        check(tag .. ": one start, one stop", #starts == 1 and #stops == 1,
              #starts .. " starts, " .. #stops .. " stops")
        if #starts == 1 and #stops == 1 then
            check(tag .. ": start/stop on the node's ports",
                  same_set(T.parse_ports(starts[1].args[1]), ports)
                  and same_set(T.parse_ports(stops[1].args[1]), ports),
                  tostring(starts[1].args[1]))
            local order_ok = true
            for _, d in ipairs(delays) do
                if d.t_ms < starts[1].t_ms or d.t_ms > stops[1].t_ms then order_ok = false end
            end
            check(tag .. ": delays between start and stop", order_ok)
            check(tag .. ": all settings made before start",
                  st.starts[1].range[0] == true and st.starts[1].size[0] == e.size)
        end
        local all5 = #delays == 12
        for _, d in ipairs(delays) do if d.args[1] ~= 5000 then all5 = false end end
        check(tag .. ": 12 samples of 5000 ms (60 s)", all5, #delays .. " delays")

        local header, rows = read_csv(r.csv)
        check(tag .. ": CSV header", header and table.concat(header, ",") == T.CSV_HEADER)
        check(tag .. ": CSV has 12 x " .. e.ports .. " rows", rows and #rows == 12 * e.ports,
              rows and #rows)
        if rows and #rows > 0 then
            local util_ok, loss_ok, t_ok = true, true, true
            for _, row in ipairs(rows) do
                if not near(tonumber(row.tx_util_pct), 100, 0.5) then util_ok = false end
                if tonumber(row.rx_loss_pct) ~= 0 then loss_ok = false end
                if row.node ~= node or row.phase ~= "mix" or tonumber(row.frame_size) ~= e.size then t_ok = false end
            end
            check(tag .. ": CSV tx utilisation ~100% of 1 Gb/s", util_ok, rows[1].tx_util_pct)
            check(tag .. ": CSV loss 0 on the looped-back stub", loss_ok)
            check(tag .. ": CSV rows tagged node/phase/size", t_ok)
            check(tag .. ": CSV time runs 5..60 s",
                  tonumber(rows[1].t_s) == 5 and tonumber(rows[#rows].t_s) == 60,
                  rows[1].t_s .. ".." .. rows[#rows].t_s)
        end
    end
end

---------------------------------------------------------------------------
-- paper_mix.lua, special cases
---------------------------------------------------------------------------

do
    local r = run("paper_mix.lua", { DMPD_NODE = "master" })
    check("master: frames larger than 1024 B", r.ok and r.st.port[0].size > 1024,
          r.ok and r.st.port[0].size)
    check("master: frames within standard 1518 B without DMPD_JUMBO", r.ok and r.st.port[0].size <= 1518)

    r = run("paper_mix.lua", { DMPD_NODE = "master", DMPD_JUMBO = "1" })
    check("master + DMPD_JUMBO=1: 9000 B frames", r.ok and r.st.port[7].size == 9000
          and r.st.port[7].range_fields.pkt_size.start == 9000, r.res)

    r = run("paper_mix.lua", { DMPD_NODE = "node3", DMPD_JUMBO = "1" })
    check("node3 + DMPD_JUMBO=1: still 128 B", r.ok and r.st.port[0].size == 128, r.res)

    r = run("paper_mix.lua", { DMPD_NODE = "node3", DMPD_PORTS = "2-5" })
    check("DMPD_PORTS=2-5: runs", r.ok, r.res)
    if r.ok then
        check("DMPD_PORTS=2-5: only ports 2-5 touched", same_set(touched(r.st), { 2, 3, 4, 5 }),
              fmt_list(touched(r.st)))
        check_port_setup("DMPD_PORTS=2-5", r.st, { 2, 3, 4, 5 }, 128)
    end

    r = run("paper_mix.lua", { DMPD_NODE = "node9", DMPD_RATE_PCT = "40", DMPD_DURATION_S = "20" })
    check("DMPD_RATE_PCT=40: rate 40 on all ports", r.ok and r.st.port[0].rate == 40
          and r.st.port[3].rate == 40, r.res)
    check("DMPD_DURATION_S=20: 4 delays", r.ok and #r.st:named("delay") == 4)
    if r.ok then
        local _, rows = read_csv(r.csv)
        local ok = #rows == 16
        for _, row in ipairs(rows) do
            if not near(tonumber(row.tx_util_pct), 40, 0.5) then ok = false end
        end
        check("DMPD_RATE_PCT=40: CSV utilisation ~40%", ok)
    end

    r = run("paper_mix.lua", { DMPD_NODE = "node2", DMPD_DST_MAC = "00:11:22:33:44:55" })
    check("DMPD_DST_MAC: set on the ports", r.ok and r.st.port[0].dst_mac == "00:11:22:33:44:55"
          and r.st.port[3].range_fields.dst_mac.start == "00:11:22:33:44:55", r.res)

    r = run("paper_mix.lua", { DMPD_NODE = "node2",
        DMPD_DST_MACS = "02:00:00:00:00:0a,02:00:00:00:00:0b,02:00:00:00:00:0c,02:00:00:00:00:0d" })
    check("DMPD_DST_MACS: one MAC per port", r.ok and r.st.port[0].dst_mac == "02:00:00:00:00:0a"
          and r.st.port[3].dst_mac == "02:00:00:00:00:0d"
          and r.st.port[2].range_fields.dst_mac.start == "02:00:00:00:00:0c", r.res)
    r = run("paper_mix.lua", { DMPD_NODE = "node2", DMPD_DST_MACS = "02:00:00:00:00:0a" })
    check("DMPD_DST_MACS with too few MACs: refuses", not r.ok and #r.st:named("start") == 0, r.res)

    r = run("paper_mix.lua", { DMPD_NODE = "node5" }, { ports = 8, stats_api = "v24" })
    check("portStats(portlist) API of newer Pktgen: runs", r.ok, r.res)
    if r.ok then
        local _, rows = read_csv(r.csv)
        local ok = #rows == 48
        for _, row in ipairs(rows) do
            if not near(tonumber(row.tx_util_pct), 100, 0.5) then ok = false end
        end
        check("portStats(portlist) API of newer Pktgen: CSV values", ok, #rows)
    end

    r = run("paper_mix.lua", {})
    check("no DMPD_NODE: refuses with a message", not r.ok and tostring(r.res):find("DMPD_NODE") ~= nil, r.res)
    check("no DMPD_NODE: nothing started", #r.st:named("start") == 0)
    r = run("paper_mix.lua", { DMPD_NODE = "node42" })
    check("unknown node: refuses", not r.ok and tostring(r.res):find("unknown") ~= nil, r.res)
    r = run("paper_mix.lua", { DMPD_NODE = "node1" }, { ports = 4 })
    check("more ports than Pktgen has: fails (stub rejects port 4)", not r.ok, r.res)
end

---------------------------------------------------------------------------
-- lb_test.lua
---------------------------------------------------------------------------

-- Summed offered Mb/s of a start snapshot.
local function offered(snap, link)
    local sum = 0
    for _, p in ipairs(snap.ports) do sum = sum + snap.rate[p] * link / 100 end
    return sum
end

for _, node in ipairs(NODES) do
    local e = EXPECT[node]
    local tag = "lb_test " .. node
    local r = run("lb_test.lua", { DMPD_NODE = node })
    check(tag .. ": runs", r.ok, r.res)
    if r.ok then
        local st = r.st
        local ports = seq(e.ports)
        check_port_setup(tag, st, ports, e.size)
        check(tag .. ": two windows (two starts, two stops)",
              #st.starts == 2 and #st:named("stop") == 2, #st.starts)
        local want = 4000 / e.ports / 1000 * 100
        for w, snap in ipairs(st.starts) do
            check(tag .. ": window " .. w .. " sums to 4 Gb/s on 1 Gb/s ports",
                  near(offered(snap, 1000), 4000, 1), offered(snap, 1000))
            local even = #snap.ports == e.ports
            for _, p in ipairs(snap.ports) do
                if not near(snap.rate[p], want, 0.01) then even = false end
            end
            check(tag .. ": window " .. w .. " " .. want .. "% on each of " .. e.ports .. " ports", even)
        end
        local delays = st:named("delay")
        local total = 0
        for _, d in ipairs(delays) do total = total + d.args[1] end
        check(tag .. ": 2 x 60 s windows + 10 s gap", total == 130000 and #delays == 25,
              total .. " ms in " .. #delays)
        local _, rows = read_csv(r.csv)
        local phases, sum_by_t = {}, {}
        for _, row in ipairs(rows or {}) do
            phases[row.phase] = (phases[row.phase] or 0) + 1
            local key = row.phase .. "@" .. row.t_s
            sum_by_t[key] = (sum_by_t[key] or 0) + tonumber(row.tx_util_pct) * 10 -- Mb/s
        end
        check(tag .. ": CSV rows for both phases",
              phases.no_balance == 12 * e.ports and phases.balance == 12 * e.ports)
        local sums_ok = next(sum_by_t) ~= nil
        for _, v in pairs(sum_by_t) do if not near(v, 4000, 20) then sums_ok = false end end
        check(tag .. ": CSV per-sample summed wire rate ~4000 Mb/s", sums_ok)
    end
end

do
    -- emulate mode on master: packed without balancing, even with it
    local r = run("lb_test.lua", { DMPD_NODE = "master", DMPD_LB_MODE = "emulate" })
    check("lb emulate master: runs", r.ok, r.res)
    if r.ok then
        local s1, s2 = r.st.starts[1], r.st.starts[2]
        check("lb emulate master: no_balance on ports 0-3 at 100%",
              s1 and same_set(s1.ports, { 0, 1, 2, 3 }) and s1.rate[0] == 100 and s1.rate[3] == 100,
              s1 and fmt_list(s1.ports))
        check("lb emulate master: no_balance sums to 4 Gb/s", s1 and near(offered(s1, 1000), 4000, 1))
        check("lb emulate master: balance on all 8 ports at 50%",
              s2 and #s2.ports == 8 and s2.rate[0] == 50 and s2.rate[7] == 50)
        check("lb emulate master: balance sums to 4 Gb/s", s2 and near(offered(s2, 1000), 4000, 1))
        local _, rows = read_csv(r.csv)
        local idle_ok, busy_ok = true, true
        for _, row in ipairs(rows) do
            local p, u = tonumber(row.port), tonumber(row.tx_util_pct)
            if row.phase == "no_balance" then
                if p >= 4 and u ~= 0 then idle_ok = false end
                if p < 4 and not near(u, 100, 0.5) then busy_ok = false end
            elseif not near(u, 50, 0.5) then busy_ok = false end
        end
        check("lb emulate master: CSV shows ports 4-7 idle without balancing", idle_ok)
        check("lb emulate master: CSV shows 100% then 50% utilisation", busy_ok)
    end

    r = run("lb_test.lua", { DMPD_NODE = "node4", DMPD_LB_MODE = "emulate" })
    check("lb emulate node4: 4 x 100% in both windows", r.ok and #r.st.starts == 2
          and #r.st.starts[1].ports == 4 and r.st.starts[1].rate[2] == 100
          and r.st.starts[2].rate[3] == 100, r.res)

    r = run("lb_test.lua", { DMPD_NODE = "master", DMPD_LINK_MBPS = "10000" })
    check("lb master on 10 Gb/s ports: 5% each, 4 Gb/s in all",
          r.ok and r.st.starts[1].rate[0] == 5 and near(offered(r.st.starts[1], 10000), 4000, 1), r.res)

    r = run("lb_test.lua", { DMPD_NODE = "node6", DMPD_PORTS = "0-2" })
    check("lb on 3 x 1 Gb/s ports: refuses (4 Gb/s does not fit)",
          not r.ok and tostring(r.res):find("does not fit") ~= nil, r.res)
    check("lb on 3 ports: nothing started", #r.st:named("start") == 0)

    r = run("lb_test.lua", { DMPD_NODE = "node1", DMPD_PORTS = "0-5" })
    check("lb on 6 ports: 66.67% each, sums to 4 Gb/s",
          r.ok and near(offered(r.st.starts[1], 1000), 4000, 1) and r.st.starts[1].rate[5] == 66.67,
          r.ok and r.st.starts[1].rate[5] or r.res)

    local cmds = {}
    r = run("lb_test.lua", { DMPD_NODE = "node4", DMPD_LB_TOGGLE_CMD = "dmpd-ctl balance",
                             DMPD_EXEC = function(c) cmds[#cmds + 1] = c; return true end,
                             DMPD_WINDOW_S = "10", DMPD_GAP_S = "2" })
    check("lb toggle command: runs", r.ok, r.res)
    check("lb toggle command: called before each window with the phase",
          #cmds == 2 and cmds[1]:find("DMPD_LB_PHASE=no_balance", 1, true) == 1
          and cmds[2]:find("DMPD_LB_PHASE=balance", 1, true) == 1, fmt_list(cmds))
    local total = 0
    for _, d in ipairs(r.st:named("delay")) do total = total + d.args[1] end
    check("lb DMPD_WINDOW_S=10 DMPD_GAP_S=2: 22 s of delays", total == 22000, total)

    r = run("lb_test.lua", { DMPD_NODE = "node4", DMPD_LB_MODE = "bogus" })
    check("lb bad DMPD_LB_MODE: refuses", not r.ok, r.res)
end

---------------------------------------------------------------------------
-- library helpers
---------------------------------------------------------------------------

check("portlist compresses ranges", T.portlist({ 0, 1, 2, 3, 6 }) == "0-3,6")
check("parse_ports expands ranges", same_set(T.parse_ports("0-3,6"), { 0, 1, 2, 3, 6 }))
check("profile table matches the paper", (function()
    for _, node in ipairs(NODES) do
        local p = T.PROFILES[node]
        if not p or p.ports ~= EXPECT[node].ports or p.size ~= EXPECT[node].size then return false end
    end
    return true
end)())
check("stub rejects functions Pktgen lacks", not pcall(function()
    return Stub.new().pg.no_such_function
end))
check("stub rejects a wrong argument count", not pcall(function()
    Stub.new().pg.set("0", "size")
end))
check("stub rejects a bad range selector", not pcall(function()
    Stub.new().pg.range.dst_ip("0", "begin", "10.0.0.1")
end))

for _, f in ipairs(tmpfiles) do os.remove(f) end

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
