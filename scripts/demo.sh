#!/usr/bin/env bash
# `make demo`: the embedded stack, a sample of annotated images, and what to try next.
# Safe to run again: existing users, projects and images are kept.
set -euo pipefail

IMAGES=${DEMO_IMAGES:-5000}
ROOT=/Projects/demo/images
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
show_head() { printf '$ %s | head -n 5\n' "$*"; "$@" > "$tmp"; head -n 5 "$tmp"; }
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT

say "Embedded PostgreSQL (data in ${EPIPE_HOME:-.epipe})"
epipe db start
epipe init

say "A user and a project"
epipe user add alice 2>/dev/null || echo "user alice exists"
epipe user add bob 2>/dev/null || echo "user bob exists"
epipe project create demo --owner alice 2>/dev/null || echo "project demo exists"

if epipe fs stat "$ROOT" >/dev/null 2>&1; then
  say "Images already loaded under $ROOT"
else
  say "Loading $IMAGES annotated images under $ROOT (as alice)"
  epipe load images --count "$IMAGES" --under "$ROOT" --seed 1 --user alice --app demo-loader
fi

home=${EPIPE_HOME:-.epipe}
hive=no
if command -v java > /dev/null 2>&1; then
  say "A local Hive metastore (HMS 2.3 on Derby, data in $home/hms)"
  epipe hms start && hive=yes
else
  say "No Java: the Hive part of the demo is skipped (epipe hms needs Java >= 17)"
fi

say "The pipeline: change log -> search index and Hive metastore (epipe run, in the background)"
if [ -f "$home/run.pid" ] && kill -0 "$(cat "$home/run.pid")" 2>/dev/null; then
  echo "already running (pid $(cat "$home/run.pid"))"
else
  nohup epipe run > "$home/run.log" 2>&1 &
  echo $! > "$home/run.pid"
  echo "started (pid $!, log $home/run.log)"
fi
epipe wait --timeout 120 > /dev/null
epipe status

say "The dataset"
show epipe fs ls "$ROOT"
session=$(epipe fs ls "$ROOT/train" | awk 'NR == 1 {print $NF}')
show_head epipe fs ls "$ROOT/train/$session"
first="$ROOT/train/$session/$(epipe fs ls "$ROOT/train/$session" | awk 'NR == 1 {print $NF}')"
show epipe fs stat "$first"
show epipe fs getxattr "$first"
second="$ROOT/train/$session/$(epipe fs ls "$ROOT/train/$session" | awk 'NR == 2 {print $NF}')"
show epipe fs getxattr "$second" labels

say "Operations return a consistency token (the commit position)"
show epipe fs setxattr "$first" reviewed '{"by": "alice", "ok": true}' --user alice --app demo
show epipe fs cat "$first" --user alice --app demo
show epipe fs getxattr "$first" reviewed --user alice

say "Errors carry POSIX names"
show epipe fs mv "$ROOT" "$ROOT/train/inside" || true
show epipe fs put /Projects/demo/x --user bob || true   # bob is not a member
show epipe fs setxattr "$first" broken '{not json' || true

say "Search: images with more than three bicycles"
show epipe search --xattr 'labels.objects.bicycle>3' --under "$ROOT" --limit 5
say "Search: front-camera images in fog, largest first"
show epipe search --xattr labels.camera=front --xattr labels.weather=fog --type file --sort=-size --limit 3
say "Search: free text"
show epipe search "snow dusk" --limit 3
say "Moves reach the index at once (the token says when)"
token=$(epipe fs mv "$ROOT/val" /Projects/demo/validation --user alice)
epipe wait --token "$token" > /dev/null
show epipe search --under /Projects/demo/validation --xattr 'labels.objects.bicycle>=3' --limit 3
show epipe search --under "$ROOT/val" --limit 3
token=$(epipe fs mv /Projects/demo/validation "$ROOT/val" --user alice)
epipe wait --token "$token" > /dev/null
show epipe verify

MODEL=/Projects/demo/models/detector.pb
say "Provenance: an app reads 1,000 images and writes a model"
if epipe fs stat "$MODEL" > /dev/null 2>&1; then
  echo "$MODEL exists already"
else
  epipe fs mkdir -p /Projects/demo/models --user alice > /dev/null
  epipe search --under "$ROOT/train" --type file --sort path --limit 1000 --json |
    python -c 'import json, sys; print("\n".join(h["path"] for h in json.load(sys.stdin)["hits"]))' > "$tmp"
  printf '$ epipe fs cat --user alice --app train-001 <%s images>\n' "$(wc -l < "$tmp")"
  xargs epipe fs cat --user alice --app train-001 < "$tmp" > /dev/null
  printf '$ epipe fs put %s --size 52428800 --user alice --app train-001\n' "$MODEL"
  token=$(epipe fs put "$MODEL" --size 52428800 --user alice --app train-001)
  epipe wait --token "$token" > /dev/null
fi
show_head epipe lineage "$MODEL"
printf '$ epipe lineage %s --json | (count the nodes)\n' "$MODEL"
epipe lineage "$MODEL" --json | python -c 'import collections, json, sys
g = json.load(sys.stdin)
print(dict(collections.Counter(n.get("artifact") or n["type"] for n in g["nodes"])))'
show_head epipe prov app train-001
say "A move of the image folder keeps the lineage (nodes are inodes)"
token=$(epipe fs mv "$ROOT/train" /Projects/demo/training --user alice)
epipe wait --token "$token" > /dev/null
show_head epipe lineage "$MODEL"
token=$(epipe fs mv /Projects/demo/training "$ROOT/train" --user alice)
epipe wait --token "$token" > /dev/null
show_head epipe prov history "$MODEL"

if [ "$hive" = yes ]; then
  say "Hive: a database and a table partitioned by session, registered by a Thrift client"
  prefix="file:$(cd "$home" && pwd)/hms/fs"
  sessions=$(epipe fs ls "$ROOT/train" | awk '{print $NF}')
  # shellcheck disable=SC2086 # one argument per session
  show python scripts/demo_hive.py "$(epipe hms url)" "$prefix" /Projects/demo "$ROOT/train" $sessions
  epipe wait --timeout 60 > /dev/null
  for _ in $(seq 120); do  # the consumer binds new objects at its next scan (2 s)
    [ "$(epipe hive ls --json | python -c 'import json, sys; print(json.load(sys.stdin)["ok"])')" -ge 3 ] && break
    sleep 0.5
  done
  show_head epipe hive ls
  gone=$(echo "$sessions" | tail -n 1)  # not the first: the API part below reads it
  say "rm -r of one session directory drops its partition (data was already gone)"
  token=$(epipe fs rm -r "$ROOT/train/$gone" --user alice)
  epipe wait --token "$token" > /dev/null
  printf '$ epipe hive ls | grep %s\n' "$gone"
  epipe hive ls | grep -F "$gone" || echo "(none: the partition of session $gone was dropped)"
  say "A move rewrites the locations of the table and its partitions"
  token=$(epipe fs mv "$ROOT/train" /Projects/demo/training --user alice)
  epipe wait --token "$token" > /dev/null
  show_head epipe hive ls
  token=$(epipe fs mv /Projects/demo/training "$ROOT/train" --user alice)
  epipe wait --token "$token" > /dev/null
  show epipe verify
fi

say "The REST API (epipe serve, in the background; OpenAPI at /docs)"
port=${DEMO_PORT:-8080}
if [ -f "$home/serve.pid" ] && kill -0 "$(cat "$home/serve.pid")" 2>/dev/null; then
  echo "already running (pid $(cat "$home/serve.pid"))"
else
  nohup epipe serve --port "$port" > "$home/serve.log" 2>&1 &
  echo $! > "$home/serve.pid"
  echo "started (pid $!, log $home/serve.log)"
fi
api=http://127.0.0.1:$port
if ! command -v curl > /dev/null; then
  echo "(curl is not installed: skipping the API calls; the API is at $api/docs)"
else
  for _ in $(seq 100); do curl -sf "$api/healthz" > /dev/null && break; sleep 0.2; done
  alice=$(epipe token create alice | tail -n 1)
  bob=$(epipe token create bob | tail -n 1)
  as() {  # USER curl-args...: one request as USER, printed as typed, answer cut short
    local user=$1; shift
    printf '$ curl -H "Authorization: Bearer $%s"' "$user"; printf ' %q' "$@"; echo
    curl -s -H "Authorization: Bearer ${!user}" "$@" | cut -c 1-400
    echo
  }
  as alice -G "$api/v1/search" --data-urlencode 'xattr=labels.objects.bicycle>3' \
    --data-urlencode "under=$ROOT" -d limit=1
  as bob -G "$api/v1/search" --data-urlencode 'xattr=labels.objects.bicycle>3'  # in no project
  as bob -G "$api/v1/files/stat" --data-urlencode "path=$first"  # like a missing file
  as alice -X PUT -H 'Content-Type: application/json' -d '{"unicorn": 1}' \
    "$api/v1/files/xattrs?name=notes&path=$first"
  put=$(curl -s -X PUT -H "Authorization: Bearer $alice" -H 'Content-Type: application/json' \
    -d '{"unicorn": 2}' "$api/v1/files/xattrs?name=notes&path=$first" |
    python -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  as alice -G "$api/v1/search" --data-urlencode 'xattr=notes.unicorn=2' \
    -d "after=$put" -d wait_ms=5000
  as alice -G "$api/v1/search" --data-urlencode 'xattr=labels.objects.bicycle>>3'
  as alice -G "$api/v1/lineage" --data-urlencode "path=$MODEL" -d depth=1
  as bob -G "$api/v1/lineage" --data-urlencode "path=$MODEL"  # bob sees none of it
  as alice "$api/v1/provenance/apps/train-001"
  as alice -X DELETE "$api/v1/files/xattrs?name=notes&path=$first"
fi

cat <<TRY

What to try (the venv is in .venv: source .venv/bin/activate, or prefix .venv/bin/):
  epipe search --xattr 'labels.objects.person>5' --xattr labels.time_of_day=dawn
  epipe search bicycle --under $ROOT/train --json
  epipe fs ls $ROOT/val
  epipe fs mkdir -p /Projects/demo/models --user alice
  epipe fs mv $ROOT/val /Projects/demo/holdout --user alice
  epipe fs rm -r /Projects/demo/holdout --user alice
  epipe reindex        # rebuild the index, swapped in without downtime
  epipe project add-member demo bob --role reader
  epipe load mix --ops 20000 --clients 4
  psql "\$(epipe db url)" -c 'SELECT op, count(*) FROM prov_ops GROUP BY op'   # any psql client
  epipe lineage $ROOT/train/<session>/<image> --direction downstream
  epipe prov history /Projects/demo/models/detector.pb --json
  epipe prov export --openlineage --out lineage.jsonl
  epipe status         # positions, lag, dead letters
  epipe hive ls        # the Hive metastore's objects and their directories (with Java)
  curl -H "Authorization: Bearer \$(epipe token create alice | tail -1)" '$api/v1/search?q=snow&limit=3'
  open $api/docs       # the API, with examples
  make stop            # stop the API, the pipeline and the database when done
TRY
