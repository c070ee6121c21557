# shellcheck shell=bash
# Sourced by hack/testenv. What `down` does after stopping the cluster: remove every workload,
# stop containerd and its orphans, unmount and release the network state that lives outside our
# dir, so that removing $DIR leaves nothing behind.

# Stop and remove every task and container in every namespace of the instance. CRI first (when
# crictl exists) so the CNI DEL runs and portmap/IPAM state is released properly.
remove_workloads() {
    local ns id
    if find_crictl >/dev/null; then
        crictl_cmd rmp -fa >/dev/null 2>&1 || log "warning: crictl rmp -fa failed; using ctr"
    fi
    for ns in $(ctrc namespaces ls -q 2>/dev/null); do
        for id in $(ctrc -n "$ns" tasks ls -q 2>/dev/null); do
            ctrc -n "$ns" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
            ctrc -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 || true
        done
        for id in $(ctrc -n "$ns" containers ls -q 2>/dev/null); do
            ctrc -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
        done
    done
}

# Stops every containerd running our config; prints the PIDs it signalled.
stop_containerd() {
    local pid
    for pid in $(containerd_pids); do
        log "stopping containerd $pid"
        stop_pid "$pid" 15
    done
}

# When containerd is already gone, its shims and their containers are orphans: kill the
# containers through runc (which also removes their cgroups), then the shims.
kill_orphans() {
    local nsdir id pid
    for nsdir in "$RUNC_ROOT"/*/; do
        [[ -d "$nsdir" ]] || continue
        for id in $(runc --root "$nsdir" list -q 2>/dev/null); do
            log "killing leftover container $id"
            runc --root "$nsdir" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    local shims
    shims="$(shim_pids)"
    if [[ -n "$shims" ]]; then
        log "killing leftover shims: ${shims//$'\n'/ }"
        for pid in $shims; do
            # Children of a shim are container inits; killing one kills its PID namespace.
            for id in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill -KILL "$id" 2>/dev/null || true; done
            kill -KILL "$pid" 2>/dev/null || true
        done
        # shellcheck disable=SC2086 # a list of PIDs, one a word
        wait_gone 5 $shims || log "warning: shims survived SIGKILL: $(shim_pids)"
    fi
}

unmount_all() {
    local m t
    # Several passes: mounts can be stacked on one target, and lazy unmounts settle late.
    for _ in 1 2 3; do
        m="$(findmnt -rn -o TARGET | grep -F "$DIR/" | awk -v d="$DIR/" 'index($0, d) == 1' |
            sort -r || true)"
        [[ -n "$m" ]] || return 0
        while read -r t; do
            umount "$t" 2>/dev/null || umount -l "$t" 2>/dev/null || true
        done <<<"$m"
    done
    findmnt -rn -o TARGET | awk -v d="$DIR/" 'index($0, d) == 1' | sed 's/^/testenv: still mounted: /' >&2
}

# CNI state that lives outside our dir: libcni's result cache (keyed by network name), pod netns
# it names (only if not under our dir, i.e. the netns option was ignored), portmap's DNAT chains
# (their jump rule's comment names the network), and the bridge.
cleanup_network() {
    local f ns id nums
    for f in "$CNI_CACHE_DIR/$NET_NAME"-*; do
        [[ -f "$f" ]] || continue
        # containerd caches the loopback plugin's result under the same sandbox id.
        id="$(jq -r '.containerId // empty' "$f" 2>/dev/null || true)"
        [[ "$id" =~ ^[0-9a-f]+$ ]] && rm -f "$CNI_CACHE_DIR/cni-loopback-$id-lo"
        ns="$(jq -r '.netns // empty' "$f" 2>/dev/null || true)"
        case "$ns" in
        /run/netns/* | /var/run/netns/*)
            umount "$ns" 2>/dev/null || true
            rm -f "$ns"
            ;;
        esac
        rm -f "$f"
    done

    if command -v iptables >/dev/null && iptables -t nat -S CNI-HOSTPORT-DNAT >/dev/null 2>&1; then
        # Delete by rule number, highest first, so the numbers of the rest do not shift.
        local rules
        rules="$(iptables -t nat -L CNI-HOSTPORT-DNAT -n --line-numbers |
            grep -F "name: \"$NET_NAME\"" || true)"
        nums="$(awk '{print $1}' <<<"$rules" | sort -rn)"
        for f in $nums; do iptables -t nat -D CNI-HOSTPORT-DNAT "$f" || true; done
        awk '{print $2}' <<<"$rules" | sort -u | while read -r chain; do
            [[ "$chain" == CNI-DN-* ]] || continue
            iptables -t nat -F "$chain" 2>/dev/null || true
            iptables -t nat -X "$chain" 2>/dev/null || true
        done
    fi

    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link del "$BRIDGE" || log "warning: could not delete bridge $BRIDGE"
    fi
}

# Removes the state dir, if it is ours (see MARKER).
remove_state_dir() {
    [[ -d "$DIR" ]] || return 0
    if [[ -e "$MARKER" ]]; then
        # --one-file-system: anything still mounted in there is skipped, never recursed into.
        rm -rf --one-file-system "$DIR" || log "warning: could not remove all of $DIR"
    else
        log "$DIR has no testenv marker; not removing it"
    fi
}
