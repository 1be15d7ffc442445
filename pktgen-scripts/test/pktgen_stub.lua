-- pktgen_stub.lua -- a stand-in for Pktgen-DPDK's `pktgen` Lua module, for CI.
--
-- Pktgen is not packaged here, so test/run.lua loads the scripts under plain
-- lua5.4 with this module installed as the global `pktgen`. It:
--   * records every call (name and arguments) in order, in stub.calls;
--   * checks arguments the way app/lpktgenlib.c does (exact argument counts
--     through lua_gettop, luaL_checkstring / luaL_checkinteger types, the
--     "start|inc|min|max" selectors of the range calls, valid port lists,
--     dotted-quad addresses), and raises on anything else -- including any
--     function the real module does not export;
--   * keeps per-port state (size, rate, count, range fields, sending) and a
--     simple traffic model: pktgen.delay(ms) advances the counters of the
--     sending ports at rate% of line rate for the frame size (wire size =
--     frame + 20 B preamble and gap), frames looped back to the same port's
--     receive counters, so that portStats and the CSV maths can be checked.
--
-- stats_api = "v20" mimics portStats(portlist, "port"|"rate") with flat
-- counters (older Pktgen, e.g. the 2020 source); "v24" mimics the newer portStats(portlist)
-- with counters under .curr, and rejects a second argument.

local S = {}

local RANGE_WHAT = { start = true, inc = true, min = true, max = true }

local function is_ipv4(s)
    if type(s) ~= "string" then return false end
    local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then return false end
    for _, x in ipairs({ a, b, c, d }) do
        if tonumber(x) > 255 then return false end
    end
    return true
end

local function is_mac(s)
    if type(s) ~= "string" then return false end
    return s:match("^%x%x:%x%x:%x%x:%x%x:%x%x:%x%x$") ~= nil
        or s:match("^%x%x%x%x:%x%x%x%x:%x%x%x%x$") ~= nil
end

function S.new(opts)
    opts = opts or {}
    local st = {
        calls = {},
        starts = {},          -- snapshot of the ports' settings at each start
        nports = opts.ports or 8,
        link_mbps = opts.link_mbps or 1000,
        stats_api = opts.stats_api or "v20",
        now_ms = 0,
        port = {},
    }
    for p = 0, st.nports - 1 do
        st.port[p] = {
            size = 64, rate = 100, count = 0, burst = 32, proto = "tcp",
            type = "ipv4", range = false, sending = false, sport = 1234,
            dport = 5678, range_fields = {},
            opackets = 0.0, ipackets = 0.0, obytes = 0.0, ibytes = 0.0,
        }
    end

    local function fail(fmt, ...)
        error("pktgen stub: " .. string.format(fmt, ...), 3)
    end

    local function nargs(name, want, ...)
        local n = select("#", ...)
        if n ~= want then fail("%s, wrong number of arguments (%d, want %d)", name, n, want) end
    end

    -- luaL_checkstring accepts strings and numbers
    local function cstring(name, i, v)
        if type(v) == "number" then return tostring(v) end
        if type(v) ~= "string" then fail("%s: bad argument #%d (string expected, got %s)", name, i, type(v)) end
        return v
    end

    local function cinteger(name, i, v)
        local n = v
        if type(v) == "string" then n = tonumber(v) end
        if type(n) ~= "number" or math.tointeger(n) == nil then
            fail("%s: bad argument #%d (integer expected, got %s)", name, i, tostring(v))
        end
        return math.tointeger(n)
    end

    local function cnumber(name, i, v)
        local n = v
        if type(v) == "string" then n = tonumber(v) end
        if type(n) ~= "number" then fail("%s: bad argument #%d (number expected, got %s)", name, i, tostring(v)) end
        return n
    end

    local function ports(name, s)
        s = cstring(name, 1, s)
        local ids = {}
        if s == "all" then
            for p = 0, st.nports - 1 do ids[#ids + 1] = p end
            return ids
        end
        for part in s:gmatch("[^,]+") do
            local a, b = part:match("^(%d+)%-(%d+)$")
            if not a then a = part:match("^(%d+)$"); b = a end
            if not a then fail("%s: bad portlist '%s'", name, s) end
            for p = tonumber(a), tonumber(b) do
                if not st.port[p] then fail("%s: port %d does not exist (%d ports)", name, p, st.nports) end
                ids[#ids + 1] = p
            end
        end
        if #ids == 0 then fail("%s: empty portlist '%s'", name, s) end
        return ids
    end

    local function estate(name, v)
        v = cstring(name, 2, v)
        local l = v:lower()
        if l == "on" or l == "enable" or l == "1" then return true end
        if l == "off" or l == "disable" or l == "0" then return false end
        fail("%s: bad state '%s'", name, v)
    end

    local function record(name, ...)
        st.calls[#st.calls + 1] = { name = name, args = table.pack(...), t_ms = st.now_ms }
    end

    local pg, range = {}, {}

    function pg.set(...)
        record("set", ...)
        nargs("set", 3, ...)
        local pl, what, value = ...
        local ids = ports("set", pl)
        what = cstring("set", 2, what)
        local lw = what:lower()
        if lw == "rate" then
            value = cnumber("set", 3, value)
            if value <= 0 or value > 100 then fail("set: rate %s out of (0,100]", tostring(value)) end
        elseif lw == "size" or lw == "count" or lw == "burst" or lw == "sport"
            or lw == "dport" or lw == "ttl" or lw == "prime" or lw == "seq_cnt"
            or lw == "seqcnt" or lw == "cycles" or lw == "dump" then
            value = cinteger("set", 3, value)
            if lw == "size" and (value < 64 or value > 9618) then fail("set: size %d out of range", value) end
        else
            fail("set does not support %s", what)
        end
        for _, p in ipairs(ids) do st.port[p][lw] = value end
    end

    function pg.set_type(...)
        record("set_type", ...)
        nargs("set_type", 2, ...)
        local pl, t = ...
        t = cstring("set_type", 2, t)
        if t ~= "ipv4" and t ~= "ipv6" and t ~= "arp" then fail("set_type: bad type '%s'", t) end
        for _, p in ipairs(ports("set_type", pl)) do st.port[p].type = t end
    end

    function pg.set_proto(...)
        record("set_proto", ...)
        nargs("set_proto", 2, ...)
        local pl, t = ...
        t = cstring("set_proto", 2, t)
        if t ~= "udp" and t ~= "tcp" and t ~= "icmp" then fail("set_proto: bad proto '%s'", t) end
        for _, p in ipairs(ports("set_proto", pl)) do st.port[p].proto = t end
    end

    function pg.set_mac(...)
        record("set_mac", ...)
        nargs("set_mac", 3, ...)
        local pl, which, mac = ...
        which = cstring("set_mac", 2, which)
        if which ~= "src" and which ~= "dst" then fail("set_mac: bad selector '%s'", which) end
        if not is_mac(mac) then fail("set_mac: bad MAC '%s'", tostring(mac)) end
        for _, p in ipairs(ports("set_mac", pl)) do st.port[p][which .. "_mac"] = mac end
    end

    function pg.set_ipaddr(...)
        record("set_ipaddr", ...)
        nargs("set_ipaddr", 3, ...)
        local pl, which, addr = ...
        which = cstring("set_ipaddr", 2, which)
        if which ~= "src" and which ~= "dst" then fail("set_ipaddr: bad selector '%s'", which) end
        local ip = tostring(addr):gsub("/%d+$", "")
        if not is_ipv4(ip) then fail("set_ipaddr: bad address '%s'", tostring(addr)) end
        for _, p in ipairs(ports("set_ipaddr", pl)) do st.port[p][which .. "_ip"] = addr end
    end

    function pg.set_range(...)
        record("set_range", ...)
        nargs("set_range", 2, ...)
        local pl, state = ...
        local on = estate("set_range", state)
        for _, p in ipairs(ports("set_range", pl)) do st.port[p].range = on end
    end

    local function snapshot(ids)
        local snap = { ports = {}, rate = {}, size = {}, range = {}, t_ms = st.now_ms }
        for _, p in ipairs(ids) do
            local s = st.port[p]
            snap.ports[#snap.ports + 1] = p
            snap.rate[p] = s.rate
            snap.size[p] = s.range and (s.range_fields.pkt_size or {}).start or s.size
            snap.range[p] = s.range
        end
        return snap
    end

    function pg.start(...)
        record("start", ...)
        nargs("start", 1, ...)
        local ids = ports("start", (...))
        st.starts[#st.starts + 1] = snapshot(ids)
        for _, p in ipairs(ids) do st.port[p].sending = true end
    end

    function pg.stop(...)
        record("stop", ...)
        nargs("stop", 1, ...)
        for _, p in ipairs(ports("stop", (...))) do st.port[p].sending = false end
    end

    -- traffic model
    local function advance(ms)
        for p = 0, st.nports - 1 do
            local s = st.port[p]
            if s.sending then
                local size = s.size
                if s.range and s.range_fields.pkt_size and s.range_fields.pkt_size.start then
                    size = s.range_fields.pkt_size.start
                end
                local wire_bits = (size + 20) * 8
                local pkts = st.link_mbps * 1e6 * (s.rate / 100) / wire_bits * ms / 1000
                s.opackets = s.opackets + pkts
                s.obytes = s.obytes + pkts * (size - 4)
                s.ipackets = s.ipackets + pkts
                s.ibytes = s.ibytes + pkts * (size - 4)
            end
        end
        st.now_ms = st.now_ms + ms
    end

    function pg.delay(...)
        record("delay", ...)
        nargs("delay", 1, ...)
        local ms = cinteger("delay", 1, (...))
        if ms < 0 then fail("delay: negative") end
        advance(ms)
    end

    function pg.sleep(...)
        record("sleep", ...)
        nargs("sleep", 1, ...)
        advance(cinteger("sleep", 1, (...)) * 1000)
    end

    function pg.pause(...)
        record("pause", ...)
        nargs("pause", 2, ...)
        local _, ms = ...
        advance(cinteger("pause", 2, ms))
    end

    local function counters(p)
        local s = st.port[p]
        return {
            ipackets = math.floor(s.ipackets), opackets = math.floor(s.opackets),
            ibytes = math.floor(s.ibytes), obytes = math.floor(s.obytes),
            ierrors = 0, oerrors = 0, rx_nombuf = 0, imissed = 0,
        }
    end

    function pg.portStats(...)
        record("portStats", ...)
        local t = { n = 0 }
        if st.stats_api == "v24" then
            nargs("portStats", 1, ...)
            for _, p in ipairs(ports("portStats", (...))) do
                t[p] = { curr = counters(p), sizes = {}, qstats = {} }
                t.n = t.n + 1
            end
        else
            nargs("portStats", 2, ...)
            local pl, kind = ...
            kind = cstring("portStats", 2, kind)
            if kind ~= "port" and kind ~= "rate" then fail("portStats: bad type '%s'", kind) end
            for _, p in ipairs(ports("portStats", pl)) do
                t[p] = counters(p)
                t.n = t.n + 1
            end
        end
        return t
    end

    function pg.portCount(...)
        record("portCount", ...)
        return st.nports
    end

    function pg.totalPorts(...)
        record("totalPorts", ...)
        return st.nports
    end

    function pg.clear(...)
        record("clear", ...)
        nargs("clear", 1, ...)
        for _, p in ipairs(ports("clear", (...))) do
            local s = st.port[p]
            s.opackets, s.ipackets, s.obytes, s.ibytes = 0.0, 0.0, 0.0, 0.0
        end
    end

    function pg.screen(...)
        record("screen", ...)
        nargs("screen", 1, ...)
        estate("screen", select(1, ...))
    end

    function pg.isSending(...)
        record("isSending", ...)
        nargs("isSending", 1, ...)
        local t = { n = 0 }
        for _, p in ipairs(ports("isSending", (...))) do
            t[p] = st.port[p].sending and "y" or "n"
            t.n = t.n + 1
        end
        return t
    end

    -- pktgen.range.<field>(portlist, "start"|"inc"|"min"|"max", value)
    local function range_field(field, check)
        return function(...)
            local name = "range." .. field
            record(name, ...)
            nargs(name, 3, ...)
            local pl, what, value = ...
            what = cstring(name, 2, what)
            if not RANGE_WHAT[what] then fail("%s: bad selector '%s'", name, what) end
            value = check(name, value)
            for _, p in ipairs(ports(name, pl)) do
                local rf = st.port[p].range_fields
                rf[field] = rf[field] or {}
                rf[field][what] = value
            end
        end
    end

    local function ip_check(name, v)
        if not is_ipv4(v) then fail("%s: bad IPv4 address '%s'", name, tostring(v)) end
        return v
    end
    local function int_check(name, v) return cinteger(name, 3, v) end
    local function mac_check(name, v)
        if not is_mac(v) then fail("%s: bad MAC '%s'", name, tostring(v)) end
        return v
    end

    range.src_ip = range_field("src_ip", ip_check)
    range.dst_ip = range_field("dst_ip", ip_check)
    range.src_port = range_field("src_port", int_check)
    range.dst_port = range_field("dst_port", int_check)
    range.ttl = range_field("ttl", int_check)
    range.vlan_id = range_field("vlan_id", int_check)
    range.pkt_size = range_field("pkt_size", int_check)
    range.dst_mac = range_field("dst_mac", mac_check)
    range.src_mac = range_field("src_mac", mac_check)

    function range.ip_proto(...)
        record("range.ip_proto", ...)
        nargs("range.ip_proto", 2, ...)
        local pl, proto = ...
        proto = cstring("range.ip_proto", 2, proto)
        if proto ~= "udp" and proto ~= "tcp" then fail("range.ip_proto: bad proto '%s'", proto) end
        for _, p in ipairs(ports("range.ip_proto", pl)) do st.port[p].range_proto = proto end
    end

    local function strict(t, what)
        return setmetatable(t, { __index = function(_, k)
            error("pktgen stub: " .. what .. "." .. tostring(k) .. " is not part of Pktgen's Lua API", 2)
        end })
    end

    pg.range = strict(range, "pktgen.range")
    pg.info = { Lua_Version = _VERSION, Pktgen_Version = "stub" }
    st.pg = strict(pg, "pktgen")

    function st:named(name)
        local out = {}
        for _, c in ipairs(self.calls) do
            if c.name == name then out[#out + 1] = c end
        end
        return out
    end

    return st
end

return S
