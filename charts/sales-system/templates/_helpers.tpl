{{/*
The chart name, or nameOverride.
*/}}
{{- define "sales-system.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The SalesSystem's name: fullnameOverride, else the release name. The CRD allows a
DNS label that starts with a letter, at most 30 characters (children append up to
22); a name that cannot be one fails here rather than at the API server.
*/}}
{{- define "sales-system.fullname" -}}
{{- $name := default .Release.Name .Values.fullnameOverride | trunc 30 | trimSuffix "-" }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "the SalesSystem name %q (from fullnameOverride or the release name) must be a DNS label that starts with a letter, at most 30 characters" $name) }}
{{- end }}
{{- $name }}
{{- end }}

{{/*
`<chart>-<version>` for the helm.sh/chart label.
*/}}
{{- define "sales-system.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object of the release carries.
*/}}
{{- define "sales-system.commonLabels" -}}
helm.sh/chart: {{ include "sales-system.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sales-system
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of the SalesSystem.
*/}}
{{- define "sales-system.labels" -}}
app.kubernetes.io/name: {{ include "sales-system.name" . }}
{{ include "sales-system.commonLabels" . }}
{{- end }}

{{/*
The tag of every service image: image.tag, else the chart's appVersion. A tag made
of digits only (a commit hash can be) arrives from --set as a number: printed as is.
*/}}
{{- define "sales-system.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag | toString }}
{{- end }}

{{/*
`resources:` with its ResourceRequirements, indented by .indent on a new line; nothing
when .r is empty (the operator's defaults apply). Use as
`{{- include "sales-system.resources" (dict "r" X "indent" N) }}`.
*/}}
{{- define "sales-system.resources" -}}
{{- with .r }}
{{- printf "resources:\n%s" (toYaml . | indent 2) | nindent $.indent }}
{{- end }}
{{- end }}

{{/*
A managed volume (size, optional class).
*/}}
{{- define "sales-system.storage" -}}
storage:
  size: {{ .size | toString | quote }}
  {{- with .storageClassName }}
  storageClassName: {{ . | quote }}
  {{- end }}
{{- end }}

{{/*
The broker the operator runs for this system: `RabbitMQ`, `Kafka`, or empty when it
runs none (an external broker, or a Strimzi `Kafka`).
*/}}
{{- define "sales-system.managedBroker" -}}
{{- $m := .Values.messaging }}
{{- if eq $m.kind "kafka" }}
{{- if not (or $m.kafka.external.bootstrapServers $m.kafka.strimzi.clusterName) }}Kafka{{ end }}
{{- else if not .Values.rabbitmq.external.secretName }}RabbitMQ
{{- end }}
{{- end }}
