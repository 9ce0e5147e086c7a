{{/*
Expand the name of the chart.
*/}}
{{- define "microframework.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "microframework.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "microframework.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "microframework.labels" -}}
helm.sh/chart: {{ include "microframework.chart" . }}
{{ include "microframework.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: {{ include "microframework.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "microframework.selectorLabels" -}}
app.kubernetes.io/name: {{ include "microframework.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The container port of the probes and of /metrics: the admin listener when there is one.
*/}}
{{- define "microframework.adminPortName" -}}
{{- if .Values.adminPort }}admin{{ else }}http{{ end }}
{{- end }}

{{/*
Refuses values that would deploy something broken or unsafe: a `secrets` value that still holds
its change-me placeholder, and a SQLite database on an emptyDir in prod.
*/}}
{{- define "microframework.validate" -}}
{{- if not .Values.existingSecret }}
{{- $keys := list }}
{{- $flags := list }}
{{- range $key, $value := .Values.secrets }}
{{- if contains "change-me" (toString $value) }}
{{- $example := "..." }}
{{- if eq $key "JWT_SECRET" }}
{{- $example = "\"$(openssl rand -base64 48)\"" }}
{{- else if contains "://" (toString $value) }}
{{- $example = printf "'%s://USER:PASSWORD@HOST:PORT/DB'" (splitList "://" (toString $value) | first) }}
{{- end }}
{{- $keys = append $keys (printf "secrets.%s" $key) }}
{{- $flags = append $flags (printf "--set-string secrets.%s=%s" $key $example) }}
{{- end }}
{{- end }}
{{- if $keys }}
{{- fail (printf "refusing to deploy the change-me placeholder of values.yaml in %s: set real values (%s), or set existingSecret to a Secret you manage (see docs/deployment.md)" (join ", " $keys) (join " " $flags)) }}
{{- end }}
{{- end }}
{{- $url := "" }}
{{- with .Values.config.database }}
{{- $url = toString (.url | default "") }}
{{- end }}
{{- if and (eq .Values.appEnv "prod") (hasPrefix "sqlite:" $url) (not (include "microframework.dataClaim" .)) }}
{{- fail "config.database.url is SQLite but data is an emptyDir, which loses the database whenever the pod is replaced: with appEnv prod keep data.enabled and data.persistence.enabled true (a PersistentVolumeClaim), or set data.existingClaim" }}
{{- end }}
{{- end }}

{{/*
The PersistentVolumeClaim of the data volume: data.existingClaim, or the chart's own. Empty for an
emptyDir (or no data volume).
*/}}
{{- define "microframework.dataClaim" -}}
{{- if .Values.data.enabled }}
{{- if .Values.data.existingClaim }}
{{- .Values.data.existingClaim }}
{{- else if .Values.data.persistence.enabled }}
{{- include "microframework.fullname" . }}-data
{{- end }}
{{- end }}
{{- end }}

{{/*
The Secret the pods read their environment from: an existing one, or the one this chart creates
from .Values.secrets. Empty when there is none.
*/}}
{{- define "microframework.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else if .Values.secrets }}
{{- include "microframework.fullname" . }}
{{- end }}
{{- end }}
