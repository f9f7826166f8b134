{{- define "cairn.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cairn.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cairn.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cairn.serviceAccountName" -}}
{{- default (include "cairn.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "cairn.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* A TOML value: strings quoted, numbers and booleans as they are. */}}
{{- define "cairn.toml" -}}
{{- if kindIs "string" . -}}{{ . | quote }}{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/* [repository] of an agent's configuration file. */}}
{{- define "cairn.repositoryToml" -}}
{{- required "repository.url is required (s3:BUCKET/PREFIX)" .Values.repository.url | quote | printf "[repository]\nurl = %s" }}
password-file = "/etc/cairn/repository/password"
{{- with .Values.repository.s3 }}
{{- if or .endpoint .region .virtualHosted }}
[repository.s3]
{{- with .endpoint }}
endpoint = {{ . | quote }}
{{- end }}
{{- with .region }}
region = {{ . | quote }}
{{- end }}
{{- if .virtualHosted }}
virtual-hosted = true
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The environment and volumes every agent pod has: its host name, the
passphrase, S3 credentials. */}}
{{- define "cairn.env" -}}
- name: CAIRN_HOST
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: CAIRN_LOG_FORMAT
  value: json
{{- /* The pod, for the audit trail's records (format §7.3). */}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- include "cairn.s3Env" .Values.s3Credentials.secretName }}
{{- end -}}

{{/* AWS credentials from the Secret named (nothing when it is empty). */}}
{{- define "cairn.s3Env" -}}
{{- with . }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- end -}}
