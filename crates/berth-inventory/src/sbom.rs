//! SBOM documents from a composed inventory (issue 12): SPDX 2.3 JSON, CycloneDX
//! 1.5 JSON, berth's own JSON and table rows. Pure functions of their arguments:
//! the same subject, layers, packages, time and tool version give the same bytes.
//!
//! - SPDX: `documentNamespace` is `https://berth.invalid/spdx/KIND/NAME-HASH`,
//!   HASH the SHA-256 of the document without its namespace, so it is unique to
//!   the content (a scan at another time or of another image gets another one)
//!   yet reproducible. `berth.invalid` is a reserved name that never resolves:
//!   berth publishes no documents, and the namespace only names this one.
//! - CycloneDX: `serialNumber` is a UUID made the same way (version 8, RFC 9562's
//!   custom version, from the first 16 bytes of that SHA-256), not a random one.
//! - Licences: each recorded licence is mapped to an SPDX expression of listed
//!   identifiers (see `license`), or to a `LicenseRef-` whose recorded text the
//!   SPDX document carries in `hasExtractedLicensingInfos`. A package's recorded
//!   licences are joined with `AND` as `licenseDeclared`; `licenseConcluded` is
//!   always `NOASSERTION` (berth reads metadata, it concludes nothing). CycloneDX
//!   gets `license.id` for a listed identifier, `license.name` (the recorded
//!   text) otherwise, or one `expression` when every licence maps and one is
//!   compound.
//! - Layer attribution: a package's `layer` indexes the `layers` given; an index
//!   out of range is rendered as no layer, never a panic.

mod license;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::{Ecosystem, Package};
use license::{to_spdx, LicenseRefs};

/// What an SBOM describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The name the user gave (`bb:latest`, a container's name).
    pub name: String,
    /// The image ID (`sha256:...`) or the container ID.
    pub id: String,
    pub kind: SubjectKind,
}

/// An image or a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Image,
    Container,
}

impl SubjectKind {
    /// `image` or `container`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Image => "image",
            SubjectKind::Container => "container",
        }
    }
}

/// One layer of the subject, bottom first, as `Package::layer` indexes them (a
/// container's upper dir is the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer's diff ID (`sha256:...`).
    pub digest: String,
    /// The history step that made it (`RUN apt-get install ...`), when known.
    pub created_by: Option<String>,
}

/// The columns of [`table`]'s rows.
pub const TABLE_HEADER: [&str; 5] = ["NAME", "VERSION", "TYPE", "LICENSE", "LAYER"];

fn layer_of<'a>(p: &Package, layers: &'a [Layer]) -> Option<&'a Layer> {
    p.layer.and_then(|i| layers.get(i))
}

/// `sha256:0123456789abcdef...` → `0123456789ab`, as `docker images` shortens IDs.
fn short_digest(d: &str) -> String {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Rows of NAME, VERSION, TYPE (the ecosystem), LICENSE (the recorded licences,
/// `, `-joined) and LAYER (the short diff ID, `-` when not known), sorted by
/// name, version and type, as `syft`'s table lists them.
pub fn table(packages: &[Package], layers: &[Layer]) -> Vec<[String; 5]> {
    let mut rows: Vec<[String; 5]> = packages
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.version.clone(),
                p.ecosystem.as_str().to_string(),
                p.licenses.join(", "),
                layer_of(p, layers).map_or_else(|| "-".to_string(), |l| short_digest(&l.digest)),
            ]
        })
        .collect();
    rows.sort();
    rows
}

fn subject_json(subject: &Subject) -> Value {
    json!({"name": subject.name, "id": subject.id, "kind": subject.kind.as_str()})
}

/// berth's own document: `{subject, layers: [{index, digest, created_by}],
/// packages: [Package's fields, plus layer_digest and layer_created_by]}`.
pub fn json(subject: &Subject, layers: &[Layer], packages: &[Package]) -> Value {
    let layers_json: Vec<Value> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| json!({"index": i, "digest": l.digest, "created_by": l.created_by}))
        .collect();
    let pkgs: Vec<Value> = packages
        .iter()
        .map(|p| {
            let l = layer_of(p, layers);
            json!({
                "ecosystem": p.ecosystem,
                "name": p.name,
                "version": p.version,
                "source": p.source,
                "source_version": p.source_version,
                "licenses": p.licenses,
                "purl": p.purl,
                "layer": p.layer,
                "layer_digest": l.map(|l| &l.digest),
                "layer_created_by": l.and_then(|l| l.created_by.as_ref()),
                "found_in": p.found_in,
            })
        })
        .collect();
    json!({"subject": subject_json(subject), "layers": layers_json, "packages": pkgs})
}

fn sha256_hex(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// Characters of an SPDX `idstring` (`[A-Za-z0-9.-]`); others become `-`.
fn idstring(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `s` made unique among `taken` with `-2`, `-3`, ..., and recorded there.
fn unique(s: String, taken: &mut std::collections::HashSet<String>) -> String {
    let mut id = s.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{s}-{n}");
        n += 1;
    }
    taken.insert(id.clone());
    id
}

/// A package's recorded licences as one SPDX expression (`AND` of each, each
/// mapped or a `LicenseRef-`), or `NOASSERTION` when none is recorded.
fn spdx_declared(p: &Package, refs: &mut LicenseRefs) -> String {
    // (as an operand of AND, alone)
    let mut parts: Vec<(String, String)> = Vec::new();
    for raw in &p.licenses {
        let part = match to_spdx(raw) {
            Some(m) => (m.and_operand(), m.expr),
            None => {
                let r = refs.get(raw);
                (r.clone(), r)
            }
        };
        if !parts.iter().any(|(o, _)| *o == part.0) {
            parts.push(part);
        }
    }
    match parts.as_slice() {
        [] => "NOASSERTION".to_string(),
        [(_, alone)] => alone.clone(),
        _ => parts
            .iter()
            .map(|(o, _)| o.as_str())
            .collect::<Vec<_>>()
            .join(" AND "),
    }
}

fn found_text(p: &Package, layers: &[Layer]) -> String {
    match (p.layer, layer_of(p, layers)) {
        (Some(i), Some(l)) => format!("found in /{} in layer {i} ({})", p.found_in, l.digest),
        _ => format!("found in /{}", p.found_in),
    }
}

/// An SPDX 2.3 JSON document. `created` must be SPDX's form, UTC to the second:
/// `YYYY-MM-DDThh:mm:ssZ`; `tool_version` is berth's version (`Tool:
/// berth-VERSION`). The subject is a package the document DESCRIBES, which
/// CONTAINS each package.
pub fn spdx_json(
    subject: &Subject,
    layers: &[Layer],
    packages: &[Package],
    created: &str,
    tool_version: &str,
) -> Value {
    let mut taken = std::collections::HashSet::new();
    taken.insert("SPDXRef-DOCUMENT".to_string());
    let root_id = unique(
        format!("SPDXRef-{}", idstring(subject.kind.as_str())),
        &mut taken,
    );
    let mut refs = LicenseRefs::default();
    let mut pkgs = vec![json!({
        "name": subject.name,
        "SPDXID": root_id,
        "versionInfo": subject.id,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "comment": format!("{} {}", subject.kind.as_str(), subject.id),
    })];
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": root_id,
    })];
    for p in packages {
        let id = unique(
            format!(
                "SPDXRef-Package-{}-{}-{}",
                p.ecosystem.as_str(),
                idstring(&p.name),
                idstring(&p.version)
            )
            .trim_end_matches('-')
            .to_string(),
            &mut taken,
        );
        let mut o = Map::new();
        o.insert("name".into(), json!(p.name));
        o.insert("SPDXID".into(), json!(id));
        if !p.version.is_empty() {
            o.insert("versionInfo".into(), json!(p.version));
        }
        o.insert("downloadLocation".into(), json!("NOASSERTION"));
        o.insert("filesAnalyzed".into(), json!(false));
        o.insert("licenseConcluded".into(), json!("NOASSERTION"));
        o.insert("licenseDeclared".into(), json!(spdx_declared(p, &mut refs)));
        o.insert("copyrightText".into(), json!("NOASSERTION"));
        o.insert("sourceInfo".into(), json!(found_text(p, layers)));
        if !p.purl.is_empty() {
            o.insert(
                "externalRefs".into(),
                json!([{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": p.purl,
                }]),
            );
        }
        pkgs.push(Value::Object(o));
        rels.push(json!({
            "spdxElementId": root_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let mut doc = Map::new();
    doc.insert("spdxVersion".into(), json!("SPDX-2.3"));
    doc.insert("dataLicense".into(), json!("CC0-1.0"));
    doc.insert("SPDXID".into(), json!("SPDXRef-DOCUMENT"));
    doc.insert(
        "name".into(),
        json!(format!("{} {}", subject.kind.as_str(), subject.name)),
    );
    doc.insert(
        "creationInfo".into(),
        json!({"created": created, "creators": [format!("Tool: berth-{tool_version}")]}),
    );
    doc.insert("documentDescribes".into(), json!([root_id]));
    doc.insert("packages".into(), Value::Array(pkgs));
    if !refs.refs.is_empty() {
        let infos: Vec<Value> = refs
            .refs
            .iter()
            .map(|(raw, id)| {
                json!({
                    "licenseId": id,
                    "name": raw,
                    "extractedText": raw,
                    "comment": "the licence as a package's metadata records it; berth has not collected its text",
                })
            })
            .collect();
        doc.insert("hasExtractedLicensingInfos".into(), Value::Array(infos));
    }
    doc.insert("relationships".into(), Value::Array(rels));
    let hash = sha256_hex(&Value::Object(doc.clone()));
    doc.insert(
        "documentNamespace".into(),
        json!(format!(
            "https://berth.invalid/spdx/{}/{}-{hash}",
            subject.kind.as_str(),
            crate::purl::encode(&subject.name)
        )),
    );
    Value::Object(doc)
}

/// CycloneDX's licence choice for a package, `None` when it records none.
fn cdx_licenses(p: &Package) -> Option<Value> {
    if p.licenses.is_empty() {
        return None;
    }
    let mapped: Vec<_> = p.licenses.iter().map(|l| (l, to_spdx(l))).collect();
    if mapped.iter().all(|(_, m)| m.is_some())
        && mapped
            .iter()
            .any(|(_, m)| m.as_ref().is_some_and(|m| m.compound))
    {
        let mut parts: Vec<&license::Mapped> = Vec::new();
        for m in mapped.iter().filter_map(|(_, m)| m.as_ref()) {
            if !parts.iter().any(|p| p.expr == m.expr) {
                parts.push(m);
            }
        }
        let expr = match parts.as_slice() {
            [only] => only.expr.clone(),
            _ => parts
                .iter()
                .map(|m| m.and_operand())
                .collect::<Vec<_>>()
                .join(" AND "),
        };
        return Some(json!([{ "expression": expr }]));
    }
    let mut out: Vec<Value> = Vec::new();
    for (raw, m) in mapped {
        let item = match m {
            Some(m) if !m.compound => json!({"license": {"id": m.expr}}),
            _ => json!({"license": {"name": raw}}),
        };
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Some(Value::Array(out))
}

/// CycloneDX's `group` and `name`: Maven's `group:artifact` and npm's
/// `@scope/name` are split, other names are whole.
fn cdx_name(p: &Package) -> (Option<&str>, &str) {
    match p.ecosystem {
        Ecosystem::Maven => match p.name.split_once(':') {
            Some((g, a)) => (Some(g), a),
            None => (None, &p.name),
        },
        Ecosystem::Npm if p.name.starts_with('@') => match p.name.split_once('/') {
            Some((g, n)) => (Some(g), n),
            None => (None, &p.name),
        },
        _ => (None, &p.name),
    }
}

fn prop(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// A CycloneDX 1.5 JSON BOM. `created` is an RFC 3339 date-time; `tool_version`
/// is berth's version. The subject is `metadata.component` (type `container`);
/// each package is a `library` component whose `properties` carry berth's layer
/// attribution (`berth:layer:index`, `berth:layer:diffID`,
/// `berth:layer:createdBy`, `berth:foundIn`).
pub fn cyclonedx_json(
    subject: &Subject,
    layers: &[Layer],
    packages: &[Package],
    created: &str,
    tool_version: &str,
) -> Value {
    let mut taken = std::collections::HashSet::new();
    let root_ref = unique(subject.id.clone(), &mut taken);
    let mut components = Vec::new();
    for p in packages {
        let base = if p.purl.is_empty() {
            format!("{}:{}@{}", p.ecosystem, p.name, p.version)
        } else {
            p.purl.clone()
        };
        let bom_ref = unique(base, &mut taken);
        let (group, name) = cdx_name(p);
        let mut c = Map::new();
        c.insert("type".into(), json!("library"));
        c.insert("bom-ref".into(), json!(bom_ref));
        if let Some(g) = group {
            c.insert("group".into(), json!(g));
        }
        c.insert("name".into(), json!(name));
        if !p.version.is_empty() {
            c.insert("version".into(), json!(p.version));
        }
        if let Some(l) = cdx_licenses(p) {
            c.insert("licenses".into(), l);
        }
        if !p.purl.is_empty() {
            c.insert("purl".into(), json!(p.purl));
        }
        let mut props = Vec::new();
        if let (Some(i), Some(l)) = (p.layer, layer_of(p, layers)) {
            props.push(prop("berth:layer:index", &i.to_string()));
            props.push(prop("berth:layer:diffID", &l.digest));
            if let Some(cb) = &l.created_by {
                props.push(prop("berth:layer:createdBy", cb));
            }
        }
        props.push(prop("berth:foundIn", &p.found_in));
        if let Some(s) = &p.source {
            props.push(prop("berth:source", s));
        }
        if let Some(s) = &p.source_version {
            props.push(prop("berth:sourceVersion", s));
        }
        c.insert("properties".into(), Value::Array(props));
        components.push(Value::Object(c));
    }
    let mut bom = Map::new();
    bom.insert("bomFormat".into(), json!("CycloneDX"));
    bom.insert("specVersion".into(), json!("1.5"));
    bom.insert("version".into(), json!(1));
    bom.insert(
        "metadata".into(),
        json!({
            "timestamp": created,
            "tools": {"components": [{"type": "application", "name": "berth", "version": tool_version}]},
            "component": {
                "type": "container",
                "bom-ref": root_ref,
                "name": subject.name,
                "version": subject.id,
                "properties": [prop("berth:kind", subject.kind.as_str())],
            },
        }),
    );
    bom.insert("components".into(), Value::Array(components));
    let h = Sha256::digest(Value::Object(bom.clone()).to_string().as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // variant 10
    let x = hex::encode(b);
    let serial = format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    );
    // serialNumber second, as CycloneDX's examples order it.
    let mut out = Map::new();
    for (k, v) in bom {
        out.insert(k.clone(), v);
        if k == "specVersion" {
            out.insert("serialNumber".into(), json!(serial));
        }
    }
    Value::Object(out)
}
