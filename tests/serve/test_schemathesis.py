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


#: Times at the edges of what a datetime holds: a UTC offset can carry
#: them past year 1 or 9999 (these once answered with a 500).
EDGE_TIMES = [
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59.999999-01:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59Z",
]


@pytest.mark.parametrize("moment", EDGE_TIMES)
def test_edge_times_are_answered_without_a_server_error(
    batch_run: BatchRun, moment: str
) -> None:
    with serving(batch_run.out, ServeSettings()) as running:
        for path, name in [
            ("/api/windows", "start"),
            ("/api/windows", "end"),
            ("/api/top", "start"),
            ("/api/top", "end"),
            ("/api/alerts", "since"),
        ]:
            answer = running.client.get(path, params={name: moment})
            assert answer.status_code < 500, (path, name, answer.text)
            if answer.status_code == 422:
                assert "out of range" in answer.text
        mixed = running.client.get(
            "/api/windows", params={"start": "2024-06-03T08:00:00", "end": moment}
        )
        assert mixed.status_code < 500, mixed.text


@pytest.mark.slow
def test_dashboard_routes_give_no_server_error(batch_run: BatchRun) -> None:
    """The dashboard's own routes are outside the OpenAPI description, so
    Hypothesis drives them here: any size and point count, valid or not."""
    from hypothesis import strategies as st

    numbers = st.one_of(
        st.integers(min_value=-5, max_value=10**12).map(str),
        st.sampled_from(["", "x", "1e3", "60.5", " 60"]),
    )
    with serving(batch_run.out, ServeSettings()) as running:

        @given(size=st.none() | numbers, points=st.none() | numbers)
        @settings(max_examples=60, deadline=None, database=None)
        def check(size: str | None, points: str | None) -> None:
            params = {
                name: value
                for name, value in (("size_s", size), ("points", points))
                if value is not None
            }
            for path in ("/", "/dashboard/panels"):
                answer = running.client.get(path, params=params)
                assert answer.status_code < 500, (path, params, answer.text[:300])

        check()
