# Shared by the benchmark harnesses (benches/*/run.sh), which source it: logging, temp dir and
# cleanup, starting, waiting for and stopping processes, CPU accounting from /proc, medians,
# and the parts of nginx and HAProxy configs every harness writes alike.
#
# The harness sets LOG_TAG (the prefix of its log lines) and HOST (the address it listens on)
# before using these.

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }

# port_in_use PORT: something accepts connections on HOST:PORT.
port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# ports_free PORT...: fail unless every port is free, so a run never measures a stranger.
ports_free() {
    local port
    for port in "$@"; do
        if port_in_use "$port"; then die "$HOST:$port is already in use"; fi
    done
}

# temp_dir NAME KEEP: make TMP and arrange that on exit the harness's `stop_processes` runs,
# then TMP goes unless KEEP is 1 or the run failed (its logs explain the failure).
temp_dir() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    KEEP_TMP=$2
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    stop_processes
    if [[ $KEEP_TMP == 1 || $rc -ne 0 ]]; then
        log "temp dir kept: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}

# pinned CPU LOG CMD...: start CMD in the background on CPU alone, output to LOG; its pid is
# left in STARTED (a `$(...)` would start it in a subshell that cannot be waited for).
pinned() {
    local cpu=$1 logfile=$2
    shift 2
    taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
    STARTED=$!
}

# stop PID...: SIGTERM, wait up to 10 s, then SIGKILL, and reap them.
stop() {
    local pid i alive
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 100; i++)); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && break
        sleep 0.1
    done
    for pid in "$@"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# poll TRIES CMD...: run CMD every 50 ms until it succeeds, at most TRIES times.
poll() {
    local tries=$1 i
    shift
    for ((i = 0; i < tries; i++)); do
        if "$@"; then return 0; fi
        sleep 0.05
    done
    return 1
}

# wait_ready NAME PID URL WANT LOGFILE: poll URL until its body contains WANT, or fail (after
# ~10 s) when PID died or never answered, showing the end of its log.
wait_ready() {
    local name=$1 pid=$2 url=$3 want=$4 logfile=$5 i body
    for ((i = 0; i < 200; i++)); do
        if body=$(curl -fsS --max-time 1 "$url" 2>/dev/null) && [[ $body == *"$want"* ]]; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    tail -n 20 "$logfile" >&2 || true
    if kill -0 "$pid" 2>/dev/null; then die "$name did not answer on $url (log: $logfile)"; fi
    die "$name exited during startup (log: $logfile)"
}

port_free() { ! port_in_use "$1"; }

# wait_port_free PORT: poll until PORT is closed (a stopped proxy released it).
wait_port_free() {
    poll 200 port_free "$1" || die "$HOST:$1 still in use after stopping its proxy"
}

# pid_tree PID: the PID and all its descendants (nginx: master + worker).
pid_tree() {
    local pid=$1 child list
    local -a kids
    echo "$pid"
    list=$(cat /proc/"$pid"/task/*/children 2>/dev/null | tr '\n' ' ' || true)
    read -r -a kids <<<"$list"
    for child in "${kids[@]}"; do pid_tree "$child"; done
}

# cpu_ticks PID...: utime+stime (clock ticks) summed over the PIDs (all threads of each).
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

# median: of the numbers on stdin ("n/a" when there are none).
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# cpu_model: the machine's CPU, for the report.
cpu_model() { awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo; }

# nginx_head DIR WORKER_CONNECTIONS: an nginx config up to inside `http {`: one worker in the
# foreground, no access log, long keep-alive, and every temp path under DIR.
nginx_head() {
    local dir=$1
    cat <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $2; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
}

# nginx_proxy PORT KEEPALIVE LINES: the rest of an nginx proxy config: upstream `backends`
# (LINES: its balancing and servers) with KEEPALIVE idle connections kept, and the server on
# HOST:PORT passing everything to it.
nginx_proxy() {
    cat <<EOF
    upstream backends {
$3
        keepalive $2;
        keepalive_requests 1000000;
    }
    server {
        listen $HOST:$1;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

# haproxy_head DIR MAXCONN PORT: an HAProxy config up to `backend be`: one thread, HTTP with
# connection reuse, a frontend on HOST:PORT.
haproxy_head() {
    cat <<EOF
global
    nbthread 1
    maxconn $2
    pidfile $1/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always

frontend fe
    bind $HOST:$3
    default_backend be

backend be
EOF
}

# augur_head DIR ADMIN_PORT PORT GRACE: an augur config up to `upstreams:`: one worker thread,
# the admin API on HOST:ADMIN_PORT and an http listener on HOST:PORT routing to upstream b.
augur_head() {
    cat <<EOF
server: { threads: 1, grace_period: $4, upgrade_sock: $1/upgrade.sock, pid_file: $1/augur.pid }
admin: { bind: $HOST:$2 }
listeners:
  - { name: web, bind: $HOST:$3, protocol: http, routes: [ { upstream: b } ] }
upstreams:
EOF
}
