"""``python -m trainingjob_operator``: run the operator against the current kubeconfig."""

from __future__ import annotations

import argparse
import logging
import os
import socket

import kopf

from trainingjob_operator import handlers  # noqa: F401  (registers the handlers)
from trainingjob_operator.settings import Settings, deprecated, port_taken

log = logging.getLogger("trainingjob_operator")  # run as __main__


def free_or_explain(setting: str, port: int) -> None:
    """Refuse a port another program holds before anything starts: one line that names the
    setting, not a traceback (the startup handler's bind stays the backstop for a race)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as err:
            raise ValueError(port_taken(setting, port, err)) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trainingjob_operator", description=__doc__)
    parser.add_argument("--namespace", "-n", action="append", default=[],
                        help="watch only this namespace (repeatable; also "
                             "TRAININGJOB_NAMESPACES=a,b); default: all namespaces")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    namespaces = args.namespace or [n for n in os.environ.get(
        "TRAININGJOB_NAMESPACES", "").split(",") if n]
    try:
        settings = Settings.from_env()
        for setting, port in (("TRAININGJOB_METRICS_PORT", settings.metrics_port),
                              ("TRAININGJOB_HEALTH_PORT", settings.health_port)):
            if port:
                free_or_explain(setting, port)
    except ValueError as err:
        parser.exit(2, f"trainingjob-operator: {err}\n")
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.JSON
                   if settings.log_format == "json" else kopf.LogFormat.PLAIN)
    if not args.verbose:  # one line per handled event is noise at 10,000 jobs
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    for warning in deprecated():  # here, once: the startup handler reads the settings again
        log.warning("%s", warning)
    # The informers (handlers.py) watch; kopf runs the process: startup, cleanup, signals.
    kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces,
             memo=kopf.Memo(namespaces=namespaces))


if __name__ == "__main__":
    main()
