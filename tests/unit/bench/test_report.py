from tests.bench import report
from tests.bench.__main__ import rotations


def test_median_run_takes_each_figure_by_itself() -> None:
    runs = [report.Run("trainingjob", s, 100, {"status": w}, cpu, 100.0 + s, {"Completed": 100})
            for s, w, cpu in ((30.0, 3.0, 9.0), (20.0, 4.0, 7.0), (25.0, 3.5, None))]
    m = report.median_run(runs)
    assert (m.seconds, m.writes, m.cpu_seconds, m.peak_rss_mib) == (25.0, {"status": 3.5},
                                                                     8.0, 125.0)
    assert m.jobs_per_second == 4.0 and m.states == {"Completed": 300}


def test_table_gives_our_time_as_a_ratio_to_each_peer() -> None:
    ours = report.Run("trainingjob", 30.0, 1000, {"status": 3.0, "pods": 6.0}, 20.0, 150.0)
    job = report.Run("job", 60.0, 1000, {"status": 4.0, "events": 2.0})
    lines = report.table("w", [ours, job], "trainingjob").splitlines()
    assert lines[0] == "**w**"
    assert lines[4].startswith("| trainingjob | 30.0 | 33.3 | 9.0 | 0.0 | 3.0 | 6.0 |")
    assert lines[4].endswith("| 20.0 | 150 | - |")
    assert lines[5].startswith("| job | 60.0 | 16.7 | 6.0 | 2.0 | 4.0 | 0.0 |")
    assert lines[5].endswith("| - | - | 0.50 |")


def test_each_repeat_starts_with_the_next_peer() -> None:
    assert rotations(["a", "b", "c"], 4) == [["a", "b", "c"], ["b", "c", "a"],
                                             ["c", "a", "b"], ["a", "b", "c"]]
