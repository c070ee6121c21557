# shellcheck shell=bash
# Sourced by hack/testenv. The second runtime (--runtime containerd2): containerd
# $CONTAINERD2_VERSION and its runc shim built from the Go module proxy into $CD2_BIN
# ($STATICLET_TESTENV_CACHE/containerd-<version>/bin, kept across `down`, as the Kubernetes
# binaries are). Everything else about the instance (config, start, images, the pod check, down)
# is containerd.sh's and the other parts', run with the paths of $DIR = <state dir>/containerd2.
#
# Why build it: Debian 12 has only containerd 1.6, past its end of life, while the clusters
# staticlet's users run are on 2.x (and kubelet 1.36+ needs 2.x). CRI-O would be a third row, but
# its module is not served by the proxy here (docs/ARCHITECTURE.md, "Test environment").

# True when $CD2_BIN holds the binaries of $CONTAINERD2_VERSION.
containerd2_ok() {
    local b
    for b in containerd containerd-shim-runc-v2 ctr; do [[ -x "$CD2_BIN/$b" ]] || return 1; done
    [[ "$("$CD2_BIN/containerd" --version 2>/dev/null)" == *" $CONTAINERD2_VERSION "* ]]
}

# The directory of containerd's module source in Go's module cache (downloaded if missing). The
# checksum database may be unreachable (see go_tidy); the proxy still serves the module over TLS.
containerd2_source() {
    local m="github.com/containerd/containerd/v2@$CONTAINERD2_VERSION" info dir
    if ! info="$(cd / && go_run timeout 900 go mod download -json "$m" 2>/dev/null)"; then
        log "downloading $m with the checksum database off"
        info="$(cd / && GOSUMDB=off go_run timeout 900 go mod download -json "$m")" ||
            die "cannot download $m from the Go module proxy: $(jq -r '.Error // empty' <<<"$info")"
    fi
    dir="$(jq -r '.Dir // empty' <<<"$info")"
    [[ -f "$dir/go.mod" ]] || die "no source directory for $m in: $info"
    echo "$dir"
}

# Built in the module's own directory, against its own go.mod and go.sum (-mod=readonly: the
# module cache is read-only; no replace directives to lose, unlike a wrapper module's). The build
# tags and version stamps are those of containerd's release builds (its Makefile): static,
# without the urfave/cli docs; the shim without gRPC (it speaks ttrpc).
ensure_containerd2() {
    containerd2_ok && return 0
    command -v go >/dev/null || die "Go is needed to build containerd $CONTAINERD2_VERSION"
    local src t0=$SECONDS p=github.com/containerd/containerd/v2 tags ld b
    log "building containerd $CONTAINERD2_VERSION from the Go module proxy" \
        "(once; cached in $CD2_BIN; a cold build takes a few minutes on 2 cores)"
    src="$(containerd2_source)"
    mkdir -p "$CD2_BIN"
    ld="-s -w -X $p/version.Version=$CONTAINERD2_VERSION -X $p/version.Revision=$CONTAINERD2_VERSION"
    ld+=" -X $p/version.Package=$p"
    for b in containerd containerd-shim-runc-v2 ctr; do
        tags="urfave_cli_no_docs osusergo netgo static_build"
        [[ "$b" == containerd-shim-runc-v2 ]] && tags+=" no_grpc"
        go_build_in "$CD2_ROOT" "$CD2_BIN" "$src" "$b" "./cmd/$b" "$ld" -mod=readonly -tags "$tags"
    done
    containerd2_ok || die "the binaries in $CD2_BIN are not containerd $CONTAINERD2_VERSION"
    log "containerd $CONTAINERD2_VERSION ready in $((SECONDS - t0))s"
}
