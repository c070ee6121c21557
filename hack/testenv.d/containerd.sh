# shellcheck shell=bash
# Sourced by hack/testenv. The private containerd: its configuration (templates/containerd-
# config.toml and the CNI network, templates/cni.conflist), finding our daemon, starting it and
# proving its CRI plugin loaded.

ctrc() { timeout "${CTR_TIMEOUT:-30}" "$CTR" -a "$SOCK" "$@"; }

containerd_pids() { pids_with_args containerd --config "$CONFIG"; }
shim_pids() { pids_with_args 'containerd-shim*' -address "$SOCK"; }

daemon_pid() {
    local pid
    [[ -r "$PIDFILE" ]] || return 1
    read -r pid <"$PIDFILE" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    # A recycled PID must not pass for ours: check it runs containerd with our config.
    [[ $'\n'"$(containerd_pids)"$'\n' == *$'\n'"$pid"$'\n'* ]] || return 1
    echo "$pid"
}

answers() { CTR_TIMEOUT=5 ctrc version >/dev/null 2>&1; }

is_up() { daemon_pid >/dev/null && answers; }

# ---------------------------------------------------------------------------------------------
# Configuration

cni_version() {
    # 1.0.0 if every plugin we use speaks it, else 0.4.0 (both are in Debian 12's plugins).
    local p
    for p in bridge host-local portmap loopback; do
        [[ -x "$CNI_BIN/$p" ]] || die "CNI plugin $CNI_BIN/$p missing"
        if ! CNI_COMMAND=VERSION "$CNI_BIN/$p" </dev/null 2>/dev/null |
            jq -e '.supportedVersions | index("1.0.0")' >/dev/null; then
            echo 0.4.0
            return
        fi
    done
    echo 1.0.0
}

# The loopback plugin is not in the list: containerd's CRI calls it on its own for every pod (it
# only needs to be in bin_dir, checked by cni_version).
render_cni() {
    local version
    version="$(cni_version)"
    render_template cni.conflist "CNI_VERSION=$version" "NET_NAME=$NET_NAME" "BRIDGE=$BRIDGE" \
        "SUBNET=$SUBNET" "DIR=$DIR"
}

# containerd 1.6 reads configuration version 2, containerd 2 its version 3 (templates/
# containerd2-config.toml), which also names our build of the shim and runc.
render_config() {
    local -a common=("DIR=$DIR" "SOCK=$SOCK" "TTRPC_SOCK=$TTRPC_SOCK" "PAUSE_IMAGE=$PAUSE_IMAGE"
        "CNI_BIN=$CNI_BIN" "CNI_CONF_DIR=$CNI_CONF_DIR" "RUNC_ROOT=$RUNC_ROOT")
    if [[ "$RUNTIME" == containerd2 ]]; then
        render_template containerd2-config.toml "${common[@]}" \
            "SHIM=$CD2_BIN/containerd-shim-runc-v2" "RUNC=$RUNC"
    else
        render_template containerd-config.toml "${common[@]}"
    fi
}

write_config() {
    mkdir -p "$DIR/root" "$DIR/state" "$RUNC_ROOT" "$CNI_CONF_DIR" "$DIR/opt" "$DIR/cni-ipam"
    render_cni >"$CNI_CONFLIST"
    render_config >"$CONFIG"
}

# True when the running instance was started from other settings (this script was edited).
config_changed() {
    ! cmp -s <(render_config) "$CONFIG" || ! cmp -s <(render_cni) "$CNI_CONFLIST"
}

# ---------------------------------------------------------------------------------------------
# Daemon

start_containerd() {
    local stale
    # A containerd running our config without a valid pid file (pid file lost, or it hangs):
    # stop it rather than start a second one on the same root.
    for stale in $(containerd_pids); do
        log "stopping unresponsive containerd $stale"
        stop_pid "$stale" 15 >/dev/null
    done
    rm -f "$SOCK" "$TTRPC_SOCK" "$PIDFILE"
    write_config
    log "starting containerd ($LOG)"
    spawn_daemon "$PIDFILE" "$LOG" "$CONTAINERD" --config "$CONFIG"

    local pid="" i
    for ((i = 0; i < 300; i++)); do # 30 s
        if [[ -z "$pid" && -s "$PIDFILE" ]]; then read -r pid <"$PIDFILE" || pid=""; fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOG" >&2 || true
            die "containerd exited during start-up (log above, full log in $LOG)"
        fi
        if [[ -S "$SOCK" ]] && answers; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$LOG" >&2 || true
    die "containerd did not answer on $SOCK within 30 s"
}

# The CRI plugin loading is what matters; containerd keeps serving even when CRI fails to load
# (e.g. a config error), which would otherwise surface only as "unknown service" in the tests.
check_cri_plugin() {
    local st
    st="$(ctrc plugins ls 2>/dev/null | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" {print $NF}')"
    [[ "$st" == ok ]] || {
        grep -i 'cri' "$LOG" | tail -n 10 >&2 || true
        die "containerd's CRI plugin is not loaded (status '${st:-absent}'); see $LOG"
    }
}
