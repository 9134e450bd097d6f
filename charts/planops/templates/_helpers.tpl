{{/*
Chart name, overridable.
*/}}
{{- define "planops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full release name; DNS-label safe (63 chars).
*/}}
{{- define "planops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "planops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object, without a component.
*/}}
{{- define "planops.commonLabels" -}}
helm.sh/chart: {{ include "planops.chart" . }}
app.kubernetes.io/name: {{ include "planops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: planops
{{- end }}

{{/*
Labels of the operator's own objects.
*/}}
{{- define "planops.labels" -}}
{{ include "planops.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Selector labels of the operator pods. Never change these in an upgrade:
a Deployment's selector is immutable.
*/}}
{{- define "planops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "planops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels of the gateway Deployment's objects, and its pods' selector.
*/}}
{{- define "planops.gatewayLabels" -}}
{{ include "planops.commonLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "planops.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "planops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/*
The gateway Deployment's ServiceAccount: it reads resources and Secrets, never writes.
*/}}
{{- define "planops.gatewayServiceAccountName" -}}
{{- printf "%s-gateway" (include "planops.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
What `planops gateway` reads wherever routes live: the kinds with routes and
the Secrets their routes authenticate with.
*/}}
{{- define "planops.gatewayRules" -}}
- apiGroups: ["planops.io"]
  resources: ["exceptionrules", "supplierconnectors", "approvalpolicies"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{- define "planops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "planops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"repository:tag[@digest]".
*/}}
{{- define "planops.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Name of the cluster-scoped RBAC objects. Prefixed with the release namespace
because two releases in different namespaces must not share a ClusterRole.
*/}}
{{- define "planops.clusterRoleName" -}}
{{- printf "%s-%s" .Release.Namespace (include "planops.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespaces that get a scan ServiceAccount, as a JSON list (use fromJsonArray).
*/}}
{{- define "planops.scanNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- else if .Values.scanServiceAccount.namespaces }}
{{- .Values.scanServiceAccount.namespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/*
Name of the cache PVC.
*/}}
{{- define "planops.cacheClaimName" -}}
{{- .Values.cache.persistence.existingClaim | default (printf "%s-cache" (include "planops.fullname" .)) }}
{{- end }}

{{/*
The rules the operator needs wherever it reconciles objects. Shared by the
ClusterRole (all namespaces) and the per-namespace Roles (tenant mode) so the
two modes cannot drift apart.
*/}}
{{- define "planops.operatorRules" -}}
- apiGroups: ["planops.io"]
  resources: ["odooconnections", "exceptionrules", "supplierconnectors", "approvalpolicies"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["planops.io"]
  resources: ["odooconnections/status", "exceptionrules/status", "supplierconnectors/status", "approvalpolicies/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["planops.io"]
  resources: ["odooconnections/finalizers", "exceptionrules/finalizers", "supplierconnectors/finalizers", "approvalpolicies/finalizers"]
  verbs: ["update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Each ExceptionRule with triggers.events keeps its callback token in an owned
# Secret (planops-hook-<rule>), created on first reconcile and never changed.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
# Each scheduled rule keeps its scan memory (supplier-delay dates) in an owned ConfigMap.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- end }}

{{/*
Fails rendering on value combinations that would install a broken operator.
*/}}
{{- define "planops.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 requires leaderElection.enabled=true: without a Lease every replica would reconcile and write to Odoo" }}
{{- end }}
{{- if and (gt (int .Values.shards) 1) (not .Values.leaderElection.enabled) }}
{{- fail "shards > 1 requires leaderElection.enabled=true: a shard is held through its Lease" }}
{{- end }}
{{- range .Values.watchNamespaces }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) }}
{{- fail (printf "watchNamespaces: %q is not a valid namespace name" .) }}
{{- end }}
{{- end }}
{{- end }}
