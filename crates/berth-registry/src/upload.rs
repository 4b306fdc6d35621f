//! The push half of the client: does the registry have a blob (HEAD),
//! mount it from another repository of the same registry, upload it (POST
//! to open an upload, then one PUT with `?digest=`), and PUT a manifest.
//! Every request asks for the `pull,push` scope and goes through the
//! client's auth and retry machinery; a body is reopened for each attempt.

use std::io::{self, Read};

use berth_types::Digest;
use ureq::http::{Response, StatusCode};
use ureq::Body;

use crate::client::{BodyOpener, Client, Method};
use crate::endpoint::Endpoint;
use crate::RegistryError;

/// Answers to a monolithic PUT that mean "not this way": 400, 405, 413
/// (too large for one request), 415, 416.
const CHUNKED_PLEASE: &[u16] = &[400, 405, 413, 415, 416];

/// What a mount request did.
#[derive(Debug, PartialEq, Eq)]
pub enum Mount {
    /// The registry linked the blob into the repository (201).
    Mounted,
    /// It did not; an upload was opened instead, at this URL (202).
    Upload(String),
}

impl Endpoint {
    /// The token scope a push asks for.
    pub fn push_scope(&self) -> String {
        format!("repository:{}:pull,push", self.repository)
    }
}

/// A `Location` header as an absolute URL (registries may answer with a
/// path).
fn absolute(ep: &Endpoint, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{}://{}{location}", ep.scheme.as_str(), ep.host)
    }
}

fn location(ep: &Endpoint, resp: &Response<Body>) -> Result<String, RegistryError> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| absolute(ep, l))
        .ok_or_else(|| {
            RegistryError::Protocol("the registry opened an upload without a Location".into())
        })
}

impl Client {
    /// Whether the repository of `ep` has blob `digest` (HEAD, push scope).
    pub fn blob_exists(&self, ep: &Endpoint, digest: &Digest) -> Result<bool, RegistryError> {
        let url = ep.url(&format!("blobs/{digest}"));
        let resp = self.send_with(ep, Method::Head, &url, &[], &ep.push_scope(), None)?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.push_error(ep, resp)),
        }
    }

    /// Asks the registry to mount `digest` from its repository `from`
    /// into `ep`'s repository.
    pub fn mount_blob(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        from: &str,
    ) -> Result<Mount, RegistryError> {
        let url = ep.url(&format!("blobs/uploads/?mount={digest}&from={from}"));
        // A token must also allow pulling from the source repository.
        let scope = format!("{} repository:{from}:pull", ep.push_scope());
        let resp = self.send_with(ep, Method::Post, &url, &[], &scope, None)?;
        match resp.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(location(ep, &resp)?)),
            _ => Err(self.push_error(ep, resp)),
        }
    }

    /// Opens an upload in `ep`'s repository; its URL.
    pub fn start_upload(&self, ep: &Endpoint) -> Result<String, RegistryError> {
        let url = ep.url("blobs/uploads/");
        let resp = self.send_with(ep, Method::Post, &url, &[], &ep.push_scope(), None)?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::CREATED => location(ep, &resp),
            _ => Err(self.push_error(ep, resp)),
        }
    }

    /// Sends the whole blob `digest` (`size` bytes, read from what `open`
    /// returns) to the upload at `upload` in one PUT; the registry checks
    /// the digest. If it refuses the monolithic form, chunked.
    pub fn finish_upload(
        &self,
        ep: &Endpoint,
        upload: &str,
        digest: &Digest,
        size: u64,
        open: BodyOpener<'_>,
    ) -> Result<(), RegistryError> {
        let sep = if upload.contains('?') { '&' } else { '?' };
        let url = format!("{upload}{sep}digest={digest}");
        let len = size.to_string();
        let headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", len.as_str()),
        ];
        let resp = self.send_with(
            ep,
            Method::Put,
            &url,
            &headers,
            &ep.push_scope(),
            Some(open),
        )?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // A registry that does not take the monolithic form: the blob goes
        // up again chunked, in a new upload (this one is spent).
        if CHUNKED_PLEASE.contains(&status.as_u16()) {
            drop(resp);
            let fresh = self.start_upload(ep)?;
            return self.chunked_upload(ep, &fresh, digest, size, open);
        }
        Err(self.push_error(ep, resp))
    }

    /// Sends blob `digest` to the upload at `upload` as one chunk (PATCH
    /// with its Content-Range), then closes the upload with an empty PUT
    /// `?digest=`: the chunked form, for registries that refuse a
    /// monolithic PUT.
    pub fn chunked_upload(
        &self,
        ep: &Endpoint,
        upload: &str,
        digest: &Digest,
        size: u64,
        open: BodyOpener<'_>,
    ) -> Result<(), RegistryError> {
        let len = size.to_string();
        let range = format!("0-{}", size.saturating_sub(1));
        let headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", len.as_str()),
            ("Content-Range", range.as_str()),
        ];
        let resp = self.send_with(
            ep,
            Method::Patch,
            upload,
            &headers,
            &ep.push_scope(),
            Some(open),
        )?;
        if !resp.status().is_success() {
            return Err(self.push_error(ep, resp));
        }
        let next = location(ep, &resp).unwrap_or_else(|_| upload.to_string());
        let sep = if next.contains('?') { '&' } else { '?' };
        let url = format!("{next}{sep}digest={digest}");
        let empty = || -> io::Result<Box<dyn Read>> { Ok(Box::new(io::empty())) };
        let resp = self.send_with(
            ep,
            Method::Put,
            &url,
            &[("Content-Length", "0")],
            &ep.push_scope(),
            Some(&empty),
        )?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.push_error(ep, resp))
    }

    /// Uploads blob `digest` into `ep`'s repository.
    pub fn upload_blob(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        size: u64,
        open: BodyOpener<'_>,
    ) -> Result<(), RegistryError> {
        let upload = self.start_upload(ep)?;
        self.finish_upload(ep, &upload, digest, size, open)
    }

    /// PUTs `bytes`, a manifest of `media_type`, under `reference` (a
    /// tag); the digest the registry answers with, checked against ours.
    pub fn put_manifest(
        &self,
        ep: &Endpoint,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = ep.url(&format!("manifests/{reference}"));
        let owned = bytes.to_vec();
        let open =
            move || -> io::Result<Box<dyn Read>> { Ok(Box::new(io::Cursor::new(owned.clone()))) };
        let len = bytes.len().to_string();
        let headers = [
            ("Content-Type", media_type),
            ("Content-Length", len.as_str()),
        ];
        let resp = self.send_with(
            ep,
            Method::Put,
            &url,
            &headers,
            &ep.push_scope(),
            Some(&open),
        )?;
        if !resp.status().is_success() {
            return Err(self.push_error(ep, resp));
        }
        let ours = Digest::of_bytes(bytes);
        if let Some(theirs) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if theirs.starts_with("sha256:") && theirs != ours.as_str() {
                return Err(RegistryError::Protocol(format!(
                    "the registry stored the manifest as {theirs}, not {ours}"
                )));
            }
        }
        Ok(ours)
    }

    /// A push's failure in Docker's words: a Basic challenge berth had
    /// no credentials for is `no basic auth credentials`; another 401 the
    /// registry's own message, else `unauthorized: authentication
    /// required`.
    fn push_error(&self, ep: &Endpoint, resp: Response<Body>) -> RegistryError {
        let status = resp.status();
        let basic = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("basic"));
        let authorized = self
            .authorized
            .lock()
            .ok()
            .is_some_and(|m| m.contains_key(&ep.push_scope()));
        if status == StatusCode::UNAUTHORIZED && basic && !authorized {
            return RegistryError::Unauthorized("no basic auth credentials".into());
        }
        match self.status_error(ep, None, resp) {
            RegistryError::Unauthorized(m) => {
                let detail = m
                    .split_once("'docker login': ")
                    .map(|(_, d)| d.to_string())
                    .unwrap_or(m);
                if detail.starts_with("401") {
                    RegistryError::Unauthorized("unauthorized: authentication required".into())
                } else {
                    RegistryError::Unauthorized(detail)
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_types::Reference;

    #[test]
    fn relative_locations_are_made_absolute() {
        let ep = Endpoint::of(&Reference::parse("127.0.0.1:5000/a").unwrap());
        assert_eq!(
            absolute(&ep, "/v2/a/blobs/uploads/u?_state=x"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=x"
        );
        assert_eq!(absolute(&ep, "http://h/x"), "http://h/x");
        assert_eq!(ep.push_scope(), "repository:a:pull,push");
    }
}
