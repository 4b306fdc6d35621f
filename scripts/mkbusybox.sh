#!/usr/bin/env bash
# mkbusybox.sh OUT.tar — build a minimal busybox root filesystem as a tarball.
#
# The rootfs is made from Debian's busybox-static (/bin/busybox, or $BUSYBOX):
# the usual directories, the busybox binary, a symlink for every applet,
# /etc/passwd and /etc/group (root, nobody, app:1000). Entries are owned 0:0
# (/home/app 1000:1000 when run as root), sorted, and stamped with a fixed
# mtime, so the same busybox gives a byte-identical tar on every run (stable
# digests; safe to re-run). The tar is written next to OUT and renamed over it.
#
# Used by the integration tests (crates/berth/tests/common) and by bench/run.sh.
set -euo pipefail

usage() { echo "usage: $0 OUT.tar" >&2; exit 2; }
[ $# -eq 1 ] || usage
out=$1
busybox=${BUSYBOX:-/bin/busybox}

[ -x "$busybox" ] || { echo "mkbusybox: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
if ! "$busybox" --list-full >/dev/null 2>&1; then
    echo "mkbusybox: $busybox does not run" >&2; exit 1
fi

umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/mkbusybox.XXXXXX")
tmp_out=""
cleanup() {
    rm -rf -- "$work"
    if [ -n "$tmp_out" ]; then rm -f -- "$tmp_out"; fi
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs"
for d in bin sbin etc proc sys dev root home home/app usr/bin usr/sbin var tmp; do
    mkdir -p "$rootfs/$d"
done
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"

cp "$busybox" "$rootfs/bin/busybox"
chmod 0755 "$rootfs/bin/busybox"

# One symlink per applet, at the path busybox itself names (bin/sh, usr/bin/env, ...).
# linuxrc (an init for initrds) is left out, as in Docker's busybox image.
"$busybox" --list-full | while IFS= read -r applet; do
    case "$applet" in
        ''|linuxrc|bin/busybox) continue ;;
    esac
    case "$applet" in
        */*) [ -d "$rootfs/${applet%/*}" ] || mkdir -p "$rootfs/${applet%/*}" ;;
    esac
    ln -sfn /bin/busybox "$rootfs/$applet"
done

cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000::/home/app:/bin/sh
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
app:x:1000:
GROUP
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"

# Entries are owned 0:0, except app's home (1000:1000) where we can chown (as root).
if [ "$(id -u)" -eq 0 ]; then
    chown -R 0:0 "$rootfs"
    chown 1000:1000 "$rootfs/home/app"
    owner_opts=()
else
    owner_opts=(--owner=0 --group=0)
fi
out_dir=$(dirname -- "$out")
mkdir -p -- "$out_dir"
tmp_out=$(mktemp "$out_dir/.mkbusybox.XXXXXX")
tar --numeric-owner "${owner_opts[@]}" --sort=name --mtime=@0 \
    -C "$rootfs" -cf "$tmp_out" .
chmod 0644 "$tmp_out"
mv -f -- "$tmp_out" "$out"
tmp_out=""
