//! Bridge networking (issue 10), as a user sees it: published ports,
//! user-defined networks with names, isolation, teardown. Every test runs
//! in a network namespace of its own (TestEnv enters one): the bridges,
//! NAT rules and all traffic stay there.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

/// A server for the tests, run inside containers: `netecho tcp|udp PORT`
/// answers each connection (or datagram) with `peer=ADDRESS` — what the
/// container sees of its client — and goes on.
const NETECHO: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int udp = strcmp(argv[1], "udp") == 0;
    int s = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    if (!udp && listen(s, 64) < 0) { perror("listen"); return 1; }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        struct sockaddr_in p;
        socklen_t n = sizeof p;
        char buf[512], out[128];
        if (udp) {
            if (recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&p, &n) < 0) continue;
        } else {
            int c = accept(s, (struct sockaddr *)&p, &n);
            if (c < 0) continue;
            int len = snprintf(out, sizeof out, "peer=%s\n", inet_ntoa(p.sin_addr));
            write(c, out, len);
            close(c);
            continue;
        }
        int len = snprintf(out, sizeof out, "peer=%s\n", inet_ntoa(p.sin_addr));
        sendto(s, out, len, 0, (struct sockaddr *)&p, n);
    }
}
"#;

fn netecho() -> String {
    probe_volume(&static_probe("netecho", NETECHO))
}

/// What a TCP server at `addr` says to a new connection, if it answers.
fn tcp_says(addr: &str) -> Option<String> {
    let sa = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

/// What a UDP server at `addr` answers to one datagram, if it does.
fn udp_says(addr: &str) -> Option<String> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    s.send_to(b"hello", addr).ok()?;
    let mut buf = [0u8; 256];
    let n = s.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn answers(addr: &str) -> String {
    poll(
        &format!("{addr} to answer"),
        Duration::from_secs(10),
        || tcp_says(addr),
    )
}

/// Interfaces of the test's namespace whose names start with `prefix`.
fn links_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn nft_table() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "berth"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The published port's host side, as `berth port` shows it.
fn host_port(env: &TestEnv, name: &str, port: &str) -> u16 {
    let out = env.ok(&["port", name, port]);
    let first = out.lines().next().unwrap_or_default();
    first
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no host port in {out:?}"))
}

#[test]
fn published_ports_answer_everywhere_and_see_the_client() {
    let env = TestEnv::with_busybox();
    let host = netns_address();
    let v = netecho();
    env.ok(&[
        "run", "-d", "--name", "web", "-v", &v, "-p", "8080:80", BB, "/t/probe", "tcp", "80",
    ]);
    // Through loopback (masqueraded to the bridge's gateway), through the
    // namespace's own address (the client's address is kept).
    let lo = answers("127.0.0.1:8080");
    assert_eq!(lo, "peer=172.17.0.1\n");
    let direct = answers(&format!("{host}:8080"));
    assert_eq!(direct, format!("peer={host}\n"));
    // The container's own address, from the host.
    let ip = inspect_f(&env, "{{.NetworkSettings.IPAddress}}", "web");
    assert_eq!(ip, "172.17.0.2");
    assert_eq!(answers(&format!("{ip}:80")), "peer=172.17.0.1\n");
    // From another container, through the host's address (hairpin).
    let out = env.ok(&[
        "run",
        "--rm",
        BB,
        "sh",
        "-c",
        &format!("for i in 1 2 3 4 5; do nc -w 1 {host} 8080 && exit 0; sleep 0.2; done; exit 1"),
    ]);
    assert!(out.starts_with("peer="), "{out}");
    // ps and port.
    let ps = env.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), "0.0.0.0:8080->80/tcp");
    assert_eq!(env.ok(&["port", "web"]), "80/tcp -> 0.0.0.0:8080\n");
    let (_, err) = env.fails(&["port", "web", "81"], 1);
    assert!(
        err.contains("No public port '81' published for web"),
        "{err}"
    );
    let ports = &env.inspect("web")["NetworkSettings"]["Ports"];
    assert_eq!(ports["80/tcp"][0]["HostPort"], "8080", "{ports}");
}

#[test]
fn ephemeral_and_publish_all_ports() {
    let env = TestEnv::with_busybox();
    let v = netecho();
    env.ok(&[
        "run", "-d", "--name", "eph", "-v", &v, "-p", "80", BB, "/t/probe", "tcp", "80",
    ]);
    let p = host_port(&env, "eph", "80/tcp");
    assert!(p >= 1024, "{p}");
    answers(&format!("127.0.0.1:{p}"));
    env.ok(&[
        "run", "-d", "--name", "all", "-v", &v, "--expose", "7000", "-P", BB, "/t/probe", "tcp",
        "7000",
    ]);
    let q = host_port(&env, "all", "7000");
    assert_ne!(p, q);
    answers(&format!("127.0.0.1:{q}"));
    // A range, one host port for each container port.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "rng",
        "-v",
        &v,
        "-p",
        "127.0.0.1:9000-9001:90-91",
        BB,
        "/t/probe",
        "tcp",
        "91",
    ]);
    answers("127.0.0.1:9001");
    assert_eq!(
        env.ok(&["port", "rng"]),
        "90/tcp -> 127.0.0.1:9000\n91/tcp -> 127.0.0.1:9001\n"
    );
    // Someone flushed the firewall: the next container with ports brings
    // berth's table back.
    let st = Command::new("nft")
        .args(["delete", "table", "ip", "berth"])
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(&[
        "run", "-d", "--name", "again", "-v", &v, "-p", "9100:80", BB, "/t/probe", "tcp", "80",
    ]);
    answers("127.0.0.1:9100");
}

#[test]
fn a_udp_port() {
    let env = TestEnv::with_busybox();
    let v = netecho();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "udp1",
        "-v",
        &v,
        "-p",
        "5353:53/udp",
        BB,
        "/t/probe",
        "udp",
        "53",
    ]);
    let host = netns_address();
    let got = poll("the UDP port to answer", Duration::from_secs(10), || {
        udp_says(&format!("{host}:5353"))
    });
    assert_eq!(got, format!("peer={host}\n"));
}

#[test]
fn user_networks_resolve_names_and_stay_apart() {
    let env = TestEnv::with_busybox();
    let v = netecho();
    env.ok(&["network", "create", "front"]);
    env.ok(&["network", "create", "back"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "www",
        "-v",
        &v,
        BB,
        "/t/probe",
        "tcp",
        "80",
    ]);
    let web_ip = inspect_f(
        &env,
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "web",
    );
    assert!(!web_ip.is_empty());
    // By name, alias and short ID, through the embedded DNS.
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "web"]);
    for name in ["web", "www", &id.trim()[..12]] {
        let out = env.ok(&[
            "run",
            "--rm",
            "--network",
            "front",
            BB,
            "sh",
            "-c",
            &format!("nslookup {name} 127.0.0.11 && nc {name} 80"),
        ]);
        assert!(out.contains(&web_ip), "{name}: {out}");
        assert!(out.contains("peer="), "{name}: {out}");
    }
    let resolv = env.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        BB,
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    // Not from another network, not even by address.
    let out = env.run(&[
        "run",
        "--rm",
        "--network",
        "back",
        BB,
        "sh",
        "-c",
        &format!("nc -w 1 {web_ip} 80"),
    ]);
    assert!(!text(&out.stdout).contains("peer="), "crossed networks");
    let out = env.run(&[
        "run",
        "--rm",
        "--network",
        "back",
        BB,
        "nslookup",
        "web",
        "127.0.0.11",
    ]);
    assert!(
        !text(&out.stdout).contains(&web_ip),
        "resolved across networks"
    );
    // Joining web's namespace: its loopback.
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "container:web",
        BB,
        "nc",
        "127.0.0.1",
        "80",
    ]);
    assert_eq!(out, "peer=127.0.0.1\n");
}

#[test]
fn an_internal_network_has_no_way_out() {
    let env = TestEnv::with_busybox();
    let v = netecho();
    let host = netns_address();
    env.ok(&[
        "run", "-d", "--name", "outside", "-v", &v, "-p", "8081:80", BB, "/t/probe", "tcp", "80",
    ]);
    answers(&format!("{host}:8081"));
    env.ok(&["network", "create", "--internal", "sealed"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "in1",
        "--network",
        "sealed",
        "-v",
        &v,
        BB,
        "/t/probe",
        "tcp",
        "80",
    ]);
    // Inside: fine.
    let out = env.ok(&["run", "--rm", "--network", "sealed", BB, "nc", "in1", "80"]);
    assert!(out.starts_with("peer="), "{out}");
    // Out: no route.
    let route = env.ok(&["run", "--rm", "--network", "sealed", BB, "ip", "route"]);
    assert!(!route.contains("default"), "{route}");
    let out = env.run(&[
        "run",
        "--rm",
        "--network",
        "sealed",
        BB,
        "nc",
        "-w",
        "1",
        host,
        "8081",
    ]);
    assert!(
        !text(&out.stdout).contains("peer="),
        "left an internal network"
    );
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let env = TestEnv::with_busybox();
    let v = netecho();
    env.ok(&["network", "create", "n1"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "n1",
        "-v",
        &v,
        BB,
        "/t/probe",
        "tcp",
        "80",
    ]);
    env.ok(&["run", "-d", "--name", "cli", BB, "sleep", "1000"]);
    let out = env.run(&["exec", "cli", "nc", "-w", "1", "srv", "80"]);
    assert!(!text(&out.stdout).contains("peer="));
    env.ok(&["network", "connect", "--alias", "client", "n1", "cli"]);
    let out = env.ok(&["exec", "cli", "nc", "srv", "80"]);
    assert!(out.starts_with("peer="), "{out}");
    let nets = inspect_f(
        &env,
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "cli",
    );
    assert_eq!(nets.trim(), "bridge n1");
    env.ok(&["network", "disconnect", "n1", "cli"]);
    let out = env.run(&["exec", "cli", "nc", "-w", "1", "srv", "80"]);
    assert!(!text(&out.stdout).contains("peer="), "still connected");
    let links = env.ok(&["exec", "cli", "ip", "-o", "link"]);
    assert!(!links.contains("eth1"), "{links}");
}

#[test]
fn bad_input_changes_nothing() {
    let env = TestEnv::with_busybox();
    let v = netecho();
    // A host port another program holds.
    let holder = std::net::TcpListener::bind("0.0.0.0:8090").unwrap();
    let (_, err) = env.fails(
        &[
            "run", "-d", "--name", "xx", "-p", "8090:80", BB, "sleep", "100",
        ],
        125,
    );
    assert!(err.contains("address already in use"), "{err}");
    drop(holder);
    assert_eq!(status(&env, "xx"), "created");
    // One a container holds.
    env.ok(&[
        "run", "-d", "--name", "yy", "-v", &v, "-p", "8091:80", BB, "/t/probe", "tcp", "80",
    ]);
    let (_, err) = env.fails(
        &[
            "run", "-d", "--name", "zz", "-p", "8091:80", BB, "sleep", "100",
        ],
        125,
    );
    assert!(err.contains("port is already allocated"), "{err}");
    assert_eq!(links_with("vb").len(), 1, "{:?}", links_with("vb"));
    // Malformed -p, a network that does not exist, an --ip outside the subnet.
    let (_, err) = env.fails(&["run", "-p", "80:x", BB, "true"], 125);
    assert!(err.contains("invalid containerPort: x"), "{err}");
    let (_, err) = env.fails(&["run", "--network", "nope", BB, "true"], 125);
    assert!(err.contains("network nope not found"), "{err}");
    env.ok(&["network", "create", "--subnet", "10.50.0.0/24", "fixed"]);
    let (_, err) = env.fails(
        &["run", "--network", "fixed", "--ip", "10.60.0.5", BB, "true"],
        125,
    );
    assert!(err.contains("10.60.0.5"), "{err}");
    let (_, err) = env.fails(
        &["network", "create", "--subnet", "10.50.0.0/16", "overlap"],
        1,
    );
    assert!(err.to_lowercase().contains("overlap"), "{err}");
    // Nothing half-networked: one veth (y's), one published element.
    assert_eq!(links_with("vb").len(), 1, "{:?}", links_with("vb"));
    let table = nft_table();
    assert!(table.contains("8091"), "{table}");
    assert!(!table.contains("8090"), "{table}");
}

#[test]
fn many_containers_leave_nothing_behind() {
    let env = TestEnv::with_busybox();
    env.ok(&["network", "create", "many"]);
    let mut ids = Vec::new();
    for i in 0..100 {
        let net = if i % 2 == 0 { "bridge" } else { "many" };
        let p = format!("{}:80", 10000 + i);
        let id = env.ok(&["run", "-d", "--network", net, "-p", &p, BB, "sleep", "1000"]);
        ids.push(id.trim().to_string());
    }
    assert_eq!(links_with("vb").len(), 100);
    // Twenty monitors killed with -9: their containers die with them.
    for id in &ids[..20] {
        let pid = inspect_f(&env, "{{.State.Pid}}", id);
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(") ")
                    .next()
                    .and_then(|r| r.split(' ').nth(1))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        Command::new("kill").args(["-9", &ppid]).status().unwrap();
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids[20..].iter().map(String::as_str));
    env.ok(&args);
    // The next command finds the killed ones' leftovers and removes them.
    poll(
        "the killed containers to exit",
        Duration::from_secs(20),
        || env.ok(&["ps", "-q"]).trim().is_empty().then_some(()),
    );
    poll("their veths to go", Duration::from_secs(20), || {
        links_with("vb").is_empty().then_some(())
    });
    let table = nft_table();
    assert!(!table.contains(" : 172."), "{table}");
    let db = env.root.path().join("berth.db");
    let leases = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT COUNT(*) FROM endpoints")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&leases.stdout).trim(), "0");
}

#[test]
fn etc_files_and_dns_flags() {
    let env = TestEnv::with_busybox();
    let out = env.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "10.9.9.9",
        "--dns-search",
        "example.org",
        BB,
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(out.contains("10.1.2.3\tdb\n"), "{out}");
    assert!(out.contains("172.17.0.1\tgw\n"), "{out}");
    assert!(out.contains("172.17.0.2\tbox\n"), "{out}");
    assert!(
        out.contains("search example.org\nnameserver 10.9.9.9\n"),
        "{out}"
    );
    // The docker CLI's words for bad ones.
    let (_, err) = env.fails(&["run", "--add-host", "x", BB, "true"], 125);
    assert!(
        err.contains(r#"invalid argument "x" for "--add-host" flag: bad format for add-host: "x""#),
        "{err}"
    );
    let (_, err) = env.fails(&["run", "--add-host", "h:notip", BB, "true"], 125);
    assert!(
        err.contains(r#"invalid IP address in add-host: "notip""#),
        "{err}"
    );
    let (_, err) = env.fails(&["run", "--dns", "x", BB, "true"], 125);
    assert!(
        err.contains(
            r#"invalid argument "x" for "--dns" flag: IP address is not correctly formatted: x"#
        ),
        "{err}"
    );
    let _ = Write::flush(&mut std::io::stdout());
}

/// An attacker's probe: a UDP datagram to 127.0.0.1:PORT, handcrafted on
/// an AF_PACKET socket and sent to the gateway's MAC through `eth0` — the
/// way to the host's loopback services that `route_localnet` (which
/// published ports on 127.0.0.1 need on the bridge) would open.
/// `probe GATEWAY_MAC PORT`.
const LOCALNET: &str = r#"
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
static unsigned short csum(unsigned short *p, int n) {
    unsigned long s = 0;
    for (; n > 1; n -= 2) s += *p++;
    if (n) s += *(unsigned char *)p;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return ~s;
}
int main(int argc, char **argv) {
    unsigned int m[6];
    if (argc < 3 || sscanf(argv[1], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) return 2;
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
    if (s < 0) { perror("socket"); return 1; }
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "eth0");
    if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) { perror("ifindex"); return 1; }
    int idx = ifr.ifr_ifindex;
    if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) { perror("hwaddr"); return 1; }
    unsigned char f[64] = {0};
    struct ether_header *eh = (void *)f;
    for (int i = 0; i < 6; i++) eh->ether_dhost[i] = m[i];
    memcpy(eh->ether_shost, ifr.ifr_hwaddr.sa_data, 6);
    eh->ether_type = htons(ETH_P_IP);
    struct iphdr *ip = (void *)(f + 14);
    ip->ihl = 5; ip->version = 4; ip->ttl = 64; ip->protocol = IPPROTO_UDP;
    ip->tot_len = htons(20 + 8 + 6);
    ip->saddr = inet_addr("172.17.0.2"); /* overwritten below */
    struct ifreq a = {0};
    strcpy(a.ifr_name, "eth0");
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    if (ioctl(u, SIOCGIFADDR, &a) == 0) ip->saddr = ((struct sockaddr_in *)&a.ifr_addr)->sin_addr.s_addr;
    ip->daddr = inet_addr("127.0.0.1");
    ip->check = csum((unsigned short *)ip, 20);
    struct udphdr *udp = (void *)(f + 34);
    udp->source = htons(40000); udp->dest = htons(atoi(argv[2]));
    udp->len = htons(8 + 6); udp->check = 0;
    memcpy(f + 42, "escape", 6);
    struct sockaddr_ll to = {0};
    to.sll_family = AF_PACKET; to.sll_ifindex = idx; to.sll_halen = 6;
    memcpy(to.sll_addr, eh->ether_dhost, 6);
    for (int i = 0; i < 5; i++) {
        if (sendto(s, f, 48, 0, (struct sockaddr *)&to, sizeof to) < 0) { perror("sendto"); return 1; }
        usleep(20000);
    }
    printf("sent\n");
    return 0;
}
"#;

#[test]
fn a_container_cannot_reach_the_hosts_loopback_through_its_gateway() {
    let env = TestEnv::with_busybox();
    // A service of the host's on 127.0.0.1 only.
    let service = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = service.local_addr().unwrap().port();
    service
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // The probe finds the gateway's MAC as any container can (ARP).
    let probe = probe_volume(&static_probe("localnet", LOCALNET));
    let script = format!(
        "gw=$(ip route | awk '/default/ {{print $3}}'); ping -c1 -W1 $gw >/dev/null; \
         mac=$(awk -v gw=$gw '$1 == gw {{print $4}}' /proc/net/arp); /t/probe $mac {port}"
    );
    let out = env.ok(&["run", "--rm", "-v", &probe, BB, "sh", "-c", &script]);
    assert_eq!(out, "sent\n");
    let mut buf = [0u8; 64];
    let got = service.recv(&mut buf);
    assert!(
        got.is_err(),
        "the host's 127.0.0.1:{port} got {:?}",
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
}

#[test]
fn start_after_a_reboot_rebuilds_the_network() {
    let env = TestEnv::with_busybox();
    let v = netecho();
    env.ok(&[
        "run", "-d", "--name", "srv", "-v", &v, "-p", "8095:80", BB, "/t/probe", "tcp", "80",
    ]);
    answers("127.0.0.1:8095");
    env.ok(&["stop", "-t", "0", "srv"]);
    // A reboot: the bridge, the firewall and the run root are gone.
    let st = Command::new("ip")
        .args(["link", "del", "berth0"])
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("nft")
        .args(["delete", "table", "ip", "berth"])
        .status()
        .unwrap();
    assert!(st.success());
    for entry in std::fs::read_dir(env.run_root.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    env.ok(&["start", "srv"]);
    answers("127.0.0.1:8095");
    let ip = inspect_f(&env, "{{.NetworkSettings.IPAddress}}", "srv");
    assert_eq!(answers(&format!("{ip}:80")), "peer=172.17.0.1\n");
}

/// `iptables ARGS` in the test's namespace.
fn iptables(args: &[&str]) {
    let out = Command::new("iptables")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("iptables: {e}"));
    assert!(
        out.status.success(),
        "iptables {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn iptables_save() -> String {
    let out = Command::new("iptables-save")
        .output()
        .unwrap_or_else(|e| panic!("iptables-save: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(':'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn dockers_chains_are_left_alone_and_do_not_break_berth() {
    let env = TestEnv::with_busybox();
    let v = netecho();
    let host = netns_address();
    // What dockerd 20.10 sets up (in this test's namespace), and the
    // DOCKER-USER lines README asks for where Docker's FORWARD is DROP.
    for rule in [
        &["-t", "nat", "-N", "DOCKER"][..],
        &[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
            "-j",
            "DOCKER",
        ],
        &[
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "!",
            "-d",
            "127.0.0.0/8",
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
            "-j",
            "DOCKER",
        ],
        &[
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            "172.31.0.0/16",
            "!",
            "-o",
            "docker0",
            "-j",
            "MASQUERADE",
        ],
        &[
            "-t",
            "nat",
            "-A",
            "DOCKER",
            "-p",
            "tcp",
            "--dport",
            "9999",
            "-j",
            "DNAT",
            "--to-destination",
            "172.31.0.2:80",
        ],
        &["-N", "DOCKER-USER"],
        &["-N", "DOCKER-ISOLATION-STAGE-1"],
        &["-A", "DOCKER-ISOLATION-STAGE-1", "-j", "RETURN"],
        &["-A", "DOCKER-USER", "-j", "RETURN"],
        &["-P", "FORWARD", "DROP"],
        &["-A", "FORWARD", "-j", "DOCKER-USER"],
        &["-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"],
        &["-I", "DOCKER-USER", "-i", "berth+", "-j", "ACCEPT"],
        &["-I", "DOCKER-USER", "-o", "berth+", "-j", "ACCEPT"],
        &["-I", "DOCKER-USER", "-i", "br-+", "-j", "ACCEPT"],
        &["-I", "DOCKER-USER", "-o", "br-+", "-j", "ACCEPT"],
    ] {
        iptables(rule);
    }
    let before = iptables_save();
    env.ok(&[
        "run", "-d", "--name", "web", "-v", &v, "-p", "8096:80", BB, "/t/probe", "tcp", "80",
    ]);
    answers("127.0.0.1:8096");
    assert_eq!(answers(&format!("{host}:8096")), format!("peer={host}\n"));
    // From a network of one's own to the published port (forwarded between
    // two bridges, through Docker's FORWARD chain).
    env.ok(&["network", "create", "other"]);
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "other",
        BB,
        "sh",
        "-c",
        &format!("for i in 1 2 3 4 5; do nc -w 1 {host} 8096 && exit 0; sleep 0.2; done; exit 1"),
    ]);
    assert!(out.starts_with("peer="), "{out}");
    assert_eq!(iptables_save(), before, "Docker's chains changed");
}
