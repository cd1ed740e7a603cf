{{/* The webhook's namespace: namespace.name, else the release's. */}}
{{- define "model-cache.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name -}}
{{- end -}}

{{/* The image reference: repository, then the digest or the tag (appVersion by default). */}}
{{- define "model-cache.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "model-cache.downloaderImage" -}}
{{- default (include "model-cache.image" .) .Values.downloaderImage -}}
{{- end -}}

{{/* Labels on every object. part-of is what manifests/ sets too; the rest is
     Helm's bookkeeping (the agreement test ignores it). Never in selectors:
     an upgrade cannot change a Deployment's selector. */}}
{{- define "model-cache.labels" -}}
app.kubernetes.io/part-of: model-cache
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "model-cache.selectorLabels" -}}
app.kubernetes.io/name: model-cache
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "model-cache.selfManaged" -}}
{{- if eq .Values.certificates.mode "self-managed" -}}true{{- else if eq .Values.certificates.mode "cert-manager" -}}{{- else -}}
{{- fail (printf "certificates.mode must be self-managed or cert-manager, not %q" .Values.certificates.mode) -}}
{{- end -}}
{{- end -}}

{{/* The pod and workload webhooks' namespaceSelector: never kube-system or
     the webhook's own namespace, plus what values.namespaceSelector adds. */}}
{{- define "model-cache.namespaceSelector" -}}
{{- with .Values.namespaceSelector.matchLabels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: [kube-system, {{ include "model-cache.namespace" . }}]
{{- with .Values.namespaceSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "model-cache.clientConfig" -}}
service:
  name: model-cache
  namespace: {{ include "model-cache.namespace" .root }}
  path: {{ .path }}
  port: 443
{{- end -}}

{{- define "model-cache.podRules" -}}
- apiGroups: [""]
  apiVersions: [v1]
  operations: [CREATE]
  resources: [pods]
  scope: Namespaced
{{- end -}}

{{/* The API server sends only pods that ask for a model (and no mirror pods
     of static pods): every other pod is admitted without a call. */}}
{{- define "model-cache.podMatchConditions" -}}
- name: asks-for-a-model
  expression: "has(object.metadata.annotations) && 'model.cache/name' in object.metadata.annotations"
- name: not-a-mirror-pod
  expression: "!has(object.metadata.annotations) || !('kubernetes.io/config.mirror' in object.metadata.annotations)"
{{- end -}}

{{- define "model-cache.certManagerAnnotations" -}}
{{- if not (include "model-cache.selfManaged" .) }}
annotations:
  cert-manager.io/inject-ca-from: {{ include "model-cache.namespace" . }}/model-cache-serving
{{- end }}
{{- end -}}
