//! `berth login` / `berth logout` against real registries on 127.0.0.1:
//! Debian's `docker-registry` behind htpasswd Basic auth, and a Bearer
//! front with its token server (crates/berth-registry/tests/
//! token_server.py). Credentials live in a temp HOME/DOCKER_CONFIG, never
//! the real ~/.docker; a credential helper is a shell script on PATH.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret pw:1";

/// A server the test started, killed by its PID when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait_listening(port: u16) {
    poll("the server to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
}

/// `docker-registry` with its own config and storage, behind htpasswd.
fn htpasswd_registry() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success(), "htpasswd: {out:?}");
    fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
    let port = free_port();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: test-realm\n    path: {d}/htpasswd\n",
        d = dir.path().display()
    );
    fs::write(dir.path().join("config.yml"), config).unwrap();
    common::enter_own_netns();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        port,
        _dir: dir,
    };
    wait_listening(port);
    server
}

/// The Bearer front and token server (token_server.py).
fn token_registry() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let script = repo_root().join("crates/berth-registry/tests/token_server.py");
    common::enter_own_netns();
    let child = Command::new("python3")
        .arg(script)
        .arg(&port_file)
        .arg(dir.path().join("log"))
        .args([USER, PASSWORD])
        .spawn()
        .unwrap();
    let port = poll("the token server's port", Duration::from_secs(30), || {
        fs::read_to_string(&port_file).ok()?.trim().parse().ok()
    });
    Server {
        child,
        port,
        _dir: dir,
    }
}

/// A temp HOME with its `.docker`, and a bin dir put first on PATH.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        fs::create_dir(dir.path().join(".docker")).unwrap();
        Home { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join(".docker/config.json")
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(self.config()).unwrap()).unwrap()
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// `berth ARGS` with this HOME and DOCKER_CONFIG, `stdin` fed to it.
    fn berth(&self, env: &TestEnv, args: &[&str], stdin: &str) -> Output {
        let mut cmd = env.berth(args);
        let path = format!(
            "{}:{}",
            self.bin().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join(".docker"))
            .env("PATH", path)
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        // berth may exit (a refused command line) before it reads stdin.
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child.wait_with_output().unwrap()
    }
}

fn text_of(out: &Output) -> (String, String, i32) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn b64(s: &str) -> String {
    // The standard alphabet, padded: what Docker writes in `auth`.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const UNENCRYPTED: &str = "Configure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n";

#[test]
fn basic_auth_login_and_logout() {
    let reg = htpasswd_registry();
    let env = TestEnv::new();
    let home = Home::new();
    let addr = reg.addr();
    // Keys berth does not own are kept as they were.
    fs::write(
        home.config(),
        "{\n\t\"psFormat\": \"table {{.ID}}\",\n\t\"auths\": {\n\t\t\"other:1\": {\n\t\t\t\"auth\": \"eDp5\"\n\t\t}\n\t}\n}",
    )
    .unwrap();
    let before = fs::read(home.config()).unwrap();

    // A wrong password: docker's words, exit 1, the file untouched.
    let (out, err, code) =
        text_of(&home.berth(&env, &["login", "-u", USER, "-p", "wrong", &addr], ""));
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\nError response from daemon: login attempt to http://{addr}/v2/ failed with status: 401 Unauthorized\n")
    );
    assert_eq!(fs::read(home.config()).unwrap(), before);

    // The right one on the command line.
    let (out, err, code) =
        text_of(&home.berth(&env, &["login", "-u", USER, "-p", PASSWORD, &addr], ""));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Login Succeeded\n");
    let path = home.config();
    assert_eq!(
        err,
        format!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n\nWARNING! Your credentials are stored unencrypted in '{}'.\n{UNENCRYPTED}\n", path.display())
    );
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let cfg = home.config_json();
    assert_eq!(cfg["psFormat"], "table {{.ID}}");
    assert_eq!(cfg["auths"]["other:1"]["auth"], "eDp5");
    assert_eq!(
        cfg["auths"][&addr],
        serde_json::json!({"auth": b64(&format!("{USER}:{PASSWORD}"))})
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains(PASSWORD), "{text}");

    // --password-stdin (a trailing newline is not part of it), with a scheme.
    let (out, err, code) = text_of(&home.berth(
        &env,
        &[
            "login",
            "-u",
            USER,
            "--password-stdin",
            &format!("http://{addr}/"),
        ],
        &format!("{PASSWORD}\n"),
    ));
    assert_eq!((out.as_str(), code), ("Login Succeeded\n", 0), "{err}");
    assert!(!err.contains("--password via the CLI"), "{err}");
    assert!(!err.contains(PASSWORD));
    // No flags: the stored credentials.
    let (out, err, code) = text_of(&home.berth(&env, &["login", &addr], ""));
    assert_eq!((out.as_str(), code), ("Login Succeeded\n", 0), "{err}");
    assert!(
        err.starts_with(&format!(
            "Authenticating with existing credentials... [Username: {USER}]\n"
        )),
        "{err}"
    );

    // logout: only this registry's entry goes.
    let (out, err, code) = text_of(&home.berth(&env, &["logout", &addr], ""));
    assert_eq!(
        (out, err.as_str(), code),
        (format!("Removing login credentials for {addr}\n"), "", 0)
    );
    let cfg = home.config_json();
    assert!(cfg["auths"].get(&addr).is_none(), "{cfg}");
    assert_eq!(cfg["auths"]["other:1"]["auth"], "eDp5");
    assert_eq!(cfg["psFormat"], "table {{.ID}}");
    // Logged out, a login without a password cannot prompt here.
    let (_, err, code) = text_of(&home.berth(&env, &["login", &addr], ""));
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error: Cannot perform an interactive login from a non TTY device\n"
    );
}

#[test]
fn refused_command_lines_write_nothing() {
    let env = TestEnv::new();
    let home = Home::new();
    for (args, want) in [
        (
            vec![
                "login",
                "-u",
                "a",
                "-p",
                "b",
                "--password-stdin",
                "127.0.0.1:9",
            ],
            "conflicting options: cannot specify both --password and --password-stdin\n",
        ),
        (
            vec!["login", "--password-stdin", "127.0.0.1:9"],
            "the --password-stdin option requires --username to be set\n",
        ),
        (
            vec!["login", "-u", "", "-p", "x", "127.0.0.1:9"],
            "username is empty\n",
        ),
        (
            vec!["login", "-u", "a", "-p", "", "127.0.0.1:9"],
            "password is empty\n",
        ),
        (
            vec!["login", "-u", "a", "127.0.0.1:9"],
            "Error: Cannot perform an interactive login from a non TTY device\n",
        ),
    ] {
        let (out, err, code) = text_of(&home.berth(&env, &args, "pw\n"));
        assert_eq!(
            (out.as_str(), err.as_str(), code),
            ("", want, 1),
            "{args:?}"
        );
    }
    let (_, err, code) = text_of(&home.berth(&env, &["login", "a", "b"], ""));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("berth: 'berth login' requires at most 1 argument\n"),
        "{err}"
    );
    // Nothing listens on port 9 of loopback: the registry cannot be asked.
    let (_, err, code) = text_of(&home.berth(
        &env,
        &["login", "-u", "a", "--password-stdin", "127.0.0.1:9"],
        "pw",
    ));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error response from daemon: Get \"http://127.0.0.1:9/v2/\": "),
        "{err}"
    );
    // logout of nothing makes no file, as docker's.
    let (out, _, code) = text_of(&home.berth(&env, &["logout", "127.0.0.1:9"], ""));
    assert_eq!(
        (out.as_str(), code),
        ("Removing login credentials for 127.0.0.1:9\n", 0)
    );
    assert!(!home.config().exists());
}

/// A `docker-credential-test` that keeps what it is given in a file.
fn install_helper(home: &Home) -> PathBuf {
    let store = home.dir.path().join("helper-store");
    let script = home.bin().join("docker-credential-test");
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
in=$(cat)
case "$1" in
  store) printf '%s' "$in" > {s} ;;
  get) if [ -f {s} ] && grep -q "\"ServerURL\":\"$in\"" {s}; then cat {s}; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) rm -f {s} ;;
  *) exit 2 ;;
esac
"#,
            s = store.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    store
}

#[test]
fn credential_helper_holds_the_secret() {
    let reg = htpasswd_registry();
    let env = TestEnv::new();
    let home = Home::new();
    let store = install_helper(&home);
    let addr = reg.addr();
    fs::write(home.config(), r#"{"credsStore": "test"}"#).unwrap();
    let (out, err, code) = text_of(&home.berth(
        &env,
        &["login", "-u", USER, "--password-stdin", &addr],
        PASSWORD,
    ));
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("Login Succeeded\n", "", 0)
    );
    let cfg = home.config_json();
    assert_eq!(cfg["credsStore"], "test");
    assert_eq!(cfg["auths"][&addr], serde_json::json!({}));
    assert!(!fs::read_to_string(home.config())
        .unwrap()
        .contains(PASSWORD));
    let kept: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&store).unwrap()).unwrap();
    assert_eq!(
        kept,
        serde_json::json!({"ServerURL": addr, "Username": USER, "Secret": PASSWORD})
    );
    // The helper's credentials work for a login without flags.
    let (out, _, code) = text_of(&home.berth(&env, &["login", &addr], ""));
    assert_eq!((out.as_str(), code), ("Login Succeeded\n", 0));
    // logout erases them in the helper too.
    let (out, _, code) = text_of(&home.berth(&env, &["logout", &addr], ""));
    assert_eq!(
        (out, code),
        (format!("Removing login credentials for {addr}\n"), 0)
    );
    assert!(!store.exists());
    assert!(home.config_json()["auths"].get(&addr).is_none());
}

#[test]
fn bearer_token_login() {
    let reg = token_registry();
    let env = TestEnv::new();
    let home = Home::new();
    let addr = reg.addr();
    let (out, err, code) = text_of(&home.berth(
        &env,
        &["login", "-u", USER, "--password-stdin", &addr],
        "wrong",
    ));
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        err,
        format!("Error response from daemon: Get \"http://{addr}/v2/\": unauthorized: incorrect username or password\n")
    );
    assert!(!home.config().exists());

    let (out, err, code) = text_of(&home.berth(
        &env,
        &["login", "-u", USER, "--password-stdin", &addr],
        PASSWORD,
    ));
    assert_eq!((out.as_str(), code), ("Login Succeeded\n", 0), "{err}");
    // The token server's refresh token is kept instead of the password, as
    // Docker keeps it.
    let cfg = home.config_json();
    assert_eq!(
        cfg["auths"][&addr],
        serde_json::json!({"auth": b64(&format!("{USER}:")), "identitytoken": "refresh-for-alice"})
    );
    assert!(!fs::read_to_string(home.config())
        .unwrap()
        .contains(PASSWORD));
    // And it logs in again through the OAuth2 form.
    let (out, err, code) = text_of(&home.berth(&env, &["login", &addr], ""));
    assert_eq!((out.as_str(), code), ("Login Succeeded\n", 0), "{err}");
    let log = fs::read_to_string(reg._dir.path().join("log")).unwrap();
    assert!(log.contains("\"refresh_ok\": true"), "{log}");
    assert!(!log.contains(PASSWORD));
}

#[test]
fn b64_is_the_standard_alphabet() {
    assert_eq!(b64("alice:"), "YWxpY2U6");
    assert_eq!(b64("ab"), "YWI=");
    assert_eq!(b64("a"), "YQ==");
}

/// `berth ARGS` on a terminal it leads (a pseudo-terminal), as a user
/// types into it.
struct Terminal {
    master: fs::File,
    child: Child,
    seen: Vec<u8>,
}

impl Terminal {
    fn spawn(env: &TestEnv, home: &Home, args: &[&str]) -> Terminal {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        use std::os::fd::OwnedFd;
        use std::os::unix::process::CommandExt as _;
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave: OwnedFd = fs::File::options()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap()
            .into();
        let mut cmd = env.berth(args);
        cmd.env("HOME", home.dir.path())
            .env("DOCKER_CONFIG", home.dir.path().join(".docker"))
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and the TIOCSCTTY ioctl are async-signal-safe and
        // only touch the child's own process state.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd);
        rustix::io::ioctl_fionbio(&master, true).unwrap();
        Terminal {
            master: fs::File::from(master),
            child,
            seen: Vec::new(),
        }
    }

    /// Everything shown so far, once `needle` is part of it.
    fn wait_for(&mut self, needle: &str) -> String {
        use std::io::Read as _;
        poll(needle, Duration::from_secs(30), || {
            let mut buf = [0u8; 1024];
            let mut fds = [rustix::event::PollFd::new(
                &self.master,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(
                &mut fds,
                Some(&rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                }),
            );
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
            let shown = String::from_utf8_lossy(&self.seen);
            shown.contains(needle).then(|| shown.into_owned())
        })
    }

    fn send(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
    }
}

/// docker's prompts on a terminal, and the password is not echoed.
#[test]
fn prompts_on_a_terminal() {
    let reg = htpasswd_registry();
    let env = TestEnv::new();
    let home = Home::new();
    let mut t = Terminal::spawn(&env, &home, &["login", &reg.addr()]);
    t.wait_for("Username: ");
    t.send("alice\n");
    t.wait_for("Password: ");
    t.send(&format!("{PASSWORD}\n"));
    let shown = t.wait_for("Login Succeeded");
    assert!(t.child.wait().unwrap().success(), "{shown}");
    assert!(
        !shown.contains(PASSWORD),
        "the password was echoed: {shown}"
    );
    assert!(
        shown.starts_with(
            "Username: alice\r\nPassword: \r\n\r\nWARNING! Your credentials are stored unencrypted"
        ),
        "{shown:?}"
    );
    assert_eq!(
        home.config_json()["auths"][&reg.addr()]["auth"],
        b64(&format!("{USER}:{PASSWORD}"))
    );
}

/// Stored credentials the registry refuses: docker's words, then a
/// prompt with the stored username as its default.
#[test]
fn refused_stored_credentials_prompt_again() {
    let reg = htpasswd_registry();
    let env = TestEnv::new();
    let home = Home::new();
    let addr = reg.addr();
    fs::write(
        home.config(),
        format!(
            r#"{{"auths":{{"{addr}":{{"auth":"{}"}}}}}}"#,
            b64("alice:old")
        ),
    )
    .unwrap();
    let mut t = Terminal::spawn(&env, &home, &["login", &addr]);
    let shown = t.wait_for("Username (alice): ");
    assert!(
        shown.starts_with("Authenticating with existing credentials... [Username: alice]\r\n"),
        "{shown:?}"
    );
    assert!(
        shown.contains(&format!("Login did not succeed, error: Error response from daemon: login attempt to http://{addr}/v2/ failed with status: 401 Unauthorized\r\nUsername (alice): ")),
        "{shown:?}"
    );
    t.send("\n");
    t.wait_for("Password: ");
    t.send(&format!("{PASSWORD}\n"));
    t.wait_for("Login Succeeded");
    assert!(t.child.wait().unwrap().success());
    assert_eq!(
        home.config_json()["auths"][&addr]["auth"],
        b64(&format!("{USER}:{PASSWORD}"))
    );
}

/// A config.json berth cannot read is refused and left as it is (docker
/// warns and overwrites it, losing what it held).
#[test]
fn an_unreadable_config_is_left_alone() {
    let env = TestEnv::new();
    let home = Home::new();
    fs::write(home.config(), "{\"auths\": ").unwrap();
    for args in [
        vec!["login", "-u", USER, "--password-stdin", "127.0.0.1:9"],
        vec!["logout", "127.0.0.1:9"],
    ] {
        let (out, err, code) = text_of(&home.berth(&env, &args, PASSWORD));
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(out, "");
        assert_eq!(
            err,
            format!(
                "Error: {}: EOF while parsing a value at line 1 column 10\n",
                home.config().display()
            )
        );
        assert_eq!(fs::read_to_string(home.config()).unwrap(), "{\"auths\": ");
    }
}

#[test]
fn pull_uses_the_stored_login() {
    let reg = htpasswd_registry();
    let src = TestEnv::with_busybox();
    let home = Home::new();
    let addr = reg.addr();
    // An image in the protected registry, pushed by skopeo with the password.
    let archive = home.dir.path().join("bb.tar");
    src.ok(&["save", "-o", archive.to_str().unwrap(), BB]);
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("--dest-creds={USER}:{PASSWORD}"))
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{addr}/team/bb:v1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = TestEnv::new();
    let image = format!("{addr}/team/bb:v1");
    // Not logged in: Docker's hint, nothing pulled.
    let (_, err, code) = text_of(&home.berth(&env, &["pull", &image], ""));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("docker login") || err.contains("berth login"),
        "{err}"
    );
    assert!(!env.ok(&["images", "-q"]).contains(char::is_alphanumeric));
    // Logged in: the same pull works with the stored credentials.
    let (_, err, code) = text_of(&home.berth(
        &env,
        &["login", "-u", USER, "--password-stdin", &addr],
        PASSWORD,
    ));
    assert_eq!(code, 0, "{err}");
    let (out, err, code) = text_of(&home.berth(&env, &["pull", &image], ""));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    let (out, err, code) =
        text_of(&home.berth(&env, &["run", "--rm", &image, "echo", "pulled"], ""));
    assert_eq!((out.as_str(), code), ("pulled\n", 0), "{err}");
}

#[test]
fn push_uses_the_stored_login() {
    let reg = htpasswd_registry();
    let env = TestEnv::with_busybox();
    let home = Home::new();
    let addr = reg.addr();
    let image = format!("{addr}/team/bb:v1");
    env.ok(&["tag", BB, &image]);
    // Not logged in: Docker's words, exit 1, nothing recorded.
    let (_, err, code) = text_of(&home.berth(&env, &["push", &image], ""));
    assert_eq!((err.as_str(), code), ("no basic auth credentials\n", 1));
    assert_eq!(env.inspect_image(BB)["RepoDigests"], serde_json::json!([]));
    // Logged in: the push goes up with the stored credentials.
    let (_, err, code) = text_of(&home.berth(
        &env,
        &["login", "-u", USER, "--password-stdin", &addr],
        PASSWORD,
    ));
    assert_eq!(code, 0, "{err}");
    let (out, err, code) = text_of(&home.berth(&env, &["push", &image], ""));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": Pushed"), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    // What went up pulls back (with the same login) and runs.
    let other = TestEnv::new();
    let (_, err, code) = text_of(&home.berth(&other, &["pull", &image], ""));
    assert_eq!(code, 0, "{err}");
    let (out, err, code) =
        text_of(&home.berth(&other, &["run", "--rm", &image, "echo", "pushed"], ""));
    assert_eq!((out.as_str(), code), ("pushed\n", 0), "{err}");
}

#[test]
fn pull_and_push_through_token_auth() {
    // A real registry behind the Bearer front: the front hands out tokens
    // and passes requests with USER's token through.
    let upstream = common::registry::Registry::start();
    let up_port: u16 = upstream
        .addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let script = repo_root().join("crates/berth-registry/tests/token_server.py");
    common::enter_own_netns();
    let child = Command::new("python3")
        .arg(script)
        .arg(&port_file)
        .arg(dir.path().join("log"))
        .args([USER, PASSWORD])
        .arg(up_port.to_string())
        .spawn()
        .unwrap();
    let port: u16 = poll("the token front's port", Duration::from_secs(30), || {
        fs::read_to_string(&port_file).ok()?.trim().parse().ok()
    });
    let front = Server {
        child,
        port,
        _dir: dir,
    };
    let src = TestEnv::with_busybox();
    let home = Home::new();
    let archive = home.dir.path().join("bb.tar");
    src.ok(&["save", "-o", archive.to_str().unwrap(), BB]);
    upstream.push(
        &format!("docker-archive:{}", archive.display()),
        "team/bb:v1",
        &["--format", "v2s2"],
    );
    let env = TestEnv::new();
    let image = format!("{}/team/bb:v1", front.addr());
    // An anonymous token is not enough.
    let (_, err, code) = text_of(&home.berth(&env, &["pull", &image], ""));
    assert_eq!(code, 1, "{err}");
    let (_, err, code) = text_of(&home.berth(
        &env,
        &["login", "-u", USER, "--password-stdin", &front.addr()],
        PASSWORD,
    ));
    assert_eq!(code, 0, "{err}");
    // Pull, run, and push back through the front with USER's tokens.
    let (out, err, code) = text_of(&home.berth(&env, &["pull", &image], ""));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    let (out, _, _) = text_of(&home.berth(&env, &["run", "--rm", &image, "echo", "via token"], ""));
    assert_eq!(out, "via token\n");
    let pushed = format!("{}/team/again:v2", front.addr());
    env.ok(&["tag", &image, &pushed]);
    let (out, err, code) = text_of(&home.berth(&env, &["push", &pushed], ""));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("v2: digest: sha256:"), "{out}");
    // It is in the registry behind the front.
    let (manifest, _) = upstream.manifest("team/again:v2");
    assert!(manifest["layers"].as_array().is_some_and(|l| !l.is_empty()));
}
