"""Schemathesis against the served OpenAPI description: no server errors.

Each operation gets a modest number of generated requests, valid ones and
invalid ones (odd dates, huge numbers, strange strings), sent to the real
server; none may be answered with a 5xx. The alert stream never ends, so
it is left out.

Schemathesis' own pytest plugin does not run under this pytest (it reads
a private attribute pytest 9 dropped), so the test drives each
operation's Hypothesis strategy itself.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from serve_helpers import BatchRun, serving

from logweir.serve import ServeSettings

EXAMPLES = 25


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_gives_a_server_error(
    batch_run: BatchRun, mode: GenerationMode
) -> None:
    options = ServeSettings(sql_enabled=True, sql_timeout_s=2.0, sql_max_rows=20)
    with serving(batch_run.out, options) as running:
        schema = schemathesis.openapi.from_url(running.url + "openapi.json")
        tested = []
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path == "/api/alerts/stream":
                continue

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                case.call_and_validate(checks=[not_a_server_error])

            try:
                check()
            except Unsatisfiable:
                # an operation without parameters has no invalid request
                assert mode is GenerationMode.NEGATIVE
                continue
            tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) >= (7 if mode is GenerationMode.POSITIVE else 4), tested
