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
