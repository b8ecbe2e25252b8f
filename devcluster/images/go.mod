module trainingjob-operator/devcluster/images

go 1.24.0
