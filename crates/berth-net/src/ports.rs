//! Published ports: `-p`/`--publish` and `--expose` as the docker CLI parses
//! them, the `PORTS` column of `docker ps`, the lines of `docker port`, and
//! host ports held by real sockets.
//!
//! # Whose grammar
//!
//! The parsing follows the docker CLI 28.2.2, which parses `-p` with
//! go-connections v0.5.0 (`nat.ParsePortSpecs`) and `--expose` itself.
//! Every error text below was checked against that CLI (`docker create`
//! against a private reference daemon); the tests record the exact strings.
//! The `docker ps` and `docker port` output was checked with the same CLI
//! against a stub of the Engine API serving chosen ports.
//! Known differences of other clients, for the record:
//!
//! - the docker CLI 20.10 capitalises and ends with a period (`Invalid
//!   containerPort: x.`, `Invalid ip address: abc.`) and, with its older
//!   go-connections, rejects an unbracketed IPv6 host address (`::1:80:80`:
//!   `Invalid ip address ::1: address ::1:: too many colons in address.`),
//!   which 28.2.2 accepts;
//! - the docker CLI 20.10 writes IPv6 host addresses unbracketed in
//!   `docker ps` and `docker port` (`:::8080->80/tcp`) and does not sort
//!   `docker port`'s lines;
//! - go-connections v0.8.0 (newer CLIs) checks the protocol first and
//!   rejects `80/tcp/udp` and `80-81-82`, which v0.5.0 reads as `80/tcp`
//!   and `80-81`.
//!
//! # What the maps look like
//!
//! A parsed `-p` gives `(container port key, binding)` pairs; the key is
//! Docker's `"80/tcp"` and the binding Docker's `{"HostIp","HostPort"}`
//! ([`PortBinding`]), with the host port as Docker writes it: `""` (any free
//! port), `"8080"`, or `"8000-8010"` (any free port of that range, for a
//! single container port).

use berth_types::PortBinding;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

/// A `-p`, `--expose` or `docker port` argument Docker would refuse; the
/// message is the docker CLI's (28.2.2) word for word, without the
/// `docker: ` prefix and the `Run 'docker create --help'` trailer it adds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// No container port: `''`, `/tcp`, `1.2.3.4:`. Docker prints the whole
    /// spec followed by `<empty>`.
    #[error("no port specified: {0}<empty>")]
    NoPortSpecified(String),
    /// A host address that is not an IP address (`abc:80:80`); bracketed
    /// addresses are unbracketed first.
    #[error("invalid IP address: {0}")]
    InvalidIp(String),
    /// A bracketed host address that does not split (`[::1]x:80:80`): the
    /// address as written and Go's `net.SplitHostPort` complaint about it
    /// with a `:` appended (`address [::1]x:: missing port in address`).
    #[error("invalid IP address {ip}: {reason}")]
    InvalidBracketedIp { ip: String, reason: String },
    /// The container port (or range) does not parse.
    #[error("invalid containerPort: {0}")]
    InvalidContainerPort(String),
    /// The host port (or range) does not parse.
    #[error("invalid hostPort: {0}")]
    InvalidHostPort(String),
    /// A container range and a host port (range) of a different length.
    #[error("invalid ranges specified for container and host Ports: {container} and {host}")]
    RangeMismatch { container: String, host: String },
    /// Not tcp, udp or sctp (in any case); as written.
    #[error("invalid proto: {0}")]
    InvalidProto(String),
    /// The long syntax (`target=80,published=8080`) with a part that is not
    /// `name=value`.
    #[error("invalid publish opts format (should be name=value but got '{0}')")]
    PublishOptsFormat(String),
    /// `--expose` with a `:` in it.
    #[error("invalid port format for --expose: {0}")]
    ExposeFormat(String),
    /// `--expose` whose port (range) does not parse; `reason` is Go's.
    #[error("invalid range format for --expose: {spec}, error: {reason}")]
    ExposeRange { spec: String, reason: String },
    /// `docker port C PORT` with a port that is not a number.
    #[error("Error: invalid port ({port}): {reason}")]
    InvalidPortQuery { port: String, reason: String },
    /// `docker port C PORT` for a port with no host side.
    #[error("Error: No public port '{port}' published for {container}")]
    NoPublicPort { port: String, container: String },
}

// ---------------------------------------------------------------------------
// Go's number and range parsing, with Go's error words.

/// Why Go's `nat.ParsePortRange` (go-connections v0.5.0) refused a range.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RangeError {
    /// `empty string specified for ports`
    Empty,
    /// `strconv.ParseUint: parsing "x": invalid syntax`
    Syntax(String),
    /// `strconv.ParseUint: parsing "70000": value out of range`
    OutOfRange(String),
    /// `invalid range specified for port: 90-80`
    Reversed(String),
}

impl std::fmt::Display for RangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RangeError::Empty => f.write_str("empty string specified for ports"),
            RangeError::Syntax(s) => {
                write!(
                    f,
                    "strconv.ParseUint: parsing {}: invalid syntax",
                    go_quote(s)
                )
            }
            RangeError::OutOfRange(s) => {
                write!(
                    f,
                    "strconv.ParseUint: parsing {}: value out of range",
                    go_quote(s)
                )
            }
            RangeError::Reversed(s) => write!(f, "invalid range specified for port: {s}"),
        }
    }
}

/// Go's `strconv.Quote`, close enough for error messages: quotes, with Go's
/// escapes for `"`, `\` and control characters.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseUint(s, 10, 16)`: ASCII digits only (no sign, no
/// spaces; leading zeros are fine), at most 65535. Like Go, a number that
/// grows past the limit is "out of range" even if junk follows it.
fn parse_u16(s: &str) -> Result<u16, RangeError> {
    if s.is_empty() {
        return Err(RangeError::Syntax(String::new()));
    }
    let mut n: u32 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return Err(RangeError::Syntax(s.to_string()));
        }
        n = n * 10 + u32::from(b - b'0');
        if n > u32::from(u16::MAX) {
            return Err(RangeError::OutOfRange(s.to_string()));
        }
    }
    u16::try_from(n).map_err(|_| RangeError::OutOfRange(s.to_string()))
}

/// go-connections v0.5.0 `nat.ParsePortRange`: `80` or `8000-8010`. Only the
/// first two `-`-separated parts count (`80-81-82` is `80-81`).
fn parse_range(s: &str) -> Result<(u16, u16), RangeError> {
    if s.is_empty() {
        return Err(RangeError::Empty);
    }
    if !s.contains('-') {
        let p = parse_u16(s)?;
        return Ok((p, p));
    }
    let mut parts = s.split('-');
    let start = parse_u16(parts.next().unwrap_or_default())?;
    let end = parse_u16(parts.next().unwrap_or_default())?;
    if end < start {
        return Err(RangeError::Reversed(s.to_string()));
    }
    Ok((start, end))
}

/// go-connections v0.5.0 `nat.SplitProtoPort`: `(proto, port)`; `tcp` when
/// no protocol is given, nothing at all when no port is. Only the second
/// `/`-separated part counts as the protocol (`80/tcp/udp` is `80/tcp`).
fn split_proto_port(raw: &str) -> (&str, &str) {
    let mut parts = raw.split('/');
    let port = parts.next().unwrap_or_default();
    if port.is_empty() {
        return ("", "");
    }
    match parts.next() {
        None | Some("") => ("tcp", port),
        Some(proto) => (proto, port),
    }
}

/// Go's `net.SplitHostPort(ip + ":")` for a host address that starts with
/// `[`: the address without its brackets, or Go's complaint
/// (`address [::1]x:: missing port in address`).
fn unbracket(ip: &str) -> Result<String, String> {
    let hostport = format!("{ip}:");
    let fail = |why: &str| Err(format!("address {hostport}: {why}"));
    // The last colon is the one just appended.
    let colon = hostport.len() - 1;
    let Some(close) = hostport.find(']') else {
        return fail("missing ']' in address");
    };
    if close + 1 != colon {
        // `]` is followed by something else than the final colon.
        if hostport.as_bytes().get(close + 1) == Some(&b':') {
            return fail("too many colons in address");
        }
        return fail("missing port in address");
    }
    if hostport[1..].contains('[') {
        return fail("unexpected '[' in address");
    }
    if hostport[close + 1..].contains(']') {
        return fail("unexpected ']' in address");
    }
    Ok(hostport[1..close].to_string())
}

// ---------------------------------------------------------------------------
// -p / --publish

/// The long syntax (`published=8080,target=80,protocol=udp`; other keys such
/// as `mode` are ignored) as the short one, the way the docker CLI rewrites
/// it before parsing: `{published}:{target}/{protocol}`.
fn long_to_short(spec: &str) -> Result<String, PortError> {
    let mut published = "";
    let mut target = "";
    let mut protocol = "tcp";
    for param in spec.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => match k {
                "published" => published = v,
                "target" => target = v,
                "protocol" => protocol = v,
                _ => {}
            },
            _ => return Err(PortError::PublishOptsFormat(param.to_string())),
        }
    }
    Ok(format!("{published}:{target}/{protocol}"))
}

/// Parses one `-p`/`--publish` value exactly as the docker CLI does
/// (go-connections v0.5.0 `nat.ParsePortSpec`), into one
/// `("80/tcp", binding)` pair per container port.
///
/// Forms: `CPORT[/PROTO]`, `HOSTPORT:CPORT`, `IP:HOSTPORT:CPORT`,
/// `IP::CPORT`, `:CPORT` and `::CPORT` (any host port); each port may be a
/// range `START-END`. IPv6 host addresses go in brackets (`[::1]:80:80`);
/// unbracketed ones also work (`::1:80:80`: everything before the last two
/// colons is the address). The protocol is `tcp`, `udp` or `sctp` in any
/// case, and is lowercased. A container range maps one to one onto a host
/// range of the same length; a host range with a single container port is
/// kept whole as that port's host port (`8000-8010`: any free port of it).
/// Ports are normalised (`0080` is `80`); `0` passes, as in Docker. The long
/// syntax `target=80,published=8080,protocol=udp` is accepted too.
///
/// The order of the checks is Docker's, so a spec with several faults gets
/// Docker's error: the host address, an empty container port, the container
/// port, the host port, the ranges' lengths, then the protocol.
pub fn parse_publish(spec: &str) -> Result<Vec<(String, PortBinding)>, PortError> {
    let converted;
    let raw = if spec.contains('=') {
        converted = long_to_short(spec)?;
        converted.as_str()
    } else {
        spec
    };

    // Split on ':': the container side is last, the host port before it,
    // and everything before that is the address.
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (ip, host_port, container) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (proto, container) = split_proto_port(container);

    let ip = if ip.starts_with('[') {
        unbracket(&ip).map_err(|reason| PortError::InvalidBracketedIp { ip, reason })?
    } else {
        ip
    };
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(PortError::InvalidIp(ip));
    }
    if container.is_empty() {
        return Err(PortError::NoPortSpecified(raw.to_string()));
    }
    let (start, end) = parse_range(container)
        .map_err(|_| PortError::InvalidContainerPort(container.to_string()))?;
    let (host_start, host_end) = if host_port.is_empty() {
        (0, 0)
    } else {
        parse_range(host_port).map_err(|_| PortError::InvalidHostPort(host_port.to_string()))?
    };
    if !host_port.is_empty() && end - start != host_end - host_start && start != end {
        return Err(PortError::RangeMismatch {
            container: container.to_string(),
            host: host_port.to_string(),
        });
    }
    let proto_lc = proto.to_ascii_lowercase();
    if !matches!(proto_lc.as_str(), "tcp" | "udp" | "sctp") {
        return Err(PortError::InvalidProto(proto.to_string()));
    }

    let mut out = Vec::with_capacity(usize::from(end - start) + 1);
    for i in 0..=(end - start) {
        let host = if host_port.is_empty() {
            String::new()
        } else if start == end && host_start != host_end {
            format!("{host_start}-{host_end}")
        } else {
            (u32::from(host_start) + u32::from(i)).to_string()
        };
        out.push((
            format!("{}/{proto_lc}", start + i),
            PortBinding {
                host_ip: ip.clone(),
                host_port: host,
            },
        ));
    }
    Ok(out)
}

/// Parses one `--expose` value as the docker CLI does: `PORT[/PROTO]` or
/// `START-END[/PROTO]`, one `"80/tcp"` key per port. Like Docker, the
/// protocol is neither checked nor lowercased here (`--expose 80/xyz`
/// exposes `80/xyz`, `--expose 80/UDP` exposes `80/UDP`).
pub fn parse_expose(spec: &str) -> Result<Vec<String>, PortError> {
    if spec.contains(':') {
        return Err(PortError::ExposeFormat(spec.to_string()));
    }
    let (proto, port) = split_proto_port(spec);
    let (start, end) = parse_range(port).map_err(|e| PortError::ExposeRange {
        spec: spec.to_string(),
        reason: e.to_string(),
    })?;
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// What a container's `-p` and `--expose` make of its config: Docker's
/// `Config.ExposedPorts` and `HostConfig.PortBindings`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedPorts {
    /// Every published container port and every `--expose`d one, each once,
    /// mapped to `{}` as in Docker's JSON.
    pub exposed_ports: BTreeMap<String, Value>,
    /// Each published container port's host sides, in the order given
    /// (`-p 80 -p 80` gives two).
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
}

/// Parses a container's `-p` values, then its `--expose` values, the way
/// the docker CLI does: every published port is exposed too, and the first
/// bad value (all `-p` before any `--expose`) is the error.
pub fn publish_maps<P: AsRef<str>, E: AsRef<str>>(
    publish: &[P],
    expose: &[E],
) -> Result<PublishedPorts, PortError> {
    let mut maps = PublishedPorts::default();
    for spec in publish {
        for (port, binding) in parse_publish(spec.as_ref())? {
            maps.exposed_ports
                .entry(port.clone())
                .or_insert_with(|| Value::Object(Default::default()));
            maps.port_bindings.entry(port).or_default().push(binding);
        }
    }
    for spec in expose {
        for port in parse_expose(spec.as_ref())? {
            maps.exposed_ports
                .entry(port)
                .or_insert_with(|| Value::Object(Default::default()));
        }
    }
    Ok(maps)
}

// ---------------------------------------------------------------------------
// docker ps, docker port

/// One port of a container as it runs: a container port and, when
/// published, its host side (the daemon's `Ports[]` of `docker ps`, or one
/// entry of `NetworkSettings.Ports`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActualPort {
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The host address; `""` when the port is only exposed (then
    /// `host_port` is ignored).
    pub host_ip: String,
    pub host_port: u16,
}

impl ActualPort {
    /// Published (has a host side), by Docker's test: a host address.
    pub fn is_published(&self) -> bool {
        !self.host_ip.is_empty()
    }
}

/// Go's `net.JoinHostPort`: brackets around an address with a colon.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `PORTS` column of `docker ps`, as the docker CLI's
/// `DisplayablePorts` writes it.
///
/// Ports are sorted by container port, host address, host port, protocol.
/// Runs of consecutive container ports are grouped when they are only
/// exposed (`80-82/tcp`) or published to the same port number on the same
/// address (`0.0.0.0:80-82->80-82/tcp`); a port published to another
/// number stands alone (`0.0.0.0:8000->80/tcp`) and such mappings come
/// last: `-p 8000-8002:80-82` shows as three mappings, never as
/// `0.0.0.0:8000-8002->80-82/tcp`. Groups appear in Docker's order: a group interrupted by a gap is
/// written at once, the still-open group of each address/protocol at the
/// end, in the order each was first seen. IPv6 addresses are bracketed
/// (`[::]:8080->80/tcp`). Items are joined by `", "`.
pub fn display_ports(ports: &[ActualPort]) -> String {
    let mut ports: Vec<&ActualPort> = ports.iter().collect();
    ports.sort_by(|a, b| {
        (a.container_port, &a.host_ip, a.host_port, &a.proto).cmp(&(
            b.container_port,
            &b.host_ip,
            b.host_port,
            &b.proto,
        ))
    });

    // (host address, protocol) -> (first, last) of the open group, in the
    // order the keys were first seen.
    let mut groups: Vec<((&str, &str), u16, u16)> = Vec::new();
    let mut result: Vec<String> = Vec::new();
    let mut mappings: Vec<String> = Vec::new();
    for p in ports {
        let current = p.container_port;
        if p.is_published() && p.host_port != current {
            mappings.push(format!(
                "{}->{}/{}",
                join_host_port(&p.host_ip, &p.host_port.to_string()),
                current,
                p.proto
            ));
            continue;
        }
        let key = (p.host_ip.as_str(), p.proto.as_str());
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, current, current)),
            Some(group) => {
                if group.2.checked_add(1) == Some(current) {
                    group.2 = current;
                } else {
                    result.push(form_group(key, group.1, group.2));
                    group.1 = current;
                    group.2 = current;
                }
            }
        }
    }
    for (key, first, last) in groups {
        result.push(form_group(key, first, last));
    }
    result.extend(mappings);
    result.join(", ")
}

/// One group of `display_ports`: `80-82/tcp` or `0.0.0.0:80-82->80-82/tcp`.
fn form_group((ip, proto): (&str, &str), first: u16, last: u16) -> String {
    let range = if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    };
    if ip.is_empty() {
        format!("{range}/{proto}")
    } else {
        format!("{}->{range}/{proto}", join_host_port(ip, &range))
    }
}

/// `sortorder.NaturalLess`, which `docker port` sorts its lines with: runs
/// of digits compare as numbers (and sort before other bytes), everything
/// else bytewise.
fn natural_less(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return da;
        }
        if !da {
            if a[i] != b[j] {
                return a[i] < b[j];
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz_a, nz_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (len_a, len_b) = (i - nz_a, j - nz_b);
        if len_a != len_b {
            return len_a < len_b;
        }
        if a[nz_a..i] != b[nz_b..j] {
            return a[nz_a..i] < b[nz_b..j];
        }
        if nz_a != nz_b {
            return nz_a < nz_b;
        }
    }
    a.len() < b.len()
}

/// The output lines of `docker port CONTAINER [PORT[/PROTO]]`, as the
/// docker CLI writes them, in its (natural) order.
///
/// Without `query`: `80/tcp -> 0.0.0.0:8080` for every host side of every
/// published port (nothing for ports only exposed). With `query` (`80`,
/// `80/udp`; `tcp` when no protocol is given): `0.0.0.0:8080` for each host
/// side of that port, or [`PortError::NoPublicPort`] naming the port as the
/// user wrote it and `container` (`Error: No public port '81/tcp' published
/// for web`); a query whose port is not a number is
/// [`PortError::InvalidPortQuery`]. Like Docker, the port must be written as
/// the key is (`080` does not find `80/tcp`).
pub fn port_lines(
    ports: &[ActualPort],
    query: Option<&str>,
    container: &str,
) -> Result<Vec<String>, PortError> {
    let published = ports.iter().filter(|p| p.is_published());
    let mut out: Vec<String> = match query {
        Some(q) => {
            let (port, proto) = q.split_once('/').unwrap_or((q, ""));
            let proto = if proto.is_empty() { "tcp" } else { proto };
            parse_u16(port).map_err(|e| PortError::InvalidPortQuery {
                port: port.to_string(),
                reason: e.to_string(),
            })?;
            let key = format!("{port}/{proto}");
            let lines: Vec<String> = published
                .filter(|p| format!("{}/{}", p.container_port, p.proto) == key)
                .map(|p| join_host_port(&p.host_ip, &p.host_port.to_string()))
                .collect();
            if lines.is_empty() {
                return Err(PortError::NoPublicPort {
                    port: q.to_string(),
                    container: container.to_string(),
                });
            }
            lines
        }
        None => published
            .map(|p| {
                format!(
                    "{}/{} -> {}",
                    p.container_port,
                    p.proto,
                    join_host_port(&p.host_ip, &p.host_port.to_string())
                )
            })
            .collect(),
    };
    out.sort_by(|a, b| {
        if natural_less(a, b) {
            std::cmp::Ordering::Less
        } else if natural_less(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    Ok(out)
}

// ---------------------------------------------------------------------------
// Host ports held by sockets

/// Docker's range when the kernel's cannot be read (moby's
/// `portallocator`: 49153–60999).
pub const DEFAULT_EPHEMERAL_RANGE: (u16, u16) = (49153, 60999);

/// The range Docker picks unrequested host ports from: the kernel's
/// ephemeral range, `/proc/sys/net/ipv4/ip_local_port_range` (of the
/// calling thread's network namespace), or [`DEFAULT_EPHEMERAL_RANGE`] if
/// that cannot be read or makes no sense — as moby's port allocator does.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| parse_port_range_file(&s))
        .unwrap_or(DEFAULT_EPHEMERAL_RANGE)
}

/// `"32768\t60999\n"` → `(32768, 60999)`.
fn parse_port_range_file(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace();
    let start: u16 = it.next()?.parse().ok()?;
    let end: u16 = it.next()?.parse().ok()?;
    (start > 0 && start <= end).then_some((start, end))
}

/// Holds `host_ip:port` for `proto` (`tcp`, `udp`, `sctp`) with a socket
/// bound there, for as long as the returned fd lives: no berth container
/// and no other program can bind that port on that address (or the
/// wildcard address) meanwhile, SO_REUSEADDR or not.
///
/// TCP and SCTP sockets are bound but never listen, so nothing connects to
/// them; none sets SO_REUSEADDR; an IPv6 socket is IPv6-only (`::` holds
/// the IPv6 side only, as Docker allocates `0.0.0.0` and `::` separately).
/// The fd is close-on-exec. SCTP needs the kernel's sctp module; without it
/// the error says so. `port` 0 lets the kernel choose (read it back with
/// `getsockname`). An unknown protocol is `InvalidInput`.
pub fn reserve(proto: &str, host_ip: IpAddr, port: u16) -> io::Result<OwnedFd> {
    use rustix::net::{
        bind, ipproto, socket_with, sockopt, AddressFamily, SocketFlags, SocketType,
    };
    let (kind, protocol) = match proto {
        "tcp" => (SocketType::STREAM, ipproto::TCP),
        "udp" => (SocketType::DGRAM, ipproto::UDP),
        "sctp" => (SocketType::STREAM, ipproto::SCTP),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown protocol: {other}"),
            ))
        }
    };
    let family = match host_ip {
        IpAddr::V4(_) => AddressFamily::INET,
        IpAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = socket_with(family, kind, SocketFlags::CLOEXEC, Some(protocol)).map_err(|e| {
        let e = io::Error::from(e);
        if proto == "sctp" {
            io::Error::new(
                e.kind(),
                format!("cannot open an SCTP socket (is the sctp kernel module loaded?): {e}"),
            )
        } else {
            e
        }
    })?;
    if host_ip.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    bind(&fd, &SocketAddr::new(host_ip, port))?;
    Ok(fd)
}

/// A random start in `0..n` (std's per-process random hash keys; no need
/// for more).
fn random_below(n: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(n);
    (h.finish() % u64::from(n.max(1))) as u32
}

/// Picks and holds ([`reserve`]) a free host port of `range` (inclusive;
/// port 0 is never picked) for `proto` on `host_ip`: starting at a random
/// port of the range and wrapping around, it skips the ports `is_taken`
/// reports (the ones berth has handed out) and the ones another program
/// holds (`EADDRINUSE`). Every port in use is `AddrInUse` with Docker's
/// words, `all ports are allocated`; any other bind failure is returned as
/// is; `start > end` is `InvalidInput`.
pub fn reserve_any(
    proto: &str,
    host_ip: IpAddr,
    range: (u16, u16),
    is_taken: impl Fn(u16) -> bool,
) -> io::Result<(u16, OwnedFd)> {
    let (start, end) = range;
    if start > end {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid port range: {start}-{end}"),
        ));
    }
    let n = u32::from(end) - u32::from(start) + 1;
    let offset = random_below(n);
    for i in 0..n {
        let Ok(port) = u16::try_from(u32::from(start) + (offset + i) % n) else {
            continue;
        };
        if port == 0 || is_taken(port) {
            continue;
        }
        match reserve(proto, host_ip, port) {
            Ok(fd) => return Ok((port, fd)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "all ports are allocated",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: ip.to_string(),
            host_port: port.to_string(),
        }
    }

    fn one(spec: &str) -> Vec<(String, String, String)> {
        parse_publish(spec)
            .unwrap_or_else(|e| panic!("{spec}: {e}"))
            .into_iter()
            .map(|(k, v)| (k, v.host_ip, v.host_port))
            .collect()
    }

    fn t(k: &str, ip: &str, port: &str) -> (String, String, String) {
        (k.to_string(), ip.to_string(), port.to_string())
    }

    fn err(spec: &str) -> String {
        match parse_publish(spec) {
            Ok(v) => panic!("{spec} parsed: {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// What `docker create -p SPEC` (CLI 28.2.2) recorded in
    /// `HostConfig.PortBindings`, checked with `docker inspect`.
    #[test]
    fn publish_forms_as_docker_records_them() {
        assert_eq!(one("80"), [t("80/tcp", "", "")]);
        assert_eq!(one("8080:80"), [t("80/tcp", "", "8080")]);
        assert_eq!(one("::80"), [t("80/tcp", "", "")]);
        assert_eq!(one(":80"), [t("80/tcp", "", "")]);
        assert_eq!(one("8000-8002:80"), [t("80/tcp", "", "8000-8002")]);
        assert_eq!(one("0:80"), [t("80/tcp", "", "0")]);
        assert_eq!(one("80:0"), [t("0/tcp", "", "80")]);
        assert_eq!(one("0"), [t("0/tcp", "", "")]);
        assert_eq!(one("[::1]:80:80"), [t("80/tcp", "::1", "80")]);
        assert_eq!(one("::1:80:80"), [t("80/tcp", "::1", "80")]);
        assert_eq!(one("[::1]::80"), [t("80/tcp", "::1", "")]);
        assert_eq!(one("[1.2.3.4]:80:80"), [t("80/tcp", "1.2.3.4", "80")]);
        assert_eq!(one("127.0.0.1::80"), [t("80/tcp", "127.0.0.1", "")]);
        assert_eq!(
            one("::ffff:1.2.3.4:80:80"),
            [t("80/tcp", "::ffff:1.2.3.4", "80")]
        );
        assert_eq!(one("80-81"), [t("80/tcp", "", ""), t("81/tcp", "", "")]);
        assert_eq!(one("80/tcp/udp"), [t("80/tcp", "", "")]);
        assert_eq!(one("80/"), [t("80/tcp", "", "")]);
        assert_eq!(one("80:80/sctp"), [t("80/sctp", "", "80")]);
        assert_eq!(one("80/TCP"), [t("80/tcp", "", "")]);
        assert_eq!(one("80/Udp"), [t("80/udp", "", "")]);
        assert_eq!(
            one("8000-8001:80-81/udp"),
            [t("80/udp", "", "8000"), t("81/udp", "", "8001")]
        );
        assert_eq!(one("0080:080"), [t("80/tcp", "", "80")]);
        assert_eq!(one("8000-8000:80"), [t("80/tcp", "", "8000")]);
        assert_eq!(one("80-80"), [t("80/tcp", "", "")]);
        assert_eq!(one("80-81-82"), [t("80/tcp", "", ""), t("81/tcp", "", "")]);
        assert_eq!(one("8000-8001-9:80"), [t("80/tcp", "", "8000-8001")]);
        assert_eq!(
            one("1.2.3.4:8000-8001:80-81"),
            [
                t("80/tcp", "1.2.3.4", "8000"),
                t("81/tcp", "1.2.3.4", "8001")
            ]
        );
        assert_eq!(
            one("127.0.0.1:5000-5001:80"),
            [t("80/tcp", "127.0.0.1", "5000-5001")]
        );
        assert_eq!(
            one("8000-8002:80-82"),
            [
                t("80/tcp", "", "8000"),
                t("81/tcp", "", "8001"),
                t("82/tcp", "", "8002")
            ]
        );
        assert_eq!(one("[::1.2.3.4]:80:80"), [t("80/tcp", "::1.2.3.4", "80")]);
        assert_eq!(
            one("[0:0:0:0:0:0:0:1]:80:80"),
            [t("80/tcp", "0:0:0:0:0:0:0:1", "80")]
        );
        assert_eq!(
            one("255.255.255.255:80:80"),
            [t("80/tcp", "255.255.255.255", "80")]
        );
        // The long syntax.
        assert_eq!(one("published=8080,target=80"), [t("80/tcp", "", "8080")]);
        assert_eq!(one("target=80,protocol=udp"), [t("80/udp", "", "")]);
        assert_eq!(
            one("target=80,published=8080,mode=host"),
            [t("80/tcp", "", "8080")]
        );
        assert_eq!(
            one("published=1.2.3.4:80,target=80"),
            [t("80/tcp", "1.2.3.4", "80")]
        );
    }

    /// The errors of `docker create -p SPEC` (CLI 28.2.2), word for word
    /// after its `docker: ` prefix.
    #[test]
    fn publish_errors_as_docker_words_them() {
        let cases = [
            ("x", "invalid containerPort: x"),
            ("80:x", "invalid containerPort: x"),
            ("80:65536", "invalid containerPort: 65536"),
            ("8000-8001:80-x", "invalid containerPort: 80-x"),
            ("80-79", "invalid containerPort: 80-79"),
            ("+80", "invalid containerPort: +80"),
            ("80:+80", "invalid containerPort: +80"),
            (" 80", "invalid containerPort:  80"),
            ("x/XYZ", "invalid containerPort: x"),
            ("abc:x/bad", "invalid containerPort: x"),
            ("target=x", "invalid containerPort: x"),
            ("x:80", "invalid hostPort: x"),
            ("8000-7999:80", "invalid hostPort: 8000-7999"),
            ("65536:80", "invalid hostPort: 65536"),
            ("a-b:80", "invalid hostPort: a-b"),
            ("-1:80", "invalid hostPort: -1"),
            ("80-:80", "invalid hostPort: 80-"),
            ("1.2.3.4:80", "invalid hostPort: 1.2.3.4"),
            ("90-80:80-90", "invalid hostPort: 90-80"),
            (
                "99999999999999999999:80",
                "invalid hostPort: 99999999999999999999",
            ),
            ("80/xyz", "invalid proto: xyz"),
            ("80/XYZ", "invalid proto: XYZ"),
            ("1.2.3.4.5:80:80", "invalid IP address: 1.2.3.4.5"),
            ("abc:80:80", "invalid IP address: abc"),
            ("x:y:80", "invalid IP address: x"),
            ("1:2:3:4", "invalid IP address: 1:2"),
            ("127.0.0.1:80:80:80", "invalid IP address: 127.0.0.1:80"),
            ("01.2.3.4:80:80", "invalid IP address: 01.2.3.4"),
            ("fe80::1%eth0:80:80", "invalid IP address: fe80::1%eth0"),
            ("[fe80::1%eth0]:80:80", "invalid IP address: fe80::1%eth0"),
            ("[a]:80:80", "invalid IP address: a"),
            ("1.2.3:80:80", "invalid IP address: 1.2.3"),
            ("[1::2::3]:80:80", "invalid IP address: 1::2::3"),
            ("[12345::1]:80:80", "invalid IP address: 12345::1"),
            ("[1.2.3.04]:80:80", "invalid IP address: 1.2.3.04"),
            (
                "[::1]:80:80:80",
                "invalid IP address [::1]:80: address [::1]:80:: too many colons in address",
            ),
            ("::1]:80:80", "invalid IP address: ::1]"),
            (
                "[::1]:80",
                "invalid IP address [:: address [::: missing ']' in address",
            ),
            (
                "[::1]80:80",
                "invalid IP address [:: address [::: missing ']' in address",
            ),
            (
                "[:80:80",
                "invalid IP address [: address [:: missing ']' in address",
            ),
            (
                "[::1:80:80",
                "invalid IP address [::1: address [::1:: missing ']' in address",
            ),
            (
                "[::1]x:80:80",
                "invalid IP address [::1]x: address [::1]x:: missing port in address",
            ),
            (
                "[::1]:x:80:80",
                "invalid IP address [::1]:x: address [::1]:x:: too many colons in address",
            ),
            (
                "[::1]]:80:80",
                "invalid IP address [::1]]: address [::1]]:: missing port in address",
            ),
            (
                "[[::1]:80:80",
                "invalid IP address [[::1]: address [[::1]:: unexpected '[' in address",
            ),
            ("", "no port specified: <empty>"),
            ("/tcp", "no port specified: /tcp<empty>"),
            ("1.2.3.4:", "no port specified: 1.2.3.4:<empty>"),
            ("published=8080", "no port specified: 8080:/tcp<empty>"),
            (
                "8000-8010:80-85",
                "invalid ranges specified for container and host Ports: 80-85 and 8000-8010",
            ),
            (
                "80:80-82",
                "invalid ranges specified for container and host Ports: 80-82 and 80",
            ),
            (
                "8000-8001:80-82/bad",
                "invalid ranges specified for container and host Ports: 80-82 and 8000-8001",
            ),
            (
                "target=80,bogus",
                "invalid publish opts format (should be name=value but got 'bogus')",
            ),
            (
                "target=80,=5",
                "invalid publish opts format (should be name=value but got '=5')",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(err(spec), want, "-p {spec:?}");
        }
    }

    /// `docker create --expose SPEC` (CLI 28.2.2): `Config.ExposedPorts` and
    /// the errors.
    #[test]
    fn expose_as_docker() {
        let ok = |s: &str| parse_expose(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("80"), ["80/tcp"]);
        assert_eq!(ok("7000-7002/udp"), ["7000/udp", "7001/udp", "7002/udp"]);
        assert_eq!(ok("80/xyz"), ["80/xyz"]);
        assert_eq!(ok("80/UDP"), ["80/UDP"]);
        assert_eq!(ok("80-81-82"), ["80/tcp", "81/tcp"]);
        assert_eq!(ok("80/tcp/udp"), ["80/tcp"]);
        let cases = [
            ("1:2", "invalid port format for --expose: 1:2"),
            (
                "x",
                r#"invalid range format for --expose: x, error: strconv.ParseUint: parsing "x": invalid syntax"#,
            ),
            (
                "",
                "invalid range format for --expose: , error: empty string specified for ports",
            ),
            (
                "/tcp",
                "invalid range format for --expose: /tcp, error: empty string specified for ports",
            ),
            (
                "90-80",
                "invalid range format for --expose: 90-80, error: invalid range specified for port: 90-80",
            ),
            (
                "70000",
                r#"invalid range format for --expose: 70000, error: strconv.ParseUint: parsing "70000": value out of range"#,
            ),
            (
                "80-x",
                r#"invalid range format for --expose: 80-x, error: strconv.ParseUint: parsing "x": invalid syntax"#,
            ),
            (
                "80-",
                r#"invalid range format for --expose: 80-, error: strconv.ParseUint: parsing "": invalid syntax"#,
            ),
            (
                "-80",
                r#"invalid range format for --expose: -80, error: strconv.ParseUint: parsing "": invalid syntax"#,
            ),
            (
                "\"q\"",
                r#"invalid range format for --expose: "q", error: strconv.ParseUint: parsing "\"q\"": invalid syntax"#,
            ),
            (
                "a\\tb",
                r#"invalid range format for --expose: a\tb, error: strconv.ParseUint: parsing "a\\tb": invalid syntax"#,
            ),
            (
                " 80",
                r#"invalid range format for --expose:  80, error: strconv.ParseUint: parsing " 80": invalid syntax"#,
            ),
        ];
        for (spec, want) in cases {
            match parse_expose(spec) {
                Ok(v) => panic!("--expose {spec:?} parsed: {v:?}"),
                Err(e) => assert_eq!(e.to_string(), want, "--expose {spec:?}"),
            }
        }
        // Go quotes control characters its own way.
        assert_eq!(go_quote("a\tb\u{1}\u{7f}é"), r#""a\tb\x01\x7fé""#);
        assert_eq!(
            parse_expose("70000x").map_err(|e| e.to_string()),
            Err(r#"invalid range format for --expose: 70000x, error: strconv.ParseUint: parsing "70000x": value out of range"#.to_string())
        );
    }

    /// `docker create -p 8080:80 -p 127.0.0.1:9090:80 -p 80/udp --expose 80
    /// --expose 81 --expose 7000-7001/udp` as `docker inspect` showed it.
    #[test]
    fn merged_maps_as_docker() {
        let m = publish_maps(
            &["8080:80", "127.0.0.1:9090:80", "80/udp"],
            &["80", "81", "7000-7001/udp"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            serde_json::to_string(&m.port_bindings).unwrap_or_default(),
            r#"{"80/tcp":[{"HostIp":"","HostPort":"8080"},{"HostIp":"127.0.0.1","HostPort":"9090"}],"80/udp":[{"HostIp":"","HostPort":""}]}"#
        );
        assert_eq!(
            serde_json::to_string(&m.exposed_ports).unwrap_or_default(),
            r#"{"7000/udp":{},"7001/udp":{},"80/tcp":{},"80/udp":{},"81/tcp":{}}"#
        );
        // -p 80 -p 80: two bindings, one exposed port.
        let m = publish_maps(&["80", "80"], &[] as &[&str]).unwrap_or_default();
        assert_eq!(m.port_bindings["80/tcp"], [b("", ""), b("", "")]);
        assert_eq!(m.exposed_ports.len(), 1);
        // --expose is not lowercased: 80/TCP and 80/tcp both.
        let m = publish_maps(&["8080:80"], &["80/TCP"]).unwrap_or_default();
        assert_eq!(
            m.exposed_ports.keys().collect::<Vec<_>>(),
            ["80/TCP", "80/tcp"]
        );
        // The -p errors come first.
        assert_eq!(
            publish_maps(&["x"], &["y"]).map_err(|e| e.to_string()),
            Err("invalid containerPort: x".to_string())
        );
        assert_eq!(
            publish_maps(&["80"], &["y:1"]).map_err(|e| e.to_string()),
            Err("invalid port format for --expose: y:1".to_string())
        );
    }

    fn ap(container_port: u16, proto: &str, host_ip: &str, host_port: u16) -> ActualPort {
        ActualPort {
            container_port,
            proto: proto.to_string(),
            host_ip: host_ip.to_string(),
            host_port,
        }
    }

    /// Each case was shown by the docker CLI 28.2.2 (`docker ps --format
    /// '{{.Ports}}'`) given these ports by a stub of the Engine API (the
    /// reference daemon has no bridge to publish with, and lists no ports
    /// for `--network none` containers). The CLI 20.10 differs only in not
    /// bracketing IPv6 (`:::8080->80/tcp`).
    #[test]
    fn display_like_docker_ps() {
        assert_eq!(display_ports(&[]), "");
        assert_eq!(display_ports(&[ap(80, "tcp", "", 0)]), "80/tcp");
        assert_eq!(
            display_ports(&[
                ap(82, "tcp", "", 0),
                ap(80, "tcp", "", 0),
                ap(81, "tcp", "", 0)
            ]),
            "80-82/tcp"
        );
        assert_eq!(
            display_ports(&[ap(80, "tcp", "0.0.0.0", 8080), ap(80, "tcp", "::", 8080)]),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        // Same numbers group; other numbers don't.
        assert_eq!(
            display_ports(&[
                ap(80, "tcp", "0.0.0.0", 80),
                ap(81, "tcp", "0.0.0.0", 81),
                ap(82, "tcp", "0.0.0.0", 82),
            ]),
            "0.0.0.0:80-82->80-82/tcp"
        );
        assert_eq!(
            display_ports(&[
                ap(80, "tcp", "0.0.0.0", 8000),
                ap(81, "tcp", "0.0.0.0", 8001),
            ]),
            "0.0.0.0:8000->80/tcp, 0.0.0.0:8001->81/tcp"
        );
        // A gap flushes the group at once; open groups come after, in the
        // order first seen; mappings last.
        assert_eq!(
            display_ports(&[
                ap(82, "tcp", "", 0),
                ap(80, "tcp", "", 0),
                ap(81, "udp", "", 0),
                ap(443, "tcp", "127.0.0.1", 8443),
                ap(7000, "udp", "", 0),
                ap(7001, "udp", "", 0),
            ]),
            "80/tcp, 81/udp, 82/tcp, 7000-7001/udp, 127.0.0.1:8443->443/tcp"
        );
        assert_eq!(
            display_ports(&[ap(53, "udp", "::1", 53), ap(53, "tcp", "::1", 53)]),
            "[::1]:53->53/tcp, [::1]:53->53/udp"
        );
        assert_eq!(
            display_ports(&[ap(65535, "tcp", "", 0), ap(0, "tcp", "", 0)]),
            "0/tcp, 65535/tcp"
        );
    }

    /// Checked like `display_like_docker_ps`, with `docker port web [Q]`
    /// (CLI 28.2.2) on a stub inspect answer holding these ports. The CLI
    /// 20.10 does not sort, does not bracket IPv6, and words a bad query
    /// without the `Error: invalid port (x): ` prefix.
    #[test]
    fn port_lines_like_docker_port() {
        let ports = [
            ap(80, "tcp", "0.0.0.0", 8080),
            ap(80, "tcp", "::", 8080),
            ap(9, "udp", "127.0.0.1", 10000),
            ap(443, "tcp", "", 0),
            ap(100, "tcp", "0.0.0.0", 9000),
        ];
        let all = port_lines(&ports, None, "web").unwrap_or_default();
        assert_eq!(
            all,
            [
                "9/udp -> 127.0.0.1:10000",
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> [::]:8080",
                "100/tcp -> 0.0.0.0:9000",
            ]
        );
        assert_eq!(
            port_lines(&ports, Some("80"), "web").unwrap_or_default(),
            ["0.0.0.0:8080", "[::]:8080"]
        );
        assert_eq!(
            port_lines(&ports, Some("9/udp"), "web").unwrap_or_default(),
            ["127.0.0.1:10000"]
        );
        let e = |q: &str| port_lines(&ports, Some(q), "web").map_err(|e| e.to_string());
        assert_eq!(
            e("81/tcp"),
            Err("Error: No public port '81/tcp' published for web".to_string())
        );
        assert_eq!(
            e("443"),
            Err("Error: No public port '443' published for web".to_string())
        );
        assert_eq!(
            e("080"),
            Err("Error: No public port '080' published for web".to_string())
        );
        assert_eq!(
            e("x/tcp"),
            Err(
                r#"Error: invalid port (x): strconv.ParseUint: parsing "x": invalid syntax"#
                    .to_string()
            )
        );
        assert!(natural_less("a2", "a10"));
        assert!(natural_less("a02", "a002"));
        assert!(!natural_less("a10", "a2"));
        assert!(natural_less("1", "a"));
        assert!(natural_less("ab", "abc"));
    }

    #[test]
    fn port_range_file() {
        assert_eq!(
            parse_port_range_file("32768\t60999\n"),
            Some((32768, 60999))
        );
        assert_eq!(parse_port_range_file("x"), None);
        assert_eq!(parse_port_range_file("60999 32768"), None);
        let (s, e) = ephemeral_range();
        assert!(s <= e && s > 0);
    }

    // -- sockets, each test in a network namespace of its own ---------------

    /// Runs `f` on a new thread in a new network namespace with `lo` up.
    fn in_netns<F: FnOnce() + Send + 'static>(f: F) {
        let handle = std::thread::spawn(move || {
            // SAFETY: unshare only changes this thread's namespaces; it
            // touches no memory of ours.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
            let st = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .unwrap_or_else(|e| panic!("ip: {e}"));
            assert!(st.success());
            f();
        });
        if let Err(p) = handle.join() {
            std::panic::resume_unwind(p);
        }
    }

    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const ANY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

    /// A rival that binds with SO_REUSEADDR and (for TCP) listens.
    fn rival(proto: &str, ip: IpAddr, port: u16) -> io::Result<OwnedFd> {
        use rustix::net::{bind, listen, socket, sockopt, AddressFamily, SocketType};
        let family = if ip.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let kind = if proto == "tcp" {
            SocketType::STREAM
        } else {
            SocketType::DGRAM
        };
        let fd = socket(family, kind, None)?;
        sockopt::set_socket_reuseaddr(&fd, true)?;
        bind(&fd, &SocketAddr::new(ip, port))?;
        if proto == "tcp" {
            listen(&fd, 8)?;
        }
        Ok(fd)
    }

    fn in_use(r: io::Result<OwnedFd>) -> bool {
        matches!(r, Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE))
    }

    #[test]
    fn reserved_tcp_port_is_held() {
        in_netns(|| {
            let fd = reserve("tcp", LO, 18080).unwrap_or_else(|e| panic!("{e}"));
            assert!(in_use(rival("tcp", LO, 18080)));
            assert!(in_use(rival("tcp", ANY, 18080)));
            assert!(matches!(
                std::net::TcpListener::bind("127.0.0.1:18080"),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse
            ));
            assert!(in_use(reserve("tcp", LO, 18080)));
            // Not listening: nothing connects.
            assert!(std::net::TcpStream::connect("127.0.0.1:18080").is_err());
            // The other protocol is free.
            assert!(reserve("udp", LO, 18080).is_ok());
            drop(fd);
            assert!(rival("tcp", LO, 18080).is_ok());
        });
    }

    #[test]
    fn reserved_wildcard_holds_every_address() {
        in_netns(|| {
            let _fd = reserve("tcp", ANY, 18081).unwrap_or_else(|e| panic!("{e}"));
            assert!(in_use(rival("tcp", LO, 18081)));
            let _u = reserve("udp", ANY, 18081).unwrap_or_else(|e| panic!("{e}"));
            assert!(in_use(rival("udp", LO, 18081)));
        });
    }

    #[test]
    fn reserved_udp_port_is_held() {
        in_netns(|| {
            let _fd = reserve("udp", LO, 15353).unwrap_or_else(|e| panic!("{e}"));
            assert!(in_use(rival("udp", LO, 15353)));
            assert!(in_use(rival("udp", ANY, 15353)));
            assert!(matches!(
                std::net::UdpSocket::bind("127.0.0.1:15353"),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse
            ));
        });
    }

    #[test]
    fn reserved_ipv6_port_is_held_when_ipv6_is_there() {
        in_netns(|| {
            let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
            match reserve("tcp", v6, 18082) {
                Ok(_fd) => {
                    assert!(in_use(rival("tcp", v6, 18082)));
                    // IPv6-only: the IPv4 side stays free.
                    assert!(rival("tcp", LO, 18082).is_ok());
                }
                Err(e) => eprintln!("no IPv6 loopback here ({e}); skipped"),
            }
        });
    }

    #[test]
    fn sctp_and_unknown_protocols() {
        in_netns(|| {
            match reserve("sctp", LO, 18083) {
                Ok(_fd) => {}
                Err(e) => assert!(e.to_string().contains("SCTP"), "{e}"),
            }
            let e = reserve("icmp", LO, 1).err().map(|e| e.kind());
            assert_eq!(e, Some(io::ErrorKind::InvalidInput));
        });
    }

    #[test]
    fn reserve_any_skips_taken_and_busy_ports() {
        in_netns(|| {
            // 20000 is busy elsewhere, 20001 and 20003 are berth's: 20002.
            let _busy = rival("tcp", LO, 20000).unwrap_or_else(|e| panic!("{e}"));
            for _ in 0..20 {
                let (port, _fd) =
                    reserve_any("tcp", LO, (20000, 20003), |p| p == 20001 || p == 20003)
                        .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(port, 20002);
            }
            // Held ones are skipped too; then the range is exhausted.
            let mut held = Vec::new();
            for _ in 0..3 {
                let (port, fd) = reserve_any("udp", LO, (21000, 21002), |_| false)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!((21000..=21002).contains(&port));
                held.push((port, fd));
            }
            let mut ports: Vec<u16> = held.iter().map(|h| h.0).collect();
            ports.sort_unstable();
            assert_eq!(ports, [21000, 21001, 21002]);
            let e = reserve_any("udp", LO, (21000, 21002), |_| false).err();
            assert_eq!(e.as_ref().map(|e| e.kind()), Some(io::ErrorKind::AddrInUse));
            assert_eq!(
                e.map(|e| e.to_string()).unwrap_or_default(),
                "all ports are allocated"
            );
            let e = reserve_any("tcp", LO, (5, 4), |_| false)
                .err()
                .map(|e| e.kind());
            assert_eq!(e, Some(io::ErrorKind::InvalidInput));
            // The start is random: over many picks from a free range, more
            // than one port comes first.
            let firsts: std::collections::BTreeSet<u16> = (0..32)
                .filter_map(|_| reserve_any("tcp", LO, (22000, 22099), |_| false).ok())
                .map(|(p, _)| p)
                .collect();
            assert!(firsts.len() > 1, "{firsts:?}");
        });
    }
}
