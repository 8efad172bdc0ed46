#!/bin/sh
# Builds a busybox image tarball from Debian's busybox-static, without any
# network, for the tests and the demo (DESIGN.md §7).
#
# Usage: make-busybox-image.sh [options] OUTPUT [TAG]
#
#   OUTPUT            tarball to write ("-" for stdout); written atomically
#   TAG               image name, default busybox:latest
#   --oci             OCI image layout (index.json, blobs/sha256/...) with
#                     gzip layers, as `skopeo copy oci-archive:` writes it
#   --docker25        OCI layout plus manifest.json, as Docker 25+ `docker save`
#                     writes it (plain layers unless --gzip)
#   --gzip            gzip the layers (the default for --oci)
#   --whiteout        add a second layer that deletes /etc/motd (a ".wh."
#                     whiteout) and replaces /var/www (an opaque dir)
#   --healthcheck CMD give the image HEALTHCHECK CMD-SHELL CMD (interval 2s,
#                     timeout 2s, 3 retries)
#   --all-applets     a symlink for every applet, not only the common ones
#                     (slower: one ln per applet)
#
# The rootfs has /bin/busybox (BUSYBOX=path to use another; it must be
# static) with symlinks for the common applets (sh, sleep, echo, cat, httpd,
# wget, ls, nc, ps, ip, ...), /etc/passwd and /etc/group, /tmp, and
# /var/www/index.html. The config has Cmd ["sh"] and the usual PATH. Output
# is reproducible: the same busybox binary and options give the same image
# id, which is printed on stdout (unless OUTPUT is "-").
#
# Needs only sh, GNU tar, gzip, sha256sum and coreutils (no python, no docker).
set -eu

die() {
    echo "make-busybox-image: $*" >&2
    exit 1
}

usage() {
    sed -n '4,/^set -eu/{/^#/p}' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "$1"
}

format=docker
gzip_layers=0
whiteout=0
healthcheck=
all_applets=0
while [ $# -gt 0 ]; do
    case "$1" in
    --oci) format=oci; gzip_layers=1 ;;
    --docker25) format=docker25 ;;
    --gzip) gzip_layers=1 ;;
    --whiteout) whiteout=1 ;;
    --all-applets) all_applets=1 ;;
    --healthcheck)
        [ $# -ge 2 ] || usage 2
        healthcheck=$2
        shift
        ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    -?*) usage 2 ;;
    *) break ;;
    esac
    shift
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    usage 2
fi
out=$1
tag=${2:-busybox:latest}
case "${tag##*/}" in
*:*) ;;
*) tag="$tag:latest" ;;
esac

BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (apt-get install busybox-static)"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is required"

case "$(uname -m)" in
x86_64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
armv7l | armv6l) arch=arm ;;
i?86) arch=386 ;;
ppc64le) arch=ppc64le ;;
s390x) arch=s390x ;;
riscv64) arch=riscv64 ;;
*) arch=$(uname -m) ;;
esac

umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/busybox-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Every tar we write: sorted, owned by root, one fixed time, GNU format.
EPOCH=1704067200 # 2024-01-01T00:00:00Z
CREATED=2024-01-01T00:00:00Z
mktar() { # mktar DIR OUT [NAMES...]: archive NAMES (default: everything) of DIR
    dir=$1
    dst=$2
    shift 2
    if [ $# -eq 0 ]; then
        (cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort) >"$work/list"
    else
        : >"$work/list"
        for n in "$@"; do
            (cd "$dir" && find "$n" | LC_ALL=C sort) >>"$work/list"
        done
    fi
    tar -C "$dir" --format=gnu --numeric-owner --owner=0 --group=0 --mtime="@$EPOCH" \
        --no-recursion -cf "$dst" -T "$work/list"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { echo $(($(wc -c <"$1"))); }
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }

# ---- layer 1: busybox ----
r1=$work/rootfs1
mkdir -p "$r1/bin" "$r1/etc" "$r1/tmp" "$r1/root" "$r1/home" "$r1/var/www" \
    "$r1/proc" "$r1/sys" "$r1/dev" "$r1/usr/bin" "$r1/sbin"
chmod 1777 "$r1/tmp"
chmod 0700 "$r1/root"
cp "$BUSYBOX" "$r1/bin/busybox"
chmod 0755 "$r1/bin/busybox"
"$BUSYBOX" --list >"$work/applets" || die "$BUSYBOX --list failed"
for a in sh sleep echo cat httpd wget ls; do
    grep -qx "$a" "$work/applets" || die "$BUSYBOX has no $a applet"
done
if [ "$all_applets" = 0 ]; then
    # One ln per link is what costs time here; the common applets suffice.
    printf '%s\n' sh ash sleep echo cat httpd wget ls cp mv rm mkdir rmdir touch chmod chown \
        ln pwd env true false test [ [[ printf sed awk grep egrep head tail wc sort uniq cut \
        tr tee date hostname id whoami uname ps kill killall pkill pidof top free df du mount \
        umount nc nslookup ping ip ifconfig route netstat sync yes seq expr basename dirname \
        find xargs vi less more tar gzip gunzip timeout watch nohup stat readlink realpath dd \
        od hexdump md5sum sha256sum base64 which usleep sysctl dmesg logger diff patch \
        traceroute telnet ftpget udhcpc hwclock clear reset tty stty sh nproc |
        grep -Fxf "$work/applets" | LC_ALL=C sort -u >"$work/wanted"
    mv "$work/wanted" "$work/applets"
fi
while read -r a; do
    case "$a" in busybox | */* | "") continue ;; esac
    [ -e "$r1/bin/$a" ] || ln -s busybox "$r1/bin/$a"
done <"$work/applets"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' \
    >"$r1/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$r1/etc/group"
printf 'busybox image for swarmc tests\n' >"$r1/etc/motd"
printf 'hello from swarmc\n' >"$r1/var/www/index.html"
printf 'old page\n' >"$r1/var/www/old.html"
mktar "$r1" "$work/layer1.tar"
layers=$work/layer1.tar

# ---- layer 2: whiteouts ----
if [ "$whiteout" = 1 ]; then
    r2=$work/rootfs2
    mkdir -p "$r2/etc" "$r2/var/www"
    : >"$r2/etc/.wh.motd"
    : >"$r2/var/www/.wh..wh..opq"
    printf 'hello from layer 2\n' >"$r2/var/www/index.html"
    printf '2\n' >"$r2/etc/layer2"
    mktar "$r2" "$work/layer2.tar"
    layers="$layers $work/layer2.tar"
fi

# ---- config ----
diff_ids=
history=
for l in $layers; do
    diff_ids="$diff_ids${diff_ids:+,}\"sha256:$(sha "$l")\""
    history="$history${history:+,}{\"created\":\"$CREATED\",\"created_by\":\"make-busybox-image.sh\"}"
    if [ "$gzip_layers" = 1 ]; then
        gzip -n -6 -c "$l" >"$l.gz"
    fi
done
hc=
if [ -n "$healthcheck" ]; then
    hc=",\"Healthcheck\":{\"Test\":[\"CMD-SHELL\",$(json_str "$healthcheck")],"
    hc="$hc\"Interval\":2000000000,\"Timeout\":2000000000,\"Retries\":3}"
fi
printf '{"architecture":"%s","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"%s},"created":"%s","history":[%s],"os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$arch" "$hc" "$CREATED" "$history" "$diff_ids" >"$work/config.json"
config=$(sha "$work/config.json")

# ---- the tarball ----
d=$work/image
mkdir -p "$d"
blob() { # blob FILE: store FILE under blobs/sha256, print its digest
    mkdir -p "$d/blobs/sha256"
    h=$(sha "$1")
    cp "$1" "$d/blobs/sha256/$h"
    echo "$h"
}
repo=${tag%:*}
ref=${tag##*:}
layer_file() { # the file holding layer $1 as stored
    if [ "$gzip_layers" = 1 ]; then echo "$1.gz"; else echo "$1"; fi
}

case "$format" in
docker)
    manifest_layers=
    for l in $layers; do
        id=$(sha "$l")
        mkdir -p "$d/$id"
        cp "$(layer_file "$l")" "$d/$id/layer.tar"
        printf '1.0' >"$d/$id/VERSION"
        printf '{"id":"%s","created":"%s"}' "$id" "$CREATED" >"$d/$id/json"
        manifest_layers="$manifest_layers${manifest_layers:+,}\"$id/layer.tar\""
        top=$id
    done
    cp "$work/config.json" "$d/$config.json"
    printf '[{"Config":"%s.json","RepoTags":[%s],"Layers":[%s]}]' \
        "$config" "$(json_str "$tag")" "$manifest_layers" >"$d/manifest.json"
    printf '{%s:{%s:"%s"}}' "$(json_str "$repo")" "$(json_str "$ref")" "$top" \
        >"$d/repositories"
    ;;
oci | docker25)
    if [ "$gzip_layers" = 1 ]; then
        mt=application/vnd.oci.image.layer.v1.tar+gzip
    else
        mt=application/vnd.oci.image.layer.v1.tar
    fi
    descs=
    manifest_layers=
    for l in $layers; do
        f=$(layer_file "$l")
        h=$(blob "$f")
        descs="$descs${descs:+,}{\"mediaType\":\"$mt\",\"digest\":\"sha256:$h\",\"size\":$(size "$f")}"
        manifest_layers="$manifest_layers${manifest_layers:+,}\"blobs/sha256/$h\""
    done
    blob "$work/config.json" >/dev/null
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$config" "$(size "$work/config.json")" "$descs" >"$work/manifest.json"
    m=$(blob "$work/manifest.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":%s,"org.opencontainers.image.ref.name":%s},"platform":{"architecture":"%s","os":"linux"}}]}' \
        "$m" "$(size "$work/manifest.json")" "$(json_str "$tag")" "$(json_str "$ref")" "$arch" \
        >"$d/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
    if [ "$format" = docker25 ]; then
        printf '[{"Config":"blobs/sha256/%s","RepoTags":[%s],"Layers":[%s]}]' \
            "$config" "$(json_str "$tag")" "$manifest_layers" >"$d/manifest.json"
    fi
    ;;
esac

if [ "$out" = - ]; then
    mktar "$d" "$work/out.tar"
    cat "$work/out.tar"
else
    mktar "$d" "$out.tmp.$$"
    mv -f "$out.tmp.$$" "$out"
    echo "sha256:$config"
fi
