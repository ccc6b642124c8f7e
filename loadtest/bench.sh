#!/usr/bin/env bash
# bench.sh: linkd's benchmarks in one command, with the machine's ceilings
# measured in the same run (docs/BENCHMARKS.md explains every figure).
#
#   bash loadtest/bench.sh
#
# Builds linkd and linkload if needed, then for every load step starts a
# fresh private redis-server (ops/redis.conf: appendonly yes, everysec; temp dir,
# free port) and linkd with the default rules (--time-scale 1), so no step
# inherits another's backlog or open incidents. Steps: `linkload ceiling`;
# linkload at 1,000 and 10,000 events/s; a search for the highest sustained
# rate (20k, 30k, 40k ... until achieved < 95% of offered or p99
# intake->ACCEPTED exceeds P99_LIMIT_MS, then up to three halvings); 5,000
# events/s for the latency figure. Prints a table; stops everything it
# started, by PID. Bounded: each step has a hard limit, the whole run takes
# 4-8 minutes.
#
# Environment: BUILD_DIR (default build-bench), BENCH_OUT (results dir,
# default $BUILD_DIR/bench), BENCH_SECONDS (per step, default 10),
# BENCH_BATCH (events per request, default 10), P99_LIMIT_MS (default 100),
# BENCH_FSYNC (Redis appendfsync: everysec or always; default everysec),
# BENCH_MAX_RATE (default 100000), BENCH_PERF=1 (perf record linkd at the
# highest rate it sustains; needs perf), BENCH_PEER=1 (then loadtest/peer.sh:
# Alertmanager), BENCH_MEMORY=1 (then loadtest/memory.sh: memory per open
# incident), BENCH_PIN (CPU affinity as LINKD:REDIS:LINKLOAD CPU lists for
# taskset, for example 0:1:1 on two cores; empty: none; see BENCHMARKS,
# "Pinning").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
OUT=${BENCH_OUT:-$BUILD_DIR/bench}
SECONDS_PER_STEP=${BENCH_SECONDS:-10}
BATCH=${BENCH_BATCH:-10}
P99_LIMIT_MS=${P99_LIMIT_MS:-100}
MAX_RATE=${BENCH_MAX_RATE:-100000}
WARMUP=2

LINKD=$BUILD_DIR/linkd
LINKLOAD=$BUILD_DIR/linkload
TMP=$(mktemp -d "${TMPDIR:-/tmp}/linkd-bench.XXXXXX")
REDIS_PID=
LINKD_PID=

say() { printf '%s\n' "$*" >&2; }

# BENCH_PIN (loadtest/pin.sh): CPU affinity of linkd, redis-server and linkload.
. "$ROOT/loadtest/pin.sh"

stop_pid() {   # stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_stack() {
    stop_pid "$LINKD_PID"; LINKD_PID=
    stop_pid "$REDIS_PID"; REDIS_PID=
}

cleanup() {
    stop_stack
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

json() {   # json FILE KEY.PATH -> value (jq, else python3)
    if command -v jq >/dev/null; then
        jq -r ".$2 | if . == null then \"\" else . end" "$1"
    else
        python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v.get(k) if isinstance(v,dict) else None
print("" if v is None else v)' "$1" "$2"
    fi
}

build() {
    if [ ! -x "$LINKD" ] || [ ! -x "$LINKLOAD" ] || [ -n "$(find "$ROOT/src" "$ROOT/loadtest" -newer "$LINKLOAD" -name '*.[ch]' | head -1)" ]; then
        say "== building linkd and linkload in $BUILD_DIR"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        make -C "$BUILD_DIR" -j2 linkd linkload >/dev/null
    fi
}

# start_stack: a fresh redis-server and linkd on free ports.
start_stack() {
    local dir=$TMP/step.$RANDOM i
    mkdir -p "$dir"
    REDIS_PORT=$("$LINKLOAD" free-port)
    # The shipped configuration (appendonly yes, everysec), on a private port and dir.
    "${PIN_REDIS[@]}" redis-server "$ROOT/ops/redis.conf" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" \
        --appendfsync "${BENCH_FSYNC:-everysec}" --loglevel warning >"$dir/redis.log" 2>&1 &
    REDIS_PID=$!
    for i in $(seq 100); do
        redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    INGEST=tcp://127.0.0.1:$("$LINKLOAD" free-port)
    TERMINALS=tcp://127.0.0.1:$("$LINKLOAD" free-port)
    FEED=tcp://127.0.0.1:$("$LINKLOAD" free-port)
    LINKD_LOG=$dir/linkd.log
    "${PIN_LINKD[@]}" "$LINKD" --rules "$ROOT/rules" --redis "redis://127.0.0.1:$REDIS_PORT/0" --ingest "$INGEST" \
        --terminals "$TERMINALS" --feed "$FEED" --time-scale 1 --log-level notice 2>"$LINKD_LOG" &
    LINKD_PID=$!
    for i in $(seq 100); do
        grep -q READY "$LINKD_LOG" 2>/dev/null && return 0
        kill -0 "$LINKD_PID" 2>/dev/null || break
        sleep 0.1
    done
    say "linkd did not become ready:"; tail -5 "$LINKD_LOG" >&2
    return 1
}

# step NAME RATE [SECONDS]: one linkload run on a fresh stack; JSON in $OUT/NAME.json.
step() {
    local name=$1 rate=$2 secs=${3:-$SECONDS_PER_STEP} perf_pid=
    start_stack
    say "== $name: $rate events/s for $secs s (batch $BATCH, warm-up $WARMUP s)"
    if [ "${BENCH_PERF:-}" = 1 ] && [ "$name" = "perf" ]; then
        perf record -F 499 -g -p "$LINKD_PID" -o "$OUT/perf.data" -- sleep "$secs" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    timeout $((secs + WARMUP + 60)) "${PIN_LOAD[@]}" "$LINKLOAD" run --rate "$rate" --duration "$secs" --warmup "$WARMUP" \
        --batch "$BATCH" --ingest "$INGEST" --terminals "$TERMINALS" --rules "$ROOT/rules" \
        --json "$OUT/$name.json" >"$OUT/$name.txt" 2>"$OUT/$name.progress" || true
    [ -n "$perf_pid" ] && wait "$perf_pid" || true
    cat "$OUT/$name.txt" >&2
    stop_stack
    grep SUMMARY "$LINKD_LOG" >"$OUT/$name.summary" 2>/dev/null || true
}

# sustained NAME: achieved >= 95% of offered, and p99 intake->ACCEPTED within the limit.
sustained() {
    local f=$OUT/$1.json
    [ -s "$f" ] || return 1
    [ "$(json "$f" unreachable)" = false ] || return 1
    python3 - "$(json "$f" achieved_rate)" "$(json "$f" offered_rate)" \
        "$(json "$f" accept_latency.p99_us)" "$P99_LIMIT_MS" <<'EOF'
import sys
ach, off, p99, lim = map(float, sys.argv[1:5])
sys.exit(0 if ach >= 0.95 * off and p99 <= lim * 1000 else 1)
EOF
}

row() {   # row NAME: one line of the table
    local f=$OUT/$1.json
    if [ ! -s "$f" ]; then printf '%-10s %s\n' "$1" "(no result)"; return; fi
    printf '%-10s %8s %8s %9s %9s %9s %9s %9s %9s %8s %s\n' "$1" \
        "$(json "$f" offered_rate)" "$(json "$f" achieved_rate)" \
        "$(json "$f" accept_latency.p50_us)" "$(json "$f" accept_latency.p99_us)" \
        "$(json "$f" accept_latency.p999_us)" "$(json "$f" terminal_latency.p50_us)" \
        "$(json "$f" terminal_latency.p99_us)" "$(json "$f" terminal_latency.p999_us)" \
        "$(json "$f" tasks)" "$( sustained "$1" && echo ok || echo NOT-sustained)"
}

main() {
    mkdir -p "$OUT"
    build
    say "== ceiling (no linkd): NNG REQ/REP echo and pipelined Redis, batch $BATCH"
    timeout 120 "$LINKLOAD" ceiling --seconds 5 --batch "$BATCH" --json "$OUT/ceiling.json" | tee "$OUT/ceiling.txt" >&2

    "$LINKLOAD" micro | tee "$OUT/micro.txt" >&2
    step r1k 1000
    step r10k 10000
    local rate pass=0 fail=0 i names=(r1k r10k)
    sustained r1k && pass=1000
    if sustained r10k; then
        pass=10000
        for rate in 20000 30000 40000 50000 60000 80000 100000; do
            [ "$rate" -le "$MAX_RATE" ] || break
            step "r$((rate / 1000))k" "$rate"
            names+=("r$((rate / 1000))k")
            if sustained "r$((rate / 1000))k"; then pass=$rate; else fail=$rate; break; fi
        done
    else
        fail=10000
    fi
    # Narrow it down: up to three halvings between the last pass and the first fail.
    for i in 1 2 3; do
        [ "$fail" -gt 0 ] || break
        rate=$(( (pass + fail) / 2 / 500 * 500 ))
        [ "$rate" -gt "$pass" ] && [ "$rate" -lt "$fail" ] || break
        step "r${rate}" "$rate"
        names+=("r${rate}")
        if sustained "r${rate}"; then pass=$rate; else fail=$rate; fi
    done
    step r5k 5000 $((SECONDS_PER_STEP * 2))
    names+=(r5k)
    # The issue's latency figure at 50,000 events/s, whether or not it is sustained.
    if [ ! -s "$OUT/r50k.json" ] && [ "$MAX_RATE" -ge 50000 ]; then
        step r50k 50000 $((SECONDS_PER_STEP / 2 > 3 ? SECONDS_PER_STEP / 2 : 3))
        names+=(r50k)
    fi
    if [ "${BENCH_PERF:-}" = 1 ] && [ "$pass" -gt 0 ]; then step perf "$pass"; fi

    echo
    echo "linkd benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) vCPU, batch $BATCH, ${SECONDS_PER_STEP}s per step, Redis appendonly everysec"
    echo "ceilings (same run):"
    printf '  NNG REQ/REP echo            %8s msgs/s = %s events/s\n' \
        "$(json "$OUT/ceiling.json" nng_msgs_per_s)" "$(json "$OUT/ceiling.json" nng_events_per_s)"
    printf '  Redis XADD pipelined        %8s ops/s\n' "$(json "$OUT/ceiling.json" redis_xadd_per_s)"
    printf '  Redis intake script alone   %8s events/s\n' "$(json "$OUT/ceiling.json" redis_script_events_per_s)"
    printf "  Redis linkd's per-event work %7s events/s\n" "$(json "$OUT/ceiling.json" redis_linkd_events_per_s)"
    sed 's/^/  /' "$OUT/micro.txt"
    echo
    printf '%-10s %8s %8s %9s %9s %9s %9s %9s %9s %8s\n' step offered achieved \
        "acc p50us" "acc p99us" "acc p999" "term p50" "term p99" "term p999" tasks
    local n
    for n in "${names[@]}"; do row "$n"; done
    echo
    echo "highest sustained rate: $pass events/s (achieved >= 95% of offered, p99 intake->ACCEPTED <= ${P99_LIMIT_MS} ms)"
    python3 - "$pass" "$(json "$OUT/ceiling.json" nng_events_per_s)" \
        "$(json "$OUT/ceiling.json" redis_linkd_events_per_s)" "$(json "$OUT/ceiling.json" redis_xadd_per_s)" <<'EOF'
import sys
p, nng, work, xadd = (float(x or 0) for x in sys.argv[1:5])
for name, c in (("bare NNG REQ/REP pipeline", nng), ("Redis doing linkd's per-event work", work),
                ("bare pipelined XADD", xadd)):
    if c > 0:
        print(f"  sustained / {name}: {p:.0f} / {c:.0f} = {100 * p / c:.1f}%")
EOF
    echo "results: $OUT"
}

main "$@"
# The peer and linkd's memory per open incident have their own scripts
# (several minutes each): BENCH_PEER=1 and BENCH_MEMORY=1 run them after.
if [ "${BENCH_PEER:-}" = 1 ]; then BUILD_DIR=$BUILD_DIR bash "$ROOT/loadtest/peer.sh"; fi
if [ "${BENCH_MEMORY:-}" = 1 ]; then BUILD_DIR=$BUILD_DIR bash "$ROOT/loadtest/memory.sh"; fi
