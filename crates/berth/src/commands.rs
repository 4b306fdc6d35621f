//! One function per command: parse what the engine needs, call it, print.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, bail, Result};
use berth_engine::filters::Filters;
use berth_engine::{
    AttachStreams, ContainerView, CreateOptions, Engine, EngineError, ExecOptions, ExecSpec,
    LogOptions, Options, RemovedImage,
};
use berth_types::RestartPolicy;
use chrono::{DateTime, Utc};

use crate::attach::{self, Ended, Session};
use crate::cli::*;
use crate::format::human::{ago, command_column, ellipsis, human_size, human_size_with_precision};
use crate::format::table;
use crate::format::template::Format;
use crate::usage::CliError;
use crate::Exit;

fn open(cli: &Cli) -> Result<Engine> {
    let mut opts = Options::new(
        cli.root.clone(),
        cli.run_root.clone(),
        cli.cgroup_parent.clone(),
    );
    // The config file's network keys, for the commands that place a
    // container on a network or make networks (others never read it).
    if matches!(
        cli.command,
        Command::Run(_)
            | Command::Create(_)
            | Command::Network(_)
            | Command::Container(ContainerCommand::Run(_) | ContainerCommand::Create(_))
    ) {
        let settings = crate::cmd_pull::registry_settings()?;
        opts.network = settings.network.clone();
        opts.idle = berth_engine::IdleSettings {
            timeout_ns: settings.idle_timeout_ns,
            reclaim: settings.idle_reclaim,
        };
    }
    Ok(Engine::open(opts)?)
}

/// Runs the command; says how the process ends.
pub fn dispatch(cli: Cli, path: &[String]) -> Exit {
    berth_runtime::trace::trace("cli: start");
    // Docker's `exec` fails with 1 (like other commands) unless the command
    // itself could not be run (126/127).
    // Only `run` answers 125 for the engine's failures (and prefixes them
    // with the program's name); `create` is 1 and "Error:", as the docker
    // CLI's.
    // Answered from the command tree alone, without a store.
    match &cli.command {
        Command::Help(h) => return Exit::Code(crate::cmd_help::help(&h.command)),
        // Docker's config file, not the store.
        Command::Login(a) => return crate::cmd_login::finish(crate::cmd_login::login(a)),
        Command::Logout(a) => return crate::cmd_login::finish(crate::cmd_login::logout(a)),
        // A server of the store, opened per request.
        Command::Serve(a) => return crate::cmd_serve::serve(&cli, a),
        // A registry's search API, not the store.
        Command::Search(a) => return crate::cmd_login::finish(crate::cmd_search::search(a)),
        // A registry's manifest, not the store.
        Command::Manifest(crate::cli::ManifestCommand::Inspect(a)) => {
            return crate::cmd_login::finish(crate::cmd_manifest::inspect(a))
        }
        Command::Completion(c) => {
            return match crate::cmd_help::completion(c) {
                Ok(()) => Exit::Code(0),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::BrokenPipe,
                Err(e) => {
                    errln!("Error: {e}");
                    Exit::Code(1)
                }
            }
        }
        _ => {}
    }
    let run_like = matches!(cli.command, Command::Run(_));
    if matches!(
        cli.command,
        Command::Run(_) | Command::Start(_) | Command::Restart(_)
    ) {
        // The monitor's cgroup migration is on the start path: start its
        // RCU grace period now, in parallel with the database work.
        berth_runtime::cgroups::warm_up_migrations();
    }
    let res = (|| -> Result<i32> {
        let mut e = open(&cli)?;
        match &cli.command {
            Command::Run(a) => run(&mut e, a),
            Command::Create(a) => create(&mut e, a),
            Command::Start(a) => start(&mut e, a),
            Command::Stop(a) => each(&a.containers, |c| {
                e.stop(c, a.time)?;
                outln!("{c}")?;
                Ok(())
            }),
            Command::Restart(a) => each(&a.containers, |c| {
                e.restart(c, a.time)?;
                outln!("{c}")?;
                Ok(())
            }),
            Command::Kill(a) => each(&a.containers, |c| {
                match e.kill(c, &a.signal) {
                    Err(EngineError::NoSuchContainer(n)) => {
                        bail!("Cannot kill container: {c}: No such container: {n}")
                    }
                    r => r?,
                };
                outln!("{c}")?;
                Ok(())
            }),
            Command::Pause(a) | Command::Container(ContainerCommand::Pause(a)) => {
                each(&a.containers, |c| {
                    e.pause(c)?;
                    outln!("{c}")?;
                    Ok(())
                })
            }
            Command::Stats(a) | Command::Container(ContainerCommand::Stats(a)) => {
                crate::cmd_stats::stats(&e, a)
            }
            Command::Update(a) | Command::Container(ContainerCommand::Update(a)) => {
                let r = resource_options(&a.limits)?;
                let restart = a
                    .restart
                    .as_deref()
                    .map(berth_types::RestartPolicy::parse)
                    .transpose()
                    .map_err(|m| anyhow!(EngineError::InvalidArgument(m)))?;
                let warnings = e.limit_warnings(&r);
                each(&a.containers, |c| {
                    e.update(c, &r, restart.as_ref())?;
                    outln!("{c}")?;
                    // Docker's update prints them as they are, on stdout.
                    for w in &warnings {
                        outln!("{w}")?;
                    }
                    Ok(())
                })
            }
            Command::Unpause(a) | Command::Container(ContainerCommand::Unpause(a)) => {
                each(&a.containers, |c| {
                    e.unpause(c)?;
                    outln!("{c}")?;
                    Ok(())
                })
            }
            Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => rm(&mut e, a),
            Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => {
                // A build killed mid-step leaves its RUN container: gone now.
                e.reap_dead_builds()?;
                ps(&e, a)
            }
            Command::Wait(a) => each(&a.containers, |c| {
                outln!("{}", e.wait(c)?)?;
                Ok(())
            }),
            Command::Logs(a) => logs(&e, a),
            Command::Attach(a) => attach_cmd(&e, a),
            Command::Exec(a) => exec(&e, a),
            Command::Inspect(a) => inspect(&e, a, None),
            Command::Container(ContainerCommand::Inspect(a)) => inspect(&e, a, Some("container")),
            Command::Image(ImageCommand::Inspect(a)) => inspect(
                &e,
                &InspectArgs {
                    format: a.format.clone(),
                    size: false,
                    kind: None,
                    objects: a.objects.clone(),
                },
                Some("image"),
            ),
            Command::Top(a) => top(&e, a),
            Command::Port(a) | Command::Container(ContainerCommand::Port(a)) => port(&e, a),
            Command::Rename(a) => match e.rename(&a.container, &a.new_name) {
                Ok(()) => Ok(0),
                Err(err) => {
                    errln!("Error: {err}");
                    errln!("Error: failed to rename container named {}", a.container);
                    Ok(1)
                }
            },
            Command::Container(ContainerCommand::Prune(a)) => {
                crate::cmd_fs::container_prune(&mut e, a)
            }
            Command::Build(a) | Command::Image(ImageCommand::Build(a)) => {
                crate::cmd_build::build(&mut e, a)
            }
            Command::Builder(BuilderCommand::Build(a)) => crate::cmd_build::build(&mut e, a),
            Command::Import(a) | Command::Image(ImageCommand::Import(a)) => import(&mut e, a),
            Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images(&e, a),
            Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => {
                tag_references_ok(&a.source, &a.target)?;
                e.tag(&a.source, &a.target)?;
                Ok(0)
            }
            Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => rmi(&mut e, a),
            Command::Volume(v) => volume(&mut e, v),
            Command::Network(n) => crate::cmd_network::network(&mut e, n),
            Command::Diff(a) | Command::Container(ContainerCommand::Diff(a)) => {
                crate::cmd_commit::diff(&e, a)
            }
            Command::Commit(a) | Command::Container(ContainerCommand::Commit(a)) => {
                if let Some(r) = &a.reference {
                    client_reference(r)?;
                }
                crate::cmd_commit::commit(&mut e, a)
            }
            Command::History(a) | Command::Image(ImageCommand::History(a)) => {
                crate::cmd_commit::history(&e, a)
            }
            Command::Save(a) | Command::Image(ImageCommand::Save(a)) => {
                crate::cmd_archive::save(&e, a)
            }
            Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => {
                crate::cmd_pull::pull(&mut e, a)
            }
            Command::Push(a) | Command::Image(ImageCommand::Push(a)) => {
                crate::cmd_push::push(&mut e, a)
            }
            Command::Load(a) | Command::Image(ImageCommand::Load(a)) => {
                crate::cmd_archive::load(&mut e, a)
            }
            Command::Export(a) | Command::Container(ContainerCommand::Export(a)) => {
                crate::cmd_fs::export(&e, a)
            }
            Command::Cp(a) | Command::Container(ContainerCommand::Cp(a)) => {
                crate::cmd_fs::cp(&e, a)
            }
            Command::Image(ImageCommand::Prune(a)) => crate::cmd_fs::image_prune(&mut e, a),
            Command::Builder(BuilderCommand::Prune(a))
            | Command::Buildx(BuildxCommand::Prune(a)) => crate::cmd_fs::builder_prune(&mut e, a),
            Command::System(SystemCommand::Df(a)) => crate::cmd_fs::system_df(&e, a),
            Command::Events(a) | Command::System(SystemCommand::Events(a)) => {
                crate::cmd_events::events(&e, a)
            }
            Command::Sbom(a) => crate::cmd_packages::sbom(&mut e, a),
            Command::ServeHelper(a) => crate::cmd_serve_helper::run(&mut e, &a.op),
            Command::Packages(p) => crate::cmd_packages::packages(&mut e, p),
            Command::Scan(a) => crate::cmd_packages::scan(&mut e, a),
            Command::System(SystemCommand::Prune(a)) => {
                e.reap_dead_builds()?;
                crate::cmd_fs::system_prune(&mut e, a)
            }
            // `Command::flatten` made these the top-level verbs.
            Command::Container(
                ContainerCommand::Run(_)
                | ContainerCommand::Create(_)
                | ContainerCommand::Start(_)
                | ContainerCommand::Stop(_)
                | ContainerCommand::Restart(_)
                | ContainerCommand::Kill(_)
                | ContainerCommand::Wait(_)
                | ContainerCommand::Logs(_)
                | ContainerCommand::Attach(_)
                | ContainerCommand::Exec(_)
                | ContainerCommand::Top(_)
                | ContainerCommand::Rename(_),
            ) => bail!("internal: container subcommand not flattened"),
            Command::Help(_)
            | Command::Completion(_)
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Search(_)
            | Command::Serve(_)
            | Command::Manifest(_) => {
                bail!("internal: help, completion, login and logout are answered before the engine opens")
            }
            Command::Version(a) => crate::cmd_system::version(&e, a.format.as_deref()),
            Command::Info(a) | Command::System(SystemCommand::Info(a)) => {
                crate::cmd_system::info(&e, a.format.as_deref())
            }
        }
    })();
    match res {
        Ok(code) => Exit::Code(code),
        Err(err) if crate::is_closed_stdout(&err) => Exit::BrokenPipe,
        Err(err) => {
            match err.downcast_ref::<CliError>() {
                Some(CliError::Flag(msg)) => {
                    errln!("{}", crate::usage::flag_error(path, msg));
                    return Exit::Code(125);
                }
                Some(CliError::Bare { message, code }) => {
                    errln!("{message}");
                    return Exit::Code(*code);
                }
                Some(CliError::Opts(msg)) => {
                    errln!("berth: {msg}{}", crate::usage::run_trailer(path));
                    return Exit::Code(125);
                }
                None => {}
            }
            if let Some(e @ (EngineError::NotRunningToAttach | EngineError::ClientCheck(_))) =
                err.downcast_ref::<EngineError>()
            {
                errln!("{e}");
                return Exit::Code(1);
            }
            let prefix = if run_like { "berth: " } else { "Error: " };
            // docker's `run` ends each of its errors with where to read more.
            let trailer = if run_like {
                crate::usage::run_trailer(path)
            } else {
                String::new()
            };
            if let Some(EngineError::ImageNotFoundLocally(n)) = err.downcast_ref::<EngineError>() {
                errln!("Unable to find image '{n}' locally");
                errln!("{prefix}No such image: {n}{trailer}");
            } else if let Some(EngineError::PlatformMismatch { reference, .. }) =
                err.downcast_ref::<EngineError>()
            {
                // Docker's daemon calls this "not found" and its CLI goes
                // on to pull; with `--pull never` that is where it ends.
                let n = berth_types::Reference::parse(reference)
                    .map_or_else(|_| reference.clone(), |r| r.familiar());
                errln!("Unable to find image '{n}' locally");
                errln!("{prefix}{err}{trailer}");
            } else {
                errln!("{prefix}{}{trailer}", error_chain(&err));
            }
            Exit::Code(crate::exit_code(&err, run_like))
        }
    }
}

/// The error and its causes on one line, skipping a cause that the message
/// before it already spelled out.
pub(crate) fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) || out.contains(&format!(": {text}")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Runs `f` for every name, printing each error; exit 1 if any failed. A
/// closed stdout ends the loop: it is the whole command's error.
pub(crate) fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<i32> {
    let mut code = 0;
    for n in names {
        if let Err(e) = f(n) {
            if crate::is_closed_stdout(&e) {
                return Err(e);
            }
            errln!("Error: {}", error_chain(&e));
            code = 1;
        }
    }
    Ok(code)
}

fn parse_env_files(a: &RunArgs) -> Result<Vec<String>> {
    environment(&a.env_file, &a.env)
}

/// `--env-file F`... then `-e K=V`..., with Docker's rules for both.
fn environment(files: &[std::path::PathBuf], flags: &[String]) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow!("open {}: {}", f.display(), errno_text(&e)))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Docker's rules for env files: a name, never empty, no blanks.
            let name = line.split_once('=').map_or(line, |(n, _)| n);
            let bad = if name.is_empty() {
                Some(format!("no variable name on line '{line}'"))
            } else if name.contains(char::is_whitespace) {
                Some(format!("variable '{name}' contains whitespaces"))
            } else {
                None
            };
            if let Some(why) = bad {
                bail!(EngineError::InvalidArgument(format!(
                    "invalid env file ({}): {why}",
                    f.display()
                )));
            }
            env.push(expand_env(line));
        }
    }
    for e in flags {
        if e.starts_with('=') {
            bail!(CliError::Flag(format!(
                "invalid argument \"{e}\" for \"-e, --env\" flag: invalid environment variable: {e}"
            )));
        }
        env.push(expand_env(e));
    }
    Ok(env)
}

/// `-e KEY` takes KEY's value from our own environment, as Docker does.
fn expand_env(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        match std::env::var(e) {
            Ok(v) => format!("{e}={v}"),
            Err(_) => e.to_string(),
        }
    }
}

/// `--health-*` and `--no-healthcheck`, checked as the docker CLI checks
/// them (the daemon's checks are the engine's).
fn healthcheck_options(a: &RunArgs) -> Result<Option<berth_types::Healthcheck>> {
    let duration = |v: &Option<String>, flag: &str| -> Result<i64> {
        match v {
            None => Ok(0),
            Some(s) => berth_engine::timeparse::go_duration(s).ok_or_else(|| {
                anyhow!(CliError::Flag(format!(
                    "invalid argument \"{s}\" for \"--{flag}\" flag: time: invalid duration \"{s}\""
                )))
            }),
        }
    };
    let interval = duration(&a.health_interval, "health-interval")?;
    let timeout = duration(&a.health_timeout, "health-timeout")?;
    let start_period = duration(&a.health_start_period, "health-start-period")?;
    let start_interval = duration(&a.health_start_interval, "health-start-interval")?;
    let retries: i64 = match &a.health_retries {
        None => 0,
        Some(s) => s.parse::<i32>().map(i64::from).map_err(|_| {
            anyhow!(CliError::Flag(format!(
                "invalid argument \"{s}\" for \"--health-retries\" flag: strconv.ParseInt: parsing \"{s}\": invalid syntax"
            )))
        })?,
    };
    let cmd = a.health_cmd.clone().unwrap_or_default();
    let any = !cmd.is_empty()
        || interval != 0
        || timeout != 0
        || start_period != 0
        || start_interval != 0
        || retries != 0;
    if a.no_healthcheck {
        if any {
            bail!(CliError::Opts(
                "--no-healthcheck conflicts with --health-* options".into()
            ));
        }
        return Ok(Some(berth_types::Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        }));
    }
    if !any {
        return Ok(None);
    }
    for (v, flag) in [
        (interval, "health-interval"),
        (timeout, "health-timeout"),
        (start_period, "health-start-period"),
        (start_interval, "health-start-interval"),
        (retries, "health-retries"),
    ] {
        if v < 0 {
            bail!(CliError::Opts(format!("--{flag} cannot be negative")));
        }
    }
    Ok(Some(berth_types::Healthcheck {
        test: if cmd.is_empty() {
            Vec::new()
        } else {
            vec!["CMD-SHELL".into(), cmd]
        },
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }))
}

fn create_options(a: &RunArgs, attach: AttachStreams) -> Result<CreateOptions> {
    let restart =
        RestartPolicy::parse(&a.restart).map_err(|e| anyhow!(EngineError::InvalidArgument(e)))?;
    // As the docker CLI reads them: a name without `=` has the value "".
    let log_opts = a
        .log_opt
        .iter()
        .map(|o| {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let platform = match a.platform.as_deref() {
        None | Some("") => None,
        Some(p) => Some(berth_types::Platform::parse(p).map_err(|e| {
            anyhow!(EngineError::InvalidArgument(format!(
                "error parsing specified platform: {e}"
            )))
        })?),
    };
    let mut labels = BTreeMap::new();
    // --label-file: env-file lines (a bare name takes our variable's value,
    // or is left out), then the -l flags.
    let mut from_files = Vec::new();
    for f in &a.label_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow!("open {}: {}", f.display(), errno_text(&e)))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let l = expand_env(line);
            if l.contains('=') {
                from_files.push(l);
            }
        }
    }
    for l in from_files.iter().chain(&a.label) {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!(CliError::Flag(format!(
                "invalid argument \"{l}\" for \"-l, --label\" flag: invalid label '{l}': empty name"
            )));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    let env = parse_env_files(a).map_err(|e| {
        if e.is::<CliError>() {
            e
        } else {
            anyhow!(EngineError::InvalidArgument(format!("{e:#}")))
        }
    })?;
    let healthcheck = healthcheck_options(a)?;
    let idle_timeout = match &a.idle_timeout {
        None => None,
        Some(s) => Some(
            berth_engine::timeparse::go_duration(s)
                .filter(|&n| n >= 0)
                .ok_or_else(|| {
                    anyhow!(CliError::Flag(format!(
                        "invalid argument \"{s}\" for \"--idle-timeout\" flag: time: invalid duration \"{s}\""
                    )))
                })?,
        ),
    };
    Ok(CreateOptions {
        idle_timeout,
        healthcheck,
        image: a.image.clone(),
        name: a.name.clone(),
        cmd: a.command.clone(),
        // Docker's `--entrypoint ""` clears the image's.
        entrypoint: a.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        domainname: a.domainname.clone(),
        group_add: a.group_add.clone(),
        sysctls: {
            let mut m = BTreeMap::new();
            for s in &a.sysctl {
                let (k, v) = s.split_once('=').unwrap_or((s, ""));
                if !s.contains('=') || !berth_runtime::process::sysctl_is_namespaced(k) {
                    bail!(CliError::Flag(format!(
                        "invalid argument \"{s}\" for \"--sysctl\" flag: sysctl '{s}' is not whitelisted"
                    )));
                }
                m.insert(k.to_string(), v.to_string());
            }
            m
        },
        namespaces: berth_engine::NamespaceOptions {
            pid: a.pid.clone(),
            ipc: a.ipc.clone(),
            uts: a.uts.clone(),
            cgroupns: a.cgroupns.clone(),
            userns: a.userns.clone(),
        },
        tty: a.tty,
        open_stdin: a.interactive,
        attach,
        init: a.init,
        read_only: a.read_only,
        tmpfs: a.tmpfs.clone(),
        volumes: a.volume.clone(),
        volumes_from: a.volumes_from.clone(),
        mounts: a
            .mount
            .iter()
            .map(|m| berth_engine::mountopt::parse(m))
            .collect::<std::result::Result<_, _>>()?,
        network: match a.network.as_deref() {
            Some("") => bail!(CliError::Opts("no name set for network".into())),
            n => n.map(str::to_string),
        },
        network_aliases: {
            // The docker CLI's own check, before it asks the daemon.
            let user_defined = !matches!(
                a.network.as_deref().unwrap_or("default"),
                "default" | "bridge" | "host" | "none"
            ) && !a
                .network
                .as_deref()
                .is_some_and(|n| n.starts_with("container:"));
            if !a.network_alias.is_empty() && !user_defined {
                bail!(CliError::Opts(
                    "network-scoped aliases are only supported for user-defined networks".into()
                ));
            }
            a.network_alias.clone()
        },
        ip: a.ip.clone(),
        mac_address: match &a.mac_address {
            // The docker CLI's own check.
            Some(m) if !berth_engine::valid_mac_address(m) => {
                bail!(CliError::Opts(format!("{m} is not a valid mac address")))
            }
            m => m.clone(),
        },
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        restart,
        auto_remove: a.rm,
        log_opts,
        labels,
        privileged: a.privileged,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        security_opt: security_opts(&a.security_opt)?,
        log_driver: a.log_driver.clone(),
        platform,
        runtime: a.runtime.clone(),
        build_step: None,
        resources: {
            let mut r = resource_options(&a.limits)?;
            r.more = run_limit_options(std::mem::take(&mut r.more), &a.run_limits)?;
            r
        },
        net: berth_engine::NetOptions {
            add_host: check_add_hosts(&a.add_host)?,
            dns: check_dns(&a.dns)?,
            publish: a.publish.clone(),
            publish_all: a.publish_all,
            expose: a.expose.clone(),
            dns_search: a.dns_search.clone(),
            dns_options: a.dns_option.clone(),
        },
    })
}

/// `--add-host HOST:IP` as the docker CLI checks it (`host-gateway` is an
/// IP here); `[::1]` loses its brackets.
fn check_add_hosts(hosts: &[String]) -> Result<Vec<String>> {
    hosts
        .iter()
        .map(|h| {
            let bad = |why: String| {
                anyhow!(CliError::Flag(format!(
                    "invalid argument \"{h}\" for \"--add-host\" flag: {why}"
                )))
            };
            let (name, ip) = h
                .split_once(':')
                .or_else(|| h.split_once('='))
                .filter(|(n, ip)| !n.is_empty() && !ip.is_empty())
                .ok_or_else(|| bad(format!("bad format for add-host: \"{h}\"")))?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
                return Err(bad(format!("invalid IP address in add-host: \"{ip}\"")));
            }
            Ok(format!("{name}:{ip}"))
        })
        .collect()
}

/// The limit flags, their sizes checked as the docker CLI checks them.
fn resource_options(l: &crate::cli::LimitArgs) -> Result<berth_engine::ResourceOptions> {
    Ok(berth_engine::ResourceOptions {
        memory: check_ram("-m, --memory", l.memory.as_deref())?,
        memory_swap: check_ram("--memory-swap", l.memory_swap.as_deref())?,
        cpus: l.cpus.clone(),
        cpu_shares: l.cpu_shares,
        pids_limit: l.pids_limit,
        memory_reservation: check_ram("--memory-reservation", l.memory_reservation.as_deref())?,
        cpuset_cpus: l.cpuset_cpus.clone(),
        cpuset_mems: l.cpuset_mems.clone(),
        more: berth_engine::limits::MoreLimits {
            blkio_weight: l.blkio_weight,
            cpu_period: l.cpu_period,
            cpu_quota: l.cpu_quota,
            cpu_rt_period: l.cpu_rt_period,
            cpu_rt_runtime: l.cpu_rt_runtime,
            ..Default::default()
        },
    })
}

/// The limit flags of `run`/`create` only, over `base` (those `update`
/// shares), their values checked as the docker CLI checks them
/// (berth_engine::limits has its parsers).
fn run_limit_options(
    base: berth_engine::limits::MoreLimits,
    r: &crate::cli::RunLimitArgs,
) -> Result<berth_engine::limits::MoreLimits> {
    use berth_engine::limits as lim;
    fn each<T>(
        flag: &str,
        values: &[String],
        parse: fn(&str) -> std::result::Result<T, lim::InvalidValue>,
    ) -> Result<Vec<T>> {
        values
            .iter()
            .map(|v| {
                parse(v).map_err(|why| {
                    anyhow!(CliError::Flag(format!(
                        "invalid argument \"{v}\" for \"{flag}\" flag: {why}"
                    )))
                })
            })
            .collect()
    }
    if let Some(s) = r.memory_swappiness.filter(|s| !(-1..=100).contains(s)) {
        bail!(CliError::Opts(format!(
            "invalid value: {s}. Valid memory swappiness range is 0-100"
        )));
    }
    // The docker CLI reads the devices before the block I/O values.
    let devices = r
        .device
        .iter()
        .map(|d| lim::parse_device(d).map_err(|e| anyhow!(CliError::Opts(e.0))))
        .collect::<Result<Vec<_>>>()?;
    let shm_size = match check_ram("--shm-size", r.shm_size.as_deref())? {
        Some(v) if v == "-1" => bail!(CliError::Flag(
            "invalid argument \"-1\" for \"--shm-size\" flag: invalid size: '-1'".into()
        )),
        Some(v) => berth_engine::parse_size(&v).and_then(|n| i64::try_from(n).ok()),
        None => None,
    };
    Ok(lim::MoreLimits {
        memory_swappiness: r.memory_swappiness,
        oom_kill_disable: r.oom_kill_disable,
        oom_score_adj: r.oom_score_adj,
        blkio_weight_device: each(
            "--blkio-weight-device",
            &r.blkio_weight_device,
            lim::parse_weight_device,
        )?,
        device_read_bps: each(
            "--device-read-bps",
            &r.device_read_bps,
            lim::parse_throttle_bps,
        )?,
        device_write_bps: each(
            "--device-write-bps",
            &r.device_write_bps,
            lim::parse_throttle_bps,
        )?,
        device_read_iops: each(
            "--device-read-iops",
            &r.device_read_iops,
            lim::parse_throttle_iops,
        )?,
        device_write_iops: each(
            "--device-write-iops",
            &r.device_write_iops,
            lim::parse_throttle_iops,
        )?,
        ulimits: each("--ulimit", &r.ulimit, lim::parse_ulimit)?,
        shm_size,
        devices,
        device_cgroup_rules: each(
            "--device-cgroup-rule",
            &r.device_cgroup_rule,
            lim::check_device_cgroup_rule,
        )?,
        gpus: r.gpus.clone(),
        cgroup_parent: r.cgroup_parent.clone(),
        ..base
    })
}

/// A size flag as the docker CLI reads it (go-units' `RAMInBytes`): its
/// words for a bad one. `-1` passes (`--memory-swap -1`).
fn check_ram(flag: &str, v: Option<&str>) -> Result<Option<String>> {
    let Some(v) = v else {
        return Ok(None);
    };
    if v == "-1" || berth_engine::parse_size(v).is_some() {
        return Ok(Some(v.to_string()));
    }
    let digits = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let why = if digits > 0 && v[..digits].parse::<f64>().is_ok() {
        format!("invalid suffix: '{}'", &v[digits..])
    } else {
        format!("invalid size: '{v}'")
    };
    bail!(CliError::Flag(format!(
        "invalid argument \"{v}\" for \"{flag}\" flag: {why}"
    )))
}

/// `--dns` as the docker CLI checks it.
fn check_dns(servers: &[String]) -> Result<Vec<String>> {
    for d in servers {
        if d.parse::<std::net::IpAddr>().is_err() {
            bail!(CliError::Flag(format!(
                "invalid argument \"{d}\" for \"--dns\" flag: IP address is not correctly formatted: {d}"
            )));
        }
    }
    Ok(servers.to_vec())
}

/// `--security-opt` as Docker's CLI passes them on: `KEY=VALUE` (or the
/// old `KEY:VALUE`), `no-new-privileges` alone; a `seccomp=FILE` is read
/// here and sent as its compact JSON.
fn security_opts(opts: &[String]) -> Result<Vec<String>> {
    let invalid = |m: String| anyhow!(EngineError::InvalidArgument(m));
    let mut out = Vec::with_capacity(opts.len());
    for opt in opts {
        let mut kv = opt.split_once('=');
        if kv.is_none() && opt != "no-new-privileges" {
            kv = opt.split_once(':');
        }
        let (k, v) = match kv {
            Some((k, v)) if !v.is_empty() => (k, v),
            _ if opt == "no-new-privileges" => {
                out.push(opt.clone());
                continue;
            }
            _ => return Err(invalid(format!("Invalid --security-opt: {opt:?}"))),
        };
        if k == "seccomp" && v != "unconfined" {
            let data = std::fs::read(v).map_err(|e| {
                invalid(format!(
                    "opening seccomp profile ({v}) failed: open {v}: {}",
                    errno_text(&e)
                ))
            })?;
            let json: serde_json::Value = serde_json::from_slice(&data).map_err(|e| {
                invalid(format!(
                    "compacting json for seccomp profile ({v}) failed: {e}"
                ))
            })?;
            out.push(format!("seccomp={json}"));
        } else {
            out.push(opt.clone());
        }
    }
    Ok(out)
}

/// A file the docker CLI itself could not open (`load -i`, `import`): Go's
/// words, printed bare, exit 1.
pub(crate) fn open_error(path: &std::path::Path, err: &std::io::Error) -> anyhow::Error {
    anyhow!(CliError::Bare {
        message: format!("open {}: {}", path.display(), errno_text(err)),
        code: 1
    })
}

/// An I/O error as Go words it: "no such file or directory".
pub(crate) fn errno_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// The streams `run`/`create` attach, as the docker CLI decides: the `-a`
/// ones (stdout and stderr without any), stdin too with `-i`; none with `-d`.
fn attach_streams(a: &RunArgs) -> AttachStreams {
    if a.detach {
        return AttachStreams::default();
    }
    let has = |s: &str| a.attach.iter().any(|x| x == s);
    AttachStreams {
        stdin: a.interactive || has("stdin"),
        stdout: a.attach.is_empty() || has("stdout"),
        stderr: a.attach.is_empty() || has("stderr"),
    }
}

/// The docker CLI's own check of a reference it is about to send (`commit`,
/// `import`, `create`): a bad one is its error, printed bare, exit 1.
pub(crate) fn client_reference(s: &str) -> Result<berth_types::Reference> {
    berth_types::Reference::parse(s).map_err(|e| {
        anyhow!(CliError::Bare {
            message: e.to_string(),
            code: 1
        })
    })
}

/// `tag`'s checks in the docker client, in its words: both references
/// parse, and the new one has no digest.
fn tag_references_ok(source: &str, target: &str) -> Result<()> {
    let bare = |message: String| anyhow!(CliError::Bare { message, code: 1 });
    for r in [source, target] {
        if let Err(e) = berth_types::Reference::parse(r) {
            return Err(bare(format!(
                "Error parsing reference: {r:?} is not a valid repository/tag: {e}"
            )));
        }
    }
    if target.contains('@') {
        return Err(bare(
            "refusing to create a tag with a digest reference".to_string(),
        ));
    }
    Ok(())
}

/// What the docker CLI refuses before it asks its daemon (exit 125, for
/// `create` too): a bad `--mount` value (a flag error), log options for
/// the `none` driver and the healthcheck flags (its option checks).
fn flags_ok(a: &RunArgs) -> Result<()> {
    for m in &a.mount {
        if let Err(e) = berth_engine::mountopt::parse(m) {
            bail!(CliError::Flag(e.to_string()));
        }
    }
    if a.log_driver.as_deref() == Some("none") && !a.log_opt.is_empty() {
        bail!(CliError::Opts(
            "invalid logging opts for driver none".into()
        ));
    }
    healthcheck_options(a)?;
    Ok(())
}

fn create(e: &mut Engine, a: &RunArgs) -> Result<i32> {
    flags_ok(a)?;
    client_reference(&a.image)?;
    // Docker's `create` records the streams `run` would attach (without -d).
    let id = create_with_cidfile(e, a, attach_streams(a))?;
    outln!("{id}")?;
    Ok(0)
}

/// `create`, honouring `--cidfile` as Docker does: refused if the file
/// exists (checked first), the ID written once the container exists.
fn create_with_cidfile(
    e: &mut Engine,
    a: &RunArgs,
    attach: AttachStreams,
) -> Result<berth_types::ContainerId> {
    if let Some(f) = &a.cidfile {
        if f.exists() {
            bail!(EngineError::InvalidArgument(format!(
                "container ID file found, make sure the other container isn't running or delete {}",
                f.display()
            )));
        }
    }
    crate::cmd_pull::check_pull_policy(&a.pull)?;
    let opts = create_options(a, attach)?;
    if a.pull == "always" {
        crate::cmd_pull::pull_for_run(e, &a.image, a.platform.as_deref(), false)?;
    }
    // As Docker's CLI: create; an image that is not here (or not of the
    // platform asked for) is pulled, then create again.
    let id = match e.create(&opts) {
        Err(
            err @ (EngineError::ImageNotFoundLocally(_) | EngineError::PlatformMismatch { .. }),
        ) if a.pull == "missing" => {
            let r =
                berth_types::Reference::parse(&a.image).map_err(|_| anyhow::Error::from(err))?;
            errln!("Unable to find image '{}' locally", r.familiar());
            crate::cmd_pull::pull_for_run(e, &a.image, a.platform.as_deref(), false)?;
            e.create(&opts)?
        }
        other => other?,
    };
    // What the host cannot do was discarded: Docker's CLI says so.
    for w in e.limit_warnings(&opts.resources) {
        errln!("WARNING: {w}");
    }
    if let Some(f) = &a.cidfile {
        use std::io::Write as _;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(f)
            .and_then(|mut file| file.write_all(id.as_str().as_bytes()));
        if let Err(err) = written {
            bail!(EngineError::InvalidArgument(format!(
                "failed to create the container ID file: {err}"
            )));
        }
    }
    Ok(id)
}

fn run(e: &mut Engine, a: &RunArgs) -> Result<i32> {
    flags_ok(a)?;
    // The docker CLI checks the image's name before anything else; for
    // `run` its error is the engine's ("berth: ..." and the help hint).
    berth_types::Reference::parse(&a.image)?;
    let detach_keys =
        attach::parse_detach_keys(a.detach_keys.as_deref()).map_err(|m| anyhow!(m))?;
    if a.detach && !a.attach.is_empty() {
        // The docker CLI's own check: its (28's) words, 1, nothing created.
        bail!(CliError::Bare {
            message: "conflicting options: cannot specify both --attach and --detach".into(),
            code: 1
        });
    }
    let recorded = attach_streams(a);
    if a.tty && recorded.stdin && !attach::is_terminal(std::io::stdin()) && !a.detach {
        // Docker's CLI refuses this itself, with 1 (not the daemon's 125)
        // and no "docker:" before it.
        bail!(CliError::Bare {
            code: 1,
            message: "the input device is not a TTY".into()
        });
    }
    let id = create_with_cidfile(e, a, recorded)?;
    berth_runtime::trace::trace("cli: created");
    if a.detach {
        if let Err(err) = e.start(id.as_str()) {
            if a.rm {
                remove_unstarted(e, &id, &err);
            }
            return Err(err.into());
        }
        outln!("{id}")?;
        return Ok(0);
    }
    // Stdin is read only when the container keeps it open (`-i`): `-a
    // stdin` alone attaches a closed stream, as Docker's.
    let streams = AttachStreams {
        stdin: recorded.stdin && a.interactive,
        ..recorded
    };
    let (v, att) = match e.start_attached(id.as_str(), streams) {
        Ok(x) => x,
        Err(err) => {
            if a.rm {
                remove_unstarted(e, &id, &err);
            }
            return Err(err.into());
        }
    };
    berth_runtime::trace::trace("cli: attached and started");
    let ended = attach::run(
        att,
        Session {
            tty: a.tty,
            stdin: streams.stdin,
            proxy_pid: a.sig_proxy.then_some(v.state.pid),
            detach_keys,
            redraw: false,
        },
    );
    berth_runtime::trace::trace("cli: session ended");
    let code = finish_attached(e, &v, ended, a.rm);
    berth_runtime::trace::trace("cli: done");
    code
}

/// Detaching from `attach`, `start -a` or `exec` (not `run`), as the docker
/// CLI does: its words, and 1.
fn escaped() -> Result<i32> {
    errln!("read escape sequence");
    Ok(1)
}

/// After an attached session: the exit code, waiting for `--rm` to finish.
fn finish_attached(e: &Engine, v: &ContainerView, ended: Ended, auto_remove: bool) -> Result<i32> {
    match ended {
        Ended::Detached => Ok(0),
        // The reader of our stdout is gone: the container runs on (and
        // `--rm` still removes it when it exits); we end as a closed pipe ends us.
        Ended::OutputClosed => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into()),
        Ended::Exited(code) => {
            if auto_remove {
                wait_removed(e, v);
            }
            Ok(code)
        }
        Ended::Lost => {
            let code = e
                .container(v.id.as_str())
                .map(|c| c.state.exit_code)
                .unwrap_or(125);
            Ok(code)
        }
    }
}

/// `run --rm` whose start failed: a monitor that failed hands over to
/// `berth rm` (wait for it); a start the engine refused before any monitor
/// ran (another container's namespace to join is not there) leaves the
/// container to us, and Docker's daemon removes it.
fn remove_unstarted(e: &mut Engine, id: &berth_types::ContainerId, err: &EngineError) {
    let Ok(v) = e.container(id.as_str()) else {
        return;
    };
    if matches!(err, EngineError::Runtime { .. }) {
        wait_removed(e, &v);
    } else {
        let _ = e.remove(id.as_str(), true, true);
    }
}

/// `--rm`: the monitor hands over to `berth rm`; wait until it is done.
fn wait_removed(e: &Engine, v: &ContainerView) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if e.find_container(v.id.as_str()).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn start(e: &mut Engine, a: &StartArgs) -> Result<i32> {
    let detach_keys =
        attach::parse_detach_keys(a.detach_keys.as_deref()).map_err(|m| anyhow!(m))?;
    if a.attach || a.interactive {
        let [c] = a.containers.as_slice() else {
            bail!("you cannot start and attach multiple containers at once");
        };
        let v0 = e.container(c)?;
        let streams = AttachStreams {
            stdin: a.interactive && v0.config.open_stdin,
            stdout: true,
            stderr: true,
        };
        // A start that fails is 1 for Docker's CLI, whatever the reason.
        let (v, att) = e.start_attached(c, streams).map_err(|err| match err {
            EngineError::Runtime { message, .. } => EngineError::Runtime { code: 1, message },
            other => other,
        })?;
        let ended = attach::run(
            att,
            Session {
                tty: v.config.tty,
                stdin: streams.stdin,
                proxy_pid: Some(v.state.pid),
                detach_keys,
                redraw: false,
            },
        );
        if matches!(ended, Ended::Detached) {
            return escaped();
        }
        return finish_attached(e, &v, ended, v.host_config.auto_remove);
    }
    let mut failed = Vec::new();
    let code = each(&a.containers, |c| {
        let r = e.start(c);
        if r.is_err() {
            failed.push(c.to_string());
        }
        r?;
        outln!("{c}")?;
        Ok(())
    })?;
    if !failed.is_empty() {
        errln!("Error: failed to start containers: {}", failed.join(", "));
    }
    Ok(code)
}

fn attach_cmd(e: &Engine, a: &AttachArgs) -> Result<i32> {
    let v = e.container(&a.container)?;
    let stdin = !a.no_stdin && v.config.open_stdin;
    let att = e.attach(
        &a.container,
        AttachStreams {
            stdin,
            stdout: true,
            stderr: true,
        },
    )?;
    let proxy = if a.sig_proxy { Some(v.state.pid) } else { None };
    let ended = attach::run(
        att,
        Session {
            tty: v.config.tty,
            stdin,
            proxy_pid: proxy,
            detach_keys: attach::parse_detach_keys(a.detach_keys.as_deref())
                .map_err(|m| anyhow!(m))?,
            redraw: true,
        },
    );
    if matches!(ended, Ended::Detached) {
        return escaped();
    }
    finish_attached(e, &v, ended, false)
}

fn exec(e: &Engine, a: &ExecArgs) -> Result<i32> {
    let detach_keys =
        attach::parse_detach_keys(a.detach_keys.as_deref()).map_err(|m| anyhow!(m))?;
    // As Docker's: -t alone makes a terminal whatever stdin is; only -it
    // needs one to read from.
    if a.tty && a.interactive && !a.detach && !attach::is_terminal(std::io::stdin()) {
        bail!(CliError::Bare {
            code: 1,
            message: "the input device is not a TTY".into()
        });
    }
    let env = environment(&a.env_file, &a.env)?;
    let spec = ExecSpec {
        args: a.command.clone(),
        env,
        cwd: a.workdir.clone().unwrap_or_default(),
        user: a.user.clone().unwrap_or_default(),
        privileged: a.privileged,
        // The engine fills in the container's own.
        security: Default::default(),
    };
    // The command gets pipes (or, with -t, a new pty) that berth relays:
    // never this process's own descriptors or terminal.
    let opts = ExecOptions {
        tty: a.tty,
        stdin: a.interactive && !a.detach,
        detach: a.detach,
    };
    let attachment = match e.exec(&a.container, spec, opts) {
        Ok(Some(attachment)) => attachment,
        Ok(None) => return Ok(0),
        // A command that cannot start: docker's daemon reports it on the
        // exec's own output stream (a terminal's line end, exit 126); a
        // detached exec gets it as an ordinary error (exit 1).
        Err(EngineError::Runtime { message, .. }) if a.detach => bail!("{message}"),
        Err(EngineError::Runtime {
            message,
            code: 126 | 127,
        }) => {
            out!("{message}\r\n")?;
            return Ok(126);
        }
        Err(err) => return Err(err.into()),
    };
    let ended = attach::run(
        attachment,
        Session {
            tty: a.tty,
            stdin: opts.stdin,
            proxy_pid: None,
            detach_keys,
            redraw: false,
        },
    );
    match ended {
        attach::Ended::Exited(code) => Ok(code),
        attach::Ended::Detached => escaped(),
        attach::Ended::Lost => bail!("the exec'd process's monitor went away"),
        attach::Ended::OutputClosed => {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into())
        }
    }
}

fn rm(e: &mut Engine, a: &RmArgs) -> Result<i32> {
    let (mut failures, mut missing) = (0, 0);
    let code = each(&a.containers, |c| {
        let r = e.remove(c, a.force, a.volumes);
        if let Err(err) = &r {
            failures += 1;
            missing += usize::from(matches!(err, EngineError::NoSuchContainer(_)));
        }
        r?;
        outln!("{c}")?;
        Ok(())
    })?;
    Ok(forced_exit(a.force, code, failures, missing))
}

/// `rm -f`/`rmi -f`: Docker's CLI reports a name that does not exist but
/// does not fail for it; any other failure still fails.
fn forced_exit(force: bool, code: i32, failures: usize, missing: usize) -> i32 {
    if force && failures == missing {
        0
    } else {
        code
    }
}

fn logs(e: &Engine, a: &LogsArgs) -> Result<i32> {
    // Docker: "all", or any negative number, is everything.
    let tail = match a.tail.parse::<i64>() {
        _ if a.tail == "all" => None,
        Ok(n) if n < 0 => None,
        Ok(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        Err(_) => bail!("invalid value for --tail: {}", a.tail),
    };
    let time = |v: &Option<String>, what: &str| {
        v.as_deref()
            .map(|s| berth_engine::timeparse::parse_time_arg(s, what, Utc::now()))
            .transpose()
    };
    // The docker CLI checks these itself: its words alone, and 1.
    let (since, until) = match (time(&a.since, "since"), time(&a.until, "until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(m), _) | (_, Err(m)) => {
            errln!("{m}");
            return Ok(1);
        }
    };
    let o = LogOptions {
        follow: a.follow,
        tail,
        since,
        until,
    };
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut failed = None;
    e.logs(&a.container, &o, |entry| {
        // --details: the entry's attributes (`key=value,…`) and a space
        // before the line, as Docker's.
        let details = if a.details {
            entry.details()
        } else {
            String::new()
        };
        let line = if a.timestamps {
            format!("{} {details}{}", entry.time, entry.log)
        } else {
            format!("{details}{}", entry.log)
        };
        let r = if entry.stream == "stderr" {
            err.write_all(line.as_bytes())
        } else {
            out.write_all(line.as_bytes()).and_then(|_| out.flush())
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(0),
    }
}

fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn ps_row(
    v: &ContainerView,
    ports: String,
    no_trunc: bool,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let created = parse_rfc3339(&v.created).unwrap_or(now);
    let status = v.status_text(now);
    let id = if no_trunc {
        v.id.to_string()
    } else {
        v.id.short().to_string()
    };
    serde_json::json!({
        "ID": id,
        "Image": v.image,
        "Command": command_column(&v.command_text(), !no_trunc),
        "CreatedAt": created.format("%Y-%m-%d %H:%M:%S %z UTC").to_string(),
        "RunningFor": ago(created, now),
        "Status": status,
        "State": v.status_word(),
        "Ports": ports,
        "Names": v.name,
        "Labels": v.config.labels.iter().map(|(k, val)| format!("{k}={val}")).collect::<Vec<_>>().join(","),
        "LocalVolumes": v.host_config.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
        "Mounts": v.host_config.mounts.iter().map(|m| {
            let name = if m.name.is_empty() { &m.source } else { &m.name };
            if no_trunc { name.clone() } else { ellipsis(name, 15) }
        }).collect::<Vec<_>>().join(","),
        "Networks": v.host_config.network_mode,
        // The image's platform (API 1.48): docker has none for images
        // without a manifest, as berth's.
        "Platform": null,
        // Until measured (`-s`, or a format that shows it): nothing.
        "Size": "0B",
    })
}

const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("State", "STATE"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Platform", "PLATFORM"),
    ("Size", "SIZE"),
];

/// Parses `--filter` arguments; a malformed one is the docker CLI's flag
/// error (exit 125, printed here).
pub(crate) fn parse_filters(args: &[String], extra_ref: Option<&str>) -> Result<Option<Filters>> {
    match Filters::parse(args) {
        Ok(mut f) => {
            if let Some(r) = extra_ref {
                f.add("reference", r);
            }
            Ok(Some(f))
        }
        Err(e) => bail!(CliError::Flag(format!(
            "invalid argument \"{}\" for \"-f, --filter\" flag: {e}",
            e.0
        ))),
    }
}

fn ps(e: &Engine, a: &PsArgs) -> Result<i32> {
    let Some(filters) = parse_filters(&a.filter, None)? else {
        return Ok(125);
    };
    let limit = if a.latest { Some(1) } else { a.last };
    let mut list = e.containers_filtered(&filters, a.all || limit.is_some())?;
    // Addresses, names and port rules of containers found gone are freed
    // (those just seen running need no second look).
    e.sweep_networks_but(&list);
    if let Some(n) = limit {
        list.truncate(n);
    }
    let now = Utc::now();
    if a.quiet {
        for v in &list {
            outln!(
                "{}",
                if a.no_trunc {
                    v.id.as_str()
                } else {
                    v.id.short()
                }
            )?;
        }
        return Ok(0);
    }
    let mut rows: Vec<serde_json::Value> = list
        .iter()
        .map(|v| {
            ps_row(
                v,
                berth_net::ports::display_ports(&e.container_ports(v)),
                a.no_trunc,
                now,
            )
        })
        .collect();
    // -s: "10B (virtual 1.99MB)", the writable layer and all of it. As
    // docker's, also measured when the format shows `.Size` (`{{json .}}`
    // does).
    if a.size || a.format.as_deref().is_some_and(format_shows_size) {
        for (row, v) in rows.iter_mut().zip(&list) {
            let (rw, all) = e.container_size(v)?;
            row["Size"] = format!("{} (virtual {})", human_size(rw), human_size(all)).into();
        }
    }
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let fmt = a.format.as_deref().unwrap_or(default);
    print_rows(fmt, &rows, PS_HEADERS)?;
    Ok(0)
}

/// Whether a `ps --format` template shows the size: it names `.Size` or
/// prints the whole row as JSON.
fn format_shows_size(fmt: &str) -> bool {
    let squeezed: String = fmt.split_whitespace().collect::<Vec<_>>().join(" ");
    squeezed.contains(".Size") || squeezed.contains("json .}}") || squeezed.contains("json . ")
}

pub(crate) fn print_rows(
    fmt: &str,
    rows: &[serde_json::Value],
    headers: &[(&str, &str)],
) -> Result<()> {
    let f = Format::parse(fmt).map_err(|e| anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    if f.is_table() {
        let s = f.render_rows(rows, headers).map_err(|e| anyhow!("{e}"))?;
        out.write_all(s.as_bytes())?;
    } else {
        for r in rows {
            let s = f.render_row(r).map_err(|e| anyhow!("{e}"))?;
            writeln!(out, "{s}")?;
        }
    }
    Ok(())
}

fn inspect(e: &Engine, a: &InspectArgs, kind: Option<&str>) -> Result<i32> {
    let kind = kind.or(a.kind.as_deref());
    let mut values = Vec::new();
    let mut strict = Vec::new();
    let mut typed = Vec::new();
    let mut code = 0;
    for o in &a.objects {
        let v = match kind {
            Some("container") => e.inspect_container_sized(o, a.size),
            Some("image") => e.inspect_image(o),
            Some("volume") => e
                .volume(o)
                .map(|v| serde_json::to_value(v).unwrap_or_default()),
            Some("network") => e.inspect_network(o),
            Some(k) => bail!(CliError::Bare {
                message: format!(
                    "unknown type: {k:?}: must be one of \"config\", \"container\", \"image\", \"network\", \"node\", \"plugin\", \"secret\", \"service\", \"task\", \"volume\""
                ),
                code: 1
            }),
            None => e
                .inspect_container_sized(o, a.size)
                .or_else(|_| e.inspect_image(o))
                .or_else(|_| {
                    e.volume(o)
                        .map(|v| serde_json::to_value(v).unwrap_or_default())
                        .or_else(|_| e.inspect_network(o))
                        .map_err(|_| EngineError::NoSuchContainer(o.clone()))
                }),
        };
        match v {
            Ok(v) => {
                // Volumes are no containers or images: docker reads them
                // through its typed struct only.
                let volume = kind == Some("volume")
                    || kind == Some("network")
                    || v.get("Mountpoint").is_some()
                    || v.get("IPAM").is_some();
                strict.push(!volume);
                let image = v.get("RootFS").is_some() && v.get("State").is_none();
                typed.push(if image {
                    Some(typed_image_view(&v))
                } else {
                    None
                });
                values.push(v)
            }
            Err(err) => {
                let msg = match (&err, kind) {
                    (EngineError::NoSuchContainer(_), None) => format!("No such object: {o}"),
                    // Docker's image lookup says it twice: as typed, then in full.
                    (EngineError::NoSuchImage(_), Some("image")) => {
                        format!("no such image: {o}: {err}")
                    }
                    _ => err.to_string(),
                };
                errln!("Error: {msg}");
                code = 1;
            }
        }
    }
    if !print_inspect(a.format.as_deref(), &values, &strict, &typed)? {
        code = 1;
    }
    Ok(code)
}

/// Prints what `inspect` found: JSON as docker's, or each object through
/// `--format`. `strict[i]` says object `i` is a container or an image, where
/// a field it does not have is an error (see `Template::execute_inspect`).
/// A template error is printed for its object, as docker's; the others are
/// printed still. False if there was one.
///
/// `typed[i]`, when there is one, is object `i` as the docker CLI's typed
/// struct holds it (see [`typed_image_view`]): the template runs on it
/// first and, if it fails there, on the JSON, as docker's does.
/// `volume inspect`, `network inspect`: each object `get` finds (an error
/// per one it does not, exit 1), printed as `inspect` prints.
pub(crate) fn inspect_each(
    names: &[String],
    format: Option<&str>,
    get: impl Fn(&str) -> Result<serde_json::Value>,
) -> Result<i32> {
    let mut values = Vec::new();
    let mut code = 0;
    for n in names {
        match get(n) {
            Ok(v) => values.push(v),
            Err(err) => {
                errln!("Error: {err}");
                code = 1;
            }
        }
    }
    if !print_inspect(format, &values, &[], &[])? {
        code = 1;
    }
    Ok(code)
}

pub(crate) fn print_inspect(
    format: Option<&str>,
    values: &[serde_json::Value],
    strict: &[bool],
    typed: &[Option<serde_json::Value>],
) -> Result<bool> {
    let Some(f) = format else {
        outln!("{}", json_indented(&values)?)?;
        return Ok(true);
    };
    let f = Format::parse(f).map_err(|e| anyhow!("{e}"))?;
    let mut ok = true;
    let mut printed = false;
    for (i, v) in values.iter().enumerate() {
        let out = if let Some(Some(t)) = typed.get(i) {
            f.render_inspect(t).or_else(|_| f.render_inspect(v))
        } else if strict.get(i).copied().unwrap_or(false) {
            f.render_inspect(v)
        } else {
            // A volume: docker's typed struct prints a nil map as `map[]`.
            f.render_inspect(v).or_else(|_| f.render(v))
        };
        match out {
            Ok(s) => {
                outln!("{s}")?;
                printed = true;
            }
            Err(e) => {
                errln!("template parsing error: {e}");
                ok = false;
            }
        }
    }
    if !printed && !ok {
        // Docker's CLI ends its empty output with a newline.
        outln!()?;
    }
    Ok(ok)
}

/// An image's inspect JSON as the docker (28) CLI decodes it into its typed
/// struct before running a `--format` template on it: `Config` is an OCI
/// image config (`User`, `ExposedPorts`, `Env`, `Entrypoint`, `Cmd`,
/// `Volumes`, `WorkingDir`, `Labels`, `StopSignal`, `ArgsEscaped`,
/// `Healthcheck`, `OnBuild`, `Shell`) whose empty fields are left out, so an
/// imported image's `{{json .Config}}` is `{}`; an empty `Container` is left
/// out too. A template that needs anything else fails on this view and runs
/// on the JSON itself (`{{.Config.Hostname}}`), as docker's falls back.
fn typed_image_view(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    const OCI_CONFIG: &[&str] = &[
        "User",
        "ExposedPorts",
        "Env",
        "Entrypoint",
        "Cmd",
        "Volumes",
        "WorkingDir",
        "Labels",
        "StopSignal",
        "ArgsEscaped",
        "Healthcheck",
        "OnBuild",
        "Shell",
    ];
    let empty = |x: &Value| match x {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        // A healthcheck is a pointer in docker's struct: kept when set.
        Value::Object(_) => false,
        Value::Number(_) => false,
    };
    let mut out = v.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    if obj.get("Container").is_some_and(empty) {
        obj.remove("Container");
    }
    if let Some(Value::Object(config)) = obj.get("Config") {
        let mut oci = serde_json::Map::new();
        for k in OCI_CONFIG {
            match config.get(*k) {
                Some(Value::Object(m)) if m.is_empty() && *k != "Healthcheck" => {}
                Some(x) if !empty(x) => {
                    oci.insert((*k).to_string(), x.clone());
                }
                _ => {}
            }
        }
        obj.insert("Config".to_string(), Value::Object(oci));
    }
    out
}

/// JSON as the docker CLI prints `inspect`: indented with 4 spaces.
fn json_indented(v: &impl serde::Serialize) -> Result<String> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// `port`: the published ports of a running container, as Docker lists
/// them; a port that is not published is Docker's error (exit 1).
fn port(e: &Engine, a: &crate::cli::PortArgs) -> Result<i32> {
    let v = e.container(&a.container)?;
    let ports = e.container_ports(&v);
    match berth_net::ports::port_lines(&ports, a.port.as_deref(), &a.container) {
        Ok(lines) => {
            for l in lines {
                outln!("{l}")?;
            }
            Ok(0)
        }
        Err(err) => {
            eprintln!("Error: {}", err.to_string().trim_start_matches("Error: "));
            Ok(1)
        }
    }
}

fn top(e: &Engine, a: &TopArgs) -> Result<i32> {
    let (headers, rows) = e.top(&a.container, &a.ps_args)?;
    let mut text = headers.join("\t");
    text.push('\n');
    for r in &rows {
        text.push_str(&r.join("\t"));
        text.push('\n');
    }
    // Docker's `top` aligns with a wider minimum than its other tables.
    out!("{}", table::TabWriter::DOCKER_TOP.format(&text))?;
    Ok(0)
}

fn import(e: &mut Engine, a: &ImportArgs) -> Result<i32> {
    if let Some(r) = &a.reference {
        client_reference(r)?;
    }
    let input: Box<dyn std::io::Read + Send> = if a.file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&a.file)
                .map_err(|err| open_error(std::path::Path::new(&a.file), &err))?,
        )
    };
    let platform = match a.platform.as_deref() {
        None | Some("") => None,
        Some(p) => Some(
            berth_types::Platform::parse(p)
                .map_err(|e| anyhow!(EngineError::InvalidArgument(e)))?,
        ),
    };
    let id = e.import_with_changes(
        input,
        a.reference.as_deref(),
        a.message.as_deref().unwrap_or(""),
        &a.change,
        platform.as_ref(),
    )?;
    outln!("{id}")?;
    Ok(0)
}

const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Digest", "DIGEST"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "SIZE"),
];

fn images(e: &Engine, a: &ImagesArgs) -> Result<i32> {
    if a.tree || a.format.as_deref() == Some("dot") {
        return crate::cmd_commit::image_graph(e, a);
    }
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut seen_ids = Vec::new();
    let Some(filters) = parse_filters(&a.filter, a.reference.as_deref())? else {
        return Ok(125);
    };
    for img in e.images_filtered(&filters, a.all)? {
        let created = parse_rfc3339(&img.created).unwrap_or(now);
        let id = if a.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_string()
        };
        let mut entries: Vec<(String, String)> = img
            .tags
            .iter()
            .map(|r| {
                (
                    r.familiar_repository(),
                    r.tag().unwrap_or("<none>").to_string(),
                )
            })
            .collect();
        // A repository the image was pulled by digest from but has no tag
        // in: a `<none>` row, as docker's.
        for rd in &img.repo_digests {
            if let Some((repo, _)) = rd.split_once('@') {
                if !entries.iter().any(|(r, _)| r == repo) {
                    entries.push((repo.to_string(), "<none>".into()));
                }
            }
        }
        if entries.is_empty() {
            entries.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in entries {
            // The digest of the repository's manifest, as docker's DIGEST.
            let digest = img
                .repo_digests
                .iter()
                .filter_map(|rd| rd.split_once('@'))
                .find(|(r, _)| *r == repo)
                .map_or("<none>", |(_, d)| d)
                .to_string();
            seen_ids.push(id.clone());
            rows.push(serde_json::json!({
                "Repository": repo,
                "Tag": tag,
                "ID": id,
                "CreatedSince": ago(created, now),
                "CreatedAt": created.format("%Y-%m-%d %H:%M:%S %z UTC").to_string(),
                "Size": human_size(img.size),
                "Digest": digest,
                // What only `system df` computes: "N/A" here, as docker's.
                "Containers": "N/A",
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
                // go-units' HumanSize: 4 significant digits.
                "VirtualSize": human_size_with_precision(img.size as f64, 4),
            }));
        }
    }
    if a.quiet {
        // One line per row, as docker's: an image with two tags twice.
        for id in seen_ids {
            outln!("{id}")?;
        }
        return Ok(0);
    }
    let fmt = a.format.as_deref().unwrap_or(if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    });
    print_rows(fmt, &rows, IMAGE_HEADERS)?;
    Ok(0)
}

fn rmi(e: &mut Engine, a: &RmiArgs) -> Result<i32> {
    let (mut failures, mut missing) = (0, 0);
    let code = each(&a.images, |i| {
        let removed = e.remove_image_opts(
            i,
            &berth_engine::RmiOptions {
                force: a.force,
                no_prune: a.no_prune,
            },
        );
        if let Err(err) = &removed {
            failures += 1;
            missing += usize::from(matches!(err, EngineError::NoSuchImage(_)));
        }
        for r in removed? {
            match r {
                RemovedImage::Untagged(t) => outln!("Untagged: {t}")?,
                RemovedImage::Deleted(d) => outln!("Deleted: {d}")?,
            }
        }
        Ok(())
    })?;
    Ok(forced_exit(a.force, code, failures, missing))
}

fn volume(e: &mut Engine, v: &VolumeCommand) -> Result<i32> {
    match v {
        VolumeCommand::Create(a) => {
            let mut labels = BTreeMap::new();
            for l in &a.label {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                labels.insert(k.to_string(), v.to_string());
            }
            let mut opts = BTreeMap::new();
            for o in &a.opt {
                let (k, v) = o.split_once('=').unwrap_or((o, ""));
                opts.insert(k.to_string(), v.to_string());
            }
            let vol = e.create_volume_opts(a.name.as_deref(), &a.driver, &labels, &opts)?;
            outln!("{}", vol.name)?;
            Ok(0)
        }
        VolumeCommand::Ls(a) => {
            let Some(f) = parse_filters(&a.filter, None)? else {
                return Ok(125);
            };
            let vols = e.volumes_filtered(&f)?;
            if a.quiet {
                for v in vols {
                    outln!("{}", v.name)?;
                }
                return Ok(0);
            }
            let rows: Vec<serde_json::Value> = vols
                .iter()
                .map(|v| {
                    let labels = v
                        .labels
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    // Docker's keys; what only cluster volumes or `system df`
                    // have is "N/A".
                    serde_json::json!({
                        "Availability": "N/A",
                        "Driver": v.driver,
                        "Group": "N/A",
                        "Labels": labels,
                        "Links": "N/A",
                        "Mountpoint": v.mountpoint,
                        "Name": v.name,
                        "Scope": v.scope,
                        "Size": "N/A",
                        "Status": "N/A",
                    })
                })
                .collect();
            let fmt = a
                .format
                .as_deref()
                .unwrap_or("table {{.Driver}}\t{{.Name}}");
            print_rows(
                fmt,
                &rows,
                &[
                    ("Driver", "DRIVER"),
                    ("Name", "VOLUME NAME"),
                    ("Mountpoint", "MOUNTPOINT"),
                    ("Scope", "SCOPE"),
                    ("Labels", "LABELS"),
                    ("Size", "SIZE"),
                    ("Links", "LINKS"),
                    ("Status", "STATUS"),
                    ("Group", "GROUP"),
                    ("Availability", "AVAILABILITY"),
                ],
            )?;
            Ok(0)
        }
        VolumeCommand::Inspect(a) => inspect_each(&a.volumes, a.format.as_deref(), |n| {
            Ok(serde_json::to_value(e.volume(n)?)?)
        }),
        // `-f`: a missing volume is no error, and is printed as removed.
        VolumeCommand::Rm(a) => each(&a.volumes, |n| {
            e.remove_volume(n, a.force)?;
            outln!("{n}")?;
            Ok(())
        }),
        VolumeCommand::Prune(a) => crate::cmd_fs::volume_prune(e, a.all, a.force),
    }
}
