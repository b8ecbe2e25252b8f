"""trainingjob-operator: runs TrainingJobs (ML training gangs of GPU pods) on Kubernetes."""

GROUP = "training.dev"
VERSION = "v1alpha1"
PLURAL = "trainingjobs"
KIND = "TrainingJob"
API_VERSION = f"{GROUP}/{VERSION}"
