{{/* The release's full name, cut to a DNS label. */}}
{{- define "paretomerge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "paretomerge.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "paretomerge.labels" -}}
{{ include "paretomerge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "paretomerge.serviceAccountName" -}}
{{- default (include "paretomerge.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "paretomerge.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* Namespaces that get per-namespace objects: the watched ones, or the release's own
     when the operator watches every namespace. */}}
{{- define "paretomerge.namespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- toJson .Values.watchNamespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* The partial spec.execution that fills what runs leave out (PARETOMERGE_RUN_DEFAULTS). */}}
{{- define "paretomerge.runDefaults" -}}
{{- $defaults := dict
    "storage" (dict "claimName" .Values.storage.claimName)
    "resources" (dict "gpuResource" .Values.runDefaults.gpuResource)
    "nodeSelector" .Values.runDefaults.nodeSelector
    "tolerations" .Values.runDefaults.tolerations -}}
{{- toJson $defaults -}}
{{- end -}}
