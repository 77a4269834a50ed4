{{/*
helm/hoheit/templates/_helpers.tpl: names, labels, images, the addresses of Kafka, MQTT and the
database (bundled or external), and the environment every Hoheit container shares.
*/}}

{{- define "hoheit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hoheit.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "hoheit.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "hoheit.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; "component" is set per object. */}}
{{- define "hoheit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hoheit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hoheit
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "hoheit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hoheit.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hoheit.componentLabels" -}}
{{ include "hoheit.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image of one component: (dict "root" $ "component" "api"). */}}
{{- define "hoheit.image" -}}
{{- $v := .root.Values.image -}}
{{- $repo := printf "%s%s" $v.repositoryPrefix .component -}}
{{- if $v.registry }}{{ $repo = printf "%s/%s" $v.registry $repo }}{{ end -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $v.tag) -}}
{{- end -}}

{{- define "hoheit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hoheit.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Addresses: the bundled services, or the external ones (which must then be given). */}}
{{- define "hoheit.mqttHost" -}}
{{- if .Values.mqtt.bundled.enabled -}}
{{- printf "%s-mosquitto" (include "hoheit.fullname" .) -}}
{{- else -}}
{{- required "mqtt.host is required when mqtt.bundled.enabled is false" .Values.mqtt.host -}}
{{- end -}}
{{- end -}}

{{- define "hoheit.kafkaBootstrap" -}}
{{- if .Values.kafka.bundled.enabled -}}
{{- printf "%s-kafka:9092" (include "hoheit.fullname" .) -}}
{{- else -}}
{{- required "kafka.bootstrap is required when kafka.bundled.enabled is false" .Values.kafka.bootstrap -}}
{{- end -}}
{{- end -}}

{{- define "hoheit.databaseHost" -}}
{{- if .Values.database.bundled.enabled -}}
{{- printf "%s-timescaledb" (include "hoheit.fullname" .) -}}
{{- else -}}
{{- required "database.host is required when database.bundled.enabled is false (or give database.existingSecret.urlKey)" .Values.database.host -}}
{{- end -}}
{{- end -}}

{{/* The Secret the chart makes (API token, database password, MQTT passwords). */}}
{{- define "hoheit.secretName" -}}
{{- printf "%s-secrets" (include "hoheit.fullname" .) -}}
{{- end -}}

{{/* Environment of every Hoheit container: (dict "root" $ "component" "api"). */}}
{{- define "hoheit.env" -}}
{{- $root := .root -}}
{{- $db := $root.Values.database -}}
- name: OTEL_SERVICE_NAME
  value: {{ printf "hoheit-%s" .component | quote }}
{{- if and $db.existingSecret.name $db.existingSecret.urlKey }}
- name: HOHEIT_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $db.existingSecret.name }}
      key: {{ $db.existingSecret.urlKey }}
{{- else }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "hoheit.secretName" $root) $db.existingSecret.name }}
      key: {{ ternary $db.existingSecret.passwordKey "database-password" (not (empty $db.existingSecret.name)) }}
- name: HOHEIT_DATABASE_URL
  value: {{ printf "postgres://%s:$(DATABASE_PASSWORD)@%s:%d/%s" $db.user (include "hoheit.databaseHost" $root) (int $db.port) $db.name | quote }}
{{- end }}
{{- end -}}

{{/*
An MQTT login as the variables PREFIX_USERNAME and PREFIX_PASSWORD: (dict "root" $ "login" "ingest"
"prefix" "HOHEIT_MQTT"). Logins: "ingest" (mqtt.*, reads every organisation's topics) and "gateway"
(mqtt.gateway.*, the simulator, writes them). The password comes from the given existingSecret or
from the chart's Secret (key mqtt-password or mqtt-gateway-password).
*/}}
{{- define "hoheit.mqttLogin" -}}
{{- $m := .root.Values.mqtt -}}
{{- $login := $m -}}
{{- $key := "mqtt-password" -}}
{{- if eq .login "gateway" }}{{ $login = $m.gateway }}{{ $key = "mqtt-gateway-password" }}{{ end -}}
{{- if eq .login "admin" }}{{ $login = $m.admin }}{{ $key = "mqtt-admin-password" }}{{ end -}}
{{- if $login.existingSecret.name }}{{ $key = $login.existingSecret.passwordKey }}{{ end -}}
- name: {{ .prefix }}_USERNAME
  value: {{ required (printf "the MQTT user name of the %s login is required (mqtt.username, mqtt.gateway.username)" .login) $login.username | quote }}
- name: {{ .prefix }}_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "hoheit.secretName" .root) $login.existingSecret.name }}
      key: {{ $key }}
{{- end -}}

{{/* "true" when the broker's dynamic security admin is configured (see values: mqtt.admin). */}}
{{- define "hoheit.brokerAdmin" -}}
{{- $a := .Values.mqtt.admin -}}
{{- if and $a.username (or .Values.mqtt.bundled.enabled $a.password $a.existingSecret.name) }}true{{ end -}}
{{- end -}}

{{/* The API token, for the API and the simulator. */}}
{{- define "hoheit.apiToken" -}}
- name: HOHEIT_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ default (include "hoheit.secretName" .) .Values.api.existingSecret.name }}
      key: {{ ternary .Values.api.existingSecret.tokenKey "api-token" (not (empty .Values.api.existingSecret.name)) }}
{{- end -}}

{{/* Pod-level settings shared by the Hoheit deployments. */}}
{{- define "hoheit.podSpec" -}}
serviceAccountName: {{ include "hoheit.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template annotations: restart pods when configuration or secrets change. */}}
{{- define "hoheit.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
