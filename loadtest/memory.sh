#!/usr/bin/env bash
# memory.sh: linkd's memory per open incident (docs/BENCHMARKS.md).
#
#   bash loadtest/memory.sh              # 100,000 and 1,000,000 open incidents
#   MEM_INCIDENTS=100000 bash loadtest/memory.sh
#   MEM_INCIDENTS=1000000 MEM_RATE=5000 bash loadtest/memory.sh   # about 4 minutes
#
# For each count N: a fresh private redis-server (ops/redis.conf) and linkd
# with the default rules, linkd's RSS once READY, then `linkload run` sends N
# events (the benchmark mix, MEM_RATE events/s) whose terminals acknowledge
# every task and resolve nothing, so every incident stays open; 3 s later
# linkd's RSS, the number of open incidents (ZCARD ld:open) and Redis's
# used_memory. Prints bytes per open incident. Stops what it started by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
OUT=${BENCH_OUT:-$BUILD_DIR/memory}
RATE=${MEM_RATE:-15000}
COUNTS=${MEM_INCIDENTS:-100000 1000000}
LINKD=$BUILD_DIR/linkd
LINKLOAD=$BUILD_DIR/linkload
TMP=$(mktemp -d "${TMPDIR:-/tmp}/linkd-mem.XXXXXX")
REDIS_PID=
LINKD_PID=

say() { printf '%s\n' "$*" >&2; }
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() { stop_pid "$LINKD_PID"; stop_pid "$REDIS_PID"; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$LINKD" ] || [ ! -x "$LINKLOAD" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    make -C "$BUILD_DIR" -j2 linkd linkload >/dev/null
fi
mkdir -p "$OUT"
rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }

for n in $COUNTS; do
    dir=$TMP/n$n
    mkdir -p "$dir"
    port=$("$LINKLOAD" free-port)
    redis-server "$ROOT/ops/redis.conf" --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --loglevel warning >"$dir/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    ingest=tcp://127.0.0.1:$("$LINKLOAD" free-port)
    terminals=tcp://127.0.0.1:$("$LINKLOAD" free-port)
    "$LINKD" --rules "$ROOT/rules" --redis "redis://127.0.0.1:$port/0" --ingest "$ingest" \
        --terminals "$terminals" --feed "tcp://127.0.0.1:$("$LINKLOAD" free-port)" --time-scale 1 \
        --log-level notice 2>"$dir/linkd.log" &
    LINKD_PID=$!
    for _ in $(seq 100); do grep -qs READY "$dir/linkd.log" && break; sleep 0.1; done
    idle=$(rss_kb "$LINKD_PID")
    redis_idle=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/{print $2+0}')
    secs=$(python3 -c "print(round($n / $RATE, 2))")
    say "== $n open incidents: $RATE events/s for $secs s"
    # Bounded: twice the sending time (a loaded machine accepts less than it
    # is offered) plus the drain and start-up.
    timeout $((2 * ${secs%.*} + 240)) "$LINKLOAD" run --rate "$RATE" --duration "$secs" --batch 10 \
        --ingest "$ingest" --terminals "$terminals" --rules "$ROOT/rules" --drain 30 --quiet \
        --json "$OUT/n$n.json" >"$OUT/n$n.txt" 2>&1 || true
    sleep 3
    rss=$(rss_kb "$LINKD_PID")
    open=$(redis-cli -p "$port" zcard ld:open)
    tasks=$(jq -r .tasks_first "$OUT/n$n.json" 2>/dev/null || echo "?")
    redis_used=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/{print $2+0}')
    python3 - "$n" "$idle" "$rss" "$open" "$redis_idle" "$redis_used" "$tasks" <<'EOF' | tee "$OUT/n$n.summary" >&2
import sys
n, idle, rss, open_, ri, ru = map(float, sys.argv[1:7])
tasks = sys.argv[7]
print(f"{int(n)} events sent: {int(open_)} open incidents ({tasks} tasks delivered); "
      f"linkd RSS {idle/1024:.1f} -> {rss/1024:.1f} MiB = {(rss-idle)*1024/open_:.0f} B per open incident; "
      f"Redis used_memory {ri/2**20:.1f} -> {ru/2**20:.1f} MiB = {(ru-ri)/open_:.0f} B per open incident")
EOF
    stop_pid "$LINKD_PID"; LINKD_PID=
    stop_pid "$REDIS_PID"; REDIS_PID=
done
cat "$OUT"/n*.summary
