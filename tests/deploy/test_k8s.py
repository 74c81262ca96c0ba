"""deploy/k8s built as kustomize builds it and checked offline against the Kubernetes API schemas.

kubernetes-validate (the dev extra) bundles the OpenAPI schemas of every Kubernetes minor release;
strict mode also rejects fields a release does not know. Beyond the schemas, the checks below hold the
manifests to what the service needs: a GPU per pod, its probes, a drain that fits the grace period.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.config import Settings
from app.metrics import Metrics
from tests.deploy.kustomize import build

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
VARIANTS = {"gpu": K8S / "base", "cpu": K8S / "cpu"}
# the oldest release still common on managed clusters, and the newest the schemas know
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _objects(variant: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in build(VARIANTS[variant])}


def _service_pod(variant: str) -> dict[str, Any]:
    pod: dict[str, Any] = _objects(variant)[("Deployment", "imgcomp")]["spec"]["template"]
    return pod


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container["env"]}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_passes_the_kubernetes_schema(variant: str, version: str) -> None:
    objects = build(VARIANTS[variant])
    assert {o["kind"] for o in objects} >= {
        "Namespace",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
    }
    for manifest in objects:
        kubernetes_validate.validate(manifest, version, strict=True)  # raises with the failing field
        print(f"{variant}: {manifest['kind']}/{manifest['metadata']['name']} valid against Kubernetes {version}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_python_build_matches_kubectl_kustomize(variant: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Python build alone is validated")
    result = subprocess.run(
        [kubectl, "kustomize", str(VARIANTS[variant])], capture_output=True, text=True, timeout=60, check=True
    )
    built = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout) if o}
    assert built == _objects(variant)


def test_gpu_pods_get_one_gpu_each_and_the_cpu_variant_none() -> None:
    gpu = _service_pod("gpu")["spec"]
    container = gpu["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert _env(container)["IMGCOMP_DEVICES"] == "auto"  # its one GPU: one process, no supervisor
    assert "IMGCOMP_SEVERAL_DEVICES" not in _env(container)
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])

    cpu = _service_pod("cpu")["spec"]
    assert "nvidia.com/gpu" not in yaml.safe_dump(_objects("cpu")[("Deployment", "imgcomp")])
    assert _env(cpu["containers"][0])["IMGCOMP_DEVICES"] == "cpu"
    assert "tolerations" not in cpu
    for variant in VARIANTS:
        resources = _service_pod(variant)["spec"]["containers"][0]["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_and_drain_fit_the_services_settings(variant: str) -> None:
    spec = _service_pod(variant)["spec"]
    container = spec["containers"][0]
    port = container["ports"][0]
    assert port["containerPort"] == Settings.model_fields["port"].default
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    env = _env(container)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # preStop, then SIGTERM: the drain notice, then the accepted searches' grace; all before SIGKILL
    needed = float(pre_stop[1]) + float(env["IMGCOMP_DRAIN_NOTICE_S"]) + float(env["IMGCOMP_SHUTDOWN_GRACE_S"])
    assert needed < spec["terminationGracePeriodSeconds"] <= needed + 15


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_run_as_the_images_non_root_user_on_a_read_only_model_store(variant: str) -> None:
    spec = _service_pod(variant)["spec"]
    user = re.search(r"^USER (\d+):(\d+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert user is not None
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == int(user.group(1))
    container = spec["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    store = mounts["model-store"]
    assert store["readOnly"] is True and store["mountPath"] == _env(container)["IMGCOMP_MODEL_STORE"]
    volume = next(v for v in spec["volumes"] if v["name"] == "model-store")
    claim = volume["persistentVolumeClaim"]
    assert claim["readOnly"] is True
    assert ("PersistentVolumeClaim", claim["claimName"]) in _objects(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_service_pdb_and_hpa_select_the_deployment(variant: str) -> None:
    objects = _objects(variant)
    deployment = objects[("Deployment", "imgcomp")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = objects[("Service", "imgcomp")]["spec"]
    assert service["selector"].items() <= labels.items()
    port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= port_names
    assert objects[("PodDisruptionBudget", "imgcomp")]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = objects[("HorizontalPodAutoscaler", "imgcomp")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "imgcomp"}
    assert hpa["minReplicas"] >= 2, "the PDB's one-at-a-time drain needs another replica to serve meanwhile"


def test_hpa_scales_on_the_queue_depth_the_adapter_serves() -> None:
    hpa = _objects("gpu")[("HorizontalPodAutoscaler", "imgcomp")]["spec"]
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
    values = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    series = re.match(r"(\w+)\{", rule["seriesQuery"])
    assert series is not None
    exported = {family.name for family in Metrics().registry.collect()}
    assert series.group(1) == "imgcomp_queue_depth" and series.group(1) in exported
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in rule["metricsQuery"]
    # the scrape job keeps the two labels the rule maps to Kubernetes objects
    scrape = yaml.safe_load((K8S / "prometheus-adapter" / "prometheus-scrape.yaml").read_text())
    targets = {r.get("target_label") for r in scrape["scrape_configs"][0]["relabel_configs"]}
    assert {"namespace", "pod"} <= targets
    annotations = _service_pod("gpu")["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics" and annotations["prometheus.io/scrape"] == "true"
    # scraped on the service's own metrics port: /metrics is not on the public one
    assert annotations["prometheus.io/port"] == str(Settings.model_fields["metrics_port"].default) == "9464"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_api_token_secret_is_required(variant: str) -> None:
    """A pod without the token secret does not start (CreateContainerConfigError), so no cluster serves open."""
    container = _service_pod(variant)["spec"]["containers"][0]
    (token,) = [item for item in container["env"] if item["name"] == "IMGCOMP_API_TOKEN"]
    reference = token["valueFrom"]["secretKeyRef"]
    assert reference["name"] == "imgcomp-api-token" and reference["key"] == "token"
    assert reference.get("optional", False) is False
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000, "metrics": 9464}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_byte_budget_fits_the_tmp_volume(variant: str) -> None:
    """Uploads over 1 MB spool to /tmp while parsed: what the door admits at once (and one request alone, over the
    budget) fits the emptyDir's sizeLimit, so a burst of large bodies is refused with 503, not evicted."""
    spec = _service_pod(variant)["spec"]
    container = spec["containers"][0]
    env = _env(container)
    budget = int(env["IMGCOMP_ADMISSION_BYTES"])
    upload = int(env.get("IMGCOMP_MAX_UPLOAD_BYTES", Settings.model_fields["max_upload_bytes"].default))
    (tmp,) = [volume for volume in spec["volumes"] if volume["name"] == "tmp"]
    size = tmp["emptyDir"]["sizeLimit"]
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    limit = int(size[:-2]) * units[size[-2:]]
    assert budget + upload <= limit, (budget, upload, size)


# measured: a burst of maximum-size flat PNGs held about 11 bytes per admitted pixel over the idle server
# (docs/overload/burst.md); the check allows 16, over 1 GiB of loaded models and runtime
BYTES_PER_ADMITTED_PIXEL, BASELINE_BYTES = 16, 2**30


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_pixel_budget_fits_the_memory_limit(variant: str) -> None:
    """What the door admits at once (and one maximum-size upload alone, over the budget, with its mask) fits the
    container's memory limit, so a burst of large photos is refused with 503, not OOM-killed."""
    container = _service_pod(variant)["spec"]["containers"][0]
    env = _env(container)
    budget = int(env["IMGCOMP_ADMISSION_PIXELS"])
    largest = int(env.get("IMGCOMP_MAX_IMAGE_PIXELS", Settings.model_fields["max_image_pixels"].default))
    size = container["resources"]["limits"]["memory"]
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    limit = int(size[:-2]) * units[size[-2:]]
    assert BASELINE_BYTES + (budget + 2 * largest) * BYTES_PER_ADMITTED_PIXEL <= limit, (budget, largest, size)
