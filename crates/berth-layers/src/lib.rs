//! berth-layers owns berth's content on disk: the content-addressed blob store
//! (`blobs/sha256/<hex>`), the unpacked layer directories under the layers root,
//! and the way from one to the other (sniffing gzip/zstd, applying a layer tar with
//! Docker's whiteout conventions, computing its diff_id on the fly).
//!
//! It never resolves a path from a layer through the host: the destination is opened
//! once as a directory fd, every parent directory is resolved inside it with
//! `openat2(RESOLVE_IN_ROOT)` (or an equivalent user-space walk that never lets the
//! kernel follow a symlink), and every entry is created with `*at` syscalls relative to
//! that parent, never following a symlink in its last component. It never holds a whole
//! file or layer in memory ([`BlobStore::read`] is meant for manifests and configs), and
//! it knows nothing of images, the database, containers or the network.
//!
//! Invariants: a file at `blobs/sha256/<hex>` hashes to `<hex>` (streamed into a temp
//! file, fsynced, verified, renamed); an imported layer directory is complete or absent
//! (unpacked into `tmp-*`, renamed on success, removed on any error); a layer entry that
//! would land outside its root (`..`, hard links out of the layer, writes through a symlink)
//! refuses the whole layer or is contained inside the root; crash leftovers are named
//! `tmp-<pid>-<random>` and [`collect_garbage`] removes them once their process is gone.

mod apply;
mod blobs;
mod compress;
mod fsutil;
mod resolve;
pub mod tarwriter;

#[cfg(test)]
mod tests;

use std::io;

use berth_types::Digest;

pub use apply::{apply_layer, ApplyOptions, LayerStats, WhiteoutMode};
pub use blobs::BlobStore;
pub use compress::{decompress, Compression, GzipEncoder};
pub use fsutil::{
    collect_garbage, commit_temp, create_temp_dir, dir_size, remove_layer_dir, unpack_to_temp,
};

/// Everything that can go wrong in the content store or while applying a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A filesystem operation on a host path (the store, a layer directory) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("blob {expected} does not match its digest: its content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("no such blob: {0}")]
    BlobNotFound(Digest),
    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    BlobCorrupt { digest: Digest, actual: Digest },
    /// The (decompressed) layer stream could not be read or is not a valid tar archive.
    #[error("cannot read the layer tar stream: {0}")]
    Archive(#[source] io::Error),
    #[error("layer entry {path:?} escapes the layer root")]
    Escape { path: String },
    #[error("hard link {path:?} points to {target:?}, which escapes the layer root")]
    LinkEscape { path: String, target: String },
    #[error("hard link {path:?} points to {target:?}, which is not an earlier entry of the layer")]
    LinkTargetMissing { path: String, target: String },
    #[error("layer entry {path:?} is a device node, which this import does not allow")]
    DeviceNotAllowed { path: String },
    #[error("layer entry {path:?} has the unsupported tar entry type {kind:?}")]
    UnsupportedEntry { path: String, kind: char },
    #[error("layer entry {path:?} is invalid: {reason}")]
    InvalidEntry { path: String, reason: &'static str },
    /// The entry would replace a directory with a non-directory
    /// (`existing_dir`) or a non-directory with a directory, which the
    /// apply was told not to do.
    #[error("cannot overwrite {} {path:?} with {}", if *.existing_dir { "directory" } else { "non-directory" }, if *.existing_dir { "non-directory" } else { "directory" })]
    KindConflict { path: String, existing_dir: bool },
    /// Creating an entry or applying its metadata inside the layer root failed.
    #[error("cannot {op} layer entry {path:?}: {source}")]
    Entry {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(context: impl Into<String>, source: impl Into<io::Error>) -> LayerError {
    LayerError::Io {
        context: context.into(),
        source: source.into(),
    }
}
