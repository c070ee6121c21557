# Shared by hack/test, hack/demo and hack/bench: the Rust toolchain and the packages they need.
# shellcheck shell=bash

# Makes `cargo` available, or says exactly what is missing. Debian 12's own cargo is too old
# (rustc 1.63; staticlet needs 1.89), so we use rustup's, as installed on the build machines.
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found. Install Rust 1.89 or newer with rustup (https://rustup.rs)." >&2
        exit 1
    fi
}

# Packages the tests use beyond the runtime's own (hack/testenv installs those); shellcheck and
# shfmt are for hack/check-shell; systemd-container (systemd-nspawn) boots the real systemd of
# tests/systemd.rs, binutils' objdump tells hack/package the glibc the binary needs, and buildah
# builds tests/image.rs's image (hack/image).
ensure_test_packages() {
    local missing=()
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
    command -v objdump >/dev/null 2>&1 || missing+=(binutils)
    command -v buildah >/dev/null 2>&1 || missing+=(buildah)
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
    command -v shfmt >/dev/null 2>&1 || missing+=(shfmt)
    # tests/clock_steps.rs steps the wall clock of staticlet alone (libfaketime's LD_PRELOAD).
    command -v faketime >/dev/null 2>&1 || missing+=(faketime)
    if ((${#missing[@]})); then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null
    fi
}

# The chart of hack/bench is drawn with Debian's matplotlib (no PyPI needed).
ensure_bench_packages() {
    if ! /usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib </dev/null
    fi
}

# hack/package: dpkg-deb builds the package, objdump (binutils) reads the glibc it needs.
ensure_package_tools() {
    local missing=()
    command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
    command -v objdump >/dev/null 2>&1 || missing+=(binutils)
    if ((${#missing[@]})); then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null
    fi
}

# hack/image: buildah builds the image (offline: vfs storage, chroot isolation, nothing pulled),
# binutils' readelf checks the binary is static and strip takes its debug info out.
ensure_image_tools() {
    local missing=()
    command -v buildah >/dev/null 2>&1 || missing+=(buildah)
    command -v readelf >/dev/null 2>&1 || missing+=(binutils)
    if ((${#missing[@]})); then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null
    fi
}

# ---------------------------------------------------------------------------------------------
# Phases: the setup steps of hack/demo and hack/test, one line each on the terminal
# ("==> Building staticlet ... done (12.3 s)") while their output goes to one log file, whose
# last lines are shown only when a step fails. No control codes unless stdout is a terminal.

# Microseconds since the epoch (EPOCHREALTIME without its decimal point, whatever the locale's).
clock_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }

# since T0: the time since T0 (a clock_us value), as "12.3 s" or "6 min 12 s".
since() {
    local us=$(($(clock_us) - $1))
    if ((us < 60000000)); then
        printf '%d.%d s' $((us / 1000000)) $((us / 100000 % 10))
    else
        printf '%d min %d s' $((us / 60000000)) $((us / 1000000 % 60))
    fi
}

# phase_log FILE: the phases' log from now on, emptied.
phase_log() {
    PHASE_LOG="$1"
    mkdir -p "$(dirname "$PHASE_LOG")"
    : >"$PHASE_LOG"
}

# phase NAME COMMAND [ARG...]: runs COMMAND (a program or a function) with no stdin and its
# output appended to the phase log, and prints one line: NAME, then "done (TIME)". On failure it
# prints "failed after TIME", the log's last 40 lines and its path, and exits with COMMAND's
# status. COMMAND runs in a subshell with `set -e` in force (a function stops at its first
# failing command, as it would outside), so it cannot set this shell's variables: what must
# (ensure_cargo's PATH, eval "$(hack/testenv env)") runs outside a phase; and a phase is never a
# condition (`if phase ...`), where bash would ignore that `set -e`. In the foreground, so Ctrl-C
# stops it with the script. On a terminal, the time so far is shown once a second.
phase() {
    local name="$1" t0 rc=0 ticker="" errexit=0
    shift
    t0="$(clock_us)"
    printf '\n==> %s\n$ %s\n' "$name" "$*" >>"$PHASE_LOG"
    printf '==> %s ... ' "$name"
    if [[ -t 1 ]]; then
        # Stops by itself within a second if this shell is gone (killed while COMMAND ran).
        (while sleep 1 && kill -0 $$ 2>/dev/null; do
            printf '\r\033[K==> %s ... %s ' "$name" "$(since "$t0")"
        done) &
        ticker=$!
    fi
    if [[ $- == *e* ]]; then errexit=1; fi
    set +e
    (
        set -e
        "$@"
    ) </dev/null >>"$PHASE_LOG" 2>&1
    rc=$?
    if ((errexit)); then set -e; fi
    if [[ -n "$ticker" ]]; then
        kill "$ticker" 2>/dev/null || true
        wait "$ticker" 2>/dev/null || true
        printf '\r\033[K==> %s ... ' "$name"
    fi
    if ((rc == 0)); then
        printf 'done (%s)\n' "$(since "$t0")"
        return 0
    fi
    printf 'failed after %s\n' "$(since "$t0")"
    {
        echo "--- the last 40 lines of $PHASE_LOG:"
        tail -n 40 "$PHASE_LOG"
        echo "--- the full log: $PHASE_LOG"
    } >&2
    exit "$rc"
}
