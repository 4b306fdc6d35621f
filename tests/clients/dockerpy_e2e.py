#!/usr/bin/env python3
"""docker-py (the `docker` package, 7.x) end to end against `berth serve`.

Run by crates/berth/tests/api_clients.rs with the CI venv's python
(/opt/berth-ci/venv, made by .ci/run); by hand:

    DOCKER_HOST=unix:///run/berth/berth.sock \\
        /opt/berth-ci/venv/bin/python tests/clients/dockerpy_e2e.py \\
        --image bb --registry 127.0.0.1:5000 [--group NAME]... [--keep-going]

IMAGE is a local busybox image (scripts/mkbusybox.sh's, imported into
berth); REGISTRY a plain-http registry on loopback (only the `images` group
uses it). Each group starts from an engine with IMAGE and removes what it
made. One line per check: `ok   GROUP/CHECK: detail`; the first failure is
`FAIL GROUP/CHECK: why`, followed by the last API requests the client made
(method, path, status) and, for an API error, the request that failed and
the engine's message; then exit status 1. `--keep-going` runs every check
and exits 1 at the end if any failed (to list everything at once).
"""

import argparse
import io
import json
import os
import queue
import re
import signal
import socket
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import urllib.request

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool
from docker.utils.socket import frames_iter

CHECK_TIMEOUT = 90  # seconds; one check never takes longer
PREFIX = "dpy"  # every object this script names starts with it


class CheckFailed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def expect_eq(got, want, what):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


class Recorder:
    """The requests the client made (a requests response hook): shown with a failure."""

    def __init__(self, api):
        self.seen = []
        api.hooks["response"].append(self.hook)

    def hook(self, resp, *args, **kwargs):
        req = resp.request
        line = f"{req.method} {req.path_url} -> {resp.status_code}"
        body = req.body
        if resp.status_code >= 400 and isinstance(body, (bytes, str)) and len(body) <= 2000:
            # The JSON a refused request sent (not a tar or other upload).
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            if text.startswith("{"):
                line += f"\n              body: {text}"
        self.seen.append(line)
        del self.seen[:-12]
        return resp

    def mark(self):
        self.seen.clear()


def describe_error(e):
    """What went wrong, with the request and the engine's message for an API error."""
    if isinstance(e, docker.errors.APIError) and e.response is not None:
        req = e.response.request
        return (
            f"{type(e).__name__}: {req.method} {req.path_url} -> "
            f"{e.response.status_code}: {e.explanation}"
        )
    if isinstance(e, docker.errors.BuildError):
        return f"BuildError: {e.msg}"
    if isinstance(e, docker.errors.ContainerError):
        return f"ContainerError: exit {e.exit_status}: {e.stderr!r}"
    if isinstance(e, CheckFailed):
        return str(e)
    return f"{type(e).__name__}: {e}"


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout(f"check took longer than {CHECK_TIMEOUT} s")


class Runner:
    def __init__(self, keep_going, recorder):
        self.keep_going = keep_going
        self.recorder = recorder
        self.failed = []
        self.passed = 0

    def check(self, name, fn):
        self.recorder.mark()
        start = time.monotonic()
        signal.alarm(CHECK_TIMEOUT)
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            signal.alarm(0)
            self.failed.append(name)
            print(f"FAIL {name} ({time.monotonic() - start:.1f} s): {describe_error(e)}", flush=True)
            for r in self.recorder.seen:
                print(f"     request: {r}", flush=True)
            if not isinstance(e, (CheckFailed, docker.errors.APIError, Timeout)):
                for line in traceback.format_exc().rstrip().splitlines():
                    print(f"     | {line}", flush=True)
            if not self.keep_going:
                sys.exit(1)
            return False
        signal.alarm(0)
        self.passed += 1
        took = f" ({time.monotonic() - start:.1f} s)"
        print(f"ok   {name}{took}" + (f": {detail}" if detail else ""), flush=True)
        return True


# -- helpers -------------------------------------------------------------


def until(what, deadline, fn):
    """Calls fn every 50 ms until it returns something true; returns it."""
    end = time.monotonic() + deadline
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise CheckFailed(f"timed out after {deadline} s waiting for {what}")
        time.sleep(0.05)


def tar_of(files):
    """An in-memory tar: {name: bytes | None (a directory)} -> bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = int(time.time())
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o640
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def members(chunks):
    """{name: bytes | None} of a tar stream given as chunks."""
    data = b"".join(chunks)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isfile() else None
            out[m.name.rstrip("/")] = f.read() if f else None
    return out


def in_thread(fn, timeout, what):
    """fn() in a daemon thread; its result, or a failure after timeout."""
    q = queue.Queue()

    def run():
        try:
            q.put((True, fn()))
        except Exception as e:  # noqa: BLE001
            q.put((False, e))

    threading.Thread(target=run, daemon=True).start()
    try:
        ok, v = q.get(timeout=timeout)
    except queue.Empty:
        raise CheckFailed(f"timed out after {timeout} s: {what}") from None
    if not ok:
        raise v
    return v


def http_get(url, deadline=20):
    def attempt():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return (r.status, r.read())
        except OSError:
            return None

    return until(f"GET {url}", deadline, attempt)


def no_proxy_opener():
    # The test's environment points HTTP(S)_PROXY at a closed port: loopback only.
    urllib.request.install_opener(
        urllib.request.build_opener(urllib.request.ProxyHandler({}))
    )


def output_of(client, image, command=None, **kwargs):
    """What a container of `image` printed on stdout, and it removed: create,
    start, wait, logs, remove (containers.run(remove=True) reads its logs
    after the removal, a race of its own that containers/run checks)."""
    c = client.containers.create(image, command, **kwargs)
    try:
        c.start()
        code = c.wait(timeout=60)["StatusCode"]
        out = c.logs(stderr=False)
        expect_eq(code, 0, f"exit status of {image} {command or ''} (stdout {out!r}, stderr {c.logs(stdout=False)!r})")
        return out
    finally:
        c.remove(force=True)


def cleanup(client):
    """Removes every container, volume, network and image tag this script names."""
    for c in client.containers.list(all=True):
        if c.name.startswith(PREFIX):
            try:
                c.remove(force=True, v=True)
            except docker.errors.APIError:
                pass
    for n in client.networks.list():
        if n.name.startswith(PREFIX):
            try:
                n.remove()
            except docker.errors.APIError:
                pass
    for v in client.volumes.list():
        if v.name.startswith(PREFIX):
            try:
                v.remove(force=True)
            except docker.errors.APIError:
                pass


# -- containers ----------------------------------------------------------


def group_containers(r, client, image, _registry):
    api = client.api
    g = "containers"

    def ping():
        expect(client.ping() is True, "ping is not True")
        v = client.version()
        expect_eq(v.get("ApiVersion"), "1.41", "version's ApiVersion")
        expect_eq(api.api_version, "1.41", "the version docker-py chose")
        info = client.info()
        expect("Containers" in info and "Images" in info, f"info: {sorted(info)}")
        return f"API {v['ApiVersion']}, engine {v.get('Version')}"

    r.check(f"{g}/ping-version-info", ping)

    def run_foreground():
        # run() reads the logs it asked for (follow) after wait and remove:
        # what a quick container wrote must not be lost. Ten times each.
        for i in range(10):
            out = client.containers.run(
                image, ["sh", "-c", "echo out; echo err >&2"], network_mode="none", remove=True
            )
            lost = " (its followed logs, asked for before wait and remove, came back empty)"
            expect_eq(out, b"out\n", f"run #{i + 1}'s output (stdout only){lost if not out else ''}")
            both = client.containers.run(
                image,
                ["sh", "-c", "echo out; echo err >&2"],
                network_mode="none",
                remove=True,
                stdout=True,
                stderr=True,
            )
            expect(b"out\n" in both and b"err\n" in both, f"run #{i + 1}'s stdout+stderr: {both!r}{lost if not both else ''}")
        left = [c.name for c in client.containers.list(all=True)]
        expect_eq(left, [], "containers left by run(remove=True)")
        return "stdout, stdout+stderr (10 times each), removed"

    r.check(f"{g}/run", run_foreground)

    def run_fails():
        try:
            client.containers.run(
                image, ["sh", "-c", "echo bad >&2; exit 3"], network_mode="none", name=f"{PREFIX}-fail"
            )
        except docker.errors.ContainerError as e:
            expect_eq(e.exit_status, 3, "ContainerError's exit status")
            expect(b"bad" in (e.stderr or b""), f"ContainerError's stderr: {e.stderr!r}")
            client.containers.get(f"{PREFIX}-fail").remove()
            return "ContainerError, exit 3, stderr kept"
        raise CheckFailed("run of a failing command raised nothing")

    r.check(f"{g}/run-exit-code", run_fails)

    def run_missing_image():
        try:
            client.containers.run("dpy-no-such-image:1", "true", network_mode="none")
        except docker.errors.ImageNotFound:
            return "ImageNotFound"
        except docker.errors.APIError as e:
            # docker-py pulls after a 404 on create; the pull's failure is what it raises.
            expect(e.status_code in (404, 500), describe_error(e))
            return f"{e.status_code} {e.explanation}"
        raise CheckFailed("run of a missing image raised nothing")

    r.check(f"{g}/run-missing-image", run_missing_image)

    def run_detached():
        c = client.containers.run(
            image,
            ["sh", "-c", "echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"],
            detach=True,
            name=f"{PREFIX}-ticker",
            labels={"suite": "dockerpy"},
            network_mode="none",
        )
        c.reload()
        expect_eq(c.status, "running", "status")
        expect_eq(c.labels.get("suite"), "dockerpy", "label")
        expect_eq(c.name, f"{PREFIX}-ticker", "name")
        return c.short_id

    r.check(f"{g}/run-detach", run_detached)

    def create_start_wait_logs():
        c = client.containers.create(
            image,
            ["sh", "-c", "cat /etc/hostname; echo A=$A; echo to-stderr >&2"],
            name=f"{PREFIX}-created",
            hostname="dpyhost",
            environment={"A": "1"},
            labels={"suite": "dockerpy"},
            network_mode="none",
        )
        expect_eq(c.status, "created", "status after create")
        c.start()
        res = c.wait(timeout=30)
        expect_eq(res.get("StatusCode"), 0, "wait's StatusCode")
        expect_eq(c.logs(stderr=False), b"dpyhost\nA=1\n", "logs (stdout)")
        expect_eq(c.logs(stdout=False), b"to-stderr\n", "logs (stderr)")
        c.reload()
        expect_eq(c.status, "exited", "status after wait")
        expect_eq(c.attrs["State"]["ExitCode"], 0, "State.ExitCode")
        return c.short_id

    r.check(f"{g}/create-start-wait-logs", create_start_wait_logs)

    def list_and_get():
        running = [c.name for c in client.containers.list()]
        expect_eq(running, [f"{PREFIX}-ticker"], "list() (running only)")
        labelled = sorted(c.name for c in client.containers.list(all=True, filters={"label": "suite=dockerpy"}))
        expect_eq(labelled, [f"{PREFIX}-created", f"{PREFIX}-ticker"], "list(all, label filter)")
        exited = [c.name for c in client.containers.list(all=True, filters={"status": "exited"})]
        expect_eq(exited, [f"{PREFIX}-created"], "list(status=exited)")
        t = client.containers.get(f"{PREFIX}-ticker")
        expect_eq(client.containers.get(t.id[:12]).id, t.id, "get by short ID")
        expect_eq(t.attrs["Config"]["Image"], image, "Config.Image")
        expect_eq(t.image.id, client.images.get(image).id, "the container's image")
        try:
            client.containers.get(f"{PREFIX}-nope")
        except docker.errors.NotFound:
            pass
        else:
            raise CheckFailed("get of a missing container raised nothing")
        top = t.top()
        expect(any("sh" in " ".join(p) for p in top["Processes"]), f"top: {top}")
        return f"{len(labelled)} listed, top, NotFound"

    r.check(f"{g}/list-get-top", list_and_get)

    def logs_stream():
        t = client.containers.get(f"{PREFIX}-ticker")
        stream = t.logs(stream=True, follow=True)

        def read_until_tick5():
            seen = b""
            for chunk in stream:
                seen += chunk
                if b"tick 5\n" in seen:
                    return seen
            return seen

        seen = in_thread(read_until_tick5, 30, "tick 5 in the followed logs")
        stream.close()
        expect(seen.startswith(b"started\ntick 0\n"), f"followed logs start: {seen[:40]!r}")
        expect(b"tick 5\n" in seen, f"followed logs end: {seen[-40:]!r}")
        tail = t.logs(tail=2).splitlines()
        expect_eq(len(tail), 2, f"logs(tail=2): {tail}")
        ts = t.logs(timestamps=True, tail=1).decode()
        expect(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z tick \d+\n$", ts), f"timestamps: {ts!r}")
        since = t.logs(since=int(time.time()) + 3600)
        expect_eq(since, b"", "logs since the future")
        return "followed to tick 5, tail, timestamps, since"

    r.check(f"{g}/logs-stream", logs_stream)

    def exec_run():
        t = client.containers.get(f"{PREFIX}-ticker")
        res = t.exec_run(["sh", "-c", "echo o; echo e >&2; exit 5"], demux=True)
        expect_eq(res.exit_code, 5, "exec exit code")
        expect_eq(res.output, (b"o\n", b"e\n"), "exec output (demuxed)")
        res = t.exec_run(["sh", "-c", "id -u; pwd; echo $X"], user="1000", workdir="/tmp", environment={"X": "y"})
        expect_eq((res.exit_code, res.output), (0, b"1000\n/tmp\ny\n"), "exec with user/workdir/env")
        res = t.exec_run(["sh", "-c", "for i in 1 2 3; do echo s$i; done"], stream=True)
        expect_eq(res.exit_code, None, "a streamed exec's exit code (not known yet)")
        streamed = b"".join(res.output)
        expect_eq(streamed, b"s1\ns2\ns3\n", "streamed exec output")
        res = t.exec_run(["sh", "-c", "echo made > /tmp/detached"], detach=True)
        until("the detached exec's file", 10, lambda: t.exec_run(["cat", "/tmp/detached"]).output == b"made\n")
        res = t.exec_run(["tty"], tty=True)
        expect(res.output.startswith(b"/dev/pts/"), f"exec with a tty: {res.output!r}")
        res = t.exec_run(["nosuchcommand"])
        expect_eq(res.exit_code, 126, f"exec of a missing command ({res.output!r})")
        return "exit codes, demux, user/workdir/env, stream, detach, tty"

    r.check(f"{g}/exec-run", exec_run)

    def exec_low_level():
        t = client.containers.get(f"{PREFIX}-ticker")
        e = api.exec_create(t.id, ["sh", "-c", "echo low; exit 7"])
        out = api.exec_start(e["Id"])
        expect_eq(out, b"low\n", "exec_start output")
        info = api.exec_inspect(e["Id"])
        expect_eq((info["ExitCode"], info["Running"]), (7, False), "exec_inspect")
        expect_eq(info["ContainerID"], t.id, "exec_inspect's ContainerID")
        return f"exec {e['Id'][:12]}"

    r.check(f"{g}/exec-low-level", exec_low_level)

    def attach_socket():
        c = client.containers.create(
            image,
            ["sh", "-c", "read line; echo got:$line; echo err:$line >&2"],
            name=f"{PREFIX}-attach",
            stdin_open=True,
            network_mode="none",
        )
        sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        raw = sock._sock if hasattr(sock, "_sock") else sock
        c.start()
        raw.sendall(b"abc\n")

        def read_all():
            out = {1: b"", 2: b""}
            for stream, data in frames_iter(sock, tty=False):
                out[stream] = out.get(stream, b"") + data
            return out

        out = in_thread(read_all, 30, "the attached streams to end")
        sock.close()
        expect_eq(out[1], b"got:abc\n", "attached stdout")
        expect_eq(out[2], b"err:abc\n", "attached stderr")
        expect_eq(c.wait(timeout=30)["StatusCode"], 0, "exit code")
        c.remove()

        # A running container with a TTY: raw bytes, no frames.
        c = client.containers.run(
            image,
            ["sh", "-c", "read line; echo tty:$line"],
            name=f"{PREFIX}-attach-tty",
            stdin_open=True,
            tty=True,
            detach=True,
            network_mode="none",
        )
        sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        raw = sock._sock if hasattr(sock, "_sock") else sock
        raw.sendall(b"xyz\n")

        def read_raw():
            data = b""
            while True:
                chunk = raw.recv(4096)
                if not chunk:
                    return data
                data += chunk

        data = in_thread(read_raw, 30, "the attached TTY to end")
        sock.close()
        # The terminal echoes the input, then the output (CRLF).
        expect(b"tty:xyz\r\n" in data, f"attached TTY output: {data!r}")
        expect_eq(c.wait(timeout=30)["StatusCode"], 0, "exit code")
        c.remove()
        return "stdin/stdout/stderr frames; a TTY's raw stream"

    r.check(f"{g}/attach-socket", attach_socket)

    def published_port():
        port = free_port()
        c = client.containers.run(
            image,
            ["httpd", "-f", "-p", "8080", "-h", "/etc"],
            name=f"{PREFIX}-web",
            ports={"8080/tcp": ("127.0.0.1", port)},
            hostname="dpyweb",
            detach=True,
        )
        status, body = http_get(f"http://127.0.0.1:{port}/hostname")
        expect_eq((status, body), (200, b"dpyweb\n"), "GET /hostname through the published port")
        c.reload()
        expect_eq(c.ports.get("8080/tcp"), [{"HostIp": "127.0.0.1", "HostPort": str(port)}], "ports")
        c.remove(force=True)
        return f"127.0.0.1:{port} -> 8080"

    r.check(f"{g}/published-port", published_port)

    def stop_wait_remove():
        t = client.containers.get(f"{PREFIX}-ticker")
        t.stop(timeout=1)
        res = t.wait(timeout=30)
        # sh as PID 1 ignores SIGTERM: killed after the timeout.
        expect_eq(res["StatusCode"], 137, "wait after stop")
        t.reload()
        expect_eq(t.status, "exited", "status after stop")
        t.start()
        t.reload()
        expect_eq(t.status, "running", "status after start")
        t.kill(signal="SIGKILL")
        expect_eq(t.wait(timeout=30)["StatusCode"], 137, "wait after kill")
        t.remove(v=True)
        try:
            client.containers.get(t.id)
        except docker.errors.NotFound:
            pass
        else:
            raise CheckFailed("the removed container is still there")
        c = client.containers.run(image, ["sleep", "1000"], name=f"{PREFIX}-forced", detach=True, network_mode="none")
        try:
            c.remove()
        except docker.errors.APIError as e:
            expect_eq(e.status_code, 409, "removing a running container")
        else:
            raise CheckFailed("removing a running container without force succeeded")
        c.remove(force=True)
        client.containers.get(f"{PREFIX}-created").remove()
        left = [c.name for c in client.containers.list(all=True)]
        expect_eq(left, [], "containers left")
        return "137, restart, kill, 409 without force, force"

    r.check(f"{g}/stop-wait-remove", stop_wait_remove)

    def low_level_lifecycle():
        hc = api.create_host_config(network_mode="none", mem_limit="64m")
        c = api.create_container(
            image,
            ["sh", "-c", "echo low-level; exit 4"],
            name=f"{PREFIX}-low",
            host_config=hc,
            labels={"suite": "dockerpy"},
        )
        cid = c["Id"]
        expect(re.fullmatch(r"[0-9a-f]{64}", cid), f"create's Id: {c}")
        ins = api.inspect_container(cid)
        expect_eq(ins["HostConfig"]["Memory"], 64 * 1024 * 1024, "HostConfig.Memory")
        api.start(cid)
        expect_eq(api.wait(cid, timeout=30)["StatusCode"], 4, "wait")
        expect_eq(api.logs(cid), b"low-level\n", "logs")
        listed = api.containers(all=True, filters={"label": "suite=dockerpy"})
        expect_eq([x["Id"] for x in listed], [cid], "containers(all, label)")
        expect_eq(listed[0]["Names"], [f"/{PREFIX}-low"], "Names")
        api.rename(cid, f"{PREFIX}-low2")
        expect_eq(api.inspect_container(cid)["Name"], f"/{PREFIX}-low2", "Name after rename")
        api.remove_container(cid, v=True)
        return cid[:12]

    r.check(f"{g}/low-level-lifecycle", low_level_lifecycle)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- archive, export, stats, update -----------------------------------------


def group_archive(r, client, image, _registry):
    g = "archive"
    state = {}

    def start():
        c = client.containers.run(
            image, ["sleep", "1000"], name=f"{PREFIX}-files", detach=True, network_mode="none"
        )
        state["c"] = c
        return c.short_id

    if not r.check(f"{g}/start", start):
        return
    c = state["c"]

    def put_archive():
        data = tar_of({"hello.txt": b"hello archive\n", "d": None, "d/x": b"x\n"})
        expect_eq(c.put_archive("/tmp", data), True, "put_archive's result")
        res = c.exec_run(["sh", "-c", "cat /tmp/hello.txt /tmp/d/x; stat -c %a /tmp/hello.txt"])
        expect_eq(res.output, b"hello archive\nx\n640\n", "what put_archive wrote")
        try:
            c.put_archive("/no/such/dir", data)
        except docker.errors.NotFound:
            pass
        else:
            raise CheckFailed("put_archive to a missing directory raised nothing")
        return "a file, a directory, the mode; NotFound"

    r.check(f"{g}/put-archive", put_archive)

    def get_archive():
        chunks, stat = c.get_archive("/tmp/d")
        expect_eq(stat.get("name"), "d", "the path stat's name")
        expect(stat.get("mode", 0) & (1 << 31), f"the path stat's mode is a directory: {stat}")
        got = members(chunks)
        expect_eq(got.get("d/x"), b"x\n", f"get_archive's members: {sorted(got)}")
        chunks, stat = c.get_archive("/etc/hostname")
        got = members(chunks)
        expect_eq(list(got), ["hostname"], "a single file's archive")
        expect_eq(stat.get("size"), len(got["hostname"]), "the stat's size")
        try:
            c.get_archive("/no/such/file")
        except docker.errors.NotFound:
            pass
        else:
            raise CheckFailed("get_archive of a missing path raised nothing")
        return f"stat {stat}"

    r.check(f"{g}/get-archive", get_archive)

    def export():
        got = members(c.export())
        expect("bin/busybox" in got, "bin/busybox in the export")
        expect_eq(got.get("tmp/hello.txt"), b"hello archive\n", "the container's own file in the export")
        return f"{len(got)} entries"

    r.check(f"{g}/export", export)

    def stats():
        s = c.stats(stream=False)
        for key in ("read", "preread", "pids_stats", "blkio_stats", "cpu_stats", "precpu_stats", "memory_stats", "name", "id"):
            expect(key in s, f"stats key {key!r} missing: {sorted(s)}")
        expect_eq(s["name"], f"/{PREFIX}-files", "stats' name")
        expect_eq(s["id"], c.id, "stats' id")
        expect(s["cpu_stats"]["cpu_usage"]["total_usage"] > 0, f"cpu_stats: {s['cpu_stats']}")
        expect(s["memory_stats"].get("usage", 0) > 0, f"memory_stats: {s['memory_stats']}")
        expect(s["pids_stats"].get("current", 0) >= 1, f"pids_stats: {s['pids_stats']}")
        gen = c.stats(stream=True, decode=True)
        first, second = in_thread(lambda: (next(gen), next(gen)), 30, "two streamed stats")
        gen.close()
        expect(second["read"] > first["read"], f"streamed samples' times: {first['read']} {second['read']}")
        expect_eq(second["precpu_stats"], first["cpu_stats"], "a sample's precpu_stats is the one before's cpu_stats")
        return f"keys {sorted(s)}"

    r.check(f"{g}/stats", stats)

    def update():
        res = c.update(mem_limit="64m", memswap_limit="128m", cpu_shares=512)
        expect("Warnings" in res, f"update's answer: {res}")
        c.reload()
        hc = c.attrs["HostConfig"]
        expect_eq((hc["Memory"], hc["MemorySwap"], hc["CpuShares"]), (64 << 20, 128 << 20, 512), "HostConfig after update")
        return "memory, swap, shares"

    r.check(f"{g}/update", update)

    def remove():
        c.remove(force=True)
        return None

    r.check(f"{g}/remove", remove)


# -- images ------------------------------------------------------------------


def group_images(r, client, image, registry):
    """Build on its own; push, pull, save and load of an image made by commit."""
    api = client.api
    g = "images"
    built_tag = f"{PREFIX}-built:1"
    made_tag = f"{PREFIX}-made:1"
    repo = f"{registry}/{PREFIX}/made"
    state = {}

    def list_get_tag():
        base = client.images.get(image)
        expect(base.id.startswith("sha256:"), f"image id {base.id}")
        expect(f"{image}:latest" in base.tags, f"tags {base.tags}")
        names = [t for i in client.images.list() for t in i.tags]
        expect(f"{image}:latest" in names, f"images.list: {names}")
        expect_eq([i.id for i in client.images.list(name=image)], [base.id], "images.list(name)")
        expect(base.tag(f"{PREFIX}-tagged", "v1") is True, "tag's result")
        expect_eq(client.images.get(f"{PREFIX}-tagged:v1").id, base.id, "the new tag's image")
        refs = client.images.list(filters={"reference": f"{PREFIX}-*"})
        expect_eq([i.id for i in refs], [base.id], "images.list(reference filter)")
        hist = base.history()
        expect(len(hist) >= 1 and "CreatedBy" in hist[0], f"history: {hist}")
        client.images.remove(f"{PREFIX}-tagged:v1")
        try:
            client.images.get(f"{PREFIX}-tagged:v1")
        except docker.errors.ImageNotFound:
            pass
        else:
            raise CheckFailed("the removed tag is still there")
        return base.short_id

    r.check(f"{g}/list-get-tag-remove", list_get_tag)

    def commit():
        c = client.containers.run(
            image, ["sh", "-c", "echo made > /made.txt"], name=f"{PREFIX}-commit", detach=True, network_mode="none"
        )
        expect_eq(c.wait(timeout=30)["StatusCode"], 0, "the container to commit")
        img = c.commit(f"{PREFIX}-made", "1", changes=['CMD ["cat", "/made.txt"]'], message="by docker-py")
        c.remove()
        expect(made_tag in img.tags, f"the committed image's tags {img.tags}")
        expect_eq(output_of(client, made_tag, network_mode="none"), b"made\n", "the committed image runs")
        state["made"] = img.id
        return img.short_id

    r.check(f"{g}/commit", commit)

    def build():
        ctx = tempfile.mkdtemp(prefix="dpy-build.")
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(
                f"FROM {image}\n"
                "ARG GREETING=hi\n"
                "COPY payload.txt /payload.txt\n"
                "RUN echo \"$GREETING from build\" > /built.txt\n"
                "LABEL suite=dockerpy\n"
                "ENV BUILT=yes\n"
                "CMD [\"sh\", \"-c\", \"cat /built.txt /payload.txt; echo BUILT=$BUILT\"]\n"
            )
        with open(os.path.join(ctx, "payload.txt"), "w") as f:
            f.write("payload\n")
        img, logs = client.images.build(path=ctx, tag=built_tag, buildargs={"GREETING": "hello"}, rm=True)
        lines = "".join(x.get("stream", "") for x in logs)
        expect(img.id.startswith("sha256:"), f"built image id {img.id}")
        expect(built_tag in img.tags, f"built image's tags {img.tags}")
        expect_eq(img.labels.get("suite"), "dockerpy", "the built image's label")
        expect("Step 1/" in lines, f"build output: {lines!r}")
        out = output_of(client, built_tag, network_mode="none")
        expect_eq(out, b"hello from build\npayload\nBUILT=yes\n", "the built image's CMD")
        # A failing step: BuildError with the step's words.
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(f"FROM {image}\nRUN echo failing-step; exit 9\n")
        try:
            client.images.build(path=ctx, tag=f"{PREFIX}-broken:1", rm=True)
        except docker.errors.BuildError as e:
            expect("9" in str(e.msg), f"BuildError's message: {e.msg!r}")
        else:
            raise CheckFailed("a failing RUN step raised nothing")
        client.images.remove(built_tag)
        return img.short_id

    r.check(f"{g}/build", build)

    def build_low_level():
        df = io.BytesIO(f"FROM {image}\nRUN echo low > /low.txt\n".encode())
        out = list(api.build(fileobj=df, tag=f"{PREFIX}-low:1", rm=True, decode=True))
        errors = [x for x in out if "error" in x]
        expect_eq(errors, [], "errors in the build stream")
        streams = "".join(x.get("stream", "") for x in out)
        expect(re.search(r"Successfully built [0-9a-f]{12}", streams), f"build stream: {out}")
        expect("Successfully tagged dpy-low:1" in streams, f"build stream: {streams!r}")
        api.remove_image(f"{PREFIX}-low:1")
        return f"{len(out)} messages"

    r.check(f"{g}/build-low-level", build_low_level)

    def push():
        expect("made" in state, "no committed image to push")
        expect(client.images.get(made_tag).tag(repo, "1"), "tag for the registry")
        msgs = list(client.images.push(repo, tag="1", stream=True, decode=True))
        errors = [m for m in msgs if "error" in m or "errorDetail" in m]
        expect_eq(errors, [], "errors in the push stream")
        digests = [m["aux"]["Digest"] for m in msgs if "aux" in m and "Digest" in m["aux"]]
        expect(digests and digests[0].startswith("sha256:"), f"push's aux digest: {msgs}")
        with urllib.request.urlopen(f"http://{registry}/v2/{PREFIX}/made/tags/list", timeout=10) as resp:
            tags = json.load(resp)
        expect_eq(tags.get("tags"), ["1"], "the registry's tags")
        state["digest"] = digests[0]
        return digests[0]

    r.check(f"{g}/push", push)

    def pull():
        expect("digest" in state, "nothing pushed to pull")
        client.images.remove(f"{repo}:1")
        msgs = list(api.pull(repo, tag="1", stream=True, decode=True))
        errors = [m for m in msgs if "error" in m or "errorDetail" in m]
        expect_eq(errors, [], "errors in the pull stream")
        status = [m.get("status", "") for m in msgs]
        expect(any(s.startswith("Digest: sha256:") for s in status), f"pull's status lines: {status}")
        img = client.images.get(f"{repo}:1")
        expect_eq(img.id, state["made"], "the pulled image is the pushed one")
        expect(f"{repo}@{state['digest']}" in img.attrs.get("RepoDigests", []), f"RepoDigests {img.attrs.get('RepoDigests')}")
        again = client.images.pull(repo, tag="1")
        expect_eq(again.id, state["made"], "images.pull's image")
        try:
            msgs = list(api.pull(f"{registry}/{PREFIX}/nothing", tag="1", stream=True, decode=True))
        except docker.errors.APIError as e:
            expect(e.status_code in (404, 500), describe_error(e))
        else:
            expect(any("error" in m for m in msgs), f"a pull of a missing repository: {msgs}")
        client.images.remove(f"{repo}:1")
        return img.short_id

    r.check(f"{g}/pull", pull)

    def save_load():
        expect("made" in state, "no committed image to save")
        data = b"".join(client.images.get(made_tag).save(named=made_tag))
        got = members([data])
        manifest = json.loads(got["manifest.json"])
        expect_eq(manifest[0].get("RepoTags"), [made_tag], "manifest.json's RepoTags")
        expect(manifest[0]["Config"] in got, f"the config member {manifest[0]['Config']}")
        expect(all(layer in got for layer in manifest[0]["Layers"]), "every layer member")
        client.images.remove(made_tag)
        try:
            client.images.get(state["made"])
        except docker.errors.ImageNotFound:
            pass
        else:
            raise CheckFailed("the committed image is still there after its tags were removed")
        loaded = client.images.load(data)
        expect_eq([i.id for i in loaded], [state["made"]], "images.load's images")
        expect(made_tag in loaded[0].tags, f"the loaded image's tags {loaded[0].tags}")
        out = output_of(client, made_tag, network_mode="none")
        expect_eq(out, b"made\n", "the loaded image runs")
        return f"{len(data)} bytes, {len(got)} members"

    r.check(f"{g}/save-load", save_load)

    def import_image():
        data = tar_of({"hello.txt": b"imported\n"})
        msgs = list(api.import_image_from_data(data, repository=f"{PREFIX}-imported", tag="1"))
        expect(msgs, "import's answer")
        img = client.images.get(f"{PREFIX}-imported:1")
        expect_eq(len(img.history()), 1, "an imported image's history")
        client.images.remove(f"{PREFIX}-imported:1")
        return img.short_id

    r.check(f"{g}/import", import_image)

    def df():
        d = client.df()
        for key in ("LayersSize", "Images", "Containers", "Volumes"):
            expect(key in d, f"df key {key!r} missing: {sorted(d)}")
        ids = [i["Id"] for i in d["Images"]]
        expect(client.images.get(image).id in ids, f"df's images: {ids}")
        return f"keys {sorted(d)}"

    r.check(f"{g}/df", df)

    def remove_made():
        for name in (made_tag, f"{repo}:1", built_tag):
            try:
                client.images.remove(name, force=True)
            except docker.errors.ImageNotFound:
                pass
        pruned = client.images.prune()
        expect("ImagesDeleted" in pruned, f"prune's answer: {pruned}")
        left = sorted(t for i in client.images.list() for t in i.tags)
        expect_eq(left, [f"{image}:latest"], "images left")
        return None

    r.check(f"{g}/remove", remove_made)


# -- networks, volumes, events ------------------------------------------------


def group_objects(r, client, image, _registry):
    g = "objects"
    net_name = f"{PREFIX}-net"
    vol_name = f"{PREFIX}-vol"

    def volumes():
        v = client.volumes.create(name=vol_name, labels={"suite": "dockerpy"})
        expect_eq(v.name, vol_name, "volume name")
        expect_eq(client.volumes.get(vol_name).attrs["Labels"], {"suite": "dockerpy"}, "volume labels")
        listed = [x.name for x in client.volumes.list(filters={"label": "suite=dockerpy"})]
        expect_eq(listed, [vol_name], "volumes.list(label)")
        output_of(
            client, image, ["sh", "-c", "echo kept > /data/f"], volumes={vol_name: {"bind": "/data", "mode": "rw"}},
            network_mode="none",
        )
        out = output_of(client, image, ["cat", "/data/f"], volumes=[f"{vol_name}:/data:ro"], network_mode="none")
        expect_eq(out, b"kept\n", "the volume's file from another container")
        anon = client.volumes.create()
        expect(re.fullmatch(r"[0-9a-f]{64}", anon.name), f"an anonymous volume's name {anon.name}")
        v.remove()
        try:
            client.volumes.get(vol_name)
        except docker.errors.NotFound:
            pass
        else:
            raise CheckFailed("the removed volume is still there")
        pruned = client.volumes.prune()
        expect(anon.name in (pruned.get("VolumesDeleted") or []), f"volumes.prune: {pruned}")
        return "create, labels, list, mount, remove, prune"

    r.check(f"{g}/volumes", volumes)

    def networks():
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet="10.123.0.0/24", gateway="10.123.0.1")])
        n = client.networks.create(net_name, driver="bridge", ipam=ipam, labels={"suite": "dockerpy"})
        expect_eq(client.networks.get(n.id).name, net_name, "get by ID")
        expect_eq(n.attrs["IPAM"]["Config"][0]["Subnet"], "10.123.0.0/24", "subnet")
        listed = [x.name for x in client.networks.list(names=[net_name])]
        expect_eq(listed, [net_name], "networks.list(names)")
        by_label = [x.name for x in client.networks.list(filters={"label": "suite=dockerpy"})]
        expect_eq(by_label, [net_name], "networks.list(label)")
        srv = client.containers.run(
            image, ["sleep", "1000"], name=f"{PREFIX}-srv", network=net_name, detach=True
        )
        srv.reload()
        ip = srv.attrs["NetworkSettings"]["Networks"][net_name]["IPAddress"]
        expect(ip.startswith("10.123.0."), f"the container's address {ip}")
        out = output_of(client, image, ["nslookup", f"{PREFIX}-srv", "127.0.0.11"], network=net_name)
        expect(ip.encode() in out, f"nslookup of the other container: {out!r}")
        n.reload()
        expect_eq([c.name for c in n.containers], [f"{PREFIX}-srv"], "the network's containers")
        # connect/disconnect a created container.
        c = client.containers.create(image, ["true"], name=f"{PREFIX}-joiner")
        n.connect(c, aliases=["joiner-alias"])
        c.reload()
        expect(net_name in c.attrs["NetworkSettings"]["Networks"], f"networks after connect: {c.attrs['NetworkSettings']['Networks']}")
        n.disconnect(c)
        c.reload()
        expect(net_name not in c.attrs["NetworkSettings"]["Networks"], "networks after disconnect")
        c.remove()
        try:
            n.remove()
        except docker.errors.APIError as e:
            expect_eq(e.status_code, 403, "removing a network in use")
        else:
            raise CheckFailed("removing a network in use succeeded")
        srv.remove(force=True)
        n.remove()
        try:
            client.networks.get(net_name)
        except docker.errors.NotFound:
            pass
        else:
            raise CheckFailed("the removed network is still there")
        client.networks.create(f"{PREFIX}-unused")
        pruned = client.networks.prune()
        expect(f"{PREFIX}-unused" in (pruned.get("NetworksDeleted") or []), f"networks.prune: {pruned}")
        return f"{ip}, DNS, connect/disconnect, 403 in use, prune"

    r.check(f"{g}/networks", networks)

    def events():
        t0 = int(time.time())
        c = client.containers.run(image, ["true"], name=f"{PREFIX}-ev", detach=True, network_mode="none")
        c.wait(timeout=30)
        c.remove()
        t1 = int(time.time()) + 1
        evs = list(client.events(since=t0, until=t1, decode=True, filters={"container": c.id}))
        actions = [e.get("Action") or e.get("status") for e in evs]
        for want in ("create", "start", "die", "destroy"):
            expect(want in actions, f"{want!r} in the container's events: {actions}")
        expect(all(e.get("Type") == "container" and e["Actor"]["ID"] == c.id for e in evs), f"events' actors: {evs}")
        die = [e for e in evs if e.get("Action") == "die"][0]
        expect_eq(die["Actor"]["Attributes"].get("exitCode"), "0", "die's exitCode")
        expect_eq(die["Actor"]["Attributes"].get("name"), f"{PREFIX}-ev", "die's name")

        # Followed: an event that happens after the stream opened.
        stream = client.events(decode=True, filters={"type": "volume", "volume": f"{PREFIX}-evvol"})
        got = queue.Queue()
        threading.Thread(target=lambda: [got.put(e) for e in stream], daemon=True).start()
        time.sleep(0.2)  # the stream is open once its head came back; let the server reach its follow loop
        client.volumes.create(f"{PREFIX}-evvol").remove()
        seen = []
        end = time.monotonic() + 20
        while "destroy" not in seen and time.monotonic() < end:
            try:
                seen.append(got.get(timeout=max(0.1, end - time.monotonic())).get("Action"))
            except queue.Empty:
                break
        stream.close()
        expect_eq(seen, ["create", "destroy"], "followed volume events")
        return f"{len(evs)} container events; followed {seen}"

    r.check(f"{g}/events", events)


GROUPS = {
    "containers": group_containers,
    "archive": group_archive,
    "images": group_images,
    "objects": group_objects,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="bb")
    ap.add_argument("--registry", default=None, help="HOST:PORT of a plain-http registry (images group)")
    ap.add_argument("--group", action="append", choices=sorted(GROUPS), help="(repeatable; default: all)")
    ap.add_argument("--keep-going", action="store_true")
    args = ap.parse_args()
    if "DOCKER_HOST" not in os.environ:
        sys.exit("dockerpy_e2e: DOCKER_HOST is not set")
    groups = args.group or list(GROUPS)
    if "images" in groups and not args.registry:
        sys.exit("dockerpy_e2e: the images group needs --registry HOST:PORT")
    no_proxy_opener()
    signal.signal(signal.SIGALRM, _alarm)

    client = docker.from_env(timeout=120)
    print(f"docker-py {docker.__version__} on {os.environ['DOCKER_HOST']}", flush=True)
    runner = Runner(args.keep_going, Recorder(client.api))
    try:
        for name in groups:
            GROUPS[name](runner, client, args.image, args.registry)
    finally:
        signal.alarm(0)
        try:
            cleanup(client)
        except Exception as e:  # noqa: BLE001
            print(f"cleanup: {describe_error(e)}", flush=True)
    if runner.failed:
        print(f"dockerpy_e2e: {len(runner.failed)} checks failed: {' '.join(runner.failed)}", flush=True)
        sys.exit(1)
    print(f"dockerpy_e2e: all {runner.passed} checks passed", flush=True)


if __name__ == "__main__":
    main()
