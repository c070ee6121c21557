# shellcheck shell=bash
# Sourced by hack/testenv. The commands (cmd_<name>, run by the dispatcher with the command's
# arguments): each checks its arguments and composes the parts above.

cmd_up() {
    local arg cluster=0
    for arg in "$@"; do
        case "$arg" in
        --cluster) cluster=1 ;;
        *) usage ;;
        esac
    done
    need_root
    check_dir
    take_lock
    local t0=$SECONDS warm=0 pid cluster_summary=""
    local verified="skipped (instance was already up; STATICLET_TESTENV_VERIFY=1 forces it)"

    if ((cluster)); then
        ensure_packages "${PACKAGES[@]}" "${CLUSTER_PACKAGES[@]}"
    else
        ensure_packages "${PACKAGES[@]}"
    fi
    # The containerd 2 instance's dir is inside the default one's, which must be ours as well.
    local d
    for d in "$BASE_DIR" "$DIR"; do
        if [[ -d "$d" && ! -e "$d/.staticlet-testenv" && -n "$(ls -A "$d")" ]]; then
            die "$d exists, is not empty and was not made by testenv; pick another STATICLET_TESTENV_DIR"
        fi
        mkdir -p "$d"
        touch "$d/.staticlet-testenv"
    done
    if [[ "$RUNTIME" == containerd2 ]]; then ensure_containerd2; fi
    write_crictl_yaml
    build_pause

    if is_up && ! config_changed; then
        warm=1
    else
        # Restarting containerd leaves running pods alone: their shims reconnect to the new one.
        if pid="$(daemon_pid)"; then
            log "settings changed since containerd $pid started; restarting it"
            stop_pid "$pid" 15 >/dev/null
        fi
        start_containerd
    fi
    check_cri_plugin
    ensure_images
    if kadm_role; then ensure_kubeadm_images; fi
    if ((!warm)) || [[ "${STATICLET_TESTENV_VERIFY:-}" == 1 ]]; then
        if ensure_crictl; then verified="$(verify_cri)"; else verified="$(verify_ctr)"; fi
    fi
    # After the runtime, so `up` without --cluster is unchanged, and a cluster is only added to a
    # containerd that works. A cluster started earlier is left running by a plain `up`.
    if ((cluster)); then cluster_summary="$(cluster_up)"; fi

    cat <<EOF
testenv: up ($( ((warm)) && echo "already running" || echo "started"), $((SECONDS - t0))s)
  runtime         $RUNTIME: $("$CONTAINERD" --version 2>/dev/null | awk '{print $3}'), $("$RUNC" --version | head -n 1)
  containerd pid  $(daemon_pid)  (log $LOG)
  CRI socket      unix://$SOCK
  images          $PAUSE_IMAGE (sandbox), $TEST_IMAGE
  CNI             $NET_NAME: bridge $BRIDGE, $SUBNET
  crictl          $(find_crictl 2>/dev/null || echo "none")
  check           $verified
EOF
    if ((cluster)); then printf '%s\n' "$cluster_summary"; fi
    if [[ "$RUNTIME" == containerd2 ]]; then
        echo "  use it with     eval \"\$($0 env --runtime containerd2)\""
    else
        echo "  use it with     eval \"\$($0 env)\""
    fi
}

cmd_node_kubeconfig() {
    [[ $# -eq 1 ]] || usage
    check_dir
    valid_node_name "$1" || die "'$1' is not a valid Node name (lowercase DNS subdomain)"
    node_kubeconfig "$1"
}

# bootstrap-kubeconfig [TTL]: no lock, as node-kubeconfig: every call mints a token of its own.
cmd_bootstrap_kubeconfig() {
    (($# <= 1)) || usage
    check_dir
    if [[ ! -s "$ADMIN_KUBECONFIG" ]] || ! comp_pid kube-apiserver >/dev/null; then
        die "the cluster is not up ($0 up --cluster)"
    fi
    bootstrap_kubeconfig "${1:-1h}"
}

cmd_env() {
    no_args "$@"
    check_dir
    printf 'export CONTAINER_RUNTIME_ENDPOINT=%q\n' "unix://$SOCK"
    printf 'export CONTAINERD_ADDRESS=%q\n' "$SOCK"
    # The state dir as given (the containerd 2 instance's is inside it), and the runtime, so
    # that the tests' own calls of this script (restart-runtime, ...) reach the same instance.
    printf 'export STATICLET_TESTENV_DIR=%q\n' "$BASE_DIR"
    printf 'export STATICLET_TESTENV_RUNTIME=%q\n' "$RUNTIME"
    printf 'export STATICLET_TEST_POD_SUBNET=%q\n' "$SUBNET"
    printf 'export STATICLET_TEST_IMAGE=%q\n' "$TEST_IMAGE"
    printf 'export STATICLET_PAUSE_IMAGE=%q\n' "$PAUSE_IMAGE"
    printf 'export CRI_CONFIG_FILE=%q\n' "$DIR/crictl.yaml"
    local c
    if c="$(find_crictl)"; then printf 'export STATICLET_TESTENV_CRICTL_BIN=%q\n' "$c"; fi
    # The cluster's, only while its API server runs (a pid check; `env` must stay cheap).
    if [[ -s "$ADMIN_KUBECONFIG" ]] && comp_pid kube-apiserver >/dev/null; then
        printf 'export KUBECONFIG=%q\n' "$ADMIN_KUBECONFIG"
        printf 'export STATICLET_KUBECONFIG=%q\n' "$CL/nodes/$DEFAULT_NODE/kubeconfig"
        printf 'export STATICLET_KUBE_BIN=%q\n' "$KUBE_BIN"
        printf 'export STATICLET_K8S_VERSION=%q\n' "$K8S_VERSION"
        # First in PATH: tests must run the kubectl of the server's release, not the image's
        # Google Cloud SDK one.
        # shellcheck disable=SC2016 # $PATH is for the shell that evals this
        printf 'export PATH=%q:"$PATH"\n' "$KUBE_BIN"
    fi
}

cmd_status() {
    no_args "$@"
    check_dir
    local pid rc=3
    if pid="$(daemon_pid)"; then
        if answers; then
            echo "up: containerd pid $pid, socket unix://$SOCK"
            rc=0
        else
            echo "unhealthy: containerd pid $pid runs but does not answer on $SOCK"
            rc=1
        fi
    else
        echo "down ($DIR)"
    fi
    if ! cluster_status && ((rc == 0)); then rc=1; fi
    return "$rc"
}

# For tests of a runtime that goes away: stop containerd alone (SIGTERM), leaving its shims and
# so every running container alive, as a containerd upgrade or crash does.
cmd_stop_runtime() {
    no_args "$@"
    need_root
    check_dir
    take_lock
    local pid
    pid="$(daemon_pid)" || die "not up"
    stop_pid "$pid" 15 >/dev/null
    log "containerd $pid stopped; containers keep running under their shims"
}

# For runtime fault tests: the PID of containerd, to kill it in the middle of a call.
cmd_runtime_pid() {
    no_args "$@"
    check_dir
    daemon_pid || die "not up"
}

cmd_restart_runtime() {
    no_args "$@"
    need_root
    check_dir
    take_lock
    local pid
    if pid="$(daemon_pid)"; then stop_pid "$pid" 15 >/dev/null; fi
    start_containerd
    check_cri_plugin
    log "containerd restarted"
}

# For API fault tests: kube-apiserver stopped (SIGTERM) and started again, as an upgrade or a
# crash does; its watch cache starts anew from etcd, so a watch resuming from a compacted
# revision meets a real 410 Gone.
cmd_restart_apiserver() {
    no_args "$@"
    need_root
    check_dir
    take_lock
    comp_pid kube-apiserver >/dev/null || die "the cluster is not up ($0 up --cluster)"
    stop_component kube-apiserver >/dev/null
    start_component kube-apiserver 120
    log "kube-apiserver restarted (pid $(comp_pid kube-apiserver))"
}

# For API fault tests: etcd compacted, physically, at its newest revision (through its gRPC
# gateway; the API server does the same every 5 minutes, keeping nothing older). Prints the
# revision.
cmd_compact_etcd() {
    no_args "$@"
    check_dir
    local url="http://127.0.0.1:$ETCD_CLIENT_PORT/v3/kv" revision
    comp_pid etcd >/dev/null || die "the cluster is not up ($0 up --cluster)"
    revision="$(curl -sf -X POST "$url/range" -d '{"key": "AA==", "limit": 1}' | jq -r .header.revision)" ||
        die "etcd at $url gave no revision"
    curl -sf -X POST "$url/compaction" -d "{\"revision\": \"$revision\", \"physical\": true}" >/dev/null ||
        die "etcd at $url refused to compact at $revision"
    echo "$revision"
}

cmd_down() {
    no_args "$@"
    need_root
    check_dir
    take_lock
    local stopped=""
    # `down --runtime containerd2` takes that instance alone: the cluster and the kubeadm node
    # are the default instance's, which other tests may be using.
    if [[ "$RUNTIME" == containerd ]]; then
        # The containerd 2 instance in our dir first, whole (this lock is inherited: take_lock).
        if [[ -e "$DIR/containerd2/.staticlet-testenv" ]]; then
            STATICLET_TESTENV_DIR="$BASE_DIR" STATICLET_TESTENV_RUNTIME=containerd2 "$SELF" down >&2 ||
                log "warning: the containerd 2 instance did not go down cleanly"
        fi
        # The kubeadm node: its own containerd and namespaces, nothing of ours in them.
        stopped="$(kadm_down)"
        # The cluster (controller manager, API server, etcd), bounded with SIGKILL after 20 s.
        stopped+=" $(cluster_down)"
    fi
    if answers; then
        remove_workloads
    fi
    stopped+=" $(stop_containerd)"
    kill_orphans
    unmount_all
    cleanup_network
    # What we stopped may linger as zombies until PID 1 reaps them (every ~2 s here): wait, so
    # no etcd/kube-*/containerd entry is left in the process table once `down` returns.
    # shellcheck disable=SC2086 # a list of PIDs, one a word
    wait_reaped $stopped
    remove_state_dir
    echo "testenv: down"
}

# kubeadm-node SUBCOMMAND: the node of kubeadm.sh. `exec` replaces this process, so CMD's exit
# status, stdin and signals are the caller's own.
cmd_kubeadm_node() {
    local sub="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$sub" in
    up | down)
        no_args "$@"
        need_root
        check_dir
        take_lock
        if [[ "$sub" == up ]]; then
            kadm_up
        else
            # shellcheck disable=SC2046 # a list of PIDs, one a word
            wait_reaped $(kadm_down)
            echo "testenv: kubeadm node down"
        fi
        ;;
    env)
        no_args "$@"
        check_dir
        kadm_env
        ;;
    config)
        no_args "$@"
        check_dir
        [[ -d "$KADM_DIR" ]] || die "the kubeadm node is not up ($0 kubeadm-node up)"
        kadm_write_config
        echo "$KADM_CONFIG"
        ;;
    metrics-server) cmd_kadm_metrics_server "$@" ;;
    exec)
        (($# > 0)) || usage
        need_root
        check_dir
        kadm_ns_ok || die "the kubeadm node is not up ($0 kubeadm-node up)"
        exec nsenter --net="$KADM_NETNS_PATH" --mount="$KADM_MNTNS" --uts="$KADM_UTSNS" \
            --wd="$PWD" -- "$@"
        ;;
    *) usage ;;
    esac
}

# metrics-server build: the binary of metrics-server.sh, built if missing; prints its path.
cmd_metrics_server() {
    [[ "${1:-}" == build && $# -eq 1 ]] || usage
    need_root
    check_dir
    take_lock
    ensure_metrics_server
    echo "$MS_BIN"
}

# helm build: the binary of helm.sh, built if missing; prints its path.
cmd_helm() {
    [[ "${1:-}" == build && $# -eq 1 ]] || usage
    check_dir
    take_lock
    ensure_helm
    echo "$HELM_BIN"
}

# kubeadm-node metrics-server up [--kubelet-insecure-tls] | down | status (metrics-server.sh).
cmd_kadm_metrics_server() {
    local sub="${1:-}" insecure=0
    [[ $# -gt 0 ]] && shift
    need_root
    check_dir
    case "$sub" in
    up)
        case "$*" in
        "") ;;
        --kubelet-insecure-tls) insecure=1 ;;
        *) usage ;;
        esac
        take_lock
        ms_up "$insecure"
        ;;
    down)
        no_args "$@"
        take_lock
        # shellcheck disable=SC2046 # a list of PIDs, one a word
        wait_reaped $(ms_down)
        echo "testenv: metrics-server down"
        ;;
    status)
        no_args "$@"
        ms_status
        ;;
    *) usage ;;
    esac
}
