# shellcheck shell=bash
# Sourced by hack/testenv. metrics-server, the kubelet API's best-known client: it lists Nodes,
# scrapes each node's kubelet (https://<InternalIP>:<kubeletEndpoint port>/metrics/resource) with
# its own credentials, and serves metrics.k8s.io through the API server's aggregation layer (what
# `kubectl top` reads). Run against the kubeadm node (kubeadm.sh), it is the test of a node
# agent's kubelet API as a cluster uses it.
#
# Built from the Go module proxy like the cluster's binaries (kubernetes.sh), into
# $MS_ROOT/bin, which `down` keeps; only when asked (`metrics-server build`, or lazily by
# `kubeadm-node metrics-server up`), so `up --cluster` never pays for it.
#
# Run as a process inside the node's namespaces, not as a pod: a Deployment's pod would need the
# scheduler and a kubelet that runs API-bound pods, which a node of staticlet's refuses. What the
# aggregation layer needs is then made by hand: a Service without a selector, an EndpointSlice at
# $KADM_ADDR:$MS_PORT, and the APIService, whose caBundle is the cluster CA that signed
# metrics-server's serving certificate. The API server (without --enable-aggregator-routing, as
# kubeadm runs it) dials the Service's ClusterIP, which kube-proxy would make reach the endpoint;
# there is no kube-proxy on this node (a DaemonSet's pod), so one DNAT rule in the node's network
# namespace does what kube-proxy's would (ClusterIP:443 -> $KADM_ADDR:$MS_PORT).

readonly MS_ROOT="$CACHE/metrics-server-$METRICS_SERVER_VERSION"
readonly MS_BIN="$MS_ROOT/bin/metrics-server"
# Its port on the node: not 10250, which is the kubelet API's (the node agent's).
readonly MS_PORT=4443
# Its state for the current kubeadm node: under $KADM_DIR, so `kubeadm-node down` removes it
# (and kadm_pids finds the process there, by its namespaces).
readonly MSD="$KADM_DIR/metrics-server"
# The comment on the DNAT rule, to find and delete it.
readonly MS_RULE=staticlet-testenv-metrics-server

# True when $MS_BIN is metrics-server $METRICS_SERVER_VERSION.
ms_current() { [[ "$("$MS_BIN" --version 2>/dev/null)" == "$METRICS_SERVER_VERSION" ]]; }

# The wrapper module: sigs.k8s.io/metrics-server has no replace directives, so requiring it and
# importing its command in tools.go resolves exactly its own dependency versions.
write_ms_wrapper() {
    local w="$1" gomod directives
    gomod="$(mod_gomod sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION")"
    directives="$(go_directive "metrics-server $METRICS_SERVER_VERSION" "$gomod")"
    write_wrapper "$w" metrics-server-wrapper.go.mod sigs.k8s.io/metrics-server/cmd/metrics-server \
        "GO_DIRECTIVES=$directives" "METRICS_SERVER_VERSION=$METRICS_SERVER_VERSION"
}

# Builds metrics-server when $MS_BIN is missing or of another version. The version stamp is
# client-go's, as upstream's Makefile sets it (`metrics-server --version` prints it).
ensure_metrics_server() {
    ms_current && return 0
    command -v go >/dev/null || die "Go is needed to build metrics-server"
    local t0=$SECONDS w="$MS_ROOT/module" v=k8s.io/client-go/pkg/version
    log "building metrics-server $METRICS_SERVER_VERSION from the Go module proxy" \
        "(once; cached in $MS_ROOT/bin)"
    mkdir -p "$MS_ROOT/bin"
    write_ms_wrapper "$w"
    go_tidy "$w" "$MS_ROOT/build-modules.log"
    go_build_in "$MS_ROOT" "$MS_ROOT/bin" "$w" metrics-server \
        sigs.k8s.io/metrics-server/cmd/metrics-server \
        "-s -w -X $v.gitVersion=$METRICS_SERVER_VERSION -X $v.gitTreeState=clean"
    ms_current || die "$MS_BIN does not report version $METRICS_SERVER_VERSION"
    log "metrics-server ready in $((SECONDS - t0))s"
}

# kadm_kubectl ARGS...: our kubectl inside the node, as the admin `kubeadm init` made.
kadm_kubectl() {
    kadm_enter timeout 30 "$KUBE_BIN/kubectl" --kubeconfig /etc/kubernetes/admin.conf "$@"
}

# The objects before metrics-server starts (RBAC, ServiceAccount, Service, EndpointSlice), and
# the APIService, rendered for this node. Run inside the node; paths there are /etc/kubernetes/....
ms_objects() {
    render_template metrics-server.yaml "VERSION=$METRICS_SERVER_VERSION" "PORT=$MS_PORT" \
        "ADDRESS=$KADM_ADDR" "NODE=$KADM_NODE"
}
ms_apiservice() {
    render_template metrics-server-apiservice.yaml \
        "CA_BUNDLE=$(base64 -w0 "$KADM_ROOT/etc-kubernetes/pki/ca.crt")"
}

# The pid of our metrics-server (its --cert-dir is in $MSD), from its pid file.
ms_pid() {
    local pid
    read -r pid 2>/dev/null <"$MSD/metrics-server.pid" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && pid_is "$pid" metrics-server --cert-dir "$MSD/certs" || return 1
    echo "$pid"
}

# Stops it (pid file or not); prints the PIDs it signalled.
ms_stop() {
    local pid
    for pid in $(pids_with_args metrics-server --cert-dir "$MSD/certs"); do
        log "stopping metrics-server $pid"
        stop_pid "$pid" 10
    done
    rm -f "$MSD/metrics-server.pid"
}

# Its credentials: a kubeconfig with a token of its ServiceAccount (24 h; `up` again makes a
# new one), and a serving certificate for metrics-server.kube-system.svc signed by the cluster
# CA (the APIService's caBundle).
ms_credentials() {
    local token pki="$KADM_ROOT/etc-kubernetes/pki"
    token="$(kadm_kubectl -n kube-system create token metrics-server --duration 24h)" ||
        die "could not get a token for ServiceAccount kube-system/metrics-server"
    (umask 077 && render_template kubeconfig-token USER=system:serviceaccount:kube-system:metrics-server \
        "NOTE=a token of its ServiceAccount, 24 h" CLUSTER=staticlet-kadm \
        "SERVER=https://$KADM_ADDR:6443" "CA_DATA=$(base64 -w0 "$pki/ca.crt")" "TOKEN=$token" \
        >"$MSD/kubeconfig")
    issue "$pki/ca" "$MSD/certs" serving /CN=metrics-server metrics-server
}

# The DNAT rule that stands in for kube-proxy (see the header): ClusterIP:443 of the Service to
# the endpoint. ms_dnat_clear deletes every rule carrying our comment (a Service made again gets
# another ClusterIP).
ms_dnat_clear() {
    local rules rule
    kadm_ns_ok || return 0
    rules="$(kadm_enter iptables -w 5 -t nat -S OUTPUT 2>/dev/null)" || return 0
    while read -r rule; do
        [[ "$rule" == *"--comment $MS_RULE "* ]] || continue
        # shellcheck disable=SC2086 # the rule's own words, as iptables -S printed them
        kadm_enter iptables -w 5 -t nat ${rule/#-A /-D } || true
    done <<<"$rules"
}
ms_dnat() {
    local ip
    ip="$(kadm_kubectl -n kube-system get service metrics-server -o jsonpath='{.spec.clusterIP}')" ||
        die "no Service kube-system/metrics-server"
    [[ "$ip" =~ ^[0-9.]+$ ]] || die "Service kube-system/metrics-server has ClusterIP '$ip'"
    ms_dnat_clear
    kadm_enter iptables -w 5 -t nat -A OUTPUT -d "$ip/32" -p tcp --dport 443 \
        -m comment --comment "$MS_RULE" -j DNAT --to-destination "$KADM_ADDR:$MS_PORT" ||
        die "could not add the DNAT rule for $ip:443"
    echo "$ip"
}

# ms_argv INSECURE: its command line, one word a line. The kubelet's serving certificate is
# checked against the cluster CA (a node agent's certificate is signed by it once its serving
# CSR is approved), unless INSECURE is 1 (--kubelet-insecure-tls, for a self-signed one).
ms_argv() {
    local -a argv=("$MS_BIN"
        --kubeconfig "$MSD/kubeconfig"
        --authentication-kubeconfig "$MSD/kubeconfig"
        --authorization-kubeconfig "$MSD/kubeconfig"
        --bind-address "$KADM_ADDR" --secure-port "$MS_PORT" --cert-dir "$MSD/certs"
        --tls-cert-file "$MSD/certs/serving.crt" --tls-private-key-file "$MSD/certs/serving.key"
        # The Node's InternalIP and status.daemonEndpoints.kubeletEndpoint.Port: what a node
        # agent registers is what is scraped.
        --kubelet-preferred-address-types InternalIP --kubelet-use-node-status-port
        --metric-resolution 15s
        # Each scrape and its outcome in the log.
        --v 2)
    if (($1)); then
        argv+=(--kubelet-insecure-tls)
    else
        argv+=(--kubelet-certificate-authority /etc/kubernetes/pki/ca.crt)
    fi
    printf '%s\n' "${argv[@]}"
}

# Starts it inside the node's namespaces and waits (bounded: 30 s) until it serves TLS with its
# certificate under the Service's name; prints its /livez and /readyz answers.
ms_start() {
    local -a argv
    local i pid="" code="" url="https://metrics-server.kube-system.svc:$MS_PORT"
    local deadline=$((SECONDS + 30))
    local -a curl=(kadm_enter curl -sS --max-time 2 -o /dev/null -w '%{http_code}'
        --resolve "metrics-server.kube-system.svc:$MS_PORT:$KADM_ADDR"
        --cacert "$KADM_ROOT/etc-kubernetes/pki/ca.crt")
    mapfile -t argv < <(ms_argv "$1")
    log "starting metrics-server (log $MSD/metrics-server.log)"
    spawn_daemon "$MSD/metrics-server.pid" "$MSD/metrics-server.log" \
        nsenter --net="$KADM_NETNS_PATH" --mount="$KADM_MNTNS" --uts="$KADM_UTSNS" -- "${argv[@]}"
    for ((i = 0; i < 150 && SECONDS < deadline; i++)); do
        if [[ -z "$pid" && -s "$MSD/metrics-server.pid" ]]; then read -r pid <"$MSD/metrics-server.pid" || pid=""; fi
        if [[ -n "$pid" ]] && ! running "$pid"; then
            tail -n 30 "$MSD/metrics-server.log" >&2 || true
            die "metrics-server exited during start-up (log above; full log $MSD/metrics-server.log)"
        fi
        code="$("${curl[@]}" "$url/livez" 2>/dev/null)" || code=""
        [[ "$code" == 200 ]] && break
        sleep 0.2
    done
    [[ "$code" == 200 ]] ||
        die "metrics-server's /livez did not answer 200 within 30 s (log $MSD/metrics-server.log)"
    code="$("${curl[@]}" "$url/readyz" 2>/dev/null)" || code="no answer"
    # Its readiness check "metric-storage-ready" passes once a scrape has succeeded.
    [[ "$code" == 200 ]] || code+=" until its first good scrape"
    echo "/livez 200, /readyz $code"
}

# The APIService's Available condition: "Status Reason: message".
ms_available() {
    local json
    json="$(kadm_kubectl get apiservice v1beta1.metrics.k8s.io -o json 2>/dev/null)" || {
        echo "(no APIService)"
        return 0
    }
    jq -r '(.status.conditions // [])[] | select(.type == "Available") |
        "\(.status) \(.reason // "")\(if .message then ": " + .message else "" end)"' <<<"$json"
}

# Waits (bounded: 30 s) until the aggregation layer has judged the APIService Available, and
# prints its verdict whatever it is.
ms_wait_available() {
    local i cond=""
    for ((i = 0; i < 60; i++)); do
        cond="$(ms_available)" || cond=""
        [[ "$cond" == True* ]] && break
        sleep 0.5
    done
    echo "${cond:-no Available condition}"
}

# GET /apis/metrics.k8s.io/v1beta1/nodes through the API server: its answer, or its error.
ms_nodes() {
    local out
    if out="$(kadm_kubectl get --raw /apis/metrics.k8s.io/v1beta1/nodes 2>&1)"; then
        jq -c '{items: [.items[] | {node: .metadata.name, window, usage}]}' <<<"$out" 2>/dev/null ||
            echo "$out"
    else
        echo "error: $out"
    fi
}

# kubeadm-node metrics-server up: prints the summary.
ms_up() {
    local insecure="$1" t0=$SECONDS ip served cond
    local tls="certificate checked against /etc/kubernetes/pki/ca.crt"
    if ((insecure)); then tls="--kubelet-insecure-tls"; fi
    kadm_ns_ok || die "the kubeadm node is not up ($0 kubeadm-node up)"
    [[ -s "$KADM_ROOT/etc-kubernetes/admin.conf" ]] ||
        die "the kubeadm node has no /etc/kubernetes/admin.conf: run kubeadm init in it first"
    kadm_kubectl get --raw /readyz >/dev/null ||
        die "the node's API server does not answer (is its agent running kubeadm's control plane?)"
    ensure_metrics_server
    ms_stop >/dev/null
    # Made again below, so the availability check's verdict is about this metrics-server.
    kadm_kubectl delete apiservice v1beta1.metrics.k8s.io --ignore-not-found >/dev/null
    mkdir -p "$MSD/certs"
    ms_objects | kadm_kubectl apply -f - >/dev/null || die "could not apply metrics-server's objects"
    ms_credentials
    ip="$(ms_dnat)"
    served="$(ms_start "$insecure")"
    ms_apiservice | kadm_kubectl apply -f - >/dev/null || die "could not apply the APIService"
    cond="$(ms_wait_available)"
    cat <<EOF
testenv: metrics-server up ($((SECONDS - t0))s)
  binary          $MS_BIN ($METRICS_SERVER_VERSION)
  process         pid $(ms_pid) in the node's namespaces, https://$KADM_ADDR:$MS_PORT ($served)
  log             $MSD/metrics-server.log
  kubelets        InternalIP, kubeletEndpoint port, $tls
  service         kube-system/metrics-server $ip:443 (no selector; EndpointSlice $KADM_ADDR:$MS_PORT; DNAT in the node for kube-proxy)
  APIService      v1beta1.metrics.k8s.io Available=$cond
  nodes           $(ms_nodes)
EOF
}

# kubeadm-node metrics-server down: the process, its objects (when the API server answers), the
# DNAT rule and $MSD. Prints the PIDs it signalled.
ms_down() {
    ms_stop
    if kadm_ns_ok && kadm_kubectl get --raw /readyz >/dev/null 2>&1; then
        { ms_apiservice && echo --- && ms_objects; } |
            kadm_kubectl delete --ignore-not-found --wait=false -f - >/dev/null ||
            log "warning: could not delete every metrics-server object"
    fi
    ms_dnat_clear
    rm -rf "$MSD"
}

# kubeadm-node metrics-server status: one line each for the process and the APIService.
ms_status() {
    local pid
    if pid="$(ms_pid)"; then
        echo "metrics-server: pid $pid, https://$KADM_ADDR:$MS_PORT, log $MSD/metrics-server.log"
    else
        echo "metrics-server: not running"
    fi
    if kadm_ns_ok && [[ -s "$KADM_ROOT/etc-kubernetes/admin.conf" ]]; then
        echo "APIService v1beta1.metrics.k8s.io: Available=$(ms_available)"
        echo "nodes: $(ms_nodes)"
    fi
    [[ -n "$pid" ]]
}
