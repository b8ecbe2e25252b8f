"""Command line: ``python -m devcluster {build,tools,peers,up,down,status,env,stop,start,
restart,...}``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from devcluster import build, cluster, opimage
from devcluster.components import COMPONENTS, NodeShape


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(env("DEVCLUSTER_DIR", ".devcluster")),
                        help="data dir of the cluster (state, certificates, etcd, logs, "
                             "kubeconfig); $DEVCLUSTER_DIR, default .devcluster")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the binaries (or find them in the cache); print their dir")
    sub.add_parser("tools", help="build the tools of devcluster/tools (helm, tjcheck) or find "
                                 "them in the cache; print their dir")
    sub.add_parser("peers", help="build the peers make bench compares with (Kueue's manager, "
                                 "devcluster/peers) or find them in the cache; print their dir")
    start = sub.add_parser("up", help="start a cluster and wait until it is ready")
    start.add_argument("--nodes", type=int, default=int(env("DEVCLUSTER_NODES", "4")),
                       help="fake GPU nodes ($DEVCLUSTER_NODES, default 4)")
    start.add_argument("--gpus-per-node", type=int, default=int(env("DEVCLUSTER_GPUS", "8")),
                       help="nvidia.com/gpu per node ($DEVCLUSTER_GPUS, default 8)")
    start.add_argument("--cpu-per-node", default=env("DEVCLUSTER_CPU", "96"))
    start.add_argument("--memory-per-node", default=env("DEVCLUSTER_MEMORY", "1024Gi"))
    start.add_argument("--pods-per-node", type=int, default=int(env("DEVCLUSTER_PODS", "110")))
    start.add_argument("--real-nodes", type=int,
                       default=int(env("DEVCLUSTER_REAL_NODES", "0")),
                       help="real nodes: a kubelet and containerd each, running real containers "
                            "($DEVCLUSTER_REAL_NODES, default 0)")
    start.add_argument("--real-node-gpus", type=int,
                       default=int(env("DEVCLUSTER_REAL_NODE_GPUS", "8")),
                       help="nvidia.com/gpu each real node advertises ($DEVCLUSTER_REAL_NODE_GPUS, "
                            "default 8)")
    start.add_argument("--services", action="store_true",
                       default=env("DEVCLUSTER_SERVICES", "") in ("1", "true"),
                       help="run kube-proxy, so the real nodes' pods reach Services by their "
                            "ClusterIP, the API server's included ($DEVCLUSTER_SERVICES)")
    start.add_argument("--port", type=int, default=int(env("DEVCLUSTER_PORT", "0")),
                       help="kube-apiserver port ($DEVCLUSTER_PORT; default 0 = any free port)")
    image = sub.add_parser("image", help="build the operator image from the Dockerfile "
                                         "(docker, a base made with mmdebstrap, no registry)")
    image.add_argument("--tag", default="trainingjob-operator:0.1.0")
    load = sub.add_parser("load-image", help="put a built image into the real nodes' "
                                             "containerd (what `kind load docker-image` does)")
    load.add_argument("tag")
    for verb, what in (("stop", "stop one component, keeping its data (etcd's too)"),
                       ("start", "start a stopped component again and wait until it serves"),
                       ("restart", "stop, then start one component (fault injection)")):
        one = sub.add_parser(verb, help=what)
        one.add_argument("component", choices=COMPONENTS)
        if verb != "start":
            one.add_argument("--kill", action="store_true",
                             help="SIGKILL (a crash) instead of SIGTERM (a clean stop)")
    sub.add_parser("down", help="stop the cluster (idempotent) and remove its state")
    sub.add_parser("status", help="components, pids and memory; exit 1 unless all are running")
    sub.add_parser("env", help="print the export line for the cluster's kubeconfig")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            print(build.ensure_binaries())
        elif args.command == "tools":
            print(build.ensure_tools())
        elif args.command == "peers":
            print(build.ensure_kueue())
        elif args.command == "up":
            if min(args.nodes, args.gpus_per_node, args.real_nodes, args.real_node_gpus) < 0:
                raise cluster.ClusterError("--nodes, --gpus-per-node, --real-nodes and "
                                           "--real-node-gpus must be 0 or more")
            shape = NodeShape(count=args.nodes, gpus=args.gpus_per_node, cpu=args.cpu_per_node,
                              memory=args.memory_per_node, pods=args.pods_per_node)
            state = cluster.up(args.dir, shape, args.port, real_nodes=args.real_nodes,
                               real_node_gpus=args.real_node_gpus, services=args.services,
                               log=lambda line: print(line, file=sys.stderr))
            real = (f" and {state.real_nodes} real nodes x {args.real_node_gpus} nvidia.com/gpu"
                    if state.real_nodes else "")
            print(f"devcluster: up at {state.server} in {state.ready_seconds:.1f}s with "
                  f"{shape.count} nodes x {shape.gpus} nvidia.com/gpu{real}", file=sys.stderr)
            print(cluster.env_line(args.dir))
        elif args.command == "image":
            built = opimage.build_image(args.tag, lambda line: print(line, file=sys.stderr))
            print(f"devcluster: built {built.tag} in {built.seconds:.1f}s, "
                  f"{built.size_bytes / 2**20:.0f} MiB", file=sys.stderr)
        elif args.command == "load-image":
            targets = cluster.image_targets(args.dir)
            with tempfile.TemporaryDirectory(prefix="devcluster-image-") as tmp:
                archive = opimage.save(args.tag, Path(tmp) / "image.tar",
                                       lambda line: print(line, file=sys.stderr))
                names = cluster.load_image(targets, archive)
            print(f"devcluster: {args.tag} loaded into {', '.join(names)}", file=sys.stderr)
        elif args.command in ("stop", "start", "restart"):
            sig = signal.SIGKILL if getattr(args, "kill", False) else signal.SIGTERM
            if args.command == "stop":
                pid = cluster.stop_component(args.dir, args.component, sig)
                done = f"stopped (pid {pid})" if pid else "was not running"
            elif args.command == "start":
                done = f"started (pid {cluster.start_component(args.dir, args.component)})"
            else:
                done = ("restarted (pid "
                        f"{cluster.restart_component(args.dir, args.component, sig)})")
            print(f"devcluster: {args.component} {done}", file=sys.stderr)
        elif args.command == "down":
            was = cluster.down(args.dir)
            print(f"devcluster: {'stopped' if was else 'nothing was running'}; "
                  f"{args.dir} cleaned", file=sys.stderr)
        elif args.command == "status":
            healthy, table = cluster.status(args.dir)
            print(table)
            return 0 if healthy else 1
        elif args.command == "env":
            if cluster.read_state(args.dir.resolve()) is None:
                raise cluster.ClusterError(f"no cluster in {args.dir}; start one with "
                                           "`make cluster-up`")
            print(cluster.env_line(args.dir))
    except (cluster.ClusterError, build.BuildError, opimage.ImageError) as err:
        print(f"devcluster: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
