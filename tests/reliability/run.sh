#!/usr/bin/env bash
# run.sh: the reliability suite, long versions (docs/RELIABILITY.md).
#
#   bash tests/reliability/run.sh            # long: 30 linkd kills, 30 s Redis outage, 10 Redis kills,
#                                            # terminals partitioned for 60 s
#   LINKD_RELIABILITY=short bash tests/reliability/run.sh   # the CI sizes
#
# Builds the release configuration into build/ (as ops/test.sh does), then
# runs the crash loop, the Redis outage and the Redis kill -9 tests against
# real redis-server and linkd processes on free loopback ports, and the
# terminal-fault test (terminals in network namespaces it creates; needs
# root, skipped otherwise), and prints
# the figures each one reports (also written to $REPORT, default
# build/reliability-report.txt). Bounded: each test binary is stopped after
# 30 minutes; the long run takes about 7 minutes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
export LINKD_RELIABILITY=${LINKD_RELIABILITY:-long}
export LINKD_RELIABILITY_REPORT=${REPORT:-$root/$build/reliability-report.txt}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINKD_TESTS=ON >/dev/null
cmake --build "$build" -j 2 --target linkd linkctl ld_impair test_crashloop test_redis_faults \
    test_terminal_faults >/dev/null
: >"$LINKD_RELIABILITY_REPORT"
failed=0
for t in test_crashloop test_redis_faults test_terminal_faults; do
    echo "=== $t ($LINKD_RELIABILITY)"
    timeout --kill-after=30 1800 "$build/$t" --jobs 1 --verbose=0 || failed=1
done
echo "=== figures ($LINKD_RELIABILITY_REPORT)"
cat "$LINKD_RELIABILITY_REPORT"
exit $failed
