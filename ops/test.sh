#!/usr/bin/env bash
# test.sh: build linkd and run the whole test suite twice: once as shipped
# (RelWithDebInfo, in build/) and once under AddressSanitizer and
# UndefinedBehaviorSanitizer (Debug, in build-asan/).
#
#   bash ops/test.sh            # from anywhere; run as root on a fresh Debian 12
#
# Installs missing packages first (ops/setup.sh). Idempotent: re-running
# reuses both build directories. Exits non-zero if any step fails. Every step
# is bounded in time, and so is each test (ctest --timeout; the integration
# tests bound their own waits). Tests start private redis-server and linkd
# processes on free loopback ports and stop them by PID; nothing else on the
# machine is touched. The reliability suite (tests/reliability: linkd and
# Redis killed and stopped under load) runs here in its short form; its long
# form is `bash tests/reliability/run.sh` (docs/RELIABILITY.md).
#
# Environment: JOBS (parallel builds and test binaries; default: CPU count),
# LINKD_TEST_SKIP_ASAN=1 (only the first pass), CTEST_ARGS (extra ctest args,
# e.g. "-R integration").
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
step_timeout=${LINKD_TEST_STEP_TIMEOUT:-2400}   # seconds, per build or ctest run
test_timeout=600                                # seconds, per test binary
read -r -a ctest_extra <<<"${CTEST_ARGS:-}"

log() { printf '\n=== test.sh: %s ===\n' "$*" >&2; }
fail() { printf '\n=== test.sh: FAILED: %s ===\n' "$*" >&2; exit 1; }
failed=()

# timeout(1) signals its whole process group, so a hung test cannot outlive it.
bounded() { timeout --kill-after=30 "$step_timeout" "$@"; }

log "packages (ops/setup.sh)"
bash ops/setup.sh || fail "ops/setup.sh"

run_suite() {  # <build dir> <description> [cmake args...]
  local dir=$1 what=$2
  shift 2
  log "$what: configure $dir"
  bounded cmake -S . -B "$dir" -DLINKD_TESTS=ON "$@" >/dev/null || fail "$what: cmake configure"
  log "$what: build"
  bounded cmake --build "$dir" -j "$jobs" || fail "$what: build"
  log "$what: ctest"
  # A failing pass does not stop the next one: CI shows every failure at once.
  (cd "$dir" && bounded ctest --output-on-failure --no-tests=error --timeout "$test_timeout" \
      -j "$jobs" "${ctest_extra[@]}") || failed+=("$what")
  # Criterion counts a crash in a test's teardown as a warning, not a failure:
  # any sanitizer report anywhere in the test output fails the pass.
  local last="$dir/Testing/Temporary/LastTest.log"
  if [ -f "$last" ] && grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:|exited during its setup or teardown" "$last"; then
    grep -nE -A12 "ERROR: (Address|Leak)Sanitizer|runtime error:|exited during its setup or teardown" "$last" | head -80 >&2
    failed+=("$what: sanitizer reports in $last")
  fi
}

started=$SECONDS
run_suite build "release (RelWithDebInfo)" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINKD_SANITIZE=OFF

if [ "${LINKD_TEST_SKIP_ASAN:-0}" = 1 ]; then
  log "sanitizer pass skipped (LINKD_TEST_SKIP_ASAN=1)"
else
  # LeakSanitizer cannot run everywhere (under ptrace, in some containers):
  # probe it with a program that leaks on purpose, and turn leak checks off
  # only if LSan itself cannot work here.
  leaks=1
  probe=$(mktemp -d /tmp/linkd-lsan-probe-XXXXXX)
  trap 'rm -rf "$probe"' EXIT
  printf '#include <stdlib.h>\nint main(void){void *volatile p=malloc(7);p=0;return 0;}\n' \
    >"$probe/leak.c"
  if cc -fsanitize=address -g -o "$probe/leak" "$probe/leak.c" 2>/dev/null; then
    out=$(ASAN_OPTIONS=detect_leaks=1 "$probe/leak" 2>&1 || true)
    case $out in
      *"detected memory leaks"*) ;;
      *) leaks=0; log "LeakSanitizer does not work on this machine: leak checks off" ;;
    esac
  fi
  export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$root/tests/harness/lsan.supp:print_suppressions=0"
  run_suite build-asan "sanitizers (ASan+UBSan, Debug)" -DCMAKE_BUILD_TYPE=Debug -DLINKD_SANITIZE=ON
fi

# Fuzz smoke: the intake decoder and the rule loader under libFuzzer for a
# bounded time each (LINKD_FUZZ_SECONDS, default 30; 0 skips). The clang
# build makes every target, tests included, so clang's warnings (also
# -Werror) are checked as gcc's are.
fuzz_secs=${LINKD_FUZZ_SECONDS:-30}
if [ "$fuzz_secs" -gt 0 ]; then
  log "fuzz: configure build-fuzz (clang), build every target"
  if CC=clang bounded cmake -S . -B build-fuzz -DLINKD_FUZZ=ON -DLINKD_TESTS=ON \
        -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
     bounded cmake --build build-fuzz -j "$jobs" >/dev/null; then
    log "fuzz: ${fuzz_secs}s per target"
    bounded bash tests/fuzz/run.sh build-fuzz "$fuzz_secs" || failed+=("fuzz (inputs in build-fuzz/fuzz-artifacts/)")
  else
    failed+=("clang build (build-fuzz)")
  fi
fi

if ((${#failed[@]})); then
  fail "tests failed in: ${failed[*]} ($((SECONDS - started)) s)"
fi
log "all tests passed in $((SECONDS - started)) s"
