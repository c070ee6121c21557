# shellcheck shell=bash
# Sourced by hack/testenv. The kubeadm node: a "machine" of namespaces of our own that `kubeadm
# init` can run on, with a containerd of its own inside.
#
# Why namespaces: kubeadm refuses a loopback advertise address ("unable to select an IP from lo
# network interface"), and tests may send traffic only to loopback or to namespaces they made;
# and kubeadm writes /etc/kubernetes, /var/lib/kubelet and /var/lib/etcd, which must not be the
# host's. So the node is
#   - a network namespace ($KADM_NETNS) with lo and a veth pair whose both ends are inside
#     (v0 = $KADM_ADDR/24, default route on v0; dummy interfaces do not exist on this kernel);
#   - a persistent mount namespace ($KADM_MNTNS) in which /etc/hosts, /etc/resolv.conf and the
#     directories kubeadm and a kubelet write (KADM_BINDS) are bind mounts from $KADM_ROOT, and
#     a UTS namespace ($KADM_UTSNS) whose hostname is the node name;
#   - a second instance of this script's containerd, state dir $KADM_CRI_DIR, started inside
#     all three by running `up` again with that STATICLET_TESTENV_DIR and
#     STATICLET_TESTENV_ROLE=kubeadm-node (which makes it use kubeadm's sandbox image and import
#     every image `kubeadm config images list` names, built from our binaries).
# Entered with nsenter on the namespace files, never `ip netns exec`: that remounts /sys, hides
# the cgroup mounts, and every pod then fails with runc's "no cgroup mount found in mountinfo".

# What the node needs besides the cluster's binaries (kubernetes.sh), built only when
# `kubeadm-node up` asks for them: a plain `up --cluster` must not pay for binaries it never runs.
readonly KUBEADM_BINARIES=(kubeadm kube-scheduler kube-proxy)

# NODE-PATH:SOURCE (under $KADM_ROOT). /var/lib/staticlet: the agent's own root dir (emptyDir volumes).
# /var/lib/cni as well: libcni keeps its result cache there,
# keyed by network name, and the inner instance's network has the host instance's name.
readonly KADM_BINDS=(/etc/hosts:hosts /etc/resolv.conf:resolv.conf
    /etc/kubernetes:etc-kubernetes /var/lib/kubelet:var-lib-kubelet /var/lib/etcd:var-lib-etcd
    /var/log/pods:var-log-pods /var/lib/cni:var-lib-cni /var/lib/staticlet:var-lib-staticlet)

# True when PATH is a mount point (files too: the namespace files are bind mounts of nsfs).
is_mounted() { findmnt -rn --mountpoint "$1" >/dev/null 2>&1; }

# True when the role of this instance is the kubeadm node's inner containerd.
kadm_role() { [[ "${STATICLET_TESTENV_ROLE:-}" == kubeadm-node ]]; }

# True when all three namespaces exist and the network is as kadm_netns_up makes it.
kadm_ns_ok() {
    is_mounted "$KADM_NETNS_PATH" && is_mounted "$KADM_MNTNS" && is_mounted "$KADM_UTSNS" &&
        ip -n "$KADM_NETNS" -4 -o addr show dev v0 2>/dev/null | grep -qF " $KADM_ADDR/24 "
}

# kadm_enter COMMAND...: COMMAND inside whichever of the node's namespaces exist (`down` must
# also work on a half-made node), in the caller's working directory.
kadm_enter() {
    local -a a=()
    is_mounted "$KADM_NETNS_PATH" && a+=("--net=$KADM_NETNS_PATH")
    is_mounted "$KADM_MNTNS" && a+=("--mount=$KADM_MNTNS")
    is_mounted "$KADM_UTSNS" && a+=("--uts=$KADM_UTSNS")
    nsenter "${a[@]}" --wd="$PWD" -- "$@"
}

# kadm_inner ARGS...: this script, for the inner instance, inside the node. It inherits our lock
# (fd 9, see take_lock).
kadm_inner() {
    # Without the host instance's exports (`eval "$(hack/testenv env)"`): tools read them. The
    # node runs Debian's containerd, whichever runtime the host's tests chose.
    kadm_enter env -u CONTAINER_RUNTIME_ENDPOINT -u CONTAINERD_ADDRESS -u CRI_CONFIG_FILE \
        STATICLET_TESTENV_DIR="$KADM_CRI_DIR" STATICLET_TESTENV_ROLE=kubeadm-node \
        STATICLET_TESTENV_RUNTIME=containerd \
        STATICLET_TESTENV_IMAGES="$CACHE/kubeadm-node-images" "$SELF" "$@"
}

# The network namespace. Each step checks or is idempotent, so a half-made one is completed.
# ip_forward on: kubeadm's preflight requires it, and it is per network namespace (the host's
# setting does not reach in).
kadm_netns_up() {
    local ns="$KADM_NETNS"
    if ! is_mounted "$KADM_NETNS_PATH"; then
        rm -f "$KADM_NETNS_PATH" # a stale file would make `ip netns add` fail
        ip netns add "$ns"
    fi
    ip -n "$ns" link set lo up
    ip -n "$ns" link show v0 >/dev/null 2>&1 || ip -n "$ns" link add v0 type veth peer name v1
    ip -n "$ns" -4 -o addr show dev v0 | grep -qF " $KADM_ADDR/24 " ||
        ip -n "$ns" addr add "$KADM_ADDR/24" dev v0
    ip -n "$ns" link set v0 up
    ip -n "$ns" link set v1 up
    ip -n "$ns" route replace default dev v0
    nsenter --net="$KADM_NETNS_PATH" sysctl -qw net.ipv4.ip_forward=1
}

# The mount and UTS namespaces, made from scratch (kadm_up tears a half-made node down first).
# The namespace files live in $KADM_NS, bind-mounted onto itself with private propagation: a
# namespace file cannot be bind-mounted where the mount would propagate into that namespace.
# Mount points missing on the host (e.g. /etc/kubernetes) are made there, empty, and listed in
# $KADM_DIR/host-mountpoints for `down` to remove: a bind mount needs an existing target, and
# nothing kubeadm writes lands in them (it lands in $KADM_ROOT).
kadm_mountns_up() {
    local b dst src
    mkdir -p "$KADM_NS" "$KADM_ROOT"
    if ! is_mounted "$KADM_NS"; then
        mount --bind "$KADM_NS" "$KADM_NS"
        mount --make-private "$KADM_NS"
    fi
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n' \
        "$KADM_ADDR" "$KADM_NODE" >"$KADM_ROOT/hosts"
    # Names the node does not know resolve nowhere: no query leaves the namespace.
    echo "nameserver 127.0.0.1" >"$KADM_ROOT/resolv.conf"
    for b in "${KADM_BINDS[@]}"; do
        dst="${b%%:*}" src="$KADM_ROOT/${b#*:}"
        [[ -f "$src" ]] || mkdir -p "$src"
        if [[ ! -e "$dst" ]]; then
            mkdir "$dst"
            echo "$dst" >>"$KADM_DIR/host-mountpoints"
        fi
    done
    touch "$KADM_MNTNS" "$KADM_UTSNS"
    # shellcheck disable=SC2016 # for the inner bash
    if ! unshare --mount="$KADM_MNTNS" --uts="$KADM_UTSNS" --propagation private bash -c '
        set -euo pipefail
        hostname "$1"
        root="$2"
        shift 2
        for b in "$@"; do mount --bind "$root/${b#*:}" "${b%%:*}"; done
    ' kadm-mounts "$KADM_NODE" "$KADM_ROOT" "${KADM_BINDS[@]}"; then
        umount "$KADM_MNTNS" "$KADM_UTSNS" 2>/dev/null || true
        die "could not set up the kubeadm node's mount namespace"
    fi
}

# The kubeadm config a test can use (templates/kubeadm-config.yaml) with this node's values.
kadm_write_config() {
    render_template kubeadm-config.yaml "NODE=$KADM_NODE" "ADDRESS=$KADM_ADDR" \
        "CRI_SOCKET=unix://$KADM_SOCK" "K8S_VERSION=$K8S_VERSION" >"$KADM_DIR/kubeadm-config.tmp"
    mv -f "$KADM_DIR/kubeadm-config.tmp" "$KADM_CONFIG"
}

# The images kubeadm's manifests name, other than the sandbox image (the inner instance's own
# PAUSE_IMAGE): for the inner instance's `up` (kadm_role), built from $KUBE_BIN, which the outer
# `kubeadm-node up` filled before. Each binary goes to /usr/local/bin, on PATH, as upstream's
# images have it: kubeadm's manifests run `command: [kube-apiserver, ...]` and `etcd`; CoreDNS's
# manifest gives only args, so its image has the binary as entrypoint (upstream's: /coredns).
ensure_kubeadm_images() {
    local b env=PATH=/usr/local/bin:/usr/bin:/bin
    for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
        build_image "$b" "registry.k8s.io/$b:$K8S_VERSION" "$KUBE_BIN/$b" --config.env "$env" \
            --config.cmd "/usr/local/bin/$b"
        import_image "$b" "registry.k8s.io/$b:$K8S_VERSION"
    done
    build_image etcd "$KADM_ETCD_IMAGE" "$KUBE_BIN/etcd" --config.env "$env" \
        --config.cmd /usr/local/bin/etcd
    import_image etcd "$KADM_ETCD_IMAGE"
    if [[ -x "$KUBE_BIN/coredns" ]]; then
        build_image coredns "$KADM_COREDNS_IMAGE" "$KUBE_BIN/coredns" --config.entrypoint /usr/local/bin/coredns
        import_image coredns "$KADM_COREDNS_IMAGE"
    fi
}

# The image list, for the summary.
kadm_images() {
    timeout 10 ctr -a "$KADM_SOCK" -n "$CRI_NS" images ls -q 2>/dev/null | grep -F registry.k8s.io/ |
        tr '\n' ' ' || true
}

# Binaries, namespaces, the inner containerd with every image, the kubeadm config. Prints the
# summary. A node whose namespaces are all there is kept (only the inner `up` runs again, which
# is quick when its containerd answers); a half-made one is torn down and made again.
kadm_up() {
    local t0=$SECONDS warm=1 coredns="built"
    ensure_kube_binaries "${KUBEADM_BINARIES[@]}"
    ensure_coredns || coredns="not built (see $K8S_ROOT/coredns-failed); ImagePull will miss it"
    if [[ -d "$KADM_DIR" && ! -e "$KADM_MARKER" && -n "$(ls -A "$KADM_DIR")" ]]; then
        die "$KADM_DIR exists, is not empty and was not made by testenv"
    fi
    if ! kadm_ns_ok; then
        warm=0
        kadm_down >/dev/null
        mkdir -p "$KADM_DIR"
        touch "$KADM_MARKER"
        log "making the kubeadm node $KADM_NODE ($KADM_ADDR, netns $KADM_NETNS)"
        kadm_netns_up
        kadm_mountns_up
    fi
    kadm_inner up >&2 || die "the kubeadm node's containerd did not come up (see above)"
    kadm_write_config
    cat <<EOF
testenv: kubeadm node up ($( ((warm)) && echo "already there" || echo "made"), $((SECONDS - t0))s)
  node            $KADM_NODE, $KADM_ADDR on v0 (netns $KADM_NETNS_PATH)
  namespaces      mount $KADM_MNTNS, uts $KADM_UTSNS
  files           ${KADM_BINDS[*]%%:*} from $KADM_ROOT
  CRI socket      unix://$KADM_SOCK (log $KADM_CRI_DIR/containerd.log)
  images          $(kadm_images)
  coredns         $coredns
  kubeadm config  $KADM_CONFIG
  binaries        $KUBE_BIN (kubeadm, kubectl, ...)
  run inside      $0 kubeadm-node exec CMD...
  use it with     eval "\$($0 kubeadm-node env)"
EOF
}

# PIDs of every process in the node's network or mount namespace (what a test started there,
# staticlet, the control plane), found by the namespace inode in /proc/PID/ns.
kadm_pids() {
    local ino links=()
    if is_mounted "$KADM_NETNS_PATH" && ino="$(stat -Lc %i "$KADM_NETNS_PATH")"; then
        links+=("net:[$ino]")
    fi
    if is_mounted "$KADM_MNTNS" && ino="$(stat -Lc %i "$KADM_MNTNS")"; then
        links+=("mnt:[$ino]")
    fi
    ((${#links[@]})) || return 0
    # "/proc/PID/ns LINK" lines; the PID of each whose LINK is one of ours. find fails when a
    # process exits while it reads /proc, which is no failure here.
    { find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/*' \( -name net -o -name mnt \) \
        -printf '%h %l\n' 2>/dev/null || true; } |
        awk -v want=" ${links[*]} " 'index(want, " " $2 " ") { split($1, p, "/"); print p[3] }' |
        sort -un
}

# Tears the node down: the inner instance (its containerd, pods, CNI state; by its own `down`,
# inside the node), whatever else still runs in it, the namespaces, the mount points made on the
# host, and $KADM_DIR (if it carries the marker). Quiet and quick when there is no node. Prints
# the PIDs it signalled, for cmd_down's wait_reaped.
kadm_down() {
    local pid pids m
    [[ -d "$KADM_DIR" ]] || is_mounted "$KADM_NETNS_PATH" || return 0
    log "tearing down the kubeadm node ($KADM_DIR)"
    # Only where the node's own /var/lib/cni is mounted: the inner `down` clears libcni's cache
    # for its network name, which is the host instance's too.
    if is_mounted "$KADM_MNTNS" && kadm_enter findmnt -rn --mountpoint /var/lib/cni >/dev/null; then
        kadm_inner down >&2 || log "warning: the kubeadm node's containerd did not go down cleanly"
    fi
    pids="$(kadm_pids)"
    for pid in $pids; do stop_pid "$pid" 10; done
    for m in "$KADM_MNTNS" "$KADM_UTSNS" "$KADM_NS"; do
        if is_mounted "$m"; then umount "$m" || umount -l "$m" || true; fi
    done
    if is_mounted "$KADM_NETNS_PATH"; then
        ip netns del "$KADM_NETNS" || log "warning: could not delete netns $KADM_NETNS"
    fi
    # Only if still empty (something else may have started using one), and not while another
    # instance's node runs: removing a directory detaches the mounts on it in every other mount
    # namespace, which would take that node's /etc/kubernetes away from it.
    if [[ -f "$KADM_DIR/host-mountpoints" ]]; then
        if compgen -G '/run/netns/stl-kadm*' >/dev/null; then
            log "another kubeadm node runs: keeping the empty host mount points" \
                "$(tr '\n' ' ' <"$KADM_DIR/host-mountpoints")"
        else
            while read -r m; do rmdir "$m" 2>/dev/null || true; done <"$KADM_DIR/host-mountpoints"
        fi
    fi
    if [[ -d "$KADM_DIR" ]]; then
        if [[ -e "$KADM_MARKER" ]]; then
            rm -rf --one-file-system "$KADM_DIR" || log "warning: could not remove all of $KADM_DIR"
        else
            log "$KADM_DIR has no testenv marker; not removing it"
        fi
    fi
}

# The exports a test needs to drive the node.
kadm_env() {
    printf 'export STATICLET_KADM_NODE=%q\n' "$KADM_NODE"
    printf 'export STATICLET_KADM_ADDRESS=%q\n' "$KADM_ADDR"
    printf 'export STATICLET_KADM_CRI_ENDPOINT=%q\n' "unix://$KADM_SOCK"
    printf 'export STATICLET_KADM_DIR=%q\n' "$KADM_DIR"
    printf 'export STATICLET_KADM_ROOT=%q\n' "$KADM_ROOT"
    printf 'export STATICLET_KADM_NETNS=%q\n' "$KADM_NETNS_PATH"
    printf 'export STATICLET_KADM_MOUNTNS=%q\n' "$KADM_MNTNS"
    printf 'export STATICLET_KADM_UTSNS=%q\n' "$KADM_UTSNS"
    printf 'export STATICLET_KADM_CONFIG=%q\n' "$KADM_CONFIG"
    printf 'export STATICLET_KADM_KUBE_BIN=%q\n' "$KUBE_BIN"
    printf 'export STATICLET_KADM_KUBEADM=%q\n' "$KUBE_BIN/kubeadm"
    printf 'export STATICLET_KADM_KUBECTL=%q\n' "$KUBE_BIN/kubectl"
    printf 'export STATICLET_KADM_EXEC=%q\n' "$SELF kubeadm-node exec"
    printf 'export STATICLET_K8S_VERSION=%q\n' "$K8S_VERSION"
}
