//! `inspect` of containers and images: Docker's key tree, key order, null
//! and empty values, indentation, and template errors (issue 7, items 5, 6).
//!
//! The expected key trees below were taken from Docker 20.10 (dockerd
//! 20.10.24+dfsg1 on this machine, `--network none`, the busybox tarball of
//! scripts/mkbusybox.sh imported as `bb`): one line per key path, in
//! document order, with the JSON type of its value (`null`, `array(empty)`
//! and `object(empty)` kept apart); arrays of objects are walked as `[]`,
//! arrays of scalars are not. Values that differ between engines (IDs,
//! times, paths) are left out. `HostConfig.KernelMemory` and
//! `KernelMemoryTCP`, which 20.10 still sends, are left out as Docker 25+
//! leaves them out.

mod common;
use common::*;

use serde_json::Value;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(a) if a.is_empty() => "array(empty)",
        Value::Array(_) => "array",
        Value::Object(m) if m.is_empty() => "object(empty)",
        Value::Object(_) => "object",
    }
}

fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
    out.push(format!(
        "{} {}",
        if path.is_empty() { "." } else { path },
        kind(v)
    ));
    match v {
        Value::Object(m) => {
            for (k, e) in m {
                walk(e, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for e in a.iter().filter(|e| e.is_object()) {
                walk(e, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// The key tree of `v`, one `path type` line per key, in document order.
fn key_tree(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

fn expected(tree: &str) -> Vec<String> {
    tree.lines().map(str::to_string).collect()
}

/// Asserts that two key trees are equal, showing the lines that differ.
fn assert_same_tree(what: &str, got: &[String], want: &[String]) {
    if got != want {
        let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
        let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
        panic!(
            "{what}: key tree differs from Docker's\nmissing: {missing:#?}\nextra: {extra:#?}\ngot (in order): {got:#?}"
        );
    }
}

/// `docker image inspect bb` of the imported busybox.
const IMAGE_TREE: &str = "\
. object
.Id string
.RepoTags array
.RepoDigests array(empty)
.Parent string
.Comment string
.Created string
.Container string
.ContainerConfig object
.ContainerConfig.Hostname string
.ContainerConfig.Domainname string
.ContainerConfig.User string
.ContainerConfig.AttachStdin bool
.ContainerConfig.AttachStdout bool
.ContainerConfig.AttachStderr bool
.ContainerConfig.Tty bool
.ContainerConfig.OpenStdin bool
.ContainerConfig.StdinOnce bool
.ContainerConfig.Env null
.ContainerConfig.Cmd null
.ContainerConfig.Image string
.ContainerConfig.Volumes null
.ContainerConfig.WorkingDir string
.ContainerConfig.Entrypoint null
.ContainerConfig.OnBuild null
.ContainerConfig.Labels null
.DockerVersion string
.Author string
.Config object
.Config.Hostname string
.Config.Domainname string
.Config.User string
.Config.AttachStdin bool
.Config.AttachStdout bool
.Config.AttachStderr bool
.Config.Tty bool
.Config.OpenStdin bool
.Config.StdinOnce bool
.Config.Env null
.Config.Cmd null
.Config.Image string
.Config.Volumes null
.Config.WorkingDir string
.Config.Entrypoint null
.Config.OnBuild null
.Config.Labels null
.Architecture string
.Os string
.Size number
.VirtualSize number
.GraphDriver object
.GraphDriver.Data object
.GraphDriver.Data.MergedDir string
.GraphDriver.Data.UpperDir string
.GraphDriver.Data.WorkDir string
.GraphDriver.Name string
.RootFS object
.RootFS.Type string
.RootFS.Layers array
.Metadata object
.Metadata.LastTagTime string";

/// `docker create --network none --name c1 bb sleep 1; docker inspect c1`;
/// the same after `start` and `wait`.
const CONTAINER_TREE: &str = "\
. object
.Id string
.Created string
.Path string
.Args array
.State object
.State.Status string
.State.Running bool
.State.Paused bool
.State.Restarting bool
.State.OOMKilled bool
.State.Dead bool
.State.Pid number
.State.ExitCode number
.State.Error string
.State.StartedAt string
.State.FinishedAt string
.Image string
.ResolvConfPath string
.HostnamePath string
.HostsPath string
.LogPath string
.Name string
.RestartCount number
.Driver string
.Platform string
.MountLabel string
.ProcessLabel string
.AppArmorProfile string
.ExecIDs null
.HostConfig object
.HostConfig.Binds null
.HostConfig.ContainerIDFile string
.HostConfig.LogConfig object
.HostConfig.LogConfig.Type string
.HostConfig.LogConfig.Config object(empty)
.HostConfig.NetworkMode string
.HostConfig.PortBindings object(empty)
.HostConfig.RestartPolicy object
.HostConfig.RestartPolicy.Name string
.HostConfig.RestartPolicy.MaximumRetryCount number
.HostConfig.AutoRemove bool
.HostConfig.VolumeDriver string
.HostConfig.VolumesFrom null
.HostConfig.CapAdd null
.HostConfig.CapDrop null
.HostConfig.CgroupnsMode string
.HostConfig.Dns array(empty)
.HostConfig.DnsOptions array(empty)
.HostConfig.DnsSearch array(empty)
.HostConfig.ExtraHosts null
.HostConfig.GroupAdd null
.HostConfig.IpcMode string
.HostConfig.Cgroup string
.HostConfig.Links null
.HostConfig.OomScoreAdj number
.HostConfig.PidMode string
.HostConfig.Privileged bool
.HostConfig.PublishAllPorts bool
.HostConfig.ReadonlyRootfs bool
.HostConfig.SecurityOpt null
.HostConfig.UTSMode string
.HostConfig.UsernsMode string
.HostConfig.ShmSize number
.HostConfig.Runtime string
.HostConfig.ConsoleSize array
.HostConfig.Isolation string
.HostConfig.CpuShares number
.HostConfig.Memory number
.HostConfig.NanoCpus number
.HostConfig.CgroupParent string
.HostConfig.BlkioWeight number
.HostConfig.BlkioWeightDevice array(empty)
.HostConfig.BlkioDeviceReadBps null
.HostConfig.BlkioDeviceWriteBps null
.HostConfig.BlkioDeviceReadIOps null
.HostConfig.BlkioDeviceWriteIOps null
.HostConfig.CpuPeriod number
.HostConfig.CpuQuota number
.HostConfig.CpuRealtimePeriod number
.HostConfig.CpuRealtimeRuntime number
.HostConfig.CpusetCpus string
.HostConfig.CpusetMems string
.HostConfig.Devices array(empty)
.HostConfig.DeviceCgroupRules null
.HostConfig.DeviceRequests null
.HostConfig.MemoryReservation number
.HostConfig.MemorySwap number
.HostConfig.MemorySwappiness null
.HostConfig.OomKillDisable bool
.HostConfig.PidsLimit null
.HostConfig.Ulimits null
.HostConfig.CpuCount number
.HostConfig.CpuPercent number
.HostConfig.IOMaximumIOps number
.HostConfig.IOMaximumBandwidth number
.HostConfig.MaskedPaths array
.HostConfig.ReadonlyPaths array
.GraphDriver object
.GraphDriver.Data object
.GraphDriver.Data.LowerDir string
.GraphDriver.Data.MergedDir string
.GraphDriver.Data.UpperDir string
.GraphDriver.Data.WorkDir string
.GraphDriver.Name string
.Mounts array(empty)
.Config object
.Config.Hostname string
.Config.Domainname string
.Config.User string
.Config.AttachStdin bool
.Config.AttachStdout bool
.Config.AttachStderr bool
.Config.Tty bool
.Config.OpenStdin bool
.Config.StdinOnce bool
.Config.Env null
.Config.Cmd array
.Config.Image string
.Config.Volumes null
.Config.WorkingDir string
.Config.Entrypoint null
.Config.OnBuild null
.Config.Labels object(empty)
.NetworkSettings object
.NetworkSettings.Bridge string
.NetworkSettings.SandboxID string
.NetworkSettings.HairpinMode bool
.NetworkSettings.LinkLocalIPv6Address string
.NetworkSettings.LinkLocalIPv6PrefixLen number
.NetworkSettings.Ports object(empty)
.NetworkSettings.SandboxKey string
.NetworkSettings.SecondaryIPAddresses null
.NetworkSettings.SecondaryIPv6Addresses null
.NetworkSettings.EndpointID string
.NetworkSettings.Gateway string
.NetworkSettings.GlobalIPv6Address string
.NetworkSettings.GlobalIPv6PrefixLen number
.NetworkSettings.IPAddress string
.NetworkSettings.IPPrefixLen number
.NetworkSettings.IPv6Gateway string
.NetworkSettings.MacAddress string
.NetworkSettings.Networks object
.NetworkSettings.Networks.none object
.NetworkSettings.Networks.none.IPAMConfig null
.NetworkSettings.Networks.none.Links null
.NetworkSettings.Networks.none.Aliases null
.NetworkSettings.Networks.none.NetworkID string
.NetworkSettings.Networks.none.EndpointID string
.NetworkSettings.Networks.none.Gateway string
.NetworkSettings.Networks.none.IPAddress string
.NetworkSettings.Networks.none.IPPrefixLen number
.NetworkSettings.Networks.none.IPv6Gateway string
.NetworkSettings.Networks.none.GlobalIPv6Address string
.NetworkSettings.Networks.none.GlobalIPv6PrefixLen number
.NetworkSettings.Networks.none.MacAddress string
.NetworkSettings.Networks.none.DriverOpts null";

/// `docker create --network none -v HOSTDIR:/h -v namedv:/nv -v /anon
/// --tmpfs /t --tmpfs /t2:size=1m -e A=1 -e B -l x=y --restart on-failure:2
/// --init -u 1000 -w /wd bb sleep 100` (the -v mounts in that order).
const OPTIONS_TREE: &str = "\
. object
.Id string
.Created string
.Path string
.Args array
.State object
.State.Status string
.State.Running bool
.State.Paused bool
.State.Restarting bool
.State.OOMKilled bool
.State.Dead bool
.State.Pid number
.State.ExitCode number
.State.Error string
.State.StartedAt string
.State.FinishedAt string
.Image string
.ResolvConfPath string
.HostnamePath string
.HostsPath string
.LogPath string
.Name string
.RestartCount number
.Driver string
.Platform string
.MountLabel string
.ProcessLabel string
.AppArmorProfile string
.ExecIDs null
.HostConfig object
.HostConfig.Binds array
.HostConfig.ContainerIDFile string
.HostConfig.LogConfig object
.HostConfig.LogConfig.Type string
.HostConfig.LogConfig.Config object(empty)
.HostConfig.NetworkMode string
.HostConfig.PortBindings object(empty)
.HostConfig.RestartPolicy object
.HostConfig.RestartPolicy.Name string
.HostConfig.RestartPolicy.MaximumRetryCount number
.HostConfig.AutoRemove bool
.HostConfig.VolumeDriver string
.HostConfig.VolumesFrom null
.HostConfig.CapAdd null
.HostConfig.CapDrop null
.HostConfig.CgroupnsMode string
.HostConfig.Dns array(empty)
.HostConfig.DnsOptions array(empty)
.HostConfig.DnsSearch array(empty)
.HostConfig.ExtraHosts null
.HostConfig.GroupAdd null
.HostConfig.IpcMode string
.HostConfig.Cgroup string
.HostConfig.Links null
.HostConfig.OomScoreAdj number
.HostConfig.PidMode string
.HostConfig.Privileged bool
.HostConfig.PublishAllPorts bool
.HostConfig.ReadonlyRootfs bool
.HostConfig.SecurityOpt null
.HostConfig.Tmpfs object
.HostConfig.Tmpfs./t string
.HostConfig.Tmpfs./t2 string
.HostConfig.UTSMode string
.HostConfig.UsernsMode string
.HostConfig.ShmSize number
.HostConfig.Runtime string
.HostConfig.ConsoleSize array
.HostConfig.Isolation string
.HostConfig.CpuShares number
.HostConfig.Memory number
.HostConfig.NanoCpus number
.HostConfig.CgroupParent string
.HostConfig.BlkioWeight number
.HostConfig.BlkioWeightDevice array(empty)
.HostConfig.BlkioDeviceReadBps null
.HostConfig.BlkioDeviceWriteBps null
.HostConfig.BlkioDeviceReadIOps null
.HostConfig.BlkioDeviceWriteIOps null
.HostConfig.CpuPeriod number
.HostConfig.CpuQuota number
.HostConfig.CpuRealtimePeriod number
.HostConfig.CpuRealtimeRuntime number
.HostConfig.CpusetCpus string
.HostConfig.CpusetMems string
.HostConfig.Devices array(empty)
.HostConfig.DeviceCgroupRules null
.HostConfig.DeviceRequests null
.HostConfig.MemoryReservation number
.HostConfig.MemorySwap number
.HostConfig.MemorySwappiness null
.HostConfig.OomKillDisable bool
.HostConfig.PidsLimit null
.HostConfig.Ulimits null
.HostConfig.CpuCount number
.HostConfig.CpuPercent number
.HostConfig.IOMaximumIOps number
.HostConfig.IOMaximumBandwidth number
.HostConfig.MaskedPaths array
.HostConfig.ReadonlyPaths array
.HostConfig.Init bool
.GraphDriver object
.GraphDriver.Data object
.GraphDriver.Data.LowerDir string
.GraphDriver.Data.MergedDir string
.GraphDriver.Data.UpperDir string
.GraphDriver.Data.WorkDir string
.GraphDriver.Name string
.Mounts array
.Mounts[] object
.Mounts[].Type string
.Mounts[].Source string
.Mounts[].Destination string
.Mounts[].Mode string
.Mounts[].RW bool
.Mounts[].Propagation string
.Mounts[] object
.Mounts[].Type string
.Mounts[].Name string
.Mounts[].Source string
.Mounts[].Destination string
.Mounts[].Driver string
.Mounts[].Mode string
.Mounts[].RW bool
.Mounts[].Propagation string
.Mounts[] object
.Mounts[].Type string
.Mounts[].Name string
.Mounts[].Source string
.Mounts[].Destination string
.Mounts[].Driver string
.Mounts[].Mode string
.Mounts[].RW bool
.Mounts[].Propagation string
.Config object
.Config.Hostname string
.Config.Domainname string
.Config.User string
.Config.AttachStdin bool
.Config.AttachStdout bool
.Config.AttachStderr bool
.Config.Tty bool
.Config.OpenStdin bool
.Config.StdinOnce bool
.Config.Env array
.Config.Cmd array
.Config.Image string
.Config.Volumes object
.Config.Volumes./anon object(empty)
.Config.WorkingDir string
.Config.Entrypoint null
.Config.OnBuild null
.Config.Labels object
.Config.Labels.x string
.NetworkSettings object
.NetworkSettings.Bridge string
.NetworkSettings.SandboxID string
.NetworkSettings.HairpinMode bool
.NetworkSettings.LinkLocalIPv6Address string
.NetworkSettings.LinkLocalIPv6PrefixLen number
.NetworkSettings.Ports object(empty)
.NetworkSettings.SandboxKey string
.NetworkSettings.SecondaryIPAddresses null
.NetworkSettings.SecondaryIPv6Addresses null
.NetworkSettings.EndpointID string
.NetworkSettings.Gateway string
.NetworkSettings.GlobalIPv6Address string
.NetworkSettings.GlobalIPv6PrefixLen number
.NetworkSettings.IPAddress string
.NetworkSettings.IPPrefixLen number
.NetworkSettings.IPv6Gateway string
.NetworkSettings.MacAddress string
.NetworkSettings.Networks object
.NetworkSettings.Networks.none object
.NetworkSettings.Networks.none.IPAMConfig null
.NetworkSettings.Networks.none.Links null
.NetworkSettings.Networks.none.Aliases null
.NetworkSettings.Networks.none.NetworkID string
.NetworkSettings.Networks.none.EndpointID string
.NetworkSettings.Networks.none.Gateway string
.NetworkSettings.Networks.none.IPAddress string
.NetworkSettings.Networks.none.IPPrefixLen number
.NetworkSettings.Networks.none.IPv6Gateway string
.NetworkSettings.Networks.none.GlobalIPv6Address string
.NetworkSettings.Networks.none.GlobalIPv6PrefixLen number
.NetworkSettings.Networks.none.MacAddress string
.NetworkSettings.Networks.none.DriverOpts null";

#[test]
fn image_inspect_has_dockers_key_tree() {
    let env = TestEnv::with_busybox();
    let v = env.inspect_image(BB);
    assert_same_tree("image inspect", &key_tree(&v), &expected(IMAGE_TREE));
    // A config without Env is null there, and `len` of it is 0, as Docker's.
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{len .Config.Env}}", BB]),
        "0\n"
    );
    assert_eq!(v["Config"]["Env"], Value::Null);
    assert_eq!(v["Config"]["Labels"], Value::Null);
    assert_eq!(v["ContainerConfig"]["Cmd"], Value::Null);
    assert_eq!(v["RepoDigests"], serde_json::json!([]));
}

#[test]
fn container_inspect_has_dockers_key_tree() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "c1",
        BB,
        "sleep",
        "1",
    ]);
    let v = env.inspect("c1");
    assert_same_tree("created", &key_tree(&v), &expected(CONTAINER_TREE));
    // Null where Docker has null, empty where Docker has empty.
    let hc = &v["HostConfig"];
    assert_eq!(hc["Binds"], Value::Null, "{hc}");
    assert!(hc.get("Mounts").is_none(), "{hc}");
    assert!(hc.get("Tmpfs").is_none(), "{hc}");
    assert!(hc.get("Init").is_none(), "{hc}");
    assert_eq!(hc["Dns"], serde_json::json!([]), "{hc}");
    assert_eq!(hc["PortBindings"], serde_json::json!({}), "{hc}");
    assert_eq!(v["ExecIDs"], Value::Null);
    assert_eq!(v["Mounts"], serde_json::json!([]));
    assert_eq!(v["Config"]["Env"], Value::Null, "{v}");
    assert_eq!(v["Config"]["Volumes"], Value::Null, "{v}");
    assert_eq!(v["Config"]["Labels"], serde_json::json!({}), "{v}");
    assert_eq!(inspect_f(&env, "{{len .Config.Env}}", "c1"), "0");
    // `create` records the streams `run` would attach, as Docker's.
    let attach = "{{.Config.AttachStdin}} {{.Config.AttachStdout}} {{.Config.AttachStderr}} \
                  {{.Config.OpenStdin}} {{.Config.StdinOnce}}";
    assert_eq!(inspect_f(&env, attach, "c1"), "false true true false false");
    env.ok(&[
        "create",
        "-i",
        "--network",
        "none",
        "--name",
        "ci",
        BB,
        "sh",
    ]);
    assert_eq!(inspect_f(&env, attach, "ci"), "true true true true true");

    env.ok(&["start", "c1"]);
    assert_eq!(env.ok(&["wait", "c1"]), "0\n");
    let v = env.inspect("c1");
    assert_same_tree("exited", &key_tree(&v), &expected(CONTAINER_TREE));

    env.ok(&[
        "create",
        "--network",
        "host",
        "--name",
        "c3",
        BB,
        "sleep",
        "1",
    ]);
    let want = CONTAINER_TREE.replace("Networks.none", "Networks.host");
    assert_same_tree(
        "host network",
        &key_tree(&env.inspect("c3")),
        &expected(&want),
    );
}

#[test]
fn container_inspect_with_options_has_dockers_key_tree() {
    let env = TestEnv::with_busybox();
    let host = tempfile::tempdir().unwrap();
    let bind = format!("{}:/h", host.path().display());
    env.ok(&["volume", "create", "namedv"]);
    env.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "c2",
        "-v",
        &bind,
        "-v",
        "namedv:/nv",
        "-v",
        "/anon",
        "--tmpfs",
        "/t",
        "--tmpfs",
        "/t2:size=1m",
        "-e",
        "A=1",
        "-e",
        "B",
        "-l",
        "x=y",
        "--restart",
        "on-failure:2",
        "--init",
        "-u",
        "1000",
        "-w",
        "/wd",
        BB,
        "sleep",
        "100",
    ]);
    let v = env.inspect("c2");
    assert_same_tree("options", &key_tree(&v), &expected(OPTIONS_TREE));
    let hc = &v["HostConfig"];
    // Binds holds the -v binds and named volumes; the anonymous volume is
    // in Config.Volumes.
    assert_eq!(hc["Binds"], serde_json::json!([bind, "namedv:/nv"]), "{hc}");
    assert_eq!(
        v["Config"]["Volumes"],
        serde_json::json!({"/anon": {}}),
        "{v}"
    );
    assert_eq!(
        hc["Tmpfs"],
        serde_json::json!({"/t": "", "/t2": "size=1m"}),
        "{hc}"
    );
    assert_eq!(hc["Init"], true, "{hc}");
    // Only the user's and the image's variables.
    assert_eq!(v["Config"]["Env"], serde_json::json!(["A=1", "B"]), "{v}");
    let modes: Vec<&Value> = v["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["Mode"])
        .collect();
    assert_eq!(modes, ["", "z", ""], "{v}");
}

#[test]
fn the_process_still_gets_path_and_hostname() {
    let env = TestEnv::with_busybox();
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--hostname",
        "hh",
        BB,
        "sh",
        "-c",
        "echo $PATH $HOSTNAME",
    ]);
    assert_eq!(
        out,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin hh\n"
    );
}

#[test]
fn inspect_json_is_indented_with_four_spaces_in_dockers_order() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--network", "none", "--name", "c1", BB, "true"]);
    let out = env.ok(&["inspect", "c1"]);
    assert!(out.starts_with("[\n    {\n        \"Id\": \""), "{out}");
    let img = env.ok(&["image", "inspect", BB]);
    assert!(
        img.starts_with("[\n    {\n        \"Id\": \"sha256:"),
        "{img}"
    );
}

#[test]
fn a_field_the_object_lacks_is_a_template_error() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--network", "none", "--name", "c1", BB, "true"]);
    let (out, err) = env.fails(&["inspect", "-f", "{{.Bogus}}", "c1"], 1);
    assert_eq!(out, "\n");
    assert_eq!(
        err,
        "template parsing error: template: :1:2: executing \"\" at <.Bogus>: map has no entry for key \"Bogus\"\n"
    );
    let (_, err) = env.fails(&["image", "inspect", "-f", "{{.Config.Bogus}}", BB], 1);
    assert!(
        err.contains("at <.Config.Bogus>: map has no entry for key \"Bogus\""),
        "{err}"
    );
    // The other objects are printed still.
    let (out, err) = env.fails(&["inspect", "-f", "{{.Name}}", "c1", BB], 1);
    assert_eq!(out, "/c1\n");
    assert!(err.contains("map has no entry for key \"Name\""), "{err}");
    // A missing key of a data map is no error, as with Docker's typed
    // structs; nor is a field Docker leaves out of the JSON when empty.
    assert_eq!(
        inspect_f(&env, "{{.Config.Labels.nope}}", "c1"),
        "<no value>"
    );
    env.ok(&["inspect", "-f", "{{.HostConfig.Init}}", "c1"]);
    let bind = format!("{}:/h", env.root.path().display());
    env.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "c4",
        "-v",
        &bind,
        BB,
        "true",
    ]);
    env.ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "c4"]);
}

#[test]
fn nil_fields_print_as_dockers_typed_structs() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--network", "none", "--name", "c1", BB, "true"]);
    // What Docker 20.10 printed here for each template on such a container.
    for (template, docker) in [
        ("{{.Config.Env}}", "[]"),
        ("{{json .Config.Env}}", "null"),
        ("{{.HostConfig.Binds}}", "[]"),
        ("{{len .HostConfig.Binds}}", "0"),
        ("{{.Config.Volumes}}", "map[]"),
        ("{{.Config.Labels}}", "map[]"),
        ("{{.HostConfig.CapAdd}}", "[]"),
        ("{{.ExecIDs}}", "[]"),
        ("{{.HostConfig.MemorySwappiness}}", "<nil>"),
        ("{{.HostConfig.Tmpfs}}", "map[]"),
        ("{{.HostConfig.Init}}", "<nil>"),
        ("{{.HostConfig.Mounts}}", "[]"),
        ("{{.Config.Entrypoint}}", "[]"),
        ("{{.Config.StopSignal}}", ""),
        ("{{.State.Health}}", "<nil>"),
        ("{{.NetworkSettings.Networks.none.Aliases}}", "[]"),
    ] {
        assert_eq!(inspect_f(&env, template, "c1"), docker, "{template}");
    }
    for (template, docker) in [
        ("{{.Config.Env}}", "[]"),
        ("{{.ContainerConfig.Cmd}}", "[]"),
        ("{{.Config.Labels}}", "map[]"),
    ] {
        let out = env.ok(&["image", "inspect", "-f", template, BB]);
        assert_eq!(out.trim_end(), docker, "{template}");
    }
}

#[test]
fn config_env_is_the_users_then_the_images_as_dockers() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--network", "none", "--name", "base", BB, "true"]);
    env.ok(&[
        "commit", "-c", "ENV P1=a", "-c", "ENV P2=b", "base", "bbenv",
    ]);
    env.ok(&[
        "create",
        "--network",
        "none",
        "-e",
        "A=1",
        "-e",
        "P2=x",
        "--name",
        "ce",
        "bbenv",
        "sh",
    ]);
    // Docker 20.10 recorded ["A=1","P2=x","P1=a"] for the same image and flags.
    assert_eq!(
        inspect_f(&env, "{{json .Config.Env}}", "ce"),
        r#"["A=1","P2=x","P1=a"]"#
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "A=1",
        "-e",
        "P2=x",
        "bbenv",
        "sh",
        "-c",
        "echo $A $P1 $P2",
    ]);
    assert_eq!(out, "1 a x\n");
}

/// The bytes of the busybox tarball as Docker counts a layer: regular files'
/// content (each hard link once) plus each symlink's target length.
fn busybox_layer_size() -> u64 {
    let out = std::process::Command::new("tar")
        .arg("tvf")
        .arg(busybox_tar())
        .output()
        .unwrap_or_else(|e| panic!("tar tvf: {e}"));
    let mut size = 0;
    for line in text(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match line.chars().next() {
            Some('-') => {
                size += f[2]
                    .parse::<u64>()
                    .unwrap_or_else(|e| panic!("{line}: {e}"))
            }
            Some('l') => size += line.rsplit(" -> ").next().map_or(0, str::len) as u64,
            _ => {}
        }
    }
    size
}

/// `inspect -s`: Docker's `SizeRw` (regular files and symlinks of the
/// writable layer, a hard-linked file once, directories and whiteouts 0) and
/// `SizeRootFs` (that plus the image's size), after `GraphDriver`; without
/// `-s` neither key is there.
#[test]
fn inspect_size_shows_size_rw_and_size_root_fs() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "--name",
        "sz",
        BB,
        "sh",
        "-c",
        "head -c 12345 /dev/zero > /f; mkdir /d; echo hi > /d/g; ln /f /d/hard; ln -s /f /sl; rm /bin/ls",
    ]);
    env.ok(&["create", "--name", "sz0", BB, "true"]);
    // `--type image`: a container whose ID happens to start with "bb"
    // would be found first otherwise (as Docker's inspect does).
    let image: u64 = env
        .ok(&["inspect", "--type", "image", "-f", "{{.Size}}", BB])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(image, busybox_layer_size());
    let plain = env.inspect("sz");
    assert!(plain.get("SizeRw").is_none() && plain.get("SizeRootFs").is_none());
    assert_eq!(inspect_f(&env, "{{.SizeRw}}", "sz"), "<nil>");

    let v: Value = serde_json::from_str(&env.ok(&["inspect", "-s", "sz"])).unwrap();
    let keys: Vec<&str> = v[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let at = keys.iter().position(|k| *k == "GraphDriver").unwrap();
    assert_eq!(keys[at + 1..at + 4], ["SizeRw", "SizeRootFs", "Mounts"]);
    assert_eq!(v[0]["SizeRw"], 12345 + 3 + 2);
    assert_eq!(v[0]["SizeRootFs"], 12350 + image);
    assert_eq!(
        env.ok(&[
            "container",
            "inspect",
            "--size",
            "-f",
            "{{.SizeRw}} {{.SizeRootFs}}",
            "sz0"
        ]),
        format!("0 {image}\n")
    );
    let (_, e) = env.fails(&["image", "inspect", "-s", BB], 125);
    assert!(e.contains("unknown shorthand flag: 's' in -s"), "{e}");
}
