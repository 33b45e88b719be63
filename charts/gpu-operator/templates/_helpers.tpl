{{/*
Names are fixed, as in NVIDIA's chart: one operator per cluster (the ClusterPolicy is a singleton).
*/}}
{{- define "gpu-operator.name" -}}gpu-operator{{- end -}}

{{- define "gpu-operator.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Labels of every object of the chart. */}}
{{- define "gpu-operator.labels" -}}
helm.sh/chart: {{ include "gpu-operator.chart" . }}
app.kubernetes.io/name: {{ include "gpu-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator pods' selector (NVIDIA's). */}}
{{- define "gpu-operator.selectorLabels" -}}
app.kubernetes.io/component: gpu-operator
app: gpu-operator
{{- end -}}

{{/* The MIG manager's service account, as the operator renders it in the release namespace. */}}
{{- define "gpu-operator.migManagerUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:nvidia-mig-manager
{{- end -}}

{{/*
A full image reference, NVIDIA's rules: `image` alone when repository and version are empty, else
repository/image:version (@ for a sha256: digest). Our own images default their version to the appVersion.
Call with (dict "values" .Values.X "key" "X" "default" $versionOrEmpty).
*/}}
{{- define "gpu-operator.image" -}}
{{- $v := .values -}}
{{- $repository := $v.repository | default "" -}}
{{- $image := $v.image | default "" -}}
{{- $version := $v.version | default .default | default "" | toString -}}
{{- if not $image -}}
{{- fail (printf "%s.image must not be empty" .key) -}}
{{- end -}}
{{- if and (not $repository) (not ($v.version | default "")) -}}
{{- $image -}}
{{- else if not $repository -}}
{{- fail (printf "%s.repository must be set when %s.version is (or leave both empty and give %s.image as a full reference)" .key .key .key) -}}
{{- else if not $version -}}
{{- fail (printf "%s.version must be set when %s.repository is (or leave both empty and give %s.image as a full reference)" .key .key .key) -}}
{{- else if hasPrefix "sha256:" $version -}}
{{- printf "%s/%s@%s" $repository $image $version -}}
{{- else -}}
{{- printf "%s/%s:%s" $repository $image $version -}}
{{- end -}}
{{- end -}}

{{/*
Image fields for the ClusterPolicy: the operator resolves them with the same rules. Call with the same dict as
gpu-operator.image; the version default is written out so that the ClusterPolicy names a complete image.
*/}}
{{- define "gpu-operator.imageFields" -}}
{{- $ref := include "gpu-operator.image" . -}}
{{- $v := .values -}}
{{- if $v.repository }}
repository: {{ $v.repository | quote }}
{{- end }}
image: {{ $v.image | quote }}
{{- $version := $v.version | default "" | toString -}}
{{- if and $v.repository (not $version) -}}{{- $version = .default -}}{{- end }}
{{- if $version }}
version: {{ $version | quote }}
{{- end }}
{{- end -}}

{{/* The fields every component shares, for the ClusterPolicy (only those set, as NVIDIA's chart). */}}
{{- define "gpu-operator.componentFields" -}}
{{- $v := .values -}}
{{- if $v.imagePullPolicy }}
imagePullPolicy: {{ $v.imagePullPolicy | quote }}
{{- end }}
{{- if $v.imagePullSecrets }}
imagePullSecrets:
{{- range $v.imagePullSecrets }}
  - {{ . | quote }}
{{- end }}
{{- end }}
{{- if $v.resources }}
resources:
{{- toYaml $v.resources | nindent 2 }}
{{- end }}
{{- if $v.args }}
args:
{{- range $v.args }}
  - {{ . | quote }}
{{- end }}
{{- end }}
{{- if $v.env }}
env:
{{- range $v.env }}
  - name: {{ .name | quote }}
    value: {{ if kindIs "invalid" .value }}""{{ else }}{{ .value | toString | quote }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Structural check of a mig-parted v1 config (NVIDIA/mig-parted api/spec/v1), the same rules the node agent applies
when it loads the file: a `fail` names the value, the config and the entry. The agent and the operator still check
the geometry against the GPUs; this catches a config that could never load, before anything reaches the cluster.
*/}}
{{- define "gpu-operator.validateMigConfig" -}}
{{- $where := "migManager.config.data.config.yaml" -}}
{{- $text := index .Values.migManager.config.data "config.yaml" -}}
{{- if not (kindIs "string" $text) -}}
{{- fail (printf "%s must be a string holding the mig-parted config YAML (use a block scalar: `config.yaml: |`), got %s" $where (kindOf $text)) -}}
{{- end -}}
{{- $cfg := fromYaml $text -}}
{{- if hasKey $cfg "Error" -}}
{{- fail (printf "%s is not valid YAML: %s" $where (get $cfg "Error")) -}}
{{- end -}}
{{- range $key, $_ := $cfg -}}
{{- if not (has $key (list "version" "mig-configs")) -}}
{{- fail (printf "%s: unknown key %q at the top level; valid keys: version, mig-configs" $where $key) -}}
{{- end -}}
{{- end -}}
{{- if ne (toString (index $cfg "version")) "v1" -}}
{{- fail (printf "%s: version must be \"v1\", got %q" $where (toString (index $cfg "version"))) -}}
{{- end -}}
{{- $configs := index $cfg "mig-configs" -}}
{{- if or (not (kindIs "map" $configs)) (not $configs) -}}
{{- fail (printf "%s: mig-configs must be a non-empty mapping of config names to lists of entries" $where) -}}
{{- end -}}
{{- range $name, $entries := $configs -}}
{{- if or (not (kindIs "slice" $entries)) (not $entries) -}}
{{- fail (printf "%s: mig-configs.%s must be a non-empty list of entries" $where $name) -}}
{{- end -}}
{{- range $i, $entry := $entries -}}
{{- $at := printf "%s: mig-configs.%s[%d]" $where $name $i -}}
{{- if not (kindIs "map" $entry) -}}
{{- fail (printf "%s must be a mapping with devices, mig-enabled and (when enabled) mig-devices" $at) -}}
{{- end -}}
{{- range $key, $_ := $entry -}}
{{- if not (has $key (list "device-filter" "devices" "mig-enabled" "mig-devices")) -}}
{{- fail (printf "%s: unknown key %q; valid keys: device-filter, devices, mig-enabled, mig-devices" $at $key) -}}
{{- end -}}
{{- end -}}
{{- if not (hasKey $entry "devices") -}}
{{- fail (printf "%s: devices is required (\"all\" or a list of GPU indices)" $at) -}}
{{- end -}}
{{- $devices := index $entry "devices" -}}
{{- if kindIs "string" $devices -}}
{{- if ne $devices "all" -}}
{{- fail (printf "%s: devices must be \"all\" or a list of GPU indices, got %q" $at $devices) -}}
{{- end -}}
{{- else if kindIs "slice" $devices -}}
{{- range $devices -}}
{{- if not (and (kindIs "float64" .) (eq . (floor .))) -}}
{{- fail (printf "%s: devices must list GPU indices (integers), got %v" $at .) -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- fail (printf "%s: devices must be \"all\" or a list of GPU indices, got %v" $at $devices) -}}
{{- end -}}
{{- if hasKey $entry "device-filter" -}}
{{- $filter := index $entry "device-filter" -}}
{{- $filters := ternary (list $filter) $filter (kindIs "string" $filter) -}}
{{- if not (kindIs "invalid" $filter) -}}
{{- if not (kindIs "slice" $filters) -}}
{{- fail (printf "%s: device-filter must be a PCI id string or a list of them, got %v" $at $filter) -}}
{{- end -}}
{{- range $filters -}}
{{- if not (kindIs "string" .) -}}
{{- fail (printf "%s: device-filter must be a PCI id string such as \"0x233010DE\" (quote it), got %v" $at .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (hasKey $entry "mig-enabled") -}}
{{- fail (printf "%s: mig-enabled is required (true or false)" $at) -}}
{{- end -}}
{{- $enabled := index $entry "mig-enabled" -}}
{{- if not (kindIs "bool" $enabled) -}}
{{- fail (printf "%s: mig-enabled must be true or false, got %v" $at $enabled) -}}
{{- end -}}
{{- $devs := index $entry "mig-devices" -}}
{{- if and (not (kindIs "invalid" $devs)) (not (kindIs "map" $devs)) -}}
{{- fail (printf "%s: mig-devices must be a mapping of MIG profile names to counts, got %v" $at $devs) -}}
{{- end -}}
{{- if and $enabled (kindIs "invalid" $devs) -}}
{{- fail (printf "%s: mig-devices is required when mig-enabled is true (use {} for MIG mode without instances)" $at) -}}
{{- end -}}
{{- if and (not $enabled) $devs -}}
{{- fail (printf "%s: mig-devices must be empty when mig-enabled is false" $at) -}}
{{- end -}}
{{- range $profile, $count := $devs -}}
{{- if not (regexMatch "^([0-9]+c\\.)?[0-9]+g\\.[0-9]+gb([+-][A-Za-z0-9.]+(,[A-Za-z0-9.]+)*)?$" $profile) -}}
{{- fail (printf "%s: %q is not a MIG profile name; valid forms: <G>g.<GB>gb or <C>c.<G>g.<GB>gb, optionally with +attr (e.g. 1g.10gb, 1c.2g.20gb, 1g.10gb+me)" $at $profile) -}}
{{- end -}}
{{- if not (and (kindIs "float64" $count) (ge $count 0.0) (eq $count (floor $count))) -}}
{{- fail (printf "%s: mig-devices.%s must be a count (an integer >= 0), got %v" $at $profile $count) -}}
{{- end -}}
{{- end -}}
{{- if $devs -}}
{{- $total := 0.0 -}}
{{- range $devs -}}{{- $total = addf $total . -}}{{- end -}}
{{- if eq $total 0.0 -}}
{{- fail (printf "%s: mig-devices: all counts are 0; give at least one positive count, or use {} for MIG mode without instances" $at) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The GPU-clients file: {version: v1, systemd-services: [names]}. */}}
{{- define "gpu-operator.validateClientsConfig" -}}
{{- $where := "migManager.gpuClientsConfig.data.clients.yaml" -}}
{{- $text := index .Values.migManager.gpuClientsConfig.data "clients.yaml" -}}
{{- if not (kindIs "string" $text) -}}
{{- fail (printf "%s must be a string holding the clients YAML (use a block scalar: `clients.yaml: |`), got %s" $where (kindOf $text)) -}}
{{- end -}}
{{- $cfg := fromYaml $text -}}
{{- if hasKey $cfg "Error" -}}
{{- fail (printf "%s is not valid YAML: %s" $where (get $cfg "Error")) -}}
{{- end -}}
{{- if ne (toString (index $cfg "version")) "v1" -}}
{{- fail (printf "%s: version must be \"v1\", got %q" $where (toString (index $cfg "version"))) -}}
{{- end -}}
{{- $services := index $cfg "systemd-services" -}}
{{- if not (or (kindIs "invalid" $services) (kindIs "slice" $services)) -}}
{{- fail (printf "%s: systemd-services must be a list of unit names" $where) -}}
{{- end -}}
{{- range $services -}}
{{- if not (and (kindIs "string" .) .) -}}
{{- fail (printf "%s: systemd-services must list unit names (strings), got %v" $where .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The leader-election Lease (NVIDIA's id); the chart owns it, so that helm uninstall removes it. */}}
{{- define "gpu-operator.leaseName" -}}53822513.nvidia.com{{- end -}}
