{{/*
The labels of every object.
*/}}
{{- define "staticlet.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end }}

{{/*
The prefix of the objects' names: staticlet-<release>, or the release's name when it starts with
staticlet already.
*/}}
{{- define "staticlet.fullname" -}}
{{- if hasPrefix "staticlet" .Release.Name }}{{ .Release.Name }}{{ else }}{{ printf "staticlet-%s" .Release.Name }}{{ end -}}
{{- end }}

{{/*
The bootstrap token as JSON: {"id", "secret", "expiration"}. Worked out once per render and kept
in .Values (which every template of the chart shares), so the Secret and NOTES.txt show the same
token even when it is new. The id is bootstrapToken.id or six hex digits of a hash of the
release's namespace and name, so the Secret's name is known before it exists; the secret and the
expiration are read back from that Secret when it exists (`helm upgrade` keeps the token), unless
bootstrapToken.secret is set. `lookup` finds nothing under `helm template` and `helm lint`, which
then show a new random token.
*/}}
{{- define "staticlet.token" -}}
{{- if not (hasKey .Values "_staticletToken") -}}
{{- $t := .Values.bootstrapToken -}}
{{- $id := $t.id | default (sha256sum (printf "%s/%s" .Release.Namespace .Release.Name) | trunc 6) -}}
{{- $secret := $t.secret | default "" -}}
{{- $expiration := "" -}}
{{- $existing := lookup "v1" "Secret" "kube-system" (printf "bootstrap-token-%s" $id) -}}
{{- if and $existing (eq (index $existing "type" | default "") "bootstrap.kubernetes.io/token") -}}
{{- with index $existing "data" -}}
{{- if not $secret }}{{ $secret = index . "token-secret" | default "" | b64dec }}{{ end -}}
{{- $expiration = index . "expiration" | default "" | b64dec -}}
{{- end -}}
{{- end -}}
{{- if not $secret }}{{ $secret = randAlphaNum 16 | lower }}{{ end -}}
{{- if and (not $expiration) $t.ttl -}}
{{- $expiration = dateInZone "2006-01-02T15:04:05Z07:00" (now | dateModify (printf "+%s" $t.ttl)) "UTC" -}}
{{- end -}}
{{- $_ := set .Values "_staticletToken" (dict "id" $id "secret" $secret "expiration" $expiration) -}}
{{- end -}}
{{- index .Values "_staticletToken" | toJson -}}
{{- end }}

{{/*
kube-public/cluster-info's kubeconfig (kubeadm publishes it) as an object, or nothing.
*/}}
{{- define "staticlet.clusterInfo" -}}
{{- $ci := lookup "v1" "ConfigMap" "kube-public" "cluster-info" -}}
{{- if and $ci (index $ci "data") -}}
{{- with index $ci "data" "kubeconfig" -}}
{{- $kc := fromYaml . -}}
{{- with index $kc "clusters" }}{{ index (first .) "cluster" | toJson }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
The API server's URL for the bootstrap kubeconfig: cluster.server, else cluster-info's.
*/}}
{{- define "staticlet.server" -}}
{{- if .Values.cluster.server -}}
{{ .Values.cluster.server }}
{{- else -}}
{{- $ci := include "staticlet.clusterInfo" . | default "{}" | fromJson -}}
{{- index $ci "server" | default "https://<API server address>:6443" -}}
{{- end -}}
{{- end }}

{{/*
The cluster CA (base64 of its PEM): cluster.caData, else cluster-info's, else the API server's
ConfigMap kube-system/kube-root-ca.crt (kube-controller-manager publishes it in every namespace).
*/}}
{{- define "staticlet.caData" -}}
{{- if .Values.cluster.caData -}}
{{ .Values.cluster.caData }}
{{- else -}}
{{- $ci := include "staticlet.clusterInfo" . | default "{}" | fromJson -}}
{{- $root := lookup "v1" "ConfigMap" "kube-system" "kube-root-ca.crt" -}}
{{- if index $ci "certificate-authority-data" -}}
{{ index $ci "certificate-authority-data" }}
{{- else if and $root (index $root "data") (index $root "data" "ca.crt") -}}
{{ index $root "data" "ca.crt" | b64enc }}
{{- else -}}
<base64 of the cluster CA's PEM>
{{- end -}}
{{- end -}}
{{- end }}
