from tests.bench import profile

COLLAPSED = """main (app.py:1);run (loop.py:9);decide (lifecycle.py:40) 6
main (app.py:1);run (loop.py:9);request (kube.py:80);request (kube.py:80) 3
main (app.py:1) 1
"""


def test_inclusive_counts_a_function_once_per_stack_even_when_it_recurses() -> None:
    counts, total = profile.inclusive(COLLAPSED)
    assert total == 10
    assert counts == {"app.py:main": 10, "loop.py:run": 9, "lifecycle.py:decide": 6,
                      "kube.py:request": 3}
    assert "60.0%  lifecycle.py:decide" in profile.summary(COLLAPSED)
    assert profile.summary("") == "  profile: no samples"
