"""The part of `kustomize build` that deploy/k8s uses, in Python, so the manifests are checked without kubectl.

Supported: `resources` (files and kustomization folders), `namespace`, `labels` (metadata only),
`images` and inline JSON 6902 `patches` with a kind/name target. Anything else in a kustomization is
an error here, so a new feature cannot slip past the checks unbuilt; tests/deploy/test_k8s.py compares
this builder's output with `kubectl kustomize` wherever kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
CLUSTER_SCOPED = {"Namespace"}


def build(folder: Path) -> list[dict[str, Any]]:
    """Every object the kustomization in `folder` produces."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    assert not unknown, f"{folder}/kustomization.yaml uses {unknown}: teach tests/deploy/kustomize.py first"
    objects: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = folder / resource
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for target in objects:
        if "namespace" in spec and target["kind"] not in CLUSTER_SCOPED:
            target["metadata"]["namespace"] = spec["namespace"]
        for label in spec.get("labels", []):
            assert not label.get("includeSelectors"), "only metadata labels are supported"
            target["metadata"].setdefault("labels", {}).update(label["pairs"])
        for image in spec.get("images", []):
            _set_image(target, image)
    for patch in spec.get("patches", []):
        matches = [o for o in objects if _matches(o, patch["target"])]
        assert matches, f"patch target {patch['target']} matches nothing"
        for target in matches:
            for operation in yaml.safe_load(patch["patch"]):
                _apply(target, operation)
    return objects


def _matches(target: dict[str, Any], selector: dict[str, str]) -> bool:
    return all(
        (target["metadata"]["name"] if key == "name" else target.get(key)) == value for key, value in selector.items()
    )


def _set_image(target: dict[str, Any], image: dict[str, str]) -> None:
    spec = target.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            name, tag = image.get("newName", name), image.get("newTag", tag)
            container["image"] = f"{name}:{tag}" if tag else name


def _apply(target: dict[str, Any], operation: dict[str, Any]) -> None:
    """One JSON 6902 operation: add, remove or replace."""
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
    node: Any = target
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list):
        if op == "add":
            node.insert(len(node) if last == "-" else int(last), copy.deepcopy(operation["value"]))
        elif op == "remove":
            del node[int(last)]
        else:
            node[int(last)] = copy.deepcopy(operation["value"])
        return
    assert op in ("add", "remove", "replace"), op
    assert op == "add" or last in node, f"{operation['path']} does not exist"
    if op == "remove":
        del node[last]
    else:
        node[last] = copy.deepcopy(operation["value"])
