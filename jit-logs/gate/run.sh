#!/usr/bin/env bash
# The JIT gate: serve jit-logs/gate/workload.lua (every non-yielding API of
# lualib in hot loops, in each phase) with lua_jit_log on, then fail when a
# trace aborted or stitched inside lualib/: halo's own API must never fall
# back to the interpreter.
#
#   jit-logs/gate/run.sh [path/to/halo]     (default: target/debug/halo)
set -euo pipefail
cd "$(dirname "$0")/../.."
halo=$(realpath "${1:-target/debug/halo}")
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/conf" "$work/logs"
cp jit-logs/gate/workload.lua "$work/"

# A free port: try a few random ones until halo starts listening.
for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    sed "s/{{PORT}}/$port/" jit-logs/gate/nginx.conf > "$work/conf/nginx.conf"
    rm -f "$work/logs/error.log"   # a failed attempt's bind error is not the workload's
    "$halo" -p "$work" & pid=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break 2
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done

kill -0 "$pid" 2>/dev/null || { echo "gate: halo did not start"; cat "$work/logs/error.log"; exit 1; }

request() {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'POST /gate?a=1 HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nx=1&y=2' >&3
    head -c 12 <&3 | grep -q "200" || { echo "gate: the workload failed:"; cat "$work/logs/error.log"; exit 1; }
    exec 3<&-
}
# Several requests: traces started by one request complete in the next.
proxied() {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /proxied HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    head -c 12 <&3 | grep -q "200" || { echo "gate: the proxied request failed:"; cat "$work/logs/error.log"; exit 1; }
    exec 3<&-
}
for _ in $(seq 5); do request; proxied; done

kill -QUIT "$pid"
wait "$pid" || true
if grep -E '\[(error|alert|crit|emerg)\]' "$work/logs/error.log"; then
    echo "gate: errors in the error log"
    exit 1
fi
# GATE_KEEP=DIR keeps the logs for a closer look.
[ -n "${GATE_KEEP:-}" ] && cp -r "$work/jit-logs" "$GATE_KEEP"
# The API's modules (not halo.runner: its loop yields between handlers by
# design, so a trace that happens to start there always stitches).
"$halo" jit report --fail-on abort,stitch --paths 'lualib/resty/**' --paths 'lualib/ngx/**' \
    --paths 'lualib/table/**' --paths 'lualib/halo/lrucache.lua' "$work"/jit-logs/*.jsonl
