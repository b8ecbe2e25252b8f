"""Pure: exit codes, the error the commands raise, and kubectl's errors said with a fix."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the job failed, or kubectl / the API refused or failed
EXIT_USAGE = 2   # usage error, job not found, or `wait` timed out


class PluginError(Exception):
    """A problem to tell the user (one message naming the problem and the fix) and the
    exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def kubectl_problem(stderr: str, args: list[str]) -> PluginError:
    """kubectl's stderr, with what to do about the common causes."""
    text = stderr.strip() or "(no output)"
    lower = text.lower()
    if "doesn't have a resource type" in lower and "trainingjob" in lower:
        return PluginError("the TrainingJob CRD is not installed in this cluster: "
                           "kubectl apply -f crds/ (from the trainingjob-operator repo), or "
                           "pick another cluster with --context / --kubeconfig", EXIT_FAILED)
    if "error in configuration" in lower or "context was not found" in lower or (
            "no such file" in lower and "stat " in lower):
        return PluginError(f"kubeconfig problem: {text}\n(check --kubeconfig or KUBECONFIG, and "
                           "--context: kubectl config get-contexts lists the contexts)",
                           EXIT_FAILED)
    if "unable to connect" in lower or "connection refused" in lower or "no such host" in lower:
        return PluginError(f"cannot reach the cluster: {text}\n(check --context / --kubeconfig "
                           "and that the cluster is up)", EXIT_FAILED)
    if "forbidden" in lower:
        return PluginError(f"not allowed: {text}\n(ask for RBAC access to trainingjobs and pods "
                           "in that namespace, or use -n for one where you have it)", EXIT_FAILED)
    return PluginError(f"kubectl {' '.join(args[:2])} failed: {text}", EXIT_FAILED)


def is_not_found(stderr: str) -> bool:
    return "(NotFound)" in stderr or " not found" in stderr


def not_found(name: str, namespace: str | None, elsewhere: list[str] | None) -> PluginError:
    """`namespace` None: searched every namespace (-A). `elsewhere`: the namespaces that do
    have a job of that name, or None when they could not be listed."""
    if namespace is None:
        return PluginError(f"trainingjob '{name}' not found in any namespace "
                           "(kubectl trainingjob list -A --all lists them all)", EXIT_USAGE)
    where = f"trainingjob '{name}' not found in namespace '{namespace}'"
    if elsewhere is None:
        return PluginError(f"{where} (try -A or -n)", EXIT_USAGE)
    if not elsewhere:
        return PluginError(f"{where}, nor in any other namespace (kubectl trainingjob list "
                           "-A --all lists the jobs that exist)", EXIT_USAGE)
    hint = " or ".join(f"-n {n}" for n in elsewhere)
    return PluginError(f"{where}; it exists in namespace {', '.join(elsewhere)} "
                       f"(use {hint}, or -A)", EXIT_USAGE)


def ambiguous(name: str, namespaces: list[str]) -> PluginError:
    return PluginError(f"trainingjob '{name}' exists in namespaces {', '.join(namespaces)}: "
                       f"pick one with -n (e.g. -n {namespaces[0]})", EXIT_USAGE)
