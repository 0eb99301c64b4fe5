{{/* Names, labels and the values several templates derive. */}}

{{- define "shiftboss.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shiftboss.fullname" -}}
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

{{- define "shiftboss.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "shiftboss.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shiftboss
{{- end }}

{{/* The operator pods: every replica, leader or standby. */}}
{{- define "shiftboss.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shiftboss.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "shiftboss.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shiftboss.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "shiftboss.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The namespaces served: empty means every namespace. Checks the scope's values. */}}
{{- define "shiftboss.watchNamespaces" -}}
{{- if eq .Values.rbac.scope "namespaced" }}
{{- if not .Values.watchNamespaces }}
{{- fail "watchNamespaces: rbac.scope is namespaced, so list the namespaces to serve (e.g. --set 'watchNamespaces={team-a,team-b}')" }}
{{- end }}
{{- join "," .Values.watchNamespaces }}
{{- else if .Values.watchNamespaces }}
{{- fail "watchNamespaces: only for rbac.scope=namespaced; with rbac.scope=cluster every namespace is served" }}
{{- end }}
{{- end }}

{{/* The Secret with tls.crt, tls.key and ca.crt that the operator mounts. */}}
{{- define "shiftboss.tlsSecretName" -}}
{{- default (printf "%s-worker-api-tls" (include "shiftboss.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{- define "shiftboss.tlsSource" -}}
{{- if not .Values.tls.enabled }}off
{{- else if and .Values.tls.secretName .Values.tls.certManager.enabled }}
{{- fail "tls: set tls.secretName (your own Secret) or tls.certManager.enabled, not both" }}
{{- else if .Values.tls.secretName }}secret
{{- else if .Values.tls.certManager.enabled }}cert-manager
{{- else }}generated
{{- end }}
{{- end }}

{{/* DNS names of the worker API Service: a certificate's SANs. */}}
{{- define "shiftboss.serviceDNSNames" -}}
{{- $svc := include "shiftboss.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{- define "shiftboss.workerApiUrl" -}}
{{- if .Values.workerApi.url }}
{{- .Values.workerApi.url }}
{{- else }}
{{- printf "%s://%s.%s.svc:%v" (ternary "https" "http" .Values.tls.enabled) (include "shiftboss.fullname" .) .Release.Namespace .Values.workerApi.service.port }}
{{- end }}
{{- end }}

{{- define "shiftboss.scheme" -}}
{{- ternary "HTTPS" "HTTP" .Values.tls.enabled }}
{{- end }}

{{/* Objects outside the release namespace (cluster-scoped, or in `default`): the release
namespace in the name, so that shards installed in several namespaces never collide. */}}
{{- define "shiftboss.globalName" -}}
{{- printf "%s-%s" .Release.Namespace (include "shiftboss.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
