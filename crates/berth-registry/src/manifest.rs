//! Manifests and indexes as registries serve them: Docker schema 2
//! manifests and manifest lists, OCI manifests and indexes, and the
//! platform choice Docker makes in a list.

use berth_types::{Digest, Platform};
use serde::{Deserialize, Serialize};

use crate::RegistryError;

pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const MT_DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Layer media types berth pulls (the blob's compression is sniffed from
/// its bytes, as Docker does).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
];

/// Layers that are not to be fetched from the registry (Windows base
/// layers): berth refuses them.
const FOREIGN_TYPES: &[&str] = &[
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// What the manifest endpoint's Accept header offers, most preferred first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct DescPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescPlatform>,
}

impl Descriptor {
    /// The descriptor's digest, checked.
    pub fn digest(&self) -> Result<Digest, RegistryError> {
        Digest::parse(&self.digest).map_err(|_| {
            RegistryError::Protocol(format!("invalid digest {:?} in manifest", self.digest))
        })
    }
    /// The size, which must not be negative.
    pub fn size(&self) -> Result<u64, RegistryError> {
        u64::try_from(self.size).map_err(|_| {
            RegistryError::Protocol(format!("invalid size {} of {}", self.size, self.digest))
        })
    }
}

/// An image manifest (Docker schema 2 or OCI).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: String,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// A manifest list or OCI index.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: String,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Clone, Debug)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses `bytes`, served with `content_type`, as a manifest or an
    /// index. Schema 1 is refused with Docker's words.
    pub fn parse(bytes: &[u8], content_type: &str) -> Result<Manifest, RegistryError> {
        let invalid =
            |e: serde_json::Error| RegistryError::Protocol(format!("invalid manifest: {e}"));
        let probe: Probe = serde_json::from_slice(bytes).map_err(invalid)?;
        let ct = content_type.split(';').next().unwrap_or("").trim();
        let mt = if probe.media_type.is_empty() {
            ct
        } else {
            probe.media_type.as_str()
        };
        if mt == MT_DOCKER_SCHEMA1
            || mt == MT_DOCKER_SCHEMA1_SIGNED
            || (probe.schema_version == Some(1) && probe.config.is_none())
        {
            return Err(RegistryError::Protocol(
                "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of the image to upgrade the image to image manifest version 2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/".into(),
            ));
        }
        let is_index = mt == MT_DOCKER_LIST
            || mt == MT_OCI_INDEX
            || (mt.is_empty() && probe.manifests.is_some() && probe.config.is_none());
        if is_index {
            let i: Index = serde_json::from_slice(bytes).map_err(invalid)?;
            return Ok(Manifest::Index(i));
        }
        if mt == MT_DOCKER_MANIFEST || mt == MT_OCI_MANIFEST || probe.config.is_some() {
            let m: ImageManifest = serde_json::from_slice(bytes).map_err(invalid)?;
            return Ok(Manifest::Image(m));
        }
        Err(RegistryError::Protocol(format!(
            "unsupported manifest media type {mt:?}"
        )))
    }
}

impl ImageManifest {
    /// Every layer is one berth can fetch and unpack: what a pull asks of
    /// the manifest it pulls (an index may name others — attestations,
    /// Windows images — that `manifest inspect` still shows).
    pub fn check(&self) -> Result<(), RegistryError> {
        for l in &self.layers {
            if FOREIGN_TYPES.contains(&l.media_type.as_str()) || l.urls.is_some() {
                return Err(RegistryError::Protocol(format!(
                    "layer {} is a foreign (non-distributable) layer ({}), which berth does not pull",
                    l.digest, l.media_type
                )));
            }
            if !LAYER_TYPES.contains(&l.media_type.as_str()) {
                return Err(RegistryError::Protocol(format!(
                    "layer {} has the unsupported media type {:?}",
                    l.digest, l.media_type
                )));
            }
            l.digest()?;
            l.size()?;
        }
        self.config.digest()?;
        self.config.size()?;
        Ok(())
    }
}

/// containerd's normalised variant for an architecture: arm64 is `v8`,
/// arm `v7`, amd64 `v1` when none is named.
fn norm_variant(arch: &str, variant: &str) -> String {
    match (arch, variant) {
        ("arm64", "") => "v8".into(),
        ("arm", "") => "v7".into(),
        ("amd64", "") => "v1".into(),
        (_, v) => v.to_ascii_lowercase(),
    }
}

/// How well a manifest of platform `have` serves `want`: None if it does
/// not, else a rank (0 best) as containerd orders them: the variant asked
/// for, then older arm variants a newer CPU runs.
fn rank(have: &DescPlatform, want: &Platform) -> Option<usize> {
    if !have.os.eq_ignore_ascii_case(&want.os) {
        return None;
    }
    let arch = match have.architecture.as_str() {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    if arch != want.architecture {
        return None;
    }
    let hv = norm_variant(arch, &have.variant);
    let wv = norm_variant(arch, &want.variant);
    if hv == wv {
        return Some(0);
    }
    if arch == "arm" {
        // A v7 CPU runs v6 and v5 images, in that order of preference.
        let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<usize>().ok());
        if let (Some(h), Some(w)) = (level(&hv), level(&wv)) {
            if h < w {
                return Some(w - h);
            }
        }
    }
    None
}

/// The manifest of `index` for `want`: the best match, the first of equals
/// (Docker's choice).
pub fn choose<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    index
        .manifests
        .iter()
        .filter_map(|d| {
            let p = d.platform.as_ref()?;
            rank(p, want).map(|r| (r, d))
        })
        .min_by_key(|(r, _)| *r)
        .map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plat(os: &str, arch: &str, variant: &str) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.into(),
        }
    }

    fn index(entries: &[(&str, &str, &str)]) -> Index {
        let manifests = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, v))| Descriptor {
                media_type: MT_OCI_MANIFEST.into(),
                digest: format!("sha256:{:064x}", i),
                size: 1,
                urls: None,
                platform: Some(DescPlatform {
                    os: (*os).into(),
                    architecture: (*arch).into(),
                    variant: (*v).into(),
                }),
            })
            .collect();
        Index {
            media_type: MT_OCI_INDEX.into(),
            manifests,
        }
    }

    fn chosen(i: &Index, want: &Platform) -> Option<usize> {
        let d = choose(i, want)?;
        i.manifests.iter().position(|m| m.digest == d.digest)
    }

    #[test]
    fn platform_choice_as_docker() {
        let i = index(&[
            ("linux", "amd64", ""),
            ("linux", "arm", "v5"),
            ("linux", "arm", "v6"),
            ("linux", "arm", "v7"),
            ("linux", "arm64", "v8"),
            ("windows", "amd64", ""),
        ]);
        assert_eq!(chosen(&i, &plat("linux", "amd64", "")), Some(0));
        assert_eq!(chosen(&i, &plat("linux", "arm64", "")), Some(4));
        assert_eq!(chosen(&i, &plat("linux", "arm", "")), Some(3));
        assert_eq!(chosen(&i, &plat("linux", "arm", "v6")), Some(2));
        assert_eq!(chosen(&i, &plat("windows", "amd64", "")), Some(5));
        assert_eq!(chosen(&i, &plat("linux", "s390x", "")), None);
        // an arm v7 host takes v6 when there is no v7
        let j = index(&[("linux", "arm", "v5"), ("linux", "arm", "v6")]);
        assert_eq!(chosen(&j, &plat("linux", "arm", "v7")), Some(1));
        // arm64 without a variant is v8
        let k = index(&[("linux", "arm64", "")]);
        assert_eq!(chosen(&k, &plat("linux", "arm64", "v8")), Some(0));
        // no platform: never chosen
        let mut n = index(&[("linux", "amd64", "")]);
        n.manifests[0].platform = None;
        assert_eq!(chosen(&n, &plat("linux", "amd64", "")), None);
    }

    #[test]
    fn parse_kinds() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":3}]}"#;
        assert!(matches!(Manifest::parse(m, ""), Ok(Manifest::Image(x)) if x.layers.len() == 1));
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            Manifest::parse(i, MT_OCI_INDEX),
            Ok(Manifest::Index(_))
        ));
        let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = Manifest::parse(s1, MT_DOCKER_SCHEMA1_SIGNED).unwrap_err();
        assert!(e.to_string().contains("schema 1 support has been removed"));
        assert!(Manifest::parse(b"{not json", "").is_err());
        let foreign = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":3,"urls":["https://example.invalid/x"]}]}"#;
        let pullable = |b: &[u8], mt: &str| match Manifest::parse(b, mt)? {
            Manifest::Image(m) => m.check(),
            Manifest::Index(_) => Ok(()),
        };
        let e = pullable(foreign, MT_DOCKER_MANIFEST).unwrap_err();
        assert!(e.to_string().contains("foreign"), "{e}");
        let neg = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":-1},"layers":[]}"#;
        assert!(pullable(neg, MT_OCI_MANIFEST).is_err());
        // An attestation parses (for `manifest inspect`) but is not pullable.
        let attestation = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[{"mediaType":"application/vnd.in-toto+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":3}]}"#;
        assert!(matches!(
            Manifest::parse(attestation, MT_OCI_MANIFEST),
            Ok(Manifest::Image(_))
        ));
        assert!(pullable(attestation, MT_OCI_MANIFEST).is_err());
    }
}
