# shellcheck shell=bash
# Sourced by hack/testenv. Helm, for the chart in charts/staticlet (tests/helm.rs lints it,
# renders it against the test API server and installs it there). Built from the Go module proxy
# like metrics-server (metrics-server.sh), into $HELM_ROOT/bin, which `down` keeps; only when
# asked (`helm build`), so `up --cluster` never pays for it.

readonly HELM_ROOT="$CACHE/helm-$HELM_VERSION"
readonly HELM_BIN="$HELM_ROOT/bin/helm"

# True when $HELM_BIN is helm $HELM_VERSION (`helm version --template` prints the stamp below).
helm_current() {
    [[ "$("$HELM_BIN" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]
}

# The wrapper module: helm.sh/helm/v4 has no replace directives, so requiring it and importing
# its command in tools.go resolves exactly its own dependency versions.
write_helm_wrapper() {
    local w="$1" gomod directives
    gomod="$(mod_gomod helm.sh/helm/v4 "$HELM_VERSION")"
    grep -qE '^replace|^[[:space:]]+[^[:space:]]+ => ' "$gomod" &&
        die "helm.sh/helm/v4@$HELM_VERSION has replace directives: the wrapper needs them too"
    directives="$(go_directive "helm $HELM_VERSION" "$gomod")"
    write_wrapper "$w" helm-wrapper.go.mod helm.sh/helm/v4/cmd/helm \
        "GO_DIRECTIVES=$directives" "HELM_VERSION=$HELM_VERSION"
}

# Builds helm when $HELM_BIN is missing or of another version, with the version stamp of
# upstream's Makefile (internal/version; no git commit: the module zip has none). Helm reads the
# Kubernetes version it assumes offline (`helm template`) from client-go's module version in
# the build info, which a module build keeps.
ensure_helm() {
    helm_current && return 0
    command -v go >/dev/null || die "Go is needed to build helm"
    local t0=$SECONDS w="$HELM_ROOT/module" v=helm.sh/helm/v4/internal/version
    log "building helm $HELM_VERSION from the Go module proxy (once; cached in $HELM_ROOT/bin)"
    mkdir -p "$HELM_ROOT/bin"
    write_helm_wrapper "$w"
    go_tidy "$w" "$HELM_ROOT/build-modules.log"
    go_build_in "$HELM_ROOT" "$HELM_ROOT/bin" "$w" helm helm.sh/helm/v4/cmd/helm \
        "-s -w -X $v.version=$HELM_VERSION -X $v.metadata= -X $v.gitTreeState=clean"
    helm_current || die "$HELM_BIN does not report version $HELM_VERSION"
    log "helm ready in $((SECONDS - t0))s"
}
