//! What an idle container's monitor watches to wake it: a packet socket on
//! the host end of each of its veths that becomes readable when a TCP or
//! UDP packet is sent to the container's address — a new connection to a
//! published port (after DNAT), a datagram, a neighbour's request. The
//! kernel answers the TCP handshake of a frozen container's listening
//! socket by itself, so the client is never refused: it only waits for
//! the thaw.
//!
//! The classic BPF filter keeps everything else out (the container's own
//! retransmissions, ARP, broadcasts), so nothing but traffic for the
//! container wakes the monitor; while nothing comes, the socket costs no
//! wake-up at all.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `/sys/class/net/IF/statistics/tx_packets` of a host-side veth: the
/// packets sent to the container through it (0 when it is gone).
pub fn packets_to_container(host_veth: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{host_veth}/statistics/tx_packets"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The filter: accept (1 byte: the wake-up is all that is wanted) a packet
/// the host end transmits (towards the container) whose IPv4 destination is
/// `ip` and whose protocol is TCP or UDP; drop everything else.
fn filter(ip: Ipv4Addr) -> Vec<libc::sock_filter> {
    const SKF_AD_PROTOCOL: u32 = 0;
    const SKF_AD_PKTTYPE: u32 = 4;
    const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
    const PACKET_OUTGOING: u32 = 4;
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let (ld_w_abs, ld_h_abs, ld_b_abs, jeq, ret) = (
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_LD | libc::BPF_H | libc::BPF_ABS,
        libc::BPF_LD | libc::BPF_B | libc::BPF_ABS,
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        libc::BPF_RET | libc::BPF_K,
    );
    vec![
        // 0: the packet's type: sent towards the container?
        op(ld_w_abs, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE),
        op(jeq, 0, 8, PACKET_OUTGOING),
        // 2: IPv4?
        op(ld_h_abs, 0, 0, SKF_AD_OFF + SKF_AD_PROTOCOL),
        op(jeq, 0, 6, libc::ETH_P_IP as u32),
        // 4: the IPv4 destination (SOCK_DGRAM: data starts at the IP header)
        op(ld_w_abs, 0, 0, 16),
        op(jeq, 0, 4, u32::from(ip)),
        // 6: the protocol
        op(ld_b_abs, 0, 0, 9),
        op(jeq, 1, 0, libc::IPPROTO_TCP as u32),
        op(jeq, 0, 1, libc::IPPROTO_UDP as u32),
        // 9: accept, 10: drop
        op(ret, 0, 0, 1),
        op(ret, 0, 0, 0),
    ]
}

/// A non-blocking packet socket on `host_veth` that is readable once a TCP
/// or UDP packet for `ip` passed. The filter is in place before the socket
/// is bound, so nothing else is ever queued.
pub fn wake_socket(host_veth: &str, ip: Ipv4Addr) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(host_veth)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // Protocol 0: no packets until bound.
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by no one else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut prog = filter(ip);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    // ETH_P_ALL: only the taps of every protocol see what a device sends.
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = index as i32;
    // SAFETY: `addr` is a properly initialised sockaddr_ll of the size given.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_jumps_land_on_the_returns() {
        let f = filter(Ipv4Addr::new(10, 0, 0, 2));
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        for (i, ins) in f.iter().enumerate() {
            if u32::from(ins.code) == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K {
                for t in [ins.jt, ins.jf] {
                    let to = i + 1 + usize::from(t);
                    assert!(to < f.len(), "instruction {i} jumps past the end");
                }
            }
        }
        // Every mismatch path ends on the drop (k = 0), the match on accept.
        assert_eq!((f[9].code, f[9].k), (ret, 1));
        assert_eq!((f[10].code, f[10].k), (ret, 0));
        for (i, t) in [(1, f[1].jf), (3, f[3].jf), (5, f[5].jf), (8, f[8].jf)] {
            assert_eq!(i + 1 + usize::from(t), 10, "mismatch at {i}");
        }
        assert_eq!(7 + 1 + usize::from(f[7].jt), 9);
        assert_eq!(8 + 1 + usize::from(f[8].jt), 9);
        assert_eq!(f[5].k, u32::from(Ipv4Addr::new(10, 0, 0, 2)));
    }
}
