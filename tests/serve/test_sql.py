"""The read-only SQL endpoint: answers, refusals, limits, and no writes."""

from __future__ import annotations

import pytest
from serve_helpers import BatchRun, Served, serving

from logweir.serve import ServeSettings


def _sql(served: Served, sql: str, **extra: object) -> tuple[int, dict[str, object]]:
    answer = served.client.post("/api/sql", json={"sql": sql, **extra})
    return answer.status_code, answer.json()


def test_a_select_gives_what_logweir_query_gives(
    served: Served, batch_run: BatchRun
) -> None:
    sql = "SELECT status, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC, 1"
    status, body = _sql(served, sql)
    assert status == 200
    assert body["columns"] == [
        {"name": "status", "type": "USMALLINT"},
        {"name": "n", "type": "BIGINT"},
    ]
    expected = [[row["status"], row["n"]] for row in batch_run.query(sql)]
    assert body["rows"] == expected
    assert body["truncated"] is False


def test_rows_past_the_limit_are_cut_and_said_so(served: Served) -> None:
    status, body = _sql(served, "SELECT * FROM events")
    assert status == 200
    assert len(body["rows"]) == 50 and body["truncated"] is True
    status, body = _sql(served, "SELECT * FROM windows", max_rows=7)
    assert len(body["rows"]) == 7 and body["truncated"] is True


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("COPY windows TO '/tmp/x.csv'", "only SELECT queries may run here, not COPY"),
        (
            "INSERT INTO windows SELECT * FROM windows",
            "only SELECT queries may run here, not INSERT",
        ),
        ("DROP TABLE windows", "only SELECT queries may run here, not DROP"),
        ("ATTACH '/tmp/x.duckdb' AS x", "only SELECT queries may run here, not ATTACH"),
        ("SET threads = 1", "only SELECT queries may run here, not SET"),
        ("SELECT 1; SELECT 2", "give exactly one statement, not 2"),
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            "table functions such as read_csv() are not allowed",
        ),
        (
            "SELECT * FROM '/etc/passwd'",
            "unknown table '/etc/passwd' (tables: alerts, events, runs, windows)",
        ),
        (
            "SELECT * FROM store.windows",
            "name tables without a schema: 'windows'",
        ),
        (
            "WITH x AS (SELECT * FROM range(3)) SELECT * FROM x",
            "table functions such as range() are not allowed",
        ),
    ],
)
def test_what_could_write_or_read_files_is_refused(
    served: Served, sql: str, message: str
) -> None:
    assert _sql(served, sql) == (400, {"detail": message})


def test_a_cte_and_a_join_are_fine(served: Served) -> None:
    status, body = _sql(
        served,
        "WITH w AS (SELECT * FROM windows WHERE dimension = 'all') "
        "SELECT count(*) FROM w JOIN alerts a ON a.window_start = w.window_start",
    )
    assert status == 200 and body["rows"][0][0] >= 1


def test_bad_sql_is_one_line(served: Served) -> None:
    status, body = _sql(served, "SELEC 1")
    assert status == 400
    assert str(body["detail"]).startswith("query failed: Parser Error: syntax error")
    assert "\n" not in str(body["detail"])


def test_a_query_past_the_time_limit_is_stopped(served: Served) -> None:
    status, body = _sql(served, "SELECT count(*) FROM events a, events b, events c")
    assert (status, body) == (
        400,
        {"detail": "query ran longer than 2 s and was stopped"},
    )
    # the server is still there and answers the next query
    assert _sql(served, "SELECT 1 AS one")[1]["rows"] == [[1]]


def test_the_store_is_unchanged_after_refused_writes(
    served: Served, batch_run: BatchRun
) -> None:
    before = batch_run.query("SELECT count(*) AS n FROM windows")
    for sql in ("DELETE FROM windows", "UPDATE windows SET requests = 0"):
        assert _sql(served, sql)[0] == 400
    assert batch_run.query("SELECT count(*) AS n FROM windows") == before


def test_sql_is_off_unless_enabled(batch_run: BatchRun) -> None:
    with serving(batch_run.out, ServeSettings()) as plain:
        answer = plain.client.post("/api/sql", json={"sql": "SELECT 1"})
    assert answer.status_code == 403
    assert answer.json() == {
        "detail": "the SQL endpoint is off (start with --enable-sql)"
    }


@pytest.mark.parametrize(
    "sql",
    [
        # a CTE named like the file, defined in a subquery, hides nothing
        # outside it: the outer name is a file that DuckDB would read
        "SELECT * FROM (WITH \"{csv}\" AS (SELECT 1) SELECT 1) t, '{csv}'",
        # a plain CTE does not see itself: inside, the name is the file
        'WITH "{csv}" AS (SELECT * FROM \'{csv}\') SELECT * FROM "{csv}"',
        # a later CTE is not visible to an earlier one
        'WITH a AS (SELECT * FROM "{csv}"), "{csv}" AS (SELECT 1) SELECT * FROM a',
    ],
)
def test_a_cte_name_cannot_smuggle_in_a_file(
    served: Served, tmp_path_factory: pytest.TempPathFactory, sql: str
) -> None:
    secret = tmp_path_factory.mktemp("secret") / "secret.csv"
    secret.write_text("word\nswordfish\n")
    status, body = _sql(served, sql.format(csv=secret))
    assert status == 400, body
    assert body == {
        "detail": f"unknown table {str(secret)!r} (tables: alerts, events, runs, "
        "windows)"
    }


def test_recursive_and_chained_ctes_are_fine(served: Served) -> None:
    sql = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3),"
        " s AS (SELECT n * 10 AS m FROM r) SELECT sum(m) FROM s"
    )
    status, body = _sql(served, sql)
    assert (status, body["rows"]) == (200, [[60]])


def test_a_huge_result_is_cut_by_size_too(served: Served) -> None:
    from logweir.serve.sql import MAX_RESULT_BYTES

    row_bytes = 1 << 20  # 50 rows (the limit here) would be 50 MiB
    sql = f"SELECT repeat('x', {row_bytes}) AS big FROM events LIMIT 60"
    status, body = _sql(served, sql)
    assert status == 200 and body["truncated"] is True
    rows = body["rows"]
    assert isinstance(rows, list) and 1 <= len(rows) <= MAX_RESULT_BYTES // row_bytes


def test_a_query_stopped_while_its_rows_stream_is_a_clean_refusal(
    served: Served,
) -> None:
    # the first rows come at once, the rest only after a cross join of the
    # lake with itself: the stop arrives while the Arrow stream is read
    sql = "SELECT 1 AS n UNION ALL SELECT count(*) FROM events a, events b, events c"
    assert _sql(served, sql) == (
        400,
        {"detail": "query ran longer than 2 s and was stopped"},
    )


def test_events_of_an_empty_lake_has_no_rows(tmp_path_factory) -> None:
    from serve_helpers import FORMAT, run_cli

    folder = tmp_path_factory.mktemp("empty-lake")
    (folder / "empty.log").write_text("")
    out = folder / "out"
    status, _ = run_cli(
        "run", str(folder / "empty.log"), "--out", str(out), "--format", FORMAT,
        "--quiet",
    )  # fmt: skip
    assert status == 0
    with serving(out, ServeSettings(sql_enabled=True)) as empty:
        assert _sql(empty, "SELECT count(*) AS n FROM events")[1]["rows"] == [[0]]
        status, body = _sql(empty, "SELECT * FROM _nothing")
        assert body["detail"].endswith("(tables: alerts, events, runs, windows)")
