#!/usr/bin/env bash
# User-space instructions per request of halo, counted by callgrind: unlike
# wall-clock CPU time on this noisy 2-core VM, the count repeats to within a
# fraction of a percent, so it shows what a change to the request path costs.
#
#   benches/callgrind/run.sh            # pipelined (16 per write) and plain
#   MODE=plain benches/callgrind/run.sh
#
# Needs valgrind and python3. Serves `return 200 "hello\n"` on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }
cargo build --release --quiet
bin=$PWD/target/release/halo
tmp=$(mktemp -d)
trap 'kill "$(cat "$tmp/logs/halo.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/conf" "$tmp/logs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/conf/nginx.conf" <<CONF
master_process off; daemon off; error_log logs/error.log warn; pid logs/halo.pid;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; location / { return 200 "hello\n"; } } }
CONF

measure() {   # name depth batches
    rm -f "$tmp/logs/halo.pid" "$tmp/cg.out"
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$bin" -p "$tmp" >/dev/null 2>&1 &
    for _ in $(seq 100); do [ -f "$tmp/logs/halo.pid" ] && break; sleep 0.2; done
    sleep 1
    local n
    n=$(timeout 600 python3 benches/callgrind/client.py "$port" "$3" "$2" 4)
    kill "$(cat "$tmp/logs/halo.pid")"
    wait 2>/dev/null || true
    local ir
    ir=$(callgrind_annotate "$tmp/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",","",$1); print $1; done=1}')
    [ -n "${KEEP_CG:-}" ] && cp "$tmp/cg.out" "$KEEP_CG.$1"
    printf '%-10s %8d requests  %6d instructions/request (start-up included)\n' "$1" "$n" $((ir / n))
}

case "${MODE:-both}" in
    pipelined) measure pipelined 16 2000 ;;
    plain) measure plain 1 8000 ;;
    *) measure pipelined 16 2000; measure plain 1 8000 ;;
esac
