#!/bin/sh
# Makes a Debian base image for berth from the Debian mirror this machine's
# apt uses (debootstrap, minbase variant) and imports it as debian:bookworm.
#
#   sh examples/redis/make-base.sh [SUITE] [IMAGE]
#
# Needs root, network access to the mirror, and berth on PATH (or BERTH=...).
set -eu
SUITE=${1:-bookworm}
IMAGE=${2:-debian:$SUITE}
BERTH=${BERTH:-berth}
# The mirror apt uses here: the first URIs: line of debian.sources, else the
# first deb line of sources.list, else deb.debian.org.
MIRROR=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
[ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb \(\[[^]]*\] \)\?\([^ ]*\).*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n1)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
WORK=$(mktemp -d /var/tmp/berth-debian.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
echo "debootstrap $SUITE from $MIRROR" >&2
debootstrap --variant=minbase "$SUITE" "$WORK/rootfs" "$MIRROR" >&2
# What a container image does not need: apt lists and caches, and device
# nodes (the runtime makes /dev; import refuses device nodes).
rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin "$WORK/rootfs/dev/"*
tar --numeric-owner -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
"$BERTH" import "$WORK/rootfs.tar" "$IMAGE"
