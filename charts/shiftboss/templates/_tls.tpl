{{/*
The generated CA and serving certificate, as JSON {cert, key, ca}.

An upgrade reuses the Secret the release already has (lookup), so certificates do not
rotate on every `helm upgrade` and running workers keep trusting the CA.  `helm
template` (no cluster) generates a fresh pair each time.  Generated once per render and
kept in .Values (the Deployment's checksum and the Secret must agree).
*/}}
{{- define "shiftboss.generatedTLS" -}}
{{- if not (hasKey .Values "generatedTLSCache") }}
{{- $name := include "shiftboss.tlsSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- $data := dict }}
{{- if $existing }}{{ $data = $existing.data | default dict }}{{ end }}
{{- $pair := dict }}
{{- if and (index $data "tls.crt") (index $data "tls.key") (index $data "ca.crt") }}
{{- $pair = dict "cert" (index $data "tls.crt" | b64dec) "key" (index $data "tls.key" | b64dec) "ca" (index $data "ca.crt" | b64dec) }}
{{- else }}
{{- $days := int .Values.tls.validityDays }}
{{- $ca := genCA (printf "%s-ca" (include "shiftboss.fullname" .)) $days }}
{{- $names := include "shiftboss.serviceDNSNames" . | fromJsonArray }}
{{- $ips := list }}
{{- with .Values.workerApi.service.clusterIP }}{{ $ips = list . }}{{ end }}
{{- $cert := genSignedCert (first $names) $ips $names $days $ca }}
{{- $pair = dict "cert" $cert.Cert "key" $cert.Key "ca" $ca.Cert }}
{{- end }}
{{- $_ := set .Values "generatedTLSCache" ($pair | toJson) }}
{{- end }}
{{- .Values.generatedTLSCache }}
{{- end }}
