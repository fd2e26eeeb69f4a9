{{/*
Chart name, cut to 63 characters because Kubernetes label values and DNS
labels allow no more.
*/}}
{{- define "runai-secrets-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-qualified name for every object the chart creates. The release name
is used alone when it already contains the chart name, so that
`helm install runai-secrets-webhook ...` does not repeat it.
*/}}
{{- define "runai-secrets-webhook.fullname" -}}
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
Name of the propagation controller's objects. The suffix is kept whole by
cutting the base name first.
*/}}
{{- define "runai-secrets-webhook.propagationName" -}}
{{- printf "%s-propagation" (include "runai-secrets-webhook.fullname" . | trunc 51 | trimSuffix "-") }}
{{- end }}

{{/*
Labels on every object; "chart" carries the version so that an upgrade can
be traced in `kubectl get -o yaml`.
*/}}
{{- define "runai-secrets-webhook.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "runai-secrets-webhook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: runai-secrets-webhook
{{- end }}

{{/*
Labels that select the webhook's pods. They are immutable in a Deployment's
selector, so nothing that changes between upgrades may appear here.
*/}}
{{- define "runai-secrets-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runai-secrets-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels that select the propagation controller's pods. The component label
keeps them apart from the webhook's pods, so the Service and the
PodDisruptionBudget never pick them up.
*/}}
{{- define "runai-secrets-webhook.propagationSelectorLabels" -}}
{{ include "runai-secrets-webhook.selectorLabels" . }}
app.kubernetes.io/component: propagation
{{- end }}

{{/*
Opt-out label that the webhook's objectSelector honours. The chart puts it on
its own pods too, so that the webhook is never called for the pods that
serve it: a webhook that must answer for its own replacement pods cannot
start again once every replica is gone.
*/}}
{{- define "runai-secrets-webhook.optOutLabel" -}}
{{ printf "%s/inject" .Values.annotationPrefix }}: "false"
{{- end }}

{{/*
Service account of the webhook pods.
*/}}
{{- define "runai-secrets-webhook.serviceAccountName" -}}
{{- default (include "runai-secrets-webhook.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
Name of the webhook configurations, which the self-managed certificate code
patches by this name. Like the ClusterRole, they are cluster-scoped, so two
releases with the same name in different namespaces conflict, and Helm
refuses the second install.
*/}}
{{- define "runai-secrets-webhook.webhookConfigurationName" -}}
{{- include "runai-secrets-webhook.fullname" . }}
{{- end }}

{{/*
Name of the Secret that holds the serving certificate and key in the
certManager and secret modes.
*/}}
{{- define "runai-secrets-webhook.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "secret" }}
{{- required "certificates.secret.name is required when certificates.mode is secret" .Values.certificates.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "runai-secrets-webhook.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret that holds the webhook's own CA in the selfManaged mode.
*/}}
{{- define "runai-secrets-webhook.caSecretName" -}}
{{- default (printf "%s-ca" (include "runai-secrets-webhook.fullname" .)) .Values.certificates.selfManaged.caSecretName }}
{{- end }}

{{/*
Image reference; a digest, when set, pins the image whatever the tag says.
*/}}
{{- define "runai-secrets-webhook.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Namespaces the webhook is never called for: its own, whose pods must start
without it, and the ones in webhook.namespaceSelector.excludeNamespaces.
*/}}
{{- define "runai-secrets-webhook.excludedNamespaces" -}}
{{- $excluded := list .Release.Namespace }}
{{- range .Values.webhook.namespaceSelector.excludeNamespaces }}
{{- $excluded = append $excluded . }}
{{- end }}
{{- toJson (uniq $excluded) }}
{{- end }}

{{/*
Content of the --workload-kinds-file: workloadKinds without the "resource"
field, which only the webhook configuration's rules need.
*/}}
{{- define "runai-secrets-webhook.workloadKindsFile" -}}
{{- $kinds := list }}
{{- range .Values.workloadKinds }}
{{- $kinds = append $kinds (omit . "resource") }}
{{- end }}
{{- toYaml (dict "kinds" $kinds) }}
{{- end }}
