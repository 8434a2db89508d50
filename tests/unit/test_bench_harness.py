"""The benchmark's aggregation of repeated runs: medians, sums and the range shown."""

from bench.harness import Result, scaled_by_rounds, scaled_to_issue_machine


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


def test_rows_are_scaled_to_the_issue_machine_by_the_yardsticks_ratio():
    yardstick = _run(18_000, 6.0, 5.0)  # 3,000 per CPU-second here: a faster machine
    note = scaled_to_issue_machine(yardstick, [("check", 2_000.0, 1_500), ("jwks", 4_000.0, 2_000)])
    assert "× 0.60" in note
    assert "check ≈ 1,200 (target 1,500: missed)" in note  # met here, not there
    assert "jwks ≈ 2,400 (target 2,000: met)" in note


def test_the_token_endpoints_can_be_scaled_by_their_own_yardstick():
    yardstick = _run(10_750, 5.0, 5.0)  # bare authlib at 2,150 per CPU-second here
    note = scaled_to_issue_machine(yardstick, [("client_credentials", 1_290.0, 1_000)],
                                   there=1_075, what="bare authlib + Flask token endpoint")
    assert "bare authlib + Flask token endpoint ~1,075/CPU-s there, 2,150 in this run" in note
    assert "client_credentials ≈ 645 (target 1,000: missed)" in note


def test_rounds_are_scaled_by_the_best_runs_with_the_round_by_round_range():
    # Slow spells fell on the yardstick's second run and on the row's first.
    yardstick = Result.of_runs([_run(10_000, 5.0, 5.0), _run(5_000, 5.0, 5.0),
                                _run(9_000, 5.0, 5.0)])  # 2,000 / 1,000 / 1,800 per CPU-s
    row = Result.of_runs([_run(4_000, 5.0, 5.0), _run(8_000, 5.0, 5.0),
                          _run(7_500, 5.0, 5.0)])  # 800 / 1,600 / 1,500 per CPU-s
    note = scaled_by_rounds(yardstick, [("refresh", row, 800)], there=1_000,
                            what="bare authlib + Flask token endpoint")
    # Best over best: 1,600 / 2,000 → 800 there. Round by round: 400, 1,600, 833.
    assert "refresh ≈ 800 (round by round 400–1,600; target 800: met)" in note
    assert "2,000 in its best run here" in note
