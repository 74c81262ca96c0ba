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
    with serving(module_store, docs_enabled=True, **limits) as http:  # the schema comes from the server
        yield schemathesis.openapi.from_url(f"{http.base_url}/openapi.json")


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
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


def test_every_operation_keeps_its_contract(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation the live schema lists, with data the schema allows; the upload also with data it forbids
    (negative data exists only where parameters have constraints). New routes are fuzzed without a change here."""
    operations = {
        f"{op.method.upper()} {op.path}": op for op in (result.ok() for result in api_schema.get_all_operations())
    }
    assert {"POST /complete", "GET /v1/models", "GET /readyz", "GET /healthz", "GET /metrics"} <= set(operations)
    for label, operation in sorted(operations.items()):
        print(f"fuzzing {label}")
        _fuzz(operation, GenerationMode.POSITIVE)
    _fuzz(operations["POST /complete"], GenerationMode.NEGATIVE)
