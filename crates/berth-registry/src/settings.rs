//! berth's registry settings: the config file (`/etc/berth/config.toml` or
//! `$BERTH_CONFIG`) and the per-registry certificates of `certs.d`, as
//! Docker's daemon.json and `/etc/docker/certs.d`.
//!
//! What it decides: which endpoints a pull tries, in order (the mirrors,
//! then Docker Hub, for `docker.io` references; https then plain http for
//! an insecure registry), and how the HTTP agent for one endpoint trusts
//! its server (the system roots plus `certs.d/HOST:PORT/*.crt`, a client
//! certificate from `*.cert`/`*.key`, no verification for an insecure
//! registry).

use std::fs;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

use berth_net::ipam::{AddressPool, Subnet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_types::Reference;
use serde::Deserialize;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::endpoint::{Endpoint, Scheme, DOCKER_HUB};
use crate::{Auth, Client, RegistryError, RetryPolicy};

/// The config file read when `$BERTH_CONFIG` is not set.
pub const DEFAULT_CONFIG: &str = "/etc/berth/config.toml";
/// Where per-registry certificates are, unless `$BERTH_CERTS_D` or the
/// `certs-d` key says otherwise.
pub const DEFAULT_CERTS_D: &str = "/etc/berth/certs.d";
/// The system's CA bundle (Debian's `ca-certificates`).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Docker's default `max-concurrent-downloads`.
pub const DEFAULT_CONCURRENT_DOWNLOADS: usize = 3;
/// Docker's default `max-concurrent-uploads`.
pub const DEFAULT_CONCURRENT_UPLOADS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}, line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The file as written (kebab-case keys, as Docker's daemon.json names).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    registry_mirrors: Option<Vec<toml::Spanned<String>>>,
    insecure_registries: Option<Vec<toml::Spanned<String>>>,
    max_concurrent_downloads: Option<toml::Spanned<i64>>,
    max_concurrent_uploads: Option<toml::Spanned<i64>>,
    certs_d: Option<PathBuf>,
    // Networks (issue 10): dockerd's keys.
    bridge: Option<String>,
    bip: Option<toml::Spanned<String>>,
    fixed_cidr: Option<toml::Spanned<String>>,
    default_address_pools: Option<Vec<toml::Spanned<PoolEntry>>>,
    dns: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    dns_opts: Option<Vec<String>>,
    // The idle mode (issue 11).
    idle_timeout: Option<toml::Spanned<String>>,
    idle_reclaim: Option<bool>,
}

/// One `default-address-pools` entry as written: `{ base = "10.10.0.0/16", size = 24 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolEntry {
    base: String,
    size: i64,
}

/// The network keys of the config file (dockerd's names), checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkSettings {
    /// `bridge = "none"`: no default bridge network; a container without
    /// `--network` gets none (as dockerd `--bridge=none`). Other values
    /// name the default bridge's Linux bridge.
    pub bridge: Option<String>,
    /// `bip = "172.30.0.1/16"`: the default bridge's gateway and subnet.
    pub bip: Option<(Ipv4Addr, Subnet)>,
    /// `fixed-cidr`: where the default bridge's addresses come from.
    pub fixed_cidr: Option<Subnet>,
    /// `default-address-pools`: where networks without `--subnet` get
    /// theirs (empty: Docker's defaults).
    pub default_address_pools: Vec<AddressPool>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opts: Vec<String>,
}

impl NetworkSettings {
    /// Whether `bridge = "none"`: no default bridge.
    pub fn bridge_disabled(&self) -> bool {
        self.bridge.as_deref() == Some("none")
    }
}

/// A registry mirror: where `docker.io` repositories are asked first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub scheme: Scheme,
    /// `host[:port]`
    pub host: String,
}

/// One `insecure-registries` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Insecure {
    /// `host[:port]`, matched exactly against a registry's name.
    Host(String),
    /// `10.0.0.0/8`: any registry whose address is in it.
    Cidr { net: IpAddr, prefix: u8 },
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub mirrors: Vec<Mirror>,
    pub insecure: Vec<Insecure>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    /// The `certs.d` directory: `HOST:PORT/ca.crt`, `client.cert`, `client.key`.
    pub certs_d: PathBuf,
    /// The network keys (`bridge`, `bip`, `default-address-pools`, …).
    pub network: NetworkSettings,
    /// `idle-timeout = "30s"`: the idle mode for containers made without
    /// `--idle-timeout`, in ns (0: off).
    pub idle_timeout_ns: i64,
    /// `idle-reclaim = true`: an idle container's reclaimable memory is
    /// pushed out.
    pub idle_reclaim: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mirrors: Vec::new(),
            insecure: Vec::new(),
            max_concurrent_downloads: DEFAULT_CONCURRENT_DOWNLOADS,
            max_concurrent_uploads: DEFAULT_CONCURRENT_UPLOADS,
            certs_d: PathBuf::from(DEFAULT_CERTS_D),
            network: NetworkSettings::default(),
            idle_timeout_ns: 0,
            idle_reclaim: false,
        }
    }
}

impl Settings {
    /// The user's settings: `$BERTH_CONFIG` (which must exist) or
    /// `/etc/berth/config.toml` (defaults when absent); `$BERTH_CERTS_D`
    /// over the file's `certs-d`.
    pub fn load_default() -> Result<Settings, SettingsError> {
        let mut s = match std::env::var_os("BERTH_CONFIG").filter(|v| !v.is_empty()) {
            Some(p) => Settings::load(Path::new(&p))?,
            None => match Settings::load(Path::new(DEFAULT_CONFIG)) {
                Err(SettingsError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Settings::default()
                }
                other => other?,
            },
        };
        if let Some(d) = std::env::var_os("BERTH_CERTS_D").filter(|v| !v.is_empty()) {
            s.certs_d = PathBuf::from(d);
        }
        Ok(s)
    }

    /// The settings in the file at `path`.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Settings::parse(&text, path)
    }

    /// The settings in `text`, the content of the file `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Settings, SettingsError> {
        let invalid = |at: Option<std::ops::Range<usize>>, message: String| {
            let line = at.map_or(1, |r| {
                text.as_bytes()[..r.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            });
            SettingsError::Invalid {
                path: path.to_path_buf(),
                line,
                message,
            }
        };
        let file: File = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', " ");
            invalid(e.span(), message)
        })?;
        let mut s = Settings::default();
        for m in file.registry_mirrors.unwrap_or_default() {
            let mirror = parse_mirror(m.get_ref()).map_err(|e| invalid(Some(m.span()), e))?;
            s.mirrors.push(mirror);
        }
        for i in file.insecure_registries.unwrap_or_default() {
            let entry = parse_insecure(i.get_ref()).map_err(|e| invalid(Some(i.span()), e))?;
            s.insecure.push(entry);
        }
        let count = |v: toml::Spanned<i64>, key: &str| {
            usize::try_from(*v.get_ref())
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    invalid(
                        Some(v.span()),
                        format!("{key} must be a positive integer, not {}", v.get_ref()),
                    )
                })
        };
        if let Some(v) = file.max_concurrent_downloads {
            s.max_concurrent_downloads = count(v, "max-concurrent-downloads")?;
        }
        if let Some(v) = file.max_concurrent_uploads {
            s.max_concurrent_uploads = count(v, "max-concurrent-uploads")?;
        }
        if let Some(d) = file.certs_d {
            s.certs_d = d;
        }
        if let Some(t) = file.idle_timeout {
            s.idle_timeout_ns = berth_types::duration::go_duration(t.get_ref())
                .filter(|&n| n >= 0)
                .ok_or_else(|| {
                    invalid(
                        Some(t.span()),
                        format!("idle-timeout: invalid duration {:?}", t.get_ref()),
                    )
                })?;
        }
        s.idle_reclaim = file.idle_reclaim.unwrap_or(false);
        let net = &mut s.network;
        net.bridge = file.bridge;
        if let Some(b) = file.bip {
            let sub = Subnet::parse(b.get_ref())
                .map_err(|e| invalid(Some(b.span()), format!("bip: {e}")))?;
            net.bip = Some((sub.addr(), sub.normalized()));
        }
        if let Some(f) = file.fixed_cidr {
            let sub = Subnet::parse(f.get_ref())
                .map_err(|e| invalid(Some(f.span()), format!("fixed-cidr: {e}")))?;
            net.fixed_cidr = Some(sub.normalized());
        }
        for p in file.default_address_pools.unwrap_or_default() {
            let span = p.span();
            let p = p.into_inner();
            let base = Subnet::parse(&p.base)
                .map_err(|e| invalid(Some(span.clone()), format!("default-address-pools: {e}")))?;
            let size = u8::try_from(p.size)
                .ok()
                .filter(|&n| n >= base.prefix() && n <= 32)
                .ok_or_else(|| {
                    invalid(
                        Some(span.clone()),
                        format!(
                            "default-address-pools: invalid pool size {} for base {}",
                            p.size, p.base
                        ),
                    )
                })?;
            net.default_address_pools.push(AddressPool {
                base: base.normalized(),
                size,
            });
        }
        net.dns = file.dns.unwrap_or_default();
        net.dns_search = file.dns_search.unwrap_or_default();
        net.dns_opts = file.dns_opts.unwrap_or_default();
        Ok(s)
    }

    /// Whether `registry` (`host[:port]`) is listed as insecure, by name or
    /// by an address in a listed network (a name is resolved for that, as
    /// Docker's daemon does).
    pub fn is_insecure(&self, registry: &str) -> bool {
        if self
            .insecure
            .iter()
            .any(|i| matches!(i, Insecure::Host(h) if h.eq_ignore_ascii_case(registry)))
        {
            return true;
        }
        if !self
            .insecure
            .iter()
            .any(|i| matches!(i, Insecure::Cidr { .. }))
        {
            return false;
        }
        let host = host_part(registry);
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0u16)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect())
                .unwrap_or_default(),
        };
        addrs.iter().any(|ip| {
            self.insecure.iter().any(|i| match i {
                Insecure::Cidr { net, prefix } => in_network(*ip, *net, *prefix),
                Insecure::Host(_) => false,
            })
        })
    }

    /// The endpoints a pull of `r` tries, in order: for `docker.io`, each
    /// mirror (serving the hub's paths) then the hub; for an insecure
    /// registry, https (unverified) then plain http; else the one endpoint.
    pub fn pull_endpoints(&self, r: &Reference) -> Vec<Endpoint> {
        let base = Endpoint::of(r);
        let mut out = Vec::new();
        if base.registry == DOCKER_HUB {
            for m in &self.mirrors {
                out.push(Endpoint {
                    host: m.host.clone(),
                    scheme: m.scheme,
                    ..base.clone()
                });
            }
            out.push(base);
            return out;
        }
        if base.scheme == Scheme::Http && self.has_certs(&base.host) {
            // A loopback registry the user gave certificates for speaks
            // TLS (then plain http if it is also listed as insecure).
            out.push(Endpoint {
                scheme: Scheme::Https,
                ..base.clone()
            });
            if self.is_insecure(&base.host) {
                out.push(base);
            }
            return out;
        }
        let insecure = base.scheme == Scheme::Https && self.is_insecure(&base.host);
        out.push(base.clone());
        if insecure {
            out.push(Endpoint {
                scheme: Scheme::Http,
                ..base
            });
        }
        out
    }

    /// The endpoint a push of `r` goes to: the registry itself (never a
    /// mirror), over TLS when the user gave certificates for a loopback
    /// one, as for a pull; https first for an insecure registry.
    pub fn push_endpoint(&self, r: &Reference) -> Endpoint {
        let base = Endpoint::of(r);
        let mut eps = self.pull_endpoints(r);
        if base.registry == DOCKER_HUB {
            return base;
        }
        if eps.is_empty() {
            base
        } else {
            eps.remove(0)
        }
    }

    /// Whether `certs.d/<host>` exists.
    pub fn has_certs(&self, host: &str) -> bool {
        !host.contains('/') && self.certs_d.join(host).is_dir()
    }

    /// The TLS configuration for `ep`: None for plain http. https trusts
    /// the system's roots (Debian's bundle; ureq's built-in Mozilla roots
    /// where there is none) plus `certs.d/<host>/*.crt`.
    pub fn tls_for(&self, ep: &Endpoint) -> Result<Option<TlsConfig>, RegistryError> {
        if ep.scheme == Scheme::Http {
            return Ok(None);
        }
        let insecure = self.is_insecure(&ep.host);
        if insecure && !self.has_certs(&ep.host) {
            return Ok(Some(
                TlsConfig::builder().disable_verification(true).build(),
            ));
        }
        // A system bundle that cannot be read or parsed leaves the
        // built-in roots.
        let mut roots = fs::read(SYSTEM_ROOTS)
            .ok()
            .and_then(|b| certificates(&b, Path::new(SYSTEM_ROOTS)).ok())
            .unwrap_or_default();
        let files: Vec<PathBuf> = if self.has_certs(&ep.host) {
            let dir = self.certs_d.join(&ep.host);
            let mut files: Vec<PathBuf> = fs::read_dir(&dir)
                .map_err(|e| io_err(&dir, e))?
                .filter_map(|d| d.ok().map(|d| d.path()))
                .collect();
            files.sort();
            files
        } else {
            Vec::new()
        };
        if files.is_empty() && roots.is_empty() {
            return Ok(None);
        }
        let mut client = None;
        for f in &files {
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
            match ext {
                "crt" => {
                    let pem = fs::read(f).map_err(|e| io_err(f, e))?;
                    let certs = certificates(&pem, f)?;
                    if certs.is_empty() {
                        return Err(RegistryError::Protocol(format!(
                            "no certificate in {}",
                            f.display()
                        )));
                    }
                    roots.extend(certs);
                }
                "cert" => {
                    let key = f.with_extension("key");
                    if !key.is_file() {
                        return Err(RegistryError::Protocol(format!(
                            "missing key {} for client certificate {}",
                            key.display(),
                            f.display()
                        )));
                    }
                    let pem = fs::read(f).map_err(|e| io_err(f, e))?;
                    let chain = certificates(&pem, f)?;
                    let key_pem = fs::read(&key).map_err(|e| io_err(&key, e))?;
                    let k = PrivateKey::from_pem(&key_pem).map_err(|e| {
                        RegistryError::Protocol(format!("invalid key {}: {e}", key.display()))
                    })?;
                    client = Some(ClientCert::new_with_certs(&chain, k));
                }
                "key" if !f.with_extension("cert").is_file() => {
                    return Err(RegistryError::Protocol(format!(
                        "missing client certificate {} for key {}",
                        f.with_extension("cert").display(),
                        f.display()
                    )));
                }
                _ => {}
            }
        }
        let roots = if roots.is_empty() {
            RootCerts::WebPki
        } else {
            RootCerts::Specific(Arc::new(roots))
        };
        Ok(Some(
            TlsConfig::builder()
                .root_certs(roots)
                .client_cert(client)
                .disable_verification(insecure)
                .build(),
        ))
    }

    /// The agent for `registry`'s token server: the registry's own TLS
    /// settings (its certs.d CA and client certificate), as Docker's
    /// daemon reaches it (for `Credentialed::with_agent_for`).
    pub fn token_agent(&self, registry: &str) -> Option<ureq::Agent> {
        let r = Reference::parse(&format!("{registry}/x")).ok()?;
        let ep = Endpoint {
            scheme: Scheme::Https,
            ..Endpoint::of(&r)
        };
        let tls = self.tls_for(&ep).ok()?;
        Some(crate::client::agent(tls))
    }

    /// `berth login`'s check of `creds` with `server`
    /// ([`crate::auth::verify_login`]) through these settings: the
    /// registry's certs.d, and plain http after https for an insecure one.
    pub fn verify_login(
        &self,
        server: &str,
        creds: &crate::credentials::Credentials,
    ) -> Result<Option<String>, RegistryError> {
        let mut urls = crate::auth::login_endpoints(server);
        let Some(host) = urls
            .first()
            .and_then(|u| u.strip_prefix("https://"))
            .map(str::to_string)
        else {
            return crate::auth::verify_login(server, creds);
        };
        if self.is_insecure(&host) {
            if urls.len() == 1 {
                urls.push(format!("http://{host}"));
            }
        } else if self.has_certs(&host) {
            // As a pull: a registry with certificates speaks verified TLS.
            urls.truncate(1);
        }
        let ep = Endpoint {
            registry: host.clone(),
            host,
            repository: String::new(),
            scheme: Scheme::Https,
        };
        let agent = crate::client::agent(self.tls_for(&ep)?);
        crate::auth::verify_login_at(&agent, &urls, server, creds)
    }

    /// A client for `ep` with these settings' TLS for it.
    pub fn client(
        &self,
        ep: &Endpoint,
        auth: Arc<dyn Auth>,
        policy: RetryPolicy,
    ) -> Result<Client, RegistryError> {
        let tls = self.tls_for(ep)?;
        Ok(Client::with_agent(crate::client::agent(tls), auth, policy))
    }
}

fn io_err(path: &Path, source: std::io::Error) -> RegistryError {
    RegistryError::Io {
        context: format!("cannot read {}", path.display()),
        source,
    }
}

/// Every certificate in the PEM text `pem` (of file `path`).
fn certificates(pem: &[u8], path: &Path) -> Result<Vec<Certificate<'static>>, RegistryError> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(RegistryError::Protocol(format!(
                    "invalid certificate file {}: {e}",
                    path.display()
                )))
            }
        }
    }
    Ok(out)
}

/// `http://host:port` as a mirror (Docker's rules: http or https, no path,
/// query or fragment).
fn parse_mirror(s: &str) -> Result<Mirror, String> {
    let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(format!(
            "invalid mirror: unsupported scheme in {s:?}: must use either 'https://' or 'http://'"
        ));
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "invalid mirror: path, query, or fragment at end of the URI {s:?}"
        ));
    }
    Ok(Mirror {
        scheme,
        host: host.to_string(),
    })
}

/// `host[:port]` or `addr/prefix`.
fn parse_insecure(s: &str) -> Result<Insecure, String> {
    if s.contains("://") {
        return Err(format!("insecure registry {s} should not contain '://'"));
    }
    if let Some((addr, prefix)) = s.split_once('/') {
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid insecure registry {s}: not a CIDR network"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|&p| p <= max)
            .ok_or_else(|| format!("invalid insecure registry {s}: not a CIDR network"))?;
        return Ok(Insecure::Cidr { net, prefix });
    }
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(format!("invalid insecure registry {s:?}"));
    }
    Ok(Insecure::Host(s.to_string()))
}

/// The host of `host[:port]` or `[v6]:port`, without brackets.
fn host_part(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// Whether `ip` is in `net/prefix` (v4-mapped v6 addresses count as v4).
fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, SettingsError> {
        Settings::parse(text, Path::new("/etc/berth/config.toml"))
    }

    fn with_insecure(entries: &[&str]) -> Settings {
        Settings {
            insecure: entries.iter().map(|e| parse_insecure(e).unwrap()).collect(),
            ..Settings::default()
        }
    }

    fn endpoints(s: &Settings, r: &str) -> Vec<String> {
        s.pull_endpoints(&Reference::parse(r).unwrap())
            .iter()
            .map(|e| e.url("manifests/latest"))
            .collect()
    }

    #[test]
    fn network_keys() {
        let s = parse(
            "bridge = \"none\"\nbip = \"172.30.0.1/16\"\nfixed-cidr = \"172.30.5.0/24\"\n\
             default-address-pools = [{ base = \"10.10.0.0/16\", size = 24 }]\n\
             dns = [\"1.1.1.1\"]\ndns-search = [\"example.com\"]\ndns-opts = [\"ndots:2\"]\n",
        )
        .unwrap();
        let n = &s.network;
        assert!(n.bridge_disabled());
        let (gw, sub) = n.bip.unwrap();
        assert_eq!(
            (gw.to_string(), sub.to_string()),
            ("172.30.0.1".into(), "172.30.0.0/16".into())
        );
        assert_eq!(
            n.fixed_cidr.map(|c| c.to_string()).as_deref(),
            Some("172.30.5.0/24")
        );
        assert_eq!(n.default_address_pools.len(), 1);
        assert_eq!(n.default_address_pools[0].size, 24);
        assert_eq!(
            (n.dns.len(), n.dns_search.len(), n.dns_opts.len()),
            (1, 1, 1)
        );
        let e = parse("dns = []\nbip = \"300.1.1.1/16\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid configuration file /etc/berth/config.toml, line 2: bip: invalid CIDR address: 300.1.1.1/16"
        );
        let e = parse("default-address-pools = [{ base = \"10.0.0.0/16\", size = 8 }]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid pool size 8"), "{e}");
        assert!(!parse("").unwrap().network.bridge_disabled());
    }

    #[test]
    fn a_file_with_every_key() {
        let s = parse(
            "registry-mirrors = [\"http://127.0.0.1:5000\", \"https://mirror.example/\"]\n\
             insecure-registries = [\"reg.example:5000\", \"10.0.0.0/8\"]\n\
             max-concurrent-downloads = 6\nmax-concurrent-uploads = 2\n\
             certs-d = \"/tmp/certs\"\n",
        )
        .unwrap();
        assert_eq!(
            s.mirrors,
            vec![
                Mirror {
                    scheme: Scheme::Http,
                    host: "127.0.0.1:5000".into()
                },
                Mirror {
                    scheme: Scheme::Https,
                    host: "mirror.example".into()
                }
            ]
        );
        assert_eq!(s.max_concurrent_downloads, 6);
        assert_eq!(s.max_concurrent_uploads, 2);
        assert_eq!(s.certs_d, PathBuf::from("/tmp/certs"));
        assert_eq!(s.insecure.len(), 2);
        let empty = parse("").unwrap();
        assert_eq!(empty.max_concurrent_downloads, 3);
        assert_eq!(empty.max_concurrent_uploads, 5);
        assert!(empty.mirrors.is_empty());
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse("max-concurrent-downloads = 3\nregistry-mirrors = [\"http://a\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid configuration file /etc/berth/config.toml, line "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = parse("\n\nmax-concurrent-downloads = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid configuration file /etc/berth/config.toml, line 3: max-concurrent-downloads must be a positive integer, not 0"
        );
        let e = parse("\nregistry-mirrors = [\n  \"ftp://x\",\n]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3: invalid mirror: unsupported scheme"),
            "{e}"
        );
        let e = parse("debug = true\n").unwrap_err().to_string();
        assert!(e.contains("line 1: unknown field `debug`"), "{e}");
        let e = parse("insecure-registries = [\"http://a:5000\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("insecure registry http://a:5000 should not contain '://'"),
            "{e}"
        );
        assert!(parse("insecure-registries = [\"10.0.0.0/33\"]").is_err());
        assert!(parse("registry-mirrors = [\"https://m.example/v2/\"]").is_err());
    }

    #[test]
    fn insecure_registries_match_by_name_and_network() {
        let s = with_insecure(&["reg.example:5000", "10.0.0.0/8", "fd00::/8"]);
        assert!(s.is_insecure("reg.example:5000"));
        assert!(s.is_insecure("REG.example:5000"));
        assert!(!s.is_insecure("reg.example:5001"));
        assert!(!s.is_insecure("reg.example"));
        assert!(s.is_insecure("10.1.2.3:5000"));
        assert!(s.is_insecure("10.255.255.255"));
        assert!(!s.is_insecure("11.0.0.1:5000"));
        assert!(!s.is_insecure("192.168.1.1"));
        assert!(s.is_insecure("[fd12::1]:5000"));
        assert!(!s.is_insecure("[fe80::1]:5000"));
        assert!(s.is_insecure("[::ffff:10.0.0.1]:443"));
        let s = with_insecure(&["192.168.1.0/24", "172.16.0.0/12"]);
        assert!(s.is_insecure("192.168.1.200:5000"));
        assert!(!s.is_insecure("192.168.2.1:5000"));
        assert!(s.is_insecure("172.31.0.1"));
        assert!(!s.is_insecure("172.32.0.1"));
        let s = with_insecure(&["0.0.0.0/0"]);
        assert!(s.is_insecure("8.8.8.8"));
        assert!(!Settings::default().is_insecure("10.0.0.1"));
        assert!(in_network(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            32
        ));
    }

    #[test]
    fn endpoints_are_tried_in_docker_order() {
        let mut s = with_insecure(&["reg.example:5000", "10.0.0.0/8"]);
        s.mirrors = vec![
            parse_mirror("http://127.0.0.1:5001").unwrap(),
            parse_mirror("https://mirror.example").unwrap(),
        ];
        assert_eq!(
            endpoints(&s, "busybox"),
            vec![
                "http://127.0.0.1:5001/v2/library/busybox/manifests/latest",
                "https://mirror.example/v2/library/busybox/manifests/latest",
                "https://registry-1.docker.io/v2/library/busybox/manifests/latest",
            ]
        );
        assert_eq!(
            endpoints(&s, "reg.example:5000/app"),
            vec![
                "https://reg.example:5000/v2/app/manifests/latest",
                "http://reg.example:5000/v2/app/manifests/latest",
            ]
        );
        assert_eq!(
            endpoints(&s, "10.0.0.7:5000/app"),
            vec![
                "https://10.0.0.7:5000/v2/app/manifests/latest",
                "http://10.0.0.7:5000/v2/app/manifests/latest",
            ]
        );
        assert_eq!(
            endpoints(&s, "ghcr.io/a/b"),
            vec!["https://ghcr.io/v2/a/b/manifests/latest"]
        );
        assert_eq!(
            endpoints(&s, "127.0.0.1:5000/a"),
            vec!["http://127.0.0.1:5000/v2/a/manifests/latest"]
        );
        // The mirrors are for the hub only.
        assert_eq!(endpoints(&s, "ghcr.io/a/b").len(), 1);
    }

    #[test]
    fn https_trusts_the_system_roots() {
        let s = Settings::default();
        let ep = &s.pull_endpoints(&Reference::parse("ghcr.io/a/b").unwrap())[0];
        let tls = s.tls_for(ep).unwrap();
        let bundle = fs::read(SYSTEM_ROOTS).unwrap_or_default();
        let system = certificates(&bundle, Path::new(SYSTEM_ROOTS)).unwrap_or_default();
        match tls.as_ref().map(|t| t.root_certs()) {
            Some(RootCerts::Specific(c)) => assert_eq!(c.len(), system.len()),
            None => assert!(system.is_empty()),
            other => panic!("unexpected roots {other:?}"),
        }
        let plain = &s.pull_endpoints(&Reference::parse("127.0.0.1:5000/a").unwrap())[0];
        assert!(s.tls_for(plain).unwrap().is_none());
    }

    #[test]
    fn a_loopback_registry_with_certificates_speaks_tls() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("127.0.0.1:5000")).unwrap();
        let s = Settings {
            certs_d: dir.path().to_path_buf(),
            ..Settings::default()
        };
        assert_eq!(
            endpoints(&s, "127.0.0.1:5000/a"),
            vec!["https://127.0.0.1:5000/v2/a/manifests/latest"]
        );
        assert_eq!(
            endpoints(&s, "127.0.0.1:5001/a"),
            vec!["http://127.0.0.1:5001/v2/a/manifests/latest"]
        );
        // A bad certificate file is an error, not a silent default.
        fs::write(
            dir.path().join("127.0.0.1:5000/ca.crt"),
            "not a certificate",
        )
        .unwrap();
        let ep = &s.pull_endpoints(&Reference::parse("127.0.0.1:5000/a").unwrap())[0];
        assert!(s.tls_for(ep).is_err());
    }
}
