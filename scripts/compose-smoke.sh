#!/usr/bin/env bash
# Prove the deployment on this machine: build the image, run the compose stack with the CPU override,
# send a real completion through the published port, check that Prometheus scraped the service, run
# every Grafana panel's query after a burst and draw them to docs/dashboard.png, check that bad
# configuration stops the container at start-up, then take everything down.
#
#   scripts/compose-smoke.sh            (root; Debian bookworm; PyPI and Debian's mirror reachable)
#
# There is no image registry here: the tools, the base image, the offline wheels and the images are made
# as scripts/smoke-common.sh says (shared with scripts/scale-smoke.sh). Too slow for CI (minutes); run it
# by hand after changing the Dockerfile, the compose files or deploy/.
#
# Environment (all optional): SMOKE_APP_PORT (18000), SMOKE_PROM_PORT (19090), and scripts/smoke-common.sh's
# SHARED, SMOKE_STATE, KEEP_STACK=1, KEEP_DOCKERD=1, PYTHON.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/smoke-common.sh
APP_PORT=${SMOKE_APP_PORT:-18000}
PROM_PORT=${SMOKE_PROM_PORT:-19090}

# Compose reads these: local images, loopback ports only, and a small queue so the burst below also
# exercises the 503 path.
export COMPOSE_PROJECT_NAME=imgcomp-smoke
export IMGCOMP_IMAGE=local/imgcomp:smoke PROMETHEUS_IMAGE=local/imgcomp-prometheus:smoke BALANCER_IMAGE=local/imgcomp-balancer:smoke
export BIND_ADDRESS=127.0.0.1 IMGCOMP_PUBLISH_PORT=$APP_PORT PROMETHEUS_PORT=$PROM_PORT
export IMGCOMP_QUEUE_SIZE=${IMGCOMP_QUEUE_SIZE:-4}
# Two cores shared with other jobs: one intra-op thread avoids OpenMP threads spinning against them.
export IMGCOMP_TORCH_THREADS=${IMGCOMP_TORCH_THREADS:-1}
SMOKE_CONTAINERS=(imgcomp-smoke-badconfig)

# --- tools and images -----------------------------------------------------------------------------
smoke_tools "SMOKE_APP_PORT / SMOKE_PROM_PORT" "$APP_PORT" "$PROM_PORT"
smoke_images

# --- the stack ------------------------------------------------------------------------------------
t=$SECONDS
say "compose up app balancer prometheus (CPU override), waiting for healthy"
# Grafana has no image on this machine: the panels' queries are checked against Prometheus below.
if ! "${COMPOSE[@]}" up --detach --wait --wait-timeout 300 app balancer prometheus; then
  "${COMPOSE[@]}" ps
  "${COMPOSE[@]}" logs --tail 40 app
  exit 1
fi
healthy_s=$(elapsed $t)
say "time to healthy: $healthy_s s (app ready: models loaded, workers up; prometheus ready)"
"${COMPOSE[@]}" ps --format 'table {{.Service}}\t{{.Status}}\t{{.Ports}}'
APP=http://127.0.0.1:$APP_PORT
PROM=http://127.0.0.1:$PROM_PORT
curl -fsS "$APP/v1/models" | head -c 600
echo

say "one completion through $APP (a real face, centre hole)"
mkdir -p out
"$PYTHON" scripts/smoke_client.py complete --url "$APP" --faces "$FACES" --index 7 --out out/smoke-completion.png

say "Prometheus at $PROM: scraped?"
"$PYTHON" scripts/smoke_client.py scraped --prom "$PROM" --timeout 60

burst_start=$(date +%s)
say "burst of completions (queue size $IMGCOMP_QUEUE_SIZE)"
"$PYTHON" scripts/smoke_client.py burst --url "$APP" --faces "$FACES" --requests 12 --concurrency 6 \
  --iterations 60 --restarts 2
sleep 35 # past the 30 s rate window after the last answer, so the panels show the burst end, too
burst_end=$(date +%s)
say "every dashboard panel's PromQL over the burst"
"$PYTHON" scripts/smoke_client.py panels --prom "$PROM" --dashboard deploy/grafana/dashboards/imgcomp.json \
  --start "$((burst_start - 15))" --end "$burst_end" --png docs/dashboard.png

# --- bad configuration: one clear line, non-zero exit, never serving half-loaded -------------------
say "bad configuration must stop the container at start-up"
app_container=$("${COMPOSE[@]}" ps --quiet app)
bad_config() {
  local name=$1
  shift
  local rc=0 started=$SECONDS output
  output=$(timeout 180 docker run --rm --name imgcomp-smoke-badconfig "$@" "$IMGCOMP_IMAGE" 2>&1) || rc=$?
  printf '  %-22s exit %s after %s s, %s line(s) of output:\n' "$name" "$rc" "$(elapsed $started)" \
    "$(printf '%s\n' "$output" | grep -c .)"
  printf '%s\n' "$output" | tail -n 5 | sed 's/^/    | /'
  if ((rc == 0 || rc == 124)); then
    echo "  FAIL: $name should exit non-zero at start-up" >&2
    return 1
  fi
}
bad=0
bad_config "unknown device" -e IMGCOMP_DEVICES=tpu:0 || bad=1
bad_config "absent GPU" -e IMGCOMP_DEVICES=cuda:0 || bad=1
bad_config "missing model_store" -e IMGCOMP_DEVICES=cpu -e IMGCOMP_MODEL_STORE=/srv/no-such-store || bad=1
# The running app's network namespace already has port 8000 bound: no host networking needed.
bad_config "port in use" -e IMGCOMP_DEVICES=cpu --network "container:$app_container" || bad=1

say "summary"
echo "image size: $IMGCOMP_IMAGE $((size / 1000000)) MB (build $build_s s)"
echo "time to healthy: $healthy_s s"
((bad == 0)) || { echo "bad-config checks FAILED" >&2; exit 1; }
echo "compose smoke passed"
