# shellcheck shell=bash
# Sourced by hack/testenv. crictl: found, installed or built, and run against our socket.
#
# crictl is not in Debian 12. The CRI check is the one that proves RunPodSandbox + CNI work, so
# we build crictl with `go` (the Go module proxy is reachable) into a cache that survives `down`.
# Any failure falls back to the weaker `ctr run` check rather than failing `up`.

# The path of the crictl to use, if there is one.
find_crictl() {
    local c
    if c="$(command -v crictl 2>/dev/null)"; then
        echo "$c"
        return 0
    fi
    [[ -x "$CACHE/crictl" ]] || return 1
    echo "$CACHE/crictl"
}

ensure_crictl() {
    find_crictl >/dev/null && return 0
    [[ "${STATICLET_TESTENV_CRICTL:-}" == no ]] && return 1
    if apt-cache show cri-tools >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            cri-tools </dev/null >&2 && return 0
    fi
    command -v go >/dev/null || return 1
    log "building crictl $CRICTL_VERSION from the Go module proxy (once; cached in $CACHE)"
    local b="$CACHE/crictl-build"
    mkdir -p "$b"
    render_template crictl-build.go.mod "CRICTL_VERSION=$CRICTL_VERSION" >"$b/go.mod"
    render_template crictl-build-tools.go >"$b/tools.go"
    # GOSUMDB=off: the checksum database is not reachable from here, only the proxy is.
    # nice: this machine has 2 cores and a cargo build may be running beside us.
    if (cd "$b" && export GOSUMDB=off GOFLAGS=-mod=mod &&
        timeout 900 go mod tidy &&
        timeout 900 nice -n 10 go build -o "$CACHE/crictl.tmp" sigs.k8s.io/cri-tools/cmd/crictl) \
        >"$CACHE/crictl-build.log" 2>&1; then
        mv -f "$CACHE/crictl.tmp" "$CACHE/crictl"
        return 0
    fi
    log "crictl build failed (see $CACHE/crictl-build.log); falling back to ctr for the check"
    return 1
}

crictl_cmd() {
    local c
    c="$(find_crictl)" || return 1
    # The endpoints as flags too: crictl lets $CONTAINER_RUNTIME_ENDPOINT (exported by `env`, so
    # set in a shell that also runs the kubeadm node's instance) override its config file.
    if [[ -f "$DIR/crictl.yaml" ]]; then
        "$c" --config "$DIR/crictl.yaml" --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" "$@"
    else
        "$c" --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" --timeout 30s "$@"
    fi
}

# For crictl (also exported as CRI_CONFIG_FILE by `env`, so a bare `crictl ps` works). Renamed
# into place: a crictl run by a test meanwhile must never read a half-written file.
write_crictl_yaml() {
    render_template crictl.yaml "SOCK=$SOCK" >"$DIR/crictl.yaml.tmp"
    mv -f "$DIR/crictl.yaml.tmp" "$DIR/crictl.yaml"
}
