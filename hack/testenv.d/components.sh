# shellcheck shell=bash
# Sourced by hack/testenv. What each control-plane component of the cluster is: the argument that
# tells our instance from any other, the command line it runs with, its health check and its
# ports. cluster.sh starts, checks and stops them.

# An argument pair only our instance of component $1 has (pids_with_args/pid_is take it).
comp_id() {
    case "$1" in
    etcd) echo "--data-dir $CL/etcd" ;;
    kube-apiserver) echo "--tls-cert-file $PKI/apiserver.crt" ;;
    kube-controller-manager) echo "--kubeconfig $KCM_KUBECONFIG" ;;
    *) die "unknown component $1" ;;
    esac
}

# comp_argv NAME: the command line the component must run with, one word a line (none holds a
# newline). A running one whose command line differs (this script or the version was changed)
# is restarted by cluster_up.
comp_argv() {
    local -a argv
    case "$1" in
    etcd)
        argv=("$KUBE_BIN/etcd" --name staticlet-testenv --data-dir "$CL/etcd"
            --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT"
            --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT"
            --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT"
            --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT"
            --initial-cluster "staticlet-testenv=http://127.0.0.1:$ETCD_PEER_PORT"
            --initial-cluster-state new
            # Throw-away data: an fsync per write would only slow every API call down.
            --unsafe-no-fsync
            --log-level warn)
        ;;
    kube-apiserver)
        # shellcheck disable=SC2054 # the commas are in flag values (Node,RBAC), not separators
        argv=("$KUBE_BIN/kube-apiserver"
            --bind-address 127.0.0.1 --advertise-address 127.0.0.1
            --secure-port "$APISERVER_PORT"
            # Its self-signed fallback certificates would otherwise go to /var/run/kubernetes.
            --cert-dir "$CL/apiserver"
            --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT"
            --client-ca-file "$PKI/ca.crt"
            --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key"
            --service-account-key-file "$PKI/sa.pub"
            --service-account-signing-key-file "$PKI/sa.key"
            --service-account-issuer https://kubernetes.default.svc
            --service-cluster-ip-range "$SERVICE_CIDR"
            # Node: what a node may read and write (its own Node, pods bound to it, ...);
            # NodeRestriction (added to the default admission plugins): mirror pods only, and
            # only for itself. Exactly the rules staticlet's mirror pods must pass.
            --authorization-mode Node,RBAC
            --enable-admission-plugins NodeRestriction
            # Bootstrap tokens (Secrets bootstrap-token-<id> in kube-system) authenticate, as
            # kubeadm sets it: what a node's TLS bootstrap starts from (bootstrap.sh).
            --enable-bootstrap-token-auth=true
            --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt"
            --kubelet-client-key "$PKI/apiserver-kubelet-client.key"
            --kubelet-certificate-authority "$PKI/ca.crt"
            --kubelet-preferred-address-types InternalIP,Hostname
            # The "kubernetes" Service endpoints would be 127.0.0.1, which Endpoints validation
            # refuses (loopback): the reconciler would log that error forever. Nothing in-cluster
            # dials the Service here.
            --endpoint-reconciler-type none
            --requestheader-client-ca-file "$PKI/front-proxy-ca.crt"
            --requestheader-allowed-names front-proxy-client
            --requestheader-username-headers X-Remote-User
            --requestheader-group-headers X-Remote-Group
            --requestheader-extra-headers-prefix X-Remote-Extra-
            --proxy-client-cert-file "$PKI/front-proxy-client.crt"
            --proxy-client-key-file "$PKI/front-proxy-client.key"
            --allow-privileged=true
            # Every request a node makes is recorded (metadata only), so the benchmarks can count
            # a node's API requests from the API server's own record, by user
            # (templates/audit-policy.yaml, written by start_component).
            --audit-policy-file "$CL/audit-policy.yaml"
            --audit-log-path "$CL/audit.log" --audit-log-format json
            --audit-log-maxsize 100 --audit-log-maxbackup 1
            --profiling=false)
        ;;
    kube-controller-manager)
        argv=("$KUBE_BIN/kube-controller-manager"
            --kubeconfig "$KCM_KUBECONFIG"
            --authentication-kubeconfig "$KCM_KUBECONFIG"
            --authorization-kubeconfig "$KCM_KUBECONFIG"
            --use-service-account-credentials=true
            --service-account-private-key-file "$PKI/sa.key"
            --root-ca-file "$PKI/ca.crt"
            --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key"
            --cluster-name staticlet-testenv
            # The default set: garbage collector (mirror pods owned by a deleted Node go),
            # pod GC, node lifecycle, service accounts, CSR approving and signing, ...; and, as
            # kubeadm adds them, the two bootstrap-token controllers that are off by default:
            # bootstrapsigner (signs kube-public/cluster-info) and tokencleaner (deletes
            # expired token Secrets).
            --controllers '*,bootstrapsigner,tokencleaner'
            --leader-elect=false
            --bind-address 127.0.0.1 --secure-port "$KCM_PORT"
            --cert-dir "$CL/controller-manager"
            # Else it creates /usr/libexec/kubernetes/kubelet-plugins/volume/exec on the host.
            --flex-volume-plugin-dir "$CL/flexvolume"
            --profiling=false)
        ;;
    *) die "unknown component $1" ;;
    esac
    printf '%s\n' "${argv[@]}"
}

# Health of component $1, by its own endpoint (bounded: 2 s).
comp_healthy() {
    case "$1" in
    etcd)
        curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null |
            grep -q '"health":"true"'
        ;;
    kube-apiserver)
        [[ "$(curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
            --key "$PKI/admin.key" "$APISERVER_URL/readyz" 2>/dev/null)" == ok ]]
        ;;
    kube-controller-manager)
        # Its serving certificate is self-signed (in --cert-dir); /healthz needs no credentials.
        [[ "$(curl -ksS --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null)" == ok ]]
        ;;
    esac
}

comp_port() {
    case "$1" in
    etcd) echo "$ETCD_CLIENT_PORT $ETCD_PEER_PORT" ;;
    kube-apiserver) echo "$APISERVER_PORT" ;;
    kube-controller-manager) echo "$KCM_PORT" ;;
    esac
}
