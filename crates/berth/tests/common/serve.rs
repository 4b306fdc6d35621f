//! `berth serve` for the tests that drive it with real Docker clients: the
//! server on a socket of the test's own store ([`ApiServer`]), and a
//! recording proxy in front of it ([`ApiLog`]) that lists every request a
//! client made with the status it got, so a client's failure names the API
//! call behind it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::TestEnv;

/// A `berth serve` of the test's store on `ROOT/api.sock`, its PID in
/// `ROOT/api.pid`; stopped (SIGTERM, by its PID) when dropped, killed if it
/// does not stop.
pub struct ApiServer {
    pub child: Child,
    /// The socket it listens on.
    pub sock: PathBuf,
    /// Its `--pidfile`.
    pub pidfile: PathBuf,
}

/// How long `berth serve` may take to exit after SIGTERM (it drains for 10 s).
pub const SERVE_STOP: Duration = Duration::from_secs(20);

impl ApiServer {
    /// Starts the server and waits for its readiness line.
    pub fn start(env: &TestEnv) -> ApiServer {
        ApiServer::start_with(env, &[])
    }

    /// The server with `extra` arguments (more hosts, TLS) after its own
    /// socket and pidfile.
    pub fn start_with(env: &TestEnv, extra: &[&str]) -> ApiServer {
        let sock = env.root.path().join("api.sock");
        let pidfile = env.root.path().join("api.pid");
        let host = format!("unix://{}", sock.display());
        let pid_arg = pidfile.to_string_lossy().into_owned();
        let mut args = vec!["serve", "-H", &host, "--pidfile", &pid_arg];
        args.extend_from_slice(extra);
        let mut child = env
            .berth(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("berth serve: {e}"));
        let out = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("berth serve: no stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("berth serve said nothing in 20 s"));
        assert!(
            line.starts_with(&format!("berth serve: API 1.41 listening on {host}")),
            "berth serve's readiness line: {line:?}"
        );
        ApiServer {
            child,
            sock,
            pidfile,
        }
    }

    /// One HTTP/1.1 request on the server's socket (see [`request`]).
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Answer, String> {
        request(&self.sock, method, path, body)
    }

    /// SIGTERM, then its exit status; after [`SERVE_STOP`] it is killed
    /// (SIGKILL, by PID) and the error says so.
    pub fn stop(&mut self) -> Result<ExitStatus, String> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Ok(st);
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + SERVE_STOP;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "berth serve (PID {}) was still running {SERVE_STOP:?} after SIGTERM: killed",
                    self.child.id()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("{e}");
        }
    }
}

/// An answer: its status, its headers (lower-case names) and its body,
/// de-chunked.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of the header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request (`Connection: close`, a JSON body with its
/// length) on the unix socket `sock`. An error is the caller's to report:
/// no answer, or a broken one. A server that answered before reading a
/// body it refuses may reset the connection after its answer: what came
/// before the reset counts.
pub fn request(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Answer, String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let extra = body.map_or(String::new(), |b| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        )
    });
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n{extra}\r\n"
    )
    .map_err(|e| e.to_string())?;
    if let Some(b) = body {
        // A server may answer (413) before it read everything.
        let _ = s.write_all(b);
    }
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(format!("reading the answer: {e}"));
        }
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of header in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A chunked body's content.
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk without its size line")?;
        let size_text = String::from_utf8_lossy(&b[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("a chunk cut short".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// One request a client made through an [`ApiLog`], and what it got.
#[derive(Debug, Default)]
struct Exchange {
    method: String,
    target: String,
    /// The first KiB of the request's body.
    request_body: Vec<u8>,
    /// None until the response's head came back.
    status: Option<u16>,
    /// The first KiB of the response's body when its status is 400 or more.
    error_body: Vec<u8>,
}

type Shared = Arc<Mutex<Exchange>>;

/// How much of a body is kept for the report.
const KEEP: usize = 1024;

/// A proxy on its own unix socket that forwards every byte to a server's
/// socket, reading just enough HTTP/1.1 (heads, lengths, chunks, upgrades)
/// to record each request and the status it got. Its threads end with
/// their connections (or with the test process).
pub struct ApiLog {
    /// Where clients connect (`DOCKER_HOST=unix://…`).
    pub sock: PathBuf,
    log: Arc<Mutex<Vec<Shared>>>,
}

impl ApiLog {
    /// A proxy at `sock` in front of the server socket `upstream`.
    pub fn start(sock: &Path, upstream: &Path) -> ApiLog {
        let _ = std::fs::remove_file(sock);
        let listener =
            UnixListener::bind(sock).unwrap_or_else(|e| panic!("bind {}: {e}", sock.display()));
        let log: Arc<Mutex<Vec<Shared>>> = Arc::default();
        let (up, all) = (upstream.to_path_buf(), log.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { break };
                let (up, all) = (up.clone(), all.clone());
                thread::spawn(move || {
                    if let Ok(server) = UnixStream::connect(&up) {
                        relay(client, server, all);
                    }
                });
            }
        });
        ApiLog {
            sock: sock.to_path_buf(),
            log,
        }
    }

    /// `unix://SOCK`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Every exchange so far, one line each (`METHOD TARGET -> STATUS`).
    pub fn lines(&self) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .map(|x| describe(&x.lock().unwrap_or_else(|e| e.into_inner()), false))
            .collect()
    }

    /// What a failure message shows: the requests answered with 400 or more
    /// (with the engine's message and the JSON they sent), those never
    /// answered, and the last `tail` requests.
    pub fn report(&self, tail: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let bad: Vec<String> = log
            .iter()
            .map(|x| x.lock().unwrap_or_else(|e| e.into_inner()))
            .filter(|x| x.status.is_none_or(|s| s >= 400))
            .map(|x| describe(&x, true))
            .collect();
        if bad.is_empty() {
            out.push_str("--- no API request failed\n");
        } else {
            out.push_str("--- API requests that failed or got no answer\n");
            for b in bad {
                out.push_str(&b);
                out.push('\n');
            }
        }
        out.push_str(&format!(
            "--- the last {} of {} API requests\n",
            tail.min(log.len()),
            log.len()
        ));
        for x in &log[log.len().saturating_sub(tail)..] {
            out.push_str(&describe(
                &x.lock().unwrap_or_else(|e| e.into_inner()),
                false,
            ));
            out.push('\n');
        }
        out
    }

    /// The exchanges whose status is 400 or more, as `METHOD PATH -> STATUS`
    /// with the path's query left out.
    pub fn failures(&self) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .map(|x| x.lock().unwrap_or_else(|e| e.into_inner()))
            .filter(|x| x.status.is_some_and(|s| s >= 400))
            .map(|x| {
                let path = x.target.split('?').next().unwrap_or_default();
                format!("{} {path} -> {}", x.method, x.status.unwrap_or(0))
            })
            .collect()
    }
}

fn describe(x: &Exchange, detail: bool) -> String {
    let status = x
        .status
        .map_or_else(|| "(no answer)".to_string(), |s| s.to_string());
    let mut s = format!("{} {} -> {status}", x.method, x.target);
    if detail {
        if !x.error_body.is_empty() {
            s.push_str(&format!(
                " {}",
                String::from_utf8_lossy(&x.error_body).trim_end()
            ));
        }
        if x.request_body.first().is_some_and(|b| *b == b'{') {
            s.push_str(&format!(
                "\n      request body: {}",
                String::from_utf8_lossy(&x.request_body).trim_end()
            ));
        }
    }
    s
}

/// Both directions of one connection, each in its own thread.
fn relay(client: UnixStream, server: UnixStream, log: Arc<Mutex<Vec<Shared>>>) {
    let pending: Arc<Mutex<VecDeque<Shared>>> = Arc::default();
    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    let p2 = pending.clone();
    let up = thread::spawn(move || {
        let _ = requests(BufReader::new(client), &s2, &p2, &log);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let _ = responses(BufReader::new(server), &c2, &pending);
    let _ = c2.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// Client to server: request heads recorded, bodies forwarded; after an
/// upgrade request, raw bytes.
fn requests(
    mut rd: BufReader<UnixStream>,
    mut wr: &UnixStream,
    pending: &Mutex<VecDeque<Shared>>,
    log: &Mutex<Vec<Shared>>,
) -> std::io::Result<()> {
    loop {
        let Some(head) = read_head(&mut rd)? else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut first = text.lines().next().unwrap_or_default().split(' ');
        let x: Shared = Arc::new(Mutex::new(Exchange {
            method: first.next().unwrap_or_default().to_string(),
            target: first.next().unwrap_or_default().to_string(),
            ..Exchange::default()
        }));
        pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(x.clone());
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(x.clone());
        wr.write_all(&head)?;
        if header(&text, "upgrade").is_some() {
            std::io::copy(&mut rd, &mut wr)?;
            return Ok(());
        }
        let mut keep = |data: &[u8]| {
            let mut x = x.lock().unwrap_or_else(|e| e.into_inner());
            let room = KEEP.saturating_sub(x.request_body.len()).min(data.len());
            x.request_body.extend_from_slice(&data[..room]);
        };
        copy_body(&mut rd, wr, &text, None, &mut keep)?;
    }
}

/// Server to client: each response's status given to the oldest request
/// without one; a 101 turns the connection into raw bytes.
fn responses(
    mut rd: BufReader<UnixStream>,
    mut wr: &UnixStream,
    pending: &Mutex<VecDeque<Shared>>,
) -> std::io::Result<()> {
    loop {
        let Some(head) = read_head(&mut rd)? else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&head).into_owned();
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            wr.write_all(&head)?;
            continue; // an interim response: the final one follows
        }
        // Recorded before the client can see it.
        let x = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let is_head = x
            .as_ref()
            .is_some_and(|x| x.lock().unwrap_or_else(|e| e.into_inner()).method == "HEAD");
        if let Some(x) = &x {
            x.lock().unwrap_or_else(|e| e.into_inner()).status = Some(status);
        }
        wr.write_all(&head)?;
        if status == 101 {
            std::io::copy(&mut rd, &mut wr)?;
            return Ok(());
        }
        if is_head || status == 204 || status == 304 {
            continue;
        }
        let mut keep = |data: &[u8]| {
            if let Some(x) = x.as_ref().filter(|_| status >= 400) {
                let mut x = x.lock().unwrap_or_else(|e| e.into_inner());
                let room = KEEP.saturating_sub(x.error_body.len()).min(data.len());
                x.error_body.extend_from_slice(&data[..room]);
            }
        };
        let until_eof = copy_body(&mut rd, wr, &text, Some(status), &mut keep)?;
        if until_eof {
            return Ok(());
        }
    }
}

/// A message head up to its blank line, or None at the end of the stream.
fn read_head(rd: &mut BufReader<UnixStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let n = rd.read_until(b'\n', &mut head)?;
        if n == 0 {
            return Ok(None);
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
            return Ok(Some(head));
        }
    }
}

/// The value of header `name` (lower case) in a head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Forwards one message body (chunked, by length, or — for a response with
/// neither — to the end of the stream, which returns true), each piece of
/// data shown to `keep` before it is forwarded (so a report made once the
/// client has its answer has it all).
fn copy_body(
    rd: &mut BufReader<UnixStream>,
    mut wr: &UnixStream,
    head: &str,
    response: Option<u16>,
    keep: &mut dyn FnMut(&[u8]),
) -> std::io::Result<bool> {
    let chunked = header(head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let mut line = Vec::new();
            if rd.read_until(b'\n', &mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            wr.write_all(&line)?;
            let size = String::from_utf8_lossy(&line);
            let size = size.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16).unwrap_or(0);
            if size == 0 {
                // Trailers, up to the blank line.
                loop {
                    let mut t = Vec::new();
                    if rd.read_until(b'\n', &mut t)? == 0 || t == b"\r\n" {
                        wr.write_all(&t)?;
                        return Ok(false);
                    }
                    wr.write_all(&t)?;
                }
            }
            pass(rd, wr, size, keep)?;
            let mut crlf = Vec::new();
            rd.read_until(b'\n', &mut crlf)?;
            wr.write_all(&crlf)?;
        }
    }
    if let Some(n) = header(head, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        pass(rd, wr, n, keep)?;
        return Ok(false);
    }
    if response.is_some() {
        let mut buf = [0u8; 16384];
        loop {
            let got = rd.read(&mut buf)?;
            if got == 0 {
                return Ok(true);
            }
            keep(&buf[..got]);
            wr.write_all(&buf[..got])?;
        }
    }
    Ok(false)
}

/// Forwards `n` bytes, each piece shown to `keep` first.
fn pass(
    rd: &mut BufReader<UnixStream>,
    mut wr: &UnixStream,
    mut n: u64,
    keep: &mut dyn FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut buf = [0u8; 16384];
    while n > 0 {
        let want = usize::try_from(n).unwrap_or(buf.len()).min(buf.len());
        let got = rd.read(&mut buf[..want])?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        keep(&buf[..got]);
        wr.write_all(&buf[..got])?;
        n -= got as u64;
    }
    Ok(())
}
