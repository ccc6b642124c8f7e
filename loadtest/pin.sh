# pin.sh, sourced by bench.sh and hostile_bench.sh: BENCH_PIN=L:R:G pins
# linkd to CPU list L, redis-server to R and linkload to G (taskset); empty
# parts, or no BENCH_PIN, pin nothing. Sets the arrays PIN_LINKD, PIN_REDIS
# and PIN_LOAD to prefix those commands with.
PIN_LINKD=() PIN_REDIS=() PIN_LOAD=()
if [ -n "${BENCH_PIN:-}" ]; then
    IFS=: read -r pin_l pin_r pin_g <<<"$BENCH_PIN"
    [ -n "$pin_l" ] && PIN_LINKD=(taskset -c "$pin_l")
    [ -n "$pin_r" ] && PIN_REDIS=(taskset -c "$pin_r")
    [ -n "$pin_g" ] && PIN_LOAD=(taskset -c "$pin_g")
fi
