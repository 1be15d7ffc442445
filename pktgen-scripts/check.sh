#!/usr/bin/env bash
# check.sh -- CI check of the Pktgen scripts (Pktgen itself is not needed).
#
#   bash pktgen-scripts/check.sh
#
# 1. `luac -p` (syntax only) on every .lua file under pktgen-scripts/;
# 2. `lua test/run.lua`: every script against the recording stand-in
#    `pktgen` module (test/pktgen_stub.lua), for every node profile.
# Prints each check and ends with exactly "N passed, M failed"; exits
# non-zero when anything failed or when Lua is missing.
# Needs Lua 5.3 or 5.4 (Debian: apt-get install lua5.4). Set
# DMPD_CHECK_INSTALL=1 to let it apt-get install lua5.4 when missing.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 2

find_tool() {
    local t
    for t in "$@"; do
        if command -v "$t" >/dev/null 2>&1; then command -v "$t"; return 0; fi
    done
    return 1
}

LUA="$(find_tool lua5.4 lua5.3 lua)" || LUA=""
LUAC="$(find_tool luac5.4 luac5.3 luac)" || LUAC=""
if [ -z "$LUA" ] && [ "${DMPD_CHECK_INSTALL:-0}" = "1" ] && [ "$(id -u)" = "0" ]; then
    echo "check.sh: lua missing, installing lua5.4" >&2
    (apt-get install -y lua5.4 >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y lua5.4 >/dev/null 2>&1; }) || true
    LUA="$(find_tool lua5.4 lua5.3 lua)" || LUA=""
    LUAC="$(find_tool luac5.4 luac5.3 luac)" || LUAC=""
fi
if [ -z "$LUA" ]; then
    echo "check.sh: no lua5.4/lua5.3/lua found (apt-get install lua5.4)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0

# 1. syntax
while IFS= read -r f; do
    rel="${f#./}"
    if [ -n "$LUAC" ]; then
        out="$("$LUAC" -p "$f" 2>&1)"; rc=$?
    else
        # no luac: compile without running
        out="$("$LUA" -e "assert(loadfile(arg[1]))" "$f" 2>&1)"; rc=$?
    fi
    if [ $rc -eq 0 ]; then
        echo "ok   syntax $rel"
        passed=$((passed + 1))
    else
        echo "FAIL syntax $rel: $out"
        failed=$((failed + 1))
    fi
done < <(find . -name '*.lua' -type f | sort)

# 2. behaviour against the stub
out="$("$LUA" test/run.lua 2>&1)"; rc=$?
summary="$(printf '%s\n' "$out" | tail -n 1)"
printf '%s\n' "$out" | sed '$d'
if [[ "$summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    if [ $rc -ne 0 ] && [ "${BASH_REMATCH[2]}" = "0" ]; then
        echo "FAIL test/run.lua exited $rc"
        failed=$((failed + 1))
    fi
else
    echo "$summary"
    echo "FAIL test/run.lua did not finish (exit $rc)"
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
