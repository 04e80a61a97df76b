#!/usr/bin/env bash
# Load comparison of halo against Debian's nginx on one "hello" location: `return 200`
# (ENDPOINT=return, the default) or a Lua handler saying the same (ENDPOINT=hello:
# content_by_lua_block { ngx.say("hello") }; nginx loads Debian's lua-nginx-module), or a
# Lua handler that reads "hello" from Redis with one GET over a pooled cosocket
# (ENDPOINT=redis; run.sh starts redis-server, from the redis-server package, on a free port).
#
# Both servers get the same config (nginx.conf.in), run as one foreground process pinned
# to SERVER_CPU, and are loaded by one wrk thread pinned to WRK_CPU, so the two never
# compete for a core and the server's CPU time is the utime+stime of a single pid.
# Two scenarios: "plain" (one request in flight per connection) and "pipelined"
# (PIPELINE requests per write, see pipeline.lua). Runs alternate between the servers
# (ABBA order per round) so slow drift of the machine affects both; medians are reported.
#
# Usage: benches/load/run.sh            (from anywhere)
# Knobs (environment):
#   DURATION=10   seconds per wrk run        RUNS=3      runs per (server, scenario)
#   CONNS=50      wrk connections            PIPELINE=16 requests per write (pipelined)
#   WARMUP=2      seconds of unmeasured load per server before round 1 (0: none)
#   SERVER_CPU=0  WRK_CPU=1                  CPUs to pin to (must differ)
#   HALO_BIN=...  use this binary and skip the cargo build
#   NGINX_BIN=/usr/sbin/nginx                RESULTS=benches/load/results.md
#   ENDPOINT=return|hello|var|headers|shdict|regex|redis|proxy|balancer
#                                            (each but return writes results-ENDPOINT.md)
#   LUA_API_MODE=cfunction                   halo's handlers on the lua_CFunction twin of
#                                            the API (results-ENDPOINT-cfunction.md)
#   KEEP_TMP=1    keep the temp prefixes (configs, logs, raw wrk output) after exit
# Only 127.0.0.1 is ever targeted; every wrk run is wrapped in `timeout`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-50}
PIPELINE=${PIPELINE:-16}
WARMUP=${WARMUP:-2}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
ENDPOINT=${ENDPOINT:-return}
case "$ENDPOINT" in
    return) CONTENT='return 200 "hello\\n";'; RESULTS=${RESULTS:-$HERE/results.md} ;;
    hello) CONTENT='content_by_lua_block { ngx.say("hello") }'; RESULTS=${RESULTS:-$HERE/results-hello.md} ;;
    # The API the twin covers, a few calls each; every answer is "hello".
    var) CONTENT='content_by_lua_block { local u, m = ngx.var.uri, ngx.var.request_method ngx.say(#u > 0 and m == "GET" and "hello" or "no") }'
         RESULTS=${RESULTS:-$HERE/results-var.md} ;;
    headers) CONTENT='content_by_lua_block { local h = ngx.req.get_headers() ngx.header["X-Host"] = h.host ngx.say("hello") }'
             RESULTS=${RESULTS:-$HERE/results-headers.md} ;;
    shdict) HTTP_EXTRA='lua_shared_dict d 1m;'
            CONTENT='content_by_lua_block { local d = ngx.shared.d d:set("k", "hello") d:incr("n", 1, 0) ngx.say(d:get("k")) }'
            RESULTS=${RESULTS:-$HERE/results-shdict.md} ;;
    regex) CONTENT='content_by_lua_block { local m = ngx.re.match("hello world", "^([a-z]+) ", "jo") ngx.say(m[1]) }'
           RESULTS=${RESULTS:-$HERE/results-regex.md} ;;
    # One GET per request; the reply is "$5\r\nhello\r\n". (sed sees \\ as one backslash.)
    redis) CONTENT='content_by_lua_block { local s = ngx.socket.tcp() local ok, err = s:connect("127.0.0.1", @REDIS_PORT@) if not ok then ngx.status = 500 ngx.say(err) return end s:send("GET k\\r\\n") s:receive() local v = s:receive(7) s:setkeepalive(0, 64) ngx.say(v:sub(1, 5)) }'
           RESULTS=${RESULTS:-$HERE/results-redis.md} ;;
    # proxy_pass to an upstream (Debian's nginx answering `return 200`, started by run.sh
    # beside wrk), kept-alive connections on both servers.
    proxy) HTTP_EXTRA='upstream up { server 127.0.0.1:@UP_PORT@; keepalive 32; }'
           CONTENT='proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";'
           RESULTS=${RESULTS:-$HERE/results-proxy.md} ;;
    # The same, the peer chosen by balancer_by_lua (as Kong and APISIX do) over the
    # upstream's keepalive pool.
    balancer) HTTP_EXTRA='upstream up { server 0.0.0.1; balancer_by_lua_block { require("ngx.balancer").set_current_peer("127.0.0.1", @UP_PORT@) } keepalive 32; }'
           CONTENT='proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";'
           RESULTS=${RESULTS:-$HERE/results-balancer.md} ;;
    *) echo "ENDPOINT must be return, hello, var, headers, shdict, regex, redis, proxy or balancer" >&2; exit 2 ;;
esac
LUA_API_MODE=${LUA_API_MODE:-ffi}
case "$LUA_API_MODE" in
    ffi) ;;
    cfunction) [[ $RESULTS == *.md ]] && RESULTS=${RESULTS%.md}-cfunction.md ;;
    *) echo "LUA_API_MODE must be ffi or cfunction" >&2; exit 2 ;;
esac
# nginx needs Debian's Lua module for the Lua endpoint (halo has it built in).
NGINX_MODULES=${NGINX_MODULES:-/usr/lib/nginx/modules}
KEEP_TMP=${KEEP_TMP:-0}
export PIPELINE # read by pipeline.lua inside wrk

SERVERS=(halo nginx)
SCENARIOS=(plain pipelined)

die() { echo "run.sh: error: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

for knob in DURATION RUNS CONNS PIPELINE WARMUP SERVER_CPU WRK_CPU; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a non-negative integer (got '${!knob}')"
done
((DURATION > 0 && RUNS > 0 && CONNS > 0 && PIPELINE > 0)) || die "DURATION, RUNS, CONNS, PIPELINE must be > 0"
((SERVER_CPU != WRK_CPU)) || die "SERVER_CPU and WRK_CPU must differ, or wrk steals the server's CPU"
ncpu=$(getconf _NPROCESSORS_ONLN)
((SERVER_CPU < ncpu && WRK_CPU < ncpu)) || die "need CPUs $SERVER_CPU and $WRK_CPU, this machine has $ncpu"

# --- prerequisites ------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[[ -x $NGINX_BIN ]] || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
command -v timeout >/dev/null || missing+=(coreutils)
if ((${#missing[@]})); then
    echo "run.sh: missing tools; install them with:" >&2
    echo "    apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi

if [[ -z ${HALO_BIN:-} ]]; then
    # cargo is incremental: this is a no-op when the release binary is up to date.
    log "building halo (release)"
    (cd "$ROOT" && cargo build --release --bin halo) >&2 || die "cargo build --release failed"
    HALO_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/halo
fi
[[ -x $HALO_BIN ]] || die "halo binary not found at $HALO_BIN"

CLK_TCK=$(getconf CLK_TCK) # /proc/*/stat times are in these ticks

TMP=$(mktemp -d /tmp/halo-load.XXXXXX)
declare -A PID PORT PREFIX BIN RESP_BYTES
BIN[halo]=$HALO_BIN
BIN[nginx]=$NGINX_BIN
FAILED=0 # set when any run looked wrong: keeps the temp dir for inspection

REDIS_PID=""
cleanup() {
    local name pid i
    [[ -n $REDIS_PID ]] && kill -TERM "$REDIS_PID" 2>/dev/null
    [[ -n ${UP_PID:-} ]] && kill -TERM "$UP_PID" 2>/dev/null
    for name in "${!PID[@]}"; do
        pid=${PID[$name]}
        kill -TERM "$pid" 2>/dev/null || continue
        # Give a graceful exit 5 s, then make sure nothing is left behind.
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ $KEEP_TMP == 1 || $FAILED == 1 ]]; then
        echo "run.sh: temp prefixes, logs and raw wrk output kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# True when something accepts connections on 127.0.0.1:$1.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# A port nothing listens on, below the ephemeral range so wrk's client ports cannot collide.
free_port() {
    local p i
    for i in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        [[ " ${PORT[*]} " == *" $p "* ]] && continue
        port_open "$p" || { echo "$p"; return; }
    done
    die "no free port found"
}

# Server CPU time in ticks: utime+stime (fields 14 and 15) of /proc/PID/stat, which cover
# all threads of the process, io_uring worker threads included. The comm field may contain
# spaces, so fields are counted after its closing parenthesis (field 3 = f[0]).
cpu_ticks() {
    local stat f
    stat=$(<"/proc/$1/stat") || return 1
    read -r -a f <<<"${stat##*) }"
    [[ ${f[0]} != [ZX] ]] || return 1 # a crashed child stays a zombie until reaped
    echo $((f[11] + f[12]))
}

# "busy steal" ticks of the server's CPU. busy (all but idle, iowait and steal) is a
# cross-check that also shows whether anything else ran on that core; steal is time the
# hypervisor gave this virtual CPU to other guests: a noise indicator on shared hosts.
cpu_busy_ticks() {
    local _ user nice sys idle iowait irq softirq steal
    read -r _ user nice sys idle iowait irq softirq steal _ < <(grep "^cpu$SERVER_CPU " /proc/stat)
    echo "$((user + nice + sys + irq + softirq)) $steal"
}

show_logs() { # name: the last lines of a server's logs, for failure reports
    local f
    for f in "${PREFIX[$1]}"/logs/error.log "${PREFIX[$1]}"/logs/stdout.log; do
        [[ -s $f ]] || continue
        echo "--- $1: ${f#"$TMP"/} (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

start_server() {
    local name=$1 prefix port pid i extra=()
    prefix=$TMP/$name
    port=$(free_port)
    mkdir -p "$prefix/conf" "$prefix/logs"
    local modules="" http=${HTTP_EXTRA:-}
    if [[ $name == nginx && "$CONTENT$http" == *_by_lua* ]]; then
        modules="load_module $NGINX_MODULES/ndk_http_module.so; load_module $NGINX_MODULES/ngx_http_lua_module.so;"
    fi
    # halo only: nginx has no such directive (only cfunction is written, the default is ffi).
    [[ $name == halo && $LUA_API_MODE == cfunction ]] && http="$http lua_api_mode cfunction;"
    sed -e "s/@PORT@/$port/" -e "s|@MODULES@|$modules|" -e "s|@CONTENT@|$CONTENT|" -e "s|@HTTP@|$http|" \
        -e "s/@REDIS_PORT@/${REDIS_PORT:-0}/" -e "s/@UP_PORT@/${UP_PORT:-0}/" \
        "$HERE/nginx.conf.in" >"$prefix/conf/nginx.conf"
    # Debian's nginx opens its compiled-in /var/log/nginx/error.log before reading the
    # config unless given an early error log: keep it inside the prefix.
    [[ $name == nginx ]] && extra=(-e logs/error.log)
    # taskset execs the server, so $! is the server's own pid.
    taskset -c "$SERVER_CPU" "${BIN[$name]}" -p "$prefix" -c conf/nginx.conf "${extra[@]}" \
        </dev/null >"$prefix/logs/stdout.log" 2>&1 &
    pid=$!
    PID[$name]=$pid PORT[$name]=$port PREFIX[$name]=$prefix
    for i in $(seq 100); do # up to ~10 s to start listening
        cpu_ticks "$pid" >/dev/null 2>&1 || { FAILED=1; show_logs "$name"; die "$name exited during start-up"; }
        port_open "$port" && break
        sleep 0.1
    done
    port_open "$port" || { FAILED=1; show_logs "$name"; die "$name did not listen on 127.0.0.1:$port"; }

    # Smoke test with the same request line and Host header as wrk; the keep-alive response
    # is read until `timeout` ends the read, so its exact size is known (used to check that
    # wrk's byte count matches its response count).
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port
        printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n\r\n' >&3
        cat <&3" >"$prefix/logs/smoke.txt" 2>/dev/null || true
    RESP_BYTES[$name]=$(wc -c <"$prefix/logs/smoke.txt")
    if ! head -n1 "$prefix/logs/smoke.txt" | grep -q '^HTTP/1.1 200' ||
        ! grep -q '^hello$' "$prefix/logs/smoke.txt"; then # (nginx's Lua answer is chunked)
        FAILED=1
        echo "--- $name smoke response:" >&2; cat -A "$prefix/logs/smoke.txt" >&2
        die "$name did not answer 200 \"hello\\n\""
    fi
    # Pipelining check: one write of PIPELINE requests must get exactly PIPELINE responses,
    # so that wrk's per-response count means the same thing for both servers.
    local got
    for i in $(seq "$PIPELINE"); do printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n' "$port"; done \
        >"$prefix/logs/batch.req"
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port
        cat '$prefix/logs/batch.req' >&3
        cat <&3" >"$prefix/logs/batch.txt" 2>/dev/null || true
    got=$(grep -c '^HTTP/1.1 200' "$prefix/logs/batch.txt" || true)
    if ((got != PIPELINE)) || (($(wc -c <"$prefix/logs/batch.txt") != PIPELINE * RESP_BYTES[$name])); then
        FAILED=1
        die "$name answered $got of $PIPELINE pipelined requests ($(wc -c <"$prefix/logs/batch.txt") bytes)"
    fi
    # Children or extra threads would escape (or distort) the single-pid CPU accounting.
    local kids threads
    kids=$(grep -l "^PPid:[[:space:]]*$pid\$" /proc/[0-9]*/status 2>/dev/null | wc -l || true)
    threads=$(awk '/^Threads:/{print $2}' "/proc/$pid/status")
    log "$name: pid $pid on 127.0.0.1:$port, $threads thread(s), $kids child process(es)," \
        "response $((RESP_BYTES[$name])) bytes"
    ((kids == 0)) || echo "run.sh: warning: $name has child processes; their CPU is not counted" >&2
}

# Parses wrk output into: requests rps p99_us bytes_read socket_errors non_2xx_3xx
parse_wrk() {
    awk '
    function num_unit(v, scale,   n, u) { n = v + 0; u = v; sub(/^[0-9.]+/, "", u); return n * scale[u] }
    BEGIN {
        t["us"] = 1; t["ms"] = 1e3; t["s"] = 1e6; t["m"] = 6e7; t["h"] = 3.6e9
        b["B"] = 1; b["KB"] = 1024; b["MB"] = 1024^2; b["GB"] = 1024^3; b["TB"] = 1024^4
        req = rps = p99 = bytes = "NA"; errs = non2xx = 0
    }
    / requests in /      { req = $1; bytes = num_unit($5, b) }
    /^[ \t]+99%/         { p99 = num_unit($2, t) }
    /Socket errors:/     { errs = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx/     { non2xx = $NF }
    /^Requests\/sec:/    { rps = $2 }
    END { printf "%s %s %s %.0f %d %d\n", req, rps, p99, bytes, errs, non2xx }' "$1"
}

RUNS_TSV=$TMP/runs.tsv
printf 'server\tscenario\tround\trequests\trps\tp99_us\tbytes\tsock_errs\tnon2xx\tcpu_ticks\tcpu0_ticks\telapsed_s\tstatus\twrk_cpu_s\tcpu0_steal_ticks\n' >"$RUNS_TSV"

# One wrk run against one server; appends a row to runs.tsv.
run_one() {
    local name=$1 scenario=$2 round=$3 out args c0 c1 b0 b1 s0 s1 n0 n1 rc=0 status=ok
    local req rps p99 bytes errs non2xx wrk_cpu
    out=$TMP/wrk-$name-$scenario-$round.txt
    args=(-t1 "-c$CONNS" "-d${DURATION}s" --latency)
    [[ $scenario == pipelined ]] && args+=(-s "$HERE/pipeline.lua")

    c0=$(cpu_ticks "${PID[$name]}") || { FAILED=1; show_logs "$name"; die "$name is gone before $scenario run $round"; }
    read -r b0 s0 < <(cpu_busy_ticks); n0=$(date +%s%N)
    # In a subshell so that `times` reports wrk's CPU alone (children reaped by it): whether
    # the client, not the server, was the bottleneck.
    (
        timeout $((DURATION + 30)) taskset -c "$WRK_CPU" wrk "${args[@]}" "http://127.0.0.1:${PORT[$name]}/" \
            >"$out" 2>&1 || rc=$?
        times >"$out.times"
        exit "$rc"
    ) || rc=$?
    n1=$(date +%s%N); read -r b1 s1 < <(cpu_busy_ticks)
    c1=$(cpu_ticks "${PID[$name]}") || {
        FAILED=1; cat "$out" >&2; show_logs "$name"; die "$name died during $scenario run $round"
    }

    read -r req rps p99 bytes errs non2xx < <(parse_wrk "$out")
    # wrk's percentiles are wrong with pipelining (see pipeline.lua): do not report them.
    [[ $scenario == pipelined ]] && p99=NA
    wrk_cpu=$(awk 'function sec(v, a) { split(v, a, /[ms]/); return a[1] * 60 + a[2] }
        NR == 2 { printf "%.3f", sec($1) + sec($2) }' "$out.times")
    ((rc == 0)) || status="wrk-exit-$rc"
    [[ $req == NA || $req == 0 ]] && status="no-requests"
    ((errs == 0)) || status="socket-errors"
    ((non2xx == 0)) || status="non-2xx"
    if [[ $status == ok ]]; then
        # wrk counts responses; their byte total must match N x the smoke-tested response
        # size (within wrk's 2-decimal unit rounding), else the count is not to be trusted.
        awk -v b="$bytes" -v n="$req" -v r="${RESP_BYTES[$name]}" \
            'BEGIN { d = b / n / r - 1; exit !(d < 0.02 && d > -0.02) }' || status="byte-mismatch"
    fi
    if [[ $status != ok ]]; then
        FAILED=1
        echo "run.sh: $name $scenario run $round: $status" >&2
        sed 's/^/    /' "$out" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$scenario" "$round" \
        "$req" "$rps" "$p99" "$bytes" "$errs" "$non2xx" $((c1 - c0)) $((b1 - b0)) \
        "$(awk -v a="$n0" -v b="$n1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" "$status" "$wrk_cpu" $((s1 - s0)) >>"$RUNS_TSV"
    log "$(printf '%-5s %-9s run %s: %9s req/s  p99 %8s us  server CPU %5.1f%%  [%s]' \
        "$name" "$scenario" "$round" "$rps" "$p99" \
        "$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v d="$DURATION" 'BEGIN { print t / hz / d * 100 }')" "$status")"
}

# --- run ----------------------------------------------------------------------------------
est=$(((WARMUP * 2) + RUNS * ${#SERVERS[@]} * ${#SCENARIOS[@]} * (DURATION + 1)))
log "halo: $HALO_BIN"
log "nginx: $NGINX_BIN ($("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'))"
log "$RUNS x ${DURATION}s per server and scenario, $CONNS connections, pipeline $PIPELINE;" \
    "server on CPU $SERVER_CPU, wrk on CPU $WRK_CPU; about ${est}s"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

if [[ $ENDPOINT == proxy || $ENDPOINT == balancer ]]; then
    UP_PORT=$(free_port)
    mkdir -p "$TMP/up/conf" "$TMP/up/logs"
    cat >"$TMP/up/conf/nginx.conf" <<UPEOF
master_process off; daemon off; worker_processes 1; error_log logs/error.log warn; pid logs/nginx.pid;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
    server { listen 127.0.0.1:$UP_PORT; location / { return 200 "hello\n"; } } }
UPEOF
    # The upstream runs beside wrk, off the measured server's core.
    taskset -c "$WRK_CPU" "$NGINX_BIN" -p "$TMP/up" -c conf/nginx.conf -e logs/error.log </dev/null >"$TMP/up/logs/stdout.log" 2>&1 &
    UP_PID=$!
    for i in $(seq 50); do port_open "$UP_PORT" && break; sleep 0.1; done
    port_open "$UP_PORT" || die "the upstream nginx did not start (see $TMP/up/logs)"
fi
if [[ $ENDPOINT == redis ]]; then
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install -y redis-server)"
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    for i in $(seq 50); do port_open "$REDIS_PORT" && break; sleep 0.1; done
    port_open "$REDIS_PORT" || die "redis-server did not start (see $TMP/redis.log)"
    printf 'SET k hello\r\nQUIT\r\n' >/dev/tcp/127.0.0.1/"$REDIS_PORT"
    # wrk and the server share the two cores; Redis runs beside wrk.
    taskset -pc "$WRK_CPU" "$REDIS_PID" >/dev/null
fi
for name in "${SERVERS[@]}"; do start_server "$name"; done

if ((WARMUP > 0)); then
    # Fault in memory and reach steady state before anything is measured.
    for name in "${SERVERS[@]}"; do
        timeout $((WARMUP + 30)) taskset -c "$WRK_CPU" wrk -t1 "-c$CONNS" "-d${WARMUP}s" \
            "http://127.0.0.1:${PORT[$name]}/" >/dev/null 2>&1 || true
    done
fi

for round in $(seq "$RUNS"); do
    # ABBA: halo first in odd rounds, nginx first in even ones, so neither always runs
    # on a "warmer" or "cooler" machine.
    if ((round % 2)); then order=(halo nginx); else order=(nginx halo); fi
    for scenario in "${SCENARIOS[@]}"; do
        for name in "${order[@]}"; do run_one "$name" "$scenario" "$round"; done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
# io_uring may add kernel worker threads under load; they belong to the process, so their
# CPU is in its utime+stime, but say how many there were.
THREADS=""
for name in "${SERVERS[@]}"; do
    THREADS+="$name $(awk '/^Threads:/{print $2}' "/proc/${PID[$name]}/status"), "
done
THREADS=${THREADS%, }
log "threads after the runs: $THREADS"

# --- report -------------------------------------------------------------------------------
# Medians per (server, scenario) over the runs; derived per-run values first, then medians,
# so e.g. CPU/req is the median of per-run CPU/req.
SUMMARY=$TMP/summary.tsv
awk -F'\t' -v hz="$CLK_TCK" -v dur="$DURATION" '
    function median(key,   n, i, j, tmp, a) {
        if (!(key in vals)) return "NA"
        n = split(vals[key], a, " "); for (i = 1; i <= n; i++) a[i] += 0
        for (i = 2; i <= n; i++) { tmp = a[i]; for (j = i - 1; j >= 1 && a[j] > tmp; j--) a[j + 1] = a[j]; a[j + 1] = tmp }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(k, v) { vals[k] = (k in vals) ? vals[k] " " v : v }
    NR == 1 || $4 == "NA" || $4 == 0 { next }
    {
        k = $1 SUBSEP $2; keys[k] = 1; n[k]++; if ($13 != "ok") bad[k]++
        add(k SUBSEP "rps", $5)
        if ($6 != "NA") add(k SUBSEP "p99", $6)
        add(k SUBSEP "cpu", $10 / hz * 1e6 / $4)
        add(k SUBSEP "busy", $11 / hz * 1e6 / $4)
        add(k SUBSEP "util", $10 / hz / $12 * 100)
        add(k SUBSEP "bpr", $7 / $4)
        add(k SUBSEP "wrk", $14 / $12 * 100)
        add(k SUBSEP "steal", $15 / hz / $12 * 100)
    }
    END {
        for (k in keys) {
            split(k, p, SUBSEP)
            printf "%s\t%s\t%.0f\t%s\t%.3f\t%.3f\t%.1f\t%.1f\t%d\t%d\t%.1f\t%.1f\n", p[1], p[2],
                median(k SUBSEP "rps"), median(k SUBSEP "p99"), median(k SUBSEP "cpu"),
                median(k SUBSEP "busy"), median(k SUBSEP "util"), median(k SUBSEP "bpr"), n[k], bad[k],
                median(k SUBSEP "wrk"), median(k SUBSEP "steal")
        }
    }' "$RUNS_TSV" | sort >"$SUMMARY"

# get SERVER SCENARIO COLUMN (3 rps, 4 p99_us, 5 cpu_us_per_req, 6 busy_us_per_req,
# 7 util%, 8 bytes/resp, 9 runs, 10 bad runs, 11 wrk CPU%, 12 CPU steal %)
get() { awk -F'\t' -v s="$1" -v c="$2" -v i="$3" '$1 == s && $2 == c { print $i; f = 1 } END { if (!f) print "NA" }' "$SUMMARY"; }
ms() { awk -v u="$1" 'BEGIN { if (u == "NA") print "n/a"; else printf "%.2f ms", u / 1000 }'; }
# Mean time one connection waits per write (request or batch), from Little's law for a closed
# loop: connections / (writes per second). Exact for the mean, needs no latency histogram.
cycle() { awk -v r="$1" -v c="$CONNS" -v d="$2" 'BEGIN { if (r == "NA" || r == 0) print "NA"; else printf "%.2f ms", c * d / r * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b == 0) print "NA"; else printf "%.2f", a / b }'; }

main_rows=() detail_rows=()
for sc in "${SCENARIOS[@]}"; do
    label=$sc depth=1; [[ $sc == pipelined ]] && label="pipelined x$PIPELINE" depth=$PIPELINE
    main_rows+=("$label|$(get halo "$sc" 3)|$(get nginx "$sc" 3)|$(ms "$(get halo "$sc" 4)")|$(ms "$(get nginx "$sc" 4)")|$(get halo "$sc" 5)|$(get nginx "$sc" 5)|$(ratio "$(get halo "$sc" 5)" "$(get nginx "$sc" 5)")")
    for name in "${SERVERS[@]}"; do
        detail_rows+=("$label|$name|$(get "$name" "$sc" 7)|$(get "$name" "$sc" 11)|$(cycle "$(get "$name" "$sc" 3)" "$depth")|$(get "$name" "$sc" 6)|$(get "$name" "$sc" 12)|$(get "$name" "$sc" 8)|$(get "$name" "$sc" 9)|$(get "$name" "$sc" 10)")
    done
done
MAIN_HDR="scenario|halo req/s|nginx req/s|halo p99|nginx p99|halo CPU µs/req|nginx CPU µs/req|ratio halo/nginx (CPU/req)"
DETAIL_HDR="scenario|server|server CPU %|wrk CPU %|mean round trip|CPU$SERVER_CPU busy µs/req|CPU$SERVER_CPU steal %|bytes/response|runs|bad runs"

# Plain-text table with columns sized to their widest cell. Widths are counted in characters
# by not counting UTF-8 continuation bytes (so "µ" is one column), which works in any awk
# under LC_ALL=C; cells are padded by hand for the same reason.
print_table() {
    LC_ALL=C awk -F'|' '
        function dw(s) { gsub(/[\200-\277]/, "", s); return length(s) }
        function pad(n,   s) { s = ""; while (n-- > 0) s = s " "; return s }
        { rows[NR] = $0; for (i = 1; i <= NF; i++) if (dw($i) > w[i]) w[i] = dw($i); if (NF > nf) nf = NF }
        END {
            for (r = 1; r <= NR; r++) {
                n = split(rows[r], c, "|"); line = ""
                for (i = 1; i <= n; i++) {
                    p = pad(w[i] - dw(c[i]))
                    line = line (i == 1 ? c[i] p : p c[i]) (i < n ? "  " : "")
                }
                print line
                if (r == 1) {
                    sep = ""; for (i = 1; i <= nf; i++) { s = pad(w[i]); gsub(/ /, "-", s); sep = sep s (i < nf ? "  " : "") }
                    print sep
                }
            }
        }'
}
md_table() { # '|'-separated lines in, Markdown out; the first line is the header
    awk -F'|' '{ line = "|"; for (i = 1; i <= NF; i++) line = line " " $i " |"; print line }
        NR == 1 { s = "|"; for (i = 1; i <= NF; i++) s = s " --- |"; print s }'
}

echo
{ echo "$MAIN_HDR"; printf '%s\n' "${main_rows[@]}"; } | print_table
echo
{ echo "$DETAIL_HDR"; printf '%s\n' "${detail_rows[@]}"; } | print_table

halo_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] && halo_rev="$halo_rev (dirty tree)"
{
    echo "# halo vs nginx: load benchmark ($ENDPOINT, halo in lua_api_mode $LUA_API_MODE)"
    echo
    echo "Written by \`benches/load/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); see README.md for the method."
    echo
    echo "- halo: $halo_rev; nginx: $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //') (Debian); wrk: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f2)"
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu CPUs, kernel $(uname -r)"
    echo "- server on CPU $SERVER_CPU, wrk (1 thread) on CPU $WRK_CPU; $CONNS connections; ${DURATION}s per run;" \
        "$RUNS runs per cell, medians; pipelined = $PIPELINE requests per write"
    echo "- load average before/after: $LOAD_BEFORE / $LOAD_AFTER; server threads after the runs: $THREADS"
    echo
    { echo "$MAIN_HDR"; printf '%s\n' "${main_rows[@]}"; } | md_table
    echo
    echo "CPU µs/req = server utime+stime (one process) / wrk's response count. p99 is wrk's own"
    echo "(with its coordinated-omission correction); it is n/a when pipelined because wrk 4.1"
    echo "computes it wrongly there (see pipeline.lua): use the mean round trip below instead."
    echo
    echo "Details (medians): server CPU % / wrk CPU % = share of one core used by the server / by"
    echo "wrk (near 100 % means that side was the bottleneck); mean round trip = mean time from a"
    echo "write (one request, or a batch of $PIPELINE) to its last response, by Little's law"
    echo "(connections / writes per second); CPU$SERVER_CPU busy µs/req counts everything that ran"
    echo "on the server's core (a cross-check: it is higher when other work shared the core);"
    echo "steal % = time the hypervisor ran other guests instead of that core (noise when > 0);"
    echo "bytes/response = wrk's bytes read / responses (must equal the real response size)."
    echo
    { echo "$DETAIL_HDR"; printf '%s\n' "${detail_rows[@]}"; } | md_table
    echo
    echo "<details><summary>Per-run raw numbers</summary>"
    echo
    awk -F'\t' -v OFS='|' '{ $1 = $1; print }' "$RUNS_TSV" | md_table
    echo
    echo "</details>"
    for name in "${SERVERS[@]}"; do
        if [[ -s ${PREFIX[$name]}/logs/error.log ]]; then
            echo
            echo "$name error log (last 20 lines):"
            echo
            echo '```'
            tail -n 20 "${PREFIX[$name]}/logs/error.log"
            echo '```'
        fi
    done
} >"$RESULTS"
log "wrote ${RESULTS#"$ROOT"/}"
if ((FAILED)); then
    for name in "${SERVERS[@]}"; do show_logs "$name"; done
    echo "run.sh: some runs looked wrong (see status column in $RESULTS)" >&2
    exit 2
fi
