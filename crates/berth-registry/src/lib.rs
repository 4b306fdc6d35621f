//! berth's registry client (issue 9): the OCI distribution spec / Docker
//! Registry HTTP API v2, its auth, and Docker's credential store.
//!
//! Owns: where a reference's registry is (`docker.io` → the
//! `registry-1.docker.io` endpoint, `library/` for official images; https,
//! plain http only for loopback or insecure registries), HTTP requests to
//! it (manifests, blobs with ranges, uploads, mounts), manifest and index
//! types and the platform choice, the WWW-Authenticate challenge flow
//! (Basic, Bearer tokens cached per scope), and `~/.docker/config.json`
//! (`auths`, `credsStore`, `credHelpers`).
//!
//! Never: touches the image store. The engine streams what this crate
//! fetches into its blob store and layer directories, and hands it what to
//! upload.
//!
//! Seams: [`Auth`] is how a request gets its `Authorization` header after a
//! 401: the client asks it with the challenge and the scope, so the client
//! and the credential/token logic are separate modules.

pub mod auth;
pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod manifest;
pub mod search;
pub mod settings;
pub mod upload;

pub use client::{BlobReader, BodyOpener, Client, Fetched, RetryPolicy};
pub use endpoint::{Endpoint, Scheme};
pub use manifest::{Descriptor, ImageManifest, Index, Manifest};
pub use settings::{NetworkSettings, Settings, SettingsError};
pub use upload::Mount;

/// What the client asks of whoever holds credentials and tokens.
pub trait Auth: Send + Sync {
    /// The `Authorization` header value to retry a request with, given the
    /// `WWW-Authenticate` challenge of its 401 and the scope the request
    /// needs (`repository:library/busybox:pull`); None: no way to
    /// authorize (the 401 stands).
    fn authorize(
        &self,
        registry: &str,
        challenge: &str,
        scope: &str,
    ) -> Result<Option<String>, RegistryError>;
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 401 with nothing that authorizes: Docker's hint to log in.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Protocol(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Docker's config file or a credential helper failed.
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
}
