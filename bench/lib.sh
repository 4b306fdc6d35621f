# shellcheck shell=bash
# bench/lib.sh — what bench/run.sh and bench/images.sh share. Sourced, never run.
#
# The caller sets `set -euo pipefail`, LC_ALL=C and its knobs (SECTIONS, ENGINES, BUILD,
# INSTALL, BERTH_BIN), sources this file, then calls, in this order:
#   bench_start          must be root; installs missing tools; makes $BENCH_TMP (one
#                        mktemp -d for everything) and $RES; sets the cleanup trap
#   bench_setup_engines  bb.tar (scripts/mkbusybox.sh); berth (built unless BUILD=0),
#                        a private dockerd and podman, each with `bb` imported;
#                        sets berth_ok / docker_ok / podman_ok, reasons in $BENCH_TMP/E.why
# Every engine runs on private paths under $BENCH_TMP with --network none; on exit the
# trap removes the containers, stops dockerd by PID, kills by PID what still names
# $BENCH_TMP, unmounts, removes our cgroups and $BENCH_TMP. See bench/README.md.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# Debian's own docker client matches Debian's dockerd (a newer one may be first on PATH).
DOCKER_CLI=/usr/bin/docker

log() { printf '%s\n' "$*" >&2; }
section() { printf '\n===== %s =====\n' "$*" >&2; }
want_section() { case " $SECTIONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
want_engine() { case " $ENGINES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Runs "$@" in a subshell with `set -e` in force (it is not in functions called from
# `if`, `||` or `&&`), without stopping this script when it fails. Sets TRY_RC.
try() {
    set +e
    (set -e; "$@")
    TRY_RC=$?
    set -e
}


# ---- tools ---------------------------------------------------------------------------
install_missing() {
    local -A need=(
        [hyperfine]=hyperfine [dockerd]=docker.io [containerd]=containerd [runc]=runc
        [crun]=crun [podman]=podman [conmon]=conmon [python3]=python3 [unshare]=util-linux
        [skopeo]=skopeo [docker-registry]=docker-registry
    )
    local pkgs=() cmd
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || pkgs+=("${need[$cmd]}")
    done
    [ -x "$DOCKER_CLI" ] || pkgs+=(docker.io)
    [ -x /bin/busybox ] || pkgs+=(busybox-static)
    [ ${#pkgs[@]} -eq 0 ] && return 0
    if [ "$INSTALL" != 1 ]; then
        log "bench: missing packages (INSTALL=0): ${pkgs[*]}"
        return 0
    fi
    section "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    # shellcheck disable=SC2046
    apt-get install -y -q --no-install-recommends $(printf '%s\n' "${pkgs[@]}" | sort -u) >&2
}

# ---- state and cleanup ---------------------------------------------------------------
# Processes under $BENCH_TMP that we did not stop politely (monitors, shims, conmons):
# those whose command line or environment names $BENCH_TMP. Killed by PID.
kill_leftovers() {
    local pids
    pids=$(BENCH_TMP=$BENCH_TMP python3 - <<'PY'
import os
tmp = os.environ["BENCH_TMP"].encode()
me = {os.getpid(), os.getppid()}
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) in me:
        continue
    for f in ("cmdline", "environ"):
        try:
            with open(f"/proc/{p}/{f}", "rb") as fh:
                if tmp in fh.read():
                    print(p)
                    break
        except OSError:
            pass
PY
) || return 0
    local p
    for p in $pids; do
        [ "$p" = "$$" ] || [ "$p" = "${BASHPID:-}" ] && continue
        kill -KILL "$p" 2>/dev/null || true
    done
}

unmount_under_tmp() {
    local m
    # Deepest first (mountinfo field 5); octal escapes are left alone (our paths have none).
    awk -v t="$BENCH_TMP" '$5 == t || index($5, t "/") == 1 { print length($5) "\t" $5 }' /proc/self/mountinfo |
        sort -rn | cut -f2- | while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done
}

remove_cgroups() {
    local h d
    for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
        [ -d "$h" ] || continue
        for d in "$h/$BERTH_CG" "$h/$DOCKER_CG"; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        done
        # podman (cgroupfs) puts containers under /libpod_parent: remove it if we made it
        d=$h/libpod_parent
        if [ -d "$d" ] && [ -z "${libpod_parent_existed[$h]:-}" ]; then
            find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        fi
    done
}

stop_dockerd() {
    [ -n "$DOCKERD_PID" ] || return 0
    local containerd_pids
    containerd_pids=$(cat /proc/"$DOCKERD_PID"/task/*/children 2>/dev/null || true)
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$DOCKERD_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
    local p
    for p in $containerd_pids; do kill -KILL "$p" 2>/dev/null || true; done
    DOCKERD_PID=""
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    log ""
    log "bench: cleaning up"
    remove_all_containers
    stop_dockerd
    if [ -n "${REGISTRY_PID:-}" ]; then
        kill -TERM "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    kill_leftovers
    # give killed processes a moment to release their mounts and cgroups
    sleep 0.3
    unmount_under_tmp
    remove_cgroups
    rm -rf -- "$BENCH_TMP"
    if [ "$libpod_lock_existed" = 0 ] && [ -e /dev/shm/libpod_lock ] && ! pgrep -x podman >/dev/null; then
        rm -f /dev/shm/libpod_lock
    fi
    exit "$rc"
}

# Root check, tools, temp dir, cleanup trap.
bench_start() {
    local h
    [ "$(id -u)" -eq 0 ] || { log "bench: must run as root"; exit 1; }
    install_missing
    command -v hyperfine >/dev/null && command -v python3 >/dev/null || {
        log "bench: hyperfine and python3 are required"; exit 1;
    }

    BENCH_TMP=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
    RES=$BENCH_TMP/results
    mkdir -p "$RES" "$BENCH_TMP/samples"
    CG_TAG=berth-bench-$$
    BERTH_CG=$CG_TAG-berth
    DOCKER_CG=$CG_TAG-docker
    DOCKERD_PID=""
    libpod_lock_existed=0
    [ -e /dev/shm/libpod_lock ] && libpod_lock_existed=1
    declare -gA libpod_parent_existed=()
    for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
        [ -d "$h/libpod_parent" ] && libpod_parent_existed[$h]=1
    done
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# ---- engines -------------------------------------------------------------------------
# shellcheck disable=SC2034 # read through eval "\${E}_ok"
berth_ok=0 docker_ok=0 podman_ok=0

eng_berth() {
    "$BERTH" --root "$BENCH_TMP/berth/root" --run-root "$BENCH_TMP/berth/run" --cgroup-parent "$BERTH_CG" "$@"
}
eng_docker() { "$DOCKER_CLI" "$@"; }
eng_podman() { podman --root "$BENCH_TMP/podman/root" --runroot "$BENCH_TMP/podman/run" "$@"; }

# `timeout` cannot run shell functions: these give the argv of each engine's CLI.
engine_argv() {
    case $1 in
        berth) ENGINE_ARGV=("$BERTH" --root "$BENCH_TMP/berth/root" --run-root "$BENCH_TMP/berth/run" --cgroup-parent "$BERTH_CG") ;;
        docker) ENGINE_ARGV=("$DOCKER_CLI") ;;
        podman) ENGINE_ARGV=(podman --root "$BENCH_TMP/podman/root" --runroot "$BENCH_TMP/podman/run") ;;
    esac
}

# Removes every container of one engine (best effort, bounded in time).
remove_containers_of() {
    local ids
    engine_argv "$1"
    ids=$(timeout 30 "${ENGINE_ARGV[@]}" ps -aq 2>/dev/null || true)
    [ -n "$ids" ] || return 0
    # podman's `rm -f` first waits the stop timeout (10 s) for PID 1 to heed SIGTERM
    local now=()
    [ "$1" = podman ] && now=(--time 0)
    # shellcheck disable=SC2086 # one ID per word
    timeout 120 "${ENGINE_ARGV[@]}" rm -f "${now[@]}" $ids >/dev/null 2>&1 || true
}

remove_all_containers() {
    local e
    for e in berth docker podman; do
        eval "[ \"\${${e}_ok}\" = 1 ]" || continue
        remove_containers_of "$e"
    done
}

first_line() { head -n 3 "$1" 2>/dev/null | tr '\n' ' ' | cut -c1-160; }

# berth: <target>/release/berth (berth-monitor sits next to it), or $BERTH_BIN
setup_berth() {
    if [ -z "${BERTH_BIN:-}" ] && [ "$BUILD" = 1 ]; then
        if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        fi
        log "bench: cargo build --release"
        (cd "$repo" && cargo build --release) 2>&1 | tee "$BENCH_TMP/berth-build.log" >&2 || {
            echo "cargo build --release failed" >"$BENCH_TMP/berth.why"
            return 1
        }
    fi
    [ -x "$BERTH" ] || { echo "no berth binary at $BERTH" >"$BENCH_TMP/berth.why"; return 1; }
    mkdir -p "$BENCH_TMP/berth/root" "$BENCH_TMP/berth/run"
    eng_berth import "$BENCH_TMP/bb.tar" bb >/dev/null 2>"$BENCH_TMP/berth.why"
}

# docker: Debian's dockerd with its own containerd, on private paths, no bridge, no
# iptables, no ip_forward. Started from the main shell (not in `try`) so that its PID
# is ours to stop.
start_dockerd() {
    want_engine docker || return 0
    command -v dockerd >/dev/null || { echo "dockerd not installed" >"$BENCH_TMP/docker.why"; return 0; }
    mkdir -p "$BENCH_TMP/docker" "$BENCH_TMP/docker-exec"
    log "bench: starting dockerd"
    dockerd --bridge=none --iptables=false --ip-masq=false --ip6tables=false --ip-forward=false \
        --data-root "$BENCH_TMP/docker" --exec-root "$BENCH_TMP/docker-exec" --pidfile "$BENCH_TMP/docker.pid" \
        --host "$DOCKER_HOST" --cgroup-parent "$DOCKER_CG" \
        </dev/null >"$BENCH_TMP/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
}

setup_docker() {
    [ -n "$DOCKERD_PID" ] || return 1
    local deadline=$((SECONDS + 60))
    until [ -S "$BENCH_TMP/docker.sock" ] && eng_docker version >/dev/null 2>&1; do
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            echo "dockerd exited: $(tail -n 2 "$BENCH_TMP/dockerd.log" | tr '\n' ' ')" >"$BENCH_TMP/docker.why"
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then echo "dockerd did not answer in 60 s" >"$BENCH_TMP/docker.why"; return 1; fi
        sleep 0.05
    done
    eng_docker import "$BENCH_TMP/bb.tar" bb >/dev/null 2>"$BENCH_TMP/docker.why"
}

# podman: with our containers.conf ($CONTAINERS_CONF), on private paths
setup_podman() {
    mkdir -p "$BENCH_TMP/podman/root" "$BENCH_TMP/podman/run" "$BENCH_TMP/podman/tmp" "$BENCH_TMP/podman/net"
    eng_podman import "$BENCH_TMP/bb.tar" bb >/dev/null 2>"$BENCH_TMP/podman.why"
}

# bb.tar, then berth, docker and podman with `bb` imported (those in $ENGINES).
bench_setup_engines() {
    section "setup in $BENCH_TMP"
    "$repo/scripts/mkbusybox.sh" "$BENCH_TMP/bb.tar"

    if [ -n "${BERTH_BIN:-}" ]; then
        BERTH=$BERTH_BIN
    else
        BERTH=${CARGO_TARGET_DIR:-$repo/target}/release/berth
    fi

    export DOCKER_HOST=unix://$BENCH_TMP/docker.sock
    export DOCKER_CONFIG=$BENCH_TMP/docker-config
    export CONTAINERS_CONF=$BENCH_TMP/containers.conf
    # podman reads $DOCKER_CONFIG/config.json too, and fails when it is missing
    mkdir -p "$DOCKER_CONFIG"
    echo '{}' >"$DOCKER_CONFIG/config.json"
    # podman's settings for this machine (shared/reference/peers-on-this-machine.md)
    mkdir -p "$BENCH_TMP/podman"
    cat >"$BENCH_TMP/containers.conf" <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "$BENCH_TMP/podman/tmp"

[network]
network_config_dir = "$BENCH_TMP/podman/net"
EOF
    start_dockerd
    for e in berth docker podman; do
        want_engine "$e" || { echo "not selected" >"$BENCH_TMP/$e.why"; continue; }
        log "bench: setting up $e"
        try "setup_$e"
        if [ "$TRY_RC" = 0 ]; then
            eval "${e}_ok=1"
            rm -f "$BENCH_TMP/$e.why"
        else
            log "bench: $e: failed: $(first_line "$BENCH_TMP/$e.why")"
            [ -s "$BENCH_TMP/$e.why" ] || echo "setup failed" >"$BENCH_TMP/$e.why"
        fi
    done
}

median_ms() { # FILE of microsecond samples -> median in ms
    python3 -c '
import statistics, sys
xs = [int(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{statistics.median(xs) / 1000:.1f}" if xs else "")' "$1"
}
