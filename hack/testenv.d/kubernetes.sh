# shellcheck shell=bash
# Sourced by hack/testenv. The cluster's binaries: etcd, kube-apiserver and kube-controller-manager
# (and kubectl and kubelet, for the side-by-side benchmark) of the pinned releases, built once
# from the Go module proxy into $KUBE_BIN ($STATICLET_TESTENV_CACHE/k8s-<version>/bin), which
# `down` keeps; for the kubeadm node also kubeadm, kube-scheduler, kube-proxy and CoreDNS. No
# release binaries: nothing but the package registries is reachable here.

# The binaries `up --cluster` builds, in build order (etcd first: smallest, and needed first).
readonly KUBE_BINARIES=(etcd kube-apiserver kube-controller-manager kubectl kubelet)

# go with the settings every build here shares. -mod=mod: the wrapper modules are generated and
# their go.sum fills in as modules download. CGO_ENABLED=0: static binaries, as upstream releases
# are built, and no C toolchain involved. nice: 2 cores, and a cargo build may run beside us.
# The Go module and build caches stay where Go keeps them, so a rebuild after `down` or a
# version bump reuses them.
go_run() {
    env GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 "$@"
}

# `go mod tidy` in wrapper dir $1, log in $2. If it failed only because sum.golang.org cannot be
# reached (Go asks the proxy for it first; a proxy without it leaves a direct connection, which
# this network refuses), retry without the checksum database, and keep it off (GOSUMDB=off in
# the environment) for every later go command of this run. Modules still come from the proxy
# over TLS and are pinned in go.sum.
go_tidy() {
    local w="$1" out="$2"
    (cd "$w" && go_run timeout 1800 go mod tidy) >"$out" 2>&1 && return 0
    if [[ "${GOSUMDB:-}" != off ]] && grep -qE 'sum\.golang\.org.*(dial tcp|no such host|i/o timeout|connection (refused|reset)|TLS handshake|403|404|410)' "$out"; then
        log "checksum database unreachable; retrying with GOSUMDB=off"
        export GOSUMDB=off
        (cd "$w" && go_run timeout 1800 go mod tidy) >"$out" 2>&1 && return 0
    fi
    tail -n 30 "$out" >&2 || true
    die "resolving modules in $w failed (log above; full log $out)"
}

# The path of the go.mod of MODULE@VERSION as the proxy serves it (downloads module and zip to
# Go's cache).
mod_gomod() {
    local info f
    # Outside any module: the query must not be resolved against a half-written wrapper.
    info="$(cd / && go_run timeout 900 go mod download -json "$1@$2")" || {
        jq -r '.Error // empty' <<<"$info" >&2 2>/dev/null || true
        die "cannot download $1@$2 from the Go module proxy"
    }
    f="$(jq -r '.GoMod // empty' <<<"$info")"
    [[ -s "$f" ]] || die "no go.mod for $1@$2 in: $info"
    echo "$f"
}

# write_wrapper DIR TEMPLATE IMPORT [VAR=VALUE...]: a fresh wrapper module in DIR for one
# module's command: go.mod from TEMPLATE (with the VARs), and a tools.go importing IMPORT so
# `go mod tidy` keeps exactly its dependencies.
write_wrapper() {
    local w="$1" template="$2" import="$3"
    shift 3
    rm -rf "$w"
    mkdir -p "$w"
    render_template "$template" "$@" >"$w/go.mod"
    render_template k8s-wrapper-tools.go "IMPORTS="$'\t'"_ \"$import\"" >"$w/tools.go"
}

# go_directive NAME GOMOD: the `go` line of GOMOD, for a wrapper module of NAME; dies with a
# clear error when this Go is older than it asks, rather than Go trying to download a newer
# toolchain.
go_directive() {
    local directive want have
    directive="$(grep -E '^go ' "$2")" || die "no go directive in $2"
    want="${directive#go }" have="$(go env GOVERSION)"
    have="${have#go}"
    [[ "$(printf '%s\n' "$want" "$have" | sort -V | head -n 1)" == "$want" ]] ||
        die "$1 needs Go >= $want (this is Go $have)"
    echo "$directive"
}

# The wrapper module for k8s.io/kubernetes. A dependency's replace directives are ignored, and
# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...) as v0.0.0 replaced
# by ./staging/src/...; so the wrapper replaces each one with its published v0.<minor>.<patch>.
# The list changes between releases: it is read from the release's own go.mod, not written here.
# write_k8s_wrapper DIR BINARY...: tools.go imports cmd/BINARY for each (etcd is not in this
# module); every command built from the module must be imported before `go mod tidy`, or its
# build fails on a missing go.sum entry (kubeadm: "missing go.sum entry ... corefile-migration").
write_k8s_wrapper() {
    local w="$1" gomod mods m staging="v0.${K8S_VERSION#v1.}" directives replaces="" imports=""
    shift
    gomod="$(mod_gomod k8s.io/kubernetes "$K8S_VERSION")"
    mods="$(sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/[^[:space:]]+[[:space:]]*$#\2#p' "$gomod")"
    [[ -n "$mods" ]] || die "no ./staging replace lines in $gomod: the recipe needs updating"
    # The same language version and GODEBUG defaults as upstream's own build of the release.
    directives="$(grep -E '^(go|godebug) ' "$gomod")" || die "no go directive in $gomod"
    for m in $mods; do replaces+="${replaces:+$'\n'}"$'\t'"$m => $m $staging"; done
    for m in "$@"; do
        [[ "$m" == etcd ]] || imports+="${imports:+$'\n'}"$'\t'"_ \"k8s.io/kubernetes/cmd/$m\""
    done
    rm -rf "$w"
    mkdir -p "$w"
    render_template k8s-wrapper.go.mod "K8S_VERSION=$K8S_VERSION" "GO_DIRECTIVES=$directives" \
        "REPLACES=$replaces" >"$w/go.mod"
    render_template k8s-wrapper-tools.go "IMPORTS=$imports" >"$w/tools.go"
    log "k8s wrapper: k8s.io/kubernetes $K8S_VERSION, $(wc -w <<<"$mods") staging modules -> $staging"
}

# etcd's own main is `etcdmain.Main(os.Args)` in the go.etcd.io/etcd/v3 root module, whose go.mod
# replaces its sibling modules with ../paths (unusable as a dependency); so a three-line main of
# our own in a wrapper that requires go.etcd.io/etcd/server/v3.
write_etcd_wrapper() {
    local w="$1" gomod directives
    gomod="$(mod_gomod go.etcd.io/etcd/server/v3 "$ETCD_VERSION")"
    directives="$(grep -E '^go ' "$gomod")" || die "no go directive in $gomod"
    rm -rf "$w"
    mkdir -p "$w"
    render_template etcd-wrapper.go.mod "GO_DIRECTIVES=$directives" "ETCD_VERSION=$ETCD_VERSION" \
        >"$w/go.mod"
    render_template etcd-wrapper-main.go >"$w/main.go"
}

# go_build WRAPPER NAME PACKAGE LDFLAGS: build into $KUBE_BIN/NAME (atomically), timed.
go_build() { go_build_in "$K8S_ROOT" "$KUBE_BIN" "$@"; }

# go_build_in ROOT BIN WRAPPER NAME PACKAGE LDFLAGS [GO-BUILD-FLAG...]: the same into BIN/NAME,
# with its log (ROOT/build-NAME.log) and timing (ROOT/build-times) in ROOT, for what is not of
# the Kubernetes release (metrics-server.sh, containerd2.sh).
go_build_in() {
    local root="$1" bin="$2" w="$3" name="$4" pkg="$5" ld="$6" t0=$SECONDS
    local out="$root/build-$name.log"
    shift 6
    log "building $name (log $out)"
    if ! (cd "$w" && go_run timeout 3600 go build -trimpath -ldflags "$ld" "$@" \
        -o "$bin/.$name.tmp" "$pkg") >"$out" 2>&1; then
        tail -n 40 "$out" >&2 || true
        rm -f "$bin/.$name.tmp"
        die "building $name failed (log above; full log $out)"
    fi
    mv -f "$bin/.$name.tmp" "$bin/$name"
    printf '%s %s %ss\n' "$(date -u +%FT%TZ)" "$name" "$((SECONDS - t0))" >>"$root/build-times"
    log "built $name in $((SECONDS - t0))s"
}

# True when $KUBE_BIN/etcd is etcd $ETCD_VERSION (the directory is named after the Kubernetes
# version only; etcd reports its own).
etcd_current() {
    [[ "$("$KUBE_BIN/etcd" --version 2>/dev/null)" == *"etcd Version: ${ETCD_VERSION#v}"* ]]
}

# kube_binaries_ok BINARY...: true when $KUBE_BIN holds each, with etcd at $ETCD_VERSION.
kube_binaries_ok() {
    local b
    for b in "$@"; do [[ -x "$KUBE_BIN/$b" ]] || return 1; done
    etcd_current
}

# kubectl_as KUBECONFIG ARGS...: our kubectl, bounded.
kubectl_as() {
    local kc="$1"
    shift
    timeout 30 "$KUBE_BIN/kubectl" --kubeconfig "$kc" "$@"
}

# The -ldflags of the Kubernetes builds. Without the version stamp every component reports v0.0.0
# (and kubectl warns about version skew). client-go carries its own copy, which kubectl's client
# version and user agents use.
kube_ldflags() {
    local b major="${K8S_VERSION#v}" minor="${K8S_VERSION#v*.}" ld="-s -w"
    major="${major%%.*}" minor="${minor%%.*}"
    for b in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $b.gitVersion=$K8S_VERSION -X $b.gitMajor=$major -X $b.gitMinor=$minor"
        ld+=" -X $b.gitTreeState=clean"
    done
    echo "$ld"
}

# ensure_kube_binaries [BINARY...]: the cluster's binaries (KUBE_BINARIES) and the extra ones
# named (KUBEADM_BINARIES for the kubeadm node), built when missing.
ensure_kube_binaries() {
    local -a want=("${KUBE_BINARIES[@]}" "$@")
    kube_binaries_ok "${want[@]}" && return 0
    command -v go >/dev/null ||
        die "Go is needed to build Kubernetes (Debian 12's golang is too old); install Go >= 1.25"
    local t0=$SECONDS b ld
    log "building Kubernetes $K8S_VERSION and etcd $ETCD_VERSION from the Go module proxy" \
        "(once; cached in $KUBE_BIN; a cold build takes many minutes on 2 cores)"
    mkdir -p "$KUBE_BIN"
    if ! etcd_current; then
        write_etcd_wrapper "$K8S_ROOT/etcd-module"
        go_tidy "$K8S_ROOT/etcd-module" "$K8S_ROOT/build-etcd-modules.log"
        go_build "$K8S_ROOT/etcd-module" etcd . "-s -w"
    fi
    ld="$(kube_ldflags)"
    local need=()
    for b in "${want[@]}"; do
        [[ "$b" == etcd || -x "$KUBE_BIN/$b" ]] || need+=("$b")
    done
    if ((${#need[@]})); then
        write_k8s_wrapper "$K8S_ROOT/k8s-module" "${want[@]}"
        go_tidy "$K8S_ROOT/k8s-module" "$K8S_ROOT/build-k8s-modules.log"
        # One at a time: they share most packages, so each later build reuses the build cache.
        for b in "${need[@]}"; do
            go_build "$K8S_ROOT/k8s-module" "$b" "k8s.io/kubernetes/cmd/$b" "$ld"
        done
    fi
    kube_binaries_ok "${want[@]}" || die "binaries in $KUBE_BIN incomplete after the build"
    log "Kubernetes binaries ready in $((SECONDS - t0))s"
}

# CoreDNS for the kubeadm node's coredns image (kubeadm's preflight wants every image it deploys).
# github.com/coredns/coredns is a main package at its module root and its go.mod has no replace
# directives, so a wrapper that requires it and imports it in tools.go builds it. Not fatal: one
# try per cache, and a failure is recorded ($K8S_ROOT/coredns-failed; remove it to try again) so
# that later runs do not spend minutes on it; the node then has no coredns image, and kubeadm's
# ImagePull check fails for that one image only.
ensure_coredns() {
    local w="$K8S_ROOT/coredns-module" failed="$K8S_ROOT/coredns-failed" gomod directives
    [[ -x "$KUBE_BIN/coredns" ]] && return 0
    [[ -e "$failed" ]] && return 1
    log "building CoreDNS $COREDNS_VERSION from the Go module proxy (once; cached in $KUBE_BIN)"
    mkdir -p "$KUBE_BIN"
    # A subshell: go_tidy and go_build die on failure, which here must only end this attempt.
    if ! (
        gomod="$(mod_gomod github.com/coredns/coredns "$COREDNS_VERSION")"
        directives="$(grep -E '^go ' "$gomod")" || die "no go directive in $gomod"
        write_wrapper "$w" coredns-wrapper.go.mod github.com/coredns/coredns \
            "GO_DIRECTIVES=$directives" "COREDNS_VERSION=$COREDNS_VERSION"
        go_tidy "$w" "$K8S_ROOT/build-coredns-modules.log"
        go_build "$w" coredns github.com/coredns/coredns "-s -w"
    ); then
        date -u +%FT%TZ >"$failed"
        log "CoreDNS $COREDNS_VERSION could not be built; the kubeadm node gets no coredns image"
        return 1
    fi
}
