#!/usr/bin/env bash
# bench/api.sh — the Engine API (issue 13): `berth serve` side by side with dockerd, both
# driven by the same docker CLI (28, /usr/local/bin/docker) and the same HTTP client.
#
# One run measures, on this machine:
#   run   `docker run --rm --network none bb true` through each server (hyperfine median
#         of RUNS_RUN), and the berth CLI's own `berth run --rm` (no server) for scale;
#   exec  `docker exec bench-exec true` into one `sleep 1d` container (median of RUNS_EXEC);
#   ps    `docker ps` with N_CTRS running containers (`docker run -d --network none bb
#         sleep 1d`, or `docker create` + `docker start` with START_WITH=create-start;
#         each start timed too; median of RUNS_PS), and `docker version` (the CLI's start
#         and two round trips: its floor);
#   http  requests per second and latency (p50, p99) of `GET /v1.41/containers/json`,
#         `GET /v1.41/containers/ID/json` and `GET /v1.41/_ping` (the floor) with CONNS
#         keep-alive clients for HTTP_SECONDS (after HTTP_WARMUP), the N_CTRS containers
#         running; the client is
#         crates/berth-api/examples/loadgen.rs (one thread, closed loop) and shares the
#         machine's cores with the server; the server's CPU time per request alongside;
#         HTTP_RUNS rounds, the engines alternating (this VM's rate swings ±10 % from one
#         run to the next), each engine's median round compared;
#   rss   VmRSS of `berth serve`, of dockerd and of its containerd (separately and summed;
#         the shims apart): at the start (no container), with the N_CTRS running, and
#         idle — every container removed through its server, IDLE_SECONDS later.
# dockerd is Debian's 20.10 with its own containerd, started here on private paths and its
# own socket (no bridge, no iptables); `berth serve` on a private --root and its own socket
# (`-G root`: no group is made); `bb` (scripts/mkbusybox.sh) imported into both by their
# CLIs (`berth import`, `docker import`). DOCKER_HOST is set on every docker command.
# Results go to bench/results/api-<date>.md (gitignored) and to stdout. See bench/README.md.
#
# Everything runs in a network namespace of the bench's own, containers with --network
# none. On exit the trap stops `berth serve` and dockerd by PID, removes the containers,
# kills by PID what still names the temp dir, unmounts and removes it (bench/lib.sh).
set -euo pipefail
export LC_ALL=C

# ---- knobs (environment) -------------------------------------------------------------
RUNS_RUN=${RUNS_RUN:-20}          # hyperfine runs of `docker run --rm` (section run)
RUNS_EXEC=${RUNS_EXEC:-50}        # ... of `docker exec` (section exec)
RUNS_PS=${RUNS_PS:-50}            # ... of `docker ps` and `docker version` (section ps)
WARMUP=${WARMUP:-3}               # hyperfine warmup runs
N_CTRS=${N_CTRS:-100}             # running containers per engine for ps and http
CONNS=${CONNS:-32}                # concurrent keep-alive clients (section http)
HTTP_SECONDS=${HTTP_SECONDS:-10}  # measured seconds per request kind and server
HTTP_WARMUP=${HTTP_WARMUP:-2}     # seconds of load before that, not counted
HTTP_RUNS=${HTTP_RUNS:-3}         # rounds of the http section (engines alternating); the
                                  # summary compares each engine's median round
IDLE_SECONDS=${IDLE_SECONDS:-30}  # idle time before the last RSS reading (tokio ends a
                                  # blocking thread after 10 s idle)
SECTIONS=${SECTIONS:-"run exec ps http rss"}
START_WITH=${START_WITH:-run}           # how the N_CTRS are started: run or create-start
START_TIMEOUT=${START_TIMEOUT:-60}      # seconds a start may take before the run stops
BUILD=${BUILD:-1}                 # 0: do not run `cargo build --release`
INSTALL=${INSTALL:-1}             # 0: do not apt-get install missing tools
# BERTH_BIN: a berth binary to use instead of <target>/release/berth (berth-monitor next to it)
# LOADGEN_BIN: the load generator instead of <target>/release/examples/loadgen
ENGINES="berth docker"
API=/v1.41                        # dockerd 20.10's version, and berth serve's

# Everything in a network namespace of the bench's own, as bench/run.sh: nothing here
# needs a network, and nothing the engines do can reach the host's.
if [ -z "${BENCH_IN_NETNS:-}" ]; then
    exec env BENCH_IN_NETNS=1 unshare --net -- bash "$0" "$@"
fi
ip link set lo up

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
# The docker CLI 28 drives both servers (it negotiates 1.41 with dockerd 20.10).
DOCKER_CLI=${DOCKER_CLI_API:-/usr/local/bin/docker}

# This benchmark needs dockerd and its tools only: no podman, crun, registry.
install_missing() {
    local -A need=(
        [hyperfine]=hyperfine [dockerd]=docker.io [containerd]=containerd [runc]=runc
        [python3]=python3 [unshare]=util-linux
    )
    local pkgs=() cmd
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || pkgs+=("${need[$cmd]}")
    done
    [ -x /bin/busybox ] || pkgs+=(busybox-static)
    if [ ${#pkgs[@]} -gt 0 ]; then
        if [ "$INSTALL" != 1 ]; then
            log "bench: missing packages (INSTALL=0): ${pkgs[*]}"
        else
            section "installing ${pkgs[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -q >&2
            # shellcheck disable=SC2046
            apt-get install -y -q --no-install-recommends $(printf '%s\n' "${pkgs[@]}" | sort -u) >&2
        fi
    fi
    [ -x "$DOCKER_CLI" ] || { log "bench: no docker CLI at $DOCKER_CLI (the 28 client; set DOCKER_CLI_API)"; exit 1; }
}

bench_start

# `berth serve`, stopped by PID before bench/lib.sh's cleanup (which removes the
# containers with the berth CLI, stops dockerd, kills leftovers by PID).
SERVE_PID=""
kib_of() { awk -v k="$2:" '$1 == k { print $2; f = 1 } END { if (!f) print "" }' "/proc/$1/status" 2>/dev/null || echo ""; }
stop_serve() {
    [ -n "$SERVE_PID" ] || return 0
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$SERVE_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    if kill -0 "$SERVE_PID" 2>/dev/null; then
        log "bench: berth serve did not end in 20 s after SIGTERM ($(kib_of "$SERVE_PID" Threads) threads): SIGKILL"
        kill -KILL "$SERVE_PID" 2>/dev/null || true
    fi
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_PID=""
}
api_cleanup() {
    local rc=$?
    set +e
    [ -n "${LOAD_PID:-}" ] && { kill -TERM "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; }
    stop_serve
    (exit "$rc")
    cleanup
}
trap api_cleanup EXIT

bench_setup_engines
[ "$berth_ok" = 1 ] || { log "bench: berth: $(first_line "$BENCH_TMP/berth.why")"; exit 1; }
[ "$docker_ok" = 1 ] || { log "bench: docker: $(first_line "$BENCH_TMP/docker.why")"; exit 1; }

LOADGEN=${LOADGEN_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/examples/loadgen}
if [ -z "${LOADGEN_BIN:-}" ] && [ "$BUILD" = 1 ] && want_section http; then
    log "bench: cargo build --release -p berth-api --example loadgen"
    (cd "$repo" && cargo build --release -p berth-api --example loadgen) >&2
fi
if want_section http && [ ! -x "$LOADGEN" ]; then
    log "bench: no load generator at $LOADGEN (cargo build --release -p berth-api --example loadgen)"
    exit 1
fi

DOCKERD_SOCK=$BENCH_TMP/docker.sock
BERTH_SOCK=$BENCH_TMP/berth.sock
# the docker CLI against one server: dcli berth|docker ARGS...
dcli() {
    local s
    case $1 in berth) s=$BERTH_SOCK ;; docker) s=$DOCKERD_SOCK ;; *) return 2 ;; esac
    shift
    DOCKER_HOST=unix://$s "$DOCKER_CLI" "$@"
}
sock_of() { case $1 in berth) echo "$BERTH_SOCK" ;; docker) echo "$DOCKERD_SOCK" ;; esac; }

section "starting berth serve"
engine_argv berth
"${ENGINE_ARGV[@]}" serve -H "unix://$BERTH_SOCK" -G root -p "$BENCH_TMP/berth-serve.pid" \
    </dev/null >"$BENCH_TMP/serve.out" 2>"$BENCH_TMP/serve.err" &
SERVE_PID=$!
# its readiness line, polled for with a deadline
ready="berth serve: API 1.41 listening on unix://$BERTH_SOCK"
deadline=$((SECONDS + 30))
until grep -qxF "$ready" "$BENCH_TMP/serve.out" 2>/dev/null; do
    kill -0 "$SERVE_PID" 2>/dev/null || {
        log "bench: berth serve exited: $(first_line "$BENCH_TMP/serve.err")"; exit 1;
    }
    [ $SECONDS -lt $deadline ] || { log "bench: berth serve said nothing in 30 s"; exit 1; }
    sleep 0.02
done
[ "$(cat "$BENCH_TMP/berth-serve.pid")" = "$SERVE_PID" ] || log "bench: berth serve's pidfile disagrees with \$!"
dcli berth version --format 'berth serve: server {{.Server.Version}}, API {{.Server.APIVersion}}' >&2
dcli docker version --format 'dockerd: server {{.Server.Version}}, API {{.Server.APIVersion}}' >&2
dcli berth images --format '{{.Repository}}:{{.Tag}}' | grep -qx 'bb:latest' || {
    log "bench: berth serve does not list bb"; exit 1;
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START_SECONDS=$SECONDS

# ---- measuring helpers ---------------------------------------------------------------
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0; }
CLK_TCK=$(getconf CLK_TCK)
containerd_pid() {
    local p
    # shellcheck disable=SC2013 # PIDs, one per word
    for p in $(cat /proc/"$DOCKERD_PID"/task/*/children 2>/dev/null); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = containerd ] && { echo "$p"; return 0; }
    done
    echo ""
}
# the shims of our containerd (their command line names the temp dir)
shim_pids() {
    local p c
    for p in /proc/[0-9]*; do
        c=$(cat "$p/comm" 2>/dev/null) || continue
        case $c in containerd-shim*) grep -qaF "$BENCH_TMP" "$p/cmdline" 2>/dev/null && echo "${p#/proc/}" ;; esac
    done
    return 0
}

# rss WHEN: one row of $RES/rss.tsv — serve VmRSS VmHWM, dockerd, containerd, shims and
# their count, serve's threads, RssAnon and RssFile (KiB)
rss_row() {
    local cd shims=0 n=0 p
    cd=$(containerd_pid)
    for p in $(shim_pids); do shims=$((shims + $(kib_of "$p" VmRSS))); n=$((n + 1)); done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(kib_of "$SERVE_PID" VmRSS)" "$(kib_of "$SERVE_PID" VmHWM)" \
        "$(kib_of "$DOCKERD_PID" VmRSS)" "$([ -n "$cd" ] && kib_of "$cd" VmRSS)" "$shims" "$n" \
        "$(kib_of "$SERVE_PID" Threads)" "$(kib_of "$SERVE_PID" RssAnon)" "$(kib_of "$SERVE_PID" RssFile)" \
        >>"$RES/rss.tsv"
    tail -n1 "$RES/rss.tsv" >&2
}

# hf KEY ENGINE RUNS HOST CMD...: hyperfine of CMD with DOCKER_HOST=HOST (- for none)
# after one checked run; a row KEY ENGINE median min max (ms) of $RES/cli.tsv.
hf() {
    local key=$1 eng=$2 runs=$3 host=$4
    shift 4
    local json=$BENCH_TMP/hf-$key-$eng.json err=$BENCH_TMP/hf-$key-$eng.err
    local env=(env)
    [ "$host" = - ] || env=(env "DOCKER_HOST=$host")
    if ! "${env[@]}" "$@" >/dev/null 2>"$err"; then
        printf '%s\t%s\tfailed\t%s\n' "$key" "$eng" "$(first_line "$err")" >>"$RES/cli.tsv"
        return 0
    fi
    # hyperfine itself gets DOCKER_HOST (not through `env`: no extra exec in the timing)
    if "${env[@]}" hyperfine -N --style basic --warmup "$WARMUP" --runs "$runs" --export-json "$json" \
        "$(printf '%q ' "$@")" >&2 2>>"$err"; then
        python3 - "$json" "$key" "$eng" >>"$RES/cli.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("%s\t%s\t%.1f\t%.1f\t%.1f\t%d" % (sys.argv[2], sys.argv[3], r["median"] * 1000,
      r["min"] * 1000, r["max"] * 1000, len(r["times"])))
PY
    else
        printf '%s\t%s\tfailed\thyperfine failed: %s\n' "$key" "$eng" "$(tail -n1 "$err")" >>"$RES/cli.tsv"
    fi
    tail -n1 "$RES/cli.tsv" >&2
}

# Through each server, then the berth CLI itself for scale.
hf_pair() { # KEY RUNS DOCKER-ARGS...
    local key=$1 runs=$2 e
    shift 2
    for e in berth docker; do
        hf "$key" "$e" "$runs" "unix://$(sock_of "$e")" "$DOCKER_CLI" "$@"
    done
}

: >"$RES/cli.tsv"
: >"$RES/rss.tsv"
: >"$RES/http.tsv"
rss_row start

# ---- run --------------------------------------------------------------------------------
if want_section run; then
    section "run: docker run --rm --network none bb true ($RUNS_RUN runs)"
    hf_pair run "$RUNS_RUN" run --rm --network none bb true
    engine_argv berth
    hf run berthcli "$RUNS_RUN" - "${ENGINE_ARGV[@]}" run --rm --network none bb true
fi

# ---- the containers: one for exec and inspect, then up to N_CTRS running --------------
# start_ctr ENGINE [NAME]: one `sleep 1d` container through the server; prints its ID.
# START_WITH=run: `docker run -d`, whose CLI also sends POST /containers/ID/wait before the
# start and leaves without its answer (berth serve before 1a4387a kept a blocking thread
# waiting for each, and hung at the 64th); create-start: `docker create`, `docker start`.
start_ctr() {
    local e=$1 name=() id
    [ -n "${2:-}" ] && name=(--name "$2")
    local cli=(env "DOCKER_HOST=unix://$(sock_of "$e")" timeout -k 5 "$START_TIMEOUT" "$DOCKER_CLI")
    case $START_WITH in
        run) "${cli[@]}" run -d --network none "${name[@]}" bb sleep 1d ;;
        create-start)
            id=$("${cli[@]}" create --network none "${name[@]}" bb sleep 1d) &&
                "${cli[@]}" start "$id" >/dev/null && echo "$id"
            ;;
        *) log "bench: START_WITH=$START_WITH: run or create-start"; return 2 ;;
    esac
}
# Stops the run (the trap cleans up) when a server does not answer a start.
start_or_die() { # ENGINE COUNT-SO-FAR [NAME]
    local id
    if ! id=$(start_ctr "$1" "${3:-}"); then
        log "bench: $1: container $(($2 + 1)) ($START_WITH) failed or got no answer in $START_TIMEOUT s"
        log "bench: $1: threads of berth serve: $(kib_of "$SERVE_PID" Threads)"
        exit 1
    fi
    echo "$id"
}
declare -A EXEC_ID=()
: >"$BENCH_TMP/samples/start-berth"
: >"$BENCH_TMP/samples/start-docker"
for e in berth docker; do
    EXEC_ID[$e]=$(start_or_die "$e" 0 bench-exec)
    echo "${EXEC_ID[$e]}" >"$BENCH_TMP/$e.ids"
done
if want_section ps || want_section http || want_section rss; then
    section "starting $N_CTRS containers per engine ($START_WITH, --network none bb sleep 1d)"
    for e in berth docker; do
        for i in $(seq 2 "$N_CTRS"); do
            t0=$EPOCHREALTIME
            id=$(start_or_die "$e" "$((i - 1))")
            t1=$EPOCHREALTIME
            echo $((${t1/./} - ${t0/./})) >>"$BENCH_TMP/samples/start-$e"
            echo "$id" >>"$BENCH_TMP/$e.ids"
        done
        log "bench: $e: $(dcli "$e" ps -q | wc -l) running, start median $(median_ms "$BENCH_TMP/samples/start-$e") ms"
    done
fi
declare -A RUNNING=()
for e in berth docker; do RUNNING[$e]=$(dcli "$e" ps -q | wc -l); done

# ---- exec -------------------------------------------------------------------------------
if want_section exec; then
    section "exec: docker exec bench-exec true ($RUNS_EXEC runs)"
    hf_pair exec "$RUNS_EXEC" exec bench-exec true
    engine_argv berth
    hf exec berthcli "$RUNS_EXEC" - "${ENGINE_ARGV[@]}" exec bench-exec true
fi

# ---- ps ---------------------------------------------------------------------------------
if want_section ps; then
    section "ps: docker ps with ${RUNNING[berth]} / ${RUNNING[docker]} running ($RUNS_PS runs)"
    hf_pair ps "$RUNS_PS" ps
    engine_argv berth
    hf ps berthcli "$RUNS_PS" - "${ENGINE_ARGV[@]}" ps
    hf_pair version "$RUNS_PS" version
fi

# ---- http -------------------------------------------------------------------------------
# One loadgen run: a row KIND ENGINE JSON-FILE SERVER-CPU-SECONDS ROUND of $RES/http.tsv.
load() { # KIND ENGINE PATH ROUND
    local kind=$1 e=$2 path=$3 round=$4 out=$RES/http-$1-$2-$4.json pids c0 c1 p cd
    pids=$SERVE_PID
    if [ "$e" = docker ]; then
        cd=$(containerd_pid)
        pids="$DOCKERD_PID $cd"
    fi
    log "bench: $e: GET $path, $CONNS clients, ${HTTP_WARMUP}+${HTTP_SECONDS} s"
    # the server's CPU over the whole run, warmup included, prorated below
    c0=0
    for p in $pids; do c0=$((c0 + $(cpu_ticks "$p"))); done
    "$LOADGEN" --socket "$(sock_of "$e")" --path "$path" --connections "$CONNS" \
        --duration "$HTTP_SECONDS" --warmup "$HTTP_WARMUP" >"$out" 2>"$RES/http-$kind-$e.err" &
    LOAD_PID=$!
    wait "$LOAD_PID" || log "bench: loadgen failed: $(first_line "$RES/http-$kind-$e.err")"
    LOAD_PID=""
    c1=0
    for p in $pids; do c1=$((c1 + $(cpu_ticks "$p"))); done
    printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$e" "$out" \
        "$(python3 -c "print(($c1 - $c0) / $CLK_TCK)")" "$round" >>"$RES/http.tsv"
    cat "$out" >&2
}
if want_section http; then
    section "http: $CONNS clients, ${HTTP_SECONDS} s per request and server, $HTTP_RUNS rounds"
    for round in $(seq "$HTTP_RUNS"); do
        for e in berth docker; do
            load list "$e" "$API/containers/json" "$round"
            load inspect "$e" "$API/containers/${EXEC_ID[$e]}/json" "$round"
            # the floor: a request that does nothing, through the same client
            load ping "$e" "$API/_ping" "$round"
        done
    done
fi
rss_row "with_$N_CTRS"

# ---- rss: every container removed through its server, then idle --------------------------
if want_section rss; then
    section "rss: removing the containers, then $IDLE_SECONDS s idle"
    for e in berth docker; do
        t0=$EPOCHREALTIME
        xargs -r -n 50 env "DOCKER_HOST=unix://$(sock_of "$e")" "$DOCKER_CLI" rm -f <"$BENCH_TMP/$e.ids" >/dev/null \
            || log "bench: $e: docker rm -f failed"
        t1=$EPOCHREALTIME
        echo "$e	$(dcli "$e" ps -aq | wc -l)	$(((${t1/./} - ${t0/./}) / 1000))" >>"$RES/rm.tsv"
    done
    # idle: nothing asks either server anything; polled only for the shims' end
    deadline=$((SECONDS + 30))
    while [ -n "$(shim_pids)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    sleep "$IDLE_SECONDS"
    rss_row idle
fi

# ---- report -------------------------------------------------------------------------------
out_dir=$repo/bench/results
mkdir -p "$out_dir"
out=$out_dir/api-$(date -u +%Y-%m-%dT%H%M%S).md
{
    echo "berth	$("$BERTH" --version 2>/dev/null | head -n1) ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "dockerd	$(dockerd --version 2>/dev/null | head -n1); $(containerd --version 2>/dev/null | head -n1)"
    echo "client	$("$DOCKER_CLI" --version 2>/dev/null | head -n1) ($DOCKER_CLI), the same for both"
    echo "hyperfine	$(hyperfine --version 2>/dev/null | head -n1)"
    echo "machine	$(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "load	at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "knobs	START_WITH=$START_WITH RUNS_RUN=$RUNS_RUN RUNS_EXEC=$RUNS_EXEC RUNS_PS=$RUNS_PS WARMUP=$WARMUP N_CTRS=$N_CTRS CONNS=$CONNS HTTP_SECONDS=$HTTP_SECONDS HTTP_WARMUP=$HTTP_WARMUP IDLE_SECONDS=$IDLE_SECONDS SECTIONS=\"$SECTIONS\""
    echo "running	berth ${RUNNING[berth]}, dockerd ${RUNNING[docker]} (during exec, ps, http)"
    echo "starts	\`$START_WITH\` of \`--network none bb sleep 1d\`, median: berth serve $(median_ms "$BENCH_TMP/samples/start-berth") ms, dockerd $(median_ms "$BENCH_TMP/samples/start-docker") ms"
    echo "whole run	$((SECONDS - START_SECONDS)) s after the setup"
} >"$RES/machine.tsv"
python3 - "$RES" "$out" "$N_CTRS" "$CONNS" "$HTTP_SECONDS" "$IDLE_SECONDS" <<'PY'
import datetime, json, os, re, sys
res, out, n_ctrs, conns, secs, idle = sys.argv[1:]

def rows(name):
    p = os.path.join(res, name)
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [l.rstrip("\n").split("\t") for l in f if l.strip()]

def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None

L = [f"# berth serve beside dockerd — {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC", "",
     "| | |", "|---|---|"]
L += [f"| {k} | {v} |" for k, v in rows("machine.tsv")]
notes = []

cli = {}
for r in rows("cli.tsv"):
    cli[(r[0], r[1])] = r[2:]
titles = {
    "run": "`docker run --rm --network none bb true`",
    "exec": "`docker exec bench-exec true`",
    "ps": f"`docker ps` ({n_ctrs} running)",
    "version": "`docker version` (the CLI's floor: start, `/_ping`, `/version`)",
}
targets = {"run": "≥ 5×"}
if cli:
    L += ["", "## Through the docker CLI (hyperfine median, ms; min–max)", "",
          "| command | berth serve | dockerd | dockerd ÷ berth serve | target | berth CLI, no server |",
          "|---|---:|---:|---:|---|---:|"]
    for key, title in titles.items():
        if not any(k[0] == key for k in cli):
            continue
        def cell(eng):
            v = cli.get((key, eng))
            if not v:
                return "–", None
            if v[0] == "failed":
                notes.append(f"{title} through {eng}: failed: {v[1] if len(v) > 1 else ''}")
                return "failed", None
            return f"{float(v[0]):,.1f} ({float(v[1]):,.1f}–{float(v[2]):,.1f})", float(v[0])
        b, bm = cell("berth")
        d, dm = cell("docker")
        c, _ = cell("berthcli")
        ratio = f"**{dm / bm:.1f}×**" if bm and dm else "–"
        L.append(f"| {title} | {b} | {d} | {ratio} | {targets.get(key, '')} | {c} |")

http = rows("http.tsv")
if http:
    L += ["", f"## HTTP: {conns} keep-alive clients over the unix socket, {secs} s each "
          "(crates/berth-api/examples/loadgen.rs, one thread, sharing the cores with the server)", "",
          "| request | server | round | requests | req/s | p50 ms | p99 ms | max ms | errors | bytes/response | items | server CPU µs/request | client CPU, % of a core |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    by = {}
    for row in http:
        kind, eng, path, cpu = row[:4]
        rnd = row[4] if len(row) > 4 else "1"
        try:
            j = json.load(open(path))
        except (OSError, ValueError):
            j = {}
        by.setdefault((kind, eng), []).append(j)
        # the server's CPU was read over warmup + measured time: prorate to the measured part
        req = j.get("requests") or 0
        wall = (j.get("seconds") or 0) + (j.get("warmup_s") or 0)
        cpu_req = "–"
        if req and wall and j.get("seconds"):
            cpu_req = f"{float(cpu) * (j['seconds'] / wall) / req * 1e6:,.1f}"
        server = "berth serve" if eng == "berth" else "dockerd + containerd"
        client = "–"
        if j.get("client_cpu_s") is not None and j.get("client_wall_s"):
            client = f"{100 * j['client_cpu_s'] / j['client_wall_s']:.0f}"
        def f(k, fmt="{:,.2f}"):
            v = j.get(k)
            return fmt.format(v) if isinstance(v, (int, float)) else "–"
        path = re.sub(r"/containers/[0-9a-f]{64}/", "/containers/ID/", j.get("path", kind))
        L.append(f"| `GET {path}` | {server} | {rnd} | {f('requests', '{:,}')} | {f('rps', '{:,.0f}')} | "
                 f"{f('p50_ms')} | {f('p99_ms')} | {f('max_ms')} | {f('errors', '{:,}')} | "
                 f"{f('bytes_per_response', '{:,}')} | {j.get('items', '–')} | {cpu_req} | {client} |")
        if j.get("first_error"):
            notes.append(f"GET {j.get('path')} on {server}: first error: {j['first_error']}")
    L += [""]

    def median_round(runs):
        """The round with the median request rate (the lower middle one of an even count)."""
        ok = sorted((r for r in runs if r.get("rps")), key=lambda r: r["rps"])
        return ok[(len(ok) - 1) // 2] if ok else {}
    for kind in ("list", "inspect", "ping"):
        b, d = median_round(by.get((kind, "berth"), [])), median_round(by.get((kind, "docker"), []))
        if kind == "ping" and b.get("rps"):
            di = median_round(by.get(("inspect", "docker"), [])).get("rps")
            L.append(f"- `GET /_ping` (the floor of this client and machine: no work at all): berth serve "
                     f"{b['rps']:,.0f} req/s, dockerd {d.get('rps', 0):,.0f}"
                     + (f"; 10× dockerd's inspect rate would be {10 * di:,.0f}" if di else ""))
            continue
        if b.get("rps") and d.get("rps"):
            r = b["rps"] / d["rps"]
            p = (b.get("p99_ms") or 0) < (d.get("p99_ms") or 0)
            met = "met" if r >= 10 and p else "not met"
            L.append(f"- `{'GET /containers/json' if kind == 'list' else 'GET /containers/ID/json'}` "
                     f"(each server's median round): berth serve's rate is **{r:.2f}×** dockerd's "
                     f"({b['rps']:,.0f} vs {d['rps']:,.0f} req/s), p99 {b.get('p99_ms')} vs "
                     f"{d.get('p99_ms')} ms (target ≥ 10× at a lower p99: {met})")

rss = rows("rss.tsv")
if rss:
    mib = lambda k: f"{int(k) / 1024:,.1f}" if k and k.isdigit() else "–"
    L += ["", "## Resident memory (VmRSS, MiB)", "",
          "| when | berth serve (peak so far) | its anon / file-backed | its threads | dockerd | containerd | dockerd + containerd | shims (count) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    when = {"start": "start: images imported, no container",
            f"with_{n_ctrs}": f"{n_ctrs} containers running, after the runs",
            "idle": f"idle: every container removed, {idle} s later"}
    for w, srss, shwm, d, c, shims, n, threads, anon, fil in rss:
        both = str(int(d) + int(c)) if d.isdigit() and c.isdigit() else ""
        L.append(f"| {when.get(w, w)} | **{mib(srss)}** ({mib(shwm)}) | {mib(anon)} / {mib(fil)} | {threads} | "
                 f"{mib(d)} | {mib(c)} | {mib(both)} | {mib(shims)} ({n}) |")
    L += ["", "Target: berth serve idle ≤ 10 MiB."]
for e, left, ms in rows("rm.tsv"):
    L.append(f"- `docker rm -f` of its {n_ctrs} through {'berth serve' if e == 'berth' else 'dockerd'}: "
             f"{int(ms):,} ms (50 per command), {left} left")

if notes:
    L += ["", "Notes:", ""] + [f"- {n}" for n in notes]
open(out, "w").write("\n".join(L) + "\n")
PY
cat "$out"
log "bench: results in $out"
