#!/usr/bin/env python3
"""scripts/docker-diff/docker-diff.py — berth side by side with a real dockerd, scenario by scenario.

Not part of CI: run it by hand (as root) when working on Docker parity, and add a
scenario to scenarios.txt for every difference found, so the list keeps growing.

    sudo python3 scripts/docker-diff/docker-diff.py            # every scenario
    sudo python3 scripts/docker-diff/docker-diff.py --only ps  # names containing "ps" (a regex)
    python3 scripts/docker-diff/docker-diff.py --list          # names only, nothing started

What one run does:
  1. makes one temp dir (mktemp under /var/tmp) for everything;
  2. builds the busybox tarball (scripts/mkbusybox.sh) and starts a private dockerd
     (its own containerd) with --bridge=none --iptables=false --ip-masq=false
     --ip6tables=false --ip-forward=false, its own --data-root, --exec-root, --pidfile,
     unix socket, cgroup parent and --config-file (which moves its trust key too), all under the temp dir; berth gets its own --root,
     --run-root and --cgroup-parent there too; `bb` is imported into both;
  3. runs every scenario (a shell snippet, see scenarios.txt) with bash, once per
     engine, both at the same time; captures stdout, stderr and the exit code of the
     snippet; normalises both (IDs full and short, generated names, times and
     durations, the engine's name, Docker's "Error response from daemon: " prefix
     (read as berth's "Error: "), containerd's and runc's part of a message ("failed
     to create shim task: OCI runtime create failed: ...: unknown"), the private paths); prints SAME or a unified diff (--- docker, +++ berth);
  4. after each scenario removes the containers, images (other than bb) and volumes it
     made, in both engines;
  5. at the end (also on Ctrl-C or SIGTERM) removes every container, stops dockerd by
     its PID, kills by PID whatever still names the temp dir, unmounts what is mounted
     under it, removes its cgroups and the temp dir.
The host's network is never touched: docker containers get `--network none` ($RUN,
$CREATE), dockerd makes no bridge and no iptables rules, and its HTTP(S)_PROXY points at
a closed loopback port, so that a pull (`run` of an image it lacks) fails at once
instead of reaching out to a registry.

Variables a scenario sees:
  $E       the engine's command (berth with its private roots, or the docker CLI)
  $RUN     `run --network none` for docker, `run` for berth ($E $RUN ...)
  $CREATE  `create --network none` for docker, `create` for berth
  $NET     `--network none` for docker, empty for berth (for `container run` etc.)
  $W       a scratch dir of its own (empty at the start), also the working directory
  $BBTAR   the busybox tarball
  $ENGINE  docker or berth (for the rare scenario that must differ; avoid it)

A scenario whose body has a line `#! differs: REASON` (a later issue's feature, or a
deliberate difference the README lists) is expected to differ: it is still run and its
diff printed, but it is counted apart and does not fail the run.

Exit status: 0 when every scenario is SAME or expected to differ, 1 when some other
differs, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCENARIOS = HERE / "scenarios.txt"


# ---- scenarios --------------------------------------------------------------------------
@dataclass
class Scenario:
    name: str
    script: str
    line: int
    # Why this scenario is expected to differ (a `#! differs: ...` line in its body):
    # a later issue's feature, or a deliberate difference (README). Empty otherwise.
    differs: str = ""


def load_scenarios(path: Path) -> list[Scenario]:
    """`== name` starts a scenario; its body runs until the next `==`. `#` lines before
    the first `==` or between scenarios are comments (inside a body they are shell).
    A body line `#! differs: REASON` marks the scenario as an expected difference."""
    out: list[Scenario] = []
    cur: Scenario | None = None
    body: list[str] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if raw.startswith("== "):
            if cur:
                cur.script = "\n".join(body).strip() + "\n"
                out.append(cur)
            cur, body = Scenario(raw[3:].strip(), "", n), []
        elif cur is not None:
            body.append(raw)
    if cur:
        cur.script = "\n".join(body).strip() + "\n"
        out.append(cur)
    for sc in out:
        for ln in sc.script.splitlines():
            if ln.startswith("#! differs:"):
                sc.differs = ln.split(":", 1)[1].strip()
    names = [s.name for s in out]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        raise SystemExit(f"docker-diff: duplicate scenario names in {path}: {', '.join(sorted(dups))}")
    return out


# ---- engines ----------------------------------------------------------------------------
@dataclass
class Engine:
    name: str
    argv: list[str]
    env: dict[str, str]
    run_extra: str  # what $RUN / $CREATE add
    paths: list[str] = field(default_factory=list)  # private paths, replaced when normalising

    def cmd(self, *args: str, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.argv, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )


@dataclass
class Result:
    out: str
    err: str
    rc: int | str


# process groups of the scenarios running now: killed first when the run is interrupted
RUNNING: set[int] = set()


def run_script(eng: Engine, sc: Scenario, work: Path, bbtar: Path, timeout: float) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    env = dict(eng.env)
    env.update(
        E=" ".join(eng.argv),
        RUN=f"run {eng.run_extra}".strip(),
        CREATE=f"create {eng.run_extra}".strip(),
        NET=eng.run_extra,
        W=str(work),
        BBTAR=str(bbtar),
        ENGINE=eng.name,
    )
    p = subprocess.Popen(
        ["bash", "-c", sc.script],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: killed whole on timeout
    )
    RUNNING.add(p.pid)
    try:
        out, err = p.communicate(timeout=timeout)
        return Result(out, err, p.returncode)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return Result(out, err, f"timeout after {timeout:g} s")
    finally:
        RUNNING.discard(p.pid)


# ---- normalisation ----------------------------------------------------------------------
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?(?: [A-Z]{3,4})?")
AGO = re.compile(
    r"\b(?:Less than a second|About an? (?:minute|hour)|\d+ (?:seconds?|minutes?|hours?|days?|weeks?|months?|years?)) ago\b"
)
UP = re.compile(r"\bUp (?:Less than a second|About an? (?:minute|hour)|\d+ (?:seconds?|minutes?|hours?))\b")
DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:ns|µs|us|ms|s|m|h)\b(?=[\s\",]|$)")
HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
HEX12 = re.compile(r"(?<![0-9a-zA-Z])[0-9a-f]{12}(?![0-9a-zA-Z])")
RUNC_NOISE = re.compile(
    r"failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "
    r"|OCI runtime exec failed: exec failed: unable to start container process: "
)
UNIX_TS = re.compile(r"(?<![\d.])1[6-9]\d{8}(?:\.\d+)?(?![\d.])")


def normalise(text: str, eng: Engine, names: list[str], script: str) -> str:
    for p in sorted(eng.paths, key=len, reverse=True):
        text = text.replace(p, "<PRIVATE>")
    # IDs: numbered in the order they appear, a short ID gets its full ID's number
    ids: dict[str, int] = {}

    def full(m: re.Match) -> str:
        n = ids.setdefault(m.group(0), len(ids) + 1)
        return f"<ID{n}>"

    def short(m: re.Match) -> str:
        s = m.group(0)
        if not re.search(r"[a-f]", s) or not re.search(r"\d", s):
            return s  # all digits or all letters: not an ID
        for k, n in ids.items():
            if k.startswith(s):
                return f"<ID{n}.short>"
        n = ids.setdefault(s, len(ids) + 1)
        return f"<ID{n}.short>"

    text = HEX64.sub(full, text)
    text = HEX12.sub(short, text)
    # generated container names (a name the scenario did not write)
    for nm in sorted(names, key=len, reverse=True):
        if nm and nm not in script:
            text = re.sub(rf"(?<![\w-]){re.escape(nm)}(?![\w-])", "<NAME>", text)
    # the layers under dockerd (containerd's shim, runc) that berth does not have
    text = RUNC_NOISE.sub("", text)
    text = re.sub(r": unknown$", "", text, flags=re.M)
    text = RFC3339.sub("<TIME>", text)
    text = AGO.sub("<AGO>", text)
    text = UP.sub("Up <DURATION>", text)
    text = DURATION.sub("<DURATION>", text)
    text = UNIX_TS.sub("<UNIXTIME>", text)
    # berth's CLI prints "Error: " (and "berth: " for run/create/start) where Docker's
    # prints "Error response from daemon: " (and "docker: Error response from daemon: ")
    text = re.sub(r"\b(docker|berth): Error response from daemon: ", r"\1: ", text)
    text = text.replace("Error response from daemon: ", "Error: ")
    text = re.sub(r"\b(?:docker|berth)\b", "<ENGINE>", text)
    return text


def render(r: Result) -> list[str]:
    lines = [f"exit: {r.rc}"]
    lines += ["stdout: " + ln for ln in r.out.splitlines()]
    lines += ["stderr: " + ln for ln in r.err.splitlines()]
    return [ln + "\n" for ln in lines]


# ---- the run ----------------------------------------------------------------------------
class Session:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="berth-diff.", dir="/var/tmp"))
        self.tag = f"berth-diff-{os.getpid()}"
        self.dockerd: subprocess.Popen | None = None
        self.engines: list[Engine] = []
        self.bbtar = self.tmp / "bb.tar"
        self.bb_ids: dict[str, str] = {}

    def log(self, msg: str) -> None:
        print(f"docker-diff: {msg}", file=sys.stderr, flush=True)

    # -- setup
    def setup(self) -> None:
        subprocess.run(["bash", str(REPO / "scripts/mkbusybox.sh"), str(self.bbtar)], check=True)
        sock = self.tmp / "docker.sock"
        denv = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(self.tmp / "docker-config"))
        # no pull ever leaves the machine: the daemon's proxy is a closed loopback port
        dd_env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
        dd_env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
        (self.tmp / "docker-config").mkdir()
        # its own config file, so that nothing is read from or written to /etc/docker
        # (dockerd 20.10 writes its trust key there unless told otherwise)
        conf = self.tmp / "daemon.json"
        conf.write_text(json.dumps({"deprecated-key-path": str(self.tmp / "docker-key.json")}))
        self.log("starting dockerd")
        dlog = open(self.tmp / "dockerd.log", "wb")
        self.dockerd = subprocess.Popen(
            [
                "dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false",
                "--ip6tables=false", "--ip-forward=false",
                "--data-root", str(self.tmp / "docker"), "--exec-root", str(self.tmp / "dexec"),
                "--pidfile", str(self.tmp / "docker.pid"), "--host", f"unix://{sock}",
                "--cgroup-parent", f"{self.tag}-docker", "--config-file", str(conf),
            ],
            stdin=subprocess.DEVNULL, stdout=dlog, stderr=subprocess.STDOUT, env=dd_env,
            start_new_session=True,  # Ctrl-C reaches us, not dockerd: we stop it in order
        )
        berth_env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
        berth_env.update(
            HTTP_PROXY="http://127.0.0.1:9",
            HTTPS_PROXY="http://127.0.0.1:9",
            NO_PROXY="127.0.0.1,localhost",
            DOCKER_CONFIG=str(self.tmp / "berth-docker-config"),
            # dockerd runs with --bridge=none: berth the same (its config
            # file takes dockerd's keys).
            BERTH_CONFIG=str(self.tmp / "berth.toml"),
        )
        (self.tmp / "berth.toml").write_text('bridge = "none"\n')
        berth = Engine(
            "berth",
            [
                str(self.args.berth), "--root", str(self.tmp / "berth/root"),
                "--run-root", str(self.tmp / "berth/run"), "--cgroup-parent", f"{self.tag}-berth",
            ],
            # berth pulls too now: the same closed proxy as dockerd's, so a
            # pull of a missing image never leaves the machine (not even a
            # DNS query), and a temp Docker config, never the user's.
            berth_env,
            "",
            [str(self.tmp / "berth/root"), str(self.tmp / "berth/run")],
        )
        docker = Engine(
            "docker", [self.args.docker_cli], denv, "--network none",
            [str(self.tmp / "docker"), str(self.tmp / "dexec")],
        )
        deadline = time.monotonic() + 60
        while True:
            if self.dockerd.poll() is not None:
                raise RuntimeError("dockerd exited: " + (self.tmp / "dockerd.log").read_text()[-400:])
            if sock.exists() and docker.cmd("version", timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("dockerd did not answer in 60 s")
            time.sleep(0.1)
        self.engines = [docker, berth]
        for e in self.engines:
            e.paths += [str(self.tmp / "work" / e.name), str(self.tmp)]
            r = e.cmd("import", str(self.bbtar), "bb", timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"{e.name} import: {r.stderr.strip()}")
            self.bb_ids[e.name] = e.cmd("image", "inspect", "-f", "{{.Id}}", "bb").stdout.strip()

    # -- per scenario
    def names_of(self, e: Engine) -> list[str]:
        r = e.cmd("ps", "-a", "--format", "{{.Names}}", timeout=30)
        return r.stdout.split() if r.returncode == 0 else []

    def reset(self, e: Engine) -> None:
        """Removes what a scenario left: containers, images other than bb, volumes."""
        ids = e.cmd("ps", "-aq", timeout=30).stdout.split()
        if ids:
            e.cmd("rm", "-f", *ids, timeout=120)
        bb = self.bb_ids[e.name]
        refs = e.cmd("images", "--format", "{{.Repository}}:{{.Tag}}", timeout=30).stdout.split()
        extra = [r for r in refs if r not in ("bb:latest", "<none>:<none>")]
        if extra:
            e.cmd("rmi", "-f", *extra, timeout=60)
        full = e.cmd("images", "-q", "--no-trunc", timeout=30).stdout.split()
        gone = [i for i in dict.fromkeys(full) if i != bb and not bb.endswith(i.split(":")[-1])]
        if gone:
            e.cmd("rmi", "-f", *gone, timeout=60)
        vols = e.cmd("volume", "ls", "-q", timeout=30).stdout.split()
        if vols:
            e.cmd("volume", "rm", "-f", *vols, timeout=60)
        if e.cmd("image", "inspect", "bb", timeout=30).returncode != 0:
            # a scenario removed or retagged bb: import it again
            e.cmd("import", str(self.bbtar), "bb", timeout=120)
            self.bb_ids[e.name] = e.cmd("image", "inspect", "-f", "{{.Id}}", "bb").stdout.strip()

    def run(self, scenarios: list[Scenario]) -> int:
        same: list[str] = []
        diff: list[str] = []
        expected: list[str] = []
        for i, sc in enumerate(scenarios, 1):
            results: dict[str, Result] = {}
            names: dict[str, list[str]] = {}

            def one(e: Engine) -> None:
                work = self.tmp / "work" / e.name / f"{i:03d}"
                results[e.name] = run_script(e, sc, work, self.bbtar, self.args.timeout)
                names[e.name] = self.names_of(e)
                self.reset(e)

            threads = [threading.Thread(target=one, args=(e,), daemon=True) for e in self.engines]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            norm = {}
            for e in self.engines:
                r = results[e.name]
                norm[e.name] = render(
                    Result(
                        normalise(r.out, e, names[e.name], sc.script),
                        normalise(r.err, e, names[e.name], sc.script),
                        r.rc,
                    )
                )
            if norm["docker"] == norm["berth"]:
                same.append(sc.name)
                note = "  (marked '#! differs:', no longer does: remove the mark)" if sc.differs else ""
                print(f"SAME  {sc.name}{note}", flush=True)
                if self.args.verbose:
                    sys.stdout.writelines("      " + ln for ln in norm["docker"])
            elif sc.differs:
                expected.append(f"{sc.name} ({sc.differs})")
                print(f"DIFF  {sc.name}  (scenarios.txt:{sc.line}; expected: {sc.differs})", flush=True)
                d = difflib.unified_diff(norm["docker"], norm["berth"], "docker", "berth", n=3)
                sys.stdout.writelines("      " + ln for ln in d)
            else:
                diff.append(sc.name)
                print(f"DIFF  {sc.name}  (scenarios.txt:{sc.line})", flush=True)
                d = difflib.unified_diff(norm["docker"], norm["berth"], "docker", "berth", n=3)
                sys.stdout.writelines("      " + ln for ln in d)
        print()
        print(
            f"{len(scenarios)} scenarios: {len(same)} same, {len(diff) + len(expected)} different"
            f" ({len(expected)} of them expected)"
        )
        if diff:
            print("different: " + " ".join(diff))
        if expected:
            print("expected to differ: " + "; ".join(expected))
        return 1 if diff else 0

    # -- cleanup
    def cleanup(self) -> None:
        for pg in list(RUNNING):
            try:
                os.killpg(pg, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for e in self.engines:
            try:
                ids = e.cmd("ps", "-aq", timeout=30).stdout.split()
                if ids:
                    e.cmd("rm", "-f", *ids, timeout=120)
            except (OSError, subprocess.SubprocessError):
                pass
        if self.dockerd is not None:
            children = []
            for t in Path(f"/proc/{self.dockerd.pid}/task").glob("*/children"):
                try:
                    children += t.read_text().split()
                except OSError:
                    pass
            self.dockerd.terminate()
            try:
                self.dockerd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.dockerd.kill()
                self.dockerd.wait()
            for c in children:  # its containerd
                try:
                    os.kill(int(c), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        self.kill_leftovers()
        time.sleep(0.3)  # let the killed release their mounts and cgroups
        self.unmount_all()
        self.remove_cgroups()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def kill_leftovers(self) -> None:
        """Kills by PID what names our temp dir in its command line or environment
        (monitors, shims that were not stopped politely)."""
        me = str(self.tmp).encode()
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == os.getpid():
                continue
            for f in ("cmdline", "environ"):
                try:
                    if me in Path(f"/proc/{p}/{f}").read_bytes():
                        os.kill(int(p), signal.SIGKILL)
                        break
                except (OSError, ProcessLookupError):
                    pass

    def unmount_all(self) -> None:
        t = str(self.tmp)
        mounts = []
        for ln in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = ln.split()[4]
            if mp == t or mp.startswith(t + "/"):
                mounts.append(mp)
        for mp in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)

    def remove_cgroups(self) -> None:
        for h in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").glob("*")]:
            for d in (h / f"{self.tag}-berth", h / f"{self.tag}-docker"):
                if d.is_dir():
                    for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                        try:
                            sub.rmdir()
                        except OSError:
                            pass
                    try:
                        d.rmdir()
                    except OSError:
                        pass


def main() -> int:
    # Both engines run in a network namespace of this run's own: nothing
    # either makes (a bridge, a rule) reaches the host's.
    if os.environ.get("DOCKER_DIFF_NETNS") != "1":
        os.environ["DOCKER_DIFF_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "--net", "--", sys.executable, *sys.argv])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    default_berth = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release/berth"
    default_cli = "/usr/local/bin/docker" if os.access("/usr/local/bin/docker", os.X_OK) else "/usr/bin/docker"
    ap = argparse.ArgumentParser(description="berth side by side with a private dockerd (not CI).")
    ap.add_argument("--only", metavar="PATTERN", help="run the scenarios whose name matches this regex")
    ap.add_argument("--list", action="store_true", help="print the scenario names and exit")
    ap.add_argument("--scenarios", type=Path, default=SCENARIOS, help="the scenario file (default: %(default)s)")
    ap.add_argument("--berth", type=Path, default=default_berth, help="the berth binary (default: %(default)s)")
    ap.add_argument("--docker-cli", default=default_cli, help="the docker client (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per scenario and engine (default: %(default)s)")
    ap.add_argument("-v", "--verbose", action="store_true", help="also print the normalised output of SAME scenarios")
    args = ap.parse_args()

    scenarios = load_scenarios(args.scenarios)
    if args.only:
        rx = re.compile(args.only)
        scenarios = [s for s in scenarios if rx.search(s.name)]
    if args.list:
        for s in scenarios:
            print(s.name)
        return 0
    if not scenarios:
        print("docker-diff: no scenario matches", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("docker-diff: must run as root", file=sys.stderr)
        return 2
    for need in (str(args.berth), args.docker_cli, "dockerd", "containerd", "bash"):
        if not shutil.which(need):
            print(f"docker-diff: {need} not found (berth: cargo build --release; docker: apt-get install docker.io)", file=sys.stderr)
            return 2

    s = Session(args)
    # SIGTERM and SIGHUP end the run as Ctrl-C does: through the cleanup below
    def stop(signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, stop)  # also when started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    try:
        s.setup()
        return s.run(scenarios)
    except KeyboardInterrupt:
        print("\ndocker-diff: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print(f"docker-diff: {e}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        s.log("cleaning up")
        s.cleanup()


if __name__ == "__main__":
    sys.exit(main())
