{{/*
The release's fullname: the release name, or "<release>-<name>" when the
release name does not already contain the chart's name. Every object's name
starts with it, so two releases never collide, not even on cluster-scoped
objects. Truncated so that "<fullname>-controller-manager" stays a DNS label.
*/}}
{{- define "buytracker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 43 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Selector labels of the operator's pods. The name is not "buytracker": the
operator caches only pods labelled app.kubernetes.io/name=buytracker, the
BuyTrackers' own.
*/}}
{{- define "buytracker.selectorLabels" -}}
app.kubernetes.io/name: buytracker-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object the chart installs. */}}
{{- define "buytracker.chartLabels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "buytracker.labels" -}}
{{ include "buytracker.selectorLabels" . }}
{{ include "buytracker.chartLabels" . }}
{{- end -}}

{{- define "buytracker.serviceAccountName" -}}
{{ include "buytracker.fullname" . }}-controller-manager
{{- end -}}
