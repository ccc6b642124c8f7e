#!/usr/bin/env bash
# demo.sh: linkd end to end in under a minute, on a fresh Debian 12 (run as root,
# or as a user once ops/setup.sh has installed the packages).
#
# It installs what is missing, builds into build/, starts a private
# redis-server and linkd (default rules, --time-scale 60: one minute of
# deadline passes in one second), a live feed (`linkctl tail`) and simulated
# on-duty terminals (`linkctl terminal`), then plays a short evening at a 110
# linkage command centre with `linkctl send`. The utilities department's duty
# officer, deputy and head never answer, nor does the command-centre
# supervisor, so their tasks climb the whole chain to the command-centre
# director. Everything it starts is stopped on exit, by recorded PID.
# Data and logs go to var/demo/ (wiped at the start of each run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR="$ROOT/var/demo"
BIN="$ROOT/build"
TIME_SCALE=60
# Terminal behaviour, in real time. linkd's clock runs 60 times faster, so
# ACK_AFTER=250 ms is 15 s on its clock (inside the 30 s that life-safety
# routes give to acknowledge), ARRIVE_AFTER=3 s is 3 minutes (police must be
# on scene within 5), RESOLVE_AFTER=12 s is 12 minutes.
ACK_AFTER=250
ARRIVE_AFTER=3s
RESOLVE_AFTER=12s
WATCH_SECONDS=15

PIDS=()
if [ -t 1 ]; then B=$'\033[1m' H=$'\033[1;44;37m' R=$'\033[0m'; else B="" H="" R=""; fi

heading() { printf '\n%s== %s ==%s\n' "$H" "$*" "$R"; }
step() { printf '\n%s-- %s%s\n' "$B" "$*" "$R"; }
die() { printf 'demo.sh: %s\n' "$*" >&2; exit 1; }

# stop_pid sends SIGTERM and waits up to <seconds> for the process to end,
# then SIGKILL. Only PIDs this script started are ever passed in.
stop_pid() {
  local pid=$1 seconds=${2:-5} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < seconds * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  [ -n "$NAP_PID" ] && kill "$NAP_PID" 2>/dev/null
  for pid in "${PIDS[@]}"; do stop_pid "$pid" 3; done
  PIDS=()
}

# nap <seconds>: sleep, but let SIGINT/SIGTERM sent to this script alone stop
# it at once (bash runs traps only after a foreground command ends).
NAP_PID=""
nap() {
  sleep "$1" &
  NAP_PID=$!
  wait "$NAP_PID" || true
  NAP_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() { # the process was stopped in order; cleanup need not touch it
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# A free TCP port on 127.0.0.1: nobody answers a connect on it, and we have
# not handed it out already. Another program may still take it before we
# bind; start_linkd retries with new ports if linkd cannot listen.
TAKEN=" "
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    [[ $TAKEN == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

wait_for() { # wait_for <seconds> <pid> <command...>: until the command succeeds
  local seconds=$1 pid=$2 i
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Foreground use only: a function run with & is a subshell, and its $! would
# not be the PID of linkctl itself.
ctl() { "$BIN/linkctl" "$@"; }

# send <args>: one `linkctl send` to linkd's intake, its answer indented.
# Its exit status (65 for REJECTED) is shown, not fatal: the demo sends a bad event on purpose.
send() {
  ctl send --ingest "$INGEST" "$@" | sed 's/^/   intake> /' || true
}

# ---------------------------------------------------------------------------
heading "1/6 Packages and build"
cd "$ROOT"
bash ops/setup.sh
rm -rf "$VAR"
mkdir -p "$VAR/redis" "$VAR/terminals"
echo "configuring and building linkd and linkctl in build/ (log: var/demo/build.log)"
if ! { cmake -S "$ROOT" -B "$BIN" && make -C "$BIN" -j2 linkd linkctl; } >"$VAR/build.log" 2>&1; then
  tail -n 30 "$VAR/build.log" >&2
  die "build failed; see var/demo/build.log"
fi
echo "built: $("$BIN/linkd" --version 2>&1 | head -n 1), $(ctl --version)"

heading "2/6 Rules"
ctl check --rules "$ROOT/rules" || die "the default rules do not load"

heading "3/6 Private Redis and linkd (time scale $TIME_SCALE: 1 minute of deadline = 1 second)"
REDIS_PORT=$(free_port)
redis-server "$ROOT/ops/redis.conf" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$VAR/redis" \
  --logfile "$VAR/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
redis_up() { redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
wait_for 10 "$REDIS_PID" redis_up || die "redis-server did not start; see var/demo/redis.log"
echo "redis-server pid $REDIS_PID on 127.0.0.1:$REDIS_PORT (append-only file in var/demo/redis)"

linkd_ready() { grep -q READY "$VAR/linkd.log"; }
for attempt in 1 2 3; do
  INGEST="tcp://127.0.0.1:$(free_port)"
  TERMINALS="tcp://127.0.0.1:$(free_port)"
  FEED="tcp://127.0.0.1:$(free_port)"
  HTTP="127.0.0.1:$(free_port)"
  "$BIN/linkd" --rules "$ROOT/rules" --redis "redis://127.0.0.1:$REDIS_PORT/0" \
    --ingest "$INGEST" --terminals "$TERMINALS" --feed "$FEED" --http "$HTTP" \
    --time-scale "$TIME_SCALE" --log-format text 2>"$VAR/linkd.log" &
  LINKD_PID=$!
  PIDS+=("$LINKD_PID")
  wait_for 15 "$LINKD_PID" linkd_ready && break
  if kill -0 "$LINKD_PID" 2>/dev/null; then # alive but not ready: do not wait forever
    cat "$VAR/linkd.log" >&2
    die "linkd did not become ready within 15 s"
  fi
  wait "$LINKD_PID" 2>/dev/null && rc=0 || rc=$?
  forget_pid "$LINKD_PID"
  [ "$rc" = 69 ] && [ "$attempt" -lt 3 ] && { echo "ports taken; trying others"; continue; }
  cat "$VAR/linkd.log" >&2
  die "linkd did not become ready (exit $rc)"
done
echo "linkd pid $LINKD_PID: intake $INGEST, terminals $TERMINALS, feed $FEED (log: var/demo/linkd.log)"
echo "live board: http://$HTTP/  (also /metrics, /readyz, /api/incidents; open it in a browser now)"
grep READY "$VAR/linkd.log" | sed 's/^/   /'

heading "4/6 Live feed and on-duty terminals"
cat <<EOF
The feed below comes from 'linkctl tail': one line per event, stamped with linkd's
(fast) clock: incident opened, task dispatched to a department's terminal (with the
time left to acknowledge, arrive and resolve), delivered, acknowledged, on scene,
resolved, escalated (red on a terminal), incident closed.
Duty officers acknowledge ${ACK_AFTER} ms after a task arrives (15 s on linkd's clock),
report on scene after $ARRIVE_AFTER and resolved after $RESOLVE_AFTER of real time
(petition, political-legal and justice officers only sign for their cases).
Utilities: duty officer, deputy and head never answer; nor does the command-centre
supervisor. The command-centre director acknowledges. Terminal logs: var/demo/terminals/.
EOF
"$BIN/linkctl" tail --feed "$FEED" --summary &
TAIL_PID=$!
PIDS+=("$TAIL_PID")
nap 0.3

term() { # term <id> <linkctl terminal options...>
  local id=$1
  shift
  "$BIN/linkctl" terminal --terminals "$TERMINALS" --id "$id" "$@" >"$VAR/terminals/$id.log" 2>&1 &
  PIDS+=("$!")
}
for dept in police traffic fire medical emergency_mgmt urban_mgmt civil_affairs grid; do
  term "$dept-duty" --auto-ack "$ACK_AFTER" --auto-arrive "$ARRIVE_AFTER" --auto-resolve "$RESOLVE_AFTER"
done
# The grid centre works by shift (rules/rosters.yaml): its night desk from 20:00 to 08:00.
term grid-night --auto-ack "$ACK_AFTER" --auto-arrive "$ARRIVE_AFTER" --auto-resolve "$RESOLVE_AFTER"
# Petition work is counted in days (acceptance notice within 15, conclusion
# within 60): these duty officers sign for the case and nothing more today.
for dept in petition political_legal justice; do term "$dept-duty" --auto-ack "$ACK_AFTER"; done
for id in utilities-duty utilities-deputy utilities-head command-supervisor; do term "$id" --ignore; done
term command-director --auto-ack "$ACK_AFTER"
nap 1

heading "5/6 Scenario: an evening in Guangzhou"
RUN=$(date +%s)

step "110 call: residential fire, Tianhe district, grid TH-0412 (fire, ambulance and police together)"
send --kind call --category fire --priority critical --event-id "gz-$RUN-001" --source 110-console-3 \
  --district 440106 --grid TH-0412 --address "Huajing Xincheng, Bldg 12, 6/F" --lat 23.1375 --lon 113.3631 \
  --caller C-0731 --people 4 --description "Kitchen fire in a flat, smoke in the stairwell, 4 residents upstairs"
nap 1

step "110 call: a neighbour reports the same fire from across the street (joins the open incident: merged, not sent again)"
send --kind call --category fire --priority critical --event-id "gz-$RUN-011" --source 110-console-2 \
  --district 440106 --grid TH-0412 --address "Huajing Xincheng, Bldg 11" --lat 23.1378 --lon 113.3633 \
  --caller C-0745 --description "Flames from a 6th-floor window in the next building"
nap 1

step "110 call: robbery in progress, Yuexiu district"
send --kind call --category crime --event-id "gz-$RUN-002" --source 110-console-1 \
  --district 440104 --grid YX-0203 --address "Beijing Rd pedestrian street, north gate" \
  --caller C-0732 --people 2 --description "Bag snatched by two men on an e-bike, heading north"
nap 1

step "110 call: traffic accident with injured people, Haizhu district (traffic police and ambulance)"
send --kind call --category traffic_accident --priority urgent --event-id "gz-$RUN-003" \
  --source 110-console-2 --district 440105 --grid HZ-0718 --address "Xingang Rd W / Guangzhou Ave S" \
  --people 3 --description "Car and e-bike collided, two injured, one rider cannot move his legs"
nap 1

step "110 call: medical emergency, Baiyun district"
send --kind call --category medical --priority critical --event-id "gz-$RUN-004" --source 110-console-3 \
  --district 440111 --grid BY-1102 --address "Jingxi Rd 88, Bldg 3, 2/F" --people 1 \
  --description "Man, about 70, collapsed at home, breathing with difficulty"
nap 1

step "110 call, not police work: water main burst (goes to utilities, not the police)"
send --kind call --category water_supply --event-id "gz-$RUN-005" --source 110-console-1 \
  --district 440106 --grid TH-0301 --address "Huangpu Ave W 100" \
  --description "Water main burst, road flooded, three buildings without water"
nap 1

step "Sensor alarm: smoke detector, Tianhe (straight to the fire service)"
send --kind sensor --sensor-id SMK-TH0412-0603 --sensor-kind smoke --value 0.42 --threshold 0.15 \
  --unit "dB/m" --event-id "gz-$RUN-006" --source iot-fire-platform --district 440106 --grid TH-0412 \
  --address "Huajing Xincheng, Bldg 12, 6/F corridor"
nap 1

step "Sensor alarm: combustible gas in a restaurant basement, Haizhu (gas company and fire)"
send --kind sensor --sensor-id GAS-HZ0220-B1 --sensor-kind gas --value 25 --threshold 10 --unit "%LEL" \
  --event-id "gz-$RUN-007" --source iot-gas-platform --district 440105 --grid HZ-0220 \
  --address "Jiangnan W Rd 36, basement kitchen"
nap 1

step "Sensor alarm: crowd density camera over threshold, Yuexiu (police and emergency management)"
send --kind sensor --sensor-id CAM-YX0101-07 --sensor-kind crowd_density --value 5.2 --threshold 4.0 \
  --unit "persons/m2" --event-id "gz-$RUN-008" --source video-analytics --district 440104 --grid YX-0101 \
  --address "Beijing Rd / Zhongshan 5th Rd metro exit"
nap 1

step "110 call: a fight in that crowd, same grid, minutes later (correlation: the crowd incident is upgraded to critical, with mediators and the command centre)"
send --kind call --category dispute --event-id "gz-$RUN-008b" --source 110-console-2 \
  --district 440104 --grid YX-0101 --address "Beijing Rd pedestrian street, metro exit" --people 6 \
  --description "Scuffle in the crowd at the metro exit, several people pushing"
nap 1

step "Group petition: 23 construction workers, three months' wages unpaid, skipped a level, third visit"
send --kind petition --petition-id "XF-2026-0317" --issue wage_arrears --petitioners 23 --bypass \
  --repeat 2 --office "Municipal Letters and Visits Bureau" --event-id "gz-$RUN-009" \
  --source petition-system --district 440111 \
  --description "Workers of the Jinhui Plaza project: wages for three months unpaid by the subcontractor"
nap 1

step "The fire call's console resends the same event (network retry): answered DUPLICATE"
send --kind call --category fire --priority critical --event-id "gz-$RUN-001" --source 110-console-3 \
  --district 440106 --grid TH-0412 --description "Kitchen fire in a flat (resent)"
nap 0.5

step "A malformed call from a console: no category given: answered REJECTED with the reason"
send --kind call --event-id "gz-$RUN-010" --source 110-console-4 --district 440104 \
  --description "Caller hung up before the category was recorded"

heading "6/6 Watching deadlines for ${WATCH_SECONDS}s (= $((WATCH_SECONDS * TIME_SCALE / 60)) minutes on linkd's clock)"
echo "Acknowledgements, arrivals and resolutions come from the terminals; utilities' tasks"
echo "escalate: duty officer -> deputy -> head -> command supervisor -> command director."
nap "$WATCH_SECONDS"

heading "Summary"
for p in "${PIDS[@]}"; do
  case " $REDIS_PID $LINKD_PID $TAIL_PID " in *" $p "*) ;; *) stop_pid "$p" 3; forget_pid "$p" ;; esac
done
stop_pid "$TAIL_PID" 5 # prints the feed summary
forget_pid "$TAIL_PID"
stop_pid "$LINKD_PID" 10
forget_pid "$LINKD_PID"
echo
echo "linkd's own account (its SUMMARY line on exit):"
grep SUMMARY "$VAR/linkd.log" | sed 's/^/   /' || echo "   (no SUMMARY line; see var/demo/linkd.log)"
stop_pid "$REDIS_PID" 5
forget_pid "$REDIS_PID"
echo
echo "What the fire service's duty terminal saw (var/demo/terminals/fire-duty.log):"
sed 's/^/   /' "$VAR/terminals/fire-duty.log"
echo
echo "What the command-centre director's terminal saw (var/demo/terminals/command-director.log):"
sed 's/^/   /' "$VAR/terminals/command-director.log"
echo
echo "Logs and Redis data: var/demo/. Everything the demo started has stopped."
