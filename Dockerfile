# staticlet in a container: one static binary on an empty base, for hosts that would rather run
# their node agent as a container than install the .deb. How to run it (privileged, the host's
# PID and network namespaces, the runtime's socket and the manifest, log and state directories
# mounted) is in README.md, "In a container".
#
# Two ways to build it:
#   hack/image     what tests and offline machines use: the binary is built on the host and this
#                  file's builder stage is replaced by a directory holding it
#                  (buildah build --build-context builder=DIR), so no image is pulled at all;
#   docker buildx build -t staticlet .      where a registry can be reached: the builder stage
#                  below compiles it from this checkout.
#
# Static (glibc, +crt-static), so the final stage needs no libc, no loader and no shell: the
# image is the binary and nothing else, and every setting is a flag (there is nothing to run a
# script with). Why glibc rather than musl: README.md, "In a container".

# The builder stage. Whatever it is, it must leave the static binary at /staticlet: hack/image's
# directory holds exactly that file (debug info stripped, as here), and --build-context
# builder=DIR puts that directory in this stage's place, so this stage is then never built.
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# --target: with it, RUSTFLAGS reach only the target's crates, not the proc macros and build
# scripts that run on the build machine (a +crt-static target cannot build a proc macro, which is
# a shared library). No .git comes in (.dockerignore), so `--version` says "git unknown" here.
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --locked --release --target x86_64-unknown-linux-gnu --bin staticlet \
 && strip --strip-debug -o /staticlet target/x86_64-unknown-linux-gnu/release/staticlet

FROM scratch
# Stamped by hack/image from Cargo.toml and git; unset, the labels say so rather than lie.
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="staticlet" \
      org.opencontainers.image.description="Node agent for Kubernetes static pods, through the container runtime's CRI" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=builder /staticlet /usr/bin/staticlet
# Run as root: a node agent creates cgroups, mounts volumes and reads every container's /proc
# entry, which is also why it needs --privileged and the host's PID namespace.
USER 0:0
ENTRYPOINT ["/usr/bin/staticlet"]
# The default: the manifest directory kubeadm and kubelet use. Any arguments given to the
# container replace this whole line, so repeat it when adding flags.
CMD ["--pod-manifest-path=/etc/kubernetes/manifests"]
