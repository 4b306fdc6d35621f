//! A blocking rtnetlink client: bridges, veth pairs, addresses and routes.
//!
//! One [`Netlink`] owns one `NETLINK_ROUTE` socket, connected to the kernel
//! and bound to the network namespace its thread was in when it was opened
//! ([`Netlink::open_in`] opens one inside another namespace). Requests are
//! built with `netlink-packet-route`'s message types; replies are read by
//! walking their attributes for the few this module needs, so an attribute
//! that a newer kernel adds (or a layout the crate does not know) never makes
//! a reply unreadable.
//!
//! Every call is one round trip: one `send` of one datagram (sometimes two
//! messages batched in it, see [`Netlink::create_bridge`]) and the `recv`s of
//! its replies. Every request asks for an acknowledgement and checks it;
//! dumps are read to their `NLMSG_DONE`. Replies are matched by sequence
//! number, and a call that stops early reads and drops what is left of its
//! exchange, so the next call starts clean. No threads, no async runtime: a
//! 32 KiB receive buffer and a small send buffer, both reused.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use netlink_packet_core::{
    Emitable, NetlinkBuffer, NetlinkHeader, NetlinkSerializable, NlasIterator, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkHeader, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// What this module's calls return.
pub type Result<T> = std::result::Result<T, NetlinkError>;

/// Why a netlink call failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket itself failed (opening, sending, receiving), or entering
    /// or leaving a network namespace did.
    #[error("netlink: {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the request with an errno, and sometimes a
    /// sentence of its own (extended ack).
    #[error("netlink: {request}: {}{}", io::Error::from_raw_os_error(*errno), message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// The request, e.g. "RTM_NEWLINK (create bridge)".
        request: &'static str,
        /// The positive errno (`libc::EEXIST`, ...).
        errno: i32,
        /// The kernel's extended-ack message, when it gave one.
        message: Option<String>,
    },
    /// Replies were lost: the socket's receive queue overflowed (`ENOBUFS`)
    /// or a reply was larger than the receive buffer. Whether the request
    /// took effect is unknown. The socket stays usable: what was left of
    /// the exchange has been read and dropped (and the buffer grown).
    #[error("netlink: {request}: replies were lost ({reason}); the request's outcome is unknown")]
    RepliesLost {
        /// The request whose replies were lost.
        request: &'static str,
        /// "ENOBUFS" or "reply larger than the receive buffer".
        reason: &'static str,
    },
    /// A dump kept changing while it was read (`NLM_F_DUMP_INTR`), or kept
    /// losing replies, through every retry.
    #[error("netlink: {request}: the dump was interrupted (concurrent changes or lost replies) on every attempt")]
    DumpInterrupted {
        /// The dump request.
        request: &'static str,
    },
    /// A reply did not parse.
    #[error("netlink: {request}: malformed reply: {detail}")]
    Malformed {
        /// The request the reply answered.
        request: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// An interface name the kernel would refuse (empty, longer than 15
    /// bytes, ".", "..", or containing '/', ':', whitespace or NUL).
    #[error("invalid interface name {0:?}")]
    InvalidName(String),
    /// A prefix length longer than the address.
    #[error("invalid prefix length /{prefix} for {addr}")]
    InvalidPrefix {
        /// The address.
        addr: IpAddr,
        /// The prefix length given.
        prefix: u8,
    },
}

impl NetlinkError {
    /// The errno behind this error: the kernel's for a refused request, the
    /// system's for a socket or namespace failure, `None` otherwise.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the kernel said the object already exists (`EEXIST`): a
    /// link name in use, an address or route already there.
    pub fn is_exists(&self) -> bool {
        matches!(self, NetlinkError::Kernel { errno, .. } if *errno == libc::EEXIST)
    }

    /// True when the kernel said the object does not exist (`ENODEV` for a
    /// link, `ENOENT`/`ESRCH` for an address or route).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetlinkError::Kernel { errno, .. }
            if *errno == libc::ENODEV || *errno == libc::ENOENT || *errno == libc::ESRCH)
    }
}

/// Receive buffer size. The kernel sizes a dump's datagrams after the
/// largest buffer the reader offered, capped at 32 KiB, so more would not
/// be used; a single message that does not fit (it would take an exotic
/// link) grows the buffer, and a dump is read again.
const RECV_BUF: usize = 32 * 1024;
/// How long a reply may take before a call gives up (a backstop: the kernel
/// answers rtnetlink requests synchronously, within microseconds to
/// milliseconds; only a lost reply would wait this long).
const RECV_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a dump is tried in all (see [`Netlink::dump`]).
const DUMP_ATTEMPTS: usize = 4;
/// `IFNAMSIZ` less the terminating NUL.
const IFNAME_MAX: usize = 15;
/// `NLMSGERR_ATTR_MSG`: the extended ack's text attribute.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// Size of `struct ifinfomsg`, `struct ifaddrmsg` and `struct rtmsg`.
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTMSG_LEN: usize = 12;

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// A connected `NETLINK_ROUTE` socket and its buffers.
///
/// The socket stays in the network namespace it was opened in, whatever
/// namespace the thread using it moves to later.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("fd", &self.socket.as_raw_fd())
            .field("seq", &self.seq)
            .finish()
    }
}

/// What one exchange of messages saw besides its replies.
struct Exchange {
    /// Some reply carried `NLM_F_DUMP_INTR`.
    interrupted: bool,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    ///
    /// The socket is close-on-exec and connected to the kernel (so it takes
    /// messages from nothing else); it asks for capped acks (errors do not
    /// echo whole requests back), extended acks (the kernel's own error
    /// text), and strict checking of dump requests where the kernel has it.
    pub fn open() -> Result<Netlink> {
        let io = |context| move |source| NetlinkError::Io { context, source };
        let socket = Socket::new(NETLINK_ROUTE).map_err(io("socket(NETLINK_ROUTE)"))?;
        // Both are small, optional comforts (Linux 4.2 and 4.12): an old
        // kernel refusing them changes nothing but the error's wording.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        // Linux 4.20: lets a route dump be filtered by table in the kernel.
        // Without it the table is filtered here (as it is anyway).
        let _ = socket.set_netlink_get_strict_chk(true);
        rustix::net::sockopt::set_socket_timeout(
            &socket,
            rustix::net::sockopt::Timeout::Recv,
            Some(RECV_TIMEOUT),
        )
        .map_err(|e| NetlinkError::Io {
            context: "setsockopt(SO_RCVTIMEO)",
            source: e.into(),
        })?;
        // Connecting autobinds a port id and makes the kernel (port 0) the
        // only peer whose messages are queued here.
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io("connect"))?;
        Ok(Netlink {
            socket,
            seq: 0,
            tx: Vec::with_capacity(256),
            rx: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Opens a socket inside the network namespace `netns` (an open
    /// `/proc/PID/ns/net` or nsfs file): moves the calling thread there,
    /// opens the socket, and moves the thread back to the namespace it was
    /// in, always, even when opening failed. Sockets keep the namespace
    /// they were made in.
    ///
    /// Needs `CAP_SYS_ADMIN` over both namespaces. If moving back fails (it
    /// cannot in practice: the original namespace is held open) the error
    /// says so and the thread is left in `netns`.
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Netlink> {
        in_netns(netns, Netlink::open)
    }

    /// The index of the link named `name`, or `None` when there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        check_name(name)?;
        let request = "RTM_GETLINK (by name)";
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let mut index = None;
        let outcome = self.transact(
            request,
            &[(RouteNetlinkMessage::GetLink(msg), 0)],
            &mut |kind, payload| {
                if kind == libc::RTM_NEWLINK {
                    index = Some(link_header(request, payload)?.index);
                }
                Ok(())
            },
        );
        Ok(not_found_is_none(outcome)?.and(index))
    }

    /// Creates a bridge named `name` and returns its index. A name already
    /// in use fails with an error whose [`NetlinkError::is_exists`] is true.
    ///
    /// One round trip: the `RTM_NEWLINK` and an `RTM_GETLINK` by name (for
    /// the index, which creation does not report) go out in one datagram.
    pub fn create_bridge(&mut self, name: &str) -> Result<u32> {
        check_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.create_link("RTM_NEWLINK (create bridge)", msg, name)
    }

    /// Creates a veth pair: the `host` end in this socket's namespace, the
    /// other end directly inside the namespace `peer_netns` (an open nsfs
    /// file) under `peer_name` (e.g. "eth0"). Returns the host end's index.
    /// A name in use on either side fails with `EEXIST` (see
    /// [`NetlinkError::is_exists`]).
    pub fn create_veth(
        &mut self,
        host: &str,
        peer_name: &str,
        peer_netns: BorrowedFd<'_>,
    ) -> Result<u32> {
        check_name(host)?;
        check_name(peer_name)?;
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_owned()));
        peer.attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_owned()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.create_link("RTM_NEWLINK (create veth)", msg, host)
    }

    /// Enslaves link `index` to the bridge `master` (0 detaches it).
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        let mut msg = link_by_index(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        self.set_link("RTM_SETLINK (master)", msg)
    }

    /// Puts link `index` under `master` and sets it up, in one message.
    pub fn set_master_up(&mut self, index: u32, master: u32) -> Result<()> {
        let mut msg = link_by_index(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.set_link("RTM_SETLINK (master, up)", msg)
    }

    /// Sets link `index`'s hardware address and sets it up, in one message.
    pub fn set_mac_up(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        let mut msg = link_by_index(index);
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.set_link("RTM_SETLINK (address, up)", msg)
    }

    /// Sets link `index` administratively up.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut msg = link_by_index(index);
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.set_link("RTM_SETLINK (up)", msg)
    }

    /// Sets link `index`'s hardware address.
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        let mut msg = link_by_index(index);
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.set_link("RTM_SETLINK (address)", msg)
    }

    /// Sets link `index`'s MTU.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut msg = link_by_index(index);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link("RTM_SETLINK (mtu)", msg)
    }

    /// Adds `addr/prefix` to link `index`. An address already there fails
    /// with an error whose [`NetlinkError::is_exists`] is true.
    ///
    /// IPv4 addresses get the subnet's broadcast address (below /31), as
    /// Docker's do; IPv6 addresses skip duplicate address detection
    /// (`IFA_F_NODAD`: they come from berth's own allocation, and DAD would
    /// keep them unusable for a second or more).
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix: u8) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        match addr {
            IpAddr::V4(v4) => {
                if prefix > 32 {
                    return Err(NetlinkError::InvalidPrefix { addr, prefix });
                }
                msg.header.family = AddressFamily::Inet;
                msg.attributes.push(AddressAttribute::Local(addr));
                msg.attributes.push(AddressAttribute::Address(addr));
                if let Some(broadcast) = broadcast_v4(v4, prefix) {
                    msg.attributes.push(AddressAttribute::Broadcast(broadcast));
                }
            }
            IpAddr::V6(_) => {
                if prefix > 128 {
                    return Err(NetlinkError::InvalidPrefix { addr, prefix });
                }
                msg.header.family = AddressFamily::Inet6;
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Address(addr));
            }
        }
        self.transact(
            "RTM_NEWADDR",
            &[(
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_CREATE | NLM_F_EXCL,
            )],
            &mut |_, _| Ok(()),
        )
        .map(drop)
    }

    /// Adds the IPv4 default route of the main table through `gateway`,
    /// which must be reachable through a connected route (an address of its
    /// subnet on an up link). One already there fails with `EEXIST`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.transact(
            "RTM_NEWROUTE (default)",
            &[(
                RouteNetlinkMessage::NewRoute(msg),
                NLM_F_CREATE | NLM_F_EXCL,
            )],
            &mut |_, _| Ok(()),
        )
        .map(drop)
    }

    /// Deletes link `index` (for a veth, both ends go).
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        self.transact(
            "RTM_DELLINK",
            &[(RouteNetlinkMessage::DelLink(link_by_index(index)), 0)],
            &mut |_, _| Ok(()),
        )
        .map(drop)
    }

    /// Deletes the link named `name`: `true` when it was there, `false`
    /// when there was none.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        check_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let outcome = self.transact(
            "RTM_DELLINK (by name)",
            &[(RouteNetlinkMessage::DelLink(msg), 0)],
            &mut |_, _| Ok(()),
        );
        not_found_is_none(outcome.map(|_| ())).map(|deleted| deleted.is_some())
    }

    /// The IPv4 routes of the main table, as (destination, prefix length):
    /// every kind (unicast, blackhole, unreachable, ...), the default route
    /// as `(0.0.0.0, 0)`. For picking a subnet that collides with nothing.
    pub fn routes_v4(&mut self) -> Result<Vec<(Ipv4Addr, u8)>> {
        let request = "RTM_GETROUTE (dump)";
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        // Filters in the kernel when strict checking is on; checked below
        // in any case.
        msg.attributes
            .push(RouteAttribute::Table(u32::from(libc::RT_TABLE_MAIN)));
        self.dump(
            request,
            RouteNetlinkMessage::GetRoute(msg),
            |kind, payload| {
                if kind != libc::RTM_NEWROUTE {
                    return Ok(None);
                }
                let header = payload.get(..RTMSG_LEN).ok_or_else(|| {
                    malformed(request, format!("route message of {} bytes", payload.len()))
                })?;
                // struct rtmsg: family, dst_len, src_len, tos, table, ...
                if header[0] != libc::AF_INET as u8 {
                    return Ok(None);
                }
                let prefix = header[1];
                let mut table = u32::from(header[4]);
                let mut destination = Ipv4Addr::UNSPECIFIED;
                for_each_attribute(request, &payload[RTMSG_LEN..], |kind, value| {
                    match kind {
                        libc::RTA_DST => destination = ipv4(request, value)?,
                        libc::RTA_TABLE => table = u32_of(request, value)?,
                        _ => {}
                    }
                    Ok(())
                })?;
                Ok((table == u32::from(libc::RT_TABLE_MAIN)).then_some((destination, prefix)))
            },
        )
    }

    /// The IPv4 addresses of every link, as (link index, address, prefix
    /// length). For a point-to-point link the address is the local end.
    pub fn addresses_v4(&mut self) -> Result<Vec<(u32, Ipv4Addr, u8)>> {
        let request = "RTM_GETADDR (dump)";
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        self.dump(
            request,
            RouteNetlinkMessage::GetAddress(msg),
            |kind, payload| {
                if kind != libc::RTM_NEWADDR {
                    return Ok(None);
                }
                let header = payload.get(..IFADDRMSG_LEN).ok_or_else(|| {
                    malformed(
                        request,
                        format!("address message of {} bytes", payload.len()),
                    )
                })?;
                // struct ifaddrmsg: family, prefixlen, flags, scope, index.
                if header[0] != libc::AF_INET as u8 {
                    return Ok(None);
                }
                let prefix = header[1];
                let index = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
                let (mut local, mut address) = (None, None);
                for_each_attribute(request, &payload[IFADDRMSG_LEN..], |kind, value| {
                    match kind {
                        libc::IFA_LOCAL => local = Some(ipv4(request, value)?),
                        libc::IFA_ADDRESS => address = Some(ipv4(request, value)?),
                        _ => {}
                    }
                    Ok(())
                })?;
                Ok(local.or(address).map(|addr| (index, addr, prefix)))
            },
        )
    }

    /// The links whose names start with `prefix`, as (index, name): for
    /// sweeping stale veths ("vb…") left by a monitor that died.
    pub fn links_with_prefix(&mut self, prefix: &str) -> Result<Vec<(u32, String)>> {
        let request = "RTM_GETLINK (dump)";
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.dump(
            request,
            RouteNetlinkMessage::GetLink(msg),
            |kind, payload| {
                if kind != libc::RTM_NEWLINK {
                    return Ok(None);
                }
                let index = link_header(request, payload)?.index;
                let mut name = None;
                for_each_attribute(request, &payload[IFINFOMSG_LEN..], |kind, value| {
                    if kind == libc::IFLA_IFNAME {
                        name = Some(c_string(value));
                    }
                    Ok(())
                })?;
                Ok(name
                    .filter(|name| name.starts_with(prefix))
                    .map(|name| (index, name)))
            },
        )
    }

    /// Link `index`'s hardware address: `None` when there is no such link,
    /// or when its address is not a 6-byte Ethernet one.
    pub fn link_mac(&mut self, index: u32) -> Result<Option<[u8; 6]>> {
        Ok(self
            .link_attribute(index, libc::IFLA_ADDRESS)?
            .and_then(|value| <[u8; 6]>::try_from(value.as_slice()).ok()))
    }

    /// One attribute of link `index` (its raw value), `None` when the link
    /// or the attribute is missing.
    fn link_attribute(&mut self, index: u32, attribute: u16) -> Result<Option<Vec<u8>>> {
        let request = "RTM_GETLINK (by index)";
        let mut msg = link_by_index(index);
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let mut found = None;
        let outcome = self.transact(
            request,
            &[(RouteNetlinkMessage::GetLink(msg), 0)],
            &mut |kind, payload| {
                if kind == libc::RTM_NEWLINK && payload.len() >= IFINFOMSG_LEN {
                    for_each_attribute(request, &payload[IFINFOMSG_LEN..], |kind, value| {
                        if kind == attribute {
                            found = Some(value.to_vec());
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            },
        );
        Ok(not_found_is_none(outcome.map(|_| ()))?.and(found))
    }

    /// Sends a creating `RTM_NEWLINK` and, in the same datagram, an
    /// `RTM_GETLINK` for `name`; returns the new link's index.
    fn create_link(&mut self, request: &'static str, msg: LinkMessage, name: &str) -> Result<u32> {
        let mut get = LinkMessage::default();
        get.attributes.push(LinkAttribute::IfName(name.to_owned()));
        get.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let mut index = None;
        self.transact(
            request,
            &[
                (RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL),
                (RouteNetlinkMessage::GetLink(get), 0),
            ],
            &mut |kind, payload| {
                if kind == libc::RTM_NEWLINK {
                    index = Some(link_header(request, payload)?.index);
                }
                Ok(())
            },
        )?;
        index.ok_or_else(|| {
            malformed(
                request,
                format!("no RTM_NEWLINK for {name:?} after creating it"),
            )
        })
    }

    /// Sends an `RTM_SETLINK` and checks its ack.
    fn set_link(&mut self, request: &'static str, msg: LinkMessage) -> Result<()> {
        self.transact(
            request,
            &[(RouteNetlinkMessage::SetLink(msg), 0)],
            &mut |_, _| Ok(()),
        )
        .map(drop)
    }

    /// Reads a whole dump, `parse` turning each reply into an item or
    /// skipping it; read again (a few times) when the kernel flags it
    /// inconsistent (`NLM_F_DUMP_INTR`), when replies were lost, or when a
    /// dump of an earlier call was still running (`EBUSY`).
    fn dump<T>(
        &mut self,
        request: &'static str,
        msg: RouteNetlinkMessage,
        mut parse: impl FnMut(u16, &[u8]) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut items = Vec::new();
            let outcome = self.round_trip(
                request,
                &[(msg.clone(), NLM_F_DUMP)],
                &mut |kind, payload| {
                    if let Some(item) = parse(kind, payload)? {
                        items.push(item);
                    }
                    Ok(())
                },
            );
            match outcome {
                Ok(Exchange { interrupted: false }) => return Ok(items),
                Ok(Exchange { interrupted: true }) | Err(Lost(_)) => continue,
                // Only this socket's own dump can be running: the rest of
                // one a failed call left behind. Finish it and ask again.
                Err(Failed(error)) if error.errno() == Some(libc::EBUSY) => self.drain(),
                Err(Failed(error)) => return Err(error),
            }
        }
        Err(NetlinkError::DumpInterrupted { request })
    }

    /// Sends `messages` (each with `NLM_F_REQUEST`, and `NLM_F_ACK` unless
    /// it is a dump, plus the flags given) in one datagram, then reads until
    /// the last one is answered (its ack, error or `NLMSG_DONE`), handing
    /// every other reply to `on_reply` as (type, payload). Fails
    /// with the first error in sequence order; a failed message does not
    /// stop the kernel from processing the following ones.
    fn transact(
        &mut self,
        request: &'static str,
        messages: &[(RouteNetlinkMessage, u16)],
        on_reply: &mut dyn FnMut(u16, &[u8]) -> Result<()>,
    ) -> Result<Exchange> {
        self.round_trip(request, messages, on_reply)
            .map_err(|outcome| outcome.into_error(request))
    }

    /// [`Netlink::transact`], telling lost replies apart (a dump retries).
    fn round_trip(
        &mut self,
        request: &'static str,
        messages: &[(RouteNetlinkMessage, u16)],
        on_reply: &mut dyn FnMut(u16, &[u8]) -> Result<()>,
    ) -> std::result::Result<Exchange, Transact> {
        let first = self.seq.wrapping_add(1);
        self.tx.clear();
        for (msg, flags) in messages {
            self.seq = self.seq.wrapping_add(1);
            let ack = if flags & NLM_F_DUMP == NLM_F_DUMP {
                0
            } else {
                NLM_F_ACK
            };
            let len = NLMSG_HDRLEN + NetlinkSerializable::buffer_len(msg);
            let mut header = NetlinkHeader::default();
            header.length = len as u32;
            header.message_type = msg.message_type();
            header.flags = NLM_F_REQUEST | ack | flags;
            header.sequence_number = self.seq;
            let start = self.tx.len();
            self.tx.resize(start + align4(len), 0);
            header.emit(&mut self.tx[start..start + NLMSG_HDRLEN]);
            msg.serialize(&mut self.tx[start + NLMSG_HDRLEN..start + len]);
        }
        let last = self.seq;
        let sent = self
            .socket
            .send(&self.tx, 0)
            .map_err(|source| NetlinkError::Io {
                context: "send",
                source,
            })?;
        if sent != self.tx.len() {
            return Err(Failed(NetlinkError::Io {
                context: "send",
                source: io::Error::new(io::ErrorKind::WriteZero, "short netlink send"),
            }));
        }

        self.read_replies(request, first, last, on_reply)
    }

    /// Reads the replies to messages `first..=last` (see
    /// [`Netlink::transact`]). Stopping before the last one is answered (a
    /// malformed datagram, a failed or timed-out `recv`, lost replies)
    /// drains the socket, so nothing of this exchange stays queued.
    fn read_replies(
        &mut self,
        request: &'static str,
        first: u32,
        last: u32,
        on_reply: &mut dyn FnMut(u16, &[u8]) -> Result<()>,
    ) -> std::result::Result<Exchange, Transact> {
        let count = last.wrapping_sub(first);
        let mut failure: Option<NetlinkError> = None;
        let mut interrupted = false;
        loop {
            let n = self.recv()?;
            let mut data = &self.rx[..n];
            while data.len() >= NLMSG_HDRLEN {
                let msg = match NetlinkBuffer::new_checked(data) {
                    Ok(msg) => msg,
                    Err(e) => {
                        self.drain();
                        return Err(Failed(malformed(request, e.to_string())));
                    }
                };
                let len = msg.length() as usize;
                let (seq, kind, flags) = (msg.sequence_number(), msg.message_type(), msg.flags());
                let payload = msg.payload();
                data = data.get(align4(len)..).unwrap_or_default();
                // Leftovers of an earlier call that failed half-way.
                if seq.wrapping_sub(first) > count {
                    continue;
                }
                // Also on NLMSG_DONE: newer kernels flag it there when
                // they notice the change only at the end.
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match kind {
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => {
                        self.drain();
                        return Err(Lost("NLMSG_OVERRUN"));
                    }
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = match payload.get(..4) {
                            Some(b) => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                            // An old kernel's NLMSG_DONE may be empty.
                            None if kind == NLMSG_DONE => 0,
                            None => {
                                let detail = format!("NLMSG_ERROR of {} bytes", payload.len());
                                self.drain();
                                return Err(Failed(malformed(request, detail)));
                            }
                        };
                        if code < 0 && failure.is_none() {
                            failure = Some(NetlinkError::Kernel {
                                request,
                                errno: -code,
                                message: ext_ack_message(kind, flags, payload),
                            });
                        }
                        if seq == last {
                            return match failure {
                                Some(error) => Err(Failed(error)),
                                None => Ok(Exchange { interrupted }),
                            };
                        }
                    }
                    _ => {
                        if let Err(error) = on_reply(kind, payload) {
                            failure.get_or_insert(error);
                        }
                    }
                }
            }
        }
    }

    /// Receives one datagram into the receive buffer, returning its length.
    /// A lost reply (queue overflow, or a datagram larger than the buffer,
    /// which then grows) drains the socket first: see [`Netlink::drain`].
    fn recv(&mut self) -> std::result::Result<usize, Transact> {
        self.rx.clear();
        loop {
            match self.socket.recv(&mut self.rx, libc::MSG_TRUNC) {
                Ok(n) if n > self.rx.capacity() => {
                    self.rx = Vec::with_capacity(n.next_multiple_of(4096));
                    self.drain();
                    return Err(Lost("reply larger than the receive buffer"));
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.drain();
                    return Err(Lost("ENOBUFS"));
                }
                Err(source) => {
                    self.drain();
                    return Err(Failed(NetlinkError::Io {
                        context: "recv",
                        source,
                    }));
                }
            }
        }
    }

    /// Reads and drops everything queued, without waiting. The kernel
    /// queues every reply to a plain request before `send` returns, and
    /// produces a dump's next part inside each `recv`, so once a
    /// non-blocking `recv` finds nothing, no exchange is left running (and
    /// a new dump will not meet `EBUSY`).
    fn drain(&mut self) {
        loop {
            self.rx.clear();
            match self
                .socket
                .recv(&mut self.rx, libc::MSG_DONTWAIT | libc::MSG_TRUNC)
            {
                Ok(n) if n > self.rx.capacity() => {
                    self.rx = Vec::with_capacity(n.next_multiple_of(4096));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(_) => return,
            }
        }
    }
}

/// Why [`Netlink::transact`] stopped: a failure, or lost replies (which a
/// dump retries, and anything else reports as [`NetlinkError::RepliesLost`]).
enum Transact {
    Failed(NetlinkError),
    Lost(&'static str),
}
use Transact::{Failed, Lost};

impl From<NetlinkError> for Transact {
    fn from(error: NetlinkError) -> Self {
        Failed(error)
    }
}

impl Transact {
    fn into_error(self, request: &'static str) -> NetlinkError {
        match self {
            Failed(error) => error,
            Lost(reason) => NetlinkError::RepliesLost { request, reason },
        }
    }
}

fn malformed(request: &'static str, detail: String) -> NetlinkError {
    NetlinkError::Malformed { request, detail }
}

/// Runs `f` with the calling thread inside the network namespace `netns`,
/// then moves the thread back to the namespace it was in, whatever `f`
/// returned (and, as well as it can, if `f` panicked).
fn in_netns<T>(netns: BorrowedFd<'_>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let original = File::open("/proc/thread-self/ns/net").map_err(|source| NetlinkError::Io {
        context: "open /proc/thread-self/ns/net",
        source,
    })?;
    rustix::thread::move_into_link_name_space(netns, NETNS).map_err(|e| NetlinkError::Io {
        context: "setns into the target network namespace",
        source: e.into(),
    })?;
    let mut guard = ReturnHome(Some(original));
    let result = f();
    match guard.go_home() {
        Ok(()) => result,
        Err(e) => Err(NetlinkError::Io {
            context: "setns back to the thread's network namespace",
            source: e.into(),
        }),
    }
}

const NETNS: Option<rustix::thread::LinkNameSpaceType> =
    Some(rustix::thread::LinkNameSpaceType::Network);

/// Moves the thread back into the network namespace it holds, when told
/// to or when dropped (unwinding).
struct ReturnHome(Option<File>);

impl ReturnHome {
    fn go_home(&mut self) -> rustix::io::Result<()> {
        match self.0.take() {
            Some(home) => rustix::thread::move_into_link_name_space(home.as_fd(), NETNS),
            None => Ok(()),
        }
    }
}

impl Drop for ReturnHome {
    fn drop(&mut self) {
        let _ = self.go_home();
    }
}

/// The broadcast address of `addr/prefix`; none for /31 and /32, which
/// have no room for one (RFC 3021).
fn broadcast_v4(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(addr) | host_bits))
}

/// A link message addressing link `index`.
fn link_by_index(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

/// Turns "no such object" into `Ok(None)`.
fn not_found_is_none<T>(outcome: Result<T>) -> Result<Option<T>> {
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Refuses a name the kernel's `dev_valid_name` would.
fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace());
    if bad {
        return Err(NetlinkError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// The `ifinfomsg` at the start of a link message.
fn link_header(request: &'static str, payload: &[u8]) -> Result<LinkHeader> {
    LinkHeader::parse(payload).map_err(|e| malformed(request, e.to_string()))
}

/// Calls `f` with (type, value) for each attribute in `attributes`.
fn for_each_attribute(
    request: &'static str,
    attributes: &[u8],
    mut f: impl FnMut(u16, &[u8]) -> Result<()>,
) -> Result<()> {
    for nla in NlasIterator::new(attributes) {
        let nla = nla.map_err(|e| malformed(request, e.to_string()))?;
        f(nla.kind(), nla.value())?;
    }
    Ok(())
}

fn ipv4(request: &'static str, value: &[u8]) -> Result<Ipv4Addr> {
    <[u8; 4]>::try_from(value)
        .map(Ipv4Addr::from)
        .map_err(|_| malformed(request, format!("IPv4 address of {} bytes", value.len())))
}

fn u32_of(request: &'static str, value: &[u8]) -> Result<u32> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_ne_bytes)
        .map_err(|_| malformed(request, format!("u32 attribute of {} bytes", value.len())))
}

/// A NUL-terminated string attribute.
fn c_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// The extended ack's text in an `NLMSG_ERROR` or `NLMSG_DONE` payload:
/// after the error code come the request's header (all of the request
/// unless `NLM_F_CAPPED`; nothing for `NLMSG_DONE`), then the attributes.
fn ext_ack_message(kind: u16, flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if kind == NLMSG_DONE {
        0
    } else if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = payload.get(4..8)?;
        align4(u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize)
    };
    let attributes = payload.get(4 + echoed..)?;
    NlasIterator::new(attributes)
        .filter_map(|nla| nla.ok())
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| c_string(nla.value()))
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! These tests change real kernel state, but only inside network
    //! namespaces they make: every test body runs on a thread of its own that
    //! first moves into a fresh namespace (`unshare(CLONE_NEWNET)` is per
    //! thread), and a "peer" namespace is made the same way on another
    //! thread. Nothing here touches the host's links, addresses or routes.

    use super::*;
    use std::net::Ipv6Addr;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    use std::time::Instant;

    /// Moves the calling thread into a new network namespace.
    fn unshare_net() {
        // SAFETY: unshare(2) takes no pointers and touches no memory of this
        // process; CLONE_NEWNET moves only the calling thread into a new,
        // empty network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            io::Error::last_os_error()
        );
    }

    /// The inode of the calling thread's network namespace.
    fn netns_inode() -> u64 {
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    }

    fn inode_of(fd: BorrowedFd<'_>) -> u64 {
        File::from(fd.try_clone_to_owned().unwrap())
            .metadata()
            .unwrap()
            .ino()
    }

    /// Runs `body` on a new thread inside a fresh network namespace whose
    /// `lo` is up, handing it a socket there.
    fn in_fresh_netns<T: Send>(body: impl FnOnce(Netlink) -> T + Send) -> T {
        std::thread::scope(|scope| {
            let thread = scope.spawn(|| {
                let host_ns = netns_inode();
                unshare_net();
                assert_ne!(netns_inode(), host_ns);
                let mut nl = Netlink::open().unwrap();
                let lo = nl.link_index("lo").unwrap().expect("lo");
                nl.set_up(lo).unwrap();
                body(nl)
            });
            match thread.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// A fresh network namespace made on another thread, as an open nsfs
    /// file (which keeps it alive after that thread is gone).
    fn peer_netns() -> OwnedFd {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            unshare_net();
            let fd = OwnedFd::from(File::open("/proc/thread-self/ns/net").unwrap());
            tx.send(fd).unwrap();
        });
        rx.recv().expect("peer namespace thread")
    }

    fn link_u32(nl: &mut Netlink, index: u32, attribute: u16) -> Option<u32> {
        nl.link_attribute(index, attribute)
            .unwrap()
            .map(|v| u32::from_ne_bytes(v[..4].try_into().unwrap()))
    }

    #[test]
    fn broadcast_addresses() {
        let a = Ipv4Addr::new(172, 17, 0, 2);
        assert_eq!(broadcast_v4(a, 16), Some(Ipv4Addr::new(172, 17, 255, 255)));
        assert_eq!(broadcast_v4(a, 24), Some(Ipv4Addr::new(172, 17, 0, 255)));
        assert_eq!(broadcast_v4(a, 30), Some(Ipv4Addr::new(172, 17, 0, 3)));
        assert_eq!(broadcast_v4(a, 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(broadcast_v4(a, 31), None);
        assert_eq!(broadcast_v4(a, 32), None);
    }

    #[test]
    fn bridge_create_exists_delete() {
        in_fresh_netns(|mut nl| {
            let br = nl.create_bridge("br-t0").unwrap();
            assert!(br > 1);
            assert_eq!(nl.link_index("br-t0").unwrap(), Some(br));

            let again = nl.create_bridge("br-t0").unwrap_err();
            assert!(again.is_exists(), "{again}");
            assert_eq!(again.errno(), Some(libc::EEXIST));

            nl.delete_link(br).unwrap();
            assert_eq!(nl.link_index("br-t0").unwrap(), None);
            let gone = nl.delete_link(br).unwrap_err();
            assert!(gone.is_not_found(), "{gone}");
            assert!(!nl.delete_link_by_name("br-t0").unwrap());

            let br = nl.create_bridge("br-t0").unwrap();
            assert_eq!(nl.link_index("br-t0").unwrap(), Some(br));
            assert!(nl.delete_link_by_name("br-t0").unwrap());
            assert_eq!(nl.link_index("br-t0").unwrap(), None);
        });
    }

    #[test]
    fn names_the_kernel_would_refuse_are_refused_here() {
        in_fresh_netns(|mut nl| {
            for bad in [
                "",
                "a-name-of-16-byt",
                "a/b",
                "a:b",
                "a b",
                ".",
                "..",
                "a\0b",
            ] {
                let err = nl.create_bridge(bad).unwrap_err();
                assert!(
                    matches!(err, NetlinkError::InvalidName(_)),
                    "{bad:?}: {err}"
                );
                assert!(nl.link_index(bad).is_err());
            }
            // 15 bytes is the longest name there is.
            nl.create_bridge("a-name-of-15-by").unwrap();
        });
    }

    #[test]
    fn veth_into_peer_netns_with_addresses_and_routes() {
        let peer = peer_netns();
        in_fresh_netns(|mut nl| {
            let br = nl.create_bridge("bt0").unwrap();
            let host = nl.create_veth("vbtest0", "eth0", peer.as_fd()).unwrap();
            assert_eq!(nl.link_index("vbtest0").unwrap(), Some(host));
            // The peer end is not here but there.
            assert_eq!(nl.link_index("eth0").unwrap(), None);

            nl.set_master(host, br).unwrap();
            assert_eq!(link_u32(&mut nl, host, libc::IFLA_MASTER), Some(br));
            nl.set_up(host).unwrap();
            nl.set_up(br).unwrap();
            let gw = Ipv4Addr::new(192, 0, 2, 1);
            nl.add_address(br, gw.into(), 24).unwrap();
            let dup = nl.add_address(br, gw.into(), 24).unwrap_err();
            assert!(dup.is_exists(), "{dup}");
            let v6: IpAddr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().into();
            nl.add_address(br, v6, 64).unwrap();
            let dup = nl.add_address(br, v6, 64).unwrap_err();
            assert!(dup.is_exists(), "{dup}");
            let bad = nl.add_address(br, v6, 129).unwrap_err();
            assert!(matches!(bad, NetlinkError::InvalidPrefix { .. }), "{bad}");
            let bad = nl.add_address(br, gw.into(), 33).unwrap_err();
            assert!(matches!(bad, NetlinkError::InvalidPrefix { .. }), "{bad}");

            let mut there = Netlink::open_in(peer.as_fd()).unwrap();
            let eth0 = there.link_index("eth0").unwrap().expect("eth0 in the peer");
            assert_eq!(there.link_index("vbtest0").unwrap(), None);
            there.set_mtu(eth0, 1400).unwrap();
            assert_eq!(link_u32(&mut there, eth0, libc::IFLA_MTU), Some(1400));
            let mac = [0x02, 0x42, 0xc0, 0x00, 0x02, 0x02];
            there.set_mac(eth0, mac).unwrap();
            assert_eq!(there.link_mac(eth0).unwrap(), Some(mac));
            there.set_up(eth0).unwrap();
            let lo = there.link_index("lo").unwrap().unwrap();
            there.set_up(lo).unwrap();
            there
                .add_address(eth0, Ipv4Addr::new(192, 0, 2, 2).into(), 24)
                .unwrap();
            there.add_default_route(gw).unwrap();
            let dup = there.add_default_route(gw).unwrap_err();
            assert!(dup.is_exists(), "{dup}");

            let routes = there.routes_v4().unwrap();
            assert!(routes.contains(&(Ipv4Addr::UNSPECIFIED, 0)), "{routes:?}");
            assert!(
                routes.contains(&(Ipv4Addr::new(192, 0, 2, 0), 24)),
                "{routes:?}"
            );
            // Local-table routes (the address itself, loopback) are not the
            // main table's.
            assert!(
                !routes.contains(&(Ipv4Addr::new(192, 0, 2, 2), 32)),
                "{routes:?}"
            );
            assert!(!routes.iter().any(|(a, _)| a.is_loopback()), "{routes:?}");
            let here = nl.routes_v4().unwrap();
            assert_eq!(here, vec![(Ipv4Addr::new(192, 0, 2, 0), 24)]);

            let addrs = there.addresses_v4().unwrap();
            assert!(
                addrs.contains(&(eth0, Ipv4Addr::new(192, 0, 2, 2), 24)),
                "{addrs:?}"
            );
            assert!(addrs.contains(&(lo, Ipv4Addr::LOCALHOST, 8)), "{addrs:?}");
            let addrs = nl.addresses_v4().unwrap();
            assert!(addrs.contains(&(br, gw, 24)), "{addrs:?}");

            // The host end's MAC is one the kernel made up.
            let host_mac = nl.link_mac(host).unwrap().expect("veth MAC");
            assert_ne!(host_mac, [0; 6]);
            assert_ne!(host_mac, mac);
            assert_eq!(nl.link_mac(9999).unwrap(), None);

            assert_eq!(
                nl.links_with_prefix("vb").unwrap(),
                vec![(host, "vbtest0".into())]
            );
            // Deleting one end deletes the pair.
            nl.delete_link(host).unwrap();
            assert_eq!(there.link_index("eth0").unwrap(), None);
            assert_eq!(nl.links_with_prefix("vb").unwrap(), vec![]);
            assert_eq!(there.routes_v4().unwrap(), vec![]);
        });
    }

    #[test]
    fn a_peer_name_in_use_is_eexist_and_creates_nothing() {
        let peer = peer_netns();
        in_fresh_netns(|mut nl| {
            nl.create_veth("vb0", "eth0", peer.as_fd()).unwrap();
            let err = nl.create_veth("vb1", "eth0", peer.as_fd()).unwrap_err();
            assert!(err.is_exists(), "{err}");
            assert_eq!(nl.link_index("vb1").unwrap(), None);
        });
    }

    #[test]
    fn links_with_prefix_reads_a_multipart_dump() {
        let peer = peer_netns();
        in_fresh_netns(|mut nl| {
            let mut made = Vec::new();
            for i in 0..40 {
                let name = format!("vbm{i}");
                let index = nl
                    .create_veth(&name, &format!("p{i}"), peer.as_fd())
                    .unwrap();
                made.push((index, name));
            }
            nl.create_bridge("other0").unwrap();
            let mut found = nl.links_with_prefix("vbm").unwrap();
            found.sort();
            made.sort();
            assert_eq!(found, made);

            // A receive buffer too small for one message: the dump loses a
            // datagram, drains, grows the buffer and is read again.
            nl.rx = Vec::with_capacity(64);
            let mut again = nl.links_with_prefix("vbm").unwrap();
            again.sort();
            assert_eq!(again, made);
            assert!(nl.rx.capacity() > 64);
            // And the socket is in step afterwards.
            assert!(nl.link_index("other0").unwrap().is_some());

            let mut there = Netlink::open_in(peer.as_fd()).unwrap();
            assert_eq!(there.links_with_prefix("p").unwrap().len(), 40);
        });
    }

    #[test]
    fn open_in_restores_the_thread_netns_even_on_error() {
        let peer = peer_netns();
        let peer_inode = inode_of(peer.as_fd());
        in_fresh_netns(|mut nl| {
            let home = netns_inode();
            assert_ne!(home, peer_inode);

            // Success: the socket works there, the thread is back here.
            let mut there = Netlink::open_in(peer.as_fd()).unwrap();
            assert_eq!(netns_inode(), home);
            let br = there.create_bridge("in-peer").unwrap();
            assert_eq!(there.link_index("in-peer").unwrap(), Some(br));
            assert_eq!(nl.link_index("in-peer").unwrap(), None);

            // setns itself fails: not a network namespace.
            let uts = File::open("/proc/thread-self/ns/uts").unwrap();
            let err = Netlink::open_in(uts.as_fd()).unwrap_err();
            assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
            assert_eq!(netns_inode(), home);

            // What runs inside fails: the thread still comes back.
            let err = in_netns(peer.as_fd(), || -> Result<()> {
                assert_eq!(netns_inode(), peer_inode);
                Err(NetlinkError::InvalidName("inside".into()))
            })
            .unwrap_err();
            assert!(matches!(err, NetlinkError::InvalidName(_)));
            assert_eq!(netns_inode(), home);
        });
    }

    #[test]
    fn kernel_errors_carry_errno_and_text() {
        in_fresh_netns(|mut nl| {
            let err = nl.set_up(99_999).unwrap_err();
            assert!(err.is_not_found(), "{err}");
            assert_eq!(err.errno(), Some(libc::ENODEV));
            // No connected route to the gateway.
            let err = nl
                .add_default_route(Ipv4Addr::new(198, 51, 100, 1))
                .unwrap_err();
            assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err}");
            // An MTU below the minimum: the kernel explains (extended ack).
            let br = nl.create_bridge("br-mtu").unwrap();
            let err = nl.set_mtu(br, 10).unwrap_err();
            assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
            match &err {
                NetlinkError::Kernel { message, .. } => {
                    assert!(message.is_some(), "{err}");
                }
                other => panic!("{other}"),
            }
            eprintln!("ext ack: {err}");
            // The socket is still in step after errors.
            assert_eq!(nl.link_index("br-mtu").unwrap(), Some(br));
        });
    }

    #[test]
    fn stale_replies_are_skipped_by_sequence_number() {
        in_fresh_netns(|mut nl| {
            for i in 0..20 {
                nl.create_bridge(&format!("vbs{i}")).unwrap();
            }
            // Leave a dump running with its replies unread, as a call that
            // stopped half-way would: later calls must not take its replies
            // for their own, and a new dump (which the kernel refuses with
            // EBUSY while one runs) must still succeed.
            let mut header = NetlinkHeader::default();
            let msg = RouteNetlinkMessage::GetLink(LinkMessage::default());
            header.length = (NLMSG_HDRLEN + NetlinkSerializable::buffer_len(&msg)) as u32;
            header.message_type = msg.message_type();
            header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            header.sequence_number = nl.seq.wrapping_add(1_000);
            let mut buf = vec![0; header.length as usize];
            header.emit(&mut buf);
            msg.serialize(&mut buf[NLMSG_HDRLEN..]);
            nl.socket.send(&buf, 0).unwrap();

            assert_eq!(nl.links_with_prefix("vbs").unwrap().len(), 20);
            nl.socket.send(&buf, 0).unwrap();
            let br = nl.create_bridge("br-seq").unwrap();
            assert_eq!(nl.link_index("br-seq").unwrap(), Some(br));
            assert_eq!(nl.links_with_prefix("vbs").unwrap().len(), 20);
            assert_eq!(nl.link_index("br-seq").unwrap(), Some(br));
        });
    }

    #[test]
    fn a_container_network_setup_takes_milliseconds() {
        let peer = peer_netns();
        in_fresh_netns(|mut nl| {
            let br = nl.create_bridge("bt-perf").unwrap();
            nl.set_up(br).unwrap();
            nl.add_address(br, Ipv4Addr::new(192, 0, 2, 1).into(), 24)
                .unwrap();
            let start = Instant::now();
            let mut lap = Instant::now();
            let mut step = |what: &str| {
                eprintln!("{what}: {:?}", lap.elapsed());
                lap = Instant::now();
            };
            let host = nl.create_veth("vbperf", "eth0", peer.as_fd()).unwrap();
            step("create_veth");
            nl.set_master(host, br).unwrap();
            step("set_master");
            nl.set_up(host).unwrap();
            step("set_up host");
            let mut there = Netlink::open_in(peer.as_fd()).unwrap();
            step("open_in");
            let eth0 = there.link_index("eth0").unwrap().unwrap();
            step("link_index");
            there.set_mac(eth0, [0x02, 0x42, 0xc0, 0, 2, 2]).unwrap();
            step("set_mac");
            there
                .add_address(eth0, Ipv4Addr::new(192, 0, 2, 2).into(), 24)
                .unwrap();
            step("add_address");
            there.set_up(eth0).unwrap();
            step("set_up eth0");
            there
                .add_default_route(Ipv4Addr::new(192, 0, 2, 1))
                .unwrap();
            step("route");
            let took = start.elapsed();
            eprintln!("veth + master + up + open_in + mac + address + up + route: {took:?}");
            assert!(took < Duration::from_secs(1), "{took:?}");
        });
    }
}
