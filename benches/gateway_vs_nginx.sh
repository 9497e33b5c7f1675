#!/usr/bin/env bash
# Throughput, p99 latency and CPU per request of a generated system's REST service on
# loopback, measured with wrk at fixed connections and duration, three ways in one run:
#   direct   wrk -> service
#   gateway  wrk -> generated gateway (JWT auth, rate limiter, breaker, bulkhead) -> service
#   nginx    wrk -> nginx as a plain reverse proxy (no auth) -> service
# The goal: the gateway with auth is not slower than nginx proxying without it.
#
# Usage: benches/gateway_vs_nginx.sh [CONNECTIONS] [DURATION_SECONDS]
#   defaults 64 connections, 15 s per target (after a 3 s warm-up), 2 wrk threads.
# Needs wrk and nginx (Debian packages; installed with apt-get when run as root).
# Builds the generated system in release mode in target/bench-target (kept between runs).
# Every binary logs at `warn`, and nginx has no access log, so no side logs per request.
set -euo pipefail

connections=${1:-64}
duration=${2:-15}
threads=2
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

need() {
    command -v "$1" >/dev/null && return
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" >/dev/null
    else
        echo "error: $1 is missing; install the Debian package $2" >&2
        exit 1
    fi
}
need wrk wrk
need nginx nginx-light
need curl curl

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_healthy() {
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "error: nothing healthy on port $1" >&2
    exit 1
}

echo "== generating and building (release) =="
cargo build --quiet --manifest-path "$repo/Cargo.toml"
"$repo/target/debug/new-service" new bench --yes --no-git --output "$work/system" \
    --service catalog:rest --auth jwt >/dev/null
export CARGO_TARGET_DIR="$repo/target/bench-target"
(cd "$work/system" && cargo build --quiet --release -p gateway -p catalog)
bin="$CARGO_TARGET_DIR/release"

service_port=$(free_port)
gateway_port=$(free_port)
nginx_port=$(free_port)
secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')

HOST=127.0.0.1 PORT=$service_port RUST_LOG=warn "$bin/catalog" &
service_pid=$!
pids+=("$service_pid")
wait_healthy "$service_port"

# Rate limiting stays on, with limits no single benchmark client reaches.
HOST=127.0.0.1 PORT=$gateway_port RUST_LOG=warn JWT_SECRET=$secret \
    CATALOG_URL="http://127.0.0.1:$service_port" \
    RATE_LIMIT_PER_SECOND=10000000 RATE_LIMIT_BURST=10000000 \
    "$bin/gateway" &
gateway_pid=$!
pids+=("$gateway_pid")
wait_healthy "$gateway_port"
token=$(JWT_SECRET=$secret "$bin/gateway" token bench catalog:read catalog:write)

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream catalog {
        server 127.0.0.1:$service_port;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        location /api/catalog/ {
            proxy_pass http://catalog/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
        location = /healthz { proxy_pass http://catalog/healthz; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_healthy "$nginx_port"
# The master and its workers, which serve the requests.
read -ra nginx_pids <<<"$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"

# A few items, so that the measured list is a real response.
for name in alpha beta gamma; do
    curl -fsS -o /dev/null -X POST "http://127.0.0.1:$service_port/v1/items" \
        -H 'content-type: application/json' -d "{\"name\":\"$name\"}"
done

# CPU time (user + system, all threads, in clock ticks) used so far by the processes
# "$@": fields 14 and 15 of /proc/PID/stat, counted after the parenthesised name.
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# Asserts a 200 once, then runs wrk; prints "requests_per_second p99_ms cpu_us", the
# last the CPU time per request of the processes in the variable PIDS.
measure() {
    local url=$1
    shift
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url")
    if [ "$status" != 200 ]; then
        echo "error: $url answered $status, not 200" >&2
        exit 1
    fi
    local wrk_args=(-t"$threads" -c"$connections" --latency)
    if [ $# -gt 0 ]; then
        wrk_args+=("$@")
    fi
    wrk "${wrk_args[@]}" -d3s "$url" >/dev/null
    local out before after
    before=$(cpu_ticks $PIDS)
    out=$(wrk "${wrk_args[@]}" -d"${duration}s" "$url")
    after=$(cpu_ticks $PIDS)
    if grep -q 'Non-2xx' <<<"$out"; then
        echo "error: $url gave non-2xx answers under load:" >&2
        echo "$out" >&2
        exit 1
    fi
    local rps p99 requests
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    python3 - "$rps" "$p99" "$requests" "$((after - before))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
rps, p99, requests, ticks, hz = sys.argv[1:]
value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", p99).groups()
ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
cpu_us = int(ticks) / int(hz) * 1e6 / int(requests)
print(f"{float(rps):.0f} {ms:.3f} {cpu_us:.1f}")
PY
}

echo "== wrk: $threads threads, $connections connections, ${duration} s per target =="
direct=$(PIDS="$service_pid" measure "http://127.0.0.1:$service_port/v1/items")
gateway=$(PIDS="$gateway_pid" measure "http://127.0.0.1:$gateway_port/api/catalog/v1/items" \
    -H "Authorization: Bearer $token")
nginx=$(PIDS="${nginx_pids[*]}" measure "http://127.0.0.1:$nginx_port/api/catalog/v1/items")

python3 - $direct $gateway $nginx <<'PY'
import sys
d_rps, d_p99, d_cpu, g_rps, g_p99, g_cpu, n_rps, n_p99, n_cpu = map(float, sys.argv[1:])
print(f"{'target':<24}{'req/s':>10}{'p99 ms':>10}{'CPU us/req':>12}")
print(f"{'direct (service)':<24}{d_rps:>10.0f}{d_p99:>10.2f}{d_cpu:>12.1f}")
print(f"{'gateway (JWT auth)':<24}{g_rps:>10.0f}{g_p99:>10.2f}{g_cpu:>12.1f}")
print(f"{'nginx (plain proxy)':<24}{n_rps:>10.0f}{n_p99:>10.2f}{n_cpu:>12.1f}")
print(f"gateway / nginx: throughput {g_rps / n_rps:.2f}x, p99 {g_p99 / n_p99:.2f}x, CPU per request {g_cpu / n_cpu:.2f}x")
print(f"gateway / direct: throughput {g_rps / d_rps:.2f}x, p99 {g_p99 / d_p99:.2f}x")
print("CPU us/req: user + system time of the service, the gateway or nginx (master and")
print("workers) during the measured run, per request; wrk and the service behind a proxy")
print("share the same 2 cores.")
PY
