{{/* Names, labels and the settings shared by the operator, workers and the node agent. */}}

{{- define "pixcrawler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pixcrawler.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "pixcrawler.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "pixcrawler.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pixcrawler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "pixcrawler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: pixcrawler-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component (operator, node-agent, redis). */}}
{{- define "pixcrawler.selector" -}}
app.kubernetes.io/name: {{ include "pixcrawler.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "pixcrawler.operatorServiceAccount" -}}{{ include "pixcrawler.fullname" . }}{{- end -}}
{{- define "pixcrawler.workerServiceAccount" -}}{{ include "pixcrawler.fullname" . }}-worker{{- end -}}
{{- define "pixcrawler.redisName" -}}{{ include "pixcrawler.fullname" . }}-redis{{- end -}}

{{/* The Secret whose keys become operator and worker environment (storage credentials). */}}
{{- define "pixcrawler.envSecret" -}}
{{- if .Values.storage.azure.existingSecret -}}
{{- .Values.storage.azure.existingSecret -}}
{{- else -}}
{{- include "pixcrawler.fullname" . }}-env
{{- end -}}
{{- end -}}

{{- define "pixcrawler.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}
{{- define "pixcrawler.workerImage" -}}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) -}}
{{- end -}}

{{/* PIXCRAWLER_NAMESPACE: "" (all namespaces) for "*", else the one namespace watched. */}}
{{- define "pixcrawler.watchNamespace" -}}
{{- if eq .Values.operator.watchNamespace "*" -}}
{{- else -}}
{{- default .Release.Namespace .Values.operator.watchNamespace -}}
{{- end -}}
{{- end -}}

{{- define "pixcrawler.workloadIdentity" -}}
{{- if eq .Values.storage.azure.auth "workloadIdentity" }}true{{ end -}}
{{- end -}}

{{/* The Redis URL, without the password: that comes from its Secret as PIXCRAWLER_REDIS_PASSWORD,
     and reaches worker pods as a secretKeyRef, never as text in a Job spec. */}}
{{- define "pixcrawler.redisUrl" -}}
{{- if eq .Values.redis.mode "bundled" -}}
{{- printf "redis://%s.%s.svc:6379/0" (include "pixcrawler.redisName" .) .Release.Namespace -}}
{{- else -}}
{{- .Values.redis.external.url -}}
{{- end -}}
{{- end -}}

{{- define "pixcrawler.redisEnv" -}}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.passwordSecret.name }}
- name: PIXCRAWLER_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.passwordSecret.name }}
      key: {{ .Values.redis.external.passwordSecret.key }}
{{- end }}
- name: PIXCRAWLER_REDIS_URL
  value: {{ include "pixcrawler.redisUrl" . | quote }}
- name: PIXCRAWLER_REDIS_PREFIX
  value: {{ .Values.redis.prefix | quote }}
{{- end -}}

{{/* The port workers and the node agent reach Redis on (NetworkPolicy). */}}
{{- define "pixcrawler.redisPort" -}}
{{- if eq .Values.redis.mode "bundled" -}}
6379
{{- else -}}
{{- $url := urlParse .Values.redis.external.url -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- if gt (len $hostPort) 1 -}}{{ last $hostPort }}{{- else if eq $url.scheme "rediss" -}}6380{{- else -}}6379{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod Security Standards "restricted" for every container. */}}
{{- define "pixcrawler.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "pixcrawler.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Namespaces that need the worker ServiceAccount and env Secret: the release's and the watched one. */}}
{{- define "pixcrawler.workerNamespaces" -}}
{{- $watched := include "pixcrawler.watchNamespace" . -}}
{{- list .Release.Namespace (default .Release.Namespace $watched) | uniq | toJson -}}
{{- end -}}

{{/* search.rates as provider=rate,... (sorted by provider, so renders are stable). */}}
{{- define "pixcrawler.searchRates" -}}
{{- $pairs := list -}}
{{- range $provider, $rate := .Values.search.rates -}}
{{- $pairs = append $pairs (printf "%s=%v" $provider $rate) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
