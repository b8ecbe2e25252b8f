"""trainingjob-operator: runs TrainingJobs (ML training gangs of GPU pods) on Kubernetes.

The API's names live in vocabulary.py."""
