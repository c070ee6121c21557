# shellcheck shell=bash
# Sourced by hack/testenv. The sandbox ("pause") and test (busybox) images, built and imported.
#
# Why no registry: none is reachable here. The sandbox and test images are built from local files
# (hack/pause.c, busybox-static) with umoci + skopeo and imported with ctr.

build_pause() {
    local src="$HERE/pause.c" bin="$DIR/pause"
    [[ -x "$bin" && "$bin" -nt "$src" ]] && return 0
    log "compiling pause"
    gcc -static -O2 -Wall -o "$bin.tmp" "$src"
    mv -f "$bin.tmp" "$bin"
}

populate_pause() {
    install -m 0755 "$DIR/pause" "$1/pause"
}

populate_busybox() {
    local r="$1" a
    install -D -m 0755 /bin/busybox "$r/bin/busybox"
    for a in $(/bin/busybox --list); do
        [[ "$a" == busybox ]] || ln -sfn busybox "$r/bin/$a"
    done
    mkdir -p "$r/etc" "$r/root" "$r/var/www" "$r/tmp"
    chmod 1777 "$r/tmp"
    chmod 0700 "$r/root"
    render_template busybox-passwd >"$r/etc/passwd"
    render_template busybox-group >"$r/etc/group"
}

# An image of one static binary (the kubeadm node's Kubernetes images): INPUT $2 in
# /usr/local/bin, and a /tmp.
populate_bin() {
    install -D -m 0755 "$2" "$1/usr/local/bin/${2##*/}"
    mkdir -p "$1/tmp"
    chmod 1777 "$1/tmp"
}

# build_image NAME REF INPUT [umoci config args...]: OCI layout -> docker-archive tar. The tar is
# kept in the state dir and rebuilt only when older than INPUT (the file the image wraps). The
# rootfs is filled by populate_NAME ROOTFS INPUT, or populate_bin when there is no such function.
build_image() {
    local name="$1" ref="$2" input="$3"
    shift 3
    local work="$IMAGES/$name" tar="$IMAGES/$name.tar"
    [[ -s "$tar" && "$tar" -nt "$input" ]] && return 0
    log "building image $ref"
    rm -rf "$work" "$tar.tmp"
    mkdir -p "$work"
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:1.0"
    umoci unpack --image "$work/oci:1.0" "$work/bundle" >/dev/null
    if declare -F "populate_$name" >/dev/null; then
        "populate_$name" "$work/bundle/rootfs" "$input"
    else
        populate_bin "$work/bundle/rootfs" "$input"
    fi
    umoci repack --image "$work/oci:1.0" "$work/bundle"
    umoci config --image "$work/oci:1.0" "$@"
    # --insecure-policy: a fresh host may lack /etc/containers/policy.json; the source is local.
    skopeo --insecure-policy copy -q "oci:$work/oci:1.0" "docker-archive:$tar.tmp:$ref"
    mv -f "$tar.tmp" "$tar"
    rm -rf "$work"
}

# Captured first: with pipefail, `ctr ... | grep -q` fails at random when grep exits at its first
# match and ctr dies of SIGPIPE.
has_image() {
    local refs
    refs="$(ctrc -n "$CRI_NS" images ls -q)" || return 1
    grep -qxF "$1" <<<"$refs"
}

# Import when absent from the instance, or when the tar was rebuilt since the last import.
import_image() {
    local name="$1" ref="$2" tar="$IMAGES/$1.tar" stamp="$IMAGES/$1.imported"
    if has_image "$ref" && [[ "$stamp" -nt "$tar" ]]; then
        return 0
    fi
    log "importing $ref"
    ctrc -n "$CRI_NS" images import "$tar" >/dev/null
    has_image "$ref" || die "import of $ref did not register it"
    touch "$stamp"
}

ensure_images() {
    mkdir -p "$IMAGES"
    build_image pause "$PAUSE_IMAGE" "$DIR/pause" --config.cmd /pause
    build_image busybox "$TEST_IMAGE" /bin/busybox --config.cmd sh \
        --config.env PATH=/bin:/usr/bin:/sbin:/usr/sbin
    import_image pause "$PAUSE_IMAGE"
    import_image busybox "$TEST_IMAGE"
}
