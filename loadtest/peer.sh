#!/usr/bin/env bash
# peer.sh: Prometheus Alertmanager doing linkd's routing, measured the way
# bench.sh measures linkd (docs/BENCHMARKS.md, "The peer side by side").
#
#   bash loadtest/peer.sh
#
# Installs prometheus-alertmanager if it is missing (Debian package; needs
# root), builds linkload if needed, and for every step starts a fresh
# Alertmanager on loopback (fresh storage dir, gossip off with
# --cluster.listen-address=, free ports) configured by `linkload am-config`
# from the default rules: one aggregation group per incident, group_wait 0s,
# one webhook receiver per department, several receivers for
# multi-department routes. `linkload am` then offers alerts open loop
# through API v2 and times every webhook delivery on its own receiver.
# Steps: 1,000 alerts/s (PEER_EQUAL_RATE: the equal-load comparison with
# linkd), then
# 500, 1,000, 2,000, 3,000, 4,000 ... until a step is not sustained (same
# rule as bench.sh: accepted >= 95% of offered and p99 intake->accepted
# <= P99_LIMIT_MS), then memory: N distinct active alerts (PEER_MEM_ALERTS,
# default 20,000) and Alertmanager's RSS before and after.
# Every process it starts is stopped by PID; each step is bounded in time.
#
# Environment: BUILD_DIR (default build-bench), BENCH_OUT (results, default
# $BUILD_DIR/peer), PEER_SECONDS (per step, default 10), PEER_BATCH (alerts
# per POST, default 1), PEER_CONNECTIONS (default 8), P99_LIMIT_MS (100),
# PEER_MAX_RATE (default 16000; 0 skips the search), PEER_MEM_ALERTS (20000;
# 0 skips the memory step),
# PEER_EQUAL_RATE (1000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
OUT=${BENCH_OUT:-$BUILD_DIR/peer}
SECS=${PEER_SECONDS:-10}
BATCH=${PEER_BATCH:-1}
CONNS=${PEER_CONNECTIONS:-8}
P99_LIMIT_MS=${P99_LIMIT_MS:-100}
MAX_RATE=${PEER_MAX_RATE:-16000}
MEM_ALERTS=${PEER_MEM_ALERTS:-20000}
EQUAL_RATE=${PEER_EQUAL_RATE:-1000}
LINKLOAD=$BUILD_DIR/linkload
AM_BIN=prometheus-alertmanager
TMP=$(mktemp -d "${TMPDIR:-/tmp}/linkd-peer.XXXXXX")
AM_PID=

say() { printf '%s\n' "$*" >&2; }

stop_am() {
    [ -n "$AM_PID" ] || return 0
    kill -TERM "$AM_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$AM_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$AM_PID" 2>/dev/null || true
    wait "$AM_PID" 2>/dev/null || true
    AM_PID=
}
cleanup() { stop_am; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

install_am() {   # on demand: only this benchmark needs them
    local missing=()
    command -v "$AM_BIN" >/dev/null || missing+=(prometheus-alertmanager)
    command -v curl >/dev/null || missing+=(curl)
    ((${#missing[@]})) || return 0
    say "== installing ${missing[*]} (Debian packages)"
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    # The packaged service is not ours: this script starts private instances.
    $sudo systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
}

build() {
    if [ ! -x "$LINKLOAD" ] || [ -n "$(find "$ROOT/loadtest" "$ROOT/src" -newer "$LINKLOAD" -name '*.[ch]' | head -1)" ]; then
        say "== building linkload in $BUILD_DIR"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        make -C "$BUILD_DIR" -j2 linkload >/dev/null
    fi
}

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

# start_am: a fresh Alertmanager with the routing tree for a receiver on HOOK_PORT.
start_am() {
    local dir=$TMP/am.$RANDOM
    mkdir -p "$dir/data"
    HOOK_PORT=$("$LINKLOAD" free-port)
    AM_PORT=$("$LINKLOAD" free-port)
    "$LINKLOAD" am-config --rules "$ROOT/rules" --hook "http://127.0.0.1:$HOOK_PORT" --out "$dir/am.yml"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    "$AM_BIN" --config.file="$dir/am.yml" --storage.path="$dir/data" \
        --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= --log.level=warn \
        >"$dir/am.log" 2>&1 &
    AM_PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$AM_PORT/-/ready" >/dev/null 2>&1 && return 0
        kill -0 "$AM_PID" 2>/dev/null || break
        sleep 0.1
    done
    say "alertmanager did not become ready:"; tail -5 "$dir/am.log" >&2
    return 1
}

rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }

# step NAME RATE [SECONDS]: one `linkload am` run on a fresh Alertmanager.
step() {
    local name=$1 rate=$2 secs=${3:-$SECS}
    start_am
    say "== $name: $rate alerts/s for $secs s (batch $BATCH, $CONNS connections)"
    timeout $((secs + 60)) "$LINKLOAD" am --alertmanager "http://127.0.0.1:$AM_PORT" \
        --hook-port "$HOOK_PORT" --rate "$rate" --duration "$secs" --batch "$BATCH" \
        --connections "$CONNS" --rules "$ROOT/rules" --drain 10 --json "$OUT/$name.json" \
        >"$OUT/$name.txt" 2>&1 || true
    echo "alertmanager_rss_kb $(rss_kb "$AM_PID")" >>"$OUT/$name.txt"
    cat "$OUT/$name.txt" >&2
    stop_am
}

sustained() {
    local f=$OUT/$1.json
    [ -s "$f" ] || return 1
    python3 - "$(json "$f" achieved_rate)" "$(json "$f" offered_rate)" \
        "$(json "$f" accept_latency.p99_us)" "$P99_LIMIT_MS" <<'EOF'
import sys
ach, off, p99, lim = map(float, sys.argv[1:5])
sys.exit(0 if ach >= 0.95 * off and p99 <= lim * 1000 else 1)
EOF
}

row() {
    local f=$OUT/$1.json
    [ -s "$f" ] || { printf '%-10s (no result)\n' "$1"; return; }
    printf '%-10s %8s %8s %9s %9s %9s %9s %9s %9s %8s %7s %s\n' "$1" \
        "$(json "$f" offered_rate)" "$(json "$f" achieved_rate)" \
        "$(json "$f" accept_latency.p50_us)" "$(json "$f" accept_latency.p99_us)" \
        "$(json "$f" accept_latency.p999_us)" "$(json "$f" terminal_latency.p50_us)" \
        "$(json "$f" terminal_latency.p99_us)" "$(json "$f" terminal_latency.p999_us)" \
        "$(json "$f" delivered)/$(json "$f" expected)" "$(json "$f" missing)" \
        "$(sustained "$1" && echo ok || echo NOT-sustained)"
}

memory() {
    local rate=$((MEM_ALERTS < 1000 ? MEM_ALERTS : 1000)) secs
    secs=$(( (MEM_ALERTS + rate - 1) / rate ))
    start_am
    local idle; idle=$(rss_kb "$AM_PID")
    say "== memory: $MEM_ALERTS distinct active alerts at $rate/s"
    timeout $((secs + 90)) "$LINKLOAD" am --alertmanager "http://127.0.0.1:$AM_PORT" \
        --hook-port "$HOOK_PORT" --rate "$rate" --duration "$secs" --batch 10 --connections "$CONNS" \
        --rules "$ROOT/rules" --drain 30 --json "$OUT/mem.json" >"$OUT/mem.txt" 2>&1 || true
    sleep 5
    local after active
    after=$(rss_kb "$AM_PID")
    active=$(curl -sf "http://127.0.0.1:$AM_PORT/api/v2/alerts?active=true" |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    echo "idle_rss_kb $idle after_rss_kb $after active_alerts $active" | tee -a "$OUT/mem.txt" >&2
    python3 -c "import sys; i,a,n=map(float,sys.argv[1:]); print('memory per active alert: %.1f KiB (%d alerts, RSS %.0f -> %.0f MiB)' % ((a-i)/n, n, i/1024, a/1024))" \
        "$idle" "$after" "$active" | tee -a "$OUT/mem.txt"
    stop_am
}

main() {
    mkdir -p "$OUT"
    install_am
    build
    "$AM_BIN" --version 2>&1 | head -1 >"$OUT/version.txt"
    local rate pass=0 names=() r
    step am_equal "$EQUAL_RATE"
    names+=(am_equal)
    for r in 500 1000 2000 3000 4000 6000 8000 12000 16000; do
        [ "$r" -le "$MAX_RATE" ] || break
        step "am_r$r" "$r"
        names+=("am_r$r")
        if sustained "am_r$r"; then pass=$r; else break; fi
    done
    [ "$MEM_ALERTS" -gt 0 ] && memory
    echo
    echo "alertmanager benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ), $(cat "$OUT/version.txt"), $(nproc) vCPU, batch $BATCH, $CONNS connections, ${SECS}s per step"
    printf '%-10s %8s %8s %9s %9s %9s %9s %9s %9s %8s %7s\n' step offered achieved \
        "acc p50us" "acc p99us" "acc p999" "hook p50" "hook p99" "hook p999" delivered missing
    for r in "${names[@]}"; do row "$r"; done
    echo
    echo "highest sustained rate: $pass alerts/s (accepted >= 95% of offered, p99 intake->accepted <= ${P99_LIMIT_MS} ms)"
    [ -s "$OUT/mem.txt" ] && tail -1 "$OUT/mem.txt"
    echo "results: $OUT"
}

main "$@"
