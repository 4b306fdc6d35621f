#!/usr/bin/env bash
# bench/images.sh — images and the union filesystem: berth side by side with Docker and Podman.
#
# One run measures, on this machine (issue 3, "Benchmark"):
#   1. `diff` (hyperfine median) and `commit` (each call timed on its own, median) of a
#      container that wrote 1,000 small files, on SMALL = the busybox rootfs and on
#      BIG = busybox plus >= 200 MB of the host's /usr/lib and /usr/share;
#   2. `save -o` and `load -i` of BIG (the image removed with `rmi -f` before each load);
#   3. the disk used by 20 images committed from one base (store growth per image, and
#      the layer store's entries before and after: the base is stored once);
#   4. the disk used per created (not started) container, in KB and inodes.
# Results go to bench/results/images-<date>.md (gitignored) and to stdout. See bench/README.md.
#
# Every engine runs on private paths under one temp dir, with --network none; the host's
# networking is never touched. Everything started here is stopped by PID on exit.
# A command that fails gets "failed" in its row (reason under "Failures") and the run goes on.
set -euo pipefail
export LC_ALL=C

# ---- knobs (environment) -------------------------------------------------------------
RUNS=${RUNS:-30}               # hyperfine runs of each `diff` (section 1; the report wants >= 20)
WARMUP=${WARMUP:-3}            # hyperfine warmup runs
N_COMMIT=${N_COMMIT:-10}       # commits timed per engine and base image (section 1)
N_SAVE=${N_SAVE:-5}            # saves and loads timed per engine (section 2)
N_IMAGES=${N_IMAGES:-20}       # images committed from one base (section 3)
N_CONTAINERS=${N_CONTAINERS:-20}  # containers created (section 4)
BIG_MB=${BIG_MB:-220}          # MB of host files added to busybox for BIG
SECTIONS=${SECTIONS:-"diff save shared disk"}
ENGINES=${ENGINES:-"berth docker podman"}
BUILD=${BUILD:-1}              # 0: do not run `cargo build --release`
INSTALL=${INSTALL:-1}          # 0: do not apt-get install missing tools
# BERTH_BIN: a berth binary to use instead of <target>/release/berth

# The container of section 1 writes 1,000 small files at /data0 … /data999.
WRITE_1000='i=0; while [ $i -lt 1000 ]; do echo $i > /data$i; i=$((i+1)); done'

# Shared with bench/run.sh: tools, temp dir and cleanup, dockerd/podman/berth setup.
# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_start
bench_setup_engines
# shown in the report: other work on the machine skews every figure
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

is_ok() { eval "[ \"\${${1}_ok}\" = 1 ]"; }

# Each engine's store (what du and find measure) and run root.
data_root() {
    case $1 in
        berth) echo "$BENCH_TMP/berth/root" ;;
        docker) echo "$BENCH_TMP/docker" ;;
        podman) echo "$BENCH_TMP/podman/root" ;;
    esac
}
run_root() {
    case $1 in
        berth) echo "$BENCH_TMP/berth/run" ;;
        docker) echo "$BENCH_TMP/docker-exec" ;;
        podman) echo "$BENCH_TMP/podman/run" ;;
    esac
}
# Entries of the layer store: berth ROOT/layers; docker's layerdb (image layers, one per
# chain ID); podman's overlay-layers/layers.json (image and container layers).
layer_count() {
    local d
    d=$(data_root "$1")
    case $1 in
        berth) { find "$d/layers" -mindepth 1 -maxdepth 1 2>/dev/null || true; } | wc -l ;;
        docker) { find "$d/image/overlay2/layerdb/sha256" -mindepth 1 -maxdepth 1 2>/dev/null || true; } | wc -l ;;
        podman) python3 -c '
import json, sys
try:
    print(len(json.load(open(sys.argv[1]))))
except OSError:
    print(0)' "$d/overlay-layers/layers.json" ;;
    esac
}
layer_store_name() {
    case $1 in
        berth) echo "ROOT/layers" ;;
        docker) echo "image/overlay2/layerdb/sha256" ;;
        podman) echo "overlay-layers/layers.json" ;;
    esac
}
# (files may vanish under du and find while an engine works: their errors are ignored)
du_kb() { local v; v=$(du -sxk "$1" 2>/dev/null | cut -f1) || true; echo "${v:-0}"; }
inodes() { { find "$1" -xdev 2>/dev/null || true; } | wc -l; }

# Appends to FILE the microseconds one call of CMD takes ($EPOCHREALTIME: no fork).
timed() {
    local f=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    "$@"
    t1=$EPOCHREALTIME
    echo $((${t1/./} - ${t0/./})) >>"$f"
}

# hyperfine median of CMD in ms, after one checked run (so a failure shows its reason
# in $2 rather than hyperfine's).
hf_median() {
    local json=$1 err=$2
    shift 2
    "$@" >/dev/null 2>"$err"
    hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$json" \
        "$(printf '%q ' "$@")" >&2 2>>"$err" || { echo "hyperfine failed" >>"$err"; return 1; }
    python3 -c '
import json, sys
print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$json"
}

# Samples file with exactly N lines -> median ms; otherwise "failed".
median_or_failed() {
    local f=$1 n=$2 got=0
    [ -f "$f" ] && got=$(wc -l <"$f")
    if [ "$got" -eq "$n" ] && [ "$n" -gt 0 ]; then median_ms "$f"; else echo failed; fi
}

# Removes images by name, best effort, bounded in time.
rmi_quiet() {
    local e=$1
    shift
    [ $# -gt 0 ] || return 0
    engine_argv "$e"
    timeout 300 "${ENGINE_ARGV[@]}" rmi -f "$@" >/dev/null 2>&1 && return 0
    # one name unknown (its commit failed) may stop the others: one at a time
    local i
    for i in "$@"; do timeout 60 "${ENGINE_ARGV[@]}" rmi -f "$i" >/dev/null 2>&1 || true; done
}

# ---- BIG: busybox plus >= 200 MB of the host's files, one tarball for every engine ------
BIG_TAR=$BENCH_TMP/big.tar
big_built=0
# Regular files, directories and symlinks only (no sockets, devices, fifos), walked in
# sorted order: half the budget from /usr/lib, half from /usr/share.
make_big() {
    local root=$BENCH_TMP/big-rootfs
    mkdir -p "$root"
    tar -C "$root" -xf "$BENCH_TMP/bb.tar"
    python3 - "$BIG_MB" >"$BENCH_TMP/big.list" <<'PY'
import os, stat, sys
budget = int(sys.argv[1]) * 1024 * 1024 // 2
out = sys.stdout.buffer
for top in ("usr/lib", "usr/share"):
    used = 0
    for d, dirs, files in os.walk("/" + top):
        dirs.sort()
        if used >= budget:
            break
        out.write(d[1:].encode("utf-8", "surrogateescape") + b"\0")
        for x in dirs:  # symlinks to directories: os.walk lists them here, never enters them
            if os.path.islink(os.path.join(d, x)):
                out.write(os.path.join(d, x)[1:].encode("utf-8", "surrogateescape") + b"\0")
        for f in sorted(files):
            p = os.path.join(d, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            if stat.S_ISREG(st.st_mode) and not os.access(p, os.R_OK):
                continue
            out.write(p[1:].encode("utf-8", "surrogateescape") + b"\0")
            if stat.S_ISREG(st.st_mode):
                used += st.st_size
            if used >= budget:
                break
PY
    tar -C / --no-recursion --null -T "$BENCH_TMP/big.list" -cf - | tar -C "$root" -xpf -
    BIG_DU_MB=$(du -sm "$root" | cut -f1)
    BIG_ENTRIES=$(find "$root" | wc -l)
    tar --numeric-owner --sort=name -C "$root" -cf "$BIG_TAR" .
    rm -rf -- "$root" "$BENCH_TMP/big.list"
    [ "$BIG_DU_MB" -ge 200 ] || log "bench: BIG is only $BIG_DU_MB MB (raise BIG_MB)"
}

BIG_DU_MB="" BIG_ENTRIES=""
if want_section diff || want_section save; then
    section "building BIG (busybox + ~$BIG_MB MB of /usr/lib and /usr/share)"
    make_big
    big_built=1
    log "bench: BIG: $BIG_DU_MB MB (du -sm), $BIG_ENTRIES entries, tar $(($(stat -c %s "$BIG_TAR") / 1048576)) MiB"
    # rows: engine<TAB>import_ms|failed<TAB>note
    : >"$RES/big.tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        if ! is_ok "$e"; then
            printf '%s\tfailed\t%s\n' "$e" "$(first_line "$BENCH_TMP/$e.why")" >>"$RES/big.tsv"
            continue
        fi
        log "bench: importing BIG into $e"
        : >"$BENCH_TMP/samples/import-$e"
        try timed "$BENCH_TMP/samples/import-$e" "eng_$e" import "$BIG_TAR" big >/dev/null 2>"$BENCH_TMP/import-$e.err"
        if [ "$TRY_RC" = 0 ]; then
            touch "$BENCH_TMP/big-$e.ok"
            printf '%s\t%s\t\n' "$e" "$(median_ms "$BENCH_TMP/samples/import-$e")" >>"$RES/big.tsv"
        else
            printf '%s\tfailed\t%s\n' "$e" "$(first_line "$BENCH_TMP/import-$e.err")" >>"$RES/big.tsv"
        fi
    done
fi
big_ok() { [ -e "$BENCH_TMP/big-$1.ok" ]; }

# ---- 1. diff and commit ----------------------------------------------------------------
# rows: engine<TAB>size<TAB>op<TAB>median_ms|failed<TAB>count<TAB>note
#   count: lines `diff` printed (diff rows), samples (commit rows)
dc_row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RES/dc.tsv"; }

if want_section diff; then
    section "1. diff ($RUNS runs) and commit ($N_COMMIT calls) of a container that wrote 1,000 files"
    : >"$RES/dc.tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        for size in small big; do
            img=bb
            [ "$size" = big ] && img=big
            if ! is_ok "$e"; then
                why=$(first_line "$BENCH_TMP/$e.why")
                dc_row "$e" "$size" diff failed 0 "$why"
                dc_row "$e" "$size" commit failed 0 "$why"
                continue
            fi
            if [ "$size" = big ] && ! big_ok "$e"; then
                why="import of BIG: $(first_line "$BENCH_TMP/import-$e.err")"
                dc_row "$e" "$size" diff failed 0 "$why"
                dc_row "$e" "$size" commit failed 0 "$why"
                continue
            fi
            log "bench: diff/commit: $e on $size"
            c=w-$size
            err=$BENCH_TMP/dc-$e-$size.err
            try "eng_$e" run --network none --name "$c" "$img" sh -c "$WRITE_1000" >/dev/null 2>"$err"
            if [ "$TRY_RC" != 0 ]; then
                why="run: $(first_line "$err")"
                dc_row "$e" "$size" diff failed 0 "$why"
                dc_row "$e" "$size" commit failed 0 "$why"
                continue
            fi
            # diff: hyperfine; its output once, to count the lines
            lines=0
            if "eng_$e" diff "$c" >"$BENCH_TMP/diff-$e-$size.out" 2>"$err"; then
                lines=$(wc -l <"$BENCH_TMP/diff-$e-$size.out")
            fi
            engine_argv "$e"
            med=$(try hf_median "$BENCH_TMP/hf-diff-$e-$size.json" "$err" "${ENGINE_ARGV[@]}" diff "$c"; [ "$TRY_RC" = 0 ] || echo failed)
            if [ -n "$med" ] && [ "$med" != failed ]; then
                dc_row "$e" "$size" diff "$med" "$lines" ""
            else
                dc_row "$e" "$size" diff failed "$lines" "diff: $(first_line "$err")"
            fi
            # commit: each call a new image
            s=$BENCH_TMP/samples/commit-$e-$size
            : >"$s"
            : >"$err"
            commit_one() {
                local i
                for ((i = 1; i <= N_COMMIT; i++)); do
                    timed "$s" "eng_$e" commit "$c" "ci-$size-$i" >/dev/null 2>"$err"
                done
            }
            try commit_one
            n=$(wc -l <"$s")
            med=$(median_or_failed "$s" "$N_COMMIT")
            if [ "$med" = failed ]; then
                dc_row "$e" "$size" commit failed "$n" "commit: $(first_line "$err")"
            else
                dc_row "$e" "$size" commit "$med" "$n" ""
            fi
        done
        # leave only bb and big behind: the next sections need big without children
        if is_ok "$e"; then
            remove_containers_of "$e"
            imgs=()
            for size in small big; do for ((i = 1; i <= N_COMMIT; i++)); do imgs+=("ci-$size-$i"); done; done
            rmi_quiet "$e" "${imgs[@]}"
        fi
    done
fi

# ---- 2. save and load of BIG -------------------------------------------------------------
# rows: engine<TAB>op<TAB>median_ms|failed<TAB>samples<TAB>archive_bytes<TAB>note
if want_section save; then
    section "2. save -o / load -i of BIG ($N_SAVE each)"
    : >"$RES/sl.tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        if ! is_ok "$e" || ! big_ok "$e"; then
            if is_ok "$e"; then why="import of BIG: $(first_line "$BENCH_TMP/import-$e.err")"
            else why=$(first_line "$BENCH_TMP/$e.why"); fi
            printf '%s\tsave\tfailed\t0\t\t%s\n%s\tload\tfailed\t0\t\t%s\n' "$e" "$why" "$e" "$why" >>"$RES/sl.tsv"
            continue
        fi
        log "bench: save/load: $e"
        remove_containers_of "$e"
        archive=$BENCH_TMP/save-$e.tar
        err=$BENCH_TMP/sl-$e.err
        s=$BENCH_TMP/samples/save-$e
        : >"$s"
        : >"$err"
        save_all() {
            local i
            for ((i = 1; i <= N_SAVE; i++)); do
                rm -f -- "$archive"
                timed "$s" "eng_$e" save -o "$archive" big >/dev/null 2>"$err"
                [ -s "$archive" ] || { echo "save wrote no archive" >"$err"; return 1; }
            done
        }
        try save_all
        bytes=""
        [ -f "$archive" ] && bytes=$(stat -c %s "$archive")
        med=$(median_or_failed "$s" "$N_SAVE")
        note=""
        [ "$med" = failed ] && note="save: $(first_line "$err")"
        printf '%s\tsave\t%s\t%s\t%s\t%s\n' "$e" "$med" "$(wc -l <"$s")" "$bytes" "$note" >>"$RES/sl.tsv"
        # load: from the last archive, after `rmi -f big` (not timed); checked with inspect
        s=$BENCH_TMP/samples/load-$e
        : >"$s"
        : >"$err"
        load_all() {
            local i
            for ((i = 1; i <= N_SAVE; i++)); do
                "eng_$e" rmi -f big >/dev/null 2>"$err" || { sed -i '1s/^/rmi: /' "$err"; return 1; }
                if "eng_$e" image inspect big >/dev/null 2>&1; then echo "rmi -f big left the image" >"$err"; return 1; fi
                timed "$s" "eng_$e" load -i "$archive" >/dev/null 2>"$err"
                "eng_$e" image inspect big >/dev/null 2>"$err" || { sed -i '1s/^/after load: /' "$err"; return 1; }
            done
        }
        if [ "$med" != failed ]; then
            try load_all
            med=$(median_or_failed "$s" "$N_SAVE")
            note=""
            [ "$med" = failed ] && note="load: $(first_line "$err")"
        else
            note="load: no archive (save failed)"
        fi
        printf '%s\tload\t%s\t%s\t\t%s\n' "$e" "$med" "$(wc -l <"$s")" "$note" >>"$RES/sl.tsv"
        rm -f -- "$archive"
    done
fi

# ---- 3. images sharing one base ----------------------------------------------------------
# rows: engine<TAB>status<TAB>n<TAB>kb_before<TAB>kb_after<TAB>layers_before<TAB>layers_after<TAB>note
if want_section shared; then
    section "3. $N_IMAGES images committed from one base"
    : >"$RES/shared.tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        if ! is_ok "$e"; then
            printf '%s\tfailed\t%s\t\t\t\t\t%s\n' "$e" "$N_IMAGES" "$(first_line "$BENCH_TMP/$e.why")" >>"$RES/shared.tsv"
            continue
        fi
        log "bench: shared base: $e"
        err=$BENCH_TMP/shared-$e.err
        : >"$err"
        shared() {
            local i d kb0 kb1 l0 l1
            d=$(data_root "$e")
            for ((i = 1; i <= N_IMAGES; i++)); do
                "eng_$e" run --network none --name "s$i" bb sh -c "echo $i > /file$i" >/dev/null 2>"$err" ||
                    { sed -i '1s/^/run: /' "$err"; return 1; }
            done
            sync
            kb0=$(du_kb "$d")
            l0=$(layer_count "$e")
            for ((i = 1; i <= N_IMAGES; i++)); do
                "eng_$e" commit "s$i" "shared-$i" >/dev/null 2>"$err" || { sed -i '1s/^/commit: /' "$err"; return 1; }
            done
            sync
            kb1=$(du_kb "$d")
            l1=$(layer_count "$e")
            printf '%s\tok\t%s\t%s\t%s\t%s\t%s\t\n' "$e" "$N_IMAGES" "$kb0" "$kb1" "$l0" "$l1" >>"$RES/shared.tsv"
        }
        try shared
        [ "$TRY_RC" = 0 ] ||
            printf '%s\tfailed\t%s\t\t\t\t\t%s\n' "$e" "$N_IMAGES" "$(first_line "$err")" >>"$RES/shared.tsv"
        remove_containers_of "$e"
        imgs=()
        for ((i = 1; i <= N_IMAGES; i++)); do imgs+=("shared-$i"); done
        rmi_quiet "$e" "${imgs[@]}"
    done
fi

# ---- 4. disk per container ---------------------------------------------------------------
# rows: engine<TAB>status<TAB>n<TAB>root kb0 kb1 ino0 ino1<TAB>run-root kb0 kb1 ino0 ino1<TAB>note
if want_section disk; then
    section "4. disk per container ($N_CONTAINERS created, not started)"
    : >"$RES/disk.tsv"
    for e in berth docker podman; do
        want_engine "$e" || continue
        if ! is_ok "$e"; then
            printf '%s\tfailed\t%s\t\t\t\t\t\t\t\t\t%s\n' "$e" "$N_CONTAINERS" "$(first_line "$BENCH_TMP/$e.why")" >>"$RES/disk.tsv"
            continue
        fi
        log "bench: disk per container: $e"
        remove_containers_of "$e"
        err=$BENCH_TMP/disk-$e.err
        : >"$err"
        disk() {
            local i d r before after
            d=$(data_root "$e")
            r=$(run_root "$e")
            sync
            before="$(du_kb "$d")	$(inodes "$d")	$(du_kb "$r")	$(inodes "$r")"
            for ((i = 1; i <= N_CONTAINERS; i++)); do
                "eng_$e" create --network none --name "d$i" bb true >/dev/null 2>"$err"
            done
            sync
            after="$(du_kb "$d")	$(inodes "$d")	$(du_kb "$r")	$(inodes "$r")"
            printf '%s\tok\t%s\t%s\t%s\t\n' "$e" "$N_CONTAINERS" "$before" "$after" >>"$RES/disk.tsv"
        }
        try disk
        [ "$TRY_RC" = 0 ] ||
            printf '%s\tfailed\t%s\t\t\t\t\t\t\t\t\t%s\n' "$e" "$N_CONTAINERS" "$(first_line "$err")" >>"$RES/disk.tsv"
        remove_containers_of "$e"
    done
fi

# ---- report ----------------------------------------------------------------------------
section "report"
ver() { "$@" 2>/dev/null | head -n 1 || echo "?"; }
{
    echo "kernel	$(uname -r)"
    echo "cpus	$(nproc)"
    echo "filesystem	$(findmnt -n -o FSTYPE -T "$BENCH_TMP" 2>/dev/null || echo '?') ($BENCH_TMP)"
    echo "berth	$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit') ($BERTH)"
    # "Native Overlay Diff: false": diff and commit walk the whole image (the naive diff)
    native_docker=$(eng_docker info -f '{{json .DriverStatus}}' 2>/dev/null | python3 -c '
import json, sys
print(dict(json.load(sys.stdin)).get("Native Overlay Diff", "?"))' 2>/dev/null || echo '?')
    native_podman=$(eng_podman info -f '{{json .Store.GraphStatus}}' 2>/dev/null | python3 -c '
import json, sys
print(json.load(sys.stdin).get("Native Overlay Diff", "?"))' 2>/dev/null || echo '?')
    echo "docker	$(ver dockerd --version) (storage driver $(eng_docker info -f '{{.Driver}}' 2>/dev/null || echo '?'), native overlay diff: $native_docker)"
    echo "podman	$(ver podman --version) (runc, cgroupfs, overlay, native overlay diff: $native_podman)"
    echo "hyperfine	$(ver hyperfine --version)"
    echo "load average	$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (1, 5, 15 min)"
    echo "SMALL	bb: the busybox rootfs of scripts/mkbusybox.sh, $(($(stat -c %s "$BENCH_TMP/bb.tar") / 1024)) KiB tar"
    if [ "$big_built" = 1 ]; then
        echo "BIG	big: bb plus host /usr/lib and /usr/share files, $BIG_DU_MB MB (du -sm), $BIG_ENTRIES entries, $(($(stat -c %s "$BIG_TAR") / 1048576)) MiB tar"
    fi
    echo "knobs	RUNS=$RUNS WARMUP=$WARMUP N_COMMIT=$N_COMMIT N_SAVE=$N_SAVE N_IMAGES=$N_IMAGES N_CONTAINERS=$N_CONTAINERS BIG_MB=$BIG_MB"
} >"$RES/machine.tsv"
for e in berth docker podman; do
    printf '%s\t%s\n' "$e" "$(layer_store_name "$e")"
done >"$RES/layerstores.tsv"

mkdir -p "$here/results"
out=$here/results/images-$(date +%Y-%m-%dT%H%M%S).md
python3 - "$RES" "$out" <<'PY'
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

def cell(v, base):
    m = num(v)
    if m is None:
        return v or "–"
    if base:
        return f"{m:.1f} ({m / base:.2f}×)"
    return f"{m:.1f}"

lines = [f"# berth images benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}", ""]
lines += ["| | |", "|---|---|"]
for k, v in rows("machine.tsv") or []:
    lines.append(f"| {k} | {v} |")
notes = []
stores = dict(rows("layerstores.tsv") or [])

big = rows("big.tsv")
if big:
    lines += ["", "`import` of BIG (once, ms): " + ", ".join(
        f"{e} {v}" for e, v, *_ in big)]
    for r in big:
        if num(r[1]) is None and len(r) > 2 and r[2]:
            notes.append(f"{r[0]} import of BIG: {r[2]}")

dc = rows("dc.tsv")
if dc is not None:
    val, cnt = {}, {}
    for e, size, op, v, n, note in ((r + [""] * 6)[:6] for r in dc):
        val[(e, size, op)] = v
        cnt[(e, size, op)] = n
        if num(v) is None and note:
            notes.append(f"{e} {op} ({size.upper()}): {note}")
    engines = list(dict.fromkeys(r[0] for r in dc))
    cols = [("diff", "small"), ("diff", "big"), ("commit", "small"), ("commit", "big")]
    lines += ["", "## 1. diff and commit of a container that wrote 1,000 files", "",
              "`run --network none IMAGE sh -c 'i=0; while [ $i -lt 1000 ]; do echo $i > /data$i; i=$((i+1)); done'`, "
              "then `diff` (hyperfine median) and `commit CONTAINER NEW` (each call a new image, timed on its own, median). "
              "Median ms (ratio to berth).", "",
              "| engine | diff SMALL | diff BIG | commit SMALL | commit BIG | diff lines SMALL / BIG |",
              "|---|---:|---:|---:|---:|---:|"]
    for e in engines:
        cells = []
        for op, size in cols:
            v = val.get((e, size, op), "–")
            base = num(val.get(("berth", size, op)))
            cells.append(cell(v, None if e == "berth" else base))
        cells.append(f"{cnt.get((e, 'small', 'diff'), '')} / {cnt.get((e, 'big', 'diff'), '')}")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    def verdict(op, size, target):
        m = num(val.get(("berth", size, op)))
        if m is None:
            return f"≤ {target}"
        return f"≤ {target} ({'met' if m <= target else 'MISSED'})"
    lines.append("| *berth target* | " + " | ".join(
        verdict(op, size, 13 if op == "diff" else 85) for op, size in cols) + " | |")

sl = rows("sl.tsv")
if sl is not None:
    lines += ["", "## 2. save and load of BIG", "",
              "`save -o FILE big` (median ms; the file removed before each) and `load -i FILE` "
              "(median ms; `rmi -f big` before each, not timed; checked with `image inspect big`). "
              "Ratio to berth in brackets.", "",
              "| engine | save | load | archive MiB |", "|---|---:|---:|---:|"]
    by = {}
    for e, op, v, n, b, note in ((r + [""] * 6)[:6] for r in sl):
        by.setdefault(e, {})[op] = (v, b)
        if num(v) is None and note:
            notes.append(f"{e} {op}: {note}")
    for e, ops in by.items():
        cells = []
        for op in ("save", "load"):
            v = ops.get(op, ("–", ""))[0]
            base = num(by.get("berth", {}).get(op, ("", ""))[0])
            cells.append(cell(v, None if e == "berth" else base))
        b = num(ops.get("save", ("", ""))[1])
        cells.append(f"{b / 1048576:.0f}" if b else "–")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")

sh = rows("shared.tsv")
if sh is not None:
    lines += ["", "## 3. images sharing one base", "",
              "N containers `run bb sh -c 'echo I > /fileI'`, then each committed to a new image. "
              "Growth of the engine's store (`du -sxk` of its data root, after `sync`) across the commits, "
              "and the entries of its layer store before → after: one new layer per image means the base is stored once.", "",
              "| engine | images | store growth KB | per image KB | layer store | entries before → after |",
              "|---|---:|---:|---:|---|---|"]
    for e, st, n, k0, k1, l0, l1, note in ((r + [""] * 8)[:8] for r in sh):
        if st != "ok":
            lines.append(f"| {e} | {n} | failed | | {stores.get(e, '')} | |")
            if note:
                notes.append(f"{e} shared base: {note}")
            continue
        g = int(k1) - int(k0)
        lines.append(f"| {e} | {n} | {g} | **{g / int(n):.1f}** | {stores.get(e, '')} | "
                     f"{l0} → {l1} (+{int(l1) - int(l0)}) |")

dk = rows("disk.tsv")
if dk is not None:
    lines += ["", "## 4. disk per container", "",
              "N × `create --network none bb true` (not started). Growth per container of the data root "
              "(`du -sxk`, `find -xdev | wc -l`, after `sync`) and of the run root "
              "(berth --run-root, dockerd --exec-root, podman --runroot).", "",
              "| engine | containers | root KB | root inodes | run root KB | run root inodes | total KB | total inodes |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in dk:
        r = r + [""] * 12
        e, st, n = r[0], r[1], r[2]
        if st != "ok":
            lines.append(f"| {e} | {n} | failed | | | | | |")
            if r[11]:
                notes.append(f"{e} disk per container: {r[11]}")
            continue
        b = [int(x) for x in r[3:7]]
        a = [int(x) for x in r[7:11]]
        d = [(y - x) / int(n) for x, y in zip(b, a)]
        lines.append(f"| {e} | {n} | {d[0]:.1f} | {d[1]:.1f} | {d[2]:.1f} | {d[3]:.1f} | "
                     f"**{d[0] + d[2]:.1f}** | **{d[1] + d[3]:.1f}** |")
    lines += ["", "Target (issue 3): ≤ podman's 66 KB and 22 inodes per container (docker: 127 KB, 39 inodes)."]

if notes:
    lines += ["", "## Failures", ""] + [f"- {n}" for n in notes]
text = "\n".join(lines) + "\n"
with open(out, "w") as f:
    f.write(text)
print(text)
PY
log "bench: results written to $out"
