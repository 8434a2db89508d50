"""The benchmark's aggregation of repeated runs: medians, sums and the range shown."""

from bench.harness import Result


def _run(requests: int, cpu: float, p99: float) -> Result:
    return Result("POST /token", requests, 0, 5.0, cpu, 5.0, p99, 200.0, 16)


def test_repeated_runs_report_each_metric_s_median_and_the_range():
    runs = [_run(5_000, 5.0, 40.0), _run(4_000, 5.0, 12.0), _run(6_000, 5.0, 20.0)]
    result = Result.of_runs(runs)
    # One slow spell (the 800/CPU-s run) does not drag the figure as a mean would.
    assert result.per_cpu_second == 1_000
    assert result.rps == 1_000
    assert result.p99_ms == 20.0
    assert result.requests == 15_000
    row = result.row("target")
    assert "| 20.0 (12.0–40.0) |" in row
    assert "| 1,000 (800–1,200) |" in row


def test_a_single_run_is_reported_as_measured():
    result = _run(4_000, 4.0, 12.0)
    assert result.per_cpu_second == 1_000
    assert "(" not in result.row("")
