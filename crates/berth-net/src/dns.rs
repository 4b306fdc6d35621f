//! The embedded DNS responder a container's monitor answers at 127.0.0.11.
//!
//! Like Docker's embedded DNS server (moby's `libnetwork/resolver.go` and the
//! sandbox's name resolution), every container on a user-defined network
//! resolves the other containers on its networks by name, alias and short ID;
//! every other question goes to the host's resolvers.
//!
//! The pieces:
//! - [`NameTable`]: the names of one or more networks, one file per network,
//!   each line `IP NAME [NAME...]` (the first name is the container's name,
//!   the others its aliases and short ID). Re-read only when a file changed.
//! - [`Responder`]: the two sockets a monitor polls (the container-side one
//!   bound to 127.0.0.11:53 in the container's namespace, and an upstream one
//!   in the host's), the table, and a small bounded table of forwarded
//!   queries in flight.
//! - [`resolv_conf_servers`]: the `nameserver` lines of a resolv.conf.
//!
//! What is answered here, as Docker does:
//! - `A`/`AAAA` of a known name: its addresses of that family, TTL 600
//!   ([`TTL`]), the question's name as asked (case kept), no AA bit, RA set,
//!   RD and CD copied from the query. Several addresses for a name (an alias
//!   shared by several containers) are rotated from one answer to the next
//!   (Docker shuffles them).
//! - A known name that has no address of the asked family (the `AAAA` of a
//!   v4-only container, or the `A` of a v6-only one): NOERROR with no
//!   answers, never forwarded (moby's current `Network.ResolveName` reports
//!   "found, no addresses" for either family; older versions only did so
//!   for `AAAA`).
//! - `name.network` resolves like `name` restricted to that network; a name
//!   with dots is first tried whole on every network, then split at each dot
//!   from the right (`a.b.c`: `a.b` on network `c`, then `a` on `b.c`).
//! - The networks are searched in the order they were added; the first one
//!   with addresses of the asked family for the name answers alone (an
//!   address listed twice is answered once).
//! - `MX` of a known name: NOERROR with no answers (implicit MX, RFC 5321).
//! - `PTR` of a container's address (`in-addr.arpa` and `ip6.arpa`):
//!   `name.network.`, where name is the first name on the address's line.
//! - A query with other than one question: FORMERR; an opcode other than
//!   QUERY: NOTIMP (miekg/dns's default acceptance, which Docker's server
//!   uses).
//! - Everything else (unknown names, other types, other classes) is
//!   forwarded to the first upstream server with a fresh random ID, and the
//!   answer relayed with the client's ID. With no upstream server: SERVFAIL.
//!   With the ndots option set ([`Responder::set_ndots_set`]), an unknown
//!   single-label `A`/`AAAA` name gets NOERROR with no answers instead of
//!   being forwarded, so that the client goes on with its search domains.
//!
//! The monitor must stay tiny: nothing here runs a thread or keeps a buffer;
//! packets are read into and built in stack buffers, the in-flight table is
//! freed when it empties, and a file is re-read only when its
//! (mtime, size, inode) changed.
//!
//! The wire format is parsed and built by hand (about 200 lines): only the
//! header and one question are ever parsed (a forwarded query and its answer
//! are relayed as bytes, with two bytes of ID rewritten), and the answers are
//! A/AAAA/PTR records pointing back at the question's name. A general crate
//! would decode every packet into owned vectors and names, allocating per
//! query in a process that must allocate nothing while idle and stay small.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The TTL of every answer given from the table (Docker's `respTTL`).
pub const TTL: u32 = 600;
/// How many forwarded queries may be in flight at once; past that a query
/// that would be forwarded gets SERVFAIL.
pub const MAX_IN_FLIGHT: usize = 64;
/// How long a forwarded query waits for the upstream's answer before it is
/// forgotten (the client's own resolver retries).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer built here (plain DNS over UDP).
const MAX_ANSWER: usize = 512;
/// The largest query read from a client.
const MAX_QUERY: usize = 1500;
/// The largest upstream answer relayed.
const MAX_UPSTREAM: usize = 4096;

const HEADER: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_MX: u16 = 15;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

const RCODE_FORMERR: u16 = 1;
const RCODE_SERVFAIL: u16 = 2;
const RCODE_NOTIMP: u16 = 4;

const FLAG_QR: u16 = 0x8000;
const MASK_OPCODE: u16 = 0x7800;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_CD: u16 = 0x0010;

/// Errors of setting up a [`Responder`].
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A socket operation failed.
    #[error("dns responder: {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> DnsError {
    move |source| DnsError::Io { what, source }
}

/// Which address family a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `A` records.
    V4,
    /// `AAAA` records.
    V6,
}

impl Family {
    fn matches(self, ip: &IpAddr) -> bool {
        matches!(
            (self, ip),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }
}

/// One line of a network's file: an address and its names, lowercased and
/// joined by single spaces (the first is the container's name).
#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    names: Box<str>,
}

impl Entry {
    fn has_name(&self, name: &str) -> bool {
        self.names.split(' ').any(|n| n.eq_ignore_ascii_case(name))
    }

    fn first_name(&self) -> &str {
        self.names.split(' ').next().unwrap_or("")
    }
}

/// What identifies a version of a file: replacing it by rename changes the
/// inode, rewriting it in place the mtime or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

#[derive(Debug)]
struct NetFile {
    network: Box<str>,
    path: PathBuf,
    stamp: Option<Stamp>,
    entries: Vec<Entry>,
}

impl NetFile {
    fn refresh(&mut self) {
        let stamp = fs::metadata(&self.path).ok().map(|m| Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        });
        if stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        // A missing or unreadable file is an empty network (the container
        // left it, or it is being written): its names no longer resolve.
        self.entries = match stamp.and_then(|_| fs::read_to_string(&self.path).ok()) {
            Some(text) => parse_names(&text),
            None => Vec::new(),
        };
    }
}

/// Parses a names file: `IP NAME [NAME...]` per line; blank lines, `#`
/// comments and lines whose address does not parse are skipped.
fn parse_names(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        let mut names = String::new();
        for word in words {
            let word = word.trim_end_matches('.');
            if word.is_empty() {
                continue;
            }
            if !names.is_empty() {
                names.push(' ');
            }
            names.push_str(&word.to_ascii_lowercase());
        }
        if !names.is_empty() {
            entries.push(Entry {
                ip,
                names: names.into_boxed_str(),
            });
        }
    }
    entries.shrink_to_fit();
    entries
}

/// The names a container resolves: one file per network it is on.
///
/// Each file holds lines `IP NAME [NAME...]` (IPv4 or IPv6; blank lines and
/// `#` comments ignored); the first name of a line is the container's name
/// (the one `PTR` answers), the others its aliases and short ID. Files are
/// meant to be replaced by rename; [`NameTable::refresh`] re-reads a file
/// only when its (mtime, size, inode) changed.
#[derive(Debug, Default)]
pub struct NameTable {
    nets: Vec<NetFile>,
}

/// The outcome of [`NameTable::lookup`].
#[derive(Debug)]
pub enum Resolution<'a> {
    /// The name is known and has addresses of the asked family.
    Found(Addrs<'a>),
    /// The name is known but has no address of the asked family: answer
    /// NOERROR with no records, do not forward.
    NoData,
    /// The name is not in the table.
    NotFound,
}

/// The addresses of one name on one network, of one family, each once
/// (an address listed twice for a name is answered once, as Docker does).
#[derive(Debug, Clone)]
pub struct Addrs<'a> {
    entries: &'a [Entry],
    next: usize,
    name: &'a str,
    family: Family,
}

impl Addrs<'_> {
    fn is_match(&self, e: &Entry) -> bool {
        self.family.matches(&e.ip) && e.has_name(self.name)
    }
}

impl Iterator for Addrs<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        while let Some(e) = self.entries.get(self.next) {
            let seen = &self.entries[..self.next];
            self.next += 1;
            if self.is_match(e) && !seen.iter().any(|s| s.ip == e.ip && self.is_match(s)) {
                return Some(e.ip);
            }
        }
        None
    }
}

impl NameTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a network's names file and reads it (a missing file is an empty
    /// network until it appears). Networks are searched in the order added.
    pub fn add_network(&mut self, network: &str, path: impl Into<PathBuf>) {
        let mut net = NetFile {
            network: network.to_ascii_lowercase().into_boxed_str(),
            path: path.into(),
            stamp: None,
            entries: Vec::new(),
        };
        net.refresh();
        self.nets.push(net);
    }

    /// Re-reads each file whose (mtime, size, inode) changed since it was
    /// last read: one stat per file when nothing changed.
    pub fn refresh(&mut self) {
        for net in &mut self.nets {
            net.refresh();
        }
    }

    /// Looks `name` up, case-insensitively, ignoring a trailing dot: first
    /// the whole name on every network, then each `prefix.suffix` split
    /// (rightmost dot first) as `prefix` on the network named `suffix`.
    /// For each candidate, the first network (in the order added) that has
    /// addresses of `family` for it answers; if none has but some network
    /// knows the name, the answer is [`Resolution::NoData`].
    pub fn lookup<'a>(&'a self, name: &'a str, family: Family) -> Resolution<'a> {
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return Resolution::NotFound;
        }
        if let Some(r) = self.lookup_in(name, None, family) {
            return r;
        }
        let mut rest = name;
        while let Some(dot) = rest.rfind('.') {
            let (prefix, network) = (&name[..dot], &name[dot + 1..]);
            if !prefix.is_empty() && !network.is_empty() {
                if let Some(r) = self.lookup_in(prefix, Some(network), family) {
                    return r;
                }
            }
            rest = &name[..dot];
        }
        Resolution::NotFound
    }

    fn lookup_in<'a>(
        &'a self,
        name: &'a str,
        network: Option<&str>,
        family: Family,
    ) -> Option<Resolution<'a>> {
        let mut known = false;
        for net in &self.nets {
            if network.is_some_and(|n| !net.network.eq_ignore_ascii_case(n)) {
                continue;
            }
            if !net.entries.iter().any(|e| e.has_name(name)) {
                continue;
            }
            known = true;
            let addrs = Addrs {
                entries: &net.entries,
                next: 0,
                name,
                family,
            };
            if addrs.clone().next().is_some() {
                return Some(Resolution::Found(addrs));
            }
        }
        known.then_some(Resolution::NoData)
    }

    /// The name a `PTR` query for `ip` answers: `(container name, network)`
    /// of the first network that has the address.
    pub fn lookup_ip(&self, ip: IpAddr) -> Option<(&str, &str)> {
        self.nets.iter().find_map(|net| {
            net.entries
                .iter()
                .find(|e| e.ip == ip)
                .map(|e| (e.first_name(), &*net.network))
        })
    }
}

/// The upstream servers of a resolv.conf: each `nameserver ADDRESS` line,
/// port 53, in order. Lines that do not parse (or carry an IPv6 zone) are
/// skipped; `#` and `;` start comments.
pub fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                return None;
            }
            let ip = words.next()?.parse::<IpAddr>().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Wire format.

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The one question of a message: its name as dotted lowercase text, type,
/// class, where it ends, and a hash of it to match an answer to its query.
struct Question {
    text: [u8; 256],
    text_len: usize,
    /// Whether every label is plain printable ASCII without dots, so that
    /// the text stands for the name.
    plain: bool,
    qtype: u16,
    qclass: u16,
    end: usize,
    hash: u64,
}

impl Question {
    fn name(&self) -> &str {
        std::str::from_utf8(&self.text[..self.text_len]).unwrap_or("")
    }
}

/// Parses the question that starts right after the header. No compression
/// pointer can occur there (nothing precedes it to point at).
fn parse_question(msg: &[u8]) -> Option<Question> {
    let mut q = Question {
        text: [0; 256],
        text_len: 0,
        plain: true,
        qtype: 0,
        qclass: 0,
        end: 0,
        hash: 0xcbf2_9ce4_8422_2325,
    };
    let mut hash = |b: u8| {
        q.hash ^= u64::from(b);
        q.hash = q.hash.wrapping_mul(0x0000_0100_0000_01b3);
    };
    let mut at = HEADER;
    let mut wire_len = 0usize;
    let mut text = [0u8; 256];
    let mut text_len = 0usize;
    let mut plain = true;
    loop {
        let len = usize::from(*msg.get(at)?);
        if len & 0xc0 != 0 {
            return None;
        }
        wire_len += len + 1;
        if wire_len > 255 {
            return None;
        }
        hash(len as u8);
        at += 1;
        if len == 0 {
            break;
        }
        let label = msg.get(at..at + len)?;
        if text_len > 0 {
            text[text_len] = b'.';
            text_len += 1;
        }
        for &b in label {
            let b = b.to_ascii_lowercase();
            hash(b);
            if b == b'.' || !b.is_ascii_graphic() {
                plain = false;
            }
            text[text_len] = b;
            text_len += 1;
        }
        at += len;
    }
    let qtype = be16(msg, at)?;
    let qclass = be16(msg, at + 2)?;
    let [t0, t1] = qtype.to_be_bytes();
    let [c0, c1] = qclass.to_be_bytes();
    for b in [t0, t1, c0, c1] {
        hash(b);
    }
    q.text = text;
    q.text_len = text_len;
    q.plain = plain;
    q.qtype = qtype;
    q.qclass = qclass;
    q.end = at + 4;
    Some(q)
}

/// A message being built in a fixed buffer.
struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
                true
            }
            None => false,
        }
    }

    fn set16(&mut self, at: usize, v: u16) {
        if let Some(dst) = self.buf.get_mut(at..at + 2) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// Writes a reply's header: the query's ID, QR, its opcode, RD and CD, RA
/// (Docker sets recursion available), `rcode`, and the counts.
fn put_header(out: &mut Out<'_>, id: u16, qflags: u16, rcode: u16, qd: u16) -> bool {
    let flags = FLAG_QR | (qflags & (MASK_OPCODE | FLAG_RD | FLAG_CD)) | FLAG_RA | (rcode & 0x000f);
    let mut h = [0u8; HEADER];
    h[0..2].copy_from_slice(&id.to_be_bytes());
    h[2..4].copy_from_slice(&flags.to_be_bytes());
    h[4..6].copy_from_slice(&qd.to_be_bytes());
    out.put(&h)
}

/// Appends one answer record whose owner is the question's name (a pointer
/// to offset 12); on overflow sets TC and returns false.
fn put_answer(out: &mut Out<'_>, rtype: u16, rdata: &[&[u8]]) -> bool {
    let rdlen: usize = rdata.iter().map(|p| p.len()).sum();
    let start = out.len;
    let mut ok = out.put(&[0xc0, 0x0c])
        && out.put(&rtype.to_be_bytes())
        && out.put(&CLASS_IN.to_be_bytes())
        && out.put(&TTL.to_be_bytes())
        && out.put(&(rdlen as u16).to_be_bytes());
    for part in rdata {
        ok = ok && out.put(part);
    }
    if !ok {
        out.len = start;
        let flags = be16(out.buf, 2).unwrap_or(0) | FLAG_TC;
        out.set16(2, flags);
        return false;
    }
    let an = be16(out.buf, 6).unwrap_or(0).saturating_add(1);
    out.set16(6, an);
    true
}

/// Encodes a dotted name as DNS labels (with the root label) into `dst`.
fn encode_name(name: &str, dst: &mut [u8; 256]) -> Option<usize> {
    let mut len = 0usize;
    for label in name.split('.').filter(|l| !l.is_empty()) {
        if label.len() > 63 || len + label.len() + 2 > 255 {
            return None;
        }
        dst[len] = label.len() as u8;
        dst[len + 1..len + 1 + label.len()].copy_from_slice(label.as_bytes());
        len += label.len() + 1;
    }
    dst[len] = 0;
    Some(len + 1)
}

/// The address a reverse name (`d.c.b.a.in-addr.arpa` or 32 nibbles of
/// `ip6.arpa`) stands for.
fn ptr_addr(name: &str) -> Option<IpAddr> {
    if let Some(rev) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut parts = rev.split('.');
        for slot in octets.iter_mut().rev() {
            let part = parts.next()?;
            if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        return parts
            .next()
            .is_none()
            .then(|| IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if let Some(rev) = name.strip_suffix(".ip6.arpa") {
        let mut value = 0u128;
        let mut count = 0;
        for (i, part) in rev.split('.').enumerate() {
            if i >= 32 || part.len() != 1 {
                return None;
            }
            let nibble = u128::from(u8::from_str_radix(part, 16).ok()?);
            value |= nibble << (4 * i);
            count += 1;
        }
        return (count == 32).then(|| IpAddr::V6(Ipv6Addr::from(value)));
    }
    None
}

/// What to do with a client's datagram.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Send the first `n` bytes of the answer buffer back.
    Reply(usize),
    /// Forward the query upstream.
    Forward { qhash: u64 },
    /// Not a query worth an answer.
    Drop,
}

/// Answers a query from the table, or says to forward or drop it. `rotate`
/// picks which of several addresses comes first.
fn handle_query(
    table: &NameTable,
    ndots_set: bool,
    have_upstream: bool,
    msg: &[u8],
    buf: &mut [u8; MAX_ANSWER],
    rotate: usize,
) -> Action {
    let (Some(id), Some(qflags), Some(qdcount)) = (be16(msg, 0), be16(msg, 2), be16(msg, 4)) else {
        return Action::Drop;
    };
    if msg.len() < HEADER || qflags & FLAG_QR != 0 {
        return Action::Drop;
    }
    let mut out = Out { buf, len: 0 };
    if qflags & MASK_OPCODE != 0 {
        let ok = put_header(&mut out, id, qflags, RCODE_NOTIMP, 0);
        return if ok {
            Action::Reply(out.len)
        } else {
            Action::Drop
        };
    }
    if qdcount != 1 {
        let ok = put_header(&mut out, id, qflags, RCODE_FORMERR, 0);
        return if ok {
            Action::Reply(out.len)
        } else {
            Action::Drop
        };
    }
    let Some(q) = parse_question(msg) else {
        return Action::Drop;
    };
    let question = &msg[HEADER..q.end];
    let forward = |out: &mut Out<'_>| -> Action {
        if have_upstream {
            return Action::Forward { qhash: q.hash };
        }
        out.len = 0;
        let ok = put_header(out, id, qflags, RCODE_SERVFAIL, 1) && out.put(question);
        if ok {
            Action::Reply(out.len)
        } else {
            Action::Drop
        }
    };
    if !q.plain || q.qclass != CLASS_IN || q.text_len == 0 {
        return forward(&mut out);
    }
    if !(put_header(&mut out, id, qflags, 0, 1) && out.put(question)) {
        return Action::Drop;
    }
    let name = q.name();
    match q.qtype {
        TYPE_A | TYPE_AAAA => {
            let family = if q.qtype == TYPE_A {
                Family::V4
            } else {
                Family::V6
            };
            match table.lookup(name, family) {
                Resolution::Found(addrs) => {
                    let n = addrs.clone().count().max(1);
                    let skip = rotate % n;
                    for ip in addrs.clone().skip(skip).chain(addrs.take(skip)) {
                        let fits = match ip {
                            IpAddr::V4(v4) => put_answer(&mut out, TYPE_A, &[&v4.octets()]),
                            IpAddr::V6(v6) => put_answer(&mut out, TYPE_AAAA, &[&v6.octets()]),
                        };
                        if !fits {
                            break;
                        }
                    }
                    Action::Reply(out.len)
                }
                Resolution::NoData => Action::Reply(out.len),
                Resolution::NotFound if ndots_set && !name.contains('.') => Action::Reply(out.len),
                Resolution::NotFound => forward(&mut out),
            }
        }
        TYPE_MX => {
            let known = |f| !matches!(table.lookup(name, f), Resolution::NotFound);
            if known(Family::V4) || known(Family::V6) {
                Action::Reply(out.len)
            } else {
                forward(&mut out)
            }
        }
        TYPE_PTR => {
            let target = ptr_addr(name).and_then(|ip| table.lookup_ip(ip));
            let mut wire = [0u8; 256];
            let encoded = target.and_then(|(host, network)| {
                let host_len = encode_name(host, &mut wire)?;
                let mut net_wire = [0u8; 256];
                let net_len = encode_name(network, &mut net_wire)?;
                // host's labels without its root, then network's labels.
                let total = host_len - 1 + net_len;
                if total > 255 {
                    return None;
                }
                wire[host_len - 1..total].copy_from_slice(&net_wire[..net_len]);
                Some(total)
            });
            match encoded {
                Some(len) => {
                    put_answer(&mut out, TYPE_PTR, &[&wire[..len]]);
                    Action::Reply(out.len)
                }
                None => forward(&mut out),
            }
        }
        _ => forward(&mut out),
    }
}

// ---------------------------------------------------------------------------
// The responder.

/// A query sent upstream and not yet answered.
#[derive(Debug)]
struct InFlight {
    upstream_id: u16,
    client_id: u16,
    client: SocketAddr,
    server: SocketAddr,
    qhash: u64,
    deadline: Instant,
}

/// The embedded DNS responder of one container, driven by its monitor's
/// poll loop: poll [`Responder::fds`] for reading, call
/// [`Responder::on_query_readable`] / [`Responder::on_upstream_readable`]
/// when they are, and [`Responder::expire`] by [`Responder::next_deadline`].
#[derive(Debug)]
pub struct Responder {
    sock: UdpSocket,
    upstream: UdpSocket,
    servers: Vec<SocketAddr>,
    table: NameTable,
    in_flight: Vec<InFlight>,
    ndots_set: bool,
    rotate: usize,
}

impl Responder {
    /// Takes the container-side socket (bound to 127.0.0.11:53 in the
    /// container's namespace by the caller) and makes the upstream socket,
    /// bound to an ephemeral port in the caller's current namespace (the
    /// host's, so that the host's loopback resolvers such as 127.0.0.53 are
    /// reachable, as Docker reaches them from the host namespace). The
    /// upstream socket has one family: like Docker, which forwards to the
    /// host's IPv4 nameservers, the IPv4 servers are used when there are
    /// any, else the IPv6 ones. Queries go to the first; with none at all,
    /// unknown names get SERVFAIL.
    pub fn new(
        sock: UdpSocket,
        servers: Vec<SocketAddr>,
        table: NameTable,
    ) -> Result<Self, DnsError> {
        sock.set_nonblocking(true)
            .map_err(io_err("setting the container socket nonblocking"))?;
        let v6 = !servers.is_empty() && servers.iter().all(SocketAddr::is_ipv6);
        let servers: Vec<SocketAddr> = servers.into_iter().filter(|s| s.is_ipv6() == v6).collect();
        let bind: SocketAddr = if v6 {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let upstream = UdpSocket::bind(bind).map_err(io_err("binding the upstream socket"))?;
        upstream
            .set_nonblocking(true)
            .map_err(io_err("setting the upstream socket nonblocking"))?;
        Ok(Self {
            sock,
            upstream,
            servers,
            table,
            in_flight: Vec::new(),
            ndots_set: false,
            rotate: 0,
        })
    }

    /// Whether the container's resolv.conf sets `ndots` explicitly: then an
    /// unknown single-label A/AAAA name is answered NOERROR with no records
    /// instead of being forwarded (as Docker does).
    pub fn set_ndots_set(&mut self, set: bool) {
        self.ndots_set = set;
    }

    /// The two descriptors to poll for reading: `[container side, upstream]`.
    pub fn fds(&self) -> [RawFd; 2] {
        [self.sock.as_raw_fd(), self.upstream.as_raw_fd()]
    }

    /// The table, to add networks to.
    pub fn table_mut(&mut self) -> &mut NameTable {
        &mut self.table
    }

    /// How many forwarded queries await an answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When the oldest forwarded query expires, if any is in flight: the
    /// poll timeout to use.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight.iter().map(|f| f.deadline).min()
    }

    /// Reads every queued query from the container side and answers,
    /// forwards or drops each. Returns on `WouldBlock`; other receive errors
    /// are returned to the caller.
    pub fn on_query_readable(&mut self) -> io::Result<()> {
        let mut buf = [0u8; MAX_QUERY];
        let mut answer = [0u8; MAX_ANSWER];
        loop {
            let (n, client) = match self.sock.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let msg = &buf[..n];
            self.table.refresh();
            self.rotate = self.rotate.wrapping_add(1);
            let have_upstream = !self.servers.is_empty();
            match handle_query(
                &self.table,
                self.ndots_set,
                have_upstream,
                msg,
                &mut answer,
                self.rotate,
            ) {
                Action::Reply(len) => self.reply(&answer[..len], client),
                Action::Forward { qhash } => self.forward(msg, client, qhash, &mut answer),
                Action::Drop => {}
            }
        }
    }

    fn reply(&self, msg: &[u8], client: SocketAddr) {
        // UDP: an answer the socket cannot take now is lost like any other
        // datagram; the client retries.
        let _ = self.sock.send_to(msg, client);
    }

    /// Sends `msg` upstream under a fresh random ID, or answers SERVFAIL
    /// when the in-flight table is full or no ID can be drawn.
    fn forward(
        &mut self,
        msg: &[u8],
        client: SocketAddr,
        qhash: u64,
        scratch: &mut [u8; MAX_ANSWER],
    ) {
        let (Some(&server), Some(client_id)) = (self.servers.first(), be16(msg, 0)) else {
            return;
        };
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.expire(Instant::now());
        }
        let upstream_id = (self.in_flight.len() < MAX_IN_FLIGHT)
            .then(|| self.fresh_id())
            .flatten();
        let Some(upstream_id) = upstream_id else {
            self.servfail(msg, client, scratch);
            return;
        };
        let mut out = [0u8; MAX_QUERY];
        let Some(copy) = out.get_mut(..msg.len()) else {
            return;
        };
        copy.copy_from_slice(msg);
        copy[0..2].copy_from_slice(&upstream_id.to_be_bytes());
        match self.upstream.send_to(copy, server) {
            Ok(_) => self.in_flight.push(InFlight {
                upstream_id,
                client_id,
                client,
                server,
                qhash,
                deadline: Instant::now() + FORWARD_TIMEOUT,
            }),
            Err(_) => self.servfail(msg, client, scratch),
        }
    }

    fn servfail(&self, msg: &[u8], client: SocketAddr, scratch: &mut [u8; MAX_ANSWER]) {
        let (Some(id), Some(qflags), Some(q)) = (be16(msg, 0), be16(msg, 2), parse_question(msg))
        else {
            return;
        };
        let mut out = Out {
            buf: scratch,
            len: 0,
        };
        if put_header(&mut out, id, qflags, RCODE_SERVFAIL, 1) && out.put(&msg[HEADER..q.end]) {
            let len = out.len;
            self.reply(&scratch[..len], client);
        }
    }

    /// A random ID no query in flight uses.
    fn fresh_id(&self) -> Option<u16> {
        for _ in 0..8 {
            let mut b = [0u8; 2];
            getrandom::getrandom(&mut b).ok()?;
            let id = u16::from_be_bytes(b);
            if !self.in_flight.iter().any(|f| f.upstream_id == id) {
                return Some(id);
            }
        }
        None
    }

    /// Reads every queued upstream answer and relays each that matches a
    /// query in flight (same server, ID and question) to its client under
    /// the client's ID; others are dropped.
    pub fn on_upstream_readable(&mut self) -> io::Result<()> {
        let mut buf = [0u8; MAX_UPSTREAM];
        loop {
            let (n, from) = match self.upstream.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.relay(&mut buf, n, from);
        }
        self.free_if_idle();
        Ok(())
    }

    fn relay(&mut self, buf: &mut [u8; MAX_UPSTREAM], n: usize, from: SocketAddr) {
        let msg = &buf[..n];
        let (Some(id), Some(flags)) = (be16(msg, 0), be16(msg, 2)) else {
            return;
        };
        if flags & FLAG_QR == 0 {
            return;
        }
        let Some(q) = parse_question(msg) else {
            return;
        };
        let Some(pos) = self
            .in_flight
            .iter()
            .position(|f| f.upstream_id == id && f.server == from && f.qhash == q.hash)
        else {
            return;
        };
        let entry = self.in_flight.swap_remove(pos);
        let mut len = n;
        if n == MAX_UPSTREAM {
            // Possibly cut by the buffer: relay the header and question
            // only, truncated, so that the client retries another way.
            len = q.end;
            for at in [6, 8, 10] {
                buf[at..at + 2].copy_from_slice(&[0, 0]);
            }
            let flags = flags | FLAG_TC;
            buf[2..4].copy_from_slice(&flags.to_be_bytes());
        }
        buf[0..2].copy_from_slice(&entry.client_id.to_be_bytes());
        self.reply(&buf[..len], entry.client);
    }

    /// Forgets the forwarded queries whose time ran out by `now`, and frees
    /// the in-flight table once it is empty.
    pub fn expire(&mut self, now: Instant) {
        self.in_flight.retain(|f| f.deadline > now);
        self.free_if_idle();
    }

    fn free_if_idle(&mut self) {
        if self.in_flight.is_empty() && self.in_flight.capacity() > 0 {
            self.in_flight = Vec::new();
        }
    }

    /// The in-flight table's capacity (0 when idle), for tests.
    #[cfg(test)]
    fn in_flight_capacity(&self) -> usize {
        self.in_flight.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;

    const RESOLVER: &str = "127.0.0.11:53";

    /// Moves this test's thread into a fresh network namespace with `lo` up.
    /// Threads spawned afterwards (and `ip`) inherit it. False (and the test
    /// is skipped) where namespaces cannot be made.
    fn enter_netns() -> bool {
        // SAFETY: unshare takes no pointers; CLONE_NEWNET moves only the
        // calling thread into a new network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        if rc != 0 {
            eprintln!(
                "skipped: unshare(CLONE_NEWNET): {}",
                io::Error::last_os_error()
            );
            return false;
        }
        let up = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        if !up.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("skipped: ip link set lo up: {up:?}");
            return false;
        }
        true
    }

    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&FLAG_RD.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.trim_end_matches('.').split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    #[derive(Debug)]
    struct Reply {
        id: u16,
        flags: u16,
        qdcount: u16,
        answers: Vec<(u16, u32, Vec<u8>)>,
    }

    impl Reply {
        fn rcode(&self) -> u16 {
            self.flags & 0x000f
        }
        fn ips(&self) -> Vec<IpAddr> {
            self.answers
                .iter()
                .filter_map(|(t, _, d)| match (*t, d.len()) {
                    (TYPE_A, 4) => Some(IpAddr::from([d[0], d[1], d[2], d[3]])),
                    (TYPE_AAAA, 16) => {
                        let b: [u8; 16] = d.as_slice().try_into().ok()?;
                        Some(IpAddr::from(b))
                    }
                    _ => None,
                })
                .collect()
        }
    }

    /// Skips a name (labels, or a pointer) starting at `at`.
    fn skip_name(m: &[u8], mut at: usize) -> usize {
        loop {
            let len = m[at] as usize;
            if len & 0xc0 == 0xc0 {
                return at + 2;
            }
            at += 1 + len;
            if len == 0 {
                return at;
            }
        }
    }

    fn decode_name(m: &[u8]) -> String {
        let mut at = 0;
        let mut labels = Vec::new();
        while m[at] != 0 {
            let len = m[at] as usize;
            labels.push(String::from_utf8_lossy(&m[at + 1..at + 1 + len]).into_owned());
            at += 1 + len;
        }
        labels.join(".") + "."
    }

    fn parse_reply(m: &[u8]) -> Reply {
        let r16 = |at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
        let mut at = HEADER;
        for _ in 0..r16(4) {
            at = skip_name(m, at) + 4;
        }
        let mut answers = Vec::new();
        for _ in 0..r16(6) {
            at = skip_name(m, at);
            let rtype = r16(at);
            let ttl = u32::from_be_bytes([m[at + 4], m[at + 5], m[at + 6], m[at + 7]]);
            let rdlen = r16(at + 8) as usize;
            answers.push((rtype, ttl, m[at + 10..at + 10 + rdlen].to_vec()));
            at += 10 + rdlen;
        }
        Reply {
            id: r16(0),
            flags: r16(2),
            qdcount: r16(4),
            answers,
        }
    }

    fn client() -> UdpSocket {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_nonblocking(true).unwrap();
        c
    }

    /// Drives the responder until the client has a datagram, or `wait`
    /// passes.
    fn pump_until_reply(r: &mut Responder, c: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
        let end = Instant::now() + wait;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            r.on_query_readable().unwrap();
            r.on_upstream_readable().unwrap();
            if let Ok(n) = c.recv(&mut buf) {
                return Some(buf[..n].to_vec());
            }
            thread::sleep(Duration::from_millis(2));
        }
        None
    }

    fn ask(r: &mut Responder, c: &UdpSocket, msg: &[u8]) -> Reply {
        c.send_to(msg, RESOLVER).unwrap();
        let got = pump_until_reply(r, c, Duration::from_secs(3)).expect("an answer");
        parse_reply(&got)
    }

    fn write_file(path: &std::path::Path, text: &str) {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, path).unwrap();
    }

    fn responder(dir: &tempfile::TempDir, text: &str, servers: Vec<SocketAddr>) -> Responder {
        let path = dir.path().join("net1.hosts");
        write_file(&path, text);
        let mut table = NameTable::new();
        table.add_network("net1", &path);
        let sock = UdpSocket::bind(RESOLVER).unwrap();
        Responder::new(sock, servers, table).unwrap()
    }

    const HOSTS: &str = "# net1\n\n10.0.0.2 web alias1 0123456789ab\n10.0.0.3   db  # the database\nfd00::4 v6only\n10.0.0.5 dual\nfd00::5 dual\n";

    /// A fake upstream DNS server on 127.0.0.1: answers every query with
    /// one A record 192.0.2.7 (TTL 30) unless `silent`, counting queries
    /// and keeping the last ID seen; stops when told or after 20 s.
    struct Upstream {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        seen: Arc<AtomicUsize>,
        last_id: Arc<AtomicUsize>,
        handle: Option<thread::JoinHandle<()>>,
    }

    impl Upstream {
        fn start(silent: bool) -> Self {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let addr = sock.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let seen = Arc::new(AtomicUsize::new(0));
            let last_id = Arc::new(AtomicUsize::new(usize::MAX));
            let (s, n, l) = (stop.clone(), seen.clone(), last_id.clone());
            let handle = thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(20);
                let mut buf = [0u8; 1500];
                while !s.load(Ordering::SeqCst) && Instant::now() < end {
                    let Ok((len, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    n.fetch_add(1, Ordering::SeqCst);
                    l.store(
                        usize::from(u16::from_be_bytes([buf[0], buf[1]])),
                        Ordering::SeqCst,
                    );
                    if silent {
                        continue;
                    }
                    let mut m = buf[..len].to_vec();
                    m[2] |= 0x80; // QR
                    m[3] |= 0x80; // RA
                    m[7] = 1; // ANCOUNT
                    m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 7]);
                    let _ = sock.send_to(&m, from);
                }
            });
            Upstream {
                addr,
                stop,
                seen,
                last_id,
                handle: Some(handle),
            }
        }
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    #[test]
    fn answers_names_aliases_short_ids_from_the_table() {
        if !enter_netns() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut r = responder(&dir, HOSTS, Vec::new());
        let c = client();
        let web: IpAddr = "10.0.0.2".parse().unwrap();
        for (id, name) in [
            (1, "web"),
            (2, "alias1"),
            (3, "0123456789ab"),
            (4, "WeB"),
            (5, "web."),
            (6, "ALIAS1."),
            (7, "web.net1"),
            (8, "Web.NET1."),
        ] {
            let reply = ask(&mut r, &c, &query(id, name, TYPE_A));
            assert_eq!(reply.id, id, "{name}");
            assert_eq!(reply.rcode(), 0, "{name}");
            assert_ne!(reply.flags & FLAG_QR, 0);
            assert_ne!(reply.flags & FLAG_RA, 0);
            assert_ne!(reply.flags & FLAG_RD, 0, "RD copied");
            assert_eq!(reply.flags & 0x0400, 0, "not authoritative, like Docker");
            assert_eq!(reply.qdcount, 1);
            assert_eq!(reply.ips(), vec![web], "{name}");
            assert_eq!(reply.answers[0].1, TTL);
        }
        // The answer's owner is the question's name as asked.
        c.send_to(&query(9, "WeB", TYPE_A), RESOLVER).unwrap();
        let raw = pump_until_reply(&mut r, &c, Duration::from_secs(3)).unwrap();
        assert!(raw.windows(4).any(|w| w == b"\x03WeB"));

        // AAAA of a v4-only name: NOERROR, no answers.
        let reply = ask(&mut r, &c, &query(10, "web", TYPE_AAAA));
        assert_eq!((reply.rcode(), reply.answers.len()), (0, 0));
        // A of a v6-only name: the same.
        let reply = ask(&mut r, &c, &query(11, "v6only", TYPE_A));
        assert_eq!((reply.rcode(), reply.answers.len()), (0, 0));
        let reply = ask(&mut r, &c, &query(12, "v6only", TYPE_AAAA));
        assert_eq!(reply.ips(), vec!["fd00::4".parse::<IpAddr>().unwrap()]);
        let reply = ask(&mut r, &c, &query(13, "dual", TYPE_AAAA));
        assert_eq!(reply.ips(), vec!["fd00::5".parse::<IpAddr>().unwrap()]);
        // MX of a known name: NOERROR, no answers.
        let reply = ask(&mut r, &c, &query(14, "db", TYPE_MX));
        assert_eq!((reply.rcode(), reply.answers.len()), (0, 0));
        // PTR of a container's address: name.network.
        let reply = ask(&mut r, &c, &query(15, "2.0.0.10.in-addr.arpa", TYPE_PTR));
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].0, TYPE_PTR);
        assert_eq!(decode_name(&reply.answers[0].2), "web.net1.");
        let v6_ptr = "4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        let reply = ask(&mut r, &c, &query(16, v6_ptr, TYPE_PTR));
        assert_eq!(decode_name(&reply.answers[0].2), "v6only.net1.");
        // Unknown, with no upstream: SERVFAIL with the question.
        let reply = ask(&mut r, &c, &query(17, "nosuch", TYPE_A));
        assert_eq!((reply.id, reply.rcode(), reply.qdcount), (17, 2, 1));
        assert!(reply.answers.is_empty());
        let reply = ask(&mut r, &c, &query(18, "9.0.0.10.in-addr.arpa", TYPE_PTR));
        assert_eq!(reply.rcode(), 2);
    }

    #[test]
    fn several_addresses_for_a_name_are_rotated() {
        if !enter_netns() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut r = responder(
            &dir,
            "10.0.0.2 a shared\n10.0.0.3 b shared\n10.0.0.4 c shared\n",
            Vec::new(),
        );
        let c = client();
        let mut firsts = std::collections::HashSet::new();
        for id in 0..6 {
            let reply = ask(&mut r, &c, &query(id, "shared", TYPE_A));
            let mut ips = reply.ips();
            assert_eq!(ips.len(), 3);
            firsts.insert(ips[0]);
            ips.sort();
            assert_eq!(ips[0], "10.0.0.2".parse::<IpAddr>().unwrap());
        }
        assert_eq!(firsts.len(), 3);
    }

    #[test]
    fn unknown_names_are_forwarded_and_relayed_with_the_client_id() {
        if !enter_netns() {
            return;
        }
        let up = Upstream::start(false);
        let dir = tempfile::tempdir().unwrap();
        let mut r = responder(&dir, HOSTS, vec![up.addr]);
        let c = client();
        let reply = ask(&mut r, &c, &query(0x1234, "example.test", TYPE_A));
        assert_eq!(reply.id, 0x1234);
        assert_eq!(reply.rcode(), 0);
        assert_eq!(reply.ips(), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(reply.answers[0].1, 30, "the upstream's TTL is kept");
        assert_eq!(up.seen.load(Ordering::SeqCst), 1);
        // Other types of a known name go upstream too.
        let reply = ask(&mut r, &c, &query(0x4321, "web", 16 /* TXT */));
        assert_eq!(reply.id, 0x4321);
        assert_eq!(up.seen.load(Ordering::SeqCst), 2);
        // Known names are not forwarded.
        let reply = ask(&mut r, &c, &query(0x5555, "db", TYPE_A));
        assert_eq!(reply.ips(), vec!["10.0.0.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(up.seen.load(Ordering::SeqCst), 2);
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.in_flight_capacity(), 0, "freed once empty");
        assert!(r.next_deadline().is_none());
        // A reply to an ID nobody waits for is dropped.
        let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut fake = query(up.last_id.load(Ordering::SeqCst) as u16, "x", TYPE_A);
        fake[2] |= 0x80;
        stray
            .send_to(&fake, r.upstream.local_addr().unwrap())
            .unwrap();
        assert!(pump_until_reply(&mut r, &c, Duration::from_millis(150)).is_none());
    }

    #[test]
    fn replies_from_elsewhere_are_not_relayed() {
        if !enter_netns() {
            return;
        }
        let up = Upstream::start(true);
        let dir = tempfile::tempdir().unwrap();
        let mut r = responder(&dir, HOSTS, vec![up.addr]);
        let c = client();
        let q = query(0x0101, "example.test", TYPE_A);
        c.send_to(&q, RESOLVER).unwrap();
        for _ in 0..1000 {
            r.on_query_readable().unwrap();
            if up.seen.load(Ordering::SeqCst) == 1 {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(r.in_flight(), 1);
        // The right ID and question, from another port: dropped.
        let mut spoof = q.clone();
        spoof[0..2].copy_from_slice(&(up.last_id.load(Ordering::SeqCst) as u16).to_be_bytes());
        spoof[2] |= 0x80;
        let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
        stray
            .send_to(&spoof, r.upstream.local_addr().unwrap())
            .unwrap();
        assert!(pump_until_reply(&mut r, &c, Duration::from_millis(150)).is_none());
        assert_eq!(r.in_flight(), 1);
    }

    #[test]
    fn ndots_set_keeps_single_labels_home() {
        if !enter_netns() {
            return;
        }
        let up = Upstream::start(false);
        let dir = tempfile::tempdir().unwrap();
        let mut r = responder(&dir, HOSTS, vec![up.addr]);
        r.set_ndots_set(true);
        let c = client();
        let reply = ask(&mut r, &c, &query(1, "nosuch", TYPE_A));
        assert_eq!((reply.rcode(), reply.answers.len()), (0, 0));
        assert_eq!(up.seen.load(Ordering::SeqCst), 0);
        let reply = ask(&mut r, &c, &query(2, "no.such", TYPE_A));
        assert_eq!(reply.ips().len(), 1);
        assert_eq!(up.seen.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_table_is_reread_after_the_file_is_replaced() {
        if !enter_netns() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut r = responder(&dir, "10.0.0.2 web\n", Vec::new());
        let c = client();
        let reply = ask(&mut r, &c, &query(1, "web", TYPE_A));
        assert_eq!(reply.ips(), vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        write_file(
            &dir.path().join("net1.hosts"),
            "10.0.0.9 web\n10.0.0.3 new\n",
        );
        let reply = ask(&mut r, &c, &query(2, "web", TYPE_A));
        assert_eq!(reply.ips(), vec!["10.0.0.9".parse::<IpAddr>().unwrap()]);
        let reply = ask(&mut r, &c, &query(3, "new", TYPE_A));
        assert_eq!(reply.ips(), vec!["10.0.0.3".parse::<IpAddr>().unwrap()]);
        // A file that goes away empties its network.
        fs::remove_file(dir.path().join("net1.hosts")).unwrap();
        let reply = ask(&mut r, &c, &query(4, "web", TYPE_A));
        assert_eq!(reply.rcode(), RCODE_SERVFAIL);
    }

    #[test]
    fn malformed_datagrams_are_ignored() {
        if !enter_netns() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut r = responder(&dir, HOSTS, Vec::new());
        let c = client();
        let good = query(7, "web", TYPE_A);
        let mut answer = good.clone();
        answer[2] |= 0x80;
        let mut pointer = good.clone();
        pointer[12] = 0xc0;
        for bad in [
            &b""[..],
            &b"\x00"[..],
            &good[..11],
            &good[..good.len() - 1],
            &answer[..],
            &pointer[..],
            &[0xffu8; 40][..],
        ] {
            c.send_to(bad, RESOLVER).unwrap();
        }
        assert!(pump_until_reply(&mut r, &c, Duration::from_millis(200)).is_none());
        // Still serving.
        let reply = ask(&mut r, &c, &good);
        assert_eq!(reply.ips(), vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        // Two questions: FORMERR; another opcode: NOTIMP.
        let mut two = good.clone();
        two[5] = 2;
        let reply = ask(&mut r, &c, &two);
        assert_eq!((reply.id, reply.rcode()), (7, RCODE_FORMERR));
        let mut status = good.clone();
        status[2] |= 2 << 3;
        let reply = ask(&mut r, &c, &status);
        assert_eq!(reply.rcode(), RCODE_NOTIMP);
    }

    #[test]
    fn the_in_flight_table_is_bounded_and_expires() {
        if !enter_netns() {
            return;
        }
        let up = Upstream::start(true);
        let dir = tempfile::tempdir().unwrap();
        let mut r = responder(&dir, HOSTS, vec![up.addr]);
        let c = client();
        let total = MAX_IN_FLIGHT + 36;
        for id in 0..total {
            c.send_to(
                &query(id as u16, &format!("n{id}.example"), TYPE_A),
                RESOLVER,
            )
            .unwrap();
            if id % 16 == 15 {
                r.on_query_readable().unwrap();
            }
        }
        r.on_query_readable().unwrap();
        assert_eq!(r.in_flight(), MAX_IN_FLIGHT);
        let mut servfails = 0;
        while let Some(m) = pump_until_reply(&mut r, &c, Duration::from_millis(200)) {
            let reply = parse_reply(&m);
            assert_eq!(reply.rcode(), RCODE_SERVFAIL);
            assert!(usize::from(reply.id) >= MAX_IN_FLIGHT);
            servfails += 1;
        }
        assert_eq!(servfails, total - MAX_IN_FLIGHT);
        let deadline = r.next_deadline().unwrap();
        assert!(deadline <= Instant::now() + FORWARD_TIMEOUT);
        r.expire(Instant::now());
        assert_eq!(r.in_flight(), MAX_IN_FLIGHT, "not yet due");
        r.expire(Instant::now() + FORWARD_TIMEOUT + Duration::from_secs(1));
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.in_flight_capacity(), 0);
        let mut n = 0;
        for _ in 0..500 {
            n = up.seen.load(Ordering::SeqCst);
            if n == MAX_IN_FLIGHT {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(n, MAX_IN_FLIGHT);
    }

    /// A small xorshift generator: reproducible "random" packets.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_and_damaged_packets_never_panic() {
        let mut table = NameTable::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        fs::write(&path, HOSTS).unwrap();
        table.add_network("net1", &path);
        let mut out = [0u8; MAX_ANSWER];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = (rng.next() % 300) as usize;
            let msg: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = handle_query(&table, false, true, &msg, &mut out, 0);
            let _ = parse_question(&msg);
        }
        let seeds = [
            query(1, "web", TYPE_A),
            query(2, "2.0.0.10.in-addr.arpa", TYPE_PTR),
            query(3, "alias1.net1", TYPE_AAAA),
            query(4, "db", TYPE_MX),
        ];
        for seed in &seeds {
            for cut in 0..seed.len() {
                let _ = handle_query(&table, false, false, &seed[..cut], &mut out, 1);
            }
            for _ in 0..5_000 {
                let mut m = seed.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let at = (rng.next() as usize) % m.len();
                    m[at] = rng.next() as u8;
                }
                for ndots in [false, true] {
                    if let Action::Reply(n) = handle_query(&table, ndots, false, &m, &mut out, 2) {
                        assert!((HEADER..=MAX_ANSWER).contains(&n));
                    }
                }
            }
        }
        // The longest name and many answers still fit in 512 bytes.
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        let many: String = (0..40).map(|i| format!("10.1.0.{i} {long}\n")).collect();
        fs::write(&path, many).unwrap();
        table.refresh();
        let Action::Reply(n) =
            handle_query(&table, false, false, &query(5, &long, TYPE_A), &mut out, 0)
        else {
            panic!("no reply");
        };
        let reply = parse_reply(&out[..n]);
        assert_ne!(reply.flags & FLAG_TC, 0, "truncated");
        assert!(!reply.answers.is_empty() && reply.answers.len() < 40);
    }

    #[test]
    fn lookup_follows_docker_resolution_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "10.1.0.2 web my.app\n").unwrap();
        fs::write(&b, "10.2.0.2 web other\nfd00::9 six\n").unwrap();
        let mut table = NameTable::new();
        table.add_network("front", &a);
        table.add_network("back.net", &b);
        table.add_network("missing", dir.path().join("nope"));
        let first = |table: &NameTable, name: &str, f| match table.lookup(name, f) {
            Resolution::Found(mut addrs) => addrs.next().map(|ip| ip.to_string()),
            Resolution::NoData => Some("nodata".into()),
            Resolution::NotFound => None,
        };
        assert_eq!(
            first(&table, "web", Family::V4).as_deref(),
            Some("10.1.0.2")
        );
        assert_eq!(
            first(&table, "web.front", Family::V4).as_deref(),
            Some("10.1.0.2")
        );
        assert_eq!(
            first(&table, "web.back.net", Family::V4).as_deref(),
            Some("10.2.0.2")
        );
        assert_eq!(
            first(&table, "WEB.Back.Net.", Family::V4).as_deref(),
            Some("10.2.0.2")
        );
        assert_eq!(
            first(&table, "my.app", Family::V4).as_deref(),
            Some("10.1.0.2")
        );
        assert_eq!(
            first(&table, "my.app.front", Family::V4).as_deref(),
            Some("10.1.0.2")
        );
        assert_eq!(first(&table, "other.front", Family::V4), None);
        assert_eq!(first(&table, "web.nonet", Family::V4), None);
        assert_eq!(first(&table, "six", Family::V4).as_deref(), Some("nodata"));
        assert_eq!(first(&table, "six", Family::V6).as_deref(), Some("fd00::9"));
        // v4-only on the first network, v6 on the second: the second answers
        // AAAA; NoData only when no network has the family.
        let c = dir.path().join("c");
        fs::write(
            &c,
            "fd00::7 web\n10.3.0.2 dup\n10.3.0.2 dup\n10.3.0.3 dup\n",
        )
        .unwrap();
        table.add_network("third", &c);
        assert_eq!(first(&table, "web", Family::V6).as_deref(), Some("fd00::7"));
        assert_eq!(
            first(&table, "web.front", Family::V6).as_deref(),
            Some("nodata")
        );
        let Resolution::Found(addrs) = table.lookup("dup", Family::V4) else {
            panic!("dup not found");
        };
        assert_eq!(addrs.count(), 2, "an address is answered once");
        assert_eq!(first(&table, "", Family::V4), None);
        assert_eq!(first(&table, ".", Family::V4), None);
        assert_eq!(
            table.lookup_ip("10.2.0.2".parse().unwrap()),
            Some(("web", "back.net"))
        );
        assert_eq!(table.lookup_ip("10.9.9.9".parse().unwrap()), None);
    }

    #[test]
    fn reverse_names_parse() {
        assert_eq!(
            ptr_addr("4.3.2.1.in-addr.arpa"),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(ptr_addr("3.2.1.in-addr.arpa"), None);
        assert_eq!(ptr_addr("5.4.3.2.1.in-addr.arpa"), None);
        assert_eq!(ptr_addr("256.3.2.1.in-addr.arpa"), None);
        assert_eq!(ptr_addr("+4.3.2.1.in-addr.arpa"), None);
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(ptr_addr(v6), Some("fd00::1".parse().unwrap()));
        assert_eq!(ptr_addr("1.0.ip6.arpa"), None);
        assert_eq!(ptr_addr("example.com"), None);
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 192.0.2.53\nnameserver  2001:db8::53 # v6\n;nameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\nnameserver 127.0.0.53\n";
        let want: Vec<SocketAddr> = ["192.0.2.53:53", "[2001:db8::53]:53", "127.0.0.53:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(resolv_conf_servers(text), want);
        assert!(resolv_conf_servers("").is_empty());
    }

    #[test]
    fn ipv4_upstreams_are_preferred() {
        if !enter_netns() {
            return;
        }
        let sock = UdpSocket::bind(RESOLVER).unwrap();
        let servers: Vec<SocketAddr> = ["[::1]:53", "127.0.0.1:5353", "127.0.0.2:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let r = Responder::new(sock, servers, NameTable::new()).unwrap();
        assert_eq!(r.servers, vec![servers_v4()[0], servers_v4()[1]]);
        assert!(r.upstream.local_addr().unwrap().is_ipv4());
        let [a, b] = r.fds();
        assert!(a >= 0 && b >= 0 && a != b);
    }

    fn servers_v4() -> Vec<SocketAddr> {
        vec![
            "127.0.0.1:5353".parse().unwrap(),
            "127.0.0.2:53".parse().unwrap(),
        ]
    }
}
