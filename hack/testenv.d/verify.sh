# shellcheck shell=bash
# Sourced by hack/testenv. The proof that the runtime runs pods: a real pod through CRI when
# crictl is there, else a container through ctr. Each prints what it checked, for `up` to show.

# cri_fail MESSAGE: for a step of cri_steps, as `step || cri_fail MESSAGE || return`.
cri_fail() {
    echo "$1"
    return 1
}

# cri_steps DIR POD: the steps of verify_cri after RunPodSandbox made POD. Prints the pod's address
# when every step passed; else what failed, and returns 1.
cri_steps() {
    local d="$1" pod="$2" ip cid state="" code="" i
    ip="$(crictl_cmd inspectp -o json "$pod" | jq -r '.status.network.ip // empty')"
    [[ "$ip" == "${SUBNET%.*}".* ]] || cri_fail "pod got no address on $SUBNET (got '$ip')" || return
    cid="$(crictl_cmd create "$pod" "$d/ctr.json" "$d/pod.json")" ||
        cri_fail "CreateContainer failed" || return
    crictl_cmd start "$cid" >/dev/null || cri_fail "StartContainer failed" || return
    for ((i = 0; i < 100; i++)); do
        state="$(crictl_cmd inspect -o json "$cid" | jq -r .status.state)"
        [[ "$state" == CONTAINER_EXITED ]] && break
        sleep 0.1
    done
    code="$(crictl_cmd inspect -o json "$cid" | jq -r .status.exitCode)"
    [[ "$state" == CONTAINER_EXITED && "$code" == 0 ]] ||
        cri_fail "check container state=$state exit=$code" || return
    { grep -q 'stdout F testenv-ok' "$d/logs/check.log" &&
        grep -qF "inet $ip/" "$d/logs/check.log"; } ||
        cri_fail "container log lacks the expected lines" || return
    # Host -> pod across the bridge (a namespace we made: allowed traffic, at most three bounded
    # packets; one answer is enough: a first packet can be lost while the bridge learns the
    # pod's address on a busy machine).
    /bin/busybox ping -c 3 -W 2 "$ip" >/dev/null ||
        cri_fail "pod $ip not reachable over $BRIDGE" || return
    echo "$ip"
}

# A real pod through CRI: RunPodSandbox (pause image + CNI bridge), a container that prints its
# address, host->pod ping across the bridge, then StopPodSandbox/RemovePodSandbox.
verify_cri() {
    local d="$DIR/check" pod="" out="" fail=""
    rm -rf "$d"
    mkdir -p "$d/logs"
    # A fresh uid per run: a sandbox left by an interrupted check keeps its name reserved.
    render_template cri-check-pod.json "UID=testenv-check-$$-$(date +%s%N)" "LOG_DIR=$d/logs" \
        >"$d/pod.json"
    render_template cri-check-ctr.json "IMAGE=$TEST_IMAGE" >"$d/ctr.json"

    # The steps after RunPodSandbox run in cri_steps; whatever fails, the pod is removed below
    # before reporting. crictl's stderr (chatty warnings) is kept for the failure report only.
    if ! pod="$(crictl_cmd runp "$d/pod.json" 2>"$d/crictl.err")"; then
        fail="RunPodSandbox failed"
    elif ! out="$(cri_steps "$d" "$pod" 2>>"$d/crictl.err")"; then
        fail="$out"
    fi
    if [[ -n "$pod" ]]; then
        crictl_cmd rmp -f "$pod" >/dev/null 2>>"$d/crictl.err" ||
            fail="${fail:-RemovePodSandbox failed}"
    fi
    if [[ -n "$fail" ]]; then
        cat "$d/crictl.err" "$d/logs/check.log" >&2 2>/dev/null || true
        die "pod check through CRI failed: $fail (containerd log: $LOG)"
    fi
    rm -rf "$d"
    echo "CRI pod sandbox on $BRIDGE ($out) + container + ping, via $(find_crictl)"
}

# Without crictl: a container through containerd (not CRI), and the pause image's SIGTERM exit.
verify_ctr() {
    local id="testenv-check-$$" out st i
    out="$(ctrc -n "$CRI_NS" run --rm --runc-root "$RUNC_ROOT" "$TEST_IMAGE" "$id" \
        /bin/sh -c 'echo testenv-ok')" || die "ctr run of $TEST_IMAGE failed (log: $LOG)"
    [[ "$out" == *testenv-ok* ]] || die "ctr run printed '$out', not testenv-ok"
    # The sandbox image must stay up and exit 0 on SIGTERM (it is PID 1 of its namespace).
    ctrc -n "$CRI_NS" run -d --runc-root "$RUNC_ROOT" "$PAUSE_IMAGE" "$id-pause" >/dev/null
    sleep 0.3
    ctrc -n "$CRI_NS" tasks kill -s SIGTERM "$id-pause"
    st="$(ctrc -n "$CRI_NS" tasks ls | awk -v id="$id-pause" '$1 == id {print $3}')"
    for ((i = 0; i < 50; i++)); do
        [[ "$st" == STOPPED ]] && break
        sleep 0.1
        st="$(ctrc -n "$CRI_NS" tasks ls | awk -v id="$id-pause" '$1 == id {print $3}')"
    done
    ctrc -n "$CRI_NS" tasks delete -f "$id-pause" >/dev/null 2>&1 || true
    ctrc -n "$CRI_NS" containers delete "$id-pause" >/dev/null 2>&1 || true
    [[ "$st" == STOPPED ]] || die "pause did not stop on SIGTERM (state '$st')"
    echo "container via ctr run + pause SIGTERM (no crictl: RunPodSandbox NOT checked)"
}
