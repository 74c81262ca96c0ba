"""MkDocs hooks: the pages that must not drift from the code are made from it on every build.

`mkdocs.yml` names this file under `hooks:`, so `mkdocs build` and `mkdocs serve` (and `make docs`) run it:

- `api/reference.md` and `api/openapi.json` come from `create_app(Settings()).openapi()`, built in this
  process (never fetched over HTTP, so a server with `IMGCOMP_DOCS_ENABLED=false` changes nothing here);
- the metrics table on `operations.md` (the `<!-- metrics -->` marker) comes from `app.metrics.Metrics`;
- every `Settings` field must appear on `operations.md` as `IMGCOMP_<NAME>`, else the build warns (and
  `--strict` fails);
- images under `model_store/` (sample grids, loss curves) are added to the site, and pages link them as
  `../model_store/...`, the path that also works when the Markdown is read in the repository.

`python scripts/docs_hooks.py --out DIR` writes `openapi.json` and `reference.md` to DIR for a look.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("mkdocs.hooks.imgcomp")

METHODS = ("get", "post", "put", "patch", "delete")
METRICS_MARKER = "<!-- metrics -->"


# --- the OpenAPI schema and its page -------------------------------------------------------------------


def openapi_schema() -> dict[str, Any]:
    """The live schema: the app as `serve` builds it, with the settings' defaults and docs on."""
    from app.config import Settings
    from app.main import create_app

    # the defaults, never this shell's IMGCOMP_*; /metrics beside the API, so its operation is documented too
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("IMGCOMP_")}
    try:
        return create_app(Settings(devices="cpu", metrics_port="public")).openapi()  # type: ignore[arg-type]
    finally:
        os.environ.update(saved)


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _schema_id(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _operation_id(method: str, path: str) -> str:
    return method + "-" + (re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root")


def _type(schema: dict[str, Any]) -> str:
    """A one-line type: `integer >= 1`, `png | jpeg`, a link to a component, `array of ...`, `... or null`."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_schema_id(name)})"
    if "anyOf" in schema:
        return " or ".join(_type(part) for part in schema["anyOf"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " | ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return "array of " + _type(schema.get("items", {}))
    if kind == "string" and (schema.get("format") == "binary" or "contentMediaType" in schema):
        return "file"
    bounds = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in schema and not (key == "maximum" and schema[key] >= 2**63 - 1):
            value = schema[key]
            bounds.append(f"{sign} {int(value) if float(value).is_integer() else value}")
    return f"{kind} {', '.join(bounds)}".strip()


def _properties(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        description = prop.get("description", "")
        if "examples" in prop:
            description += " Examples: " + ", ".join(f"`{json.dumps(e)}`" for e in prop["examples"]) + "."
        rows.append(
            f"| `{name}` | {_cell(_type(prop))} | {'yes' if name in required else ''} | {_cell(default)} "
            f"| {_cell(description)} |"
        )
    return rows


def render_reference(schema: dict[str, Any]) -> str:
    """The schema as one Markdown page: every operation, its parameters, body, answers, then the components."""
    info = schema["info"]
    lines = [
        "# API reference",
        "",
        f"*{info['title']}* {info['version']}, OpenAPI {schema['openapi']}. Generated on every docs build from",
        "`create_app(Settings()).openapi()` by `scripts/docs_hooks.py`, so it is the schema the code serves;",
        "the raw document is [openapi.json](openapi.json). A running server with `IMGCOMP_DOCS_ENABLED=true`",
        "(off by default) serves the same schema at `/openapi.json` and an interactive page at `/docs`.",
        "For examples and the rules behind the fields, read the [API guide](../api.md).",
        "",
        "## Operations",
        "",
        "| method | path | summary |",
        "|---|---|---|",
    ]
    operations = [
        (path, method, op) for path, item in schema["paths"].items() for method, op in item.items() if method in METHODS
    ]
    for path, method, op in operations:
        lines.append(
            f"| {method.upper()} | [`{path}`](#{_operation_id(method, path)}) | {_cell(op.get('summary', ''))} |"
        )
    for path, method, op in operations:
        lines += ["", f"## {method.upper()} `{path}` {{ #{_operation_id(method, path)} }}", ""]
        if op.get("summary"):
            lines += [f"**{op['summary']}.**", ""]
        if op.get("description"):
            lines += [op["description"].strip(), ""]
        if op.get("parameters"):
            lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
            for param in op["parameters"]:
                lines.append(
                    f"| `{param['name']}` | {param['in']} | {_cell(_type(param.get('schema', {})))} "
                    f"| {'yes' if param.get('required') else ''} | {_cell(param.get('description', ''))} |"
                )
            lines.append("")
        body = op.get("requestBody")
        if body:
            for media, content in body.get("content", {}).items():
                lines += [f"Request body (`{media}`{', required' if body.get('required') else ''}):", ""]
                body_schema = content.get("schema", {})
                if "$ref" in body_schema:
                    body_schema = schema["components"]["schemas"][body_schema["$ref"].rsplit("/", 1)[-1]]
                lines += [*_properties(body_schema), ""]
        lines += ["| status | description | content |", "|---|---|---|"]
        for status, answer in op.get("responses", {}).items():
            media = ", ".join(
                f"`{kind}`" + (f" {_type(c['schema'])}" if c.get("schema") and "$ref" in c["schema"] else "")
                for kind, c in answer.get("content", {}).items()
            )
            headers = ", ".join(f"`{name}`" for name in answer.get("headers", {}))
            headers = f" Headers: {headers}." if headers else ""
            lines.append(f"| {status} | {_cell(answer.get('description', '') + headers)} | {_cell(media)} |")
        examples = [
            (status, kind, c["example"])
            for status, answer in op.get("responses", {}).items()
            for kind, c in answer.get("content", {}).items()
            if "example" in c
        ]
        for status, kind, example in examples:
            lines += ["", f"{status} `{kind}` example:", "", "```json", json.dumps(example, indent=2), "```"]
    lines += ["", "## Schemas", ""]
    bodies = {
        op["requestBody"]["content"][m]["schema"].get("$ref", "").rsplit("/", 1)[-1]
        for _, _, op in operations
        if "requestBody" in op
        for m in op["requestBody"]["content"]
    }
    for name, component in schema.get("components", {}).get("schemas", {}).items():
        if name in bodies:  # shown with its operation
            continue
        lines += [f"### {name} {{ #{_schema_id(name)} }}", ""]
        if component.get("description"):
            lines += [_cell(component["description"]), ""]
        lines += [*_properties(component), ""]
    return "\n".join(lines).rstrip() + "\n"


# --- metrics and settings -------------------------------------------------------------------------------


def metrics_table() -> str:
    """Every collector `Metrics` registers: its exported name, type, labels and help text."""
    from prometheus_client.metrics import MetricWrapperBase

    from app.metrics import Metrics

    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    collectors = [c for c in vars(Metrics()).values() if isinstance(c, MetricWrapperBase)]
    for collector in sorted(collectors, key=lambda c: c._name):
        kind = collector._type
        name = collector._name + ("_total" if kind == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in collector._labelnames)
        rows.append(f"| `{name}` | {kind} | {labels} | {_cell(collector._documentation)} |")
    return "\n".join(rows)


def missing_settings(markdown: str) -> list[str]:
    from app.config import Settings

    names = [f"IMGCOMP_{field.upper()}" for field in Settings.model_fields]
    return [name for name in names if name not in markdown]


# --- the hooks ------------------------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    schema = openapi_schema()
    files.append(File.generated(config, "api/openapi.json", content=json.dumps(schema, indent=2) + "\n"))
    files.append(File.generated(config, "api/reference.md", content=render_reference(schema)))
    for image in sorted((ROOT / "model_store").glob("*/*/*.png")):
        uri = image.relative_to(ROOT).as_posix()
        files.append(File.generated(config, uri, abs_src_path=str(image)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    # a page in docs/ links ../model_store/... (right in the repository); in the site the images sit at model_store/
    depth = page.file.src_uri.count("/")
    markdown = markdown.replace("../" * (depth + 1) + "model_store/", "../" * depth + "model_store/")
    if page.file.src_uri == "operations.md":
        if METRICS_MARKER not in markdown:
            log.warning("operations.md: the %s marker for the generated metrics table is gone", METRICS_MARKER)
        markdown = markdown.replace(METRICS_MARKER, metrics_table())
        for name in missing_settings(markdown):
            log.warning("operations.md: the setting %s is not documented", name)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description="write the API reference the docs build makes")
    parser.add_argument("--out", type=Path, required=True, help="folder for openapi.json and reference.md")
    args = parser.parse_args()
    schema = openapi_schema()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "openapi.json").write_text(json.dumps(schema, indent=2) + "\n")
    (args.out / "reference.md").write_text(render_reference(schema))
    print(f"wrote {args.out / 'openapi.json'} and {args.out / 'reference.md'}")


if __name__ == "__main__":
    main()
