# shellcheck shell=bash
# Sourced by hack/testenv. TLS bootstrap in the cluster of `up --cluster`, as kubeadm configures
# it: bootstrap tokens authenticate (kube-apiserver --enable-bootstrap-token-auth, components.sh),
# kube-controller-manager runs bootstrapsigner and tokencleaner, and kubeadm's RBAC bindings
# (templates/bootstrap-rbac.yaml) let a token's user post a node client CSR that
# kube-controller-manager approves and signs at once. So a node agent's TLS bootstrap meets the
# real approver, signer and authorizer, not our own reading of them.
#
# `bootstrap-kubeconfig [TTL]` mints a token (a Secret bootstrap-token-<id> in kube-system, as
# `kubeadm token create` makes it) and writes a bootstrap kubeconfig for it under
# $CL/bootstrap, which `down` removes; tokencleaner deletes the Secret once it has expired.

# kubeadm's group for node bootstrap tokens (the RBAC bindings name it).
readonly BOOTSTRAP_GROUP=system:bootstrappers:kubeadm:default-node-token

# Applies kubeadm's RBAC bindings (idempotent) when the API server may have lost them (a
# component started: a new PKI also wipes etcd) or the template changed since the last apply.
ensure_bootstrap_rbac() {
    local started="$1" stamp="$CL/bootstrap-rbac.applied" sum
    sum="$(render_template bootstrap-rbac.yaml | cksum)"
    if ((!started)) && [[ "$(cat "$stamp" 2>/dev/null)" == "$sum" ]]; then return 0; fi
    render_template bootstrap-rbac.yaml | kubectl_as "$ADMIN_KUBECONFIG" apply -f - >/dev/null ||
        die "could not apply kubeadm's bootstrap RBAC bindings"
    echo "$sum" >"$stamp"
}

# random_chars N: N random characters of [a-z0-9] (a bootstrap token's alphabet).
random_chars() {
    local n="$1" out="" i
    for ((i = 0; i < 10 && ${#out} < n; i++)); do
        out+="$(LC_ALL=C tr -dc a-z0-9 < <(head -c 256 /dev/urandom))"
    done
    ((${#out} >= n)) || die "could not read /dev/urandom"
    echo "${out:0:n}"
}

# ttl_seconds TTL: a duration as `kubeadm token create --ttl` takes it, in whole units (90s,
# 10m, 1h, 2d; a bare number is seconds), in seconds.
ttl_seconds() {
    local re='^([0-9]+)([smhd]?)$' n
    [[ "$1" =~ $re ]] || die "TTL '$1' is not a duration like 90s, 10m, 1h or 2d"
    n=$((10#${BASH_REMATCH[1]}))
    case "${BASH_REMATCH[2]}" in
    m) n=$((n * 60)) ;;
    h) n=$((n * 3600)) ;;
    d) n=$((n * 86400)) ;;
    esac
    ((n > 0)) || die "TTL must be positive"
    echo "$n"
}

# bootstrap_kubeconfig TTL: mints a token valid for TTL and prints the path of a kubeconfig that
# authenticates with it (server and CA of the cluster), as kubeadm's bootstrap-kubelet.conf.
bootstrap_kubeconfig() {
    local secs id secret exp out
    secs="$(ttl_seconds "$1")"
    id="$(random_chars 6)" secret="$(random_chars 16)"
    exp="$(date -u -d "@$(($(date +%s) + secs))" +%Y-%m-%dT%H:%M:%SZ)"
    render_template bootstrap-token.yaml "TOKEN_ID=$id" "TOKEN_SECRET=$secret" \
        "EXPIRATION=$exp" | kubectl_as "$ADMIN_KUBECONFIG" create -f - >/dev/null ||
        die "could not create the bootstrap token Secret bootstrap-token-$id"
    mkdir -p "$CL/bootstrap"
    out="$CL/bootstrap/bootstrap-$id.kubeconfig"
    (umask 077 && render_template kubeconfig-token USER=tls-bootstrap-token-user \
        "NOTE=bootstrap token $id, expires $exp" CLUSTER=staticlet-testenv \
        "SERVER=$APISERVER_URL" "CA_DATA=$(base64 -w0 "$PKI/ca.crt")" \
        "TOKEN=$id.$secret" >"$out.tmp")
    mv -f "$out.tmp" "$out"
    echo "$out"
}

# The token ID of a bootstrap kubeconfig's path.
bootstrap_token_id() {
    local id="${1##*/bootstrap-}"
    echo "${id%.kubeconfig}"
}

# bootstrap_csr DIR NAME NODE KUBECONFIG: posts a node client CSR NAME for system:node:NODE
# (key DIR/NAME.key) with KUBECONFIG's credentials, and waits (bounded: 15 s) until it is
# issued; writes the certificate to DIR/NAME.crt and prints the approval's reason.
bootstrap_csr() {
    local d="$1" name="$2" node="$3" kc="$4" csr json i
    (umask 077 && new_key "$d/$name.key") || die "openssl could not make a key"
    csr="$(openssl req -new -key "$d/$name.key" -subj "/O=system:nodes/CN=system:node:$node" |
        base64 -w0)" || die "openssl could not make a CSR"
    render_template csr.yaml "NAME=$name" "REQUEST=$csr" | kubectl_as "$kc" create -f - \
        >/dev/null || die "could not post CSR $name as $(basename "$kc")"
    for ((i = 0; i < 75; i++)); do
        json="$(kubectl_as "$kc" get csr "$name" -o json)" || die "could not read CSR $name back"
        if [[ -n "$(jq -r '.status.certificate // empty' <<<"$json")" ]]; then
            jq -r .status.certificate <<<"$json" | base64 -d >"$d/$name.crt"
            jq -r '[.status.conditions[]? | select(.type == "Approved") | .reason] | first // "?"' \
                <<<"$json"
            return 0
        fi
        sleep 0.2
    done
    die "CSR $name was not issued within 15 s: $(jq -c .status <<<"$json")"
}

# whoami KUBECONFIG: "user group,group,..." as the API server sees that kubeconfig's credentials.
whoami_as() {
    kubectl_as "$1" auth whoami -o json |
        jq -r '.status.userInfo | "\(.username) \(.groups | join(","))"'
}

# Proof of a TLS bootstrap and a certificate rotation, step by step as kubelet does them: a
# fresh token authenticates as system:bootstrap:<id>; its node client CSR is auto-approved and
# signed by the cluster CA; the certificate authenticates as system:node:<name>; that node's own
# renewal CSR is auto-approved too. The token, CSRs and files are removed afterwards. Prints
# what it checked.
verify_bootstrap() {
    local kc id node who d="$CL/bootstrap/check" r1 r2
    kc="$(bootstrap_kubeconfig 10m)"
    id="$(bootstrap_token_id "$kc")"
    node="testenv-bootstrap-$id"
    rm -rf "$d"
    mkdir -p "$d"
    who="$(whoami_as "$kc")" || die "kubectl auth whoami failed with bootstrap token $id"
    [[ "$who" == "system:bootstrap:$id "*"$BOOTSTRAP_GROUP"* ]] ||
        die "bootstrap token $id authenticates as '$who'"
    r1="$(bootstrap_csr "$d" "$node-bootstrap" "$node" "$kc")"
    openssl verify -CAfile "$PKI/ca.crt" "$d/$node-bootstrap.crt" >/dev/null ||
        die "the issued certificate is not signed by the cluster CA"
    write_kubeconfig "$d/node.kubeconfig" "system:node:$node" "$d/$node-bootstrap.crt" \
        "$d/$node-bootstrap.key"
    who="$(whoami_as "$d/node.kubeconfig")" || die "kubectl auth whoami failed with the issued certificate"
    [[ "$who" == "system:node:$node "*system:nodes* ]] ||
        die "the issued certificate authenticates as '$who'"
    r2="$(bootstrap_csr "$d" "$node-rotation" "$node" "$d/node.kubeconfig")"
    kubectl_as "$ADMIN_KUBECONFIG" delete csr "$node-bootstrap" "$node-rotation" >/dev/null || true
    kubectl_as "$ADMIN_KUBECONFIG" -n kube-system delete secret "bootstrap-token-$id" >/dev/null ||
        true
    rm -rf "$d" "$kc"
    echo "bootstrap token -> system:bootstrap:<id>, node CSR approved ($r1) and signed," \
        "its certificate -> system:node:<name>, rotation CSR approved ($r2)"
}
