from __future__ import annotations

from datetime import UTC, datetime

from trainingjob_operator.leases import LeaseView, claim, may_claim, parse_lease, release

NOW = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)


def lease(holder: str = "a", transitions: int = 3) -> LeaseView:
    return parse_lease({"metadata": {"resourceVersion": "9"}, "spec": {
        "holderIdentity": holder, "leaseDurationSeconds": 10, "leaseTransitions": transitions,
        "acquireTime": "2026-01-01T11:00:00.000000Z", "renewTime": "2026-01-01T11:59:59.000000Z"}})


def test_a_held_lease_is_taken_only_after_a_whole_duration_of_silence() -> None:
    held = lease("a")
    assert not may_claim(held, "b", unchanged_for=9.9)
    assert may_claim(held, "b", unchanged_for=10.0)
    assert may_claim(held, "a", unchanged_for=0)  # the holder renews any time
    assert may_claim(lease(""), "b", unchanged_for=0)  # released
    assert may_claim(None, "b", unchanged_for=0)  # never created


def test_renewal_keeps_acquire_time_and_a_takeover_counts_a_transition() -> None:
    renewed = claim(lease("a"), "a", NOW, 10)
    assert renewed["acquireTime"] == "2026-01-01T11:00:00.000000Z"
    assert renewed["renewTime"] == "2026-01-01T12:00:00.250000Z"
    assert renewed["leaseTransitions"] == 3
    taken = claim(lease("a"), "b", NOW, 10)
    assert (taken["holderIdentity"], taken["leaseTransitions"]) == ("b", 4)
    assert taken["acquireTime"] == taken["renewTime"]
    assert claim(None, "b", NOW, 10)["leaseTransitions"] == 0


def test_release_empties_the_holder_with_a_one_second_lease() -> None:
    released = release(lease("a"), NOW)
    assert (released["holderIdentity"], released["leaseDurationSeconds"]) == ("", 1)
    assert may_claim(parse_lease({"spec": released}), "b", unchanged_for=0)


def test_the_record_changes_with_every_renewal() -> None:
    a = lease("a")
    renewed = parse_lease({"metadata": {"resourceVersion": "10"},
                           "spec": claim(a, "a", NOW, 10)})
    assert a.record != renewed.record
