# shellcheck shell=bash
# Sourced by hack/testenv. The Debian packages the instance needs (PACKAGES, and CLUSTER_PACKAGES
# for `up --cluster`), installed when missing without letting them start any system service.

ensure_packages() {
    local missing=() p policy_made=0
    for p in "$@"; do
        [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] ||
            missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    # On a systemd host the containerd package would start the *system* containerd; tests must
    # not do that. policy-rc.d exit 101 tells invoke-rc.d/deb-systemd-invoke to start nothing.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        render_template policy-rc.d >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        policy_made=1
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q </dev/null &&
            apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                "${missing[@]}" </dev/null
    } >&2 || rc=$?
    ((policy_made)) && rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get failed (rc=$rc)"
}
