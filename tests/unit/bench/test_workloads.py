from tests.bench import workloads

GANG = workloads.Workload("gangs", 25, 2, 8, "2s", 4)


def test_every_peer_gets_the_same_pods_for_a_gang() -> None:
    tj = workloads.training_job(GANG, "a", {"pool": "busy"})
    plain = workloads.batch_job(GANG, "a", "ns")
    queued = workloads.batch_job(GANG, "a", "ns", "bench")
    assert (tj["spec"]["workers"], tj["spec"]["gpusPerWorker"]) == (2, 8)
    assert tj["spec"]["template"]["spec"] == {"nodeSelector": {"pool": "busy"}}
    for job in (plain, queued):
        assert (job["spec"]["parallelism"], job["spec"]["completionMode"]) == (2, "Indexed")
        limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits == {"nvidia.com/gpu": "8"}
        assert job["spec"]["template"]["metadata"]["annotations"] == \
            tj["spec"]["template"]["metadata"]["annotations"]
    assert not plain["spec"]["suspend"] and plain["metadata"]["labels"] == {}
    assert queued["spec"]["suspend"] and \
        queued["metadata"]["labels"] == {"kueue.x-k8s.io/queue-name": "bench"}


def test_done_is_the_terminal_state_of_each_kind() -> None:
    assert workloads.training_job_done({"status": {"phase": "Running"}}) is None
    assert workloads.training_job_done({"status": {"phase": "Failed"}}) == "Failed"
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert workloads.batch_job_done(complete) == "Complete"
    assert workloads.batch_job_done({"status": {"conditions": [
        {"type": "Suspended", "status": "True"}]}}) is None
