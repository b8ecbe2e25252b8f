from __future__ import annotations

import pytest
from trainingjob_operator.plugin.errors import (
    EXIT_FAILED,
    EXIT_USAGE,
    ambiguous,
    is_not_found,
    kubectl_problem,
    not_found,
)
from trainingjob_operator.plugin.main import build_parser, main


def test_not_found_names_the_namespace_and_the_fix() -> None:
    assert not_found("x", "y", None).message == "trainingjob 'x' not found in namespace 'y' " \
        "(try -A or -n)"
    assert not_found("x", "y", None).code == EXIT_USAGE
    assert not_found("x", "y", ["team-a"]).message == (
        "trainingjob 'x' not found in namespace 'y'; it exists in namespace team-a "
        "(use -n team-a, or -A)")
    assert "nor in any other namespace" in not_found("x", "y", []).message
    assert "not found in any namespace" in not_found("x", None, None).message
    assert ambiguous("x", ["a", "b"]).message == \
        "trainingjob 'x' exists in namespaces a, b: pick one with -n (e.g. -n a)"


def test_kubectl_errors_get_a_fix() -> None:
    crd = kubectl_problem('error: the server doesn\'t have a resource type "trainingjobs"',
                          ["get", "trainingjobs.training.dev"])
    assert "CRD is not installed" in crd.message and crd.code == EXIT_FAILED
    down = kubectl_problem("The connection to the server 127.0.0.1:6443 was refused - did "
                           "you specify the right host or port?\nconnection refused", ["get"])
    assert down.message.startswith("cannot reach the cluster") and "--context" in down.message
    assert "RBAC" in kubectl_problem("Error from server (Forbidden): ... is forbidden",
                                     ["get"]).message
    config = kubectl_problem("Error in configuration: context was not found for specified "
                             "context: nope", ["get"])
    assert config.message.startswith("kubeconfig problem") and "get-contexts" in config.message
    assert is_not_found('Error from server (NotFound): trainingjobs.training.dev "x" not found')


def test_global_flags_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["-n", "team-a", "--context", "c", "view", "x"])
    after = parser.parse_args(["view", "x", "-n", "team-a", "--kubeconfig", "/k"])
    assert (before.namespace, before.context, before.kubeconfig) == ("team-a", "c", None)
    assert (after.namespace, after.context, after.kubeconfig) == ("team-a", None, "/k")
    both = parser.parse_args(["-A", "list", "--all", "-o", "json"])
    assert both.all_namespaces and both.include_finished and both.output == "json"


def test_logs_and_wait_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["logs", "x", "--worker", "1", "--tail", "20", "-f"])
    assert (args.worker, args.tail, args.follow) == (1, 20, True)
    assert parser.parse_args(["wait", "x", "--timeout", "10m"]).timeout == "10m"
    assert parser.parse_args(["wait", "x"]).timeout is None


@pytest.mark.parametrize("argv", [["wait", "x", "--timeout", "soon"], ["logs", "x", "--tail",
                                                                       "-3"],
                                  ["view"], ["frobnicate"], ["list", "-o", "yaml"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "list" in capsys.readouterr().err


def test_help_documents_json_keys_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for command, words in (("list", ["gpusNeeded", "ageSeconds"]),
                           ("view", ["history", "ongoing", "pods"]),
                           ("wait", ["exit codes: 0 Completed", "exitCode", "NotFound"])):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        for word in words:
            assert word in out, (command, word)


def test_missing_kubectl_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBECTL", "/nonexistent/kubectl")
    assert main(["list"]) == EXIT_FAILED
    assert "cannot run /nonexistent/kubectl" in capsys.readouterr().err
    monkeypatch.delenv("KUBECTL")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["list"]) == EXIT_FAILED
    assert "kubectl not found on PATH" in capsys.readouterr().err
