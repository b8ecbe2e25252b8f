{{/*
The chart name, or nameOverride.
*/}}
{{- define "trainingjob-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: fullnameOverride; else the release name when it already contains the
chart name (`helm install trainingjob-operator ...` gives `trainingjob-operator`); else
<release>-<name>. 63 characters at most (DNS label).
*/}}
{{- define "trainingjob-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "trainingjob-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "trainingjob-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator's pods. Never change these on upgrade: a Deployment's
selector is immutable.
*/}}
{{- define "trainingjob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trainingjob-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every object. helm.sh/chart and app.kubernetes.io/managed-by are stripped from the
kustomize base in deploy/ (charts/render_deploy.py).
*/}}
{{- define "trainingjob-operator.labels" -}}
helm.sh/chart: {{ include "trainingjob-operator.chart" . }}
{{ include "trainingjob-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: trainingjob-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "trainingjob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trainingjob-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trainingjob-operator.leaseName" -}}
{{- default (include "trainingjob-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "trainingjob-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
RBAC: every rule the operator uses, defined once; nothing it does not call. The two watch modes
(all namespaces, or a list) differ only in how these are bound (templates/rbac.yaml), so they
cannot drift. tests/unit/test_chart_files.py compares these rules with the requests kube.py,
informer.py and handlers.py make.

Namespaced rules: what the operator does inside a namespace it watches.
  - trainingjobs: list/watch (the informer), delete (a finished job past
    ttlSecondsAfterFinished). No get, create, update or patch: the operator never writes a
    spec.
  - trainingjobs/status: patch (every status write is a merge patch carrying the
    resourceVersion the decision was made on).
  - trainingjobs/finalizers: update. The one rule the operator never calls: clusters running
    the OwnerReferencesPermissionEnforcement admission plugin (e.g. OpenShift) require it to
    create the worker pods and Service, whose controller ownerReference has
    blockOwnerDeletion: true. Custom resources serve no finalizers subresource, so it grants
    nothing else.
  - pods: list/watch (workers and GPU usage), create (workers), get (after a create answered
    409 AlreadyExists: whose pod holds the name), patch (stop a worker at the end of its job by
    setting spec.activeDeadlineSeconds, which keeps the pod and its logs), delete (retries,
    pods that never started, pods on lost nodes). No update.
  - services: create (the headless <job>-workers Service; garbage-collected with the job), get
    (after a 409, as for pods).
  - events (core v1): create (kube.py's transition events). No patch: nothing updates an
    event.
With watchNamespaces these are bound in those namespaces only: no pod rights elsewhere.
*/}}
{{- define "trainingjob-operator.rules.namespaced" -}}
- apiGroups: ["training.dev"]
  resources: ["trainingjobs"]
  verbs: ["list", "watch", "delete"]
- apiGroups: ["training.dev"]
  resources: ["trainingjobs/status"]
  verbs: ["patch"]
- apiGroups: ["training.dev"]
  resources: ["trainingjobs/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Cluster-scoped rules: nodes (GPU allocatable, readiness: lost nodes). Read-only. The only
rule bound cluster-wide with watchNamespaces set.
*/}}
{{- define "trainingjob-operator.rules.cluster" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch"]
{{- end }}

{{/*
Leader election, in the release namespace only: get, create (the first claim) and update (a
renewal or hand-over, a PUT at the resourceVersion read). create cannot be limited by
resourceNames (RBAC: the name is not known before the object exists); get and update are
limited to the one Lease.
*/}}
{{- define "trainingjob-operator.rules.leaderElection" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "trainingjob-operator.leaseName" . | quote }}]
  verbs: ["get", "update"]
{{- end }}
