#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind, of halo and of
# nginx + lua-nginx-module side by side: unlike wall-clock CPU time on this
# noisy 2-core VM, the count repeats to within a fraction of a percent, so it
# shows what a change to the request path costs, and how far halo is from
# nginx on the same config.
#
#   benches/callgrind/run.sh                     # every endpoint, both modes
#   MODE=plain ENDPOINTS="hello var" benches/callgrind/run.sh
#   NGINX=none benches/callgrind/run.sh          # halo only
#   KEEP_CG=/tmp/cg benches/callgrind/run.sh     # keep /tmp/cg.<server>.<endpoint>.<mode>
#   HALO_BIN=/tmp/halo.old benches/callgrind/run.sh  # that binary, no cargo build
#   LUA_API_MODE=cfunction benches/callgrind/run.sh  # halo's handlers on the
#       lua_CFunction twin of the API (results-cfunction.md)
#
# Endpoints (one location each in one config): return, hello, var, headers,
# shdict, regex, proxy (proxy_pass to an upstream with a keepalive pool; the
# upstream is this halo binary run natively, not under callgrind, started only
# for proxy and balancer), balancer (the same with the peer set by
# balancer_by_lua).
# Modes: pipelined (16 requests per write) and plain (1 per write), both on 4
# keep-alive connections. Each measurement starts the server under callgrind
# (one process: master_process off), warms it up (so LuaJIT has compiled its
# traces), zeroes the counters with `callgrind_control -z`, sends the measured
# requests, dumps with `callgrind_control -d` and divides the dump's total by
# the number of requests. Start-up and warm-up are not counted; the 4
# connections' accept and close are. Every response is checked (200, body,
# header) by client.py: a wrong answer stops the run.
#
# Prints one table and writes it to benches/callgrind/results.md
# (results-cfunction.md with LUA_API_MODE=cfunction).
# Request counts: PIPELINED_WARMUP, PIPELINED_REQUESTS, PLAIN_WARMUP,
# PLAIN_REQUESTS (rounded up to whole batches of 4 x depth).
#
# Needs valgrind and python3; nginx is Debian's nginx-light +
# libnginx-mod-http-lua (installed with apt-get when missing and we are root;
# otherwise nginx is skipped). Serves on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }
command -v callgrind_control >/dev/null || { echo "needs callgrind_control (valgrind package)" >&2; exit 1; }

mode=${MODE:-both}
case "$mode" in
    pipelined) modes="pipelined" ;;
    plain) modes="plain" ;;
    both) modes="pipelined plain" ;;
    *) echo "MODE must be pipelined, plain or both" >&2; exit 1 ;;
esac
endpoints=${ENDPOINTS:-return hello var headers shdict regex proxy balancer}
for e in $endpoints; do
    case "$e" in return|hello|var|headers|shdict|regex|proxy|balancer) ;; *) echo "unknown endpoint $e (return hello var headers shdict regex proxy balancer)" >&2; exit 1 ;; esac
done
conns=4
pipelined_warmup=${PIPELINED_WARMUP:-4096}
pipelined_requests=${PIPELINED_REQUESTS:-8192}
plain_warmup=${PLAIN_WARMUP:-2000}
plain_requests=${PLAIN_REQUESTS:-4000}

started=$SECONDS
if [ -n "${HALO_BIN:-}" ]; then
    halo_src=$HALO_BIN
else
    cargo build --release --quiet
    halo_src=target/release/halo
fi
tmp=$(mktemp -d)
# A private copy: someone else may rebuild target/release/halo during the run.
cp "$halo_src" "$tmp/halo"
halo_sum=$(sha256sum "$tmp/halo" | cut -c1-12)
server_pid=
up_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; [ -n "$up_pid" ] && kill "$up_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

# --- nginx + lua-nginx-module, if available ---------------------------------
nginx_modules=${NGINX_MODULES:-/usr/lib/nginx/modules}
nginx=${NGINX:-}
nginx_skip=
find_nginx() {
    nginx=$(command -v nginx || true)
    [ -z "$nginx" ] && [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx
    [ -n "$nginx" ] && [ -f "$nginx_modules/ngx_http_lua_module.so" ] && [ -f "$nginx_modules/ndk_http_module.so" ]
}
if [ "$nginx" = none ]; then
    nginx_skip="NGINX=none"
elif [ -z "$nginx" ]; then
    if ! find_nginx; then
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            echo "installing nginx-light and libnginx-mod-http-lua with apt-get" >&2
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-http-lua; } >&2 || true
        fi
        find_nginx || nginx_skip="nginx with lua-nginx-module not installed (as root with apt-get: apt-get install nginx-light libnginx-mod-http-lua)"
    fi
fi

# --- configs: the same body for both; nginx also loads the Lua module -------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
up_port=$(free_port)
body() {
    cat <<CONF
master_process off; daemon off; error_log logs/error.log warn; pid logs/server.pid;
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000; lua_code_cache on; lua_shared_dict d 1m;
  upstream up { server 127.0.0.1:$up_port; keepalive 32; }
  upstream lua { server 0.0.0.1; balancer_by_lua_block { require("ngx.balancer").set_current_peer("127.0.0.1", $up_port) } keepalive 32; }
  server {
    listen 127.0.0.1:$port;
    location /return { return 200 "hello\n"; }
    location /hello { content_by_lua_block { ngx.say("hello") } }
    location /var { content_by_lua_block { ngx.say(ngx.var.uri, ngx.var.request_method) } }
    location /headers { content_by_lua_block { local h = ngx.req.get_headers() ngx.header["X-Ua"] = h["user-agent"] ngx.say("hello") } }
    location /shdict { content_by_lua_block { local d = ngx.shared.d d:set("k", "hello") d:incr("n", 1, 0) ngx.say(d:get("k")) } }
    location /regex { content_by_lua_block { local m = ngx.re.match(ngx.var.uri, "^/(re)gex", "jo") ngx.say(m[1]) } }
    location /proxy { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /balancer { proxy_pass http://lua; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
}
# halo has the Lua module built in and refuses load_module.
mkdir -p "$tmp/halo.p/conf" "$tmp/halo.p/logs" "$tmp/nginx.p/conf" "$tmp/nginx.p/logs"
# LUA_API_MODE: the binding of the ngx API halo's handlers see (ffi by default).
api_mode=${LUA_API_MODE:-ffi}
case "$api_mode" in
    ffi) results=results.md ;;
    cfunction) results=results-cfunction.md ;;
    *) echo "LUA_API_MODE must be ffi or cfunction" >&2; exit 1 ;;
esac
# (Only cfunction is written out, so an older binary runs the default.)
if [ "$api_mode" = ffi ]; then
    body > "$tmp/halo.p/conf/nginx.conf"
else
    body | sed "s/^http {/http {\n  lua_api_mode $api_mode;/" > "$tmp/halo.p/conf/nginx.conf"
fi
{ printf 'load_module %s/ndk_http_module.so;\nload_module %s/ngx_http_lua_module.so;\n' "$nginx_modules" "$nginx_modules"; body; } > "$tmp/nginx.p/conf/nginx.conf"

server_cmd() {   # server -> the command line, in an array
    case "$1" in
        halo) cmd=("$tmp/halo" -p "$tmp/halo.p" -c conf/nginx.conf) ;;
        nginx) cmd=("$nginx" -p "$tmp/nginx.p" -c conf/nginx.conf -e logs/error.log) ;;
    esac
}
"$tmp/halo" -p "$tmp/halo.p" -c conf/nginx.conf -t >"$tmp/t.log" 2>&1 || { cat "$tmp/t.log" >&2; echo "halo rejects the config" >&2; exit 1; }
if [ -z "$nginx_skip" ] && ! "$nginx" -p "$tmp/nginx.p" -c conf/nginx.conf -e logs/error.log -t >"$tmp/t.log" 2>&1; then
    cat "$tmp/t.log" >&2
    nginx_skip="$nginx -t rejects the config"
fi
[ -n "$nginx_skip" ] && echo "skipping nginx: $nginx_skip" >&2
servers="halo"
[ -z "$nginx_skip" ] && servers="halo nginx"

# The proxy endpoint's upstream: the same for both servers, outside callgrind.
case " $endpoints " in *" proxy "*|*" balancer "*)
    mkdir -p "$tmp/up.p/conf" "$tmp/up.p/logs"
    printf 'master_process off; daemon off; error_log logs/error.log warn; pid logs/up.pid;\nevents { worker_connections 1024; }\nhttp { access_log off; keepalive_requests 1000000;\n  server { listen 127.0.0.1:%s; location / { return 200 "hello\\n"; } } }\n' "$up_port" > "$tmp/up.p/conf/nginx.conf"
    "$tmp/halo" -p "$tmp/up.p" -c conf/nginx.conf >"$tmp/up.log" 2>&1 &
    up_pid=$!
    timeout 30 python3 benches/callgrind/client.py "$up_port" 1 1 1 /proxy $'hello\n' >/dev/null || { cat "$tmp/up.log" >&2; echo "the upstream did not start" >&2; exit 1; }
    ;;
esac

expect() {   # endpoint -> client arguments: path, body[, header]
    case "$1" in
        return) want=(/return $'hello\n') ;;
        hello) want=(/hello $'hello\n') ;;
        var) want=(/var $'/varGET\n') ;;
        headers) want=(/headers $'hello\n' "X-Ua: halo-callgrind/1") ;;
        shdict) want=(/shdict $'hello\n') ;;
        regex) want=(/regex $'re\n') ;;
        proxy) want=(/proxy $'hello\n') ;;
        balancer) want=(/balancer $'hello\n') ;;
    esac
}

# measure server endpoint mode -> sets ipr (instructions per request)
measure() {
    local server=$1 endpoint=$2 mode=$3 depth warm reqs
    case "$mode" in
        pipelined) depth=16; warm=$pipelined_warmup; reqs=$pipelined_requests ;;
        plain) depth=1; warm=$plain_warmup; reqs=$plain_requests ;;
    esac
    local per=$((depth * conns))
    local wb=$(((warm + per - 1) / per)) mb=$(((reqs + per - 1) / per))
    server_cmd "$server"
    expect "$endpoint"
    local out=$tmp/cg.$server.$endpoint.$mode
    rm -f "$out" "$out".*
    valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >"$tmp/vg.log" 2>&1 &
    server_pid=$!
    local client=(timeout 900 python3 benches/callgrind/client.py "$port")
    if ! "${client[@]}" "$wb" "$depth" "$conns" "${want[@]}" >/dev/null 2>"$tmp/client.log"; then
        cat "$tmp/client.log" "$tmp/vg.log" >&2
        cat "$tmp/$server.p/logs/error.log" >&2 2>/dev/null || true
        echo "FAILED: $server $endpoint ($mode) does not answer as expected" >&2
        exit 1
    fi
    sleep 0.5   # let the warm-up connections' close be handled before zeroing
    callgrind_control -z "$server_pid" >/dev/null 2>&1
    local n
    if ! n=$("${client[@]}" "$mb" "$depth" "$conns" "${want[@]}" 2>"$tmp/client.log"); then
        cat "$tmp/client.log" >&2
        echo "FAILED: $server $endpoint ($mode) does not answer as expected" >&2
        exit 1
    fi
    sleep 0.5   # and the measured ones' close before dumping
    callgrind_control -d "$server_pid" >/dev/null 2>&1
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    local dump=$out.1
    [ -s "$dump" ] || { ls -l "$tmp" >&2; echo "no callgrind dump $dump" >&2; exit 1; }
    local ir
    ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",","",$1); print $1; done=1}')
    [ -n "$ir" ] || { echo "no total in $dump" >&2; exit 1; }
    [ -n "${KEEP_CG:-}" ] && cp "$dump" "$KEEP_CG.$server.$endpoint.$mode"
    ipr=$((ir / n))
    printf '  %-6s %-8s %-10s %6d requests %12d instructions %8d per request\n' \
        "$server" "$endpoint" "$mode" "$n" "$ir" "$ipr" >&2
}

rows=()
for endpoint in $endpoints; do
    for m in $modes; do
        measure halo "$endpoint" "$m"; h=$ipr
        if [ -z "$nginx_skip" ]; then
            measure nginx "$endpoint" "$m"; g=$ipr
            ratio=$(awk -v a="$h" -v b="$g" 'BEGIN { printf "%.2f", a / b }')
        else
            g=-; ratio=-
        fi
        rows+=("$endpoint $m $h $g $ratio")
    done
done
elapsed=$((SECONDS - started))

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
date=$(date -u '+%Y-%m-%d %H:%M UTC')
echo
printf '%-9s %-10s %8s %8s %11s\n' endpoint mode halo nginx halo/nginx
for r in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-9s %-10s %8s %8s %11s\n' $r
done
echo "(instructions per request; halo $commit, binary sha256 $halo_sum; ${elapsed}s)"
[ -n "$nginx_skip" ] && echo "nginx not measured: $nginx_skip"

{
    echo "# callgrind: instructions per request, halo vs nginx + lua-nginx-module"
    echo
    echo "Written by \`benches/callgrind/run.sh\` on $date, halo commit \`$commit\`"
    echo "(the working tree as built, which may differ from the commit; binary sha256 \`$halo_sum\`)."
    echo
    echo "User-space instructions per request (callgrind \`Ir\`), start-up and warm-up"
    echo "excluded; 4 keep-alive connections; pipelined = 16 requests per write"
    echo "(warm-up $pipelined_warmup, measured $pipelined_requests requests), plain = 1 per write"
    echo "(warm-up $plain_warmup, measured $plain_requests). Both servers run the same config in one"
    echo "process (\`master_process off\`), with \`access_log off\` and \`lua_code_cache on\`;"
    echo "halo's handlers with \`lua_api_mode $api_mode\`."
    if [ -z "$nginx_skip" ]; then
        echo "nginx: \`$("$nginx" -v 2>&1 | sed 's/^nginx version: //')\` with Debian's lua-nginx-module $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null || echo '?')."
    else
        echo "nginx not measured: $nginx_skip."
    fi
    echo "valgrind: $(valgrind --version). Run time: ${elapsed}s."
    echo
    echo "| endpoint | mode | halo | nginx | halo/nginx |"
    echo "|---|---|---:|---:|---:|"
    for r in "${rows[@]}"; do
        # shellcheck disable=SC2086
        set -- $r
        echo "| $1 | $2 | $3 | $4 | $5 |"
    done
    echo
    echo "Endpoints:"
    echo
    echo '```nginx'
    echo 'location /return { return 200 "hello\n"; }'
    echo 'location /hello { content_by_lua_block { ngx.say("hello") } }'
    echo 'location /var { content_by_lua_block { ngx.say(ngx.var.uri, ngx.var.request_method) } }'
    echo 'location /headers { content_by_lua_block { local h = ngx.req.get_headers() ngx.header["X-Ua"] = h["user-agent"] ngx.say("hello") } }'
    echo 'location /shdict { content_by_lua_block { local d = ngx.shared.d d:set("k", "hello") d:incr("n", 1, 0) ngx.say(d:get("k")) } }'
    echo 'location /regex { content_by_lua_block { local m = ngx.re.match(ngx.var.uri, "^/(re)gex", "jo") ngx.say(m[1]) } }'
    echo '# upstream up { server 127.0.0.1:PORT; keepalive 32; }'
    echo '# upstream lua { server 0.0.0.1; balancer_by_lua_block { require("ngx.balancer").set_current_peer("127.0.0.1", PORT) } keepalive 32; }'
    echo 'location /proxy { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }'
    echo 'location /balancer { proxy_pass http://lua; proxy_http_version 1.1; proxy_set_header Connection ""; }'
    echo '```'
} > "benches/callgrind/$results"
