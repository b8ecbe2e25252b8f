"""The shipping artifacts agree with each other and with the operator, without a cluster or helm.

The CRD copies, the Dockerfile's invariants, the chart's values vs its schema, README and the
operator's Settings, and the pure part of charts/render_deploy.py. Rendering and the API
server's verdict are in tests/e2e/test_chart.py.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from trainingjob_operator import vocabulary
from trainingjob_operator.settings import RENAMED, Settings, chart_key

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "trainingjob-operator"
CRD = "trainingjobs.training.dev.yaml"
# Settings the chart sets from its own values (not from `settings`), with the env it renders.
CHART_MANAGED = {"metrics_port": "metrics.port", "health_port": "health.port",
                 "leader_elect": "leaderElection.enabled",
                 "lease_name": "leaderElection.leaseName",
                 "lease_namespace": "the release namespace", "log_format": "logFormat",
                 "ttl_seconds_after_finished": "ttlSecondsAfterFinished",
                 "accelerators": "accelerators", "cpu_only_max_workers": "cpuOnlyMaxWorkers",
                 "worker_node_selector": "workerNodeSelector"}


def load_render_deploy() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_deploy", ROOT / "charts" / "render_deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


# --- the CRD: one source (make crds), copies byte-identical ----------------------------------

@pytest.mark.parametrize("copy", [CHART / "crds" / CRD, ROOT / "deploy" / "crds" / CRD],
                         ids=["chart", "deploy"])
def test_crd_copies_are_byte_identical(copy: Path) -> None:
    assert copy.read_bytes() == (ROOT / "crds" / CRD).read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from crds/{CRD}: run `make crds deploy-manifests`")


# --- Dockerfile ---------------------------------------------------------------------------

def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuation lines joined, comments dropped) per stage; [0] is before FROM."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[str]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def instructions(stage: list[str], keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in stage if line.split()[0].upper() == keyword]


def test_dockerfile_is_multi_stage_with_a_pinned_base() -> None:
    preamble, *stages = dockerfile_stages()
    assert len(stages) >= 2, "a builder stage and a final stage"
    args = dict(a.split("=", 1) for a in instructions(preamble, "ARG"))
    base = args["BASE"]  # `make image` passes a base built here; this default is elsewhere's
    # An exact version tag; a plain name (no registry host: that is the deployer's choice).
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base), base
    for stage in stages:
        assert stage[0].split()[1] == "${BASE}", stage[0]
    final = stages[-1]
    assert any(c.startswith("--from=builder ") for c in instructions(final, "COPY"))
    for run in instructions(final, "RUN"):  # the final stage installs nothing
        assert not re.search(r"\b(pip|apt|apt-get|dpkg|install)\b", run), run


def test_dockerfile_final_stage_runs_the_operator_as_the_charts_non_root_user() -> None:
    final = dockerfile_stages()[-1]
    users = instructions(final, "USER")
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit(), "numeric, so runAsNonRoot can be checked"
    assert int(uid) != 0 and int(gid) != 0
    pod = values()["podSecurityContext"]
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"])
    assert pod["runAsNonRoot"] is True
    assert json.loads(instructions(final, "ENTRYPOINT")[-1]) == [
        "python3", "-m", "trainingjob_operator"]
    env = " ".join(instructions(final, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_dockerignore_admits_exactly_what_the_dockerfile_copies() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "everything is excluded first, then the build inputs re-included"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {src.rstrip("/") for stage in dockerfile_stages()
              for copy in instructions(stage, "COPY") if not copy.startswith("--from")
              for src in copy.split()[:-1]}
    assert copied == admitted


# --- values, schema, README, Settings -------------------------------------------------------

def objects_with_properties(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((path or "(root)", node))
        for key, child in node.items():
            found.extend(objects_with_properties(child, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found.extend(objects_with_properties(child, f"{path}/{i}"))
    return found


def test_schema_refuses_unknown_keys_at_every_level_it_defines() -> None:
    doc = schema()
    assert doc["$schema"] == "http://json-schema.org/draft-07/schema#"
    defined = objects_with_properties(doc)
    assert len(defined) > 10
    for path, node in defined:
        assert node.get("additionalProperties") is False, path
    assert doc["properties"]["logFormat"]["enum"] == ["json", "plain"]
    assert doc["properties"]["image"]["properties"]["pullPolicy"]["enum"] == [
        "Always", "IfNotPresent", "Never"]


def test_every_value_has_a_schema_entry_and_a_readme_row() -> None:
    readme = (CHART / "README.md").read_text()
    props = schema()["properties"]

    def walk(vals: dict[str, Any], props: dict[str, Any], prefix: str) -> None:
        for key, value in vals.items():
            path = f"{prefix}{key}"
            assert key in props, f"{path} is in values.yaml but not in values.schema.json"
            child = props[key]
            if isinstance(value, dict) and value and "properties" in child:
                walk(value, child["properties"], f"{path}.")
            else:  # a leaf, or a Kubernetes-typed value: its row, or its parent's
                parts = path.split(".")
                rows = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
                assert any(f"| `{row}` |" in readme for row in rows), (
                    f"{path} has no row in the chart README")

    walk(values(), props, "")


def test_chart_settings_are_exactly_the_operators_tunables() -> None:
    """Each `settings` key renders TRAININGJOB_<SNAKE> that Settings reads; each Settings field
    is settable through the chart (under `settings`, or a value of its own)."""
    names = {f.name for f in fields(Settings)}
    renamed = {chart_key(old) for old in RENAMED}  # still read, with a warning
    in_schema = set(schema()["properties"]["settings"]["properties"])
    readme = (CHART / "README.md").read_text()
    for key in in_schema:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()  # what sprig's snakecase gives
        assert snake in names or key in renamed, f"settings.{key}: Settings has no field {snake}"
        assert f"| `{key}` | `TRAININGJOB_{snake.upper()}` |" in readme, key
    missing = names - {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower() for k in in_schema}
    missing -= set(CHART_MANAGED)
    assert not missing, (f"Settings fields the chart cannot set: {sorted(missing)}; add them "
                         f"to values.schema.json settings as {[chart_key(m) for m in missing]}")
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    for name in CHART_MANAGED:
        assert f"name: TRAININGJOB_{name.upper()}" in deployment, name


def test_image_references_are_plain_names() -> None:
    image = values()["image"]
    assert "/" not in image["repository"], "no registry host in the chart's default image"
    assert image["tag"] == "", "the tag defaults to appVersion"
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == "0.1.0"


# --- charts/render_deploy.py (pure parts) --------------------------------------------------

RENDERED = """---
# Source: trainingjob-operator/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: trainingjob-operator
  labels:
    helm.sh/chart: trainingjob-operator-0.1.0
    app.kubernetes.io/name: trainingjob-operator
    app.kubernetes.io/managed-by: Helm
spec:
  template:
    metadata:
      labels:
        app.kubernetes.io/managed-by: Helm
        app.kubernetes.io/name: trainingjob-operator
        helm.sh/chart: trainingjob-operator-0.1.0
    spec:
      # a comment that stays
      containers: []
"""


def test_render_strips_helm_labels_and_keeps_the_rest() -> None:
    render = load_render_deploy()
    assert render.helm_labels_left(RENDERED) == [
        "Deployment/trainingjob-operator: helm.sh/chart",
        "Deployment/trainingjob-operator: app.kubernetes.io/managed-by",
        "Deployment/trainingjob-operator: helm.sh/chart",
        "Deployment/trainingjob-operator: app.kubernetes.io/managed-by"]
    stripped = render.strip_helm_labels(RENDERED)
    assert render.helm_labels_left(stripped) == []
    assert "# a comment that stays" in stripped
    doc = yaml.safe_load(stripped.removeprefix("---\n"))
    assert doc["metadata"]["labels"] == {"app.kubernetes.io/name": "trainingjob-operator"}
    assert doc["spec"]["template"]["metadata"]["labels"] == {
        "app.kubernetes.io/name": "trainingjob-operator"}


def test_render_namespace_enforces_the_restricted_pod_security_standard() -> None:
    render = load_render_deploy()
    ns = render.namespace_manifest()
    assert ns["metadata"]["name"] == "trainingjob-system"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    kustomization = render.kustomization()
    assert kustomization["namespace"] == "trainingjob-system"
    for resource in kustomization["resources"]:
        assert (ROOT / "deploy" / resource).is_file(), resource


def test_stale_reports_each_differing_file(tmp_path: Path) -> None:
    render = load_render_deploy()
    (tmp_path / "same.yaml").write_text("a: 1\n")
    (tmp_path / "other.yaml").write_text("a: 1\n")
    problems = render.stale({"same.yaml": "a: 1\n", "other.yaml": "a: 2\n",
                             "missing.yaml": "b: 1\n"}, tmp_path)
    assert len(problems) == 2
    assert "deploy/missing.yaml" in problems[0] and "+b: 1" in problems[0]
    assert "deploy/other.yaml" in problems[1] and "-a: 1" in problems[1]


# --- RBAC: the rules are the requests the operator makes ------------------------------------
#
# The requests are read from the code (kube.py's, informer.py's; the informers' paths from
# handlers.py), not from a list kept beside it: a request added without a rule, or a rule left
# after its request went, fails here. The rules are read from templates/_helpers.tpl (the watch
# modes bind the same blocks) and from deploy/operator.yaml, the chart rendered with its
# defaults.

OPERATOR = ROOT / "operator" / "trainingjob_operator"
# Every resource a request path may name, with its API group.
GROUPS = {"pods": "", "services": "", "events": "", "nodes": "", "leases": "coordination.k8s.io",
          vocabulary.PLURAL: vocabulary.GROUP}
# Other resources: a path naming one fails (add it to GROUPS and the chart). Not
# "namespaces": every namespaced path has that segment.
OTHER_RESOURCES = {"secrets", "configmaps", "endpoints", "serviceaccounts", "bindings",
                   "persistentvolumeclaims", "deployments", "jobs", "customresourcedefinitions"}
HTTP_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
              "DELETE": "delete"}
# Granted and never called: the OwnerReferencesPermissionEnforcement admission plugin asks for
# it when the operator creates a pod or Service whose ownerReference blocks the job's deletion.
NOT_CALLED = {(vocabulary.GROUP, f"{vocabulary.PLURAL}/finalizers", "update")}
# Requests that need no rule: API discovery (every authenticated user may read it).
DISCOVERY = {"serves_trainingjobs"}
WRAPPERS = {"request", "watch", "_write", "_read"}
Rule = tuple[str, str, str]  # (apiGroup, resource, verb)
Function = ast.FunctionDef | ast.AsyncFunctionDef


class Source:
    """One module's functions, and what a path expression in it can hold."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text())
        self.functions: dict[str, Function] = {}
        self.owner: dict[ast.AST, Function] = {}
        for fn in ast.walk(self.tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(fn.name, fn)
                for node in ast.walk(fn):
                    self.owner[node] = fn  # the innermost function wins (walked later)

    def calls(self) -> list[tuple[ast.Call, Function]]:
        return [(node, self.owner[node]) for node in ast.walk(self.tree)
                if isinstance(node, ast.Call) and node in self.owner]

    def strings(self, expr: ast.AST, fn: Function | None, params: bool = True,
                seen: frozenset[int] = frozenset()) -> set[str]:
        """Every string constant `expr` may be made of: local names followed to their
        assignments, parameters to the arguments of every call of `fn` in this module, module
        functions to what they return, and the names of vocabulary.py."""
        if id(expr) in seen:
            return set()
        seen |= {id(expr)}
        if isinstance(expr, ast.Constant):
            return {expr.value} if isinstance(expr.value, str) else set()
        if isinstance(expr, ast.Name) and fn is not None:
            assigned = [node.value for node in ast.walk(fn) if isinstance(node, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == expr.id
                                for t in node.targets)]
            if assigned:
                return set().union(*(self.strings(v, fn, params, seen) for v in assigned))
            names = [a.arg for a in fn.args.args if a.arg != "self"]
            if expr.id in names:
                return self.arguments(fn, names.index(expr.id), expr.id, seen) if params else set()
        if isinstance(expr, ast.Name):
            value = getattr(vocabulary, expr.id, None)
            return {value} if isinstance(value, str) else set()
        found: set[str] = set()
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and (
                expr.func.id in self.functions):
            callee = self.functions[expr.func.id]
            for ret in ast.walk(callee):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    found |= self.strings(ret.value, callee, False, seen)
        for child in ast.iter_child_nodes(expr):
            found |= self.strings(child, fn, params, seen)
        return found

    def arguments(self, fn: Function, index: int, name: str,
                  seen: frozenset[int]) -> set[str]:
        found: set[str] = set()
        for call, caller in self.calls():
            callee = call.func.attr if isinstance(call.func, ast.Attribute) else (
                call.func.id if isinstance(call.func, ast.Name) else None)
            if callee != fn.name:
                continue
            args = [*call.args[index:index + 1],
                    *(k.value for k in call.keywords if k.arg == name)]
            for arg in args:
                found |= self.strings(arg, caller, True, seen)
        return found


def resources_named(strings: set[str], where: str) -> set[str]:
    """The resources a request path names (a subresource when '/status' is part of it)."""
    words = {part for s in strings for part in re.split(r"[/{}]", s) if part}
    unknown = words & OTHER_RESOURCES
    assert not unknown, f"{where} requests {sorted(unknown)}: add them to GROUPS and the chart"
    named = words & set(GROUPS)
    if "status" in words:
        named = {f"{r}/status" for r in named}
    return named


def requests_made(kube_py: Path = OPERATOR / "kube.py") -> tuple[set[Rule], set[Rule]]:
    """(rules the namespaced requests need, rules the cluster-scoped ones need), from the code."""
    kube = Source(kube_py)
    namespaced: set[Rule] = set()
    for call, fn in kube.calls():
        method = call.func.attr if isinstance(call.func, ast.Attribute) else None
        if method not in WRAPPERS or fn.name in WRAPPERS:
            continue
        where = f"kube.py {fn.name}()"
        if method == "_read":
            verb, path = "get", call.args[0]
        else:
            assert method in ("request", "_write"), f"{where}: a {method} of its own"
            first = call.args[0]
            assert isinstance(first, ast.Constant) and first.value in HTTP_VERBS, (
                f"{where}: the HTTP method must be a literal")
            verb, path = HTTP_VERBS[first.value], call.args[1]
        named = resources_named(kube.strings(path, fn), where)
        if not named:
            assert fn.name in DISCOVERY, f"{where}: cannot tell which resource it requests"
        namespaced |= {(GROUPS[r.split("/")[0]], r, verb) for r in named}
    informer = Source(OPERATOR / "informer.py")
    verbs = set()
    for call, fn in informer.calls():
        method = call.func.attr if isinstance(call.func, ast.Attribute) else None
        if method == "request":
            first = call.args[0]
            assert isinstance(first, ast.Constant) and first.value == "GET", (
                f"informer.py {fn.name}(): informers only list and watch")
            verbs.add("list")
        elif method == "watch" and isinstance(call.func, ast.Attribute) and (
                isinstance(call.func.value, ast.Attribute) and call.func.value.attr == "rest"):
            verbs.add("watch")
    assert verbs == {"list", "watch"}, verbs
    cluster: set[Rule] = set()
    handlers = Source(OPERATOR / "handlers.py")
    for call, fn in handlers.calls():
        if not (isinstance(call.func, ast.Name) and call.func.id.endswith("Informer")):
            continue
        paths = [a for a in call.args if isinstance(a, ast.JoinedStr | ast.Constant)]
        assert len(paths) == 1, f"handlers.py {fn.name}(): an informer without a path literal"
        named = resources_named(handlers.strings(paths[0], fn), f"handlers.py {fn.name}()")
        assert len(named) == 1, named
        # A path with the watched namespace's scope is namespaced; one without is cluster-wide.
        scoped = any(isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name)
                     and v.value.id == "scope" for v in ast.walk(paths[0]))
        rules = {(GROUPS[r], r, v) for r in named for v in verbs}
        (namespaced if scoped else cluster).update(rules)
    return namespaced, cluster


def flat(rules: list[dict[str, Any]]) -> set[Rule]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}


def helper_rules(name: str) -> list[dict[str, Any]]:
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    found = re.search(r'\{\{- define "trainingjob-operator\.rules\.' + name
                      + r'" -\}\}\n(.*?)\{\{- end \}\}', text, re.S)
    assert found, name
    rules: list[dict[str, Any]] = yaml.safe_load(re.sub(r"\{\{.*?\}\}", '"lease"',
                                                        found.group(1)))
    return rules


def test_rbac_grants_exactly_the_requests_the_operator_makes() -> None:
    namespaced, cluster = requests_made()
    leases = {rule for rule in namespaced if rule[1] == "leases"}
    namespaced -= leases

    def compare(what: str, granted: set[Rule], used: set[Rule]) -> None:
        assert granted == used, (
            f"{what}: used without a rule: {sorted(used - granted)}; granted but never "
            f"used: {sorted(granted - used)}")

    compare("rules.namespaced", flat(helper_rules("namespaced")), namespaced | NOT_CALLED)
    compare("rules.cluster", flat(helper_rules("cluster")), cluster)
    compare("rules.leaderElection", flat(helper_rules("leaderElection")), leases)
    # A namespaced install binds rules.cluster cluster-wide, and that is nodes only.
    assert cluster == {("", "nodes", "list"), ("", "nodes", "watch")}
    assert ("", "pods", "create") in namespaced  # the analysis finds what it must


def test_rendered_rbac_is_the_rules_of_the_code() -> None:
    """deploy/operator.yaml is the chart rendered with its defaults (watch every namespace)."""
    namespaced, cluster = requests_made()
    leases = {rule for rule in namespaced if rule[1] == "leases"}
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "operator.yaml").read_text()) if d]
    roles = {d["kind"]: d for d in docs if d["kind"] in ("ClusterRole", "Role")}
    assert flat(roles["ClusterRole"]["rules"]) == (namespaced - leases) | NOT_CALLED | cluster
    assert flat(roles["Role"]["rules"]) == leases
    for rule in roles["Role"]["rules"]:
        assert rule["verbs"] == ["create"] or rule["resourceNames"] == ["trainingjob-operator"]


def test_the_comparison_fails_for_a_verb_added_or_left_unused(tmp_path: Path) -> None:
    """A DELETE of a Service added to kube.py needs a rule the chart lacks; kube.py without
    stop_pod leaves `patch` on pods granted and unused."""
    source = (OPERATOR / "kube.py").read_text()
    added = tmp_path / "added.py"
    added.write_text(source + (
        "\n\nasync def _extra(self: Kube, ns: str) -> None:\n"
        '    await self._write("DELETE", _namespaced(ns, "services", "x"))\n'))
    granted = flat(helper_rules("namespaced"))
    assert ("", "services", "delete") in requests_made(added)[0] - granted
    start = source.index("    async def stop_pod(")
    end = source.index("    async def ", start + 1)
    removed = tmp_path / "removed.py"
    removed.write_text(source[:start] + source[end:])
    assert ("", "pods", "patch") in granted - requests_made(removed)[0]
