//! berth's vocabulary, shared by every other crate.
//!
//! Owns: content digests, image and container IDs, image references with
//! Docker's normalisation (`busybox` = `docker.io/library/busybox:latest`),
//! the image configuration (Docker's superset of the OCI one) and the
//! container configuration a `create` records.
//!
//! Never: does I/O. Every type here is plain data that validates itself on
//! construction, so a `Digest` or a `Reference` in hand is known good.

mod container;
mod digest;
pub mod duration;
pub mod human;
mod image;
mod network;
mod platform;
mod reference;

pub use container::*;
pub use digest::{ContainerId, Digest, DigestError};
pub use image::*;
pub use network::*;
pub use platform::Platform;
pub use reference::{Reference, ReferenceError};
