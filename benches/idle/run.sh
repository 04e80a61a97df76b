#!/usr/bin/env bash
# Resident memory per idle keep-alive connection: halo beside Debian's nginx.
#
# Each server runs as one foreground process (master_process off, worker_processes 1) in a
# fresh temp prefix with the same config. After a short warm-up the process's VmRSS (and
# Pss) is read as the baseline; then hold.py opens CONNS connections, sends one request on
# each, reads the whole keep-alive response and leaves them all open and idle. After SETTLE
# seconds the memory is read again: (after - baseline) / CONNS = bytes per idle connection.
# Every server is measured ROUNDS times, each time in a new process, alternating halo and
# nginx. Kernel socket memory is not in a process's RSS and is not counted (see README.md).
#
# Usage: benches/idle/run.sh            (from anywhere)
# Knobs (environment):
#   CONNS=4000     idle connections held        ROUNDS=2   measurements per server
#   SETTLE=2       seconds between the last response and the second reading
#   HALO_BIN=...   halo binary (default target/release/halo, built with cargo if missing)
#   NGINX_BIN=/usr/sbin/nginx                   RESULTS=benches/idle/results.md
#   KEEP_TMP=1     keep the temp prefixes (configs, logs, client output) after exit
# Only 127.0.0.1 is ever contacted; every wait is bounded, and a watchdog ends the run after
# TIME_LIMIT seconds (default 110; not counting a cargo build or apt-get install).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

CONNS=${CONNS:-4000}
ROUNDS=${ROUNDS:-2}
SETTLE=${SETTLE:-2}
TIME_LIMIT=${TIME_LIMIT:-110}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
RESULTS=${RESULTS:-$HERE/results.md}
KEEP_TMP=${KEEP_TMP:-0}
WARM_CONNS=4 WARM_REQUESTS=100

die() { echo "run.sh: error: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

for knob in CONNS ROUNDS SETTLE TIME_LIMIT; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a non-negative integer (got '${!knob}')"
done
((CONNS > 0 && ROUNDS > 0 && TIME_LIMIT > 0)) || die "CONNS, ROUNDS and TIME_LIMIT must be > 0"
command -v python3 >/dev/null || die "python3 is needed for hold.py"
command -v timeout >/dev/null || die "timeout (coreutils) is needed"

# --- file descriptors: the server and hold.py each need CONNS plus a few -------------------
want_fds=$((CONNS + 1000)); ((want_fds >= 20000)) || want_fds=20000
if (($(ulimit -Sn) < want_fds)); then
    if (($(ulimit -Hn) < want_fds)); then
        ulimit -Hn "$want_fds" 2>/dev/null || true # works as root
    fi
    ulimit -Sn "$want_fds" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
fi
(($(ulimit -Sn) >= CONNS + 100)) || die "open files limit is $(ulimit -Sn), need at least $((CONNS + 100)) (raise ulimit -Hn)"
WORKER_CONNECTIONS=10000; ((WORKER_CONNECTIONS >= CONNS + 100)) || WORKER_CONNECTIONS=$((CONNS + 100))

# --- the servers ---------------------------------------------------------------------------
SERVERS=(halo)
if [[ ! -x $NGINX_BIN && $NGINX_BIN == /usr/sbin/nginx && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "nginx not found: apt-get install -y nginx-light"
    timeout 300 apt-get install -y nginx-light >&2 ||
        { timeout 120 apt-get update >&2 && timeout 300 apt-get install -y nginx-light >&2; } || true
fi
NGINX_NOTE=""
if [[ -x $NGINX_BIN ]]; then
    SERVERS+=(nginx)
else
    NGINX_NOTE="nginx skipped: $NGINX_BIN not found (install nginx-light as root)"
    echo "run.sh: $NGINX_NOTE" >&2
fi

if [[ -z ${HALO_BIN:-} ]]; then
    HALO_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/halo
    if [[ ! -x $HALO_BIN ]]; then
        log "building halo (cargo build --release)"
        (cd "$ROOT" && cargo build --release --bin halo) >&2 || die "cargo build --release failed"
    fi
fi
[[ -x $HALO_BIN ]] || die "halo binary not found at $HALO_BIN"
declare -A BIN=([halo]=$HALO_BIN [nginx]=$NGINX_BIN)

# --- cleanup and the watchdog ----------------------------------------------------------------
TMP=$(mktemp -d /tmp/halo-idle.XXXXXX)
SERVER_PID="" HOLD_PID="" WATCHDOG_PID="" FAILED=0

stop_pid() { # pid signal seconds: signal, wait up to seconds, then SIGKILL
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill "-$2" "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    for ((i = 0; i < $3 * 10; i++)); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$HOLD_PID" TERM 3
    stop_pid "$SERVER_PID" TERM 5
    stop_pid "$WATCHDOG_PID" TERM 1
    if [[ $KEEP_TMP == 1 || $FAILED == 1 ]]; then
        echo "run.sh: temp prefixes and logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MAIN_PID=$$
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$TIME_LIMIT" & sp=$!
    wait "$sp"
    echo "run.sh: time limit of ${TIME_LIMIT}s reached, stopping" >&2
    kill -TERM "$MAIN_PID"
) </dev/null &
WATCHDOG_PID=$!

# --- helpers -------------------------------------------------------------------------------
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

USED_PORTS=" "
free_port() { # below the ephemeral range, so hold.py's client ports cannot collide
    local p i
    for i in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        [[ $USED_PORTS == *" $p "* ]] && continue
        port_open "$p" || { USED_PORTS+="$p "; echo "$p"; return; }
    done
    die "no free port found"
}

alive() { # pid: running and not a zombie
    local s
    s=$(awk '/^State:/{print $2}' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $s && $s != Z && $s != X ]]
}

# mem PID -> "vmrss_kb pss_kb rssanon_kb threads fds"; pss is NA without smaps_rollup.
mem() {
    local rss anon thr pss=NA fds
    read -r rss anon thr < <(awk '/^VmRSS:/{r=$2} /^RssAnon:/{a=$2} /^Threads:/{t=$2} END{print r, a, t}' "/proc/$1/status")
    [[ -r /proc/$1/smaps_rollup ]] && pss=$(awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup")
    fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo "$rss ${pss:-NA} $anon $thr $fds"
}

# Established connections whose local end is 127.0.0.1:PORT (the server's side), counted
# by the kernel: also right if the server keeps them as io_uring direct descriptors.
server_side_conns() {
    ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}

show_logs() { # prefix
    local f
    for f in "$1"/logs/error.log "$1"/logs/stdout.log "$1"/hold.err; do
        [[ -s $f ]] || continue
        echo "--- ${f#"$TMP"/} (last 20 lines)" >&2
        tail -n 20 "$f" >&2
    done
}
fail() { FAILED=1; show_logs "$1"; die "$2"; }

per_conn() { # delta_kb -> bytes per connection
    awk -v d="$1" -v n="$CONNS" 'BEGIN { if (d == "NA") print "NA"; else printf "%.0f", d * 1024 / n }'
}
kb_delta() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA") print "NA"; else print b - a }'; }
mib() { awk -v k="$1" 'BEGIN { if (k == "NA") print "NA"; else printf "%.1f", k / 1024 }'; }

ROWS=() # server|round|baseline VmRSS MiB|baseline Pss MiB|held VmRSS MiB|B/conn VmRSS|B/conn Pss|B/conn RssAnon|after close VmRSS MiB|alive

measure() { # name round
    local name=$1 round=$2 prefix port extra=() i line
    local b_rss b_pss b_anon b_thr b_fds h_rss h_pss h_anon h_thr h_fds c_rss c_pss c_anon c_thr c_fds
    local ready="" result="" rc=0 conns_seen
    prefix=$TMP/$name-$round
    port=$(free_port)
    mkdir -p "$prefix/conf" "$prefix/logs"
    cat >"$prefix/conf/nginx.conf" <<EOF
master_process off;
daemon off;
worker_processes 1;
error_log logs/error.log warn;
pid logs/x.pid;
events { worker_connections $WORKER_CONNECTIONS; }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "hello\n"; }
    }
}
EOF
    # Debian's nginx opens its compiled-in /var/log/nginx/error.log before reading the
    # config unless given an early error log: keep it inside the prefix.
    [[ $name == nginx ]] && extra=(-e logs/error.log)
    "${BIN[$name]}" -p "$prefix" -c conf/nginx.conf "${extra[@]}" </dev/null >"$prefix/logs/stdout.log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 100); do # up to ~10 s to listen
        alive "$SERVER_PID" || fail "$prefix" "$name exited during start-up"
        port_open "$port" && break
        sleep 0.1
    done
    port_open "$port" || fail "$prefix" "$name did not listen on 127.0.0.1:$port"

    # Warm-up: fault in the request path's code and buffers before the baseline.
    timeout 30 python3 "$HERE/hold.py" warm "$port" --conns "$WARM_CONNS" --requests "$WARM_REQUESTS" \
        </dev/null >"$prefix/warm.out" 2>"$prefix/hold.err" || fail "$prefix" "$name: warm-up failed"
    sleep 0.5 # let the server finish closing the warm-up connections
    alive "$SERVER_PID" || fail "$prefix" "$name died during warm-up"
    read -r b_rss b_pss b_anon b_thr b_fds < <(mem "$SERVER_PID")

    # Hold CONNS idle keep-alive connections.
    python3 "$HERE/hold.py" hold "$port" --conns "$CONNS" --timeout 40 --hold 60 \
        </dev/null >"$prefix/hold.out" 2>>"$prefix/hold.err" &
    HOLD_PID=$!
    for i in $(seq 450); do # up to ~45 s for all responses (hold.py itself gives up at 40 s)
        ready=$(grep -m1 '^READY ' "$prefix/hold.out" 2>/dev/null || true)
        [[ -n $ready ]] && break
        alive "$HOLD_PID" || break
        sleep 0.1
    done
    [[ -n $ready ]] || { stop_pid "$HOLD_PID" TERM 2; HOLD_PID=""; fail "$prefix" "$name: hold.py did not get $CONNS responses"; }
    sleep "$SETTLE"
    alive "$SERVER_PID" || fail "$prefix" "$name died while holding connections"
    read -r h_rss h_pss h_anon h_thr h_fds < <(mem "$SERVER_PID")
    conns_seen=$(server_side_conns "$port")

    # Release: hold.py checks that every connection is still open, then closes them.
    kill -TERM "$HOLD_PID" 2>/dev/null || true
    for i in $(seq 100); do alive "$HOLD_PID" || break; sleep 0.1; done
    alive "$HOLD_PID" && kill -KILL "$HOLD_PID" 2>/dev/null # only if it hung
    wait "$HOLD_PID" 2>/dev/null || rc=$?
    HOLD_PID=""
    result=$(grep -m1 '^ALIVE ' "$prefix/hold.out" || true)
    local alive_n; alive_n=$(awk '{print $2}' <<<"$result")
    if [[ -z $result ]] || ((alive_n != CONNS)); then
        FAILED=1
        echo "run.sh: warning: $name round $round: hold.py reported '${result:-nothing}' (exit $rc)" >&2
    fi
    sleep 1 # the server closes its side
    read -r c_rss c_pss c_anon c_thr c_fds < <(mem "$SERVER_PID")
    stop_pid "$SERVER_PID" TERM 5
    SERVER_PID=""

    log "$(printf '%-5s round %s: %s connections answered in %ss; server-side established %s; fds %s -> %s; threads %s -> %s' \
        "$name" "$round" "$(cut -d' ' -f2 <<<"$ready")" "$(cut -d' ' -f3 <<<"$ready")" "$conns_seen" \
        "$b_fds" "$h_fds" "$b_thr" "$h_thr")"
    log "$(printf '%-5s round %s: VmRSS %s -> %s kB (Pss %s -> %s, RssAnon %s -> %s); after close VmRSS %s kB => %s B/conn' \
        "$name" "$round" "$b_rss" "$h_rss" "$b_pss" "$h_pss" "$b_anon" "$h_anon" "$c_rss" \
        "$(per_conn "$(kb_delta "$b_rss" "$h_rss")")")"
    ROWS+=("$name|$round|$(mib "$b_rss")|$(mib "$b_pss")|$(mib "$h_rss")|$(per_conn "$(kb_delta "$b_rss" "$h_rss")")|$(per_conn "$(kb_delta "$b_pss" "$h_pss")")|$(per_conn "$(kb_delta "$b_anon" "$h_anon")")|$(mib "$c_rss")|${alive_n:-?}/$CONNS")
}

# --- run -----------------------------------------------------------------------------------
log "halo: $HALO_BIN (built $(date -u -r "$HALO_BIN" '+%Y-%m-%d %H:%M UTC'))"
[[ " ${SERVERS[*]} " == *" nginx "* ]] && log "nginx: $NGINX_BIN ($("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'))"
log "$CONNS idle connections, $ROUNDS rounds per server, settle ${SETTLE}s; open files limit $(ulimit -Sn)"
for round in $(seq "$ROUNDS"); do
    for name in "${SERVERS[@]}"; do measure "$name" "$round"; done
done

# --- report --------------------------------------------------------------------------------
HDR="server|round|baseline VmRSS MiB|baseline Pss MiB|VmRSS MiB with $CONNS idle|B/conn (VmRSS)|B/conn (Pss)|B/conn (RssAnon)|VmRSS MiB after close|conns alive"
echo
{ echo "$HDR"; printf '%s\n' "${ROWS[@]}"; } | column -t -s '|' -o '  '
echo
SUMMARY=()
for name in "${SERVERS[@]}"; do
    SUMMARY+=("$name: $(printf '%s\n' "${ROWS[@]}" | awk -F'|' -v s="$name" '$1 == s { v = v (v ? ", " : "") $6 } END { print v }') bytes per idle connection (VmRSS), baseline VmRSS $(printf '%s\n' "${ROWS[@]}" | awk -F'|' -v s="$name" '$1 == s { v = v (v ? ", " : "") $3 } END { print v }') MiB")
done
printf '%s\n' "${SUMMARY[@]}"

md_table() {
    awk -F'|' '{ line = "|"; for (i = 1; i <= NF; i++) line = line " " $i " |"; print line }
        NR == 1 { s = "|"; for (i = 1; i <= NF; i++) s = s " --- |"; print s }'
}
halo_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]] && halo_rev="$halo_rev (tree has uncommitted changes)"
{
    echo "# Resident memory per idle keep-alive connection: halo vs nginx"
    echo
    echo "Written by \`benches/idle/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); see README.md for the method."
    echo
    echo "- halo: $halo_rev, binary built $(date -u -r "$HALO_BIN" '+%Y-%m-%d %H:%M UTC')"
    if [[ -n $NGINX_NOTE ]]; then
        echo "- $NGINX_NOTE"
    else
        echo "- nginx: $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //') (Debian)"
    fi
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(getconf _NPROCESSORS_ONLN) CPUs, kernel $(uname -r)"
    echo "- $CONNS idle connections, one request each; memory read ${SETTLE}s after the last response;" \
        "each row is a fresh server process (master_process off, worker_processes 1)"
    echo
    printf -- '- %s\n' "${SUMMARY[@]}"
    echo
    { echo "$HDR"; printf '%s\n' "${ROWS[@]}"; } | md_table
    echo
    echo "B/conn = (reading with $CONNS connections held - baseline after warm-up) / $CONNS, in bytes."
    echo "Kernel socket buffers are not in any of these numbers."
} >"$RESULTS"
log "wrote ${RESULTS#"$ROOT"/}"
((FAILED == 0)) || { echo "run.sh: some rounds looked wrong (see warnings above)" >&2; exit 2; }
