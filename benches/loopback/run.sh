#!/usr/bin/env bash
# Routing-quality benchmark on loopback: real processes, real sockets. Ten `augur backend`
# processes model a service (8 requests in service at once, normal service times, mean 50 ms);
# in front of them, one proxy at a time: augur under each policy, nginx (least_conn) and
# HAProxy (leastconn). An open-loop Poisson load generator (`loadgen`) offers 70 % of the
# scenario's capacity and measures latency from each request's scheduled send time.
#
# Scenarios (see README.md): S2 half the backends 2x slower; S3 three backends 2.5x slower
# for 10 s of every 20 s, staggered; S4 two backends stall 200 ms every 10 s +- 1 s.
#
# Usage: [SCENARIOS="S2 S3 S4"] [RUNS=1] [DURATION=60s] [WARMUP=5s] [S3_WARMUP=120s]
#        [LOAD=0.70] [RATE=N] [PROXIES="augur:predictive ... nginx haproxy"] benches/loopback/run.sh
# Other knobs: SKIP_BUILD=1 (use already built binaries), KEEP_TMP=1, MEAN_MS=50,
#              TIMEOUT=2s (client timeout; a timed-out request counts at TIMEOUT in the
#              percentiles). Binaries come from ${CARGO_TARGET_DIR:-target}/release.
set -euo pipefail

SCENARIOS=${SCENARIOS:-S2 S3 S4}
RUNS=${RUNS:-1}
DURATION=${DURATION:-60s}
WARMUP=${WARMUP:-5s}
S3_WARMUP=${S3_WARMUP:-120s}
LOAD=${LOAD:-0.70}
RATE=${RATE:-}
MEAN_MS=${MEAN_MS:-50}
TIMEOUT=${TIMEOUT:-2s}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
PROXIES=${PROXIES:-augur:predictive augur:p2c_peak_ewma augur:p2c_least_request augur:least_conn augur:round_robin nginx haproxy}
BASELINE=augur:p2c_peak_ewma

HOST=127.0.0.1
BACKENDS=10
BACKEND_BASE_PORT=19000 # backends on 19001..19010
CONCURRENCY=8
AUGUR_PORT=19081
AUGUR_ADMIN_PORT=19091
NGINX_PORT=19082
HAPROXY_PORT=19083
PROXY_CPU=1
LOAD_CPU=0

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
AUGUR_BIN=$TARGET_DIR/release/augur
LOADGEN_BIN=$TARGET_DIR/release/loadgen
LOG_TAG=loopback
# shellcheck source=../lib.sh
source "$SCRIPT_DIR/../lib.sh"

# --- prerequisites -------------------------------------------------------------------------

PATH=$PATH:/usr/sbin:/sbin
for tool in nginx haproxy curl taskset; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install nginx-light haproxy curl util-linux)"
done
[[ $(nproc) -ge 2 ]] || die "need at least 2 CPUs (proxy on CPU $PROXY_CPU, load on CPU $LOAD_CPU)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $MEAN_MS =~ ^[1-9][0-9]*$ ]] || die "MEAN_MS must be a positive integer"
for s in $SCENARIOS; do [[ $s == S2 || $s == S3 || $s == S4 ]] || die "unknown scenario $s (S2, S3, S4)"; done
for p in $PROXIES; do
    [[ $p == nginx || $p == haproxy || $p =~ ^augur:(predictive|p2c_peak_ewma|p2c_least_request|least_conn|round_robin|random)$ ]] ||
        die "unknown proxy $p (augur:POLICY, nginx, haproxy)"
done
# An open-loop generator may need many sockets when a proxy falls behind.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ $SKIP_BUILD != 1 ]]; then
    log "building augur and loadgen (cargo build --release, target dir $TARGET_DIR)"
    (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p augur-proxy --bin augur >&2)
    (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p augur-benches --bin loadgen >&2)
fi
[[ -x $AUGUR_BIN ]] || die "augur binary not found at $AUGUR_BIN"
[[ -x $LOADGEN_BIN ]] || die "loadgen binary not found at $LOADGEN_BIN"

ports_free $(seq $((BACKEND_BASE_PORT + 1)) $((BACKEND_BASE_PORT + BACKENDS))) \
    "$AUGUR_PORT" "$AUGUR_ADMIN_PORT" "$NGINX_PORT" "$HAPROXY_PORT"

# --- temp dir, process tracking, cleanup ---------------------------------------------------

BACKEND_PIDS=()
PROXY_PID=
stop_processes() {
    if [[ -n $PROXY_PID ]]; then stop "$PROXY_PID"; fi
    if [[ ${#BACKEND_PIDS[@]} -gt 0 ]]; then stop "${BACKEND_PIDS[@]}"; fi
}
temp_dir augur-loopback "$KEEP_TMP"

# --- scenarios -----------------------------------------------------------------------------

# Flags of backend I (1-based) in scenario S, on top of the common ones.
backend_flags() {
    local s=$1 i=$2
    case $s in
        S2) if ((i <= BACKENDS / 2)); then echo "--delay $((2 * MEAN_MS))ms"; else echo "--delay ${MEAN_MS}ms"; fi ;;
        S3)
            echo "--delay ${MEAN_MS}ms"
            # Phases 0, 1/3 and 2/3 of the cycle: one or two of the three are slow at any time.
            case $i in
                1) echo "--degrade-period 20s --degrade-length 10s --degrade-factor 2.5 --degrade-phase 0ms" ;;
                2) echo "--degrade-period 20s --degrade-length 10s --degrade-factor 2.5 --degrade-phase 6667ms" ;;
                3) echo "--degrade-period 20s --degrade-length 10s --degrade-factor 2.5 --degrade-phase 13333ms" ;;
            esac
            ;;
        S4)
            echo "--delay ${MEAN_MS}ms"
            if ((i <= 2)); then echo "--stall-every 10s --stall-jitter 1s --stall 200ms"; fi
            ;;
    esac
}

# Capacity of scenario S in req/s. A normal service time with sigma = mean, negative draws
# served at once, averages 1.083 x the mean; one backend serves CONCURRENCY / that per second.
# S3 counts two of its three seasonal backends slow (the worst moment); S4 loses 2 % of two
# backends' time to stalls.
capacity() {
    awk -v s="$1" -v n="$BACKENDS" -v c="$CONCURRENCY" -v m="$MEAN_MS" 'BEGIN {
        one = c / (1.083 * m / 1000)
        if (s == "S2") cap = (n / 2) * one + (n - n / 2) * one / 2
        else if (s == "S3") cap = (n - 2) * one + 2 * one / 2.5
        else cap = n * one - 2 * one * 0.02
        printf "%.0f", cap }'
}

start_backends() {
    local s=$1 i port
    local -a extra
    mkdir -p "$TMP/$s"
    for ((i = 1; i <= BACKENDS; i++)); do
        port=$((BACKEND_BASE_PORT + i))
        read -r -a extra <<<"$(backend_flags "$s" "$i" | tr '\n' ' ')"
        pinned "$LOAD_CPU" "$TMP/$s/backend-$i.log" "$AUGUR_BIN" backend --listen "$HOST:$port" \
            --name "b$i" --concurrency "$CONCURRENCY" --delay-dist normal "${extra[@]}"
        BACKEND_PIDS+=("$STARTED")
    done
    for ((i = 1; i <= BACKENDS; i++)); do
        port=$((BACKEND_BASE_PORT + i))
        wait_ready "backend b$i" "${BACKEND_PIDS[i - 1]}" "http://$HOST:$port/" '"backend":"b' "$TMP/$s/backend-$i.log"
    done
    log "$s: $BACKENDS backends ready on $HOST:$((BACKEND_BASE_PORT + 1))-$((BACKEND_BASE_PORT + BACKENDS))"
}

stop_backends() {
    stop "${BACKEND_PIDS[@]}"
    BACKEND_PIDS=()
}

# --- proxy configs -------------------------------------------------------------------------

write_configs() {
    local dir=$TMP/conf i servers=
    mkdir -p "$dir/nginx" "$dir/haproxy"
    for ((i = 1; i <= BACKENDS; i++)); do servers+=$'\n'"        server $HOST:$((BACKEND_BASE_PORT + i));"; done
    {
        nginx_head "$dir/nginx" 8192
        nginx_proxy "$NGINX_PORT" 256 "        least_conn;$servers"
    } >"$dir/nginx/nginx.conf"

    {
        haproxy_head "$dir/haproxy" 8000 "$HAPROXY_PORT"
        echo "    balance leastconn"
        for ((i = 1; i <= BACKENDS; i++)); do echo "    server b$i $HOST:$((BACKEND_BASE_PORT + i))"; done
    } >"$dir/haproxy/haproxy.cfg"
}

write_augur_config() {
    local policy=$1 dir=$TMP/conf/augur-$1 i
    mkdir -p "$dir"
    {
        augur_head "$dir" "$AUGUR_ADMIN_PORT" "$AUGUR_PORT" 0s
        cat <<EOF
  - name: b
    policy: $policy
    read_timeout: 10s
    backends:
EOF
        for ((i = 1; i <= BACKENDS; i++)); do echo "      - { addr: $HOST:$((BACKEND_BASE_PORT + i)) }"; done
    } >"$dir/augur.yaml"
    "$AUGUR_BIN" check -c "$dir/augur.yaml" >/dev/null || die "augur rejected $dir/augur.yaml"
}

# start_proxy NAME: start it alone on PROXY_CPU, set PROXY_PID and PROXY_PORT, wait until ready.
start_proxy() {
    local name=$1 logfile dir=$TMP/conf
    case $name in
        augur:*)
            logfile=$dir/augur-${name#augur:}/augur.log
            pinned "$PROXY_CPU" "$logfile" "$AUGUR_BIN" run -c "$dir/augur-${name#augur:}/augur.yaml"
            PROXY_PORT=$AUGUR_PORT
            ;;
        nginx)
            logfile=$dir/nginx/error.log
            pinned "$PROXY_CPU" "$dir/nginx/stdout.log" nginx -p "$dir/nginx" -e "$logfile" -c "$dir/nginx/nginx.conf"
            PROXY_PORT=$NGINX_PORT
            ;;
        haproxy)
            logfile=$dir/haproxy/haproxy.log
            pinned "$PROXY_CPU" "$logfile" haproxy -f "$dir/haproxy/haproxy.cfg" -db
            PROXY_PORT=$HAPROXY_PORT
            ;;
    esac
    PROXY_PID=$STARTED
    wait_ready "$name" "$PROXY_PID" "http://$HOST:$PROXY_PORT/" '"backend":"b' "$logfile"
}

stop_proxy() {
    stop "$PROXY_PID"
    PROXY_PID=
    wait_port_free "$PROXY_PORT"
    if [[ $1 == augur:* ]]; then wait_port_free "$AUGUR_ADMIN_PORT"; fi
}

# --- run -----------------------------------------------------------------------------------

RAW=$TMP/raw.tsv
: >"$RAW"
json_field() { grep -o "\"$2\":[0-9.]*" <<<"$1" | cut -d: -f2; }

write_configs
for p in $PROXIES; do
    if [[ $p == augur:* ]]; then write_augur_config "${p#augur:}"; fi
done
read -r -a PROXY_LIST <<<"$PROXIES"
declare -A SCEN_RATE SCEN_WARMUP

for s in $SCENARIOS; do
    cap=$(capacity "$s")
    rate=${RATE:-$(awk -v c="$cap" -v l="$LOAD" 'BEGIN { printf "%.0f", c * l }')}
    warmup=$WARMUP
    if [[ $s == S3 ]]; then warmup=$S3_WARMUP; fi
    SCEN_RATE[$s]="$rate req/s (capacity $cap req/s)"
    SCEN_WARMUP[$s]=$warmup
    start_backends "$s"
    for ((run = 1; run <= RUNS; run++)); do
        # Rotate the order each run so no proxy always goes first.
        n=${#PROXY_LIST[@]}
        for ((k = 0; k < n; k++)); do
            proxy=${PROXY_LIST[(k + run - 1) % n]}
            start_proxy "$proxy"
            out=$(taskset -c "$LOAD_CPU" "$LOADGEN_BIN" --url "http://$HOST:$PROXY_PORT/" --rate "$rate" \
                --duration "$DURATION" --warmup "$warmup" --timeout "$TIMEOUT" --seed "$run") ||
                die "$proxy: loadgen failed"
            kill -0 "$PROXY_PID" 2>/dev/null || die "$proxy died during the run"
            stop_proxy "$proxy"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$run" "$proxy" \
                "$(json_field "$out" sent)" "$(json_field "$out" ok)" "$(json_field "$out" errors)" \
                "$(json_field "$out" timeouts)" "$(json_field "$out" p50_us)" "$(json_field "$out" p99_us)" \
                "$(json_field "$out" p999_us)" "$(json_field "$out" max_us)" >>"$RAW"
            log "$s run $run $proxy: $out"
        done
    done
    stop_backends
done

# --- report --------------------------------------------------------------------------------

# column SCEN PROXY COL: that column over the runs.
column() { awk -F'\t' -v s="$1" -v p="$2" -v c="$3" '$1 == s && $3 == p { print $c }' "$RAW"; }
# ratios SCEN PROXY COL: per run, PROXY's column over the baseline's in the same run.
ratios() {
    awk -F'\t' -v s="$1" -v p="$2" -v b="$BASELINE" -v c="$3" '
        $1 == s && $3 == b { base[$2] = $c }
        $1 == s && $3 == p { mine[$2] = $c }
        END { for (r in mine) if (base[r] > 0) printf "%.2f\n", mine[r] / base[r] }' "$RAW"
}
ms() { awk -v v="$1" 'BEGIN { if (v == "n/a") print v; else printf "%.1f", v / 1000 }'; }

cpu_model=$(cpu_model)
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "## Routing quality on loopback (open-loop, $BACKENDS backends)"
echo
echo "Command: \`SCENARIOS=\"$SCENARIOS\" RUNS=$RUNS DURATION=$DURATION WARMUP=$WARMUP S3_WARMUP=$S3_WARMUP LOAD=$LOAD benches/loopback/run.sh\`"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); git $git_rev; $("$AUGUR_BIN" --version 2>/dev/null || echo augur)"
echo "- machine: nproc $(nproc); CPU: ${cpu_model:-unknown}; kernel $(uname -r); $(nginx -v 2>&1); $(haproxy -v 2>&1 | head -n 1)"
echo "- backends: \`augur backend --concurrency $CONCURRENCY --delay-dist normal --delay ${MEAN_MS}ms\` (sigma = mean) on CPU $LOAD_CPU with loadgen; proxy alone on CPU $PROXY_CPU, 1 worker thread"
echo "- latency from each request's scheduled send time; a request timing out after $TIMEOUT counts at $TIMEOUT; runs per proxy: $RUNS (medians; ratios are medians of per-run ratios to $BASELINE)"
for s in $SCENARIOS; do
    echo
    echo "### $s: load ${SCEN_RATE[$s]}, warm-up ${SCEN_WARMUP[$s]}, measured $DURATION"
    echo
    echo "| proxy / policy | p50 ms | p99 ms | p99.9 ms | max ms | errors | timeouts | p99 vs p2c_peak_ewma | p99.9 vs p2c_peak_ewma |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for p in $PROXIES; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" \
            "$(ms "$(column "$s" "$p" 8 | median)")" "$(ms "$(column "$s" "$p" 9 | median)")" \
            "$(ms "$(column "$s" "$p" 10 | median)")" "$(ms "$(column "$s" "$p" 11 | median)")" \
            "$(column "$s" "$p" 6 | awk '{ t += $1 } END { print t + 0 }')" \
            "$(column "$s" "$p" 7 | awk '{ t += $1 } END { print t + 0 }')" \
            "$(ratios "$s" "$p" 9 | median)" "$(ratios "$s" "$p" 10 | median)"
    done
done
echo
echo "Per-run raw numbers (µs):"
echo
echo "| scenario | run | proxy | sent | ok | errors | timeouts | p50 | p99 | p99.9 | max |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$RAW"
