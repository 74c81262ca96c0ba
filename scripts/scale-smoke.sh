#!/usr/bin/env bash
# Prove the scale-out on this machine: three CPU replicas behind the HAProxy balancer, Prometheus
# discovering each of them. Four bounded bursts of real completions through the balancer's loopback
# port: (1) they spread over all three replicas (per-replica counts from Prometheus); (2) one replica
# is killed (SIGKILL) mid-burst: the balancer routes around it, and only requests it held may fail;
# (3) it restarts and rejoins; (4) another replica is stopped (SIGTERM, its graceful drain) mid-burst:
# nothing is lost. Then everything is taken down.
#
#   scripts/scale-smoke.sh 2>&1 | tee docs/scale-smoke.log     (root; Debian bookworm; PyPI and Debian's mirror)
#
# Like scripts/compose-smoke.sh, whose tool and image steps it shares (scripts/smoke-common.sh): no
# registry, so the base is made with debootstrap, wheels are downloaded into wheels/, and the balancer
# and Prometheus are Debian's packages in local images. Search budgets are tiny (the CPU is shared):
# this proves routing, failover and draining, not speed. Minutes, not for CI.
#
# Environment (all optional): SCALE_LB_PORT (18080), SCALE_PROM_PORT (19091), SCALE_REPLICAS (3), and
# scripts/smoke-common.sh's SHARED, SMOKE_STATE, KEEP_STACK=1, KEEP_DOCKERD=1, PYTHON.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/smoke-common.sh
LB_PORT=${SCALE_LB_PORT:-18080}
PROM_PORT=${SCALE_PROM_PORT:-19091}
REPLICAS=${SCALE_REPLICAS:-3}

export COMPOSE_PROJECT_NAME=imgcomp-scale
export IMGCOMP_IMAGE=local/imgcomp:scale BALANCER_IMAGE=local/imgcomp-balancer:scale
export PROMETHEUS_IMAGE=local/imgcomp-prometheus:scale
export BIND_ADDRESS=127.0.0.1 IMGCOMP_PUBLISH_PORT=$LB_PORT PROMETHEUS_PORT=$PROM_PORT
# Two cores for three replicas: one intra-op thread each.
export IMGCOMP_TORCH_THREADS=1
SMOKE_CONTAINERS=(imgcomp-scale-readonly)

# --- tools and images (shared with compose-smoke.sh) ------------------------------------------------
smoke_tools "SCALE_LB_PORT / SCALE_PROM_PORT" "$LB_PORT" "$PROM_PORT"
smoke_images

say "config checks in the images: haproxy -c, promtool check config"
docker run --rm -v "$PWD/deploy/balancer/haproxy.cfg:/cfg/haproxy.cfg:ro" --entrypoint haproxy "$BALANCER_IMAGE" \
  -c -f /cfg/haproxy.cfg
docker run --rm -v "$PWD/deploy/prometheus/prometheus.yml:/cfg/prometheus.yml:ro" --entrypoint promtool \
  "$PROMETHEUS_IMAGE" check config /cfg/prometheus.yml

say "the image under deploy/k8s's pod security: read-only root, uid 10001, no capabilities, no privilege gain"
docker rm -f imgcomp-scale-readonly >/dev/null 2>&1 || true
docker run -d --name imgcomp-scale-readonly --read-only --tmpfs /tmp --user 10001:10001 --cap-drop ALL \
  --security-opt no-new-privileges -e IMGCOMP_DEVICES=cpu -e IMGCOMP_TORCH_THREADS=1 "$IMGCOMP_IMAGE" >/dev/null
ready=
for _ in $(seq 60); do
  if docker exec imgcomp-scale-readonly python -c \
    "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/readyz', timeout=4).read().decode())" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 1
done
docker rm -f imgcomp-scale-readonly >/dev/null
[[ -n $ready ]] || { echo "the image did not become ready with a read-only root filesystem" >&2; exit 1; }

# --- the stack --------------------------------------------------------------------------------------
t=$SECONDS
say "compose up --scale app=$REPLICAS with the balancer and Prometheus (CPU override), waiting for healthy"
if ! "${COMPOSE[@]}" up --detach --wait --wait-timeout 300 --scale "app=$REPLICAS" app balancer prometheus; then
  "${COMPOSE[@]}" ps
  "${COMPOSE[@]}" logs --tail 40
  exit 1
fi
say "healthy in $(elapsed $t) s"
"${COMPOSE[@]}" ps --format 'table {{.Name}}\t{{.Service}}\t{{.Status}}\t{{.Ports}}'
LB=http://127.0.0.1:$LB_PORT
PROM=http://127.0.0.1:$PROM_PORT

replica() { "${COMPOSE[@]}" ps --quiet app | sed -n "${1}p"; }
names() {
  local id
  for id in $("${COMPOSE[@]}" ps --quiet app); do
    docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}={{.Name}}' "$id" | tr -d /
  done | paste -sd, -
}
burst() { "$PYTHON" scripts/scale_client.py burst --url "$LB" --prom "$PROM" --faces "$FACES" --names "$(names)" "$@"; }
wait_healthy() {
  local id=$1
  for _ in $(seq 120); do
    [[ $(docker inspect -f '{{.State.Health.Status}}' "$id") == healthy ]] && return 0
    sleep 1
  done
  echo "$id did not become healthy" >&2
  return 1
}

"$PYTHON" scripts/scale_client.py targets --prom "$PROM" --expect "$REPLICAS"
curl -fsS "$LB/v1/models" | head -c 300
echo

failed=0
say "1. spread: 60 completions through the balancer, 6 at a time"
burst --label spread --requests 60 --concurrency 6 --iterations 5 || failed=1

victim=$(replica 1)
victim_name=$(docker inspect -f '{{.Name}}' "$victim" | tr -d /)
say "2. crash: SIGKILL $victim_name after 15 of 90 answers"
# a crash loses what the replica held unless the balancer can send it elsewhere (retry-on empty-response)
burst --label crash --requests 90 --concurrency 6 --iterations 5 --at 15 --run "docker kill $victim" ||
  say "crash phase: some requests were not answered 200 (see above; the replica held them)"
curl -fsS "$PROM/api/v1/query" --data-urlencode 'query=sum(haproxy_backend_active_servers{proxy="replicas"})' |
  "$PYTHON" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print("replicas the balancer counts as up:", r[0]["value"][1] if r else "?")'

say "3. rejoin: restart $victim_name"
t=$SECONDS
docker start "$victim" >/dev/null
wait_healthy "$victim"
say "$victim_name healthy again in $(elapsed $t) s"
"$PYTHON" scripts/scale_client.py targets --prom "$PROM" --expect "$REPLICAS"
sleep 4 # two balancer checks (inter 2s, rise 2)
burst --label rejoin --requests 60 --concurrency 6 --iterations 5 || failed=1

drained=$(replica 2)
drained_name=$(docker inspect -f '{{.Name}}' "$drained" | tr -d /)
say "4. drain: SIGTERM $drained_name (docker stop, its graceful drain) after 15 of 90 answers"
burst --label drain --requests 90 --concurrency 6 --iterations 5 --restarts 2 --at 15 \
  --run "docker stop -t 40 $drained" || failed=1
echo "$drained_name exit code: $(docker inspect -f '{{.State.ExitCode}}' "$drained") (0 = drained and exited cleanly)"
# its own log after SIGTERM: accepted searches still answered 200, new ones refused 503 (and retried elsewhere)
after_term=$(docker logs "$drained" 2>&1 | sed -n '/draining: readyz/,$p')
printf '%s\n' "$after_term" | head -1 | sed 's/^/    | /'
echo "    answered by $drained_name after SIGTERM:" \
  "$(grep -c 'POST /complete HTTP/1.1" 200' <<<"$after_term") x 200 (searches it had accepted)," \
  "$(grep -c 'POST /complete HTTP/1.1" 503' <<<"$after_term") x 503 (new ones in its drain notice: the balancer sent them elsewhere)"
printf '%s\n' "$after_term" | tail -n 4 | sed 's/^/    | /'
echo "    the balancer's log of this burst's answers other than 200 (termination state, retries as +N):"
"${COMPOSE[@]}" logs --no-log-prefix --since 2m balancer 2>/dev/null | grep -E '" (5[0-9][0-9]) |replicas/app[0-9]+ .* (50[0-9]) ' |
  tail -n 5 | sed 's/^/    | /' || true
docker start "$drained" >/dev/null
wait_healthy "$drained"

say "summary"
"${COMPOSE[@]}" ps --format 'table {{.Name}}\t{{.Status}}'
((failed == 0)) || { echo "scale smoke FAILED: a phase that must lose nothing lost requests" >&2; exit 1; }
echo "scale smoke passed"
