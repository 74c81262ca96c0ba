"""The docs site's generated pages (scripts/docs_hooks.py) say everything the code serves and exports.

`make docs` builds the site with `--strict`; these check what strictness cannot: that nothing is left out.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_lists_every_operation_field_and_schema(hooks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # a deployment's settings must not change the reference: docs off, metrics on their own port
    monkeypatch.setenv("IMGCOMP_DOCS_ENABLED", "false")
    monkeypatch.setenv("IMGCOMP_METRICS_PORT", "9100")
    schema = hooks.openapi_schema()
    page = hooks.render_reference(schema)
    assert "/metrics" in schema["paths"], "the reference documents the defaults, not this shell's settings"
    for path, item in schema["paths"].items():
        for method in item:
            assert f"## {method.upper()} `{path}`" in page
    form = schema["components"]["schemas"]["Body_complete_complete_post"]["properties"]
    for field in form:
        assert f"| `{field}` |" in page
    for name in schema["components"]["schemas"]:
        if not name.startswith("Body_"):
            assert f"### {name} " in page


def test_metrics_table_and_settings_check(hooks: ModuleType) -> None:
    table = hooks.metrics_table()
    for name in ("imgcomp_requests_total", "imgcomp_queue_depth", "imgcomp_request_duration_seconds"):
        assert f"`{name}`" in table
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert hooks.METRICS_MARKER in operations
    assert hooks.missing_settings(operations) == []
    assert hooks.missing_settings("") != [], "the check finds an undocumented setting"
