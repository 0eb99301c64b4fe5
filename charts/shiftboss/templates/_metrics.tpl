{{/* How Prometheus scrapes /metrics on the worker API port (TLS: verified against the
worker API's CA, under the Service's name, which the certificate carries). */}}
{{- define "shiftboss.scrapeEndpoint" -}}
port: worker-api
path: /metrics
interval: {{ .interval }}
{{- if .root.Values.tls.enabled }}
scheme: https
tlsConfig:
  serverName: {{ include "shiftboss.fullname" .root }}.{{ .root.Release.Namespace }}.svc
  ca:
    secret:
      name: {{ include "shiftboss.tlsSecretName" .root }}
      key: ca.crt
{{- else }}
scheme: http
{{- end }}
{{- end }}
