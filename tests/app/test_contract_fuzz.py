"""Contract fuzzing: schemathesis generates requests for every operation in the service's own /openapi.json,
the multipart upload included, against a real uvicorn; no answer may be a 5xx or stray from the schema.

The example count per operation is bounded (CONTRACT_EXAMPLES, default 60) so CI runs it in a minute or two.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.app.conftest import serving

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def api_schema(module_store: Path) -> Iterator[schemathesis.BaseSchema]:
    limits = {"max_iterations": 20, "max_restarts": 2, "request_timeout_s": 30, "default_iterations": 2}
    with serving(module_store, **limits) as http:
        yield schemathesis.openapi.from_url(f"{http.base_url}/openapi.json")


def _operations() -> list[str]:
    return [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /v1/models",
        "GET /v1/models/{name}/{version}/samples.png",
        "POST /complete",
    ]


def test_the_schema_lists_every_operation(api_schema: schemathesis.BaseSchema) -> None:
    found = {f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations()}
    assert found == set(_operations())


# negative data (what the schema forbids) exists only where there are parameters with constraints
RUNS = [(label, GenerationMode.POSITIVE) for label in _operations()] + [("POST /complete", GenerationMode.NEGATIVE)]


@pytest.mark.parametrize(("label", "mode"), RUNS, ids=[f"{label} {mode.value}" for label, mode in RUNS])
def test_every_operation_keeps_its_contract(
    api_schema: schemathesis.BaseSchema, label: str, mode: GenerationMode
) -> None:
    """Positive: requests the schema allows; negative: requests it forbids (which must get a 4xx)."""
    method, path = label.split(" ")
    operation = api_schema[path][method]

    # schemathesis' own pytest plugin does not load under this pytest, so Hypothesis drives its strategy directly
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
    )
    def call(case: schemathesis.Case) -> None:
        # a schema cannot say "a decodable PNG": schema-valid random bytes are rightly refused (415/422), so
        # the check that schema-valid data must be accepted does not apply; every other default check does
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    call()
