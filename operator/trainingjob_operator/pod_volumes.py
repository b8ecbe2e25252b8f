"""Pure: the volumes a TrainingJob's template (and spec.output) may mount, as frozen models of
core/v1's volume sources: the restricted Pod Security profile's types, and hostPath and nfs
(which the admission policy gates); every other type is refused at apply."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from trainingjob_operator.pod_parts import (
    LABEL,
    MODE,
    NAME,
    PATH,
    LabelSelector,
    LocalRef,
    ObjectFieldSelector,
    Part,
    ResourceFieldSelector,
    closed,
    one_of,
)
from trainingjob_operator.schema import LabelMap, PartQuantity, keys_rule, rule


class KeyToPath(Part):
    key: str = Field(max_length=NAME)
    path: str = Field(max_length=PATH)
    mode: int | None = Field(None, ge=0, le=MODE)


class ConfigMapVolume(Part):
    name: str = Field(max_length=NAME)
    items: list[KeyToPath] | None = Field(None, max_length=8)
    default_mode: int | None = Field(None, ge=0, le=MODE)
    optional: bool | None = None


class SecretVolume(Part):
    secret_name: str = Field(max_length=NAME)
    items: list[KeyToPath] | None = Field(None, max_length=8)
    default_mode: int | None = Field(None, ge=0, le=MODE)
    optional: bool | None = None


class DownwardAPIFile(Part):
    path: str = Field(max_length=PATH)
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    mode: int | None = Field(None, ge=0, le=MODE)


class DownwardAPIVolume(Part):
    items: list[DownwardAPIFile] | None = Field(None, max_length=4)
    default_mode: int | None = Field(None, ge=0, le=MODE)


class ServiceAccountTokenProjection(Part):
    audience: str | None = Field(None, max_length=NAME)
    expiration_seconds: int | None = Field(None, ge=600, le=2**32)
    path: str = Field(max_length=PATH)


class ClusterTrustBundleProjection(Part):
    name: str | None = Field(None, max_length=NAME)
    signer_name: str | None = Field(None, max_length=NAME)
    label_selector: LabelSelector | None = None
    optional: bool | None = None
    path: str = Field(max_length=PATH)


class KeysProjection(Part):
    """A projected volume's configMap or secret source (core/v1 ConfigMapProjection,
    SecretProjection): `name`, not a volume's secretName, and no defaultMode of its own."""

    name: str = Field(max_length=NAME)
    items: list[KeyToPath] | None = Field(None, max_length=8)
    optional: bool | None = None


class DownwardAPIProjection(Part):
    items: list[DownwardAPIFile] | None = Field(None, max_length=4)


class VolumeProjection(Part):
    model_config = ConfigDict(json_schema_extra=one_of(
        "projected.sources[]",
        ("configMap", "secret", "downwardAPI", "serviceAccountToken", "clusterTrustBundle"),
        "projection"))

    config_map: KeysProjection | None = None
    secret: KeysProjection | None = None
    downward_api: DownwardAPIProjection | None = Field(None, alias="downwardAPI")
    service_account_token: ServiceAccountTokenProjection | None = None
    cluster_trust_bundle: ClusterTrustBundleProjection | None = None


class ProjectedVolume(Part):
    sources: list[VolumeProjection] | None = Field(None, max_length=3)
    default_mode: int | None = Field(None, ge=0, le=MODE)


class CSIVolume(Part):
    driver: str = Field(max_length=NAME)
    read_only: bool | None = None
    fs_type: str | None = Field(None, max_length=LABEL)
    volume_attributes: dict[str, Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=8, json_schema_extra=rule(
            "self.all(k, size(k) <= 253)",
            "csi.volumeAttributes keys must be at most 253 characters"))
    node_publish_secret_ref: LocalRef | None = None


class EmptyDirVolume(Part):
    medium: str | None = Field(None, max_length=LABEL, json_schema_extra=rule(
        "self in ['', 'Memory', 'HugePages'] || self.startsWith('HugePages-')",
        "emptyDir.medium must be '', Memory, HugePages or HugePages-<size>"))
    size_limit: PartQuantity | None = None


class ClaimMetadata(Part):
    labels: LabelMap | None = Field(None, max_length=8, json_schema_extra=keys_rule(
        "label", "volumeClaimTemplate.metadata.labels"))
    annotations: dict[str, Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=8, json_schema_extra=keys_rule(
            "annotation", "volumeClaimTemplate.metadata.annotations"))


class ClaimResources(Part):
    requests: dict[str, PartQuantity] | None = Field(None, max_length=4)
    limits: dict[str, PartQuantity] | None = Field(None, max_length=4)


class TypedLocalRef(Part):
    api_group: str | None = Field(None, max_length=NAME)
    kind: str = Field(max_length=LABEL)
    name: str = Field(max_length=NAME)


class TypedObjectRef(TypedLocalRef):
    namespace: str | None = Field(None, max_length=LABEL)


class ClaimSpec(Part):
    access_modes: list[Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                               "ReadWriteOncePod"]] | None = Field(None, max_length=4)
    resources: ClaimResources | None = None
    storage_class_name: str | None = Field(None, max_length=NAME)
    volume_mode: Literal["Filesystem", "Block"] | None = None
    selector: LabelSelector | None = None
    data_source: TypedLocalRef | None = None
    data_source_ref: TypedObjectRef | None = None
    volume_attributes_class_name: str | None = Field(None, max_length=NAME)


class ClaimTemplate(Part):
    metadata: ClaimMetadata | None = None
    spec: ClaimSpec


class EphemeralVolume(Part):
    volume_claim_template: ClaimTemplate


class PersistentVolumeClaimVolume(Part):
    claim_name: str = Field(max_length=NAME)
    read_only: bool | None = None


class HostPathVolume(Part):
    path: str = Field(max_length=PATH)
    type: Literal["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                  "CharDevice", "BlockDevice"] | None = None


class NFSVolume(Part):
    server: str = Field(max_length=NAME)
    path: str = Field(max_length=PATH)
    read_only: bool | None = None


# The restricted Pod Security profile's volume types, and hostPath and nfs (the admission
# policy lets only users who may create such pods use those two).
VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                  "persistentVolumeClaim", "projected", "secret", "hostPath", "nfs")


# Every other type a pod takes mounts from the node or the network (gitRepo clones as root on
# the node: CVE-2025-1767): refused at apply.
_PVC_FIX = ("is not a volume type a TrainingJob may use: use a PersistentVolumeClaim "
            "(persistentVolumeClaim or ephemeral) backed by that storage, or csi")


REFUSED_VOLUME_SOURCES = {name: _PVC_FIX for name in (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", "flexVolume",
    "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "image", "iscsi",
    "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos",
    "vsphereVolume")}


class VolumeSource(Part):
    """One volume source as a pod's volume takes it; a key the schema no longer takes (an
    object stored before it did) is kept apart, for `sources` to name, and never rendered."""

    model_config = ConfigDict(extra="allow", json_schema_extra=closed(
        "spec.output.volume", REFUSED_VOLUME_SOURCES, VOLUME_SOURCES, "volume source"))

    config_map: ConfigMapVolume | None = None
    csi: CSIVolume | None = None
    downward_api: DownwardAPIVolume | None = Field(None, alias="downwardAPI")
    empty_dir: EmptyDirVolume | None = None
    ephemeral: EphemeralVolume | None = None
    persistent_volume_claim: PersistentVolumeClaimVolume | None = None
    projected: ProjectedVolume | None = None
    secret: SecretVolume | None = None
    host_path: HostPathVolume | None = None
    nfs: NFSVolume | None = None

    def sources(self) -> list[str]:
        """Every source key it holds, with the ones the schema does not take."""
        typed = [str(f.alias) for n, f in type(self).model_fields.items()
                 if n != "name" and getattr(self, n) is not None]
        return sorted([*typed, *(k for k in self.model_extra or {} if k != "name")])

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True,
                               exclude=set(self.model_extra or ()))


class Volume(VolumeSource):
    model_config = ConfigDict(json_schema_extra=closed(
        "spec.template.spec.volumes[]", REFUSED_VOLUME_SOURCES, VOLUME_SOURCES,
        "volume source"))

    name: str = Field(max_length=LABEL)
