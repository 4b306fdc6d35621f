//! Networks as objects (issue 10): `network create/ls/inspect/rm/prune/
//! connect/disconnect` and `create --network`. These commands make no
//! kernel object (no bridge, interface, route or firewall rule), so they run
//! in the host's namespaces. The strings asserted were checked against
//! dockerd 20.10.24 (a private daemon in its own network namespace) and the
//! docker 28.2 CLI; berth prints `Error: ` where the docker CLI prints
//! `Error response from daemon: `.
mod common;

use std::path::Path;

use common::*;

/// `berth ARGS` with the config file `config`.
fn with_config(env: &TestEnv, config: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = env.berth(args);
    cmd.env("BERTH_CONFIG", config);
    output_with_timeout(cmd, COMMAND_TIMEOUT)
}

/// `network inspect -f TEMPLATE NAME`, trimmed.
fn net_f(env: &TestEnv, template: &str, name: &str) -> String {
    env.ok(&["network", "inspect", "-f", template, name])
        .trim()
        .to_string()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn predefined_networks_are_listed_sorted_by_name() {
    let env = TestEnv::new();
    let out = env.ok(&["network", "ls"]);
    let rows = lines(&out);
    assert_eq!(rows[0], "NETWORK ID     NAME      DRIVER    SCOPE", "{out}");
    assert_eq!(rows.len(), 4, "{out}");
    for (row, (name, driver)) in
        rows[1..]
            .iter()
            .zip([("bridge", "bridge"), ("host", "host"), ("none", "null")])
    {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[0].len(), 12, "{row}");
        assert_eq!(&cols[1..], &[name, driver, "local"], "{row}");
    }
    // Made once: the same IDs on every call.
    assert_eq!(env.ok(&["network", "ls"]), out);
    let full = env.ok(&["network", "ls", "-q", "--no-trunc"]);
    assert!(full.lines().all(is_full_id), "{full}");
    let bridge = env.inspect_args_network("bridge");
    assert_eq!(bridge["Driver"], "bridge");
    assert_eq!(bridge["Scope"], "local");
    assert_eq!(bridge["IPAM"]["Options"], serde_json::Value::Null);
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.name"],
        "berth0"
    );
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.default_bridge"],
        "true"
    );
    // 172.17.0.0/16 unless a host route overlaps it.
    let subnet = bridge["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    // (Any route into 172.0.0.0/8 may overlap: `/proc/net/route` prints
    // the address's bytes reversed, so its first byte ends the hex.)
    let route_in_172 = routes.lines().skip(1).any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|d| d.ends_with("AC"))
    });
    if !route_in_172 {
        assert_eq!(subnet, "172.17.0.0/16");
        assert_eq!(bridge["IPAM"]["Config"][0]["Gateway"], "172.17.0.1");
    }
    let keys: Vec<&str> = bridge
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "Name",
            "Id",
            "Created",
            "Scope",
            "Driver",
            "EnableIPv6",
            "IPAM",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigFrom",
            "ConfigOnly",
            "Containers",
            "Options",
            "Labels"
        ]
    );
    assert_eq!(net_f(&env, "{{.Driver}}", "host"), "host");
    assert_eq!(net_f(&env, "{{.Driver}}", "none"), "null");
    assert_eq!(net_f(&env, "{{json .IPAM.Config}}", "none"), "[]");

    // The predefined ones cannot go.
    let (_, err) = env.fails(&["network", "rm", "bridge"], 1);
    assert_eq!(
        err,
        "Error: bridge is a pre-defined network and cannot be removed\n"
    );
    let (_, err) = env.fails(&["network", "rm", "host", "none"], 1);
    assert_eq!(
        err,
        "Error: host is a pre-defined network and cannot be removed\n\
         Error: none is a pre-defined network and cannot be removed\n"
    );
}

trait InspectNetwork {
    fn inspect_args_network(&self, name: &str) -> serde_json::Value;
}

impl InspectNetwork for TestEnv {
    fn inspect_args_network(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["network", "inspect", name]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
        v[0].clone()
    }
}

#[test]
fn create_checks_as_docker() {
    let env = TestEnv::new();
    let id = env.ok(&["network", "create", "n1"]);
    assert!(is_full_id(id.trim()), "{id}");
    let n1 = env.inspect_args_network("n1");
    assert_eq!(n1["Id"], id.trim());
    assert_eq!(n1["IPAM"]["Driver"], "default");
    assert_eq!(n1["IPAM"]["Options"], serde_json::json!({}));
    assert_eq!(n1["Options"], serde_json::json!({}));
    assert_eq!(n1["Labels"], serde_json::json!({}));
    assert_eq!(n1["Containers"], serde_json::json!({}));
    // A subnet from the pools, not the default bridge's; its first host
    // is the gateway.
    let sub = n1["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_default();
    assert_ne!(
        sub,
        net_f(&env, "{{(index .IPAM.Config 0).Subnet}}", "bridge")
    );
    assert!(sub.ends_with("/16") || sub.ends_with("/20"), "{sub}");
    let gw = n1["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap_or_default();
    assert!(gw.ends_with(".1"), "{gw}");

    let (_, err) = env.fails(&["network", "create", "n1"], 1);
    assert_eq!(err, "Error: network with name n1 already exists\n");
    for name in ["bridge", "host", "none", "default"] {
        let (_, err) = env.fails(&["network", "create", name], 1);
        assert_eq!(
            err,
            format!("Error: operation is not permitted on predefined {name} network\n")
        );
    }

    // A subnet as given (Docker keeps the host bits in inspect) and no
    // gateway recorded when none was given.
    env.ok(&["network", "create", "--subnet", "10.1.2.3/16", "n2"]);
    assert_eq!(
        net_f(&env, "{{json .IPAM.Config}}", "n2"),
        r#"[{"Subnet":"10.1.2.3/16"}]"#
    );
    let (_, err) = env.fails(&["network", "create", "--subnet", "10.1.0.0/24", "n3"], 1);
    assert_eq!(
        err,
        "Error: Pool overlaps with other one on this address space\n"
    );
    for (args, msg) in [
        (
            &["--subnet", "10.5.0.0/24", "--gateway", "10.6.0.1"][..],
            "no matching subnet for gateway 10.6.0.1",
        ),
        (
            &["--subnet", "10.5.0.0/24", "--ip-range", "10.6.0.0/25"][..],
            "no matching subnet for range 10.6.0.0/25",
        ),
        (
            &["--gateway", "10.0.0.1"][..],
            "every ip-range or gateway must have a corresponding subnet",
        ),
        (
            &[
                "--subnet",
                "10.40.0.0/16",
                "--ip-range",
                "10.40.1.0/24",
                "--ip-range",
                "10.40.2.0/24",
            ][..],
            "every ip-range or gateway must have a corresponding subnet",
        ),
        (
            &["--subnet", "10.50.0.0/16", "--ip-range", "10.50.0.0/33"][..],
            "invalid CIDR address: 10.50.0.0/33",
        ),
        (
            &["--subnet", "10.51.0.0/16", "--gateway", "foo"][..],
            "no matching subnet for gateway foo",
        ),
        (
            &["--subnet", "foo"][..],
            "Invalid subnet foo : invalid CIDR address: foo",
        ),
        (
            &["--subnet", "10.0.0.0/33"][..],
            "Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33",
        ),
        (
            &["--subnet", "10.0.0.1"][..],
            "Invalid subnet 10.0.0.1 : invalid CIDR address: 10.0.0.1",
        ),
        (
            &["--subnet", "10.31.0.0/16", "--gateway", "10.31.0.0"][..],
            "failed to allocate gateway (10.31.0.0): Address already in use",
        ),
        (
            &["--subnet", "10.20.0.0/24", "--subnet", "10.21.0.0/24"][..],
            "bridge driver doesn't support multiple subnets",
        ),
        (
            &["--subnet", "fd00::/129"][..],
            "Invalid subnet fd00::/129 : invalid CIDR address: fd00::/129",
        ),
        (
            &["--ipv6"][..],
            "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network",
        ),
        (&["-d", "foo"][..], "plugin \"foo\" not found"),
        (
            &["-d", "host"][..],
            "only one instance of \"host\" network is allowed",
        ),
        (
            &["-d", "null"][..],
            "only one instance of \"null\" network is allowed",
        ),
        (
            &["-d", "overlay"][..],
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
        ),
        (&["--ipam-driver", "foo"][..], "plugin \"foo\" not found"),
    ] {
        let mut a = vec!["network", "create"];
        a.extend_from_slice(args);
        a.push("bad");
        let (_, err) = env.fails(&a, 1);
        assert_eq!(err, format!("Error: {msg}\n"), "{args:?}");
    }
    // (Names only: "bad" is hex, an ID may hold it.)
    assert!(!env
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|n| n == "bad"));

    // Everything Docker records, in its shape.
    env.ok(&[
        "network",
        "create",
        "--subnet",
        "10.30.0.0/16",
        "--ip-range",
        "10.30.1.0/24",
        "--gateway",
        "10.30.0.254",
        "--internal",
        "--attachable",
        "--label",
        "a=b",
        "--label",
        "c",
        "-o",
        "com.docker.network.bridge.name=mybr",
        "-o",
        "foo=bar",
        "--ipam-opt",
        "x=y",
        "n13",
    ]);
    let n = env.inspect_args_network("n13");
    assert_eq!(
        n["IPAM"],
        serde_json::json!({
            "Driver": "default",
            "Options": {"x": "y"},
            "Config": [{"Subnet": "10.30.0.0/16", "IPRange": "10.30.1.0/24", "Gateway": "10.30.0.254"}]
        })
    );
    assert_eq!(n["Internal"], true);
    assert_eq!(n["Attachable"], true);
    assert_eq!(
        n["Options"],
        serde_json::json!({"com.docker.network.bridge.name": "mybr", "foo": "bar"})
    );
    assert_eq!(n["Labels"], serde_json::json!({"a": "b", "c": ""}));
    // An IPv6 subnet alone: an IPv4 one from the pools beside it.
    env.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00::/64",
        "n10",
    ]);
    let cfg = net_f(&env, "{{json .IPAM.Config}} {{.EnableIPv6}}", "n10");
    assert!(cfg.contains(r#"{"Subnet":"fd00::/64"}] true"#), "{cfg}");
    assert!(cfg.starts_with(r#"[{"Subnet":""#), "{cfg}");
}

#[test]
fn list_filters_and_formats() {
    let env = TestEnv::new();
    env.ok(&["network", "create", "--label", "a=b", "--label", "c", "n7"]);
    env.ok(&["network", "create", "n8"]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["network", "ls", "--format", "{{.Name}}"];
        a.extend_from_slice(args);
        env.ok(&a).lines().map(str::to_string).collect()
    };
    assert_eq!(names(&[]), ["bridge", "host", "n7", "n8", "none"]);
    assert_eq!(
        names(&["--filter", "driver=bridge"]),
        ["bridge", "n7", "n8"]
    );
    assert_eq!(names(&["--filter", "type=custom"]), ["n7", "n8"]);
    assert_eq!(
        names(&["--filter", "type=builtin"]),
        ["bridge", "host", "none"]
    );
    assert_eq!(names(&["--filter", "dangling=true"]), ["n7", "n8"]);
    assert_eq!(
        names(&["--filter", "dangling=false"]),
        ["bridge", "host", "none"]
    );
    assert_eq!(names(&["--filter", "label=a"]), ["n7"]);
    assert_eq!(names(&["--filter", "label=a=b"]), ["n7"]);
    assert_eq!(names(&["--filter", "label=a=c"]), Vec::<String>::new());
    // `name` is a regular expression anywhere in the name, as Docker's.
    assert_eq!(names(&["--filter", "name=n"]), ["n7", "n8", "none"]);
    assert_eq!(names(&["--filter", "scope=local"]).len(), 5);
    assert_eq!(names(&["--filter", "scope=swarm"]), Vec::<String>::new());
    let n7 = net_f(&env, "{{.Id}}", "n7");
    assert_eq!(names(&["--filter", &format!("id=^{}", &n7[..6])]), ["n7"]);
    // By ID prefix, as every network argument.
    assert_eq!(net_f(&env, "{{.Name}}", &n7[..8]), "n7");
    // `inspect` finds networks too.
    assert_eq!(env.ok(&["inspect", "-f", "{{.Id}}", "n7"]).trim(), n7);
    assert_eq!(
        env.ok(&["inspect", "--type", "network", "-f", "{{.Driver}}", "host"]),
        "host\n"
    );
    let (out, err) = env.fails(&["inspect", "--type", "network", "nope"], 1);
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("[]\n", "Error: network nope not found\n")
    );

    for (f, msg) in [
        ("type=foo", "invalid filter: 'type'='foo'"),
        (
            "dangling=foo",
            "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")",
        ),
        ("foo=bar", "Invalid filter 'foo'"),
    ] {
        let (_, err) = env.fails(&["network", "ls", "--filter", f], 1);
        assert_eq!(err, format!("Error: {msg}\n"), "{f}");
    }

    let out = env.ok(&[
        "network",
        "ls",
        "--filter",
        "type=custom",
        "--format",
        "table {{.Name}}\t{{.Labels}}\t{{.Internal}}\t{{.IPv6}}",
    ]);
    assert_eq!(
        out,
        "NAME      LABELS    INTERNAL   IPV6\n\
         n7        a=b,c=    false      false\n\
         n8                  false      false\n"
    );
    let json = env.ok(&["network", "ls", "--filter", "name=n8", "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json}"));
    let keys: Vec<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "CreatedAt",
            "Driver",
            "ID",
            "IPv4",
            "IPv6",
            "Internal",
            "Labels",
            "Name",
            "Scope"
        ]
    );
    assert!(
        v["CreatedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with(" +0000 UTC")),
        "{v}"
    );
    assert_eq!(v["ID"].as_str().map(str::len), Some(12));
    let q = env.ok(&["network", "ls", "-q", "--filter", "name=n8"]);
    assert_eq!(q.trim().len(), 12);

    // inspect: one missing network is an error after the others print.
    let (out, err) = env.fails(&["network", "inspect", "nope"], 1);
    assert_eq!(out, "[]\n");
    assert_eq!(err, "Error: network nope not found\n");
    let (out, err) = env.fails(&["network", "inspect", "-f", "{{.Name}}", "n7", "nope"], 1);
    assert_eq!(out, "n7\n");
    assert_eq!(err, "Error: network nope not found\n");
}

#[test]
fn rm_and_prune() {
    let env = TestEnv::new();
    env.ok(&["network", "create", "n1"]);
    env.ok(&["network", "create", "--label", "a=b", "n7"]);
    env.ok(&["network", "create", "n8"]);
    let (out, err) = env.fails(&["network", "rm", "nope", "n1"], 1);
    assert_eq!(out, "n1\n");
    assert_eq!(err, "Error: network nope not found\n");
    assert_eq!(env.ok(&["network", "rm", "-f", "nope"]), "");
    // Removed by ID prefix: printed as given.
    let id = net_f(&env, "{{.Id}}", "n8");
    env.ok(&["network", "create", "n9"]);
    assert_eq!(
        env.ok(&["network", "rm", &id[..10]]),
        format!("{}\n", &id[..10])
    );

    assert_eq!(
        env.ok(&["network", "prune", "-f", "--filter", "label=a"]),
        "Deleted Networks:\nn7\n\n"
    );
    assert_eq!(
        env.ok(&["network", "prune", "-f", "--filter", "until=1h"]),
        ""
    );
    assert_eq!(
        env.ok(&["network", "prune", "-f"]),
        "Deleted Networks:\nn9\n\n"
    );
    assert_eq!(env.ok(&["network", "prune", "-f"]), "");
    assert_eq!(
        env.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "bridge\nhost\nnone\n"
    );
    let (_, err) = env.fails(&["network", "prune", "-f", "--filter", "foo=bar"], 1);
    assert_eq!(err, "Error: Invalid filter 'foo'\n");
    // `system prune` takes them too, after the containers.
    env.ok(&["network", "create", "n20"]);
    let out = env.ok(&["system", "prune", "-f"]);
    assert!(
        out.starts_with("Deleted Networks:\nn20\n\nTotal reclaimed space: "),
        "{out}"
    );
}

#[test]
fn containers_on_networks() {
    let env = TestEnv::with_busybox();
    env.ok(&["network", "create", "n1"]);
    env.ok(&["network", "create", "--subnet", "10.1.2.3/16", "n2"]);
    let n1 = net_f(&env, "{{.Id}}", "n1");
    let bridge = net_f(&env, "{{.Id}}", "bridge");

    // No --network: mode `default`, on the default bridge.
    env.ok(&["create", "--name", "c1", BB, "true"]);
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.NetworkMode}}", "c1"),
        "default"
    );
    let nets = env.inspect("c1")["NetworkSettings"]["Networks"].clone();
    assert_eq!(nets["bridge"]["NetworkID"], bridge.as_str(), "{nets}");
    assert_eq!(nets["bridge"]["IPAMConfig"], serde_json::Value::Null);
    env.ok(&["create", "--name", "c10", "--network", "bridge", BB, "true"]);
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.NetworkMode}}", "c10"),
        "bridge"
    );

    // A user network, by name or ID prefix (recorded as given).
    env.ok(&[
        "create",
        "--name",
        "c3",
        "--network",
        "n2",
        "--network-alias",
        "foo",
        "--ip",
        "10.1.0.50",
        BB,
        "true",
    ]);
    let nets = env.inspect("c3")["NetworkSettings"]["Networks"].clone();
    assert_eq!(
        nets["n2"]["IPAMConfig"],
        serde_json::json!({"IPv4Address": "10.1.0.50"})
    );
    assert_eq!(nets["n2"]["Aliases"], serde_json::json!(["foo"]));
    env.ok(&["create", "--name", "c12", "--network", &n1[..6], BB, "true"]);
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.NetworkMode}}", "c12"),
        &n1[..6]
    );
    assert_eq!(
        inspect_f(
            &env,
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.NetworkID}}{{end}}",
            "c12"
        ),
        format!("n1 {n1}")
    );

    // Docker's refusals.
    for (args, code, msg) in [
        (
            &["--network-alias", "foo"][..],
            125,
            "berth: network-scoped aliases are only supported for user-defined networks",
        ),
        (
            &["--network", "host", "--network-alias", "x"][..],
            125,
            "berth: network-scoped aliases are only supported for user-defined networks",
        ),
        (&["--network", "nope"][..], 1, "Error: network nope not found"),
        (&["--network", ""][..], 125, "berth: no name set for network"),
        (
            &["--network", "container:"][..],
            1,
            "Error: Invalid network mode: invalid container format container:<name|id>",
        ),
        (
            &["--network", "container:c1", "-h", "foo"][..],
            1,
            "Error: conflicting options: hostname and the network mode",
        ),
        (
            &["--mac-address", "bad"][..],
            125,
            "berth: bad is not a valid mac address",
        ),
        (
            &["--ip", "172.17.0.50"][..],
            1,
            "Error: user specified IP address is supported on user defined networks only",
        ),
        (
            &["--network", "n1", "--ip", "10.0.0.5"][..],
            1,
            "Error: user specified IP address is supported only when connecting to networks with user configured subnets",
        ),
        (
            &["--network", "n2", "--ip", "10.9.9.9"][..],
            1,
            "Error: Invalid address 10.9.9.9: It does not belong to any of this network's subnets",
        ),
        (
            &["--network", "n2", "--ip", "foo"][..],
            1,
            "Error: invalid IPv4 address: foo",
        ),
    ] {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[BB, "true"]);
        let (_, err) = env.fails(&a, code);
        assert!(err.starts_with(msg), "{args:?}: {err}");
    }

    // container:NAME is recorded with the full ID.
    let c1 = inspect_f(&env, "{{.Id}}", "c1");
    env.ok(&[
        "create",
        "--name",
        "c11",
        "--network",
        "container:c1",
        BB,
        "true",
    ]);
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.NetworkMode}}", "c11"),
        format!("container:{c1}")
    );
    assert_eq!(
        inspect_f(&env, "{{json .NetworkSettings.Networks}}", "c11"),
        "{}"
    );
    env.ok(&["create", "--name", "h1", "--network", "host", BB, "true"]);
    env.ok(&["create", "--name", "z1", "--network", "none", BB, "true"]);

    // connect/disconnect of stopped containers: their configuration.
    env.ok(&["network", "connect", "--alias", "a1", "n1", "c1"]);
    let nets = env.inspect("c1")["NetworkSettings"]["Networks"].clone();
    assert_eq!(nets["n1"]["Aliases"], serde_json::json!(["a1"]), "{nets}");
    assert_eq!(nets["n1"]["NetworkID"], n1.as_str());
    // Already connected: nothing changes (Docker's, for a stopped one).
    env.ok(&["network", "connect", "--alias", "a2", "n1", "c1"]);
    assert_eq!(
        env.inspect("c1")["NetworkSettings"]["Networks"]["n1"]["Aliases"],
        serde_json::json!(["a1"])
    );
    env.ok(&["network", "connect", "--ip", "10.1.0.7", "n2", "c1"]);
    let filtered = env.ok(&[
        "ps",
        "-a",
        "--filter",
        "network=n2",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(lines(&filtered), ["c3", "c1"]);
    let filtered = env.ok(&[
        "ps",
        "-a",
        "--filter",
        "network=bridge",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(lines(&filtered), ["c10", "c1"]);
    let filtered = env.ok(&[
        "ps",
        "-a",
        "--filter",
        "network=host",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(lines(&filtered), ["h1"]);
    for (args, msg) in [
        (
            &["connect", "--ip", "10.9.9.9", "n2", "c10"][..],
            "Invalid address 10.9.9.9: It does not belong to any of this network's subnets",
        ),
        (
            &["connect", "--alias", "z", "bridge", "c12"][..],
            "network-scoped alias is supported only for containers in user defined networks",
        ),
        (
            &["connect", "n1", "h1"][..],
            "container sharing network namespace with another container or host cannot be connected to any other network",
        ),
        (
            &["connect", "n1", "c11"][..],
            "container sharing network namespace with another container or host cannot be connected to any other network",
        ),
        (
            &["connect", "n1", "z1"][..],
            "container cannot be connected to multiple networks with one of the networks in private (none) mode",
        ),
        (
            &["connect", "host", "c1"][..],
            "container cannot be disconnected from host network or connected to host network",
        ),
        (
            &["connect", "none", "c1"][..],
            "container cannot be connected to multiple networks with one of the networks in private (none) mode",
        ),
        (&["connect", "n1", "nope"][..], "No such container: nope"),
        (&["connect", "nope", "c1"][..], "network nope not found"),
    ] {
        let mut a = vec!["network"];
        a.extend_from_slice(args);
        let (_, err) = env.fails(&a, 1);
        assert_eq!(err, format!("Error: {msg}\n"), "{args:?}");
    }
    env.ok(&["network", "disconnect", "n1", "c1"]);
    let (_, err) = env.fails(&["network", "disconnect", "n1", "c1"], 1);
    assert_eq!(
        err,
        format!("Error: container {c1} is not connected to the network n1\n")
    );
    let (_, err) = env.fails(&["network", "disconnect", "-f", "n1", "c1"], 1);
    assert_eq!(
        err,
        format!("Error: container {c1} is not connected to the network n1\n")
    );

    // Only stopped containers on it: the network goes; they keep its name
    // (Docker's: their next start fails).
    assert_eq!(env.ok(&["network", "rm", "n2"]), "n2\n");
    assert!(env.inspect("c3")["NetworkSettings"]["Networks"]
        .get("n2")
        .is_some());
    // Disconnecting the removed network still works by its recorded name.
    env.ok(&["network", "disconnect", "n2", "c3"]);
    assert_eq!(
        inspect_f(&env, "{{json .NetworkSettings.Networks}}", "c3"),
        "{}"
    );
}

#[test]
fn a_running_container_holds_its_network() {
    let env = TestEnv::with_busybox();
    env.ok(&["network", "create", "n9"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "r1",
        "--network",
        "n9",
        BB,
        "sleep",
        "100",
    ]);
    let r1 = inspect_f(&env, "{{.Id}}", "r1");
    let n9 = net_f(&env, "{{.Id}}", "n9");
    // The running container holds its address on n9.
    let (_, err) = env.fails(&["network", "rm", "n9"], 1);
    assert_eq!(
        err,
        format!("Error: error while removing network: network n9 id {n9} has active endpoints\n")
    );
    let c = env.inspect_args_network("n9")["Containers"].clone();
    let sub = net_f(&env, "{{(index .IPAM.Config 0).Subnet}}", "n9");
    let prefix = sub.rsplit('/').next().unwrap_or_default().to_string();
    assert_eq!(c[&r1]["Name"], "r1", "{c}");
    assert_eq!(c[&r1]["MacAddress"], "02:42:ac:12:00:02");
    assert_eq!(c[&r1]["IPv4Address"], format!("172.18.0.2/{prefix}"));
    assert_eq!(c[&r1]["IPv6Address"], "");
    assert!(c[&r1]["EndpointID"].as_str().is_some_and(is_full_id));
    assert_eq!(
        env.ok(&["network", "ls", "--filter", "dangling=true", "-q"]),
        ""
    );
    assert_eq!(env.ok(&["network", "prune", "-f"]), "");
    // A running container is connected at once, and only once.
    env.ok(&["network", "create", "n10"]);
    env.ok(&["network", "connect", "n10", "r1"]);
    let (_, err) = env.fails(&["network", "connect", "n10", "r1"], 1);
    assert_eq!(
        err,
        "Error: endpoint with name r1 already exists in network n10\n"
    );
    env.ok(&["rm", "-f", "r1"]);
    assert_eq!(env.ok(&["network", "rm", "n9"]), "n9\n");
}

#[test]
fn config_file_network_keys() {
    let env = TestEnv::with_busybox();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "bip = \"172.30.0.1/16\"\n\
         default-address-pools = [{ base = \"10.10.0.0/16\", size = 24 }]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = with_config(&env, &config, &["network", "create", "n1"]);
    assert!(out.status.success(), "{out:?}");
    let out = with_config(
        &env,
        &config,
        &[
            "network",
            "inspect",
            "-f",
            "{{json .IPAM.Config}}",
            "bridge",
            "n1",
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "[{\"Subnet\":\"172.30.0.0/16\",\"Gateway\":\"172.30.0.1\"}]\n\
         [{\"Subnet\":\"10.10.0.0/24\",\"Gateway\":\"10.10.0.1\"}]\n"
    );

    // bridge = "none": no default bridge; containers default to none.
    let env = TestEnv::with_busybox();
    std::fs::write(&config, "bridge = \"none\"\n").unwrap_or_else(|e| panic!("{e}"));
    let out = with_config(&env, &config, &["create", "--name", "c1", BB, "true"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        inspect_f(&env, "{{.HostConfig.NetworkMode}}", "c1"),
        "default"
    );
    assert_eq!(
        inspect_f(&env, "{{json .NetworkSettings.Networks}}", "c1"),
        "{}"
    );
    let filtered = with_config(
        &env,
        &config,
        &["ps", "-a", "--filter", "network=none", "-q"],
    );
    assert_eq!(text(&filtered.stdout).lines().count(), 1);
    let out = with_config(&env, &config, &["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(text(&out.stdout), "host\nnone\n");
    let out = with_config(
        &env,
        &config,
        &["create", "--network", "bridge", BB, "true"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "Error: network bridge not found\n");
    // A bad value names the file and line.
    std::fs::write(&config, "dns = []\nbip = \"300.1.1.1/16\"\n").unwrap_or_else(|e| panic!("{e}"));
    let out = with_config(&env, &config, &["network", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 2: bip: invalid CIDR address: 300.1.1.1/16"),
        "{out:?}"
    );
}
