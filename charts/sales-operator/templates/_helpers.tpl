{{/*
The chart name: the `app.kubernetes.io/name` of the operator's pods. Fixed (no
nameOverride): every SalesSystem's NetworkPolicies admit the operator to the broker's
management API and the services' admin ports by `app.kubernetes.io/name: sales-operator`.
*/}}
{{- define "sales-operator.name" -}}
{{- .Chart.Name }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else `<release>-<chart>`
(just the release name when it already contains the chart name), at most 63
characters.
*/}}
{{- define "sales-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "sales-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
`<chart>-<version>` for the helm.sh/chart label.
*/}}
{{- define "sales-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object of the operator.
*/}}
{{- define "sales-operator.labels" -}}
{{ include "sales-operator.selectorLabels" . }}
{{ include "sales-operator.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels every object of the release carries, the test Pod's included.
*/}}
{{- define "sales-operator.commonLabels" -}}
helm.sh/chart: {{ include "sales-operator.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sales-system
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels the Deployment selects its pods by (never change on upgrade).
*/}}
{{- define "sales-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sales-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator's ServiceAccount.
*/}}
{{- define "sales-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sales-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image: repository:tag, @digest when one is given; the tag defaults to
the chart's appVersion.
*/}}
{{- define "sales-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The name of the ConfigMap holding the operator's settings.
*/}}
{{- define "sales-operator.configName" -}}
{{- printf "%s-config" (include "sales-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The rules the operator needs wherever it watches SalesSystems (docs/operator/README.md,
"Install", step 3): exactly the verbs it uses.
*/}}
{{- define "sales-operator.watchRules" -}}
- apiGroups: ["sales-system.io"]
  resources: ["salessystems", "salessystems/status"]
  verbs: ["get", "list", "watch", "patch", "update"]
# Children's owner references set blockOwnerDeletion, which admission may check.
- apiGroups: ["sales-system.io"]
  resources: ["salessystems/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps", "secrets", "services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The backups of the managed databases.
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies", "ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["kafka.strimzi.io"]
  resources: ["kafkatopics", "kafkausers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# A Kafka created on Strimzi (`messaging.kafka.strimzi.create`): never deleted by the
# operator (owner references, or nothing, under its deletionPolicy).
- apiGroups: ["kafka.strimzi.io"]
  resources: ["kafkas", "kafkanodepools"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["postgresql.cnpg.io"]
  resources: ["clusters", "scheduledbackups"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The shared Cluster's databases (`cloudNativePG.shared`): applied, watched, never
# deleted by the operator (with the SalesSystem, the garbage collector does).
- apiGroups: ["postgresql.cnpg.io"]
  resources: ["databases"]
  verbs: ["get", "list", "watch", "create", "patch"]
# RabbitMQ's cluster operator (`rabbitmq.cluster.create`).
- apiGroups: ["rabbitmq.com"]
  resources: ["rabbitmqclusters"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# RabbitMQ's Messaging Topology Operator (`rabbitmq.cluster`): the system's vhost,
# user and permissions, server-side applied, read and watched (never deleted by the
# operator: the garbage collector follows the owner references).
- apiGroups: ["rabbitmq.com"]
  resources: ["vhosts", "users", "permissions"]
  verbs: ["get", "list", "watch", "create", "patch"]
# cert-manager (`tls.mode: certManager`).
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The scaler: consumer pods' pod-deletion-cost before a scale-down.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
{{- end }}
