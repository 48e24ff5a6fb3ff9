#!/usr/bin/env bash
# Proxy benchmark: augur vs nginx vs HAProxy as HTTP reverse proxies on loopback, all in front
# of the same nginx backend. One worker thread each, the proxy under test alone on CPU 1, wrk
# and the backend on CPU 0. Reports req/s, p50/p99 latency and proxy CPU µs per request.
#
# Usage: [RUNS=3] [DURATION=10s] [CONNECTIONS=32] [WARMUP=2s] benches/wrk/run.sh
# Other knobs: AUGUR_BIN=path (skip the cargo build and use this binary), SKIP_BUILD=1,
#              KEEP_TMP=1 (keep the temp dir with configs and logs), AUGUR_BASE_BIN=path
#              (a second augur, e.g. the commit before a change, measured in the same run as
#              `augur-base`, interleaved with the others).

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
BASE_PORT=18084
BASE_ADMIN_PORT=18092
PROXY_CPU=1
LOAD_CPU=0
PROXIES=(augur nginx haproxy)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
AUGUR_BIN=${AUGUR_BIN:-}
AUGUR_BASE_BIN=${AUGUR_BASE_BIN:-}
if [[ -n $AUGUR_BASE_BIN ]]; then PROXIES=(augur augur-base nginx haproxy); fi
LOG_TAG=bench
# shellcheck source=../lib.sh
source "$SCRIPT_DIR/../lib.sh"

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
[[ -z $AUGUR_BASE_BIN || -x $AUGUR_BASE_BIN ]] || die "augur binary not found at $AUGUR_BASE_BIN"

ports_free "$BACKEND_PORT" "$BACKEND_STATUS_PORT" "$AUGUR_PORT" "$NGINX_PORT" "$HAPROXY_PORT" "$AUGUR_ADMIN_PORT"
[[ -z $AUGUR_BASE_BIN ]] || ports_free "$BASE_PORT" "$BASE_ADMIN_PORT"

# --- temp dir, process tracking, cleanup ---------------------------------------------------

PIDS=()
stop_processes() {
    if [[ ${#PIDS[@]} -gt 0 ]]; then stop "${PIDS[@]}"; fi
}
temp_dir augur-bench "$KEEP_TMP"

# --- configs -------------------------------------------------------------------------------

HAVE_STUB_STATUS=0
if nginx -V 2>&1 | grep -q http_stub_status_module; then HAVE_STUB_STATUS=1; fi

mkdir -p "$TMP/backend" "$TMP/nginx" "$TMP/haproxy" "$TMP/augur" "$TMP/augur-base"

{
    nginx_head "$TMP/backend" 4096
    cat <<EOF
    default_type text/plain;
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
    nginx_head "$TMP/nginx" 4096
    nginx_proxy "$NGINX_PORT" 32 "        server $HOST:$BACKEND_PORT;"
} >"$TMP/nginx/nginx.conf"

{
    haproxy_head "$TMP/haproxy" 4096 "$HAPROXY_PORT"
    echo "    server s1 $HOST:$BACKEND_PORT"
} >"$TMP/haproxy/haproxy.cfg"

{
    augur_head "$TMP/augur" "$AUGUR_ADMIN_PORT" "$AUGUR_PORT" 1s
    echo "  - { name: b, policy: round_robin, backends: [ { addr: $HOST:$BACKEND_PORT } ] }"
} >"$TMP/augur/augur.yaml"
{
    augur_head "$TMP/augur-base" "$BASE_ADMIN_PORT" "$BASE_PORT" 1s
    echo "  - { name: b, policy: round_robin, backends: [ { addr: $HOST:$BACKEND_PORT } ] }"
} >"$TMP/augur-base/augur.yaml"

# --- start everything ----------------------------------------------------------------------

declare -A PID PORT
PORT[augur]=$AUGUR_PORT
PORT[augur-base]=$BASE_PORT
PORT[nginx]=$NGINX_PORT
PORT[haproxy]=$HAPROXY_PORT

# start NAME PORT CPU OUT LOG CMD...: start NAME pinned to CPU (output to OUT), track it, and
# wait until it says hello on PORT (showing LOG if it does not).
start() {
    local name=$1 port=$2 cpu=$3 out=$4 logfile=$5
    shift 5
    pinned "$cpu" "$out" "$@"
    PID[$name]=$STARTED
    PIDS+=("$STARTED")
    wait_ready "$name" "$STARTED" "http://$HOST:$port/" hello "$logfile"
}

log "temp dir: $TMP"
start backend "$BACKEND_PORT" "$LOAD_CPU" "$TMP/backend/stdout.log" "$TMP/backend/error.log" \
    nginx -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf"
start augur "$AUGUR_PORT" "$PROXY_CPU" "$TMP/augur/augur.log" "$TMP/augur/augur.log" \
    "$AUGUR_BIN" run -c "$TMP/augur/augur.yaml"
if [[ -n $AUGUR_BASE_BIN ]]; then
    start augur-base "$BASE_PORT" "$PROXY_CPU" "$TMP/augur-base/augur.log" "$TMP/augur-base/augur.log" \
        "$AUGUR_BASE_BIN" run -c "$TMP/augur-base/augur.yaml"
fi
start nginx "$NGINX_PORT" "$PROXY_CPU" "$TMP/nginx/stdout.log" "$TMP/nginx/error.log" \
    nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
start haproxy "$HAPROXY_PORT" "$PROXY_CPU" "$TMP/haproxy/haproxy.log" "$TMP/haproxy/haproxy.log" \
    haproxy -f "$TMP/haproxy/haproxy.cfg" -db

# --- sanity check --------------------------------------------------------------------------

for proxy in "${PROXIES[@]}"; do
    url="http://$HOST:${PORT[$proxy]}/"
    out=$(curl -sS --max-time 5 -o "$TMP/sanity.body" -w '%{http_code}' "$url") || die "$proxy: curl $url failed"
    [[ $out == 200 ]] || die "$proxy: expected 200 from $url, got $out"
    [[ $(<"$TMP/sanity.body") == hello ]] || die "$proxy: expected body 'hello' from $url, got '$(<"$TMP/sanity.body")'"
    log "sanity ok: $proxy ($url -> 200 hello)"
done

# --- measurement helpers -------------------------------------------------------------------

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

# column COLUMN PROXY: that column of $RAW over the proxy's runs.
column() { awk -F'\t' -v c="$1" -v p="$2" '$2 == p { print $c }' "$RAW"; }

declare -A MED_RPS MED_P50 MED_P99 MED_CPU
for proxy in "${PROXIES[@]}"; do
    MED_RPS[$proxy]=$(column 3 "$proxy" | median)
    MED_P50[$proxy]=$(column 4 "$proxy" | median)
    MED_P99[$proxy]=$(column 5 "$proxy" | median)
    MED_CPU[$proxy]=$(column 8 "$proxy" | median)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

cpu_model=$(cpu_model)
nginx_version=$(nginx -v 2>&1)
haproxy_version=$(haproxy -v 2>&1 | head -n 1 || true)
wrk_version=$(wrk -v 2>&1 | head -n 1 || true)
rustc_version=$(rustc -V 2>/dev/null || echo "rustc not found")
augur_version=$("$AUGUR_BIN" --version 2>/dev/null || echo unknown)
[[ -z $AUGUR_BASE_BIN ]] || augur_version="$augur_version; augur-base: $AUGUR_BASE_BIN"
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
echo "- runs: $RUNS per proxy, interleaved (${PROXIES[*]}); medians below"
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
