{{/*
Names, labels and the derived settings every template shares, plus the checks that refuse a
configuration which would deploy but not work (several replicas on SQLite, no auth, a grace period
shorter than the drain).
*/}}

{{- define "task-orchestrator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "task-orchestrator.fullname" -}}
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

{{- define "task-orchestrator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by the server and the migration pods (the NetworkPolicy selects both). */}}
{{- define "task-orchestrator.instanceLabels" -}}
app.kubernetes.io/name: {{ include "task-orchestrator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The server pods' selector. The component label keeps the migration Job's pods out of the Service's
endpoints and the PodDisruptionBudget.
*/}}
{{- define "task-orchestrator.selectorLabels" -}}
{{ include "task-orchestrator.instanceLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "task-orchestrator.commonLabels" -}}
helm.sh/chart: {{ include "task-orchestrator.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: task-orchestrator
{{- end }}

{{- define "task-orchestrator.labels" -}}
{{ include "task-orchestrator.commonLabels" . }}
{{ include "task-orchestrator.selectorLabels" . }}
{{- end }}

{{- define "task-orchestrator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "task-orchestrator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "task-orchestrator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when more than one server pod can run at once. */}}
{{- define "task-orchestrator.multiReplica" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* ORCHESTRATOR_STATELESS_HTTP: the configured value, or true when several replicas can run. */}}
{{- define "task-orchestrator.statelessHttp" -}}
{{- if kindIs "invalid" .Values.config.statelessHttp }}
{{- ternary "true" "false" (eq (include "task-orchestrator.multiReplica" .) "true") }}
{{- else }}
{{- ternary "true" "false" .Values.config.statelessHttp }}
{{- end }}
{{- end }}

{{/* The Secret holding ORCHESTRATOR_DATABASE_URL for the server pods; empty means SQLite in /data. */}}
{{- define "task-orchestrator.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else if .Values.database.url }}
{{- include "task-orchestrator.fullname" . }}
{{- end }}
{{- end }}

{{/* The Secret holding the tokens file; empty when no tokens file is configured. */}}
{{- define "task-orchestrator.tokensSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else if or .Values.auth.tokens .Values.auth.generateBootstrapToken }}
{{- include "task-orchestrator.fullname" . }}
{{- end }}
{{- end }}

{{- define "task-orchestrator.tokensSecretKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKey }}{{ else }}tokens{{ end }}
{{- end }}

{{- define "task-orchestrator.tokensFile" -}}
{{- printf "%s/tokens" (trimSuffix "/" .Values.auth.mountPath) }}
{{- end }}

{{/*
The bootstrap admin token: the one already stored in this release's Secret (so upgrades keep it),
else a new random one. `lookup` answers nothing under `helm template` and `helm lint`, which then
render a fresh token.
*/}}
{{- define "task-orchestrator.bootstrapToken" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "task-orchestrator.fullname" .) }}
{{- if and $secret $secret.data (hasKey $secret.data "bootstrap-token") }}
{{- index $secret.data "bootstrap-token" | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}

{{/* The Secret holding the board's cookie key; empty when the board is off. */}}
{{- define "task-orchestrator.boardSecretName" -}}
{{- if .Values.board.enabled }}
{{- .Values.board.existingSecret | default (include "task-orchestrator.fullname" .) }}
{{- end }}
{{- end }}

{{/* The board's cookie key: the one already in the chart's Secret (kept across upgrades), else a new one. */}}
{{- define "task-orchestrator.boardSecret" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "task-orchestrator.fullname" .) }}
{{- if and $secret $secret.data (hasKey $secret.data "board-secret") }}
{{- index $secret.data "board-secret" | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}

{{/*
ORCHESTRATOR_ALLOWED_HOSTS: the Service's in-cluster DNS names and loopback, config.publicUrl's host (the
Host header its clients send), then config.allowedHosts. The app accepts each bare name with any port.
*/}}
{{- define "task-orchestrator.allowedHosts" -}}
{{- $svc := include "task-orchestrator.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) "localhost" "127.0.0.1" }}
{{- with .Values.config.publicUrl }}
{{- $hosts = append $hosts (urlParse .).host }}
{{- end }}
{{- join "," (uniq (concat $hosts .Values.config.allowedHosts)) }}
{{- end }}

{{/* Seconds the kubelet waits after starting the preStop hook before it kills the container. */}}
{{- define "task-orchestrator.terminationGracePeriodSeconds" -}}
{{- $floor := add (int .Values.preStopSleepSeconds) (int .Values.config.drainTimeoutSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $floor 15 }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* Refuse configurations that would render but could not work. Included by the Deployment. */}}
{{- define "task-orchestrator.validate" -}}
{{- $multi := eq (include "task-orchestrator.multiReplica" .) "true" }}
{{- if not .Values.image.repository }}
{{- fail "set image.repository to where your cluster pulls the image from: no public image is published; build it from the repository's Dockerfile and push it (docker build -t REGISTRY/task-orchestrator:TAG . && docker push REGISTRY/task-orchestrator:TAG), then set image.repository=REGISTRY/task-orchestrator and image.tag=TAG" }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "set database.url or database.existingSecret, not both" }}
{{- end }}
{{- if and $multi (not (include "task-orchestrator.databaseSecretName" .)) }}
{{- fail "several replicas (replicaCount > 1 or autoscaling.enabled) need PostgreSQL: set database.url or database.existingSecret; SQLite serves one replica only" }}
{{- end }}
{{- if and $multi .Values.database.url (not (regexMatch "^postgres(ql)?(\\+asyncpg)?://" .Values.database.url)) }}
{{- fail "several replicas need a PostgreSQL database.url (postgresql://user:password@host:5432/db)" }}
{{- end }}
{{- if and .Values.auth.tokens .Values.auth.existingSecret }}
{{- fail "set auth.tokens or auth.existingSecret, not both" }}
{{- end }}
{{- if not (or (include "task-orchestrator.tokensSecretName" .) .Values.config.jwksUrl .Values.config.allowUnauthenticated) }}
{{- fail "the service refuses to listen without auth: set auth.tokens, auth.existingSecret, auth.generateBootstrapToken or config.jwksUrl, or config.allowUnauthenticated=true on purpose" }}
{{- end }}
{{- if and .Values.config.jwksUrl (not .Values.config.publicUrl) }}
{{- fail "config.jwksUrl needs config.publicUrl, the URL clients use (e.g. https://orchestrator.example.com): without it 401 answers and the default JWT audience name http://127.0.0.1:8000/mcp, and the service refuses to start" }}
{{- end }}
{{- $floor := add (int .Values.preStopSleepSeconds) (int .Values.config.drainTimeoutSeconds) }}
{{- if le (int (include "task-orchestrator.terminationGracePeriodSeconds" .)) $floor }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + config.drainTimeoutSeconds (%d), or in-flight calls are killed mid-drain" .Values.terminationGracePeriodSeconds $floor) }}
{{- end }}
{{- end }}
