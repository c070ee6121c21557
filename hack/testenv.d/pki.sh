# shellcheck shell=bash
# Sourced by hack/testenv. The cluster's PKI and kubeconfigs (openssl; ECDSA P-256 keys, which
# take milliseconds where RSA takes a good part of a second, and node credentials are made per
# test). Everything is in $PKI and $CL, which `down` removes.

# Bump when ensure_pki makes a different set of files: an older PKI is then replaced.
readonly PKI_LAYOUT=2

# ossl_cnf KIND: an openssl config (templates/openssl-KIND.cnf) holding only the extensions of a
# KIND certificate (ca, client, apiserver): the system openssl.cnf would add its v3_ca extensions
# (CA:TRUE) to every `req -x509` certificate.
ossl_cnf() { render_template "openssl-$1.cnf" "SERVICE_IP=$SERVICE_IP"; }

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# new_ca DIR NAME SUBJECT: a self-signed CA, DIR/NAME.key + DIR/NAME.crt.
new_ca() {
    local d="$1" name="$2" subj="$3"
    (umask 077 && new_key "$d/$name.key") || die "openssl could not make a key for $subj"
    openssl req -x509 -new -config <(ossl_cnf ca) -extensions ext -key "$d/$name.key" \
        -subj "$subj" -days 3650 -out "$d/$name.crt" 2>/dev/null ||
        die "openssl could not make the CA $subj"
}

# issue CA DIR NAME SUBJECT KIND: DIR/NAME.key + DIR/NAME.crt, a KIND certificate (see ossl_cnf)
# signed by CA.crt with CA.key. `req -x509` with -CA picks a random serial, so no serial file is
# shared between concurrent callers.
issue() {
    local ca="$1" d="$2" name="$3" subj="$4" kind="$5"
    (umask 077 && new_key "$d/$name.key") || die "openssl could not make a key for $subj"
    openssl req -x509 -new -config <(ossl_cnf "$kind") -extensions ext -key "$d/$name.key" \
        -subj "$subj" -CA "$ca.crt" -CAkey "$ca.key" -days 3650 -out "$d/$name.crt" \
        2>/dev/null || die "openssl could not issue $subj"
}

# write_kubeconfig OUT USER CERT KEY: credentials embedded, so the file alone is enough (tests
# may copy it, and a Rust client needs no paths relative to it).
write_kubeconfig() {
    local out="$1" user="$2" crt="$3" key="$4" ca_data crt_data key_data
    ca_data="$(base64 -w0 "$PKI/ca.crt")"
    crt_data="$(base64 -w0 "$crt")"
    key_data="$(base64 -w0 "$key")"
    (umask 077 && render_template kubeconfig "USER=$user" "SERVER=$APISERVER_URL" \
        "CA_DATA=$ca_data" "CERT_DATA=$crt_data" "KEY_DATA=$key_data" >"$out.tmp")
    mv -f "$out.tmp" "$out"
}

# Made once per cluster (in a temp dir renamed into place, so a half-made PKI never counts).
# Prints "new" when it made a new one: daemons running on the old one must then restart, and
# node credentials signed by the old CA are dropped.
ensure_pki() {
    local layout t="$CL/.pki.tmp"
    layout="$(cat "$PKI/layout" 2>/dev/null)" || layout=""
    if [[ "$layout" == "$PKI_LAYOUT" && -s "$ADMIN_KUBECONFIG" && -s "$KCM_KUBECONFIG" ]]; then
        return 0
    fi
    log "generating the cluster PKI in $PKI"
    rm -rf "$t" "$PKI" "$CL/nodes"
    mkdir -p "$t"
    chmod 0700 "$t"
    new_ca "$t" ca "/CN=staticlet-testenv-ca"
    # Everything a client may dial: loopback, and the in-cluster names and service IP (pods
    # never use them here, but a kubelet-made config or a copied manifest may).
    issue "$t/ca" "$t" apiserver "/CN=kube-apiserver" apiserver
    # Service-account tokens: the API server verifies with the public half, the controller
    # manager (token controller) and the API server (TokenRequest) sign with the private one.
    (umask 077 && new_key "$t/sa.key") || die "openssl could not make the service-account key"
    openssl pkey -in "$t/sa.key" -pubout -out "$t/sa.pub" 2>/dev/null ||
        die "openssl could not write sa.pub"
    issue "$t/ca" "$t" admin "/O=system:masters/CN=kubernetes-admin" client
    issue "$t/ca" "$t" controller-manager "/CN=system:kube-controller-manager" client
    # What the API server shows a kubelet for logs/exec/port-forward.
    issue "$t/ca" "$t" apiserver-kubelet-client \
        "/O=system:masters/CN=kube-apiserver-kubelet-client" client
    # The front proxy (request-header) CA, a CA of its own as kubeadm makes it: without it the
    # API server publishes no requestheader CA, and the controller manager's delegated
    # authentication logs "missing content for CA bundle" forever. Its client cert is what the
    # API server presents to aggregated API servers.
    new_ca "$t" front-proxy-ca "/CN=staticlet-testenv-front-proxy-ca"
    issue "$t/front-proxy-ca" "$t" front-proxy-client "/CN=front-proxy-client" client
    echo "$PKI_LAYOUT" >"$t/layout"
    mv -T "$t" "$PKI"
    write_kubeconfig "$ADMIN_KUBECONFIG" kubernetes-admin "$PKI/admin.crt" "$PKI/admin.key"
    write_kubeconfig "$KCM_KUBECONFIG" system:kube-controller-manager \
        "$PKI/controller-manager.crt" "$PKI/controller-manager.key"
    echo new
}

valid_node_name() {
    # A Node name is a DNS subdomain (lowercase); it also becomes a path and a certificate subject.
    [[ ${#1} -le 253 && "$1" =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ && "$1" != *..* ]]
}

# Path of the kubeconfig for system:node:$1, made on first use. Safe to run concurrently without
# the lock: each caller builds in its own temp dir and renames it into place; rename(2) onto a
# non-empty directory fails, so the loser drops its copy and both print the winner's path.
node_kubeconfig() {
    local node="$1" d="$CL/nodes/$1" t
    if [[ ! -s "$d/kubeconfig" ]]; then
        [[ -s "$PKI/ca.key" ]] || die "no cluster PKI in $PKI: run hack/testenv up --cluster first"
        mkdir -p "$CL/nodes"
        t="$(mktemp -d "$CL/nodes/.$node.XXXXXX")"
        issue "$PKI/ca" "$t" node "/O=system:nodes/CN=system:node:$node" client
        write_kubeconfig "$t/kubeconfig" "system:node:$node" "$t/node.crt" "$t/node.key"
        chmod 0755 "$t"
        mv -T "$t" "$d" 2>/dev/null || rm -rf "$t"
        [[ -s "$d/kubeconfig" ]] || die "could not make $d/kubeconfig"
    fi
    echo "$d/kubeconfig"
}
