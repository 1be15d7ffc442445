-- dmpd.lua: Wireshark dissector for DMPD, the layer-2 monitoring protocol of
-- the dmpd crate (protocol version 1).
--
-- Byte layouts follow dmpd/src/wire/*.rs (`mod field` blocks) and
-- docs/dmpd-protocol.md; all integers are big-endian.
--
--   control: | Ethernet (14) | common header (44) | body (body_len) | tag (16) | padding |
--   data:    | Ethernet (14) | data header (26)   | payload (payload_len)      | padding |
--
-- Load it with
--   wireshark -X lua_script:tools/wireshark/dmpd.lua
--   tshark    -X lua_script:tools/wireshark/dmpd.lua -r capture.pcapng -Y dmpd
-- or copy it to ~/.local/lib/wireshark/plugins/ (4.0: ~/.config/wireshark/plugins/).
--
-- The HMAC tag is shown as bytes and is NOT verified (the dissector has no key).
-- Malformed or truncated frames get expert infos (dmpd.expert.*), never Lua
-- errors: every read is bounds-checked against the captured length first.
--
-- Preference: dmpd.ethertype (default 0x88B5; hex "0x..." or decimal).

local dmpd = Proto("dmpd", "DMPD cluster monitoring protocol")

local DEFAULT_ETHERTYPE = 0x88B5
local VERSION = 1
local ETH_LEN = 14
local HEADER_LEN = 58 -- Ethernet + common control header
local TAG_LEN = 16
local DATA_HEADER_LEN = 40 -- Ethernet + data header
local NODE_FIXED_LEN = 44
local PORT_LEN = 76
local PIPE_LEN = 32
local MAX_PORTS = 16
local MAX_PIPES = 8
local NO_NODE = 0xFFFF

local KIND_HEARTBEAT = 0x01
local KIND_RESPONSE = 0x02
local KIND_TABLE = 0x03
local KIND_ANNOUNCE = 0x04
local KIND_LEAVE = 0x05
local KIND_DATA = 0x20

local kind_names = {
    [KIND_HEARTBEAT] = "HEARTBEAT",
    [KIND_RESPONSE] = "RESPONSE",
    [KIND_TABLE] = "TABLE",
    [KIND_ANNOUNCE] = "ANNOUNCE",
    [KIND_LEAVE] = "LEAVE",
    [KIND_DATA] = "DATA",
}
local node_state_names = { [1] = "Up", [2] = "Left", [3] = "Down" }
local port_state_names = { [0] = "Down", [1] = "Up" }
local pipe_state_names = { [0] = "Closed", [1] = "Open", [2] = "Throttled" }
local leave_reason_names = { [1] = "Shutdown", [2] = "SelfFaulty", [3] = "Admin" }

local F = {}
local function def(key, field) F[key] = field end

-- common control header
def("version", ProtoField.uint8("dmpd.version", "Version", base.DEC))
def("kind", ProtoField.uint8("dmpd.kind", "Kind", base.HEX, kind_names))
def("flags", ProtoField.uint8("dmpd.flags", "Flags", base.HEX))
def("key_id", ProtoField.uint8("dmpd.key_id", "Key id", base.DEC))
def("cluster_id", ProtoField.uint32("dmpd.cluster_id", "Cluster id", base.DEC))
def("sender", ProtoField.uint16("dmpd.sender", "Sender node", base.DEC))
def("incarnation", ProtoField.uint64("dmpd.incarnation", "Incarnation", base.DEC))
def("term", ProtoField.uint64("dmpd.term", "Term", base.DEC))
def("seq", ProtoField.uint64("dmpd.seq", "Sequence", base.DEC))
def("timestamp", ProtoField.uint64("dmpd.timestamp", "Timestamp (ns)", base.DEC))
def("body_len", ProtoField.uint16("dmpd.body_len", "Body length", base.DEC))
def("body", ProtoField.bytes("dmpd.body", "Body"))
def("tag", ProtoField.bytes("dmpd.tag", "HMAC tag (not verified)"))
def("padding", ProtoField.bytes("dmpd.padding", "Padding"))

-- HEARTBEAT
def("hb_round", ProtoField.uint64("dmpd.heartbeat.round", "Round", base.DEC))
def("hb_period", ProtoField.uint64("dmpd.heartbeat.period", "Period (ns)", base.DEC))
def("hb_priority", ProtoField.uint8("dmpd.heartbeat.priority", "Master priority", base.DEC))
def("hb_flags", ProtoField.uint8("dmpd.heartbeat.flags", "Flags", base.HEX))
def("hb_nodes", ProtoField.uint16("dmpd.heartbeat.table_nodes", "Nodes in the master's table", base.DEC))

-- RESPONSE
def("rs_echo", ProtoField.uint64("dmpd.response.echo_ts", "Echoed heartbeat timestamp (ns)", base.DEC))
def("rs_round", ProtoField.uint64("dmpd.response.round", "Echoed round", base.DEC))
def("rs_port", ProtoField.uint8("dmpd.response.port", "Responder port", base.DEC))
def("rs_flags", ProtoField.uint8("dmpd.response.flags", "Flags", base.HEX))
def("rs_flag_rec", ProtoField.bool("dmpd.response.flags.record", "Node record follows", 8, nil, 0x01))
def("rs_master", ProtoField.uint16("dmpd.response.master", "Responder's master", base.DEC))
def("rs_term", ProtoField.uint64("dmpd.response.master_term", "Responder's term", base.DEC))
def("rs_priority", ProtoField.uint8("dmpd.response.priority", "Responder priority", base.DEC))
def("rs_reserved", ProtoField.uint8("dmpd.response.reserved", "Reserved", base.HEX))

-- TABLE segment
def("tb_round", ProtoField.uint64("dmpd.table.round", "Round", base.DEC))
def("tb_seg_idx", ProtoField.uint16("dmpd.table.seg_idx", "Segment index", base.DEC))
def("tb_seg_count", ProtoField.uint16("dmpd.table.seg_count", "Segment count", base.DEC))
def("tb_flags", ProtoField.uint8("dmpd.table.flags", "Flags", base.HEX))
def("tb_flag_refresh", ProtoField.bool("dmpd.table.flags.refresh", "Rolling refresh", 8, nil, 0x01))
def("tb_reserved", ProtoField.uint8("dmpd.table.reserved", "Reserved", base.HEX))
def("tb_count", ProtoField.uint16("dmpd.table.count", "Record count", base.DEC))

-- ANNOUNCE
def("an_priority", ProtoField.uint8("dmpd.announce.priority", "Candidate priority", base.DEC))
def("an_flags", ProtoField.uint8("dmpd.announce.flags", "Flags", base.HEX))
def("an_last", ProtoField.uint16("dmpd.announce.last_master", "Last master followed", base.DEC))

-- LEAVE
def("lv_reason", ProtoField.uint8("dmpd.leave.reason", "Reason", base.DEC, leave_reason_names))
def("lv_reserved", ProtoField.bytes("dmpd.leave.reserved", "Reserved"))

-- node record
def("node", ProtoField.none("dmpd.node", "Node record"))
def("n_num", ProtoField.uint16("dmpd.node.num", "Node number", base.DEC))
def("n_inc", ProtoField.uint64("dmpd.node.incarnation", "Incarnation", base.DEC))
def("n_version", ProtoField.uint32("dmpd.node.version", "Version", base.DEC))
def("n_amend", ProtoField.uint16("dmpd.node.amend", "Amend", base.DEC))
def("n_state", ProtoField.uint8("dmpd.node.state", "State", base.DEC, node_state_names))
def("n_priority", ProtoField.uint8("dmpd.node.priority", "Priority", base.DEC))
def("n_cores", ProtoField.uint16("dmpd.node.cores", "Cores (SCORE)", base.DEC))
def("n_cpu", ProtoField.uint16("dmpd.node.cpu_util", "CPU utilisation (UCPU, basis points)", base.DEC))
def("n_load1", ProtoField.uint16("dmpd.node.load1", "Load 1 min (hundredths)", base.DEC))
def("n_load5", ProtoField.uint16("dmpd.node.load5", "Load 5 min (hundredths)", base.DEC))
def("n_load15", ProtoField.uint16("dmpd.node.load15", "Load 15 min (hundredths)", base.DEC))
def("n_io", ProtoField.uint16("dmpd.node.io_load", "IO load (LIO, basis points)", base.DEC))
def("n_mem", ProtoField.uint64("dmpd.node.mem_total", "Memory size (SMEM, bytes)", base.DEC))
def("n_mem_util", ProtoField.uint16("dmpd.node.mem_util", "Memory utilisation (UMEM, basis points)", base.DEC))
def("n_temp", ProtoField.int16("dmpd.node.temperature", "Temperature (0.01 degC)", base.DEC))
def("n_nports", ProtoField.uint8("dmpd.node.n_ports", "Ports", base.DEC))
def("n_npipes", ProtoField.uint8("dmpd.node.n_pipes", "Pipes", base.DEC))

-- port record
def("port", ProtoField.none("dmpd.port", "Port record"))
def("p_idx", ProtoField.uint8("dmpd.port.idx", "Index", base.DEC))
def("p_state", ProtoField.uint8("dmpd.port.state", "State", base.DEC, port_state_names))
def("p_reach", ProtoField.uint8("dmpd.port.reachable", "Reachable", base.DEC, { [0] = "no", [1] = "yes" }))
def("p_reserved", ProtoField.uint8("dmpd.port.reserved", "Reserved", base.HEX))
def("p_mac", ProtoField.ether("dmpd.port.mac", "MAC"))
def("p_speed", ProtoField.uint32("dmpd.port.speed", "Link speed (Mb/s)", base.DEC))
def("p_rx_pkts", ProtoField.uint64("dmpd.port.rx_packets", "Rx packets", base.DEC))
def("p_tx_pkts", ProtoField.uint64("dmpd.port.tx_packets", "Tx packets", base.DEC))
def("p_rx_bytes", ProtoField.uint64("dmpd.port.rx_bytes", "Rx bytes", base.DEC))
def("p_tx_bytes", ProtoField.uint64("dmpd.port.tx_bytes", "Tx bytes", base.DEC))
def("p_rate", ProtoField.uint64("dmpd.port.rate", "Rate (bit/s)", base.DEC))
def("p_util", ProtoField.uint16("dmpd.port.util", "Utilisation (basis points)", base.DEC))
def("p_drops", ProtoField.uint32("dmpd.port.drops", "Drops", base.DEC))
def("p_errors", ProtoField.uint32("dmpd.port.errors", "Errors", base.DEC))
def("p_overflows", ProtoField.uint32("dmpd.port.overflows", "Queue overflows", base.DEC))
def("p_load", ProtoField.uint16("dmpd.port.load", "Smoothed load (basis points)", base.DEC))
def("p_rtt", ProtoField.uint32("dmpd.port.rtt", "RTT master-node (ns)", base.DEC))
def("p_reserved2", ProtoField.uint16("dmpd.port.reserved2", "Reserved", base.HEX))

-- pipe record
def("pipe", ProtoField.none("dmpd.pipe", "Pipe record"))
def("q_id", ProtoField.uint16("dmpd.pipe.id", "Pipe id", base.DEC))
def("q_priority", ProtoField.uint8("dmpd.pipe.priority", "Priority", base.DEC))
def("q_state", ProtoField.uint8("dmpd.pipe.state", "State", base.DEC, pipe_state_names))
def("q_threshold", ProtoField.uint32("dmpd.pipe.threshold", "Flow threshold (kbit/s)", base.DEC))
def("q_buffer", ProtoField.uint32("dmpd.pipe.buffer", "Buffer size (bytes)", base.DEC))
def("q_tx", ProtoField.uint64("dmpd.pipe.tx_msgs", "Tx messages", base.DEC))
def("q_rx", ProtoField.uint64("dmpd.pipe.rx_msgs", "Rx messages", base.DEC))
def("q_drops", ProtoField.uint32("dmpd.pipe.drops", "Drops", base.DEC))

-- DATA frame
def("d_flags", ProtoField.uint8("dmpd.data.flags", "Flags", base.HEX))
def("d_flag_rel", ProtoField.bool("dmpd.data.flags.reliable", "Reliable", 8, nil, 0x01))
def("d_flag_ack", ProtoField.bool("dmpd.data.flags.ack", "Ack valid", 8, nil, 0x02))
def("d_flag_dup", ProtoField.bool("dmpd.data.flags.dup", "Duplicated on many ports", 8, nil, 0x04))
def("d_ptype", ProtoField.uint8("dmpd.data.ptype", "Ptype", base.DEC))
def("d_snode", ProtoField.uint16("dmpd.data.snode", "Snode", base.DEC))
def("d_dnode", ProtoField.uint16("dmpd.data.dnode", "Dnode", base.DEC))
def("d_spipe", ProtoField.uint16("dmpd.data.spipe", "Spipe", base.DEC))
def("d_dpipe", ProtoField.uint16("dmpd.data.dpipe", "Dpipe", base.DEC))
def("d_seq", ProtoField.uint32("dmpd.data.seq", "Message sequence", base.DEC))
def("d_ack", ProtoField.uint32("dmpd.data.ack", "Cumulative ack", base.DEC))
def("d_len", ProtoField.uint16("dmpd.data.payload_len", "Payload length", base.DEC))
def("d_payload", ProtoField.bytes("dmpd.data.payload", "Payload"))

local field_list = {}
for _, f in pairs(F) do field_list[#field_list + 1] = f end
dmpd.fields = field_list

local E = {
    truncated = ProtoExpert.new("dmpd.expert.truncated", "Truncated DMPD frame",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_length = ProtoExpert.new("dmpd.expert.bad_length", "Length inconsistent with the kind or record counts",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_version = ProtoExpert.new("dmpd.expert.bad_version", "Unsupported DMPD version",
        expert.group.UNDECODED, expert.severity.WARN),
    bad_kind = ProtoExpert.new("dmpd.expert.bad_kind", "Unknown DMPD message kind",
        expert.group.UNDECODED, expert.severity.WARN),
    bad_field = ProtoExpert.new("dmpd.expert.bad_field", "Field value out of range",
        expert.group.PROTOCOL, expert.severity.WARN),
}
dmpd.experts = { E.truncated, E.bad_length, E.bad_version, E.bad_kind, E.bad_field }

dmpd.prefs.ethertype = Pref.string("EtherType", string.format("0x%04X", DEFAULT_ETHERTYPE),
    "EtherType DMPD runs on (NodeConfig::ethertype): hex (0x88B5) or decimal")

-- helpers ---------------------------------------------------------------

local function u8(tvb, off) return tvb(off, 1):uint() end
local function u16(tvb, off) return tvb(off, 2):uint() end
local function u32(tvb, off) return tvb(off, 4):uint() end

local function expert_at(tree, ex, tvb, off, len, text)
    local avail = tvb:len() - off
    if len <= 0 or avail <= 0 then
        tree:add_proto_expert_info(ex, text)
        return
    end
    if len > avail then len = avail end
    tree:add_tvb_expert_info(ex, tvb(off, len), text)
end

-- Add an enum-valued field; warn when the value is not one of `names`.
local function add_enum(tree, field, tvb, off, len, names, what)
    local item = tree:add(field, tvb(off, len))
    local v = tvb(off, len):uint()
    if names[v] == nil then
        item:add_proto_expert_info(E.bad_field, string.format("Unknown %s %d", what, v))
    end
    return item
end

-- Node-number field: 0xFFFF means "no node".
local function add_node_num(tree, field, tvb, off)
    local item = tree:add(field, tvb(off, 2))
    if u16(tvb, off) == NO_NODE then item:append_text(" (none)") end
    return item
end

local function bp(v) return string.format(" (%.2f %%)", v / 100) end

-- Port record at `off` (PORT_LEN bytes are known to be there).
local function dissect_port(tvb, tree, off)
    local t = tree:add(F.port, tvb(off, PORT_LEN))
    local idx = u8(tvb, off)
    local item = t:add(F.p_idx, tvb(off, 1))
    if idx >= MAX_PORTS then
        item:add_proto_expert_info(E.bad_field, "Port index >= " .. MAX_PORTS)
    end
    add_enum(t, F.p_state, tvb, off + 1, 1, port_state_names, "port state")
    local reach = u8(tvb, off + 2)
    item = t:add(F.p_reach, tvb(off + 2, 1))
    if reach > 1 then item:add_proto_expert_info(E.bad_field, "Reachable must be 0 or 1") end
    t:add(F.p_reserved, tvb(off + 3, 1))
    t:add(F.p_mac, tvb(off + 4, 6))
    t:add(F.p_speed, tvb(off + 10, 4))
    t:add(F.p_rx_pkts, tvb(off + 14, 8))
    t:add(F.p_tx_pkts, tvb(off + 22, 8))
    t:add(F.p_rx_bytes, tvb(off + 30, 8))
    t:add(F.p_tx_bytes, tvb(off + 38, 8))
    t:add(F.p_rate, tvb(off + 46, 8))
    t:add(F.p_util, tvb(off + 54, 2)):append_text(bp(u16(tvb, off + 54)))
    t:add(F.p_drops, tvb(off + 56, 4))
    t:add(F.p_errors, tvb(off + 60, 4))
    t:add(F.p_overflows, tvb(off + 64, 4))
    t:add(F.p_load, tvb(off + 68, 2)):append_text(bp(u16(tvb, off + 68)))
    t:add(F.p_rtt, tvb(off + 70, 4))
    t:add(F.p_reserved2, tvb(off + 74, 2))
    t:append_text(string.format(" %d: %s, %s", idx, port_state_names[u8(tvb, off + 1)] or "?",
        tostring(tvb(off + 4, 6):ether())))
end

local function dissect_pipe(tvb, tree, off)
    local t = tree:add(F.pipe, tvb(off, PIPE_LEN))
    t:add(F.q_id, tvb(off, 2))
    t:add(F.q_priority, tvb(off + 2, 1))
    add_enum(t, F.q_state, tvb, off + 3, 1, pipe_state_names, "pipe state")
    t:add(F.q_threshold, tvb(off + 4, 4))
    t:add(F.q_buffer, tvb(off + 8, 4))
    t:add(F.q_tx, tvb(off + 12, 8))
    t:add(F.q_rx, tvb(off + 20, 8))
    t:add(F.q_drops, tvb(off + 28, 4))
    t:append_text(string.format(" %d: %s", u16(tvb, off), pipe_state_names[u8(tvb, off + 3)] or "?"))
end

-- Length of the node record at `off` from its counts, or nil and a reason
-- ("bad_field" for counts over the limits, "truncated" when the bytes up to
-- `limit` do not hold it).
local function peek_record_len(tvb, off, limit)
    if limit - off < NODE_FIXED_LEN then return nil, "truncated" end
    local np, nq = u8(tvb, off + 42), u8(tvb, off + 43)
    if np > MAX_PORTS or nq > MAX_PIPES then return nil, "bad_field" end
    local len = NODE_FIXED_LEN + np * PORT_LEN + nq * PIPE_LEN
    if limit - off < len then return nil, "truncated" end
    return len
end

-- Node record at `off` (its full length `len` is known to be there).
local function dissect_record(tvb, tree, off, len)
    local t = tree:add(F.node, tvb(off, len))
    local num = u16(tvb, off)
    t:add(F.n_num, tvb(off, 2))
    t:add(F.n_inc, tvb(off + 2, 8))
    t:add(F.n_version, tvb(off + 10, 4))
    t:add(F.n_amend, tvb(off + 14, 2))
    add_enum(t, F.n_state, tvb, off + 16, 1, node_state_names, "node state")
    t:add(F.n_priority, tvb(off + 17, 1))
    t:add(F.n_cores, tvb(off + 18, 2))
    t:add(F.n_cpu, tvb(off + 20, 2)):append_text(bp(u16(tvb, off + 20)))
    t:add(F.n_load1, tvb(off + 22, 2)):append_text(string.format(" (%.2f)", u16(tvb, off + 22) / 100))
    t:add(F.n_load5, tvb(off + 24, 2)):append_text(string.format(" (%.2f)", u16(tvb, off + 24) / 100))
    t:add(F.n_load15, tvb(off + 26, 2)):append_text(string.format(" (%.2f)", u16(tvb, off + 26) / 100))
    t:add(F.n_io, tvb(off + 28, 2)):append_text(bp(u16(tvb, off + 28)))
    t:add(F.n_mem, tvb(off + 30, 8))
    t:add(F.n_mem_util, tvb(off + 38, 2)):append_text(bp(u16(tvb, off + 38)))
    local temp = tvb(off + 40, 2):int()
    t:add(F.n_temp, tvb(off + 40, 2)):append_text(
        temp == -32768 and " (unknown)" or string.format(" (%.2f degC)", temp / 100))
    local np, nq = u8(tvb, off + 42), u8(tvb, off + 43)
    t:add(F.n_nports, tvb(off + 42, 1))
    t:add(F.n_npipes, tvb(off + 43, 1))
    t:append_text(string.format(" %d (%s, %d ports, %d pipes)", num,
        node_state_names[u8(tvb, off + 16)] or "?", np, nq))
    local p = off + NODE_FIXED_LEN
    for _ = 1, np do
        dissect_port(tvb, t, p)
        p = p + PORT_LEN
    end
    for _ = 1, nq do
        dissect_pipe(tvb, t, p)
        p = p + PIPE_LEN
    end
    return num
end

local function flags_warn(item, v, known, what)
    if bit32.band(v, bit32.bnot(known)) ~= 0 then
        item:add_proto_expert_info(E.bad_field, string.format("Unknown %s flag bits 0x%02x", what, v))
    end
end

-- Bodies. Each gets the frame tvb, the body offset and length (both
-- known to be captured) and returns text for the Info column.

local function body_fixed(tvb, tree, off, len, want, kind)
    if len ~= want then
        expert_at(tree, E.bad_length, tvb, off, len,
            string.format("%s body must be %d bytes, has %d", kind, want, len))
        return false
    end
    return true
end

local function dissect_heartbeat(tvb, tree, off, len)
    if not body_fixed(tvb, tree, off, len, 20, "HEARTBEAT") then return "" end
    tree:add(F.hb_round, tvb(off, 8))
    tree:add(F.hb_period, tvb(off + 8, 8))
    tree:add(F.hb_priority, tvb(off + 16, 1))
    -- flags are "0" in the protocol, but HeartbeatRepr::parse does not
    -- check them (nor ANNOUNCE's): shown, never flagged
    tree:add(F.hb_flags, tvb(off + 17, 1))
    tree:add(F.hb_nodes, tvb(off + 18, 2))
    return string.format(" round=%s nodes=%d", tostring(tvb(off, 8):uint64()), u16(tvb, off + 18))
end

local function dissect_response(tvb, tree, off, len)
    if len < 30 then
        expert_at(tree, E.bad_length, tvb, off, len,
            string.format("RESPONSE body shorter than 30 bytes (%d)", len))
        return ""
    end
    tree:add(F.rs_echo, tvb(off, 8))
    tree:add(F.rs_round, tvb(off + 8, 8))
    tree:add(F.rs_port, tvb(off + 16, 1))
    local flags = u8(tvb, off + 17)
    local fi = tree:add(F.rs_flags, tvb(off + 17, 1))
    fi:add(F.rs_flag_rec, tvb(off + 17, 1))
    flags_warn(fi, flags, 0x01, "response")
    add_node_num(tree, F.rs_master, tvb, off + 18)
    tree:add(F.rs_term, tvb(off + 20, 8))
    tree:add(F.rs_priority, tvb(off + 28, 1))
    tree:add(F.rs_reserved, tvb(off + 29, 1))
    local info = string.format(" port=%d round=%s", u8(tvb, off + 16), tostring(tvb(off + 8, 8):uint64()))
    local rest, end_ = off + 30, off + len
    if bit32.band(flags, 0x01) ~= 0 then
        local rlen, why = peek_record_len(tvb, rest, end_)
        if rlen == nil then
            if why == "bad_field" then
                expert_at(tree, E.bad_field, tvb, rest, end_ - rest, "Record port/pipe counts over the limits")
            else
                expert_at(tree, E.bad_length, tvb, rest, end_ - rest, "Node record truncated by the body length")
            end
            return info
        end
        local num = dissect_record(tvb, tree, rest, rlen)
        info = info .. string.format(" record=%d", num)
        if rest + rlen ~= end_ then
            expert_at(tree, E.bad_length, tvb, rest + rlen, end_ - rest - rlen,
                "Bytes after the node record (the record must fill the body exactly)")
        end
    elseif end_ > rest then
        expert_at(tree, E.bad_length, tvb, rest, end_ - rest, "Bytes after the fixed part without the record flag")
    end
    return info
end

local function dissect_table(tvb, tree, off, len)
    if len < 16 then
        expert_at(tree, E.bad_length, tvb, off, len,
            string.format("TABLE body shorter than 16 bytes (%d)", len))
        return ""
    end
    tree:add(F.tb_round, tvb(off, 8))
    local idx, cnt = u16(tvb, off + 8), u16(tvb, off + 10)
    tree:add(F.tb_seg_idx, tvb(off + 8, 2))
    local ci = tree:add(F.tb_seg_count, tvb(off + 10, 2))
    if cnt == 0 or idx >= cnt then
        ci:add_proto_expert_info(E.bad_field, "Segment index must be < segment count (>= 1)")
    end
    local flags = u8(tvb, off + 12)
    local fi = tree:add(F.tb_flags, tvb(off + 12, 1))
    fi:add(F.tb_flag_refresh, tvb(off + 12, 1))
    flags_warn(fi, flags, 0x01, "table")
    tree:add(F.tb_reserved, tvb(off + 13, 1))
    local count = u16(tvb, off + 14)
    tree:add(F.tb_count, tvb(off + 14, 2))
    local p, end_ = off + 16, off + len
    local nums = {}
    for i = 1, count do
        local rlen, why = peek_record_len(tvb, p, end_)
        if rlen == nil then
            if why == "bad_field" then
                expert_at(tree, E.bad_field, tvb, p, end_ - p,
                    string.format("Record %d: port/pipe counts over the limits", i))
            else
                expert_at(tree, E.bad_length, tvb, p, end_ - p,
                    string.format("Record %d of %d does not fit the body", i, count))
            end
            return string.format(" seg=%d/%d records=%d", idx, cnt, count)
        end
        nums[#nums + 1] = tostring(dissect_record(tvb, tree, p, rlen))
        p = p + rlen
    end
    if p < end_ then
        expert_at(tree, E.bad_length, tvb, p, end_ - p, "Bytes after the last record (count too small)")
    end
    return string.format(" seg=%d/%d nodes=[%s]", idx, cnt, table.concat(nums, ","))
end

local function dissect_announce(tvb, tree, off, len)
    if not body_fixed(tvb, tree, off, len, 4, "ANNOUNCE") then return "" end
    tree:add(F.an_priority, tvb(off, 1))
    tree:add(F.an_flags, tvb(off + 1, 1))
    add_node_num(tree, F.an_last, tvb, off + 2)
    return string.format(" priority=%d", u8(tvb, off))
end

local function dissect_leave(tvb, tree, off, len)
    if not body_fixed(tvb, tree, off, len, 4, "LEAVE") then return "" end
    add_enum(tree, F.lv_reason, tvb, off, 1, leave_reason_names, "leave reason")
    tree:add(F.lv_reserved, tvb(off + 1, 3))
    return " reason=" .. (leave_reason_names[u8(tvb, off)] or tostring(u8(tvb, off)))
end

local bodies = {
    [KIND_HEARTBEAT] = dissect_heartbeat,
    [KIND_RESPONSE] = dissect_response,
    [KIND_TABLE] = dissect_table,
    [KIND_ANNOUNCE] = dissect_announce,
    [KIND_LEAVE] = dissect_leave,
}

local function padding(tvb, tree, off)
    if tvb:len() > off then tree:add(F.padding, tvb(off)) end
end

local function dissect_control(tvb, pinfo, tree, kind)
    local cap = tvb:len()
    if cap < HEADER_LEN then
        expert_at(tree, E.truncated, tvb, ETH_LEN, cap - ETH_LEN,
            string.format("Control frame shorter than its %d-byte header (%d)", HEADER_LEN, cap))
        return
    end
    tree:add(F.flags, tvb(16, 1))
    local ki = tree:add(F.key_id, tvb(17, 1))
    if u8(tvb, 17) == 0 then ki:append_text(" (unauthenticated)") end
    tree:add(F.cluster_id, tvb(18, 4))
    add_node_num(tree, F.sender, tvb, 22)
    tree:add(F.incarnation, tvb(24, 8))
    tree:add(F.term, tvb(32, 8))
    tree:add(F.seq, tvb(40, 8))
    tree:add(F.timestamp, tvb(48, 8))
    local blen = u16(tvb, 56)
    local bi = tree:add(F.body_len, tvb(56, 2))
    pinfo.cols.info:append(string.format(" sender=%d term=%s seq=%s", u16(tvb, 22),
        tostring(tvb(32, 8):uint64()), tostring(tvb(40, 8):uint64())))
    if cap < HEADER_LEN + blen + TAG_LEN then
        bi:add_proto_expert_info(E.truncated, string.format(
            "Body (%d) and tag (%d) claimed, only %d bytes follow the header", blen, TAG_LEN, cap - HEADER_LEN))
        if cap > HEADER_LEN then tree:add(F.body, tvb(HEADER_LEN)) end
        return
    end
    if blen > 0 then
        local bt = tree:add(F.body, tvb(HEADER_LEN, blen))
        bt:set_text(string.format("%s body (%d bytes)", kind_names[kind], blen))
        local info = bodies[kind](tvb, bt, HEADER_LEN, blen)
        pinfo.cols.info:append(info)
    else
        bodies[kind](tvb, tree, HEADER_LEN, 0)
    end
    local tag = tree:add(F.tag, tvb(HEADER_LEN + blen, TAG_LEN))
    if u8(tvb, 17) == 0 then tag:append_text(" (key id 0: unauthenticated)") end
    padding(tvb, tree, HEADER_LEN + blen + TAG_LEN)
end

local function dissect_data(tvb, pinfo, tree)
    local cap = tvb:len()
    if cap < DATA_HEADER_LEN then
        expert_at(tree, E.truncated, tvb, ETH_LEN, cap - ETH_LEN,
            string.format("Data frame shorter than its %d-byte header (%d)", DATA_HEADER_LEN, cap))
        return
    end
    local flags = u8(tvb, 16)
    local fi = tree:add(F.d_flags, tvb(16, 1))
    fi:add(F.d_flag_rel, tvb(16, 1))
    fi:add(F.d_flag_ack, tvb(16, 1))
    fi:add(F.d_flag_dup, tvb(16, 1))
    flags_warn(fi, flags, 0x07, "data")
    tree:add(F.d_ptype, tvb(17, 1))
    tree:add(F.cluster_id, tvb(18, 4))
    tree:add(F.d_snode, tvb(22, 2))
    tree:add(F.d_dnode, tvb(24, 2))
    tree:add(F.d_spipe, tvb(26, 2))
    tree:add(F.d_dpipe, tvb(28, 2))
    tree:add(F.d_seq, tvb(30, 4))
    tree:add(F.d_ack, tvb(34, 4))
    local plen = u16(tvb, 38)
    local li = tree:add(F.d_len, tvb(38, 2))
    tree:append_text(string.format(", %d:%d -> %d:%d, ptype %d", u16(tvb, 22), u16(tvb, 26),
        u16(tvb, 24), u16(tvb, 28), u8(tvb, 17)))
    pinfo.cols.info:append(string.format(" %d:%d -> %d:%d seq=%d%s len=%d", u16(tvb, 22), u16(tvb, 26),
        u16(tvb, 24), u16(tvb, 28), u32(tvb, 30),
        bit32.band(flags, 0x02) ~= 0 and string.format(" ack=%d", u32(tvb, 34)) or "", plen))
    if cap < DATA_HEADER_LEN + plen then
        li:add_proto_expert_info(E.truncated, string.format(
            "Payload of %d bytes claimed, only %d follow the header", plen, cap - DATA_HEADER_LEN))
        if cap > DATA_HEADER_LEN then tree:add(F.d_payload, tvb(DATA_HEADER_LEN)) end
        return
    end
    if plen > 0 then tree:add(F.d_payload, tvb(DATA_HEADER_LEN, plen)) end
    padding(tvb, tree, DATA_HEADER_LEN + plen)
end

-- The ethertype table hands over the bytes after the EtherType. All offsets
-- above are absolute (from the first byte of the Ethernet frame), as in the
-- Rust `mod field` blocks and the protocol document; `frame_view` maps them
-- onto the payload tvb: view(off, len) = tvb(off - 14, len), and
-- view:len() = 14 + tvb:len(). Offsets below 14 are never read through it.
local function frame_view(tvb)
    local v = {}
    function v.len(_) return tvb:len() + ETH_LEN end
    setmetatable(v, {
        __call = function(_, off, len)
            if len == nil then return tvb(off - ETH_LEN) end
            return tvb(off - ETH_LEN, len)
        end,
    })
    return v
end

local function dissect_frame(tvb, pinfo, tree)
    local cap = tvb:len()
    if cap < ETH_LEN + 2 then
        expert_at(tree, E.truncated, tvb, ETH_LEN, cap - ETH_LEN, "No version and kind bytes")
        pinfo.cols.info:set("DMPD (truncated)")
        return
    end
    local version, kind = u8(tvb, 14), u8(tvb, 15)
    local vi = tree:add(F.version, tvb(14, 1))
    tree:add(F.kind, tvb(15, 1))
    local name = kind_names[kind] or string.format("Unknown(0x%02x)", kind)
    pinfo.cols.info:set("DMPD " .. name)
    tree:append_text(", " .. name)
    if version ~= VERSION then
        vi:add_proto_expert_info(E.bad_version, string.format("Version %d, this dissector knows %d", version, VERSION))
        if cap > 16 then tree:add(F.body, tvb(16)) end
        return
    end
    if kind == KIND_DATA then
        dissect_data(tvb, pinfo, tree)
    elseif bodies[kind] ~= nil then
        dissect_control(tvb, pinfo, tree, kind)
    else
        tree:add_proto_expert_info(E.bad_kind, string.format("Unknown kind 0x%02x", kind))
        if cap > 16 then tree:add(F.body, tvb(16)) end
    end
end

function dmpd.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol:set("DMPD")
    local n = tvb:len()
    local t
    if n > 0 then t = tree:add(dmpd, tvb()) else t = tree:add(dmpd) end
    dissect_frame(frame_view(tvb), pinfo, t)
    return n
end

-- Registration on the EtherType of the preference.
local registered = nil

local function parse_ethertype(s)
    local v = tonumber(s)
    if v == nil or v ~= math.floor(v) or v < 0x0600 or v > 0xFFFF then return nil end
    return v
end

local function register()
    local et = parse_ethertype(dmpd.prefs.ethertype) or DEFAULT_ETHERTYPE
    if et == registered then return end
    local tbl = DissectorTable.get("ethertype")
    if registered ~= nil then tbl:remove(registered, dmpd) end
    tbl:add(et, dmpd)
    registered = et
end

function dmpd.prefs_changed()
    register()
end

register()
