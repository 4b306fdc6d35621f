//! berth's runtime: turns a [`ContainerSpec`] into an isolated process.
//!
//! Owns: the container's init sequence (clone into new pid, mount, uts, ipc,
//! cgroup and network namespaces; overlay rootfs; /proc, /sys, /dev; masked
//! and read-only paths; pivot_root; hostname; capabilities; seccomp; user;
//! exec), entering a running container for `exec`, and cgroup management on
//! both the v1/hybrid and the unified v2 layouts.
//!
//! Never: is called from a multi-threaded process (it forks and then runs
//! ordinary Rust in the child), touches the database, or formats output.
//!
//! Invariants: every mount a container makes lives in its own mount
//! namespace, so a killed container leaves no mount behind on the host; the
//! seccomp filter is loaded while CAP_SYS_ADMIN is still held (or, with
//! no_new_privs, last before the exec), and the capability drop and user
//! switch that follow are allowed by the profile; a container's init only
//! loads a filter the engine compiled.

pub mod caps;
pub mod cgroups;
pub mod devices;
pub mod events;
pub mod health;
mod init;
pub mod monitor;
pub mod process;
pub mod seccomp;
pub mod spec;
mod sys;
pub mod trace;

pub use spec::*;
