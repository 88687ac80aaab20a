{{/* Names and labels. */}}
{{- define "codexion.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "codexion.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "codexion.selectorLabels" -}}
app.kubernetes.io/name: {{ include "codexion.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "codexion.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "codexion.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "codexion.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "codexion.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "codexion.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Whether the application database is PostgreSQL (else SQLite on the volume). */}}
{{- define "codexion.postgres" -}}
{{- if or .Values.database.url .Values.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the signing keys. */}}
{{- define "codexion.keysSecret" -}}
{{- default (printf "%s-keys" (include "codexion.fullname" .)) .Values.signingKeys.existingSecret -}}
{{- end -}}

{{/* Checks that stop a release that could not work. */}}
{{- define "codexion.validate" -}}
{{- if and (not (include "codexion.postgres" .)) (gt (int .Values.replicaCount) 1) -}}
{{- fail "replicaCount > 1 needs PostgreSQL (database.url or database.existingSecret): SQLite is one file on one volume" -}}
{{- end -}}
{{- if and (not (include "codexion.postgres" .)) (not .Values.persistence.enabled) -}}
{{- fail "SQLite (no database.url) keeps the records on the volume: set persistence.enabled=true or give database.url" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) .Values.persistence.enabled (not (has "ReadWriteMany" .Values.persistence.accessModes)) -}}
{{- fail "several replicas cannot share a ReadWriteOnce volume: set persistence.enabled=false (PostgreSQL holds the records) or accessModes [ReadWriteMany]" -}}
{{- end -}}
{{- if not .Values.signingKeys.existingSecret -}}
{{- range $name, $key := dict "signingKeys.audit" .Values.signingKeys.audit "signingKeys.token" .Values.signingKeys.token -}}
{{- if not (regexMatch "^[0-9a-fA-F]{64}$" (toString $key)) -}}
{{- fail (printf "%s must be 64 hex characters (openssl rand -hex 32), or name signingKeys.existingSecret" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.signingKeys.existingSecret (or .Values.signingKeys.audit .Values.signingKeys.token) -}}
{{- fail "give either signingKeys.existingSecret or the keys themselves, not both" -}}
{{- end -}}
{{- end -}}

{{/* The container environment shared by the server and the migration Job. */}}
{{- define "codexion.env" -}}
- name: PREFIQ_ENV
  value: {{ .Values.environment | quote }}
- name: PREFIQ__SERVER__HOST
  value: "0.0.0.0"
- name: PREFIQ__SERVER__PORT
  value: "4949"
- name: PREFIQ__LOG__FORMAT
  value: json
- name: PREFIQ__AUDIT__SIGNING_KEY_FILE
  value: /run/secrets/codexion/audit-ed25519.key
- name: PREFIQ__CORTEX__SIGNING_KEY_FILE
  value: /run/secrets/codexion/auth-ed25519.key
- name: PREFIQ__DATABASE__MAX_CONNECTIONS
  value: {{ .Values.database.maxConnections | quote }}
{{- if include "codexion.postgres" . }}
- name: PREFIQ__DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ default (printf "%s-database" (include "codexion.fullname" .)) .Values.database.existingSecret }}
      key: {{ if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
{{- end }}
{{- with .Values.events.natsUrl }}
- name: PREFIQ__EVENTS__NATS_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.cache.redisUrl }}
- name: PREFIQ__CACHE__REDIS_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.telemetry.otlpEndpoint }}
- name: PREFIQ__TELEMETRY__OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes shared by the server and the migration Job: config, keys, /tmp. */}}
{{- define "codexion.volumes" -}}
- name: config
  configMap:
    name: {{ include "codexion.fullname" . }}
- name: keys
  secret:
    secretName: {{ include "codexion.keysSecret" . }}
    defaultMode: 0400
    items:
      - {key: audit-ed25519.key, path: audit-ed25519.key}
      - {key: auth-ed25519.key, path: auth-ed25519.key}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "codexion.volumeMounts" -}}
- name: config
  mountPath: /srv/codexion/config
  readOnly: true
- name: keys
  mountPath: /run/secrets/codexion
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /srv/codexion/data
{{- end -}}
