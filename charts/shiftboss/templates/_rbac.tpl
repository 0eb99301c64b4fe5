{{/* What the operator does in each namespace it serves (a ClusterRole's rules in cluster
scope, a Role's in each watched namespace). */}}
{{- define "shiftboss.servedRules" -}}
# WorkerPools: listed at start, then watched (Kopf) to reconcile their pods.
- apiGroups: [shiftboss.io]
  resources: [workerpools]
  verbs: [list, watch]
# WorkerPool status: workers desired/ready/busy, conditions (merge patches).
- apiGroups: [shiftboss.io]
  resources: [workerpools/status]
  verbs: [patch]
# Jobs: paged through at start and watched (the dispatcher's queues), read afresh after
# a conflicting status write, deleted after ttlSecondsAfterFinished; created and cancelled
# (spec.cancel) for callers of /v1/jobs, each first allowed by a SubjectAccessReview.
- apiGroups: [shiftboss.io]
  resources: [jobs]
  verbs: [get, list, watch, delete, create, patch]
# Job status: every transition, with a resourceVersion precondition (merge patches).
- apiGroups: [shiftboss.io]
  resources: [jobs/status]
  verbs: [patch]
# Worker pods: created and deleted for their pools, listed and watched to follow them,
# read to tie a worker's token to its pod.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
# Events about WorkerPools and Jobs: created, then counted up (patch); read when one
# existed before this replica knew of it.
- apiGroups: [""]
  resources: [events]
  verbs: [get, create, patch]
{{- end }}

{{/* A claim Lease of the given name: created once, then read and renewed (patch). */}}
{{- define "shiftboss.claimRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [{{ . }}]
  verbs: [get, patch]
{{- end }}

{{/* A Role and its RoleBinding: dict name, namespace, why (a comment), labels, subject,
rules (YAML). */}}
{{- define "shiftboss.role" }}
---
# {{ .why }}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}
  namespace: {{ .namespace }}
  labels:
    {{- .labels | nindent 4 }}
rules:
  {{- .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}
  namespace: {{ .namespace }}
  labels:
    {{- .labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}
subjects:
  - {{ toJson .subject }}
{{- end }}
