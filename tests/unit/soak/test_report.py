from tests.soak import checks, plan, report


def _flat(name: str, ok: bool = True) -> checks.Flatness:
    return checks.Flatness(name, 60, 100, 101, 104 if ok else 130, 140, ok)


def _soak(**change: object) -> report.Soak:
    fields: dict[str, object] = {
        "duration": 1800, "interval": 4, "commit": "abc1234",
        "flat": [_flat("RSS MiB"), _flat("asyncio tasks")],
        "informative": [_flat("open fds", ok=False)],
        "jobs": checks.JobVerdicts({"completed": 4, "deleted": 1}, {"completed": 4, "deleted": 1},
                                   [], [], {"completed": 41.5, "deleted": 22.0}),
        "capacity": report.Capacity(900, [], [], 3, 30, 0),
        "flaps": plan.flaps(1800, 4), "rates_early": {"LIST pods": 1.5, "PATCH pods": 0.5},
        "rates_late": {"LIST pods": 1.25}, "drain_seconds": 130,
        "counters": {"admissions": 480, "retries": 7}}
    fields.update(change)
    return report.Soak(**fields)  # type: ignore[arg-type]


def test_a_clean_soak_passes_and_its_report_has_every_figure() -> None:
    s = _soak()
    assert report.failures(s) == []
    text = report.markdown(s)
    assert text.startswith("**Soak: 30m00s of jobs (one every 4 s), then 2m10s to drain; "
                           "commit abc1234**")
    assert "| RSS MiB | 60 | 100 | 101 | 104 | 140 | +1.0 % | ok |" in text
    assert "| open fds | 60 | 100 | 101 | 130 | 140 | +1.0 % | over 10 % (reported) |" in text
    assert "| completed | 4 | 4 | 42 |" in text and "| failed | 0 | 0 | 0 |" in text
    assert "| all | 5 | 5 | |" in text
    assert "Node flaps: 10 (5 of 30 s, 5 of 90 s)" in text
    assert "900 snapshots (0 failed reads), at most 30 GPUs committed" in text
    assert "The operator counted: admissions 480, retries 7." in text
    assert "| LIST pods | 1.50 | 1.25 |" in text and "| PATCH pods | 0.50 | 0.00 |" in text
    assert "| all (2 verb/resource pairs) | 2.00 | 1.25 |" in text
    assert text.endswith("PASS")


def test_each_failed_check_is_named_and_the_report_ends_in_fail() -> None:
    s = _soak(flat=[_flat("RSS MiB", ok=False), _flat("asyncio tasks")],
              jobs=checks.JobVerdicts({"failed": 2}, {}, ["a: ended Completed, expected Failed"],
                                      ["b: Running/ at the end, due Failed by 300s"], {}),
              capacity=report.Capacity(5, ["gpu-node-0: 9 GPUs committed > 8"], ["x"], 0, 9, 2),
              leftover_pods=["p-worker-0"], operator_exit=1)
    failed = report.failures(s)
    assert [f.split(" ")[0] for f in failed] == ["RSS", "the", "1", "1", "capacity", "capacity",
                                                 "a", "1"]
    assert "a window mean reached 130.0, more than 110 % of the baseline 100.0" in failed[0]
    assert "capacity invariant broken: gpu-node-0: 9 GPUs committed > 8" in failed
    assert report.markdown(s).split("\n")[-len(failed) - 1:] == \
        ["FAIL:", *(f"- {f}" for f in failed)]
