#!/usr/bin/env bash
# scripts/fuzz.sh [TARGET|all] [SECONDS] — runs berth's fuzz targets (fuzz/, cargo-fuzz
# and libFuzzer on the nightly toolchain) for SECONDS each (default 300).
#
#   scripts/fuzz.sh                  every target, 5 minutes each
#   scripts/fuzz.sh template 3600    one target for an hour
#
# Installs cargo-fuzz into $BERTH_FUZZ_CACHE/tools when missing, builds into
# $BERTH_FUZZ_CACHE/fuzz-target and keeps each target's corpus in
# $BERTH_FUZZ_CACHE/fuzz-corpus/TARGET (all reused by the next run; the default cache is
# CI's, /var/cache/berth-ci). Seeds are small valid inputs made here, not files in the
# repository. A crash stops the run with libFuzzer's report; the input that caused it is
# written to $BERTH_FUZZ_CACHE/fuzz-artifacts/TARGET/ (replay it with
# `cargo +nightly fuzz run TARGET FILE`, from fuzz/'s parent). Runs as root: the
# apply_layer target creates device nodes and overlay whiteouts.
set -euo pipefail

cd "$(dirname "$0")/.."

# The fuzz targets, in the order `all` runs them: each is fuzz/fuzz_targets/NAME.rs and a
# [[bin]] in fuzz/Cargo.toml, seeded by seed_NAME below when that function exists.
TARGETS=(apply_layer reference template seccomp_profile)

target=${1:-all}
seconds=${2:-300}
cache=${BERTH_FUZZ_CACHE:-/var/cache/berth-ci}
# berth's code is safe Rust over rustix: the fuzzers look for panics and broken
# invariants, and AddressSanitizer would double the build. BERTH_FUZZ_SANITIZER=address
# turns it on (a separate build).
sanitizer=${BERTH_FUZZ_SANITIZER:-none}

case "$seconds" in
    '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac
if [ "$target" = all ]; then
    run=("${TARGETS[@]}")
else
    found=
    for t in "${TARGETS[@]}"; do [ "$t" = "$target" ] && found=1; done
    if [ -z "$found" ]; then
        echo "fuzz.sh: unknown target '$target' (targets: ${TARGETS[*]})" >&2
        exit 2
    fi
    run=("$target")
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: cargo-fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
fi
export PATH="$cache/tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    mkdir -p "$cache/tools"
    # Not into the caller's target dir (CI exports one for the workspace).
    env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --root "$cache/tools"
fi

# ---- seeds: a few small valid inputs per target --------------------------------------

seed_file() { # DIR NAME TEXT...
    local dir=$1 name=$2
    shift 2
    printf '%s' "$*" >"$dir/seed-$name"
}

seed_reference() {
    local d=$1 i=0 r
    for r in bb bb:1 busybox:latest library/bb docker.io/library/bb:latest \
        localhost:5000/a/b:v1.2 registry.example.com/team/app \
        "bb@sha256:$(printf 'a%.0s' {1..64})" "example.com:443/x/y:z@sha256:$(printf '0%.0s' {1..64})" \
        UPPER/case a..b 'x:' '' ; do
        seed_file "$d" "$i" "$r"
        i=$((i + 1))
    done
}

seed_template() {
    local d=$1 i=0 t
    local json='{"Id":"abc","Names":["/n"],"State":{"Status":"exited","ExitCode":3},"Labels":{"k":"v"},"Mounts":[{"Source":"/s"}]}'
    for t in '{{.Id}}' 'table {{.ID}}\t{{.Names}}' json '{{json .}}' '{{.State.Status}}' \
        '{{if eq .State.Status "running"}}up{{else if .State.ExitCode}}{{.State.ExitCode}}{{else}}-{{end}}' \
        '{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}} {{end}}' '{{range 3}}{{.}}{{break}}{{end}}' \
        '{{with .Labels}}{{index . "k"}}{{end}}' '{{printf "%s-%5.2f %q" .Id 1.5 "x"}}' \
        '{{join (split "a:b" ":") ","}} {{upper "x"}} {{title "ab"}} {{pad "x" 1 2}} {{truncate "abc" 2}}' \
        '{{- /* c */ -}} {{$x := 1}}{{$x = 2}}{{$x}} {{len .Names}} {{not (and 1 0)}}' \
        '{{.Label "k"}} {{println (or 0 "y")}} {{`raw`}} {{'"'"'a'"'"'}} {{nil}}' ; do
        seed_file "$d" "$i" "$t"
        printf '%s\0%s' "$t" "$json" >"$d/seed-$i-json"
        i=$((i + 1))
    done
}

seed_apply_layer() {
    local d=$1 tree
    tree=$(mktemp -d)
    mkdir -p "$tree/etc/sub" "$tree/opq"
    printf 'hello\n' >"$tree/etc/hello"
    ln -s ../etc/hello "$tree/etc/sub/link"
    ln "$tree/etc/hello" "$tree/etc/hard"
    : >"$tree/etc/.wh.gone"
    : >"$tree/opq/.wh..wh..opq"
    mkfifo "$tree/fifo"
    chmod 0750 "$tree/etc/sub"
    # The first byte picks apply_layer's options (see fuzz/fuzz_targets/apply_layer.rs).
    { printf '\0'; tar -C "$tree" -cf - .; } >"$d/seed-overlay"
    { printf '\3'; tar -C "$tree" --format=gnu -cf - etc; } >"$d/seed-skip-gnu"
    { printf '\4'; tar -C "$tree" --format=posix -czf - .; } >"$d/seed-gzip-pax"
    { printf '\6'; tar -C "$tree" -cf - . | zstd -q -c; } >"$d/seed-zstd" 2>/dev/null ||
        rm -f "$d/seed-zstd"
    rm -rf "$tree"
}

seed_seccomp_profile() {
    local d=$1
    seed_file "$d" minimal '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}'
    seed_file "$d" args '{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},{"names":["clone"],"action":"SCMP_ACT_ERRNO","errnoRet":38,"excludes":{"caps":["CAP_SYS_ADMIN"]}}]}'
}

# ---- run -------------------------------------------------------------------------------

status=0
for t in "${run[@]}"; do
    corpus="$cache/fuzz-corpus/$t"
    artifacts="$cache/fuzz-artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    if declare -F "seed_$t" >/dev/null; then
        "seed_$t" "$corpus"
    fi
    echo "fuzz.sh: $t for ${seconds}s (corpus $corpus)"
    start=$(date +%s)
    if ! cargo +nightly fuzz run "$t" --fuzz-dir fuzz --sanitizer "$sanitizer" \
        --target-dir "$cache/fuzz-target/$sanitizer" \
        "$corpus" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
        -timeout=10 -artifact_prefix="$artifacts/" -print_final_stats=1; then
        echo "fuzz.sh: $t FAILED: the input is in $artifacts/" >&2
        status=1
    fi
    echo "fuzz.sh: $t took $(($(date +%s) - start))s"
    # apply_layer's per-process scratch directories, once empty.
    find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'berth-fuzz-apply-*' -empty -delete 2>/dev/null || true
done
exit "$status"
