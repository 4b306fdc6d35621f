//! `berth serve`: the Docker Engine API over berth's engine, so the docker
//! CLI, docker-py and Compose drive berth unchanged.
//!
//! The server holds no state of its own: each request opens the engine on
//! the store (SQLite and the containers' directories), as a CLI command
//! does, in a blocking thread; stop the server and containers run on. This
//! crate only translates HTTP to engine calls and engine results to
//! Docker's JSON: filters, status words, sizes and events are the engine's.
//!
//! The engine's fork-based operations (exec, cp, export) never run in this
//! multi-threaded process (see ARCHITECTURE.md).

mod attach;
mod cache;
mod containers;
mod create;
mod exec;
mod helper;
mod http;
mod images;
mod listen;
mod objects;
mod resources;
mod routes;
mod system;
mod transfer;
mod trim;

use std::path::PathBuf;

pub use listen::{Host, Tls};

/// The API version `/_ping` and `/version` advertise.
pub const API_VERSION: &str = berth_engine::API_VERSION;
/// The oldest version a client may ask for in a `/vX.Y/` prefix.
pub const MIN_API_VERSION: (u32, u32) = (1, 24);
/// The newest version a client may ask for.
pub const MAX_API_VERSION: (u32, u32) = (1, 47);

/// What `berth serve` was asked for.
#[derive(Clone, Debug)]
pub struct Config {
    pub engine: berth_engine::Options,
    pub hosts: Vec<Host>,
    /// The group owning unix sockets (created if missing).
    pub group: String,
    pub pidfile: Option<PathBuf>,
    /// TCP's mutual TLS (or its explicit absence).
    pub tls: Tls,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Listen(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// Serves until SIGTERM or SIGINT; `ready` is called with the addresses
/// once every listener accepts.
pub fn serve(config: Config, ready: impl FnOnce(&[String])) -> Result<(), ServeError> {
    // glibc gives each thread that allocates an arena of its own (up to 8
    // per core) and keeps what they held: a burst of requests over many
    // blocking threads would leave tens of MiB resident for good. Two
    // arenas, and memory handed back once the server is quiet (listen.rs).
    // SAFETY: mallopt only sets an allocator parameter; it is called
    // before any other thread of this process exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // One thread for the listeners and the connections: every engine call,
    // and the writing of a kept list, runs in a blocking thread, so what is
    // left for it is accepting, parsing, routing, kept inspects and relaying
    // streams. A second one cost more in wakeups (futexes) and moves between
    // cores than it gave, and the current-thread scheduler spends less per
    // request than a one-worker pool (no stealing, no handoff from the
    // accepting thread): 9.0 against 9.6 µs of server CPU per kept inspect.
    let rt = tokio::runtime::Builder::new_current_thread()
        // Waits, follows and attaches each hold one while their client is
        // there (an attached `docker run` holds two): threads are made on
        // demand and let go after 10 s idle.
        .max_blocking_threads(1024)
        // Idle blocking threads end soon, before the idle trim.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .thread_name("berth-serve")
        .enable_all()
        .build()
        .map_err(|e| ServeError::Io {
            context: "starting the server's runtime".into(),
            source: e,
        })?;
    rt.block_on(listen::run(config, ready))
}
