# shellcheck shell=bash
# Sourced by hack/testenv. What every part shares: messages, argument and state-dir checks, the
# lock, the template renderer, and the process helpers (finding our daemons by their command
# line, starting them detached, stopping them with a bounded wait).

log() { printf 'testenv: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The header's title and command list: from line 2 to the first bare "#" after the title's.
usage() {
    awk 'NR > 3 && $0 == "#" { exit } NR >= 2 { sub(/^# ?/, ""); print }' "$SELF" >&2
    exit 2
}

# no_args "$@": the usage text unless the command was given no arguments.
no_args() { (($# == 0)) || usage; }

check_dir() {
    # The paths end up in TOML, JSON, findmnt output and unix socket addresses: keep them plain.
    [[ "$DIR" == /* ]] || die "STATICLET_TESTENV_DIR must be absolute (got '$DIR')"
    [[ "$DIR" != / && -n "${DIR//\//}" ]] || die "refusing to use / as the state dir"
    [[ "$DIR" =~ ^[A-Za-z0-9/._+-]+$ ]] || die "STATICLET_TESTENV_DIR may hold only [A-Za-z0-9/._+-]"
    # sun_path is 108 bytes; the ttrpc socket adds ".ttrpc".
    ((${#TTRPC_SOCK} < 108)) || die "state dir path too long for a unix socket: $DIR"
}

need_root() { [[ $EUID -eq 0 ]] || die "must run as root (containerd, mounts, netns)"; }

# Serialise concurrent runs (tests may call `up` in parallel). The lock is on hack/testenv itself,
# so no lock file is left anywhere; containerd must not inherit fd 9 (see spawn_daemon). A run
# started by a run that holds the lock (the kubeadm node's inner `up` and `down`) inherits fd 9
# open on this script: flock on that same open file succeeds at once, where opening the script
# again would wait forever for its own parent.
take_lock() {
    if [[ ! /proc/$$/fd/9 -ef "$SELF" ]]; then exec 9<"$SELF"; fi
    flock 9
}

# render_template NAME [KEY=VALUE...]: testenv.d/templates/NAME on stdout, every @KEY@ in it
# replaced by VALUE (any bytes, newlines included). A placeholder left unreplaced is an error, so
# a template and its caller cannot drift apart unnoticed.
render_template() {
    local name="$1" text kv re='@[A-Z][A-Z0-9_]*@'
    shift
    # The dot keeps the trailing newlines that $(...) would strip.
    text="$(cat "$TEMPLATES/$name" && echo .)" || die "cannot read template $TEMPLATES/$name"
    text="${text%.}"
    for kv in "$@"; do
        text="${text//"@${kv%%=*}@"/"${kv#*=}"}"
    done
    if [[ "$text" =~ $re ]]; then die "template $name: ${BASH_REMATCH[0]} was not filled in"; fi
    printf '%s' "$text"
}

# ---------------------------------------------------------------------------------------------
# Processes

# PIDs of processes whose argv holds the two consecutive words $2 $3 and whose argv[0] basename
# matches the glob $1. Exact word matching, so /x/testenv never matches /x/testenv2.
pids_with_args() {
    local p
    for p in /proc/[0-9]*; do
        pid_is "${p#/proc/}" "$@" && echo "${p#/proc/}"
    done
    return 0
}

# pid_is PID NAME K V: the same test for one PID.
pid_is() {
    local pid="$1" name="$2" k="$3" v="$4" i
    local -a argv
    mapfile -d '' argv 2>/dev/null <"/proc/$pid/cmdline" || return 1
    ((${#argv[@]} > 0)) || return 1
    # shellcheck disable=SC2053 # glob match is intended
    [[ "${argv[0]##*/}" == $name ]] || return 1
    for ((i = 1; i + 1 < ${#argv[@]}; i++)); do
        [[ "${argv[i]}" == "$k" && "${argv[i + 1]}" == "$v" ]] && return 0
    done
    return 1
}

# True while PID runs. A zombie counts as gone: it has exited and let go of its ports and
# files, and here PID 1 (not an init that reaps at once) collects orphans only every ~2 s.
running() {
    local st
    st="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    st="${st##*) }" # after "pid (comm) ", which may hold spaces
    [[ "${st%% *}" != Z ]]
}

# Wait (bounded) until none of the PIDs runs. Returns 1 on timeout.
wait_gone() {
    local secs="$1" p alive i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        alive=0
        for p in "$@"; do running "$p" && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    return 1
}

# spawn_daemon PIDFILE LOG COMMAND...: run COMMAND in the background as a daemon.
# setsid: own session, so a terminal hang-up or the caller's process-group kill does not take
# it down. The wrapper records its own PID and execs, so the pid file holds the daemon's PID.
# It closes every inherited fd above 2 first: an inherited flock fd (9) would hold our lock
# forever, and an inherited pipe would keep a CI job's output open after the script ends.
# PATH: containerd runs runc and the shim, and the portmap plugin runs iptables (in sbin).
spawn_daemon() {
    local pidfile="$1" logfile="$2"
    shift 2
    # shellcheck disable=SC2016 # $$, $1, $@ are for the inner bash
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        setsid bash -c '
            for fd in /proc/$$/fd/*; do
                fd=${fd##*/}
                ((fd > 2)) && eval "exec $fd>&-"
            done
            echo $$ >"$1"
            shift
            exec "$@"
        ' testenv-daemon "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 9>&- &
    disown || true
}

# stop_pid PID SECS: SIGTERM, then SIGKILL after SECS. Prints the PID when it signalled it, for
# `down` to wait until PID 1 has reaped it too; other callers discard that.
stop_pid() {
    local pid="$1" secs="$2"
    kill -TERM "$pid" 2>/dev/null || return 0
    echo "$pid"
    if ! wait_gone "$secs" "$pid"; then
        log "pid $pid ignored SIGTERM for ${secs}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone 5 "$pid" || log "warning: pid $pid survived SIGKILL"
    fi
}

# Wait (bounded: 5 s) until none of the PIDs is in the process table any more, zombies included.
# Gives up quietly: a zombie holds nothing.
wait_reaped() {
    local p i
    for ((i = 0; i < 50; i++)); do
        for p in "$@"; do [[ -e /proc/$p ]] && break; done
        [[ -e /proc/${p:-0} ]] || return 0
        sleep 0.1
    done
    return 0
}
