"""devcluster: a real Kubernetes control plane on one machine, with kwok-simulated GPU nodes.

The components (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl)
are built from their upstream Go modules by :mod:`devcluster.build`; :mod:`devcluster.cluster`
starts them on 127.0.0.1. See devcluster/README.md.
"""
