from tests.bench import apimetrics


def _line(resource: str, verb: str, value: int, subresource: str = "", code: str = "201",
          group: str = "") -> str:
    return (f'apiserver_request_total{{code="{code}",component="apiserver",dry_run="",'
            f'group="{group}",resource="{resource}",scope="resource",'
            f'subresource="{subresource}",verb="{verb}",version="v1"}} {value}')


TEXT = "\n".join([
    "# HELP apiserver_request_total Counter of apiserver requests",
    _line("pods", "POST", 10, "binding"), _line("pods", "POST", 10),
    _line("pods", "LIST", 99, code="200"),
    _line("trainingjobs", "PATCH", 30, "status", "200", "training.dev"),
    _line("trainingjobs", "PATCH", 2, "status", "409", "training.dev"),
    _line("trainingjobs", "POST", 10, group="training.dev"),
    _line("events", "POST", 20),
    _line("nodes", "PATCH", 500, "status", "200"),
    _line("endpointslices", "POST", 4, group="discovery.k8s.io"),
])


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


def test_operator_driven_writes_leave_out_endpoints() -> None:
    counts = {"trainingjobs/status": 2.0, "events": 1.0, "endpoints": 5.0, "pods/status": 1.0}
    assert apimetrics.operator_driven(counts) == 4.0
