{{/* Chart name, overridable. */}}
{{- define "flusso.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already says flusso. */}}
{{- define "flusso.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "flusso.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "flusso.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "flusso.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flusso.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "flusso.labels" -}}
{{ include "flusso.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "flusso.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "flusso.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{- define "flusso.configMapName" -}}
{{- .Values.config.existingConfigMap | default (printf "%s-config" (include "flusso.fullname" .)) }}
{{- end }}

{{- define "flusso.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-env" (include "flusso.fullname" .)) }}
{{- end }}

{{- define "flusso.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-state" (include "flusso.fullname" .)) }}
{{- end }}
