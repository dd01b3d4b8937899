# Images of the buytracker Raft node (target `node`) and operator (target `manager`).
#
# Every stage is FROM scratch, so no build needs an image from a registry (none can be pulled
# where this project is built). The builder is the local Go toolchain: hack/image/build.sh
# compiles static binaries (CGO_ENABLED=0) into bin/image/<target>/ and then runs
#   docker build --target node    -t buytracker/node:dev .
#   docker build --target manager -t buytracker/operator:dev .
# hack/image/build.sh without --docker writes the same images with no Docker daemon at all.
# The classic builder builds every stage before the target, so each target copies its own
# directory (possibly empty) rather than a named file that may not exist yet.

FROM scratch AS base
COPY hack/image/scratchimage/rootfs/ /
WORKDIR /
# uid 65532 ("nonroot" in /etc/passwd): the pods run as non-root with a read-only root.
USER 65532:65532

FROM base AS manager
COPY bin/image/manager/ /
ENTRYPOINT ["/manager"]

FROM base AS node
COPY bin/image/node/ /
# client API, admin API, Raft transport
EXPOSE 8080 8081 7000
ENTRYPOINT ["/buytracker-node"]
