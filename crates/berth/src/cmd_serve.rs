//! `berth serve`: the Docker Engine API (crate berth-api) on the store
//! this CLI would use.

use crate::cli::{Cli, ServeArgs};
use crate::Exit;

pub fn serve(cli: &Cli, a: &ServeArgs) -> Exit {
    let mut hosts = Vec::new();
    for h in &a.hosts {
        match berth_api::Host::parse(h) {
            Ok(h) => hosts.push(h),
            Err(e) => {
                errln!("berth serve: {e}");
                return Exit::Code(1);
            }
        }
    }
    let mut engine = berth_engine::Options::new(
        cli.root.clone(),
        cli.run_root.clone(),
        cli.cgroup_parent.clone(),
    );
    // The config file's keys, as a CLI `run` reads them.
    match crate::cmd_pull::registry_settings() {
        Ok(settings) => {
            engine.network = settings.network.clone();
            engine.idle = berth_engine::IdleSettings {
                timeout_ns: settings.idle_timeout_ns,
                reclaim: settings.idle_reclaim,
            };
        }
        Err(e) => {
            errln!("berth serve: {e:#}");
            return Exit::Code(1);
        }
    }
    let tcp = hosts.iter().any(|h| matches!(h, berth_api::Host::Tcp(_)));
    if a.insecure_tcp && a.tlsverify {
        errln!("berth serve: --insecure-tcp and --tlsverify contradict each other");
        return Exit::Code(1);
    }
    if tcp && a.insecure_tcp {
        errln!(
            "WARNING: berth serve: the API is served on TCP without TLS: anyone who can reach the port has root on this host"
        );
    }
    let config = berth_api::Config {
        engine,
        hosts,
        group: a.group.clone(),
        pidfile: a.pidfile.clone(),
        tls: berth_api::Tls {
            ca: a.tlscacert.clone(),
            cert: a.tlscert.clone(),
            key: a.tlskey.clone(),
            verify: a.tlsverify,
            insecure: a.insecure_tcp,
        },
    };
    let r = berth_api::serve(config, |addrs| {
        // The readiness line: a supervisor or a test waits for it.
        let _ = outln!(
            "berth serve: API {} listening on {}",
            berth_api::API_VERSION,
            addrs.join(", ")
        );
    });
    match r {
        Ok(()) => Exit::Code(0),
        Err(e) => {
            errln!("berth serve: {e}");
            Exit::Code(1)
        }
    }
}
