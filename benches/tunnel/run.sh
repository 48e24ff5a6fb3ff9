#!/usr/bin/env bash
# Tunnel benchmark: the same transfers several ways, interleaved, in one run:
#   direct  - kernel TCP to the server over a veth pair (no tunnel at all);
#   augur   - through augur's userspace tunnel (boringtun + smoltcp) to wireguard-go;
#   augur-l4 - small requests through augur's TCP relay (no HTTP proxying) and the same tunnel;
#   augur-pair - augur <-> augur: the far end is a second augur (`forward:`) in the namespace;
#   wg-pair - wireguard-go <-> wireguard-go with kernel TCP on both ends;
#   augur-plain - augur without a tunnel (its proxying alone, for scale).
# The server side is a network namespace with wireguard-go, a bulk server (bulk.py) and an
# `augur backend`; the wg-pair client side is a second namespace with its own wireguard-go.
# Measures a large download and upload (Mbit/s) and many small requests (wrk: req/s, p99),
# repeated RUNS times, and prints medians. For small requests it also accounts the CPU time
# of every process taking part (augur, wrk, the backend, wireguard-go) per request: on a
# machine where they share the cores, 1e6 us x cores / (everyone but augur's us per request)
# is the most any proxy could reach on that path. Needs root, wireguard-go, wg, wrk, python3.
#
# Usage: [RUNS=3] [BYTES=500000000] [DURATION=10s] [CONNECTIONS=32] benches/tunnel/run.sh
#        AUGUR_BIN=path skips the build.
set -euo pipefail
export LC_ALL=C # `times` and awk agree on the decimal point

RUNS=${RUNS:-3}
BYTES=${BYTES:-500000000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
KINDS=${KINDS:-down up small}
PATHS=${PATHS:-direct augur-plain augur augur-l4 augur-pair wg-pair}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BULK="$SCRIPT_DIR/bulk.py"
SRV=augur-bench-srv
CLI=augur-bench-cli
TMP=$(mktemp -d /tmp/augur-tunnel-bench.XXXXXX)
PIDS=()
LOG_TAG=tunnel-bench
# shellcheck source=../lib.sh
source "$SCRIPT_DIR/../lib.sh"

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    ip link del abench0 2>/dev/null || true
    if [[ -n ${RMEM_WAS:-} ]]; then
        sysctl -qw net.core.rmem_default="$RDEF_WAS" net.core.wmem_default="$WDEF_WAS"
        sysctl -qw net.core.rmem_max="$RMEM_WAS" net.core.wmem_max="$WMEM_WAS"
    fi
    [[ -n ${PROFILE:-} ]] && cp "$TMP/augur.log" /tmp/augur-bench.log
    rm -rf "$TMP"
}
trap cleanup EXIT

for tool in wireguard-go wg wrk python3 ip; do
    command -v "$tool" >/dev/null || die "missing $tool"
done
if [[ -z ${AUGUR_BIN:-} ]]; then
    log "building augur (release)"
    (cd "$REPO" && cargo build --release -q -p augur-proxy)
    AUGUR_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/augur"
fi

# Userspace WireGuard needs big UDP socket buffers. augur asks for 8 MiB (capped by rmem_max);
# this Debian wireguard-go asks for nothing and gets rmem_default, whose 208 KiB drops bursts
# (UdpRcvbufErrors) on the augur and the wg-pair paths alike. Both are raised for the run and
# restored on exit (they are global, not per namespace).
RMEM_WAS=$(sysctl -n net.core.rmem_max)
WMEM_WAS=$(sysctl -n net.core.wmem_max)
RDEF_WAS=$(sysctl -n net.core.rmem_default)
WDEF_WAS=$(sysctl -n net.core.wmem_default)
sysctl -qw net.core.rmem_max=16777216 net.core.wmem_max=16777216
sysctl -qw net.core.rmem_default=4194304 net.core.wmem_default=4194304

# --- namespaces ------------------------------------------------------------------------------
ip netns del "$SRV" 2>/dev/null || true
ip netns del "$CLI" 2>/dev/null || true
ip netns add "$SRV"
ip netns add "$CLI"
# host <-> server: 10.213.200.1 / .2
ip link add abench0 type veth peer name eth0 netns "$SRV"
ip addr add 10.213.200.1/24 dev abench0
ip link set abench0 up
ip -n "$SRV" addr add 10.213.200.2/24 dev eth0
ip -n "$SRV" link set eth0 up
ip -n "$SRV" link set lo up
# wg-pair client <-> server: 10.213.201.1 (client) / .2 (server)
ip -n "$CLI" link add eth1 type veth peer name eth1 netns "$SRV"
ip -n "$CLI" addr add 10.213.201.1/24 dev eth1
ip -n "$CLI" link set eth1 up
ip -n "$CLI" link set lo up
ip -n "$SRV" addr add 10.213.201.2/24 dev eth1
ip -n "$SRV" link set eth1 up

# --- keys and WireGuard ----------------------------------------------------------------------
"$AUGUR_BIN" keygen > "$TMP/augur.key"
chmod 600 "$TMP/augur.key"
AUGUR_PUB=$("$AUGUR_BIN" pubkey < "$TMP/augur.key")
wg genkey > "$TMP/srv.key"
wg genkey > "$TMP/cli.key"
SRV_PUB=$(wg pubkey < "$TMP/srv.key")
CLI_PUB=$(wg pubkey < "$TMP/cli.key")

WG_PIDS=()
start_wg() { # ns iface
    WG_PROCESS_FOREGROUND=1 ip netns exec "$1" wireguard-go "$2" >/dev/null 2>&1 &
    PIDS+=($!)
    WG_PIDS+=($!)
    poll 100 ip -n "$1" link show "$2" >/dev/null 2>&1 || die "wireguard-go did not create $2"
}
start_wg "$SRV" wgbsrv
ip netns exec "$SRV" wg set wgbsrv private-key "$TMP/srv.key" listen-port 51820 \
    peer "$AUGUR_PUB" allowed-ips 10.20.255.1/32 \
    peer "$CLI_PUB" allowed-ips 10.20.255.2/32
ip -n "$SRV" addr add 10.20.1.10/16 dev wgbsrv
ip -n "$SRV" link set wgbsrv up
start_wg "$CLI" wgbcli
ip netns exec "$CLI" wg set wgbcli private-key "$TMP/cli.key" \
    peer "$SRV_PUB" allowed-ips 10.20.0.0/16 endpoint 10.213.201.2:51820
ip -n "$CLI" addr add 10.20.255.2/16 dev wgbcli
ip -n "$CLI" link set wgbcli up

# --- servers ---------------------------------------------------------------------------------
ip netns exec "$SRV" python3 "$BULK" server 5001 &
PIDS+=($!)
ip netns exec "$SRV" "$AUGUR_BIN" backend --listen 0.0.0.0:8080 --name far >/dev/null 2>&1 &
BACKEND_PID=$!
PIDS+=($!)

# The far end of the augur-pair path: a second augur in the server namespace terminating a
# tunnel (10.30.0.0/16) and forwarding to the same servers.
"$AUGUR_BIN" keygen > "$TMP/remote.key"
chmod 600 "$TMP/remote.key"
REMOTE_PUB=$("$AUGUR_BIN" pubkey < "$TMP/remote.key")
# augur_server NAME: the server section of augur NAME's config, its files in TMP.
augur_server() {
    printf 'server:\n  pid_file: %s\n  upgrade_sock: %s\n  log_level: %s\n' \
        "$TMP/$1.pid" "$TMP/$1.sock" "${LOG_LEVEL:-warn}"
}
{
    augur_server remote
    cat <<EOF
tunnels:
  - name: near
    private_key_file: $TMP/remote.key
    address: 10.30.1.10
    listen_port: 51821
    peer:
      public_key: "$AUGUR_PUB"
      allowed_ips: [10.30.255.1/32]
    forward:
      - { port: 8080, to: 127.0.0.1:8080 }
      - { port: 5001, to: 127.0.0.1:5001 }
listeners:
  - { name: idle, bind: 127.0.0.1:18999, protocol: tcp, upstream: idle }
upstreams:
  - name: idle
    backends: [ { addr: 127.0.0.1:8080 } ]
EOF
} > "$TMP/remote.yaml"
ip netns exec "$SRV" "$AUGUR_BIN" run -c "$TMP/remote.yaml" > "$TMP/remote.log" 2>&1 &
REMOTE_PID=$!
PIDS+=($!)

{
    augur_server augur
    cat <<EOF
admin:
  bind: 127.0.0.1:18991
tunnels:
  - name: far
    private_key_file: $TMP/augur.key
    address: 10.20.255.1
    peer:
      public_key: "$SRV_PUB"
      endpoint: 10.213.200.2:51820
      allowed_ips: [10.20.0.0/16]
  - name: pair
    private_key_file: $TMP/augur.key
    address: 10.30.255.1
    peer:
      public_key: "$REMOTE_PUB"
      endpoint: 10.213.200.2:51821
      allowed_ips: [10.30.0.0/16]
listeners:
  - { name: web, bind: 127.0.0.1:18980, protocol: http, routes: [ { upstream: api } ] }
  - { name: bulk, bind: 127.0.0.1:18950, protocol: tcp, upstream: bulk }
  - { name: plain, bind: 127.0.0.1:18981, protocol: http, routes: [ { upstream: plain } ] }
  - { name: plain-bulk, bind: 127.0.0.1:18951, protocol: tcp, upstream: plain-bulk }
  - { name: l4, bind: 127.0.0.1:18982, protocol: tcp, upstream: api-l4 }
  - { name: pair, bind: 127.0.0.1:18983, protocol: http, routes: [ { upstream: pair } ] }
  - { name: pair-bulk, bind: 127.0.0.1:18952, protocol: tcp, upstream: pair-bulk }
upstreams:
  - name: api
    backends: [ { addr: 10.20.1.10:8080, via: far } ]
  - name: bulk
    backends: [ { addr: 10.20.1.10:5001, via: far } ]
  - name: plain
    backends: [ { addr: 10.213.200.2:8080 } ]
  - name: plain-bulk
    backends: [ { addr: 10.213.200.2:5001 } ]
  - name: api-l4
    backends: [ { addr: 10.20.1.10:8080, via: far } ]
  - name: pair
    backends: [ { addr: 10.30.1.10:8080, via: pair } ]
  - name: pair-bulk
    backends: [ { addr: 10.30.1.10:5001, via: pair } ]
EOF
} > "$TMP/augur.yaml"
"$AUGUR_BIN" run -c "$TMP/augur.yaml" > "$TMP/augur.log" 2>&1 &
AUGUR_PID=$!
PIDS+=($AUGUR_PID)

wait_http() { # command prefix..., url
    poll 200 "$@" >/dev/null 2>&1 && return
    cat "$TMP/augur.log" "$TMP/remote.log" >&2
    die "not ready: $*"
}
wait_http curl -sf -o /dev/null http://127.0.0.1:18980/
wait_http curl -sf -o /dev/null http://127.0.0.1:18982/
wait_http curl -sf -o /dev/null http://127.0.0.1:18983/
wait_http ip netns exec "$CLI" curl -sf -o /dev/null http://10.20.1.10:8080/
wait_http curl -sf -o /dev/null http://10.213.200.2:8080/

# --- measurements ----------------------------------------------------------------------------
declare -A RESULT
run_path() { # path kind -> prints one figure (Mbit/s, or "req/s p99ms")
    local path=$1 kind=$2
    case "$kind" in
    down | up)
        case "$path" in
        direct) python3 "$BULK" "$kind" 10.213.200.2 5001 "$BYTES" ;;
        augur) python3 "$BULK" "$kind" 127.0.0.1 18950 "$BYTES" ;;
        augur-plain) python3 "$BULK" "$kind" 127.0.0.1 18951 "$BYTES" ;;
        augur-pair) python3 "$BULK" "$kind" 127.0.0.1 18952 "$BYTES" ;;
        wg-pair) ip netns exec "$CLI" python3 "$BULK" "$kind" 10.20.1.10 5001 "$BYTES" ;;
        esac
        ;;
    small)
        local url prefix=()
        case "$path" in
        direct) url=http://10.213.200.2:8080/ ;;
        augur) url=http://127.0.0.1:18980/ ;;
        augur-plain) url=http://127.0.0.1:18981/ ;;
        augur-l4) url=http://127.0.0.1:18982/ ;;
        augur-pair) url=http://127.0.0.1:18983/ ;;
        wg-pair) url=http://10.20.1.10:8080/; prefix=(ip netns exec "$CLI") ;;
        esac
        # CPU clock ticks of augur (both ends on augur-pair) and of everyone else; wrk's own
        # comes from its subshell's `times` (children's user and system seconds).
        local augur_pids=("$AUGUR_PID") cpu0 cpu1 other0 other1 wrk_cpu
        [[ $path == augur-pair ]] && augur_pids+=("$REMOTE_PID")
        cpu0=$(cpu_ticks "${augur_pids[@]}")
        other0=$(cpu_ticks "${WG_PIDS[@]}" "$BACKEND_PID")
        wrk_cpu=$( ("${prefix[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$url" > "$TMP/wrk.out"; times) |
            awk 'NR == 2 {s = 0; for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); s += a[1] * 60 + a[2]}; print s}')
        cpu1=$(cpu_ticks "${augur_pids[@]}")
        other1=$(cpu_ticks "${WG_PIDS[@]}" "$BACKEND_PID")
        local rps p99 total us others hz
        hz=$(getconf CLK_TCK)
        rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.out")
        total=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
        # CPU microseconds per request: augur's, on the paths through it, and everyone else's
        # (wrk, the backend, the wireguard-go processes; idle ones add nothing).
        us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$total" -v hz="$hz" \
            'BEGIN {printf "%.1f", (b - a) / hz * 1e6 / n}')
        [[ $path == augur* ]] || us=-
        others=$(awk -v a="$other0" -v b="$other1" -v w="$wrk_cpu" -v n="$total" -v hz="$hz" \
            'BEGIN {printf "%.1f", ((b - a) / hz + w) * 1e6 / n}')
        p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$TMP/wrk.out")
        echo "$rps $p99 $us $others"
        ;;
    esac
}

RSS_MAX=0
for run in $(seq "$RUNS"); do
    for kind in $KINDS; do
        for path in $PATHS; do
            # augur-l4 differs from augur in small requests only (bulk already uses the relay).
            [[ $path == augur-l4 && $kind != small ]] && continue
            if [[ $path == augur && -n ${PROFILE:-} ]]; then
                if [[ $PROFILE == top ]]; then
                    (sleep 2; top -b -H -n 2 -d 2 -w 120 | awk '/^top -/ {n++} n==2' | sed -n '7,22p' >&2) &
                else
                    (sleep 1; perf record -q -g -o /tmp/perf.data -p "$AUGUR_PID" -- sleep 3 >/dev/null 2>&1) &
                fi
            fi
            figure=$(run_path "$path" "$kind")
            RESULT[$path,$kind,$run]=$figure
            if [[ $path == augur && -n ${PROFILE:-} ]]; then
                curl -s 127.0.0.1:18991/status | python3 -c 'import json,sys; t=json.load(sys.stdin)["tunnels"][0]; print({k: t[k] for k in ("connections","dials","tx","rx","dropped","send_errors")})' >&2
                ip netns exec "$SRV" ss -uamn >&2; ip netns exec "$SRV" nstat -az UdpRcvbufErrors UdpInErrors UdpInDatagrams TcpRetransSegs TcpExtTCPSACKRecovery >&2 || true
                nstat -az UdpRcvbufErrors UdpInErrors UdpInDatagrams >&2 || true
                curl -s 127.0.0.1:18991/metrics | grep -E '^augur_upstream_(connect|requests)' | head >&2 || true
            fi
            rss=$(awk '/VmRSS/ {print $2}' /proc/$AUGUR_PID/status)
            ((rss > RSS_MAX)) && RSS_MAX=$rss
            log "run $run $kind $path: $figure"
        done
    done
done

col() { # path kind field
    [[ -n ${RESULT[$1,$2,1]:-} ]] || { echo -; return; }
    for run in $(seq "$RUNS"); do echo "${RESULT[$1,$2,$run]}" | awk -v f="$3" '{print $f}'; done | median
}
printf '\n%-12s %12s %12s %12s %8s %14s %14s\n' path "down Mbit/s" "up Mbit/s" "small req/s" "p99 ms" \
    "augur us/req" "others us/req"
for path in $PATHS; do
    printf '%-12s %12s %12s %12s %8s %14s %14s\n' "$path" "$(col "$path" down 1)" "$(col "$path" up 1)" \
        "$(col "$path" small 1)" "$(col "$path" small 2)" "$(col "$path" small 3)" "$(col "$path" small 4)"
done
for kind in down up small; do
    a=$(col augur "$kind" 1); w=$(col wg-pair "$kind" 1)
    [[ $a == - || $w == - ]] && continue
    printf 'augur / wg-pair %s: %.2fx\n' "$kind" "$(echo "$a $w" | awk '{print $1/$2}')"
done
printf 'augur peak RSS during the run: %d MiB\n' $((RSS_MAX / 1024))
printf 'runs=%s bytes=%s wrk: -t1 -c%s -d%s; medians\n' "$RUNS" "$BYTES" "$CONNECTIONS" "$DURATION"
