#!/usr/bin/env python3
"""api-contract-capture.py SOCK BB_TAR OUT.json — record dockerd's answers
as the API contract berth serve is held to (crates/berth/tests/api_contract.rs).

SOCK is the unix socket of a dockerd that holds nothing of its own (start one
on private paths, see crates/berth/tests/data/api-contract.md); BB_TAR is
scripts/mkbusybox.sh's tar. The script builds the little world with the docker
CLI (DOCKER, /usr/bin/docker by default, through DOCKER_HOST=unix://SOCK),
replays every request below at each version prefix, and writes for each one
the status, the Content-Type, the JSON shape (key paths and JSON types; values
only where the world fixes them), error messages word for word (IDs replaced
by placeholders). What a human added to an existing OUT — an entry's `berth`
override, its `optional` keys, the top-level `optional` and `cgroup_v1_only`
per shape — is kept.

Key paths: `Id` is a top-level key, `State.Status` a nested one, `Mounts[]`
the first element of an array, `Mounts[].Type` a key of it, `[]` and `[].Id`
the same for a top-level array, `` the body itself. An object or array is
only opened (its keys listed) where REQUESTS says so; a path is opened in the
test exactly when the shape lists something beneath it.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

VERSIONS = ["v1.24", "v1.41", ""]


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker", timeout=60)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.path)
        self.sock = s


def q(filters):
    """A `filters` query value."""
    return urllib.parse.quote(json.dumps(filters, separators=(",", ":")), safe="")


# Each request: id, method, path (placeholders {c1.Id} {since} ...),
# optional JSON body, what it needs of the world, the paths to open, the
# values to keep (flat paths), the arrays whose lengths to keep, the kind
# of body ("json", "text", "lines", "none"), and the version prefixes
# (VERSIONS unless given).
CONTAINER_OPEN = [
    "State", "Config", "HostConfig", "NetworkSettings",
    "NetworkSettings.Networks", "NetworkSettings.Networks.none",
    "GraphDriver", "Mounts",
]
SUMMARY_OPEN = [
    "", "[]", "[].HostConfig", "[].NetworkSettings",
    "[].NetworkSettings.Networks", "[].NetworkSettings.Networks.none",
]
STATS_OPEN = [
    "pids_stats", "blkio_stats", "storage_stats",
    "cpu_stats", "cpu_stats.cpu_usage", "cpu_stats.throttling_data",
    "precpu_stats", "precpu_stats.cpu_usage", "precpu_stats.throttling_data",
    "memory_stats", "memory_stats.stats",
]
EVENT_OPEN = ["Actor", "Actor.Attributes"]

REQUESTS = [
    dict(id="ping", path="/_ping", kind="text", setup="none"),
    dict(id="version", path="/version", open=["Platform", "Components", "Components[]"],
         values=["ApiVersion", "MinAPIVersion", "Os", "Arch", "Components[].Name",
                 "Components[].Details.ApiVersion", "Components[].Details.MinAPIVersion"],
         setup="none"),
    dict(id="info", path="/info",
         open=["Plugins", "Swarm", "RegistryConfig", "ContainerdCommit", "RuncCommit", "InitCommit"],
         values=["Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped",
                 "Images", "OSType"],
         setup="the world: 2 containers (c1 running, c2 exited), 1 image"),
    dict(id="containers-list", path="/containers/json", open=SUMMARY_OPEN,
         values=["[].Names", "[].Image", "[].Command", "[].Labels", "[].State",
                 "[].HostConfig.NetworkMode", "[].Ports", "[].Mounts"],
         lengths=[""], setup="c1 running, c2 exited"),
    dict(id="containers-list-all", path="/containers/json?all=1", open=SUMMARY_OPEN,
         values=["[].Names", "[].Command", "[].State"], lengths=[""],
         setup="c1 running, c2 exited (newest first)"),
    dict(id="containers-list-all-size", path="/containers/json?all=1&size=1", open=SUMMARY_OPEN,
         values=["[].Names"], lengths=[""], setup="c1 running, c2 exited"),
    dict(id="containers-list-filter-label",
         path="/containers/json?all=1&filters=" + q({"label": ["tier=web"]}),
         open=["", "[]"], values=["[].Names"], lengths=[""], setup="c1 labelled tier=web"),
    dict(id="containers-list-filter-status",
         path="/containers/json?all=1&filters=" + q({"status": {"exited": True}}),
         open=["", "[]"], values=["[].Names"], lengths=[""], setup="c2 exited"),
    dict(id="containers-list-filter-name",
         path="/containers/json?filters=" + q({"name": ["c2"]}),
         open=[""], lengths=[""], setup="c2 exited: not listed without all=1"),
    dict(id="container-inspect-running", path="/containers/c1/json", open=CONTAINER_OPEN,
         values=["Name", "Path", "Args", "State.Status", "State.Running", "State.ExitCode",
                 "Config.Labels", "Config.Image", "Config.Cmd", "HostConfig.NetworkMode",
                 "Mounts"],
         setup="c1 running"),
    dict(id="container-inspect-exited", path="/containers/c2/json", open=CONTAINER_OPEN,
         values=["Name", "State.Status", "State.Running", "State.ExitCode", "State.Pid",
                 "Config.Cmd", "Config.Labels"],
         setup="c2 exited (0)"),
    dict(id="container-top", path="/containers/c1/top", open=["Processes", "Titles"],
         values=["Titles"], lengths=["Processes"], setup="c1 running (one process)"),
    dict(id="container-changes", path="/containers/c1/changes", values=[""],
         setup="c1 running, its filesystem untouched"),
    dict(id="container-logs-running", path="/containers/c1/logs?stdout=1", kind="text",
         setup="c1 running, printed 'ready'"),
    dict(id="container-logs-exited", path="/containers/c2/logs?stdout=1&stderr=1", kind="text",
         setup="c2 exited, printed 'hi'"),
    dict(id="container-stats", path="/containers/c1/stats?stream=0", open=STATS_OPEN,
         values=["name", "pids_stats.current"], setup="c1 running"),
    dict(id="images-list", path="/images/json", open=["", "[]"],
         values=["[].RepoTags", "[].Containers", "[].ParentId"], lengths=[""],
         setup="bb imported, tagged bb:v1"),
    dict(id="image-inspect", path="/images/bb/json",
         open=["Config", "ContainerConfig", "GraphDriver", "RootFS", "Metadata"],
         values=["RepoTags", "Comment", "Os", "Architecture", "RootFS.Type"],
         setup="bb imported"),
    dict(id="image-history", path="/images/bb/history", open=["", "[]"],
         values=["[].Comment", "[].Tags"], lengths=[""], setup="bb imported"),
    dict(id="volumes-list", path="/volumes", open=["Volumes", "Volumes[]"],
         values=["Volumes[].Name", "Volumes[].Driver", "Volumes[].Scope", "Warnings"],
         lengths=["Volumes"], setup="v1"),
    dict(id="volume-inspect", path="/volumes/v1", values=["Name", "Driver", "Scope", "Labels", "Options"],
         setup="v1"),
    dict(id="networks-list", path="/networks", open=["", "[]"], lengths=[""],
         setup="n1, and the predefined networks"),
    dict(id="networks-list-filter-name", path="/networks?filters=" + q({"name": ["n1"]}),
         open=["", "[]", "[].IPAM", "[].IPAM.Config"],
         values=["[].Name", "[].Driver", "[].Scope", "[].Internal", "[].Attachable",
                 "[].EnableIPv6"],
         lengths=[""], setup="n1 (internal bridge)"),
    dict(id="network-inspect", path="/networks/{n1.Id}",
         open=["IPAM", "IPAM.Config", "IPAM.Config[]"],
         values=["Name", "Driver", "Scope", "Internal", "Containers", "Options", "IPAM.Driver"],
         setup="n1 (internal bridge), no container on it"),
    dict(id="system-df", path="/system/df",
         open=["Images", "Images[]", "Containers", "Containers[]", "Volumes", "Volumes[]",
               "Volumes[].UsageData"],
         values=["Images[].RepoTags", "Volumes[].Name", "BuildCache"],
         lengths=["Images", "Containers", "Volumes"], setup="the world"),
    dict(id="events", path="/events?since={since}&until={until}", kind="lines",
         setup="the world, built between since and until"),
    dict(id="events-filtered",
         path="/events?since={since}&until={until}&filters=" + q({"type": ["container"], "event": ["start"]}),
         kind="lines", setup="c1 and c2 started between since and until"),
    # Errors.
    dict(id="container-missing", path="/containers/nope/json", setup="no container nope"),
    dict(id="container-top-missing", path="/containers/nope/top", setup="no container nope"),
    dict(id="image-missing", path="/images/nope:1/json", setup="no image nope:1"),
    dict(id="image-history-missing", path="/images/nope:1/history", setup="no image nope:1"),
    dict(id="volume-missing", path="/volumes/nope", setup="no volume nope"),
    dict(id="network-missing", path="/networks/nope", setup="no network nope"),
    dict(id="page-missing", path="/no/such/thing", setup="none"),
    dict(id="containers-list-bad-filter",
         path="/containers/json?filters=" + q({"bogus": {"x": True}}), setup="none"),
    dict(id="containers-list-malformed-filter", path="/containers/json?filters=" + q([1]),
         setup="none"),
    dict(id="images-list-bad-filter", path="/images/json?filters=" + q({"bogus": {"x": True}}),
         setup="none"),
    dict(id="volumes-list-bad-filter", path="/volumes?filters=" + q({"bogus": {"x": True}}),
         setup="none"),
    dict(id="version-too-old", path="/v1.11/version", versions=[""], kind="text", setup="none"),
    dict(id="version-1.23", path="/v1.23/version", versions=[""],
         values=["ApiVersion"], open=["Platform", "Components", "Components[]"], setup="none"),
    dict(id="ping-1.44", path="/v1.44/_ping", versions=[""], setup="none"),
    dict(id="version-1.44", path="/v1.44/version", versions=[""], setup="none"),
    dict(id="containers-list-1.44", path="/v1.44/containers/json", versions=[""], setup="none"),
    dict(id="container-inspect-1.44", path="/v1.44/containers/c1/json", versions=[""],
         setup="c1 running"),
    dict(id="container-start-running", method="POST", path="/containers/c1/start", kind="none",
         setup="c1 running: nothing to do"),
    dict(id="container-stop-exited", method="POST", path="/containers/c2/stop", kind="none",
         setup="c2 exited: nothing to do"),
    dict(id="container-kill-exited", method="POST", path="/containers/c2/kill",
         setup="c2 exited: conflict"),
    dict(id="container-start-missing", method="POST", path="/containers/nope/start",
         setup="no container nope"),
    dict(id="container-create-empty", method="POST", path="/containers/create", body={},
         setup="none: nothing is created"),
    dict(id="container-create-missing-image", method="POST", path="/containers/create",
         body={"Image": "nope:1", "Cmd": ["true"]}, setup="no image nope:1: nothing is created"),
    dict(id="container-remove-running", method="DELETE", path="/containers/c1",
         setup="c1 running: conflict, nothing removed"),
    dict(id="container-remove-missing", method="DELETE", path="/containers/nope",
         setup="no container nope"),
    dict(id="image-remove-missing", method="DELETE", path="/images/nope:1", setup="no image nope:1"),
    dict(id="volume-remove-missing", method="DELETE", path="/volumes/nope", setup="no volume nope"),
    dict(id="network-remove-missing", method="DELETE", path="/networks/nope",
         setup="no network nope"),
]


def jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def child(path, key):
    return key if path == "" else f"{path}.{key}"


def shape(v, opened, path=""):
    """Flat path -> JSON type; opens the root and the paths in `opened`."""
    out = {path: jtype(v)}
    if path != "" and path not in opened:
        return out
    if isinstance(v, dict):
        for k, x in v.items():
            assert "." not in k and "[]" not in k, f"key {k!r} under {path!r} cannot be a path"
            out.update(shape(x, opened, child(path, k)))
    elif isinstance(v, list) and v:
        out.update(shape(v[0], opened, path + "[]"))
    return out


def at(v, path):
    """The value at a flat path (first elements for `[]`); KeyError if absent."""
    if path == "":
        return v
    i = 0
    cur = v
    while i < len(path):
        if path.startswith("[]", i):
            cur = cur[0]
            i += 2
            if path.startswith(".", i):
                i += 1
            continue
        j = i
        while j < len(path) and path[j] != "." and not path.startswith("[]", j):
            j += 1
        cur = cur[path[i:j]]
        i = j + 1 if path.startswith(".", j) else j
    return cur


def docker(args, check=True):
    bin_ = os.environ.get("DOCKER", "/usr/bin/docker")
    r = subprocess.run([bin_, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"docker {' '.join(args)}: {r.stderr}")
    return r.stdout.strip()


def build_world(tar):
    """The world, as the Rust test builds it with the berth CLI."""
    for args in (["rm", "-f", "c1", "c2"], ["volume", "rm", "v1"], ["network", "rm", "n1"],
                 ["rmi", "bb:v1", "bb"]):
        docker(args, check=False)
    since = time.time()
    time.sleep(1.1)  # `since` in whole seconds must not reach back to the cleanup
    docker(["import", tar, "bb"])
    docker(["run", "-d", "--network", "none", "--name", "c1", "--label", "tier=web", "bb",
            "sh", "-c", "echo ready; exec sleep 1000"])
    docker(["create", "--network", "none", "--name", "c2", "bb", "echo", "hi"])
    docker(["start", "c2"])
    docker(["wait", "c2"])
    docker(["volume", "create", "v1"])
    docker(["network", "create", "--internal", "n1"])
    docker(["tag", "bb", "bb:v1"])
    for _ in range(200):
        if "ready" in docker(["logs", "c1"]):
            break
        time.sleep(0.05)
    time.sleep(0.2)
    until = time.time()
    time.sleep(1.1)
    return {
        "{since}": f"{since:.9f}",
        "{until}": f"{until:.9f}",
        "{c1.Id}": docker(["inspect", "-f", "{{.Id}}", "c1"]),
        "{c2.Id}": docker(["inspect", "-f", "{{.Id}}", "c2"]),
        "{n1.Id}": docker(["network", "inspect", "-f", "{{.ID}}", "n1"]),
        "{bb.Id}": docker(["image", "inspect", "-f", "{{.Id}}", "bb"]),
    }


def fill(s, ph):
    for k, v in ph.items():
        s = s.replace(k, v)
    return s


def unfill(s, ph):
    # Longest first: an image ID without `sha256:` is a part of the one with it.
    for k, v in sorted(ph.items(), key=lambda kv: -len(kv[1])):
        if k in ("{since}", "{until}"):
            continue
        s = s.replace(v, k)
        if v.startswith("sha256:"):
            s = s.replace(v[7:], k + "#hex")
    return s


def capture(sock, req, version, ph):
    method = req.get("method", "GET")
    path = req["path"]
    full = ("/" + version if version else "") + fill(path, ph)
    body = req.get("body")
    conn = UnixConnection(sock)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, full, body=data, headers=headers)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    e = {
        "id": req["id"] + (f"@{version}" if version else ""),
        "method": method,
        "version": version,
        "path": path,
    }
    if body is not None:
        e["body"] = body
    e["setup"] = req["setup"]
    e["status"] = r.status
    e["content_type"] = r.getheader("Content-Type")
    e["api_version_header"] = r.getheader("Api-Version")
    kind = req.get("kind", "json")
    ctype = r.getheader("Content-Type") or ""
    text = raw.decode("utf-8", "replace")
    if r.status >= 400 and ctype.startswith("application/json"):
        e["message"] = unfill(json.loads(raw)["message"], ph)
        return e, None
    if r.status >= 400 or kind == "text":
        e["text"] = unfill(text, ph)
        return e, None
    if kind == "none":
        e["text"] = text
        return e, None
    if kind == "lines":
        lines = []
        for line in text.splitlines():
            if not line.strip():
                continue
            ev = json.loads(line)
            lines.append({
                "values": {k: ev[k] for k in ("Type", "Action") if k in ev},
                "shape": shape(ev, set(EVENT_OPEN)),
            })
        e["lines"] = lines
        return e, None
    v = json.loads(raw)
    opened = set(req.get("open", []))
    e["values"] = {p: json.loads(unfill(json.dumps(at(v, p)), ph)) for p in req.get("values", [])}
    if not e["values"]:
        del e["values"]
    lengths = {}
    for p in req.get("lengths", []):
        x = at(v, p)
        lengths[p] = len(x) if isinstance(x, list) else None
    if lengths:
        e["lengths"] = lengths
    return e, shape(v, opened)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: api-contract-capture.py SOCK BB_TAR OUT.json")
    sock, tar, out = sys.argv[1:]
    os.environ["DOCKER_HOST"] = "unix://" + sock
    old = {}
    old_optional = {}
    old_top = {}
    if os.path.exists(out):
        with open(out) as f:
            prev = json.load(f)
        old = {e["id"]: e for e in prev["entries"]}
        old_optional = prev.get("optional", {})
        old_top = prev
    ph = build_world(tar)
    engine = json.loads(unix_get(sock, "/version"))
    shapes = {}
    entries = []
    for req in REQUESTS:
        captured = [(v, *capture(sock, req, v, ph)) for v in req.get("versions", VERSIONS)]
        # A shape is written once: under the request's id as the newest
        # version prefix (v1.41) has it, under id@vX.Y where an older one
        # differs.
        base = next((sh for v, _, sh in captured if v == "v1.41"), None)
        if base is None:
            base = captured[-1][2]
        for version, e, sh in captured:
            if sh is not None:
                name = req["id"] if sh == base else f"{req['id']}@{version or 'none'}"
                shapes[name] = sh
                e["shape"] = name
            prev = old.get(e["id"], {})
            for k in ("optional", "berth"):
                if k in prev:
                    e[k] = prev[k]
            entries.append(e)
    doc = {
        "about": old_top.get("about", "See api-contract.md beside this file."),  # kept
        "captured": {
            "engine": f"dockerd {engine['Version']} (API {engine['ApiVersion']}, "
                      f"minimum {engine['MinAPIVersion']}), {engine['Os']}/{engine['Arch']}",
            "kernel": engine.get("KernelVersion", ""),
            "cgroup": "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1",
            "date": time.strftime("%Y-%m-%d"),
            "by": "scripts/api-contract-capture.py",
        },
        "world": [
            "import BB_TAR bb",
            "run -d --network none --name c1 --label tier=web bb sh -c 'echo ready; exec sleep 1000'",
            "create --network none --name c2 bb echo hi",
            "start c2",
            "wait c2",
            "volume create v1",
            "network create --internal n1",
            "tag bb bb:v1",
        ],
        "placeholders": {
            "{since}": "a time just before the world was built (seconds.nanoseconds)",
            "{until}": "a time just after it was built",
            "{c1.Id}": "c1's full ID",
            "{c2.Id}": "c2's full ID",
            "{n1.Id}": "n1's full ID",
            "{bb.Id}": "bb's image ID (sha256:…); {bb.Id}#hex: without the sha256: prefix",
        },
        "optional": old_optional,
        "cgroup_v1_only": old_top.get("cgroup_v1_only", {}),
        "shapes": shapes,
        "entries": entries,
    }
    with open(out + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(out + ".tmp", out)
    print(f"{len(entries)} entries, {len(shapes)} shapes -> {out}")


def unix_get(sock, path):
    conn = UnixConnection(sock)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return body


if __name__ == "__main__":
    main()
