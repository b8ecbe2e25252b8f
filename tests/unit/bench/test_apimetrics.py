from tests.bench import apimetrics

TEXT = """# HELP apiserver_request_total Counter of apiserver requests
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 10
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 99
apiserver_request_total{code="200",component="apiserver",dry_run="",group="training.dev",resource="trainingjobs",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 30
apiserver_request_total{code="409",component="apiserver",dry_run="",group="training.dev",resource="trainingjobs",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="training.dev",resource="trainingjobs",scope="resource",subresource="",verb="POST",version="v1alpha1"} 10
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 20
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="nodes",scope="resource",subresource="status",verb="PATCH",version="v1"} 500
apiserver_request_total{code="201",component="apiserver",dry_run="",group="discovery.k8s.io",resource="endpointslices",scope="resource",subresource="",verb="POST",version="v1"} 4
"""


def test_writes_count_every_code_of_the_counted_resources_and_no_reads_or_heartbeats() -> None:
    assert apimetrics.writes(TEXT) == {"pods/binding": 10, "pods": 10,
                                       "trainingjobs/status": 32, "trainingjobs": 10,
                                       "events": 20, "endpointslices": 4}


def test_per_job_leaves_out_the_users_own_creates_and_groups_fold_into_columns() -> None:
    before = {"pods": 4.0, "events": 20.0}
    delta = apimetrics.delta(apimetrics.writes(TEXT), before)
    assert delta == {"pods/binding": 10, "pods": 6, "trainingjobs/status": 32,
                     "trainingjobs": 10, "endpointslices": 4}
    per_job = apimetrics.per_job(delta, 10, "trainingjobs")
    assert "trainingjobs" not in per_job  # 10 creates by the user, one each
    assert apimetrics.grouped(per_job) == {"pods": 1.6, "status": 3.2, "endpoints": 0.4}
