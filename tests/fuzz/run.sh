#!/usr/bin/env bash
# run.sh BUILD_DIR [SECONDS]: run each fuzz target for a bounded time on its
# seed corpus (made here from the default rules, the rule fixtures and
# protoc-encoded requests). Exits non-zero on the first crash, leak or hang.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: run.sh BUILD_DIR [SECONDS]}
secs=${2:-30}
work=$(mktemp -d /tmp/linkd-fuzz-XXXXXX)
# The rules target writes its files under $work (LINKD_FUZZ_DIR): removing
# only our own directory leaves concurrent runs alone.
trap 'rm -rf "$work"' EXIT
export LINKD_FUZZ_DIR=$work

mkdir -p "$work/ingest" "$work/rules"
now=1795000000000
i=0
for body in 'call { category: CALL_CATEGORY_FIRE priority: PRIORITY_CRITICAL location { lat: 23.1 lon: 113.3 district: "440106" grid: "G1" address: "1 Tianhe Rd" } people: 3 description: "fire" }' \
            'sensor { sensor_id: "S1" kind: SENSOR_KIND_SMOKE value: 3.5 threshold: 1 unit: "ppm" }' \
            'petition { petition_id: "P1" issue: PETITION_ISSUE_WAGE_ARREARS petitioners: 6 petitioner_refs: "a" bypass_level: true repeat_count: 2 target_office: "x" }'; do
  printf 'events { event_id: "e%d" source_id: "s" occurred_at_ms: %d status: STATUS_ACTUAL %s }\n' \
    "$i" "$now" "$body" |
    protoc --encode=linkd.v1.IngestRequest -I "$root/proto" linkd/v1/linkd.proto >"$work/ingest/seed$i"
  i=$((i + 1))
done
cp "$root/rules/routes.yaml" "$work/rules/default"
for f in "$root"/tests/data/rules/*/routes.yaml; do
  cp "$f" "$work/rules/$(basename "$(dirname "$f")")"
done
cp "$root/rules/correlate.yaml" "$work/rules/default-correlate"
for f in "$root"/tests/data/rules/correlate*/rules.yaml; do
  cp "$f" "$work/rules/$(basename "$(dirname "$f")")"
done
# Inputs that once crashed a target run first, every time (tests/fuzz/regress).
for f in "$root"/tests/fuzz/regress/rules-*; do cp "$f" "$work/rules/"; done
for f in "$root"/tests/fuzz/regress/ingest-*; do [ -e "$f" ] && cp "$f" "$work/ingest/"; done

# Crashing inputs are kept for reproduction: <build>/fuzz-artifacts/.
art="$build/fuzz-artifacts/"
mkdir -p "$art"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$build/fuzz_ingest" -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$art" \
  "$work/ingest" 2>&1 | tail -n 12
"$build/fuzz_rules" -max_total_time="$secs" -max_len=8192 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$art" \
  "$work/rules" 2>&1 | tail -n 12
