#!/bin/sh
# Installs everything swarmc needs to build, test and run on Debian 12.
# Idempotent; run as root. Used by the README's commands and by .ci/run.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (apt-get needs it)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config clang-format \
    libuv1-dev libsodium-dev libprotobuf-c-dev protobuf-c-compiler \
    liblmdb-dev libmnl-dev libyaml-dev libcmocka-dev libjansson-dev libarchive-dev \
    runc nftables iproute2 busybox-static \
    ca-certificates procps psmisc util-linux jq >/dev/null
echo "install-deps.sh: dependencies installed"
