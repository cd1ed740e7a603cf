{{/* The name of every object: fullnameOverride, else model-cache. Not the
     release's name: the webhook is one per cluster, and the docs' commands
     name its objects. */}}
{{- define "model-cache.fullname" -}}
{{- default "model-cache" .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* The webhook's ServiceAccount: serviceAccount.name, else the fullname. */}}
{{- define "model-cache.serviceAccountName" -}}
{{- default (include "model-cache.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

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
     Helm's bookkeeping (the agreement test ignores it) and commonLabels. Never
     in selectors: an upgrade cannot change a Deployment's selector. The
     chart's own keys win over commonLabels (the schema refuses them there). */}}
{{- define "model-cache.labels" -}}
{{- $own := dict
  "app.kubernetes.io/part-of" "model-cache"
  "app.kubernetes.io/managed-by" .Release.Service
  "app.kubernetes.io/instance" .Release.Name
  "app.kubernetes.io/version" .Chart.AppVersion
  "helm.sh/chart" (printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_") -}}
{{- toYaml (merge $own .Values.commonLabels) -}}
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

{{/* objectSelector of the pod and workload webhooks, when one is set. */}}
{{- define "model-cache.objectSelector" -}}
{{- if or .Values.objectSelector.matchLabels .Values.objectSelector.matchExpressions }}
objectSelector:
  {{- toYaml .Values.objectSelector | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "model-cache.clientConfig" -}}
service:
  name: {{ include "model-cache.fullname" .root }}
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
  cert-manager.io/inject-ca-from: {{ include "model-cache.namespace" . }}/{{ include "model-cache.fullname" . }}-serving
{{- end }}
{{- end -}}

{{/* "true" when the PodDisruptionBudget is made: enabled, and unable to
     block a drain. maxUnavailable (from 1, or above 0%) never blocks one;
     minAvailable blocks one when it keeps every replica. */}}
{{- define "model-cache.pdbMade" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- $replicas := int .Values.replicas -}}
{{- if $pdb.enabled -}}
{{- if not (kindIs "invalid" $pdb.maxUnavailable) -}}true
{{- else if not (kindIs "invalid" $pdb.minAvailable) -}}
{{- $min := $pdb.minAvailable -}}
{{- $kept := 0 -}}
{{- if kindIs "string" $min -}}
{{- $pct := trimSuffix "%" $min | float64 -}}
{{- $kept = int (ceil (divf (mulf $replicas $pct) 100)) -}}
{{- else -}}
{{- $kept = int $min -}}
{{- end -}}
{{- if lt $kept $replicas -}}true{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The model `helm test` asks for: tests.model, else the first model of the
     test namespace's policy file, else of _default.yaml, among the chart's
     policy files (inline or the examples). Empty when none is known. */}}
{{/* The policy files the chart installs, as {name: text}: policies.files, else the examples; {} with existingConfigMap. */}}
{{- define "model-cache.policyTexts" -}}
{{- $texts := dict -}}
{{- if not .Values.policies.existingConfigMap -}}
{{- if .Values.policies.files -}}
{{- range $name, $content := .Values.policies.files -}}
{{- $_ := set $texts $name (kindIs "string" $content | ternary $content (toYaml $content)) -}}
{{- end -}}
{{- else -}}
{{- range $path, $_ := .Files.Glob "files/policies/*.yaml" -}}
{{- $_ := set $texts (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $texts -}}
{{- end -}}

{{/* helm test's namespace: tests.namespace, else `default` when _default.yaml
     has models, else the first <namespace>.yaml that has some. */}}
{{- define "model-cache.testNamespace" -}}
{{- if .Values.tests.namespace -}}
{{- .Values.tests.namespace -}}
{{- else -}}
{{- $texts := include "model-cache.policyTexts" . | fromYaml -}}
{{- $found := "" -}}
{{- if (fromYaml (get $texts "_default.yaml" | default "{}")).models -}}
{{- $found = "default" -}}
{{- else -}}
{{- range $file := keys $texts | sortAlpha -}}
{{- if and (not $found) (ne $file "_default.yaml") (fromYaml (get $texts $file)).models -}}
{{- $found = trimSuffix ".yaml" $file -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $found | default "default" -}}
{{- end -}}
{{- end -}}

{{/* helm test's model: tests.model, else the first model of the test
     namespace's file, else of _default.yaml. */}}
{{- define "model-cache.testModel" -}}
{{- if .Values.tests.model -}}
{{- .Values.tests.model -}}
{{- else -}}
{{- $texts := include "model-cache.policyTexts" . | fromYaml -}}
{{- $found := "" -}}
{{- range $file := list (printf "%s.yaml" (include "model-cache.testNamespace" $)) "_default.yaml" -}}
{{- if and (not $found) (hasKey $texts $file) -}}
{{- $models := (fromYaml (get $texts $file)).models | default dict -}}
{{- if $models -}}{{- $found = keys $models | sortAlpha | first -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $found -}}
{{- end -}}
{{- end -}}

{{- define "model-cache.agentSelectorLabels" -}}
app.kubernetes.io/name: model-cache
app.kubernetes.io/component: agent
{{- end -}}

{{/* The agent's namespace: its hostPath needs the privileged Pod Security
     level, which the webhook's (restricted) namespace must not have. */}}
{{- define "model-cache.agentNamespace" -}}
{{- .Values.agent.namespace.name -}}
{{- end -}}
