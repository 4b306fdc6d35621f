#!/usr/bin/env bash
# bench/run.sh — berth side by side with Docker, Podman, runc, crun and the kernel floor.
#
# One run measures, on this machine:
#   a. `run --rm bb true` latency (hyperfine medians) for berth, docker, podman,
#      runc, crun and `unshare -fpmiun true`;
#   a2. `exec CTR true` latency (hyperfine medians) for berth, docker, podman;
#   b. create / start / stop / rm, each timed on its own, for berth, docker, podman;
#   c. idle memory: the PSS of the per-container monitor (berth-monitor,
#      containerd-shim-runc-v2, conmon) with N containers running;
#   c2. the same with a healthcheck every 30 s in each container, measured
#      once every container has run its first probe;
#   c3. `density`: N idle containers (`run -d --network none bb sleep 1d`; N_DENSITY
#      for berth, N_DENSITY_PEERS for docker and podman): the time to start them all,
#      the memory each adds (PSS of its monitor/shim plus the daemons' growth, from
#      smaps_rollup; the kernel's slab growth from /proc/meminfo), `ps` and `ps -a`
#      with them all running (median of N_PS), `stats --no-stream` of 50 of them;
#   d. `build` (hyperfine medians) for berth, docker's classic builder, docker's
#      BuildKit and podman: cold (--no-cache), fully cached, last step changed, and
#      a two-stage build; plus the peak RSS of each engine's build processes;
#   f. `net`: on each engine's default bridge (docker and podman each with its own):
#      `run --rm bb true`; `run -d -p PORT:80` until the port answers; TCP throughput
#      and connections per second through a published port against the container's
#      address directly; the time of `network connect` to a running container.
#   g. `thaw`: berth's idle mode (no peer has one): connection to first byte of an
#      HTTP answer through a published port, from a container its monitor froze
#      (`--idle-timeout`) against the same container awake.
#   e. `registry`: push and pull of a ~212 MB image in 4 layers (4 × 50 MiB random
#      files) against a loopback docker-registry, one run each, for berth, docker,
#      podman and skopeo: push to an empty registry, push of a one-layer change, an
#      unchanged re-push, a cold pull, a pull with the base layers present; the
#      pull's peak RSS.
# Results go to bench/results/<date>.md (gitignored) and to stdout. See bench/README.md.
#
# Every engine runs on private paths under one temp dir, with --network none but in
# section f, all inside a network namespace of the bench's own. Everything started here is stopped by PID on exit.
# A peer that fails gets "failed" in its row and the run goes on.
set -euo pipefail
export LC_ALL=C

# ---- knobs (environment) -------------------------------------------------------------
RUNS=${RUNS:-50}               # hyperfine runs per command (section a)
WARMUP=${WARMUP:-3}            # hyperfine warmup runs
N_LIFE=${N_LIFE:-20}           # containers for create/start/stop/rm (section b)
N_IDLE=${N_IDLE:-50}           # idle containers per engine (section c)
N_BUILD_COLD=${N_BUILD_COLD:-10}   # hyperfine runs of each cold build (section d)
N_BUILD=${N_BUILD:-20}             # hyperfine runs of each cached / last-step-changed build
SECTIONS=${SECTIONS:-"run exec lifecycle idle idle-health density build registry net thaw"}
N_DENSITY=${N_DENSITY:-1000}          # berth's idle containers in section c3
N_DENSITY_PEERS=${N_DENSITY_PEERS:-50} # docker's and podman's
N_PS=${N_PS:-10}                       # runs of each `ps` timed in section c3
N_NET=${N_NET:-10}             # runs of each `run -d -p` / `network connect` (section f)
ENGINES=${ENGINES:-"berth docker podman runc crun floor"}
BUILD=${BUILD:-1}              # 0: do not run `cargo build --release`
INSTALL=${INSTALL:-1}          # 0: do not apt-get install missing tools
# BERTH_BIN: a berth binary to use instead of <target>/release/berth

# Everything runs in a network namespace of the bench's own: berth's bridge
# (now its default network), docker's and podman's bridges for section f, NAT
# rules and all traffic stay there; the host's networking is never touched.
if [ -z "${BENCH_IN_NETNS:-}" ]; then
    exec env BENCH_IN_NETNS=1 unshare --net -- bash "$0" "$@"
fi
ip link set lo up

# Shared with bench/images.sh: tools, temp dir and cleanup, dockerd/podman/berth setup.
# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_start

# runc / crun: an OCI bundle of the busybox rootfs running `true`
setup_bundle() {
    mkdir -p "$BENCH_TMP/bundle/rootfs" "$BENCH_TMP/runc-state" "$BENCH_TMP/crun-state"
    tar -C "$BENCH_TMP/bundle/rootfs" -xf "$BENCH_TMP/bb.tar"
    (cd "$BENCH_TMP/bundle" && runc spec)
    python3 - "$BENCH_TMP/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["true"]
c["process"]["terminal"] = False
json.dump(c, open(p, "w"), indent=1)
PY
    # Unique container id per run: the wrapper shell's PID.
    cat >"$BENCH_TMP/runc-run.sh" <<EOF
#!/bin/sh
exec runc --root "$BENCH_TMP/runc-state" run -b "$BENCH_TMP/bundle" "bench-\$\$"
EOF
    if mountpoint -q /sys/fs/cgroup/unified; then
        # crun 1.8 refuses hybrid cgroups: run it in a mount namespace without the v2 mount.
        cat >"$BENCH_TMP/crun-run.sh" <<EOF
#!/bin/sh
exec unshare -m sh -c 'umount /sys/fs/cgroup/unified && exec crun --root "$BENCH_TMP/crun-state" run -b "$BENCH_TMP/bundle" "bench-\$\$"'
EOF
    else
        cat >"$BENCH_TMP/crun-run.sh" <<EOF
#!/bin/sh
exec crun --root "$BENCH_TMP/crun-state" run -b "$BENCH_TMP/bundle" "bench-\$\$"
EOF
    fi
    chmod +x "$BENCH_TMP/runc-run.sh" "$BENCH_TMP/crun-run.sh"
}

bench_setup_engines
bundle_ok=0
if want_engine runc || want_engine crun; then
    try setup_bundle
    [ "$TRY_RC" = 0 ] && bundle_ok=1
fi

# ---- a. run --rm true ------------------------------------------------------------------
# rows: tool<TAB>median_ms|failed|skipped<TAB>note
bench_run() {
    local label=$1; shift
    local json=$BENCH_TMP/hf-${label//[^a-z0-9]/_}.json err=$BENCH_TMP/run-check.err
    # One checked run first, so a failure shows its reason rather than hyperfine's.
    if ! "$@" >/dev/null 2>"$err"; then
        printf '%s\tfailed\t%s\n' "$label" "$(first_line "$err")" >>"$RES/run.tsv"
        return 0
    fi
    if hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$json" \
        "$(printf '%q ' "$@")" >&2; then
        local med
        med=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("%.1f" % (r["median"] * 1000))' "$json")
        printf '%s\t%s\t\n' "$label" "$med" >>"$RES/run.tsv"
    else
        printf '%s\tfailed\thyperfine failed\n' "$label" >>"$RES/run.tsv"
    fi
}

# One row of section a; never stops the script.
run_row() {
    try bench_run "$@"
    [ "$TRY_RC" = 0 ] || printf '%s\tfailed\texit %s\n' "$1" "$TRY_RC" >>"$RES/run.tsv"
}

skip_row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RES/$4.tsv"; }

if want_section run; then
    section "a. run --rm bb true (hyperfine, $RUNS runs)"
    : >"$RES/run.tsv"
    if want_engine berth; then
        if [ "$berth_ok" = 1 ]; then run_row "berth run --rm --network none bb true" "$BERTH" --root "$BENCH_TMP/berth/root" --run-root "$BENCH_TMP/berth/run" --cgroup-parent "$BERTH_CG" run --rm --network none bb true
        else skip_row "berth run --rm --network none bb true" failed "$(first_line "$BENCH_TMP/berth.why")" run; fi
    fi
    if want_engine docker; then
        if [ "$docker_ok" = 1 ]; then run_row "docker run --rm --network none bb true" "$DOCKER_CLI" run --rm --network none bb true
        else skip_row "docker run --rm --network none bb true" failed "$(first_line "$BENCH_TMP/docker.why")" run; fi
    fi
    if want_engine podman; then
        if [ "$podman_ok" = 1 ]; then run_row "podman run --rm --network none bb true" podman --root "$BENCH_TMP/podman/root" --runroot "$BENCH_TMP/podman/run" run --rm --network none bb true
        else skip_row "podman run --rm --network none bb true" failed "$(first_line "$BENCH_TMP/podman.why")" run; fi
    fi
    if want_engine runc; then
        if [ "$bundle_ok" = 1 ]; then run_row "runc run (bundle)" "$BENCH_TMP/runc-run.sh"
        else skip_row "runc run (bundle)" failed "bundle setup failed" run; fi
    fi
    if want_engine crun; then
        crun_label="crun run (bundle)"
        mountpoint -q /sys/fs/cgroup/unified && crun_label="crun run (bundle; in unshare -m without the v2 mount)"
        if [ "$bundle_ok" = 1 ] && "$BENCH_TMP/crun-run.sh" >/dev/null 2>&1; then
            run_row "$crun_label" "$BENCH_TMP/crun-run.sh"
        else
            log "crun: skipped (hybrid cgroups)"
            skip_row "crun run (bundle)" skipped "hybrid cgroups" run
        fi
    fi
    if want_engine floor; then
        run_row "unshare -fpmiun true (floor)" unshare -fpmiun true
    fi
fi

# ---- a2. exec CTR true --------------------------------------------------------------
# berth's exec goes through an exec monitor (pipes it relays, its own session), as
# docker's goes through containerd's shim and podman's through conmon.
if want_section exec; then
    section "a2. exec CTR true (hyperfine, $RUNS runs)"
    : >"$RES/exec.tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        if [ "$(eval echo "\$${e}_ok")" != 1 ]; then
            skip_row "$e exec CTR true" failed "engine setup failed" exec
            continue
        fi
        engine_argv "$e"
        net=(--network none)
        [ "$e" = berth ] && net=()
        if ! ctr=$(timeout 60 "${ENGINE_ARGV[@]}" run -d "${net[@]}" bb sleep 100000 2>"$BENCH_TMP/exec.err"); then
            skip_row "$e exec CTR true" failed "$(first_line "$BENCH_TMP/exec.err")" exec
            continue
        fi
        json=$BENCH_TMP/hf-exec-$e.json
        if hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$json" \
            "$(printf '%q ' "${ENGINE_ARGV[@]}" exec "$ctr" true)" >&2; then
            med=$(python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$json")
            printf '%s\t%s\t\n' "$e exec CTR true" "$med" >>"$RES/exec.tsv"
        else
            skip_row "$e exec CTR true" failed "hyperfine failed" exec
        fi
        remove_containers_of "$e"
    done
fi

# ---- b. create / start / stop / rm -----------------------------------------------------
# rows: engine<TAB>op<TAB>median_ms|failed<TAB>samples<TAB>note
# PID 1 that exits at once on SIGTERM. (`while :; do sleep 0.1; done` would add up to
# 100 ms: sh runs a trap only after its foreground child exits; `wait` returns at once.)
TERM_LOOP='trap "exit 0" TERM; while :; do sleep 1000 & wait $!; done'

# Times each op on N containers, one call at a time ($EPOCHREALTIME: no fork for the clock).
lifecycle() {
    local e=$1 i t0 t1 op
    engine_argv "$e"
    local -a E=("${ENGINE_ARGV[@]}")
    local s=$BENCH_TMP/samples/life-$e
    for op in create start stop rm; do : >"$s.$op"; done
    for ((i = 1; i <= N_LIFE; i++)); do
        t0=$EPOCHREALTIME
        "${E[@]}" create --network none --name "bl$i" bb sh -c "$TERM_LOOP" >/dev/null 2>"$BENCH_TMP/life.err"
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$s.create"
    done
    for ((i = 1; i <= N_LIFE; i++)); do
        t0=$EPOCHREALTIME
        "${E[@]}" start "bl$i" >/dev/null 2>"$BENCH_TMP/life.err"
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$s.start"
    done
    for ((i = 1; i <= N_LIFE; i++)); do
        t0=$EPOCHREALTIME
        "${E[@]}" stop -t 10 "bl$i" >/dev/null 2>"$BENCH_TMP/life.err"
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$s.stop"
    done
    for ((i = 1; i <= N_LIFE; i++)); do
        t0=$EPOCHREALTIME
        "${E[@]}" rm "bl$i" >/dev/null 2>"$BENCH_TMP/life.err"
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$s.rm"
    done
}

if want_section lifecycle; then
    section "b. create / start / stop / rm ($N_LIFE containers each)"
    : >"$RES/life.tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        if eval "[ \"\${${e}_ok}\" = 1 ]"; then
            log "bench: lifecycle: $e"
            : >"$BENCH_TMP/life.err"
            try lifecycle "$e"
            note=""
            [ "$TRY_RC" = 0 ] || note=$(first_line "$BENCH_TMP/life.err")
            for op in create start stop rm; do
                f=$BENCH_TMP/samples/life-$e.$op
                n=$( [ -f "$f" ] && wc -l <"$f" || echo 0)
                if [ "$n" -eq "$N_LIFE" ]; then
                    printf '%s\t%s\t%s\t%s\t\n' "$e" "$op" "$(median_ms "$f")" "$n" >>"$RES/life.tsv"
                else
                    printf '%s\t%s\tfailed\t%s\t%s\n' "$e" "$op" "$n" "$note" >>"$RES/life.tsv"
                    note=""
                fi
            done
            # leave nothing behind for the next section
            remove_containers_of "$e"
        else
            for op in create start stop rm; do
                printf '%s\t%s\tfailed\t0\t%s\n' "$e" "$op" "$(first_line "$BENCH_TMP/$e.why")" >>"$RES/life.tsv"
            done
        fi
    done
fi

# ---- c. idle memory --------------------------------------------------------------------
# rows: engine<TAB>status<TAB>n<TAB>start_ms<TAB>monitors<TAB>monitor<TAB>pss_total_kib<TAB>per_container_kib<TAB>daemons_kib<TAB>note
pss_kib() { awk '/^Pss:/ { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# idle ENGINE TSV [RUN OPTIONS...]: with options (a healthcheck), PSS is
# measured once every container's first probe has run.
idle() {
    local e=$1 tsv=$2 i t0 t1 pid ppid n
    shift 2
    if [ $# -gt 0 ] && [ "$e" = podman ] && [ ! -d /run/systemd/system ]; then
        # podman runs healthchecks from systemd timers: none without systemd.
        echo "podman runs healthchecks from systemd timers; this machine has no systemd" >"$BENCH_TMP/idle.err"
        return 1
    fi
    engine_argv "$e"
    local -a E=("${ENGINE_ARGV[@]}")
    local s=$BENCH_TMP/samples/idle-$e
    : >"$s.start"
    : >"$s.monitors"
    for ((i = 1; i <= N_IDLE; i++)); do
        t0=$EPOCHREALTIME
        "${E[@]}" run -d --network none --name "bi$i" "$@" bb sleep 100000 >/dev/null 2>"$BENCH_TMP/idle.err"
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$s.start"
    done
    if [ $# -gt 0 ]; then
        local deadline=$((SECONDS + 180))
        for ((i = 1; i <= N_IDLE; i++)); do
            until n=$("${E[@]}" inspect -f '{{len .State.Health.Log}}' "bi$i" 2>/dev/null) && [ "${n:-0}" -ge 1 ]; do
                [ "$SECONDS" -lt "$deadline" ] || { echo "bi$i: no healthcheck result after 180 s" >"$BENCH_TMP/idle.err"; return 1; }
                sleep 0.5
            done
        done
    fi
    for ((i = 1; i <= N_IDLE; i++)); do
        pid=$("${E[@]}" inspect -f '{{.State.Pid}}' "bi$i" 2>/dev/null) ||
            pid=$("${E[@]}" inspect "bi$i" 2>"$BENCH_TMP/idle.err" |
                python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["Pid"])')
        [ -n "$pid" ] && [ "$pid" -gt 0 ] || { echo "bi$i: no State.Pid" >"$BENCH_TMP/idle.err"; return 1; }
        ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status")
        echo "$ppid" >>"$s.monitors"
    done
    sync
    local total=0 count=0 name p daemons=0
    for p in $(sort -un "$s.monitors"); do
        total=$((total + $(pss_kib "$p")))
        count=$((count + 1))
        name=$(cat "/proc/$p/comm")
    done
    if [ "$e" = docker ] && [ -n "$DOCKERD_PID" ]; then
        daemons=$(pss_kib "$DOCKERD_PID")
        for p in $(cat /proc/"$DOCKERD_PID"/task/*/children 2>/dev/null); do
            daemons=$((daemons + $(pss_kib "$p")))
        done
    fi
    printf '%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$e" "$N_IDLE" "$(median_ms "$s.start")" \
        "$count" "$name" "$total" "$((total / N_IDLE))" "$daemons" >>"$RES/$tsv"
}

# idle_section SECTION TITLE TSV [RUN OPTIONS...]
idle_section() {
    local sec=$1 title=$2 tsv=$3 e
    shift 3
    want_section "$sec" || return 0
    section "$title"
    : >"$RES/$tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        if eval "[ \"\${${e}_ok}\" = 1 ]"; then
            log "bench: $sec: $e"
            : >"$BENCH_TMP/idle.err"
            try idle "$e" "$tsv" "$@"
            if [ "$TRY_RC" != 0 ]; then
                printf '%s\tfailed\t%s\t\t\t\t\t\t\t%s\n' "$e" "$N_IDLE" "$(first_line "$BENCH_TMP/idle.err")" >>"$RES/$tsv"
            fi
            log "bench: $sec: removing $e's containers"
            remove_containers_of "$e"
        else
            printf '%s\tfailed\t%s\t\t\t\t\t\t\t%s\n' "$e" "$N_IDLE" "$(first_line "$BENCH_TMP/$e.why")" >>"$RES/$tsv"
        fi
    done
}
idle_section idle "c. idle memory ($N_IDLE containers each)" idle.tsv
idle_section idle-health "c2. idle memory with a 30 s healthcheck ($N_IDLE containers each)" idle-health.tsv \
    --health-cmd true --health-interval 30s --health-start-period 0s

# ---- c3. density ---------------------------------------------------------------------------
# rows of density.tsv: engine<TAB>status<TAB>n<TAB>start_all_s<TAB>start_median_ms<TAB>start_first50_ms
#   <TAB>start_last50_ms<TAB>monitor<TAB>monitors_pss_kib<TAB>daemons_before_kib<TAB>daemons_after_kib
#   <TAB>slab_before_kib<TAB>slab_after_kib<TAB>ps_ms<TAB>ps_a_ms<TAB>stats50_ms<TAB>note
#   <TAB>sunreclaim_before_kib<TAB>sunreclaim_after_kib
# "Slab SUnreclaim" in KiB. Before the first reading, reclaimable dentries and
# inodes are dropped (drop_caches=2), so that what others cached does not shrink
# under the measurement; SUnreclaim is the part no cache pressure gives back.
slab_kib() { awk '/^Slab:/ { s = $2 } /^SUnreclaim:/ { u = $2 } END { print s, u }' /proc/meminfo; }

# The PSS of an engine's daemons (dockerd and its children: containerd), 0 for the others.
daemons_pss() {
    local total=0 p
    if [ "$1" = docker ] && [ -n "$DOCKERD_PID" ]; then
        total=$(pss_kib "$DOCKERD_PID")
        for p in $(cat /proc/"$DOCKERD_PID"/task/*/children 2>/dev/null); do
            # the shims (if any are its children) are counted as monitors
            case "$(cat "/proc/$p/comm" 2>/dev/null)" in containerd-shim*) continue ;; esac
            total=$((total + $(pss_kib "$p")))
        done
    fi
    echo "$total"
}

# time_runs FILE N CMD...: N timed runs of CMD (output discarded), microseconds to FILE
time_runs() {
    local f=$1 n=$2 i t0 t1
    shift 2
    : >"$f"
    for ((i = 0; i < n; i++)); do
        t0=$EPOCHREALTIME
        "$@" >/dev/null 2>&1 || return 1
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$f"
    done
}

density() {
    local e=$1 n=$2 i t0 t1 tall0 tall1 pid ppid p
    engine_argv "$e"
    local -a E=("${ENGINE_ARGV[@]}")
    local s=$BENCH_TMP/samples/density-$e
    sync
    echo 2 >/proc/sys/vm/drop_caches 2>/dev/null || true
    local d0 slab0 unrec0
    d0=$(daemons_pss "$e")
    read -r slab0 unrec0 < <(slab_kib)
    : >"$s.start"
    tall0=$EPOCHREALTIME
    for ((i = 1; i <= n; i++)); do
        t0=$EPOCHREALTIME
        "${E[@]}" run -d --network none --name "bd$i" bb sleep 1d >/dev/null 2>"$BENCH_TMP/density.err" ||
            { echo "container $i: $(first_line "$BENCH_TMP/density.err")" >"$BENCH_TMP/density.err"; return 1; }
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$s.start"
    done
    tall1=$EPOCHREALTIME
    local names=()
    for ((i = 1; i <= n; i++)); do names+=("bd$i"); done
    "${E[@]}" inspect -f '{{.State.Pid}}' "${names[@]}" >"$s.pids" 2>"$BENCH_TMP/density.err" || return 1
    : >"$s.monitors"
    while read -r pid; do
        [ -n "$pid" ] && [ "$pid" -gt 0 ] || { echo "a container without State.Pid" >"$BENCH_TMP/density.err"; return 1; }
        awk '/^PPid:/ { print $2 }' "/proc/$pid/status" >>"$s.monitors"
    done <"$s.pids"
    sync
    local total=0 name=""
    for p in $(sort -un "$s.monitors"); do
        total=$((total + $(pss_kib "$p")))
        name=$(cat "/proc/$p/comm")
    done
    local d1 slab1 unrec1
    d1=$(daemons_pss "$e")
    read -r slab1 unrec1 < <(slab_kib)
    time_runs "$s.ps" "$N_PS" "${E[@]}" ps || { echo "ps failed" >"$BENCH_TMP/density.err"; return 1; }
    time_runs "$s.psa" "$N_PS" "${E[@]}" ps -a || { echo "ps -a failed" >"$BENCH_TMP/density.err"; return 1; }
    time_runs "$s.stats" 3 "${E[@]}" stats --no-stream "${names[@]:0:50}" ||
        { echo "stats failed" >"$BENCH_TMP/density.err"; return 1; }
    head -n 50 "$s.start" >"$s.first"
    tail -n 50 "$s.start" >"$s.last"
    printf '%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t%s\t%s\n' "$e" "$n" \
        "$(python3 -c "print('%.2f' % ((${tall1/./} - ${tall0/./}) / 1e6))")" \
        "$(median_ms "$s.start")" "$(median_ms "$s.first")" "$(median_ms "$s.last")" \
        "$name" "$total" "$d0" "$d1" "$slab0" "$slab1" \
        "$(median_ms "$s.ps")" "$(median_ms "$s.psa")" "$(median_ms "$s.stats")" "$unrec0" "$unrec1" >>"$RES/density.tsv"
}

if want_section density; then
    section "c3. density ($N_DENSITY idle containers for berth, $N_DENSITY_PEERS for docker and podman)"
    : >"$RES/density.tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        n=$N_DENSITY_PEERS
        [ "$e" = berth ] && n=$N_DENSITY
        if eval "[ \"\${${e}_ok}\" = 1 ]"; then
            log "bench: density: $e ($n containers)"
            : >"$BENCH_TMP/density.err"
            try density "$e" "$n"
            if [ "$TRY_RC" != 0 ]; then
                printf '%s\tfailed\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t%s\n' "$e" "$n" "$(first_line "$BENCH_TMP/density.err")" >>"$RES/density.tsv"
            fi
            log "bench: density: removing $e's containers"
            remove_containers_of "$e"
        else
            printf '%s\tfailed\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t%s\n' "$e" "$n" "$(first_line "$BENCH_TMP/$e.why")" >>"$RES/density.tsv"
        fi
    done
fi

# ---- d. build ---------------------------------------------------------------------------
# One context for every engine: a 10 MB random file and two Dockerfiles.
#   Dockerfile        FROM bb, ENV, WORKDIR, COPY of the 10 MB file, 5 RUN steps each
#                     writing a small file, CMD. Its last RUN line carries a counter that
#                     $BENCH_TMP/build/bump.sh raises (hyperfine --prepare, untimed) for
#                     "last step changed": only that RUN (and the CMD after it) is rebuilt.
#   Dockerfile.multi  two independent stages (a: RUN writes /a; b: RUN writes /b) and a
#                     final stage that COPYs --from both.
# rows of build.tsv: engine<TAB>mode<TAB>median_ms|failed|skipped<TAB>note
# rows of build-mem.tsv: engine<TAB>cli_kib<TAB>daemon_peak_kib<TAB>daemon_before_kib<TAB>note
BUILD_ENGINES=(berth docker-classic docker-buildkit podman)

setup_build_context() {
    local d=$BENCH_TMP/build
    mkdir -p "$d/ctx"
    head -c 10485760 /dev/urandom >"$d/ctx/big.bin"
    echo 0 >"$d/counter"
    cat >"$d/bump.sh" <<EOF
#!/bin/sh
# Rewrites the last RUN of the Dockerfile with the next counter value.
set -e
n=\$(( \$(cat "$d/counter") + 1 ))
echo "\$n" >"$d/counter"
sed -i "s|^RUN echo last-.*|RUN echo last-\$n > /work/r5|" "$d/ctx/Dockerfile"
EOF
    chmod +x "$d/bump.sh"
    cat >"$d/ctx/Dockerfile" <<'EOF'
FROM bb
ENV BENCH=1 GREETING=hello
WORKDIR /work
COPY big.bin /work/big.bin
RUN echo one > /work/r1
RUN echo two > /work/r2
RUN echo three > /work/r3
RUN echo four > /work/r4
RUN echo last-0 > /work/r5
CMD ["sh"]
EOF
    cat >"$d/ctx/Dockerfile.multi" <<'EOF'
FROM bb AS a
RUN echo a > /a
FROM bb AS b
RUN echo b > /b
FROM bb
COPY --from=a /a /a
COPY --from=b /b /b
CMD ["sh"]
EOF
}

# build_argv ENGINE: BUILD_ARGV = the build command's argv up to its options;
# BUILD_ENV = the environment it needs (DOCKER_BUILDKIT).
build_argv() {
    BUILD_ENV=()
    case $1 in
        berth) engine_argv berth; BUILD_ARGV=("${ENGINE_ARGV[@]}" build --network none) ;;
        docker-classic) BUILD_ENV=(DOCKER_BUILDKIT=0); BUILD_ARGV=("$DOCKER_CLI" build --network none) ;;
        docker-buildkit) BUILD_ENV=(DOCKER_BUILDKIT=1); BUILD_ARGV=("$DOCKER_CLI" build --network none) ;;
        # podman build ignores containers.conf's runtime and would use crun (see the peers file)
        podman) engine_argv podman; BUILD_ARGV=("${ENGINE_ARGV[@]}" build --runtime runc --network none) ;;
    esac
}

# build_bench ENGINE MODE RUNS [PREPARE] -- BUILD OPTIONS...: one checked build (it also
# fills the cache for the cached modes), then hyperfine; a row of build.tsv.
build_bench() {
    local e=$1 mode=$2 runs=$3 prep=$4
    shift 5
    local json=$BENCH_TMP/hf-build-$e-$mode.json err=$BENCH_TMP/build-check.err
    local -a cmd=("${BUILD_ARGV[@]}" "$@") pa=()
    [ -n "$prep" ] && { "$prep"; pa=(--prepare "$prep"); }
    if ! env "${BUILD_ENV[@]}" "${cmd[@]}" >/dev/null 2>"$err"; then
        printf '%s\t%s\tfailed\t%s\n' "$e" "$mode" "$(first_line "$err")" >>"$RES/build.tsv"
        return 0
    fi
    if env "${BUILD_ENV[@]}" hyperfine -N --style basic --warmup 1 --runs "$runs" "${pa[@]}" \
        --export-json "$json" "$(printf '%q ' "${cmd[@]}")" >&2; then
        printf '%s\t%s\t%s\t\n' "$e" "$mode" "$(python3 -c '
import json, sys
print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$json")" >>"$RES/build.tsv"
    else
        printf '%s\t%s\tfailed\thyperfine failed\n' "$e" "$mode" >>"$RES/build.tsv"
    fi
}

status_kib() { awk -v k="$2:" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# build_mem ENGINE: one cold build under /usr/bin/time (the CLI's max RSS, which counts
# the children it waited for); for docker also dockerd's and containerd's peak RSS during
# the build (VmHWM, reset first through clear_refs) and their RSS before it.
build_mem() {
    local e=$1 t=$BENCH_TMP/build-time.out err=$BENCH_TMP/build-mem.err p
    local -a daemons=() opts=(-q -t bench-build --no-cache -f "$BENCH_TMP/build/ctx/Dockerfile" "$BENCH_TMP/build/ctx")
    local before=0 peak=0
    if [ "$e" = docker-classic ] || [ "$e" = docker-buildkit ]; then
        daemons=("$DOCKERD_PID" $(cat /proc/"$DOCKERD_PID"/task/*/children 2>/dev/null))
        for p in "${daemons[@]}"; do
            before=$((before + $(status_kib "$p" VmRSS)))
            echo 5 >"/proc/$p/clear_refs"
        done
    fi
    if ! env "${BUILD_ENV[@]}" /usr/bin/time -f %M -o "$t" "${BUILD_ARGV[@]}" "${opts[@]}" >/dev/null 2>"$err"; then
        printf '%s\tfailed\t\t\t%s\n' "$e" "$(first_line "$err")" >>"$RES/build-mem.tsv"
        return 0
    fi
    for p in "${daemons[@]}"; do peak=$((peak + $(status_kib "$p" VmHWM))); done
    printf '%s\t%s\t%s\t%s\t\n' "$e" "$(tail -n 1 "$t")" "$peak" "$before" >>"$RES/build-mem.tsv"
}

build_engine() {
    local e=$1 ctx=$BENCH_TMP/build/ctx
    build_argv "$e"
    local -a main=(-q -t bench-build -f "$ctx/Dockerfile") multi=(-q -t bench-multi -f "$ctx/Dockerfile.multi")
    log "bench: build: $e"
    build_bench "$e" cold "$N_BUILD_COLD" "" -- "${main[@]}" --no-cache "$ctx"
    build_bench "$e" cached "$N_BUILD" "" -- "${main[@]}" "$ctx"
    build_bench "$e" last "$N_BUILD" "$BENCH_TMP/build/bump.sh" -- "${main[@]}" "$ctx"
    build_bench "$e" multi-cold "$N_BUILD_COLD" "" -- "${multi[@]}" --no-cache "$ctx"
    build_bench "$e" multi-cached "$N_BUILD" "" -- "${multi[@]}" "$ctx"
    build_mem "$e"
}

if want_section build; then
    section "d. build (hyperfine: $N_BUILD_COLD runs cold, $N_BUILD cached / last step changed)"
    : >"$RES/build.tsv"
    : >"$RES/build-mem.tsv"
    try setup_build_context
    ctx_rc=$TRY_RC
    for e in "${BUILD_ENGINES[@]}"; do
        base=${e%%-*}
        want_engine "$base" || continue
        if [ "$ctx_rc" != 0 ]; then
            printf '%s\tall\tfailed\tcould not make the build context\n' "$e" >>"$RES/build.tsv"
            continue
        fi
        if eval "[ \"\${${base}_ok}\" = 1 ]"; then
            try build_engine "$e"
            [ "$TRY_RC" = 0 ] || printf '%s\tall\tfailed\texit %s\n' "$e" "$TRY_RC" >>"$RES/build.tsv"
            remove_containers_of "$base"
        else
            printf '%s\tall\tfailed\t%s\n' "$e" "$(first_line "$BENCH_TMP/$base.why")" >>"$RES/build.tsv"
            printf '%s\tfailed\t\t\t\n' "$e" >>"$RES/build-mem.tsv"
        fi
    done
fi

# ---- e. registry -------------------------------------------------------------------------
# One docker-registry on a free 127.0.0.1 port, storage under $BENCH_TMP. The image:
# four layers of one 50 MiB random file each (uncompressed tars, as an import or a
# build makes them: each engine compresses on its first push), written as a
# docker-archive that every engine loads: app:v1, and app:v2 = the same base with a
# different top layer. Each engine pushes to its own repository (no engine can mount
# another's blobs), then its local images are removed and it pulls them back.
# skopeo copies the docker-archive to the registry (push) and the registry to an OCI
# dir (pull). Docker goes first so that berth then also pulls docker's push (layers
# deflated by docker: the case the pull's floor is measured for). One run of each
# step, timed with $EPOCHREALTIME.
# rows of registry.tsv: engine<TAB>step<TAB>seconds|failed|skipped<TAB>note
# rows of registry-mem.tsv: engine<TAB>max RSS KiB of the cold pull
REGISTRY_ENGINES=(docker berth podman skopeo)

# Started from the main shell (not in `try`) so that its PID and address are ours.
start_registry() {
    local d=$BENCH_TMP/registry port
    mkdir -p "$d/storage"
    command -v docker-registry >/dev/null || { echo "docker-registry not installed" >"$d/why"; return 0; }
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    REGISTRY_ADDR=127.0.0.1:$port
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
        "$d/storage" "$REGISTRY_ADDR" >"$d/config.yml"
    docker-registry serve "$d/config.yml" </dev/null >"$d/log" 2>&1 &
    REGISTRY_PID=$!
}

setup_registry() {
    local d=$BENCH_TMP/registry
    [ -n "${REGISTRY_PID:-}" ] || return 1
    local deadline=$((SECONDS + 30))
    until python3 -c 'import sys, urllib.request as u; u.urlopen("http://" + sys.argv[1] + "/v2/", timeout=1)' "$REGISTRY_ADDR" 2>/dev/null; do
        kill -0 "$REGISTRY_PID" 2>/dev/null || { echo "docker-registry exited" >"$d/why"; return 1; }
        [ $SECONDS -lt $deadline ] || { echo "docker-registry did not answer" >"$d/why"; return 1; }
        sleep 0.05
    done
    # The images: app-v1.tar and app-v2.tar (docker-archive), made by python.
    python3 - "$d" <<'PY'
import hashlib, io, json, os, sys, tarfile
d = sys.argv[1]
def layer(name, seed):
    data = os.urandom(50 << 20)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("data")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        t.addfile(info)
        info = tarfile.TarInfo(f"data/{name}")
        info.size = len(data)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, "sha256:" + hashlib.sha256(raw).hexdigest()
base = [layer(f"l{i}", i) for i in range(1, 4)]
tops = {"v1": layer("l4", 4), "v2": layer("l4b", 5)}
for tag, top in tops.items():
    layers = base + [top]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [h for _, h in layers]},
        "history": [{"created": "2026-01-01T00:00:00Z"} for _ in layers],
    }).encode()
    cid = hashlib.sha256(config).hexdigest()
    with tarfile.open(os.path.join(d, f"app-{tag}.tar"), "w") as t:
        def add(name, b):
            i = tarfile.TarInfo(name)
            i.size = len(b)
            t.addfile(i, io.BytesIO(b))
        add(f"{cid}.json", config)
        names = []
        for raw, h in layers:
            n = h[len("sha256:"):] + "/layer.tar"
            add(n, raw)
            names.append(n)
        add("manifest.json", json.dumps([{"Config": f"{cid}.json", "RepoTags": [f"app:{tag}"], "Layers": names}]).encode())
PY
}

# reg_step ENGINE STEP COMMAND...: one timed run; a row of registry.tsv.
reg_step() {
    local e=$1 step=$2 t0 t1 err=$BENCH_TMP/registry/step.err
    shift 2
    t0=$EPOCHREALTIME
    if timeout 600 "$@" >/dev/null 2>"$err"; then
        t1=$EPOCHREALTIME
        printf '%s\t%s\t%s\t\n' "$e" "$step" "$(python3 -c 'import sys; print("%.3f" % ((int(sys.argv[2]) - int(sys.argv[1])) / 1e6))' "${t0/./}" "${t1/./}")" >>"$RES/registry.tsv"
    else
        printf '%s\t%s\tfailed\t%s\n' "$e" "$step" "$(first_line "$err")" >>"$RES/registry.tsv"
    fi
}

registry_engine() {
    local e=$1 d=$BENCH_TMP/registry r
    r=$REGISTRY_ADDR/$e/app
    log "bench: registry: $e"
    if [ "$e" = skopeo ]; then
        local -a S=(skopeo --insecure-policy copy -q --dest-tls-verify=false --src-tls-verify=false)
        reg_step skopeo push-cold "${S[@]}" "docker-archive:$d/app-v1.tar" "docker://$r:v1"
        reg_step skopeo push-change "${S[@]}" "docker-archive:$d/app-v2.tar" "docker://$r:v2"
        reg_step skopeo push-unchanged "${S[@]}" "docker-archive:$d/app-v1.tar" "docker://$r:v1"
        rm -rf "$d/oci"
        reg_step skopeo pull-cold /usr/bin/time -f %M -o "$d/rss-skopeo" "${S[@]}" "docker://$r:v1" "oci:$d/oci:v1"
        reg_step skopeo pull-base-present "${S[@]}" "docker://$r:v2" "oci:$d/oci:v2"
        printf 'skopeo\t%s\n' "$(tail -n 1 "$d/rss-skopeo" 2>/dev/null)" >>"$RES/registry-mem.tsv"
        return 0
    fi
    engine_argv "$e"
    local -a E=("${ENGINE_ARGV[@]}") tls=()
    [ "$e" = podman ] && tls=(--tls-verify=false)
    "${E[@]}" load -i "$d/app-v1.tar" >/dev/null 2>&1 && "${E[@]}" load -i "$d/app-v2.tar" >/dev/null 2>&1 || {
        printf '%s\tall\tfailed\tload failed\n' "$e" >>"$RES/registry.tsv"; return 0; }
    "${E[@]}" tag app:v1 "$r:v1" && "${E[@]}" tag app:v2 "$r:v2"
    reg_step "$e" push-cold "${E[@]}" push "${tls[@]}" "$r:v1"
    reg_step "$e" push-change "${E[@]}" push "${tls[@]}" "$r:v2"
    reg_step "$e" push-unchanged "${E[@]}" push "${tls[@]}" "$r:v1"
    "${E[@]}" rmi -f app:v1 app:v2 "$r:v1" "$r:v2" >/dev/null 2>&1 || true
    [ "$e" = podman ] || "${E[@]}" image prune -f >/dev/null 2>&1 || true
    reg_step "$e" pull-cold /usr/bin/time -f %M -o "$d/rss-$e" "${E[@]}" pull "${tls[@]}" "$r:v1"
    reg_step "$e" pull-base-present "${E[@]}" pull "${tls[@]}" "$r:v2"
    printf '%s\t%s\n' "$e" "$(tail -n 1 "$d/rss-$e" 2>/dev/null)" >>"$RES/registry-mem.tsv"
    # berth again, cold, on the layers as docker compressed them (deflated: the
    # case the floor is measured for).
    if [ "$e" = berth ] && [ "$docker_ok" = 1 ]; then
        "${E[@]}" rmi -f "$r:v1" "$r:v2" >/dev/null 2>&1 || true
        reg_step "$e" pull-docker-push "${E[@]}" pull "$REGISTRY_ADDR/docker/app:v1"
    fi
}

if want_section registry; then
    section "e. registry (one run of each step, ~212 MB in 4 layers)"
    : >"$RES/registry.tsv"
    : >"$RES/registry-mem.tsv"
    REGISTRY_PID=""
    start_registry
    try setup_registry
    reg_rc=$TRY_RC
    for e in "${REGISTRY_ENGINES[@]}"; do
        if [ "$e" != skopeo ]; then
            want_engine "$e" || continue
            if ! eval "[ \"\${${e}_ok}\" = 1 ]"; then
                printf '%s\tall\tfailed\t%s\n' "$e" "$(first_line "$BENCH_TMP/$e.why")" >>"$RES/registry.tsv"
                continue
            fi
        fi
        if [ "$reg_rc" != 0 ]; then
            printf '%s\tall\tfailed\t%s\n' "$e" "$(first_line "$BENCH_TMP/registry/why")" >>"$RES/registry.tsv"
            continue
        fi
        try registry_engine "$e"
        [ "$TRY_RC" = 0 ] || printf '%s\tall\tfailed\texit %s\n' "$e" "$TRY_RC" >>"$RES/registry.tsv"
    done
    if [ -n "${REGISTRY_PID:-}" ]; then
        kill -TERM "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
        REGISTRY_PID=""
    fi
fi

if want_section net; then
    section "f. networking ($N_NET runs; hyperfine $RUNS runs for run --rm)"
    : >"$RES/net.tsv"
    net_row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$RES/net.tsv"; }
    NB=$here/netbench.py
    DOCKERNET_PID=""
    dn() { DOCKER_HOST=unix://$BENCH_TMP/docker-net.sock "$DOCKER_CLI" "$@"; }
    # docker with a bridge: a second dockerd (docker0, its iptables rules, its
    # docker-proxy), in this namespace like everything else; started when
    # docker's turn comes, so that it idles through nobody else's figures.
    start_dockerd_net() {
        mkdir -p "$BENCH_TMP/docker-net" "$BENCH_TMP/docker-net-exec"
        dockerd --data-root "$BENCH_TMP/docker-net" --exec-root "$BENCH_TMP/docker-net-exec" \
            --pidfile "$BENCH_TMP/docker-net.pid" --host "unix://$BENCH_TMP/docker-net.sock" \
            --cgroup-parent "$DOCKER_CG" </dev/null >"$BENCH_TMP/dockerd-net.log" 2>&1 &
        DOCKERNET_PID=$!
        local deadline=$((SECONDS + 60))
        until dn version >/dev/null 2>&1 || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
        dn import "$BENCH_TMP/bb.tar" bb >/dev/null 2>&1
    }
    # berth's bridge gets its own subnet beside docker0's 172.17.0.0/16.
    printf 'bip = "172.30.0.1/16"\n' >"$BENCH_TMP/berth-net.toml"
    bn() { BERTH_CONFIG=$BENCH_TMP/berth-net.toml eng_berth "$@"; }
    pn() { eng_podman "$@"; }
    net_engines=()
    want_engine berth && [ "$berth_ok" = 1 ] && net_engines+=(berth)
    want_engine docker && [ "$docker_ok" = 1 ] && net_engines+=(docker)
    want_engine podman && [ "$podman_ok" = 1 ] && net_engines+=(podman)
    cli_of() { case $1 in berth) echo bn ;; docker) echo dn ;; podman) echo pn ;; esac; }
    for e in "${net_engines[@]}"; do
        c=$(cli_of "$e")
        # The kernel tears namespaces and veths down in the background (RCU,
        # a workqueue): let what the previous engine left finish first.
        sleep "${NET_SETTLE:-10}"
        if [ "$e" = docker ] && ! start_dockerd_net; then
            net_row docker run-rm failed ms
            continue
        fi
        # run --rm on the bridge
        case $e in
            berth) argv=(env BERTH_CONFIG="$BENCH_TMP/berth-net.toml" "$BERTH" --root "$BENCH_TMP/berth/root" --run-root "$BENCH_TMP/berth/run" --cgroup-parent "$BERTH_CG") ;;
            docker) argv=(env DOCKER_HOST="unix://$BENCH_TMP/docker-net.sock" "$DOCKER_CLI") ;;
            podman) argv=(podman --root "$BENCH_TMP/podman/root" --runroot "$BENCH_TMP/podman/run") ;;
        esac
        json=$BENCH_TMP/hf-net-$e.json
        if hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$json" \
            "$(printf '%q ' "${argv[@]}" run --rm --network=bridge bb true)" >&2; then
            net_row "$e" run-rm "$(python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$json")" ms
        else
            net_row "$e" run-rm failed ms
        fi
        # run -d -p until the port answers
        : >"$BENCH_TMP/net-p-$e.txt"
        for i in $(seq 1 "$N_NET"); do
            port=$((18000 + i))
            try python3 "$NB" until-answers 127.0.0.1 "$port" -- "${argv[@]}" run -d --network=bridge --name "np$i" -p "$port:80" bb httpd -f -p 80 -h / >>"$BENCH_TMP/net-p-$e.txt"
            $c rm -f "np$i" >/dev/null 2>&1 || true
        done
        net_row "$e" run-p "$(python3 -c 'import statistics,sys; xs=[float(l) for l in open(sys.argv[1]) if l.strip()]; print("%.1f" % statistics.median(xs) if xs else "failed")' "$BENCH_TMP/net-p-$e.txt")" ms
        # throughput and connections: published (127.0.0.1) against direct
        $c run -d --network=bridge --name sink -p 18100:80 bb nc -ll -p 80 -e sh -c 'cat >/dev/null' >/dev/null 2>&1 || true
        $c run -d --network=bridge --name web -p 18101:80 bb httpd -f -p 80 -h / >/dev/null 2>&1 || true
        sink_ip=$($c inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' sink 2>/dev/null | head -c 15)
        web_ip=$($c inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' web 2>/dev/null | head -c 15)
        python3 "$NB" until-answers 127.0.0.1 18100 -- true >/dev/null 2>&1 || true
        python3 "$NB" until-answers 127.0.0.1 18101 -- true >/dev/null 2>&1 || true
        for path in published direct; do
            if [ $path = published ]; then sh=127.0.0.1; sp=18100; wh=127.0.0.1; wp=18101; else sh=$sink_ip; sp=80; wh=$web_ip; wp=80; fi
            best=0
            for _ in 1 2 3; do
                v=$(python3 "$NB" throughput "$sh" "$sp" 1024 2>/dev/null || echo 0)
                [ "$v" -gt "$best" ] && best=$v
            done
            net_row "$e" "throughput-$path" "$best" MB/s
            net_row "$e" "connections-$path" "$(python3 "$NB" connections "$wh" "$wp" 3 2>/dev/null || echo failed)" "conn/s"
        done
        $c rm -f sink web >/dev/null 2>&1 || true
        # network connect of a running container
        $c network create benchnet >/dev/null 2>&1 || true
        $c run -d --network=bridge --name conn bb sleep 1000 >/dev/null 2>&1 || true
        : >"$BENCH_TMP/net-c-$e.txt"
        for i in $(seq 1 "$N_NET"); do
            t0=$(date +%s%N)
            $c network connect benchnet conn >/dev/null 2>&1 || { echo failed; break; }
            t1=$(date +%s%N)
            echo $(( (t1 - t0) / 1000 )) >>"$BENCH_TMP/net-c-$e.txt"
            $c network disconnect benchnet conn >/dev/null 2>&1 || true
        done
        net_row "$e" connect "$(median_ms "$BENCH_TMP/net-c-$e.txt")" ms
        $c rm -f conn >/dev/null 2>&1 || true
        $c network rm benchnet >/dev/null 2>&1 || true
        if [ "$e" = docker ] && [ -n "$DOCKERNET_PID" ]; then
            kill -TERM "$DOCKERNET_PID" 2>/dev/null || true
            wait "$DOCKERNET_PID" 2>/dev/null || true
            DOCKERNET_PID=""
        fi
    done
    if [ -n "$DOCKERNET_PID" ]; then
        kill -TERM "$DOCKERNET_PID" 2>/dev/null || true
        wait "$DOCKERNET_PID" 2>/dev/null || true
    fi
fi

if want_section thaw && want_engine berth && [ "$berth_ok" = 1 ]; then
    section "g. thaw ($N_NET requests each)"
    : >"$RES/thaw.tsv"
    NB=$here/netbench.py
    printf 'bip = "172.30.0.1/16"\n' >"$BENCH_TMP/berth-net.toml"
    tb() { BERTH_CONFIG=$BENCH_TMP/berth-net.toml eng_berth "$@"; }
    tb run -d --network=bridge --name thaw -p 18200:80 --idle-timeout 200ms bb httpd -f -p 80 -h / >/dev/null
    python3 "$NB" until-answers 127.0.0.1 18200 -- true >/dev/null 2>&1 || true
    : >"$BENCH_TMP/thaw-awake.txt"
    : >"$BENCH_TMP/thaw-idle.txt"
    for _ in $(seq 1 "$N_NET"); do
        python3 "$NB" first-byte 127.0.0.1 18200 >>"$BENCH_TMP/thaw-awake.txt" || true
    done
    for _ in $(seq 1 "$N_NET"); do
        deadline=$((SECONDS + 30))
        until [ "$(tb inspect -f '{{.State.Idle}}' thaw 2>/dev/null)" = true ] || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
        python3 "$NB" first-byte 127.0.0.1 18200 >>"$BENCH_TMP/thaw-idle.txt" || true
    done
    med() { python3 -c 'import statistics,sys; xs=[float(l) for l in open(sys.argv[1]) if l.strip()]; print("%.2f" % statistics.median(xs) if xs else "failed")' "$1"; }
    printf 'awake\t%s\tms\n' "$(med "$BENCH_TMP/thaw-awake.txt")" >>"$RES/thaw.tsv"
    printf 'idle\t%s\tms\n' "$(med "$BENCH_TMP/thaw-idle.txt")" >>"$RES/thaw.tsv"
    tb rm -f thaw >/dev/null 2>&1 || true
    cat "$RES/thaw.tsv"
fi

# ---- report ----------------------------------------------------------------------------
section "report"
ver() { "$@" 2>/dev/null | head -n 1 || echo "?"; }
{
    echo "kernel	$(uname -r)"
    echo "cpus	$(nproc)"
    echo "load average at the end	$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "berth	$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit') ($BERTH)"
    echo "docker	$(ver dockerd --version)"
    echo "podman	$(ver podman --version)"
    echo "runc	$(ver runc --version)"
    echo "crun	$(ver crun --version)"
    echo "hyperfine	$(ver hyperfine --version)"
    echo "cgroups	$(if mountpoint -q /sys/fs/cgroup/unified; then echo 'v1 hybrid'; elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo v2; else echo v1; fi)"
    echo "knobs	RUNS=$RUNS WARMUP=$WARMUP N_LIFE=$N_LIFE N_IDLE=$N_IDLE N_BUILD_COLD=$N_BUILD_COLD N_BUILD=$N_BUILD N_DENSITY=$N_DENSITY N_DENSITY_PEERS=$N_DENSITY_PEERS N_PS=$N_PS"
} >"$RES/machine.tsv"

mkdir -p "$here/results"
out=$here/results/$(date +%Y-%m-%dT%H%M%S).md
N_LIFE=$N_LIFE python3 - "$RES" "$out" <<'PY'
import os, sys, datetime
res, out = sys.argv[1], sys.argv[2]

def rows(name):
    p = os.path.join(res, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return [l.rstrip("\n").split("\t") for l in f if l.strip()]

def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None

lines = [f"# berth side-by-side benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}", ""]
lines += ["| | |", "|---|---|"]
for k, v in rows("machine.tsv") or []:
    lines.append(f"| {k} | {v} |")
notes = []

run = rows("run.tsv")
if run is not None:
    lines += ["", "## a. `run --rm bb true` (hyperfine median)", "",
              "| tool | median ms | ratio to berth |", "|---|---:|---:|"]
    base = next((num(r[1]) for r in run if r[0].startswith("berth")), None)
    for r in run:
        tool, val, note = (r + ["", ""])[:3]
        m = num(val)
        if m is None:
            lines.append(f"| {tool} | {val} | – |")
            if note:
                notes.append(f"{tool}: {note}")
        else:
            ratio = f"{m / base:.2f}×" if base else "–"
            lines.append(f"| {tool} | {m:.1f} | {ratio} |")

ex = rows("exec.tsv")
if ex is not None:
    lines += ["", "## a2. `exec CTR true` (hyperfine median)", "",
              "| engine | median ms | ratio to berth |", "|---|---:|---:|"]
    base = next((num(r[1]) for r in ex if r[0].startswith("berth")), None)
    for r in ex:
        tool, val, note = (r + ["", ""])[:3]
        m = num(val)
        if m is None:
            lines.append(f"| {tool} | {val} | – |")
            if note:
                notes.append(f"{tool}: {note}")
        else:
            lines.append(f"| {tool} | {m:.1f} | {f'{m / base:.2f}×' if base else '–'} |")

life = rows("life.tsv")
if life is not None:
    n = os.environ.get("N_LIFE", "?")
    lines += ["", f"## b. create / start / stop / rm (median ms per call, {n} containers)", "",
              "stop: PID 1 exits on SIGTERM.", "",
              "| engine | create | start | stop | rm |", "|---|---:|---:|---:|---:|"]
    by = {}
    for r in life:
        e, op, val, cnt, note = (r + [""] * 5)[:5]
        by.setdefault(e, {})[op] = val
        if num(val) is None and note:
            notes.append(f"{e} {op}: {note}")
    for e, ops in by.items():
        lines.append("| " + " | ".join([e] + [ops.get(op, "–") for op in ("create", "start", "stop", "rm")]) + " |")

for tsv, title in (("idle.tsv", "c. idle containers (`run -d bb sleep 100000`)"),
                   ("idle-health.tsv", "c2. idle containers with a healthcheck (`--health-cmd true --health-interval 30s`, after each one's first probe)")):
    idle = rows(tsv)
    if idle is None:
        continue
    lines += ["", "## " + title, "",
              "Monitor = the parent of each container's process; PSS from smaps_rollup after sync.", "",
              "| engine | containers | start median ms | monitor | monitor processes | monitors' PSS KiB | per container KiB | daemons' PSS KiB |",
              "|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in idle:
        e, st, n, start, mons, mon, total, per, daemons, note = (r + [""] * 10)[:10]
        if st != "ok":
            lines.append(f"| {e} | {n} | failed | | | | | |")
            if note:
                notes.append(f"{e} idle: {note}")
        else:
            lines.append(f"| {e} | {n} | {start} | {mon} | {mons} | {total} | **{per}** | {daemons if daemons != '0' else '–'} |")

dens = rows("density.tsv")
if dens is not None:
    lines += ["", "## c3. density (`run -d --network none bb sleep 1d`, N each)", "",
              "Added per container = (monitors'/shims' PSS + the daemons' PSS growth) / N, from smaps_rollup "
              "after sync; slab = /proc/meminfo Slab (SUnreclaim) growth / N after dropping reclaimable caches "
              "before the start (the kernel's own objects: namespaces, "
              "cgroups, mounts, tasks). `ps` with all N running, median of several; `stats --no-stream` "
              "of 50 of them, median of 3.", "",
              "| engine | N | start all s | start median ms (first 50 / last 50) | monitor | added per container KiB | daemons before → after | slab (unreclaimable) per container KiB | `ps` ms | `ps -a` ms | `stats` of 50 ms |",
              "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in dens:
        (e, st, n, tall, smed, sfirst, slast, mon, mons, d0, d1, s0, s1,
         psm, psam, stm, note, u0, u1) = (r + [""] * 19)[:19]
        if st != "ok":
            lines.append(f"| {e} | {n} | failed | | | | | | | | |")
            if note:
                notes.append(f"{e} density: {note}")
            continue
        nn = int(n)
        per = (int(mons) + int(d1) - int(d0)) / nn
        slab = (int(s1) - int(s0)) / nn
        unrec = (int(u1) - int(u0)) / nn if u0 and u1 else 0
        daemons = f"{int(d0) // 1024:,} → {int(d1) // 1024:,} MiB" if d0 != "0" or d1 != "0" else "–"
        lines.append(f"| {e} | {n} | {tall} | {smed} ({sfirst} / {slast}) | {mon} | **{per:.0f}** | "
                     f"{daemons} | {slab:.0f} ({unrec:.0f}) | {psm} | {psam} | {stm} |")

build = rows("build.tsv")
if build is not None:
    modes = [("cold", "cold (`--no-cache`)"), ("cached", "fully cached"),
             ("last", "last step changed"), ("multi-cold", "two-stage cold"),
             ("multi-cached", "two-stage cached")]
    names = {"berth": "**berth build**", "docker-classic": "docker build (classic, `DOCKER_BUILDKIT=0`)",
             "docker-buildkit": "docker build (BuildKit, `DOCKER_BUILDKIT=1`)",
             "podman": "podman build (runc)"}
    lines += ["", "## d. `build` (hyperfine median ms)", "",
              "Dockerfile: FROM bb, ENV, WORKDIR, COPY of a 10 MB random file, 5 RUN, CMD; "
              "last step changed = the last RUN's text changes before each run. "
              "Two-stage: two independent stages, each one RUN, and a final stage that COPYs from both.", "",
              "| engine | " + " | ".join(t for _, t in modes) + " |",
              "|---|" + "---:|" * len(modes)]
    by = {}
    for r in build:
        e, mode, val, note = (r + [""] * 4)[:4]
        by.setdefault(e, {})[mode] = val
        if num(val) is None and note:
            notes.append(f"{e} build {mode}: {note}")
    for e, ms in by.items():
        cells = []
        for m, _ in modes:
            v = ms.get(m, ms.get("all", "–"))
            cells.append(f"**{v}**" if e == "berth" and num(v) is not None else v)
        lines.append(f"| {names.get(e, e)} | " + " | ".join(cells) + " |")
    lines.append("| target for berth | ≤ 165 | ≤ 25 | ≤ 50 | | |")
    b, k = by.get("berth", {}), by.get("docker-buildkit", {})
    cells = []
    for m, _ in modes:
        bv, kv = num(b.get(m)), num(k.get(m))
        cells.append(f"{kv / bv:.1f}×" if bv and kv else "–")
    lines.append("| BuildKit ÷ berth (target ≥ 3×) | " + " | ".join(cells) + " |")

mem = rows("build-mem.tsv")
if mem is not None:
    lines += ["", "## d2. memory of one cold build (KiB)", "",
              "CLI = max RSS of the build command (`/usr/bin/time`; counts the children it waited for). "
              "Daemons = dockerd + containerd: their peak RSS during the build (VmHWM, reset before it) "
              "and their RSS before it; BuildKit runs inside dockerd 20.10.", "",
              "| engine | CLI max RSS | daemons' peak RSS | daemons' RSS before |", "|---|---:|---:|---:|"]
    for r in mem:
        e, cli, peak, before, note = (r + [""] * 5)[:5]
        if cli == "failed":
            lines.append(f"| {e} | failed | | |")
            if note:
                notes.append(f"{e} build memory: {note}")
        else:
            lines.append(f"| {e} | {cli} | {peak if peak != '0' else '–'} | {before if before != '0' else '–'} |")

reg = rows("registry.tsv")
if reg is not None:
    steps = [("push-cold", "push, empty registry"), ("push-change", "push, one layer changed"),
             ("push-unchanged", "unchanged re-push"), ("pull-cold", "cold pull"),
             ("pull-base-present", "pull, base layers present"),
             ("pull-docker-push", "cold pull of docker's push")]
    mem = {r[0]: r[1] for r in (rows("registry-mem.tsv") or []) if len(r) > 1}
    mb = 4 * 50 * 1.048576
    lines += ["", "## e. registry (seconds, one run; ~212 MB in 4 layers of random data)", "",
              "Push: each engine compresses the uncompressed layers on its first push. skopeo: "
              "`copy` of the docker-archive to the registry, and of the registry to an OCI dir. "
              "MB/s over the image's 210 MB. Floor for the pull's bytes on this machine: 0.78 s "
              "(shared/reference/peers-on-this-machine.md). skopeo runs after podman and shares "
              "containers/image's blob-info cache (/var/lib/containers/cache) with it: its pushes "
              "reuse podman's compressed blobs instead of compressing.", "",
              "| engine | " + " | ".join(t for _, t in steps) + " | push MB/s | pull MB/s | pull max RSS KiB |",
              "|---|" + "---:|" * (len(steps) + 3)]
    by = {}
    for r in reg:
        e, step, val, note = (r + [""] * 4)[:4]
        by.setdefault(e, {})[step] = val
        if num(val) is None and note:
            notes.append(f"{e} registry {step}: {note}")
    for e, st in by.items():
        cells = [st.get(s, st.get("all", "–")) for s, _ in steps]
        push, pull = num(st.get("push-cold")), num(st.get("pull-cold"))
        cells += [f"{mb / push:.0f}" if push else "–", f"{mb / pull:.0f}" if pull else "–", mem.get(e, "–") or "–"]
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    lines.append("| target for berth | ≤ 0.9 | | ≤ 0.020 | ≤ 0.8 | | ≤ 0.8 | | | ≤ 32768 |")

net = rows("net.tsv")
if net is not None:
    cols = [("run-rm", "run --rm bb true, ms"), ("run-p", "run -d -p until it answers, ms"),
            ("throughput-published", "published MB/s"), ("throughput-direct", "direct MB/s"),
            ("connections-published", "published conn/s"), ("connections-direct", "direct conn/s"),
            ("connect", "network connect, ms")]
    lines += ["", "## f. networking (each engine's default bridge, in the bench's own network namespace)", "",
              "Published: through 127.0.0.1 and the host port; direct: to the container's address. "
              "Throughput: the best of 3 sends of 1 GiB to `nc` in the container; connections: "
              "HTTP GETs to busybox httpd for 3 s, one at a time.", "",
              "| engine | " + " | ".join(t for _, t in cols) + " | published/direct |",
              "|---|" + "---:|" * (len(cols) + 1)]
    by = {}
    for r in net:
        e, what, val = (r + [""] * 3)[:3]
        by.setdefault(e, {})[what] = val
    for e, st in by.items():
        pub, direct = num(st.get("throughput-published")), num(st.get("throughput-direct"))
        ratio = f"{pub / direct * 100:.0f} %" if pub and direct else "–"
        lines.append(f"| {e} | " + " | ".join(st.get(c, "–") for c, _ in cols) + f" | {ratio} |")
    lines.append("| target for berth | ≤ 20 | ≤ docker's / 10 | ≥ 95 % of direct | | | | | |")

thaw = rows("thaw.tsv")
if thaw is not None:
    by = {r[0]: r[1] for r in thaw if len(r) >= 2}
    a, i = num(by.get("awake")), num(by.get("idle"))
    added = f"{i - a:.2f}" if a is not None and i is not None else "–"
    lines += ["", "## g. thaw (berth's idle mode, `--idle-timeout 200ms`, busybox httpd behind -p)", "",
              "Connection to the first byte of the HTTP answer, through 127.0.0.1 and the published port.", "",
              "| container | median ms |", "|---|---:|",
              f"| awake | {by.get('awake', '–')} |", f"| idle (frozen, thawed by the connection) | {by.get('idle', '–')} |",
              f"| added by the thaw | {added} (target ≤ 5) |"]

if notes:
    lines += ["", "## Failures", ""] + [f"- {n}" for n in notes]
text = "\n".join(lines) + "\n"
with open(out, "w") as f:
    f.write(text)
print(text)
PY
log "bench: results written to $out"
