//! `images --filter` and `ps --filter` as Docker's: which keys and values
//! are accepted, what each one matches, the errors (wording and exit codes,
//! checked against dockerd 20.10 and the docker CLI).

mod common;
use common::*;

fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// `images --format REPO:TAG` with these extra arguments, sorted.
fn images(env: &TestEnv, args: &[&str]) -> Vec<String> {
    let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
    all.extend_from_slice(args);
    lines(&env.ok(&all))
}

/// `ps -a --format NAME` with these filters, sorted.
fn ps_a(env: &TestEnv, filters: &[&str]) -> Vec<String> {
    let mut all = vec!["ps", "-a", "--format", "{{.Names}}"];
    for f in filters {
        all.push("-f");
        all.push(f);
    }
    lines(&env.ok(&all))
}

fn v(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// `bb` and its tags, `labeled` (committed later with a label) and a
/// dangling image (`labeled`'s first version, replaced by a second commit).
fn image_env() -> TestEnv {
    let env = TestEnv::with_busybox();
    env.ok(&["tag", BB, "myrepo/app:v1"]);
    env.ok(&["tag", BB, "bb:v2"]);
    env.ok(&["create", "--name", "cc", BB, "true"]);
    env.ok(&["commit", "-c", "LABEL a=1", "cc", "labeled"]);
    env.ok(&["commit", "-c", "LABEL a=1", "cc", "labeled"]);
    env
}

#[test]
fn images_reference_globs_as_docker() {
    let env = image_env();
    assert_eq!(
        images(&env, &["-f", "reference=myrepo/*"]),
        ["myrepo/app:v1"]
    );
    assert_eq!(images(&env, &["-f", "reference=*/app"]), ["myrepo/app:v1"]);
    assert_eq!(images(&env, &["-f", "reference=bb:v*"]), ["bb:v2"]);
    assert_eq!(
        images(&env, &["-f", "reference=b?"]),
        v(&["bb:latest", "bb:v2"])
    );
    // The name alone matches every tag; `*` stops at '/'; no dangling image.
    assert_eq!(
        images(&env, &["-f", "reference=bb"]),
        v(&["bb:latest", "bb:v2"])
    );
    assert_eq!(
        images(&env, &["-f", "reference=*"]),
        v(&["bb:latest", "bb:v2", "labeled:latest"])
    );
    // Two references: either.
    assert_eq!(
        images(
            &env,
            &["-f", "reference=bb:v2", "-f", "reference=myrepo/app"]
        ),
        v(&["bb:v2", "myrepo/app:v1"])
    );
    // The positional REPO[:TAG] is a reference pattern too.
    assert_eq!(images(&env, &["bb:*"]), v(&["bb:latest", "bb:v2"]));
    assert_eq!(images(&env, &["bb:v2"]), ["bb:v2"]);
    assert_eq!(images(&env, &["library/bb"]), Vec::<String>::new());
    let (_, err) = env.fails(&["images", "-f", "reference=["], 1);
    assert_eq!(err, "Error: syntax error in pattern\n");
}

#[test]
fn images_label_dangling_before_since() {
    let env = image_env();
    // The dangling image is labeled's first version: it has the label too.
    assert_eq!(
        images(&env, &["-f", "label=a"]),
        v(&["<none>:<none>", "labeled:latest"])
    );
    assert_eq!(
        images(&env, &["-f", "label=a=1", "-f", "dangling=false"]),
        ["labeled:latest"]
    );
    assert!(images(&env, &["-f", "label=a=2"]).is_empty());
    // Every label filter must hold.
    assert!(images(&env, &["-f", "label=a", "-f", "label=zz"]).is_empty());

    assert_eq!(images(&env, &["-f", "dangling=true"]), ["<none>:<none>"]);
    assert_eq!(
        images(&env, &["-f", "dangling=false"]),
        v(&["bb:latest", "bb:v2", "labeled:latest", "myrepo/app:v1"])
    );
    assert_eq!(
        images(&env, &["-f", "before=labeled"]),
        v(&["<none>:<none>", "bb:latest", "bb:v2", "myrepo/app:v1"])
    );
    assert_eq!(
        images(&env, &["-f", "since=bb"]),
        v(&["<none>:<none>", "labeled:latest"])
    );
    let dangling = env.ok(&["images", "-q", "-f", "dangling=true"]);
    assert_eq!(
        images(&env, &["-f", &format!("since={}", dangling.trim())]),
        ["labeled:latest"]
    );
    // Different keys: both must hold.
    assert_eq!(
        images(&env, &["-f", "since=bb", "-f", "dangling=false"]),
        ["labeled:latest"]
    );
}

#[test]
fn images_filter_errors_as_docker() {
    let env = image_env();
    for (f, msg) in [
        ("bogus=1", "Invalid filter 'bogus'"),
        ("dangling=maybe", "Invalid filter 'dangling=[maybe]'"),
        ("before=nosuch", "No such image: nosuch:latest"),
        ("since=nosuch", "No such image: nosuch:latest"),
    ] {
        let (out, err) = env.fails(&["images", "-f", f], 1);
        assert_eq!(out, "", "{f}");
        assert_eq!(err, format!("Error: {msg}\n"), "{f}");
    }
    let (_, err) = env.fails(&["images", "-f", "noequals"], 125);
    assert!(
        err.starts_with(
            "invalid argument \"noequals\" for \"-f, --filter\" flag: bad format of filter (expected name=value)\n"
        ),
        "{err}"
    );
}

/// web (running: labels, a named volume), done3 (exited 3), cr (created),
/// hostc (running, host network), created in this order.
fn ps_env() -> TestEnv {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-l",
        "a=1",
        "-l",
        "b",
        "-v",
        "vol1:/data",
        BB,
        "sleep",
        "1000",
    ]);
    env.fails(&["run", "--name", "done3", BB, "sh", "-c", "exit 3"], 3);
    env.ok(&["create", "--name", "cr", BB, "true"]);
    env.ok(&[
        "run",
        "-d",
        "--network",
        "host",
        "--name",
        "hostc",
        BB,
        "sleep",
        "1000",
    ]);
    env
}

#[test]
fn ps_name_and_id_are_regular_expressions() {
    let env = ps_env();
    for re in ["^/web$", "^web$", "eb$", "w.b", "web"] {
        assert_eq!(ps_a(&env, &[&format!("name={re}")]), ["web"], "{re}");
    }
    assert!(ps_a(&env, &["name=WEB"]).is_empty());
    assert!(ps_a(&env, &["name=["]).is_empty());
    assert_eq!(ps_a(&env, &["name=web", "name=^cr"]), v(&["cr", "web"]));
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "cr"]);
    let id = id.trim();
    assert_eq!(ps_a(&env, &[&format!("id=^{}", &id[..12])]), ["cr"]);
    assert_eq!(ps_a(&env, &[&format!("id={}$", &id[40..])]), ["cr"]);
}

#[test]
fn ps_status_exited_label_and_the_rest() {
    let env = ps_env();
    let all = v(&["web", "done3", "cr", "hostc"]);
    assert_eq!(
        ps_a(&env, &["status=exited", "status=created"]),
        v(&["done3", "cr"])
    );
    // status= shows stopped containers without -a; exited= does not.
    assert_eq!(
        lines(&env.ok(&["ps", "--format", "{{.Names}}", "-f", "status=created"])),
        ["cr"]
    );
    assert_eq!(
        env.ok(&["ps", "--format", "{{.Names}}", "-f", "exited=3"]),
        ""
    );
    assert_eq!(ps_a(&env, &["exited=3"]), ["done3"]);
    assert!(ps_a(&env, &["exited=0"]).is_empty());
    assert!(ps_a(&env, &["exited=3", "status=created"]).is_empty());

    assert_eq!(ps_a(&env, &["label=a"]), ["web"]);
    assert_eq!(ps_a(&env, &["label=a=1", "label=b"]), ["web"]);
    assert!(ps_a(&env, &["label=b=2"]).is_empty());
    assert!(ps_a(&env, &["label=a", "label=zz"]).is_empty());

    assert_eq!(ps_a(&env, &["since=web"]), v(&["done3", "cr", "hostc"]));
    assert_eq!(ps_a(&env, &["before=cr"]), v(&["web", "done3"]));
    assert!(ps_a(&env, &["before=web"]).is_empty());
    assert_eq!(
        ps_a(&env, &["since=web", "before=hostc"]),
        v(&["done3", "cr"])
    );

    assert_eq!(ps_a(&env, &["volume=vol1"]), ["web"]);
    assert_eq!(ps_a(&env, &["volume=/data"]), ["web"]);
    assert!(ps_a(&env, &["volume=/nowhere"]).is_empty());
    assert_eq!(ps_a(&env, &["network=host"]), ["hostc"]);
    // Without --network, containers are on the default bridge (issue 10).
    assert_eq!(ps_a(&env, &["network=bridge"]), v(&["web", "done3", "cr"]));
    assert!(ps_a(&env, &["network=none"]).is_empty());

    assert_eq!(ps_a(&env, &["health=none"]), all);
    assert!(ps_a(&env, &["health=healthy"]).is_empty());
    assert!(ps_a(&env, &["is-task=true"]).is_empty());
    assert_eq!(ps_a(&env, &["is-task=false"]), all);
    assert_eq!(ps_a(&env, &["ancestor=bb"]), all);
    assert!(ps_a(&env, &["ancestor=nosuch"]).is_empty());
    assert_eq!(ps_a(&env, &["isolation=default"]), all);
    assert!(ps_a(&env, &["publish=80"]).is_empty());
}

#[test]
fn ps_publish_and_expose_match_the_ports_of_running_containers() {
    let env = TestEnv::with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "p1",
        "-p",
        "8080:80",
        "-p",
        "9000-9001:9000-9001/udp",
        BB,
        "sleep",
        "100",
    ]);
    env.ok(&[
        "run", "-d", "--name", "p2", "--expose", "8080", "--expose", "53/udp", BB, "sleep", "100",
    ]);
    // Not running: no ports to match (as dockerd's).
    env.ok(&["create", "--name", "p3", "-p", "8081:80", BB, "true"]);
    // dockerd 20.10's answers for the same containers: `publish` is the
    // host side (0 for a port only exposed), `expose` the container side.
    for (filter, want) in [
        ("publish=8080", &["p1"][..]),
        ("publish=80", &[]),
        ("publish=80/tcp", &[]),
        ("publish=9000/udp", &["p1"]),
        ("publish=9001/udp", &["p1"]),
        ("publish=9000-9001/udp", &["p1"]),
        ("publish=8000-8100", &["p1"]),
        ("publish=8081", &[]),
        ("publish=0-65535", &["p1", "p2"]),
        ("publish=80/xyz", &[]),
        ("expose=80", &["p1"]),
        ("expose=9000/udp", &["p1"]),
        ("expose=8080", &["p2"]),
        ("expose=8080/tcp", &["p2"]),
        ("expose=53", &[]),
        ("expose=53/udp", &["p2"]),
    ] {
        assert_eq!(ps_a(&env, &[filter]), v(want), "{filter}");
    }
    assert_eq!(ps_a(&env, &["publish=8080", "expose=80"]), ["p1"]);
    assert!(ps_a(&env, &["publish=8080", "expose=8080"]).is_empty());
    for (filter, words) in [
        (
            "publish=abc",
            "error while looking up for publish abc: strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        (
            "expose=70000",
            "error while looking up for expose 70000: strconv.ParseUint: parsing \"70000\": value out of range",
        ),
        (
            "publish=90-80",
            "error while looking up for publish 90-80: Invalid range specified for the Port: 90-80",
        ),
        (
            "publish=",
            "error while looking up for publish : Empty string specified for ports.",
        ),
    ] {
        let (_, err) = env.fails(&["ps", "-a", "-f", filter], 1);
        assert!(err.contains(words), "{filter}: {err}");
    }
}

#[test]
fn ps_ancestor_covers_images_built_on_it() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "base", BB, "true"]);
    env.ok(&["commit", "base", "child"]);
    env.ok(&["create", "--name", "kid", "child", "true"]);
    assert_eq!(ps_a(&env, &["ancestor=bb"]), v(&["base", "kid"]));
    assert_eq!(ps_a(&env, &["ancestor=child"]), ["kid"]);
}

#[test]
fn ps_filter_errors_as_docker() {
    let env = ps_env();
    for (f, msg) in [
        ("bogus=1", "Invalid filter 'bogus'"),
        ("status=bogus", "Invalid filter 'status=bogus'"),
        ("status=", "Invalid filter 'status='"),
        (
            "exited=abc",
            "strconv.Atoi: parsing \"abc\": invalid syntax",
        ),
        (
            "health=bogus",
            "Unrecognised filter value for health: bogus",
        ),
        ("is-task=maybe", "Invalid filter 'is-task=[maybe]'"),
        ("before=nosuch", "no such container nosuch"),
        ("since=nosuch", "no such container nosuch"),
    ] {
        let (out, err) = env.fails(&["ps", "-a", "-f", f], 1);
        assert_eq!(out, "", "{f}");
        assert_eq!(err, format!("Error: {msg}\n"), "{f}");
    }
    let (_, err) = env.fails(&["ps", "-f", "noequals"], 125);
    assert!(
        err.contains("bad format of filter (expected name=value)"),
        "{err}"
    );
}

#[test]
fn images_hide_intermediate_images_without_all() {
    let env = TestEnv::with_busybox();
    env.ok(&["create", "--name", "base", BB, "true"]);
    env.ok(&["commit", "base", "p1"]);
    env.ok(&["create", "--name", "onp1", "p1", "true"]);
    env.ok(&["commit", "onp1", "c1"]);
    env.ok(&["rm", "onp1"]);
    // p1 loses its name but c1 is built on it: an intermediate image.
    env.ok(&["rmi", "p1"]);
    assert_eq!(images(&env, &[]), v(&["bb:latest", "c1:latest"]));
    assert_eq!(
        images(&env, &["-a"]),
        v(&["<none>:<none>", "bb:latest", "c1:latest"])
    );
    assert!(images(&env, &["-a", "-f", "dangling=true"]).is_empty());
    assert_eq!(
        images(&env, &["-a", "-f", "dangling=false"]),
        v(&["bb:latest", "c1:latest"])
    );
}
