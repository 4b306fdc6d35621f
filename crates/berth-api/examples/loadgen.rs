//! A closed-loop HTTP/1.1 load generator over a unix socket, for
//! `bench/api.sh`: `berth serve` and dockerd measured with the same client.
//!
//! ```sh
//! cargo run --release -p berth-api --example loadgen -- \
//!     --socket /run/berth/berth.sock --path /v1.41/containers/json \
//!     --connections 32 --duration 10 --warmup 1
//! ```
//!
//! It opens `--connections` keep-alive connections to the socket; each sends
//! `GET PATH`, reads the whole response (Content-Length or chunked body) and
//! only then sends the next request, for `--warmup` seconds whose requests
//! are not counted, then for `--duration` seconds (or until `--requests`
//! requests have been counted). The latency of a request is from the write
//! of its first byte to the read of its body's last. It prints one JSON
//! object on stdout: requests, errors, requests per second, latency
//! percentiles (p50, p90, p99, max; nearest rank), the size of a response,
//! and the number of items of the first response when it is a JSON array
//! (so a run shows what was listed), and its own CPU time over the whole run
//! (warmup included) beside the run's wall time. A response that is not 200 counts as an
//! error, as does a broken connection (which is made again).
//!
//! It runs on one thread by default (`--threads`): the client shares the
//! machine with the server it measures, and one thread is plenty for the
//! request rates of a server doing real work per request.
//!
//! The HTTP client is written out here (the status line, the headers the
//! body's framing needs, chunked decoding) rather than taken from hyper:
//! hyper's client half needs crates the workspace does not otherwise hold.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const USAGE: &str = "usage: loadgen --socket PATH --path /vX.Y/... [--connections N] \
[--duration SECS | --requests N] [--warmup SECS] [--threads N] [--host NAME]";

#[derive(Clone, Debug)]
struct Args {
    socket: PathBuf,
    path: String,
    host: String,
    connections: usize,
    duration: Duration,
    requests: Option<u64>,
    warmup: Duration,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut socket = None;
    let mut path = None;
    let mut host = "docker".to_string();
    let mut connections = 32usize;
    let mut duration = Duration::from_secs(10);
    let mut requests = None;
    let mut warmup = Duration::from_secs(1);
    let mut threads = 1usize;
    let mut it = std::env::args().skip(1);
    let secs = |v: String| -> Result<Duration, String> {
        let f: f64 = v
            .parse()
            .map_err(|_| format!("not a number of seconds: {v:?}"))?;
        if !(0.0..=86400.0).contains(&f) {
            return Err(format!("seconds out of range: {v:?}"));
        }
        Ok(Duration::from_secs_f64(f))
    };
    let count =
        |v: String| -> Result<u64, String> { v.parse().map_err(|_| format!("not a count: {v:?}")) };
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            return Err(USAGE.to_string());
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        match a.as_str() {
            "--socket" | "-s" => socket = Some(PathBuf::from(v)),
            "--path" | "-p" => path = Some(v),
            "--host" => host = v,
            "--connections" | "-c" => connections = count(v)? as usize,
            "--duration" | "-d" => duration = secs(v)?,
            "--requests" | "-n" => requests = Some(count(v)?),
            "--warmup" | "-w" => warmup = secs(v)?,
            "--threads" | "-t" => threads = count(v)? as usize,
            _ => return Err(format!("unknown option {a:?}\n{USAGE}")),
        }
    }
    let socket = socket.ok_or_else(|| format!("--socket is required\n{USAGE}"))?;
    let path = path.ok_or_else(|| format!("--path is required\n{USAGE}"))?;
    if !path.starts_with('/') {
        return Err(format!("--path must start with '/': {path:?}"));
    }
    if connections == 0 || threads == 0 {
        return Err("--connections and --threads must be at least 1".into());
    }
    Ok(Args {
        socket,
        path,
        host,
        connections,
        duration,
        requests,
        warmup,
        threads,
    })
}

/// One response as far as the load generator cares.
struct Response {
    status: u16,
    body: BytesMut,
    /// The server said `Connection: close` (or gave a body framed by EOF).
    close: bool,
}

/// One keep-alive connection and what was read past the last response.
struct Conn {
    stream: UnixStream,
    buf: BytesMut,
}

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

impl Conn {
    async fn connect(path: &PathBuf) -> std::io::Result<Conn> {
        Ok(Conn {
            stream: UnixStream::connect(path).await?,
            buf: BytesMut::with_capacity(64 * 1024),
        })
    }

    /// Reads more into the buffer; EOF is an error (mid-response).
    async fn fill(&mut self) -> std::io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        Ok(())
    }

    /// The index just past the next CRLF, reading as needed.
    async fn line_end(&mut self) -> std::io::Result<usize> {
        let mut from = 0;
        loop {
            if let Some(i) = find(&self.buf, b"\r\n", from) {
                return Ok(i + 2);
            }
            from = self.buf.len().saturating_sub(1);
            self.fill().await?;
        }
    }

    async fn response(&mut self) -> std::io::Result<Response> {
        // the head
        let mut from = 0;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n", from) {
                break i + 4;
            }
            from = self.buf.len().saturating_sub(3);
            if self.buf.len() > 1 << 20 {
                return Err(io_err("response head over 1 MiB".into()));
            }
            self.fill().await?;
        };
        let head = self.buf.split_to(head_end);
        let text = std::str::from_utf8(&head).map_err(|_| io_err("head not UTF-8".into()))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io_err(format!("bad status line {status_line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(
                    v.parse::<usize>()
                        .map_err(|_| io_err(format!("bad Content-Length {v:?}")))?,
                );
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            }
        }
        // the body
        let body = if status == 204 || status == 304 || (100..200).contains(&status) {
            BytesMut::new()
        } else if chunked {
            let mut body = BytesMut::new();
            loop {
                let end = self.line_end().await?;
                let line = self.buf.split_to(end);
                let size_text = std::str::from_utf8(&line[..line.len() - 2])
                    .map_err(|_| io_err("chunk size not UTF-8".into()))?;
                let size_text = size_text.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| io_err(format!("bad chunk size {size_text:?}")))?;
                if size == 0 {
                    // trailers, up to an empty line
                    loop {
                        let end = self.line_end().await?;
                        self.buf.advance(end);
                        if end == 2 {
                            break;
                        }
                    }
                    break body;
                }
                while self.buf.len() < size + 2 {
                    self.fill().await?;
                }
                body.extend_from_slice(&self.buf[..size]);
                if &self.buf[size..size + 2] != b"\r\n" {
                    return Err(io_err("chunk not followed by CRLF".into()));
                }
                self.buf.advance(size + 2);
            }
        } else if let Some(n) = length {
            while self.buf.len() < n {
                self.fill().await?;
            }
            self.buf.split_to(n)
        } else {
            // framed by the connection's end
            loop {
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            close = true;
            self.buf.split()
        };
        Ok(Response {
            status,
            body,
            close,
        })
    }
}

/// What one connection did in the measured phase.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    bytes: u64,
    last_done: Option<Instant>,
    first_error: Option<String>,
    /// The first 200 body this connection read (kept by connection 0 only).
    sample: Option<BytesMut>,
}

struct Plan {
    args: Args,
    request: Vec<u8>,
    measure_from: Instant,
    end: Instant,
    /// Requests claimed in the measured phase (`--requests` mode).
    claimed: AtomicU64,
}

async fn run_connection(plan: Arc<Plan>, index: usize) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<Conn> = None;
    let mut consecutive_errors = 0u32;
    loop {
        let start = Instant::now();
        if start >= plan.end {
            break;
        }
        let measured = start >= plan.measure_from;
        if measured {
            if let Some(n) = plan.args.requests {
                if plan.claimed.fetch_add(1, Ordering::Relaxed) >= n {
                    break;
                }
            }
        }
        let result = async {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(Conn::connect(&plan.args.socket).await?),
            };
            c.stream.write_all(&plan.request).await?;
            c.response().await
        }
        .await;
        let done = Instant::now();
        match result {
            Ok(r) => {
                consecutive_errors = 0;
                if r.close {
                    conn = None;
                }
                if r.status == 200 && index == 0 && t.sample.is_none() {
                    t.sample = Some(r.body.clone());
                }
                if measured {
                    let us = done.duration_since(start).as_micros();
                    t.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    t.bytes += r.body.len() as u64;
                    t.last_done = Some(done);
                    if r.status != 200 {
                        t.errors += 1;
                        *t.statuses.entry(r.status).or_default() += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(format!(
                                "HTTP {}: {}",
                                r.status,
                                String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).trim()
                            ));
                        }
                    }
                }
            }
            Err(e) => {
                conn = None;
                consecutive_errors += 1;
                if measured {
                    t.errors += 1;
                    t.last_done = Some(done);
                }
                if t.first_error.is_none() {
                    t.first_error = Some(e.to_string());
                }
                if consecutive_errors >= 100 {
                    // the server is gone: stop this connection
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    t
}

/// The nearest-rank percentile of sorted samples, in ms.
fn percentile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

/// This process's CPU time so far (user + system), from /proc/self/stat
/// (in USER_HZ ticks, 100 a second on Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // the fields after the command name, which is in parentheses
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn round3(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!((x * 1000.0).round() / 1000.0)
    } else {
        serde_json::Value::Null
    }
}

async fn run(args: Args) -> serde_json::Value {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: berth-loadgen\r\nAccept: application/json\r\n\r\n",
        args.path, args.host
    )
    .into_bytes();
    let t0 = Instant::now();
    let measure_from = t0 + args.warmup;
    let end = if args.requests.is_some() {
        // bounded by the count; a day is "forever" here
        measure_from + Duration::from_secs(86400)
    } else {
        measure_from + args.duration
    };
    let plan = Arc::new(Plan {
        args: args.clone(),
        request,
        measure_from,
        end,
        claimed: AtomicU64::new(0),
    });
    let mut tasks = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        tasks.push(tokio::spawn(run_connection(plan.clone(), i)));
    }
    let mut all = Vec::new();
    let mut errors = 0u64;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    let mut last_done = measure_from;
    let mut first_error = None;
    let mut sample = None;
    for task in tasks {
        let t = match task.await {
            Ok(t) => t,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("connection task failed: {e}"));
                continue;
            }
        };
        all.extend_from_slice(&t.latencies_us);
        errors += t.errors;
        for (k, v) in t.statuses {
            *statuses.entry(k).or_default() += v;
        }
        bytes += t.bytes;
        if let Some(d) = t.last_done {
            last_done = last_done.max(d);
        }
        if first_error.is_none() {
            first_error = t.first_error;
        }
        if sample.is_none() {
            sample = t.sample;
        }
    }
    all.sort_unstable();
    let n = all.len() as u64;
    let seconds = last_done.duration_since(measure_from).as_secs_f64();
    let ok = n.saturating_sub(statuses.values().sum::<u64>());
    let mean_ms = if all.is_empty() {
        f64::NAN
    } else {
        all.iter().map(|&x| f64::from(x)).sum::<f64>() / all.len() as f64 / 1000.0
    };
    let items = sample
        .as_ref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .map(|v| match v {
            serde_json::Value::Array(a) => serde_json::json!(a.len()),
            serde_json::Value::Object(_) => serde_json::json!("object"),
            _ => serde_json::json!("other"),
        });
    serde_json::json!({
        "path": args.path,
        "connections": args.connections,
        "threads": args.threads,
        "warmup_s": args.warmup.as_secs_f64(),
        "seconds": round3(seconds),
        "requests": n,
        "ok": ok,
        "errors": errors,
        "non_200": statuses.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "first_error": first_error,
        "rps": round3(if seconds > 0.0 { ok as f64 / seconds } else { f64::NAN }),
        "p50_ms": round3(percentile_ms(&all, 0.50)),
        "p90_ms": round3(percentile_ms(&all, 0.90)),
        "p99_ms": round3(percentile_ms(&all, 0.99)),
        "max_ms": round3(percentile_ms(&all, 1.0)),
        "mean_ms": round3(mean_ms),
        "bytes_per_response": bytes.checked_div(n).unwrap_or(0),
        "items": items,
        "client_cpu_s": cpu_seconds().map(round3),
        "client_wall_s": round3(t0.elapsed().as_secs_f64()),
    })
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: starting the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let report = rt.block_on(run(args));
    println!("{report}");
    let ok = report.get("ok").and_then(|v| v.as_u64()).unwrap_or(0);
    if ok == 0 {
        eprintln!(
            "loadgen: no request succeeded: {}",
            report
                .get("first_error")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
        );
        return std::process::ExitCode::from(1);
    }
    std::process::ExitCode::SUCCESS
}
