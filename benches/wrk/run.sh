#!/usr/bin/env bash
# Proxy benchmark: augur vs nginx vs HAProxy as HTTP reverse proxies on loopback, all in front
# of the same nginx backend. One worker thread each, the proxy under test alone on CPU 1, wrk
# and the backend on CPU 0. Reports req/s, p50/p99 latency and proxy CPU µs per request.
#
# Usage: [RUNS=3] [DURATION=10s] [CONNECTIONS=32] [WARMUP=2s] benches/wrk/run.sh
# Other knobs: AUGUR_BIN=path (skip the cargo build and use this binary), SKIP_BUILD=1,
#              KEEP_TMP=1 (keep the temp dir with configs and logs).
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2s}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

HOST=127.0.0.1
BACKEND_PORT=18000
BACKEND_STATUS_PORT=18001
AUGUR_PORT=18081
NGINX_PORT=18082
HAPROXY_PORT=18083
AUGUR_ADMIN_PORT=18091
PROXY_CPU=1
LOAD_CPU=0
PROXIES=(augur nginx haproxy)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
AUGUR_BIN=${AUGUR_BIN:-}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# --- prerequisites -------------------------------------------------------------------------

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

install_tools() {
    local missing=0 tool
    for tool in nginx haproxy wrk; do
        command -v "$tool" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null 2>&1 || missing=1
    done
    [[ $missing -eq 0 ]] && return 0
    log "installing nginx-light haproxy wrk"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light haproxy wrk; then
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light haproxy wrk
    fi
}

PATH=$PATH:/usr/sbin:/sbin
install_tools
for tool in nginx haproxy wrk curl taskset getconf; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[[ $(nproc) -ge 2 ]] || die "need at least 2 CPUs (proxy on CPU $PROXY_CPU, load on CPU $LOAD_CPU)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
CLK_TCK=$(getconf CLK_TCK)

if [[ -z $AUGUR_BIN ]]; then
    AUGUR_BIN=$REPO/target/release/augur
    if [[ $SKIP_BUILD != 1 ]]; then
        log "building augur (cargo build --release -p augur-proxy)"
        (cd "$REPO" && cargo build --release -p augur-proxy >&2)
    fi
fi
[[ -x $AUGUR_BIN ]] || die "augur binary not found at $AUGUR_BIN"

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for port in "$BACKEND_PORT" "$BACKEND_STATUS_PORT" "$AUGUR_PORT" "$NGINX_PORT" "$HAPROXY_PORT" "$AUGUR_ADMIN_PORT"; do
    if port_in_use "$port"; then die "$HOST:$port is already in use"; fi
done

# --- temp dir, process tracking, cleanup ---------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/augur-bench.XXXXXX")
PIDS=()

stop_all() {
    local pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all
    if [[ $KEEP_TMP == 1 || $rc -ne 0 ]]; then
        log "temp dir kept: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Poll until `curl URL` answers with a body containing "hello", or fail (after ~10 s) when the
# process died or never answered.
wait_ready() {
    local name=$1 pid=$2 url=$3 logfile=$4 i body
    for ((i = 0; i < 200; i++)); do
        if body=$(curl -fsS --max-time 1 "$url" 2>/dev/null) && [[ $body == *hello* ]]; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "$name exited during startup (log: $logfile)"
        fi
        sleep 0.05
    done
    tail -n 20 "$logfile" >&2 || true
    die "$name did not answer on $url (log: $logfile)"
}

# --- configs -------------------------------------------------------------------------------

HAVE_STUB_STATUS=0
if nginx -V 2>&1 | grep -q http_stub_status_module; then HAVE_STUB_STATUS=1; fi

nginx_temp_paths() {
    local dir=$1
    cat <<EOF
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
}

mkdir -p "$TMP/backend" "$TMP/nginx" "$TMP/haproxy" "$TMP/augur"

{
    cat <<EOF
worker_processes 1;
daemon off;
pid $TMP/backend/nginx.pid;
error_log $TMP/backend/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type text/plain;
EOF
    nginx_temp_paths "$TMP/backend"
    cat <<EOF
    server {
        listen $HOST:$BACKEND_PORT;
        location / { return 200 "hello\n"; }
    }
EOF
    if [[ $HAVE_STUB_STATUS == 1 ]]; then
        cat <<EOF
    server {
        listen $HOST:$BACKEND_STATUS_PORT;
        location / { stub_status; }
    }
EOF
    fi
    echo "}"
} >"$TMP/backend/nginx.conf"

{
    cat <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
EOF
    nginx_temp_paths "$TMP/nginx"
    cat <<EOF
    upstream backend {
        server $HOST:$BACKEND_PORT;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        listen $HOST:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"

cat >"$TMP/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    pidfile $TMP/haproxy/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always

frontend fe
    bind $HOST:$HAPROXY_PORT
    default_backend be

backend be
    server s1 $HOST:$BACKEND_PORT
EOF

cat >"$TMP/augur/augur.yaml" <<EOF
server: { threads: 1, grace_period: 1s, upgrade_sock: $TMP/augur/upgrade.sock, pid_file: $TMP/augur/augur.pid }
admin: { bind: $HOST:$AUGUR_ADMIN_PORT }
listeners:
  - { name: web, bind: $HOST:$AUGUR_PORT, protocol: http, routes: [ { upstream: b } ] }
upstreams:
  - { name: b, policy: round_robin, backends: [ { addr: $HOST:$BACKEND_PORT } ] }
EOF

# --- start everything ----------------------------------------------------------------------

declare -A PID PORT
PORT[augur]=$AUGUR_PORT
PORT[nginx]=$NGINX_PORT
PORT[haproxy]=$HAPROXY_PORT

log "temp dir: $TMP"
taskset -c "$LOAD_CPU" nginx -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" \
    >"$TMP/backend/stdout.log" 2>&1 &
PID[backend]=$!
PIDS+=("${PID[backend]}")
wait_ready backend "${PID[backend]}" "http://$HOST:$BACKEND_PORT/" "$TMP/backend/error.log"

taskset -c "$PROXY_CPU" "$AUGUR_BIN" run -c "$TMP/augur/augur.yaml" >"$TMP/augur/augur.log" 2>&1 &
PID[augur]=$!
PIDS+=("${PID[augur]}")
wait_ready augur "${PID[augur]}" "http://$HOST:$AUGUR_PORT/" "$TMP/augur/augur.log"

taskset -c "$PROXY_CPU" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" \
    >"$TMP/nginx/stdout.log" 2>&1 &
PID[nginx]=$!
PIDS+=("${PID[nginx]}")
wait_ready nginx "${PID[nginx]}" "http://$HOST:$NGINX_PORT/" "$TMP/nginx/error.log"

taskset -c "$PROXY_CPU" haproxy -f "$TMP/haproxy/haproxy.cfg" -db >"$TMP/haproxy/haproxy.log" 2>&1 &
PID[haproxy]=$!
PIDS+=("${PID[haproxy]}")
wait_ready haproxy "${PID[haproxy]}" "http://$HOST:$HAPROXY_PORT/" "$TMP/haproxy/haproxy.log"

# --- sanity check --------------------------------------------------------------------------

for proxy in "${PROXIES[@]}"; do
    url="http://$HOST:${PORT[$proxy]}/"
    out=$(curl -sS --max-time 5 -o "$TMP/sanity.body" -w '%{http_code}' "$url") || die "$proxy: curl $url failed"
    [[ $out == 200 ]] || die "$proxy: expected 200 from $url, got $out"
    [[ $(<"$TMP/sanity.body") == hello ]] || die "$proxy: expected body 'hello' from $url, got '$(<"$TMP/sanity.body")'"
    log "sanity ok: $proxy ($url -> 200 hello)"
done

# --- measurement helpers -------------------------------------------------------------------

# The PID and all its descendants (nginx: master + worker).
pid_tree() {
    local pid=$1 child list
    local -a kids
    echo "$pid"
    list=$(cat /proc/"$pid"/task/*/children 2>/dev/null | tr '\n' ' ' || true)
    read -r -a kids <<<"$list"
    for child in "${kids[@]}"; do pid_tree "$child"; done
}

# utime+stime (clock ticks) summed over the given PIDs (all threads of each process).
cpu_ticks() {
    local total=0 pid stat fields
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || die "process $pid vanished during the run"
        read -r -a fields <<<"${stat##*) }"
        # fields[0] is stat field 3 (state); utime = field 14, stime = field 15.
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

backend_accepts() {
    if [[ $HAVE_STUB_STATUS == 1 ]]; then
        curl -fsS --max-time 2 "http://$HOST:$BACKEND_STATUS_PORT/" | awk 'NR == 3 { print $1 }'
    else
        echo 0
    fi
}

# wrk latency value ("512.00us", "1.20ms", "2.00s") -> microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000;
        else if (u == "m") m = 60000000; else { print "NaN"; exit }
        printf "%.0f", n * m }'
}

RAW=$TMP/raw.tsv
: >"$RAW"

# measure RUN PROXY: one wrk run against PROXY, appends a line to $RAW.
measure() {
    local run=$1 proxy=$2 url pids before after acc_before acc_after wrk_out
    url="http://$HOST:${PORT[$proxy]}/"
    mapfile -t pids < <(pid_tree "${PID[$proxy]}")
    [[ $run -eq 1 ]] && log "$proxy: CPU accounted over pids ${pids[*]}"
    wrk_out=$TMP/wrk-$proxy-$run.txt
    acc_before=$(backend_accepts)
    before=$(cpu_ticks "${pids[@]}")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$wrk_out"
    after=$(cpu_ticks "${pids[@]}")
    acc_after=$(backend_accepts)
    # The second status probe's own connection is counted in acc_after.
    local backend_conns=n/a
    [[ $HAVE_STUB_STATUS == 1 ]] && backend_conns=$((acc_after - acc_before - 1))

    local requests rps p50 p99 non2xx sockerr
    requests=$(awk '/requests in/ { print $1 }' "$wrk_out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$wrk_out")
    p50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$wrk_out")")
    p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$wrk_out")")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$wrk_out")
    sockerr=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$wrk_out")
    [[ -n $requests && $requests -gt 0 ]] || { cat "$wrk_out" >&2; die "$proxy: wrk completed no requests"; }
    local cpu_us_req
    cpu_us_req=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN { printf "%.2f", t * 1000000 / hz / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$proxy" "$rps" "$p50" "$p99" \
        "$requests" "$((after - before))" "$cpu_us_req" "${non2xx:-0}" "${sockerr:-0}" \
        "$backend_conns" >>"$RAW"
    log "run $run $proxy: $rps req/s, p50 ${p50}us, p99 ${p99}us, $cpu_us_req CPU us/req, non-2xx ${non2xx:-0}, socket errors ${sockerr:-0}"
}

# --- run -----------------------------------------------------------------------------------

if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
    for proxy in "${PROXIES[@]}"; do
        log "warm-up $proxy ($WARMUP)"
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "http://$HOST:${PORT[$proxy]}/" >/dev/null
    done
fi

for ((run = 1; run <= RUNS; run++)); do
    for proxy in "${PROXIES[@]}"; do
        measure "$run" "$proxy"
    done
done

for proxy in "${PROXIES[@]}"; do
    kill -0 "${PID[$proxy]}" 2>/dev/null || die "$proxy died during the benchmark"
done

# --- report --------------------------------------------------------------------------------

# median COLUMN PROXY: median of a column of $RAW over that proxy's runs.
median() {
    awk -F'\t' -v c="$1" -v p="$2" '$2 == p { print $c }' "$RAW" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A MED_RPS MED_P50 MED_P99 MED_CPU
for proxy in "${PROXIES[@]}"; do
    MED_RPS[$proxy]=$(median 3 "$proxy")
    MED_P50[$proxy]=$(median 4 "$proxy")
    MED_P99[$proxy]=$(median 5 "$proxy")
    MED_CPU[$proxy]=$(median 8 "$proxy")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
nginx_version=$(nginx -v 2>&1)
haproxy_version=$(haproxy -v 2>&1 | head -n 1 || true)
wrk_version=$(wrk -v 2>&1 | head -n 1 || true)
rustc_version=$(rustc -V 2>/dev/null || echo "rustc not found")
augur_version=$("$AUGUR_BIN" --version 2>/dev/null || echo unknown)
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)

echo "## augur vs nginx vs HAProxy (wrk, loopback)"
echo
echo "Command: \`RUNS=$RUNS DURATION=$DURATION CONNECTIONS=$CONNECTIONS WARMUP=$WARMUP benches/wrk/run.sh\`"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- machine: nproc $(nproc); CPU: ${cpu_model:-unknown}; kernel $(uname -r)"
echo "- $nginx_version; $haproxy_version"
echo "- $wrk_version"
echo "- $rustc_version; $augur_version (git $git_rev)"
echo "- setup: proxy alone on CPU $PROXY_CPU (1 worker thread each); wrk -t1 -c$CONNECTIONS -d$DURATION and backend nginx (1 worker, return 200 \"hello\\n\") on CPU $LOAD_CPU; upstream keepalive in all three; CPU = utime+stime of all proxy processes from /proc/PID/stat (CLK_TCK $CLK_TCK)"
echo "- runs: $RUNS per proxy, interleaved (augur, nginx, haproxy); medians below"
echo
echo "| proxy | req/s (median) | p50 µs | p99 µs | CPU µs/req (median) | CPU/req vs nginx | CPU/req vs haproxy |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for proxy in "${PROXIES[@]}"; do
    printf '| %s | %.0f | %.0f | %.0f | %.2f | %s | %s |\n' "$proxy" "${MED_RPS[$proxy]}" \
        "${MED_P50[$proxy]}" "${MED_P99[$proxy]}" "${MED_CPU[$proxy]}" \
        "$(ratio "${MED_CPU[$proxy]}" "${MED_CPU[nginx]}")" "$(ratio "${MED_CPU[$proxy]}" "${MED_CPU[haproxy]}")"
done
echo
echo "Per-run raw numbers (backend conns = new connections the backend accepted during the run):"
echo
echo "| run | proxy | req/s | p50 µs | p99 µs | requests | CPU ticks | CPU µs/req | non-2xx | socket errors | backend conns |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$RAW"

bad=$(awk -F'\t' '$9 > 0 || $10 > 0' "$RAW")
if [[ -n $bad ]]; then
    echo
    echo "WARNING: some runs had non-2xx responses or socket errors (see the raw table; wrk output in $TMP when KEEP_TMP=1)."
fi
