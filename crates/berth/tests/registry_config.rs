mod common;

// berth's registry settings, black box: a Docker Hub image served by a
// loopback mirror named in the config file (the hub itself is behind the
// closed proxy), a TLS registry trusted through a CA in certs.d (and a
// clear TLS error without it), a malformed config file, and `manifest
// inspect` of a schema-2 image and of an index. The insecure-registries
// matching (names, CIDR networks) is unit-tested in berth-registry's
// settings.rs: a plain-http registry on a name that is not loopback would
// need a network this machine must not use.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::registry::Registry;
use common::*;
use tempfile::TempDir;

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

/// `bb` saved by berth as a docker-archive, in `dir`.
fn busybox_archive(dir: &Path) -> String {
    let src = TestEnv::with_busybox();
    let out = dir.join("bb.tar");
    src.ok(&["save", "-o", path_str(&out), BB]);
    format!("docker-archive:{}", path_str(&out))
}

/// A port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// `berth ARGS` with the config file `config`.
fn with_config(env: &TestEnv, config: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = env.berth(args);
    cmd.env("BERTH_CONFIG", config);
    output_with_timeout(cmd, COMMAND_TIMEOUT)
}

#[test]
fn docker_hub_images_come_from_a_mirror() {
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    reg.push(
        &busybox_archive(tmp.path()),
        "library/bb:latest",
        &["--format", "v2s2"],
    );
    let (_, digest) = reg.manifest("library/bb:latest");
    let config = tmp.path().join("config.toml");
    // The first mirror is down: the next one serves.
    fs::write(
        &config,
        format!(
            "# berth's settings\nregistry-mirrors = [\"http://127.0.0.1:{}\", \"http://{}/\"]\nmax-concurrent-downloads = 1\n",
            dead_port(),
            reg.addr
        ),
    )
    .unwrap();

    let env = TestEnv::new();
    let out = with_config(&env, &config, &["pull", "docker.io/library/bb"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let l: Vec<&str> = stdout.lines().collect();
    assert_eq!(l[0], "Using default tag: latest");
    assert_eq!(l[1], "latest: Pulling from library/bb");
    assert!(
        l.contains(&format!("Digest: {digest}").as_str()),
        "{stdout}"
    );
    assert!(
        l.contains(&"Status: Downloaded newer image for bb:latest"),
        "{stdout}"
    );
    assert_eq!(l[l.len() - 1], "docker.io/library/bb:latest");
    assert_eq!(
        env.ok(&[
            "images",
            "--digests",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.Digest}}"
        ]),
        format!("bb:latest {digest}\n")
    );
    assert_eq!(
        env.ok(&["run", "--rm", "bb", "echo", "mirrored"]),
        "mirrored\n"
    );

    // What no mirror has falls back to the hub: here, the closed proxy.
    let out = with_config(&env, &config, &["pull", "busybox:nothere"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("https://registry-1.docker.io/v2/"),
        "the hub's error is reported: {err}"
    );
    // Without the config, the mirror is not asked.
    let (_, err) = env.fails(&["pull", "library/bb:latest"], 1);
    assert!(err.contains("registry-1.docker.io"), "{err}");
}

#[test]
fn a_malformed_config_file_is_one_line_naming_file_and_line() {
    let tmp = TempDir::new().unwrap();
    let config = tmp.path().join("config.toml");
    fs::write(
        &config,
        "registry-mirrors = [\"http://127.0.0.1:5000\"]\nmax-concurrent-downloads = three\n",
    )
    .unwrap();
    let env = TestEnv::new();
    let out = with_config(&env, &config, &["pull", "127.0.0.1:1/x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "Error: invalid configuration file {}, line 2: ",
            config.display()
        )),
        "{err}"
    );

    fs::write(&config, "max-concurrent-downloads = 3\nmirrors = []\n").unwrap();
    let out = with_config(&env, &config, &["pull", "127.0.0.1:1/x"]);
    let err = text(&out.stderr);
    assert!(err.contains(", line 2: unknown field `mirrors`"), "{err}");

    let missing = tmp.path().join("nope.toml");
    let out = with_config(&env, &missing, &["pull", "127.0.0.1:1/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Error: cannot read the configuration file {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    // A command that pulls nothing never reads it.
    assert_eq!(
        output_with_timeout(
            {
                let mut c = env.berth(&["images", "-q"]);
                c.env("BERTH_CONFIG", &missing);
                c
            },
            COMMAND_TIMEOUT
        )
        .status
        .code(),
        Some(0)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
}

/// A CA (`<name>.crt`, `<name>.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A server certificate for 127.0.0.1 signed by CA `ca`: `server.crt`,
/// `server.key` in `dir`.
fn make_server_cert(dir: &Path, ca: &str) {
    make_cert(
        dir,
        ca,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
}

/// `<name>.crt`/`<name>.key` in `dir` for `subject`, signed by CA `ca`,
/// with the extensions `ext`.
fn make_cert(dir: &Path, ca: &str, name: &str, subject: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    );
    fs::write(dir.join(format!("{name}.cnf")), ext)
        .unwrap_or_else(|e| panic!("write ext.cnf: {e}"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.cnf"),
        ],
    );
}

#[test]
fn a_tls_registry_is_trusted_through_its_ca_in_certs_d() {
    let tmp = TempDir::new().unwrap();
    let pki = tmp.path().join("pki");
    fs::create_dir(&pki).unwrap();
    make_ca(&pki, "test-ca");
    make_ca(&pki, "other-ca");
    make_server_cert(&pki, "test-ca");
    let reg = Registry::start_tls(&pki.join("server.crt"), &pki.join("server.key"), None);
    reg.push(
        &busybox_archive(tmp.path()),
        "tls/bb:v1",
        &["--format", "v2s2"],
    );
    let certs_d = tmp.path().join("certs.d");
    let host_dir = certs_d.join(&reg.addr);
    fs::create_dir_all(&host_dir).unwrap();
    let config = tmp.path().join("config.toml");
    fs::write(&config, format!("certs-d = \"{}\"\n", path_str(&certs_d))).unwrap();
    let name = format!("{}/tls/bb:v1", reg.addr);
    let env = TestEnv::new();
    let pull = |args: &[&str]| {
        let mut cmd = env.berth(args);
        cmd.env("BERTH_CONFIG", &config).env_remove("BERTH_CERTS_D");
        output_with_timeout(cmd, COMMAND_TIMEOUT)
    };

    // A CA that did not sign the server's certificate: a TLS error.
    fs::copy(pki.join("other-ca.crt"), host_dir.join("ca.crt")).unwrap();
    let out = pull(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("Error: Get \"https://{}/v2/\": ", reg.addr)),
        "{err}"
    );
    assert!(
        err.contains("certificate signed by unknown authority"),
        "{err}"
    );
    assert_eq!(env.ok(&["images", "-q"]), "");
    // berth login checks the registry through the same certificates.
    let docker_config = tmp.path().join("docker-config");
    let login = || {
        let mut cmd = env.berth(&["login", "-u", "me", "--password-stdin", &reg.addr]);
        cmd.env("BERTH_CONFIG", &config)
            .env_remove("BERTH_CERTS_D")
            .env("DOCKER_CONFIG", &docker_config)
            .stdin(std::process::Stdio::piped());
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"secret\n").unwrap();
        }
        child.wait_with_output().unwrap()
    };
    let out = login();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("certificate signed by unknown authority"),
        "{}",
        text(&out.stderr)
    );
    assert!(!docker_config.join("config.json").exists());

    // Its CA: the pull works.
    fs::copy(pki.join("test-ca.crt"), host_dir.join("ca.crt")).unwrap();
    let out = login();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("Login Succeeded\n"),
        "{}",
        text(&out.stdout)
    );
    let out = pull(&["pull", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("Status: Downloaded newer image for {name}")));
    assert_eq!(
        env.ok(&["run", "--rm", &name, "echo", "over tls"]),
        "over tls\n"
    );
    // A push goes through the same certificates.
    let pushed = format!("{}/tls/again:v2", reg.addr);
    env.ok(&["tag", &name, &pushed]);
    let out = pull(&["push", &pushed]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("v2: digest: sha256:"),
        "{}",
        text(&out.stdout)
    );
    // And without its CA, a push is the same TLS error as a pull.
    fs::copy(pki.join("other-ca.crt"), host_dir.join("ca.crt")).unwrap();
    let out = pull(&["push", &pushed]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("certificate signed by unknown authority"),
        "{}",
        text(&out.stderr)
    );
}

/// `v` as Go's `json.MarshalIndent(v, "", indent)` writes these documents.
fn indented(v: &serde_json::Value, indent: &[u8]) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser).unwrap_or_else(|e| panic!("serialize: {e}"));
    String::from_utf8(out).unwrap_or_else(|e| panic!("utf-8: {e}"))
}

/// PUTs manifest `body` as `name:tag` on the registry (plain HTTP).
fn put_manifest(reg: &Registry, name: &str, tag: &str, media_type: &str, body: &[u8]) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&reg.addr)
        .unwrap_or_else(|e| panic!("connect {}: {e}", reg.addr));
    write!(
        s,
        "PUT /v2/{name}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reg.addr,
        body.len()
    )
    .and_then(|_| s.write_all(body))
    .unwrap_or_else(|e| panic!("PUT: {e}"));
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .unwrap_or_else(|e| panic!("PUT response: {e}"));
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn manifest_inspect_of_a_schema2_image_and_an_index() {
    use base64::Engine as _;
    use serde_json::{json, Value};
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    let archive = busybox_archive(tmp.path());
    reg.push(&archive, "multi:a", &["--format", "v2s2"]);
    reg.push(&archive, "multi:b", &["--format", "oci"]);
    let (a, a_digest) = reg.manifest("multi:a");
    let (b, b_digest) = reg.manifest("multi:b");
    let raw = |v: &Value| serde_json::to_vec(v).unwrap();
    // skopeo inspect --raw is the registry's bytes: re-serializing the
    // preserve-order values gives them back (compact, as skopeo pushes).
    let (a_raw, b_raw) = (raw(&a), raw(&b));
    assert_eq!(common::registry::sha256_digest(&a_raw), a_digest);
    let env = TestEnv::new();

    // A schema-2 manifest: as served, indented with tabs.
    let name = format!("{}/multi:a", reg.addr);
    assert_eq!(
        env.ok(&["manifest", "inspect", &name]),
        format!("{}\n", indented(&a, b"\t"))
    );
    let verbose = json!({
        "Ref": name,
        "Descriptor": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": a_digest,
            "size": a_raw.len(),
            "platform": {"architecture": host_arch(), "os": "linux"},
        },
        "Raw": base64::engine::general_purpose::STANDARD.encode(&a_raw),
        "SchemaV2Manifest": a,
    });
    assert_eq!(
        env.ok(&["manifest", "inspect", "--verbose", &name]),
        format!("{}\n", indented(&verbose, b"\t"))
    );

    // An OCI index of both (the second entry says arm64/v8): Docker's
    // manifest list rebuilt from its image manifests.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "digest": a_digest, "size": a_raw.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": b_digest, "size": b_raw.len(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
             "annotations": {"x": "y"}},
        ]
    });
    put_manifest(
        &reg,
        "multi",
        "v1",
        "application/vnd.oci.image.index.v1+json",
        &raw(&index),
    );
    let name = format!("{}/multi:v1", reg.addr);
    let list = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "size": a_raw.len(), "digest": a_digest,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "size": b_raw.len(), "digest": b_digest,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ]
    });
    assert_eq!(
        env.ok(&["manifest", "inspect", &name]),
        format!("{}\n", indented(&list, b"   "))
    );
    let entry = |digest: &str,
                 media_type: &str,
                 len: usize,
                 platform: Value,
                 kind: &str,
                 m: &Value,
                 raw: &[u8]| {
        let mut e = json!({
            "Ref": format!("{name}@{digest}"),
            "Descriptor": {"mediaType": media_type, "digest": digest, "size": len, "platform": platform},
            "Raw": base64::engine::general_purpose::STANDARD.encode(raw),
        });
        e[kind] = m.clone();
        e
    };
    let verbose = json!([
        entry(
            &a_digest,
            "application/vnd.docker.distribution.manifest.v2+json",
            a_raw.len(),
            json!({"architecture": "amd64", "os": "linux"}),
            "SchemaV2Manifest",
            &a,
            &a_raw
        ),
        entry(
            &b_digest,
            "application/vnd.oci.image.manifest.v1+json",
            b_raw.len(),
            json!({"architecture": "arm64", "os": "linux", "variant": "v8"}),
            "OCIManifest",
            &b,
            &b_raw
        ),
    ]);
    assert_eq!(
        env.ok(&["manifest", "inspect", "-v", &name]),
        format!("{}\n", indented(&verbose, b"\t"))
    );

    // What the registry lacks, in the docker CLI's words.
    let (out, err) = env.fails(
        &["manifest", "inspect", &format!("{}/multi:nope", reg.addr)],
        1,
    );
    assert_eq!(out, "");
    assert_eq!(err, format!("no such manifest: {}/multi:nope\n", reg.addr));
    // Nothing was stored.
    assert_eq!(env.ok(&["images", "-aq"]), "");
}

#[test]
fn an_insecure_registry_is_tried_in_https_then_plain_http() {
    // A loopback registry with a certs.d directory is asked in https; listed
    // as insecure, a plain-http one is then asked in http.
    let tmp = TempDir::new().unwrap();
    let reg = Registry::start();
    reg.push(
        &busybox_archive(tmp.path()),
        "plain/bb:v1",
        &["--format", "v2s2"],
    );
    let certs_d = tmp.path().join("certs.d");
    fs::create_dir_all(certs_d.join(&reg.addr)).unwrap();
    let name = format!("{}/plain/bb:v1", reg.addr);
    let env = TestEnv::new();
    let config = tmp.path().join("config.toml");
    let pull = |text: String| {
        fs::write(&config, text).unwrap();
        let mut cmd = env.berth(&["pull", "-q", &name]);
        cmd.env("BERTH_CONFIG", &config).env_remove("BERTH_CERTS_D");
        output_with_timeout(cmd, COMMAND_TIMEOUT)
    };
    let certs = format!("certs-d = \"{}\"\n", path_str(&certs_d));
    // Not listed: https only, which this registry does not speak.
    let out = pull(certs.clone());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Error: Get \"https://{}/v2/\": http: server gave HTTP response to HTTPS client\n",
            reg.addr
        )
    );
    // Listed (as a network): https fails, plain http serves.
    let out = pull(format!("{certs}insecure-registries = [\"127.0.0.0/8\"]\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{name}\n"));
}

#[test]
fn an_insecure_tls_registry_is_not_verified() {
    let tmp = TempDir::new().unwrap();
    let pki = tmp.path().join("pki");
    fs::create_dir(&pki).unwrap();
    make_ca(&pki, "test-ca");
    make_server_cert(&pki, "test-ca");
    let reg = Registry::start_tls(&pki.join("server.crt"), &pki.join("server.key"), None);
    reg.push(
        &busybox_archive(tmp.path()),
        "tls/bb:v1",
        &["--format", "v2s2"],
    );
    // certs.d has the directory, but not the CA: only insecure-registries
    // lets the pull through.
    let certs_d = tmp.path().join("certs.d");
    fs::create_dir_all(certs_d.join(&reg.addr)).unwrap();
    let config = tmp.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "certs-d = \"{}\"\ninsecure-registries = [\"{}\"]\n",
            path_str(&certs_d),
            reg.addr
        ),
    )
    .unwrap();
    let name = format!("{}/tls/bb:v1", reg.addr);
    let env = TestEnv::new();
    let mut cmd = env.berth(&["pull", "-q", &name]);
    cmd.env("BERTH_CONFIG", &config).env_remove("BERTH_CERTS_D");
    let out = output_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{name}\n"));
}

#[test]
fn a_client_certificate_in_certs_d_for_mutual_tls() {
    let tmp = TempDir::new().unwrap();
    let pki = tmp.path().join("pki");
    fs::create_dir(&pki).unwrap();
    make_ca(&pki, "test-ca");
    make_ca(&pki, "client-ca");
    make_server_cert(&pki, "test-ca");
    make_cert(
        &pki,
        "client-ca",
        "client",
        "/CN=berth-test-client",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    let reg = Registry::start_tls(
        &pki.join("server.crt"),
        &pki.join("server.key"),
        Some(&pki.join("client-ca.crt")),
    );
    // skopeo pushes with the same client certificate (its certs.d layout).
    let skopeo_certs = tmp.path().join("skopeo-certs");
    fs::create_dir(&skopeo_certs).unwrap();
    fs::copy(pki.join("client.crt"), skopeo_certs.join("client.cert")).unwrap();
    fs::copy(pki.join("client.key"), skopeo_certs.join("client.key")).unwrap();
    reg.push(
        &busybox_archive(tmp.path()),
        "mtls/bb:v1",
        &[
            "--format",
            "v2s2",
            "--dest-cert-dir",
            path_str(&skopeo_certs),
        ],
    );
    let certs_d = tmp.path().join("certs.d");
    let host_dir = certs_d.join(&reg.addr);
    fs::create_dir_all(&host_dir).unwrap();
    fs::copy(pki.join("test-ca.crt"), host_dir.join("ca.crt")).unwrap();
    let config = tmp.path().join("config.toml");
    fs::write(&config, format!("certs-d = \"{}\"\n", path_str(&certs_d))).unwrap();
    let name = format!("{}/mtls/bb:v1", reg.addr);
    let env = TestEnv::new();
    let pull = || {
        let mut cmd = env.berth(&["pull", "-q", &name]);
        cmd.env("BERTH_CONFIG", &config).env_remove("BERTH_CERTS_D");
        output_with_timeout(cmd, COMMAND_TIMEOUT)
    };
    // Without a client certificate the server ends the handshake.
    let out = pull();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(": remote error: tls: "), "{err}");
    // A key without its certificate is refused before any request.
    fs::copy(pki.join("client.key"), host_dir.join("client.key")).unwrap();
    let out = pull();
    assert!(
        text(&out.stderr).contains("missing client certificate"),
        "{}",
        text(&out.stderr)
    );
    fs::copy(pki.join("client.crt"), host_dir.join("client.cert")).unwrap();
    let out = pull();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{name}\n"));
}

#[test]
fn a_token_server_over_tls_is_trusted_through_the_registrys_certs_d() {
    // A registry behind a Bearer front that speaks TLS with a test CA, its
    // realm on the same https host: the token fetch must trust certs.d too.
    let tmp = TempDir::new().unwrap();
    let pki = tmp.path().join("pki");
    fs::create_dir(&pki).unwrap();
    make_ca(&pki, "test-ca");
    make_server_cert(&pki, "test-ca");
    let upstream = Registry::start();
    upstream.push(
        &busybox_archive(tmp.path()),
        "team/bb:v1",
        &["--format", "v2s2"],
    );
    let up_port = upstream.addr.rsplit(':').next().unwrap().to_string();
    let port_file = tmp.path().join("port");
    common::enter_own_netns();
    let mut front = std::process::Command::new("python3")
        .arg(repo_root().join("crates/berth-registry/tests/token_server.py"))
        .arg(&port_file)
        .arg(tmp.path().join("token.log"))
        .args(["alice", "pw", &up_port])
        .env("TLS_CERT", pki.join("server.crt"))
        .env("TLS_KEY", pki.join("server.key"))
        .spawn()
        .unwrap();
    let port: u16 = poll(
        "the token front's port",
        std::time::Duration::from_secs(30),
        || fs::read_to_string(&port_file).ok()?.trim().parse().ok(),
    );
    let addr = format!("127.0.0.1:{port}");
    let certs_d = tmp.path().join("certs.d");
    fs::create_dir_all(certs_d.join(&addr)).unwrap();
    fs::copy(pki.join("test-ca.crt"), certs_d.join(&addr).join("ca.crt")).unwrap();
    let config = tmp.path().join("config.toml");
    fs::write(&config, format!("certs-d = \"{}\"\n", path_str(&certs_d))).unwrap();
    let docker_config = tmp.path().join("docker-config");
    let env = TestEnv::new();
    let run = |args: &[&str], stdin: &str| {
        let mut cmd = env.berth(args);
        cmd.env("BERTH_CONFIG", &config)
            .env_remove("BERTH_CERTS_D")
            .env("DOCKER_CONFIG", &docker_config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut i = child.stdin.take().unwrap();
            let _ = i.write_all(stdin.as_bytes());
        }
        child.wait_with_output().unwrap()
    };
    let out = run(&["login", "-u", "alice", "--password-stdin", &addr], "pw\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let name = format!("{addr}/team/bb:v1");
    let out = run(&["pull", &name], "");
    let _ = front.kill();
    let _ = front.wait();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.ok(&["run", "--rm", &name, "echo", "tokens over tls"]),
        "tokens over tls\n"
    );
}
