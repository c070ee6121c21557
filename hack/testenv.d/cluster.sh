# shellcheck shell=bash
# Sourced by hack/testenv. The cluster of `up --cluster`: etcd, kube-apiserver and
# kube-controller-manager of one pinned Kubernetes release, on loopback only, so staticlet's
# mirror pods meet the real API server with its real Node authorizer and NodeRestriction
# admission (a fake server would only encode our own reading of those rules). No scheduler:
# nothing here should place pods but staticlet itself. The binaries come from kubernetes.sh and
# the credentials from pki.sh; the etcd data, logs and pid files live in $CL, which `down` removes.

# In start order (components.sh says what each one is).
readonly COMPONENTS=(etcd kube-apiserver kube-controller-manager)

# PIDs running our instance of component $1 (a scan of /proc, for strays without a pid file).
comp_pids() {
    local -a id
    read -r -a id <<<"$(comp_id "$1")"
    pids_with_args "$1" "${id[@]}"
}

# The pid in the pid file, if it still runs our instance of $1 (no /proc scan: `env` uses it).
comp_pid() {
    local pid
    local -a id
    [[ -r "$CL/$1.pid" ]] || return 1
    read -r pid <"$CL/$1.pid" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    read -r -a id <<<"$(comp_id "$1")"
    pid_is "$pid" "$1" "${id[@]}" || return 1
    echo "$pid"
}

# True when our instance of component $1 runs with exactly the command line we want and answers.
comp_current() {
    local name="$1" pid want
    local -a cur
    pid="$(comp_pid "$name")" || return 1
    want="$(comp_argv "$name")"
    if mapfile -d '' cur 2>/dev/null <"/proc/$pid/cmdline" &&
        [[ "$(printf '%s\n' "${cur[@]}")" == "$want" ]] && comp_healthy "$name"; then
        return 0
    fi
    log "$name $pid runs with other settings or is unhealthy; restarting it"
    return 1
}

# stop_component NAME: stops our instance (pid file or not); prints the PIDs it signalled.
stop_component() {
    local name="$1" pid
    for pid in $(comp_pids "$name"); do
        log "stopping $name $pid"
        stop_pid "$pid" 20
    done
    rm -f "$CL/$name.pid"
}

start_component() {
    local name="$1" secs="$2" port pid="" i
    local -a argv
    stop_component "$name" >/dev/null # strays: our instance without a valid pid file
    # A port held by someone else would make the daemon exit at once, or worse, let the
    # readiness check below talk to the other process.
    for port in $(comp_port "$name"); do
        if [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]; then
            die "port $port (for $name) is already in use: $(ss -Hltnp "sport = :$port" | head -n 1)"
        fi
    done
    mapfile -t argv < <(comp_argv "$name")
    if [[ "$name" == kube-apiserver ]]; then
        render_template audit-policy.yaml >"$CL/audit-policy.yaml"
    fi
    # Whatever restarts must be checked again (see cluster_up).
    rm -f "$CL/verified"
    log "starting $name (log $CL/$name.log)"
    spawn_daemon "$CL/$name.pid" "$CL/$name.log" "${argv[@]}"
    for ((i = 0; i < secs * 5; i++)); do
        if [[ -z "$pid" && -s "$CL/$name.pid" ]]; then read -r pid <"$CL/$name.pid" || pid=""; fi
        if [[ -n "$pid" ]] && ! running "$pid"; then
            tail -n 30 "$CL/$name.log" >&2 || true
            die "$name exited during start-up (log above, full log in $CL/$name.log)"
        fi
        if [[ -n "$pid" ]] && comp_healthy "$name"; then
            return 0
        fi
        sleep 0.2
    done
    tail -n 30 "$CL/$name.log" >&2 || true
    die "$name was not healthy within ${secs}s (full log in $CL/$name.log)"
}

# Proof the cluster is usable the way the tests use it, with the kubectl we built. Prints what it
# checked.
verify_cluster() {
    local out server client nkc i
    out="$(kubectl_as "$ADMIN_KUBECONFIG" get --raw /readyz)" || die "kubectl get --raw /readyz failed"
    [[ "$out" == ok ]] || die "/readyz said '$out'"
    out="$(kubectl_as "$ADMIN_KUBECONFIG" version -o json)" || die "kubectl version failed"
    server="$(jq -r .serverVersion.gitVersion <<<"$out")" || true
    client="$(jq -r .clientVersion.gitVersion <<<"$out")" || true
    [[ "$server" == "$K8S_VERSION" && "$client" == "$K8S_VERSION" ]] ||
        die "version stamps are wrong: $(jq -c '{c: .clientVersion.gitVersion, s: .serverVersion.gitVersion}' <<<"$out")"
    # The node identity: the Node authorizer lets a node create pods (NodeRestriction then
    # allows mirror pods only) and read its own Node. Since AuthorizeNodeWithSelectors (on by
    # default in 1.35) a node may not list all Nodes ("cannot read all nodes, only its own Node
    # object"): list/watch must carry fieldSelector metadata.name=<node>, as kubelet's does.
    nkc="$(node_kubeconfig "$DEFAULT_NODE")"
    out="$(kubectl_as "$nkc" auth can-i create pods 2>&1)" || true
    [[ "$out" == yes ]] || die "system:node:$DEFAULT_NODE may not create pods (can-i: $out)"
    out="$(kubectl_as "$nkc" get nodes --field-selector "metadata.name=$DEFAULT_NODE" 2>&1)" ||
        die "system:node:$DEFAULT_NODE may not list its own Node: $out"
    # The controller manager works with its per-controller credentials once the service
    # account controller has made the default ServiceAccount (ordinary pods need it). Bounded.
    for ((i = 0; i < 60; i++)); do
        kubectl_as "$ADMIN_KUBECONFIG" -n default get serviceaccount default >/dev/null 2>&1 &&
            break
        sleep 0.5
    done
    ((i < 60)) || die "kube-controller-manager made no default ServiceAccount within 30 s"
    echo "readyz, versions $K8S_VERSION, node identity can create pods + read its Node," \
        "controller manager made the default ServiceAccount; $(verify_bootstrap)"
}

# Builds, starts and checks what is missing; prints its lines of the `up` summary.
cluster_up() {
    local t0=$SECONDS pki spec name started=0
    local verified="skipped (cluster was already up; STATICLET_TESTENV_VERIFY=1 forces it)"
    ensure_kube_binaries
    mkdir -p "$CL"
    pki="$(ensure_pki)"
    if [[ "$pki" == new ]]; then
        # A new PKI is a new cluster: what runs uses the old certificates, and etcd holds tokens
        # and CA bundles of the old keys. Stop top-down, while etcd still answers (an API server
        # whose etcd is already gone hangs in shutdown until SIGKILL), and start from nothing.
        cluster_down >/dev/null
        rm -rf "$CL/etcd"
    fi
    node_kubeconfig "$DEFAULT_NODE" >/dev/null
    # In dependency order; bounded waits generous enough for a cold start beside a cargo build.
    for spec in etcd:60 kube-apiserver:120 kube-controller-manager:60; do
        name="${spec%:*}"
        if ! comp_current "$name"; then
            start_component "$name" "${spec#*:}"
            started=1
        fi
    done
    ensure_bootstrap_rbac "$started"
    # A stamp, not just "started now": a run that started the cluster but failed its check must
    # not let the next run call the cluster good.
    if ((started)) || [[ ! -e "$CL/verified" || "${STATICLET_TESTENV_VERIFY:-}" == 1 ]]; then
        verified="$(verify_cluster)"
        touch "$CL/verified"
    fi
    cat <<EOF
  cluster         Kubernetes $K8S_VERSION + etcd $ETCD_VERSION ($( ((started)) && echo "started" || echo "already running"), $((SECONDS - t0))s)
  kube-apiserver  $APISERVER_URL (pid $(comp_pid kube-apiserver))
  etcd            http://127.0.0.1:$ETCD_CLIENT_PORT (pid $(comp_pid etcd))
  controller-mgr  https://127.0.0.1:$KCM_PORT (pid $(comp_pid kube-controller-manager))
  binaries        $KUBE_BIN
  admin           $ADMIN_KUBECONFIG
  node            $CL/nodes/$DEFAULT_NODE/kubeconfig (others: $0 node-kubeconfig NAME)
  bootstrap       kubeadm's token auth and RBAC (a token: $0 bootstrap-kubeconfig [TTL])
  logs            $CL/*.log
  cluster check   $verified
EOF
}

# Stops every component; prints the PIDs it signalled.
cluster_down() {
    local n
    # Reverse order: an API server whose etcd is gone hangs in shutdown until SIGKILL.
    for ((n = ${#COMPONENTS[@]} - 1; n >= 0; n--)); do
        stop_component "${COMPONENTS[n]}"
    done
}

# One line per component. Fails when a cluster was set up (its PKI exists) or a part of one runs,
# but not every part is up and healthy; a cluster never asked for is not a failure.
cluster_status() {
    local c pid ok=0 strays=""
    for c in "${COMPONENTS[@]}"; do strays+="$(comp_pids "$c")"; done
    if [[ ! -d "$PKI" && -z "$strays" ]]; then
        echo "cluster: not started (hack/testenv up --cluster)"
        return 0
    fi
    for c in "${COMPONENTS[@]}"; do
        if pid="$(comp_pid "$c")"; then
            if comp_healthy "$c"; then
                echo "cluster: $c up: pid $pid, port $(comp_port "$c"), log $CL/$c.log"
                ok=$((ok + 1))
            else
                echo "cluster: $c unhealthy: pid $pid runs but is not healthy (log $CL/$c.log)"
            fi
        else
            echo "cluster: $c down"
        fi
    done
    ((ok == ${#COMPONENTS[@]})) || return 1
    echo "cluster: Kubernetes $K8S_VERSION at $APISERVER_URL, KUBECONFIG=$ADMIN_KUBECONFIG"
}
