//! SBOM rendering over a realistic inventory: the fixtures of `tests/data/`
//! scanned as two layers and composed, plus packages with tricky names and
//! licences; the documents validated against the official JSON schemas checked
//! in under `tests/schemas/` (see its README), and against the rules of SPDX
//! that its schema does not express.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};

use super::license::{all_license_ids, license_id};
use super::*;
use crate::tests::{copy, debian_root, put};
use crate::{compose, scan_tree, Ecosystem, Package};

const CREATED: &str = "2026-12-01T02:46:47Z";

fn schema(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas")
        .join(name);
    serde_json::from_slice(&fs::read(&p).unwrap()).unwrap()
}

fn errors(schema_name: &str, extra: &[(&str, &str)], doc: &Value) -> Vec<String> {
    let mut registry = jsonschema::Registry::new();
    for (uri, file) in extra {
        registry = registry.add(*uri, schema(file)).unwrap();
    }
    let registry = registry.prepare().unwrap();
    let v = jsonschema::options()
        .offline()
        .should_validate_formats(true)
        .with_registry(&registry)
        .build(&schema(schema_name))
        .unwrap();
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn cyclonedx_errors(doc: &Value) -> Vec<String> {
    errors(
        "bom-1.5.schema.json",
        &[
            (
                "http://cyclonedx.org/schema/spdx.schema.json",
                "spdx.schema.json",
            ),
            (
                "http://cyclonedx.org/schema/jsf-0.82.schema.json",
                "jsf-0.82.schema.json",
            ),
        ],
        doc,
    )
}

fn is_idstring(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// The SPDX 2.3 schema, then what the specification says and the schema does
/// not check: SPDX ids, relationships, licence expressions, dates, namespace.
fn spdx_errors(doc: &Value) -> Vec<String> {
    let mut errs = errors("spdx-2.3.schema.json", &[], doc);
    let mut ids = HashSet::new();
    ids.insert("SPDXRef-DOCUMENT".to_string());
    let refs: HashSet<String> = doc["hasExtractedLicensingInfos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["licenseId"].as_str().map(str::to_string))
        .collect();
    for r in &refs {
        if !r.strip_prefix("LicenseRef-").is_some_and(is_idstring) {
            errs.push(format!("bad licenseId {r}"));
        }
    }
    let mut used_refs = HashSet::new();
    for p in doc["packages"].as_array().into_iter().flatten() {
        let id = p["SPDXID"].as_str().unwrap_or_default();
        if !id.strip_prefix("SPDXRef-").is_some_and(is_idstring) {
            errs.push(format!("bad SPDXID {id:?}"));
        }
        if !ids.insert(id.to_string()) {
            errs.push(format!("duplicate SPDXID {id}"));
        }
        for field in ["licenseConcluded", "licenseDeclared"] {
            let e = p[field].as_str().unwrap_or_default();
            if let Err(why) = check_expression(e, &refs, &mut used_refs) {
                errs.push(format!("{id} {field} {e:?}: {why}"));
            }
        }
        for r in p["externalRefs"].as_array().into_iter().flatten() {
            let loc = r["referenceLocator"].as_str().unwrap_or_default();
            if r["referenceType"] == "purl" && (!loc.starts_with("pkg:") || loc.contains(' ')) {
                errs.push(format!("bad purl {loc}"));
            }
        }
    }
    if used_refs != refs {
        errs.push(format!("LicenseRefs used {used_refs:?}, defined {refs:?}"));
    }
    for r in doc["relationships"].as_array().into_iter().flatten() {
        for k in ["spdxElementId", "relatedSpdxElement"] {
            let id = r[k].as_str().unwrap_or_default();
            if !ids.contains(id) {
                errs.push(format!("relationship to unknown {id}"));
            }
        }
    }
    for d in doc["documentDescribes"].as_array().into_iter().flatten() {
        if !d.as_str().is_some_and(|d| ids.contains(d)) {
            errs.push(format!("describes unknown {d}"));
        }
    }
    let created = doc["creationInfo"]["created"].as_str().unwrap_or_default();
    let shape: String = created
        .chars()
        .map(|c| if c.is_ascii_digit() { 'D' } else { c })
        .collect();
    if shape != "DDDD-DD-DDTDD:DD:DDZ" {
        errs.push(format!("created {created:?} is not YYYY-MM-DDThh:mm:ssZ"));
    }
    let ns = doc["documentNamespace"].as_str().unwrap_or_default();
    if !ns.starts_with("https://") || ns.contains('#') || ns.contains(' ') {
        errs.push(format!("bad documentNamespace {ns:?}"));
    }
    errs
}

/// An SPDX licence expression (annex D) whose licences are listed ids (or
/// `id+`), or LicenseRefs defined in the document; exceptions listed ones.
fn check_expression(
    e: &str,
    refs: &HashSet<String>,
    used: &mut HashSet<String>,
) -> Result<(), String> {
    if e == "NOASSERTION" || e == "NONE" {
        return Ok(());
    }
    let spaced = e.replace('(', " ( ").replace(')', " ) ");
    let toks: Vec<&str> = spaced.split_whitespace().collect();
    // Operand/operator alternation with balanced parentheses.
    let mut depth = 0i32;
    let mut want_operand = true;
    let mut after_with = false;
    for t in &toks {
        match *t {
            "(" if want_operand => depth += 1,
            ")" if !want_operand => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced".into());
                }
            }
            "AND" | "OR" | "WITH" if !want_operand => {
                want_operand = true;
                after_with = *t == "WITH";
            }
            lic if want_operand => {
                if after_with {
                    if super::license::exception_id(lic) != Some(lic) {
                        return Err(format!("{lic} is not a listed exception"));
                    }
                } else if lic.starts_with("LicenseRef-") {
                    if !refs.contains(lic) {
                        return Err(format!("{lic} is not defined"));
                    }
                    used.insert(lic.to_string());
                } else if license_id(lic.trim_end_matches('+')) != Some(lic.trim_end_matches('+')) {
                    return Err(format!("{lic} is not a listed licence id"));
                }
                want_operand = false;
                after_with = false;
            }
            t => return Err(format!("unexpected {t}")),
        }
    }
    if want_operand || depth != 0 {
        return Err("incomplete".into());
    }
    Ok(())
}

fn layers() -> Vec<Layer> {
    vec![
        Layer {
            digest: format!("sha256:{}", "a1".repeat(32)),
            created_by: Some("/bin/sh -c #(nop) ADD file:123 in / ".into()),
        },
        Layer {
            digest: format!("sha256:{}", "b2".repeat(32)),
            created_by: Some("RUN /bin/sh -c pip install six attrs && npm i # buildkit".into()),
        },
        Layer {
            digest: format!("sha256:{}", "c3".repeat(32)),
            created_by: None,
        },
    ]
}

fn subject() -> Subject {
    Subject {
        name: "registry.example/team/app:1.0".into(),
        id: format!("sha256:{}", "d4".repeat(32)),
        kind: SubjectKind::Image,
    }
}

fn pkg(eco: Ecosystem, name: &str, version: &str, purl: &str, licenses: &[&str]) -> Package {
    Package {
        ecosystem: eco,
        name: name.into(),
        version: version.into(),
        source: None,
        source_version: None,
        licenses: licenses.iter().map(|s| s.to_string()).collect(),
        purl: purl.into(),
        layer: Some(2),
        found_in: "hand/made".into(),
    }
}

/// The fixtures scanned as a Debian base layer and an application layer,
/// composed, then packages no fixture has: tricky names, unknown licences, a
/// duplicate, a layer index out of range.
fn inventory() -> Vec<Package> {
    let base = tempfile::tempdir().unwrap();
    debian_root(base.path());
    let app = tempfile::tempdir().unwrap();
    let r = app.path();
    let site = "usr/local/lib/python3.11/site-packages";
    for d in [
        "six-1.17.0.dist-info",
        "backcall-0.2.0.dist-info",
        "attrs-26.1.0.dist-info",
    ] {
        copy(
            r,
            &format!("{site}/{d}/METADATA"),
            &format!("python/{d}/METADATA"),
        );
    }
    copy(
        r,
        "app/node_modules/semver/package.json",
        "npm/semver/package.json",
    );
    copy(
        r,
        "app/node_modules/@npmcli/fs/package.json",
        "npm/@npmcli/fs/package.json",
    );
    put(
        r,
        "app/node_modules/@types/node/package.json",
        br#"{"name":"@types/node","version":"20.11.5","license":"MIT"}"#,
    );
    copy(r, "opt/app/lib/plexus-cipher.jar", "java/plexus-cipher.jar");
    // The same jar twice: the same purl twice.
    copy(
        r,
        "opt/app/lib2/plexus-cipher.jar",
        "java/plexus-cipher.jar",
    );
    copy(
        r,
        "opt/app/lib/atinject-jsr330-api-1.0.jar",
        "java/atinject-jsr330-api-1.0.jar",
    );
    let go = crate::golang::tests::section("go1.22.1", crate::golang::tests::MODINFO);
    put(
        r,
        "usr/local/bin/hello",
        &crate::elf::tests::elf64(&[(".text", b"code"), (".go.buildinfo", &go)]),
    );
    fs::set_permissions(
        r.join("usr/local/bin/hello"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let invs = [scan_tree(base.path()).unwrap(), scan_tree(r).unwrap()];
    assert_eq!(invs[0].findings, []);
    assert_eq!(invs[1].findings, []);
    let mut pkgs = compose(&invs);
    pkgs.push(pkg(
        Ecosystem::Deb,
        "libstdc++6",
        "12.2.0-14+deb12u1",
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64",
        &["GPL-3+ with GCC-exception-3.1", "GFDL-1.2+", "Artistic"],
    ));
    pkgs.push(pkg(
        Ecosystem::Maven,
        "org.apache:commons",
        "1.0",
        "pkg:maven/org.apache/commons@1.0",
        &["The Apache Software License, Version 2.0"],
    ));
    pkgs.push(pkg(
        Ecosystem::Pypi,
        "weird pkg/ü",
        "",
        "",
        &[
            "public domain",
            "Copyright (c) 2024 Someone; all rights reserved",
            "LicenseRef-Proprietary",
        ],
    ));
    pkgs.push(pkg(
        Ecosystem::Npm,
        "dual",
        "1.0.0",
        "pkg:npm/dual@1.0.0",
        &["(MIT OR Apache-2.0) AND BSD-3-Clause", "ISC"],
    ));
    let mut lost = pkg(
        Ecosystem::Apk,
        "musl",
        "1.2.5-r0",
        "pkg:apk/alpine/musl@1.2.5-r0",
        &["MIT"],
    );
    lost.layer = Some(7);
    pkgs.push(lost);
    pkgs
}

fn by_name<'a>(doc: &'a Value, key: &str, name: &str) -> &'a Value {
    doc[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {key}"))
}

#[test]
fn spdx_validates() {
    let pkgs = inventory();
    let doc = spdx_json(&subject(), &layers(), &pkgs, CREATED, "0.9.0");
    assert_eq!(spdx_errors(&doc), Vec::<String>::new(), "{doc:#}");
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(
        doc["creationInfo"]["creators"],
        json!(["Tool: berth-0.9.0"])
    );
    // Subject + every package, each CONTAINed by the subject.
    assert_eq!(doc["packages"].as_array().unwrap().len(), pkgs.len() + 1);
    assert_eq!(
        doc["relationships"].as_array().unwrap().len(),
        pkgs.len() + 1
    );
    let ssl = by_name(&doc, "packages", "libssl3");
    assert_eq!(
        ssl["licenseDeclared"],
        "Apache-2.0 AND LicenseRef-Artistic-or-GPL-1"
    );
    assert_eq!(ssl["licenseConcluded"], "NOASSERTION");
    assert_eq!(
        ssl["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/libssl3@3.0.22-1~deb12u2?arch=amd64&upstream=openssl"
    );
    assert!(ssl["sourceInfo"]
        .as_str()
        .unwrap()
        .contains(&format!("layer 0 (sha256:{})", "a1".repeat(32))));
    let cxx = by_name(&doc, "packages", "libstdc++6");
    assert_eq!(
        cxx["SPDXID"],
        "SPDXRef-Package-deb-libstdc-6-12.2.0-14-deb12u1"
    );
    assert_eq!(
        cxx["licenseDeclared"],
        "GPL-3.0-or-later WITH GCC-exception-3.1 AND GFDL-1.2-or-later AND LicenseRef-Artistic"
    );
    assert_eq!(
        by_name(&doc, "packages", "@types/node")["SPDXID"],
        "SPDXRef-Package-npm-types-node-20.11.5"
    );
    assert_eq!(
        by_name(&doc, "packages", "org.apache:commons")["licenseDeclared"],
        "Apache-2.0"
    );
    assert_eq!(
        by_name(&doc, "packages", "dual")["licenseDeclared"],
        "(MIT OR Apache-2.0) AND BSD-3-Clause AND ISC"
    );
    // tzdata's "public-domain" came first: "public domain" is another text.
    let weird = by_name(&doc, "packages", "weird pkg/ü");
    assert_eq!(
        weird["licenseDeclared"],
        "LicenseRef-public-domain-2 AND LicenseRef-Copyright-c-2024-Someone-all-rights-reserved AND LicenseRef-Proprietary"
    );
    assert!(weird.get("versionInfo").is_none() && weird.get("externalRefs").is_none());
    // The duplicate jar: its own SPDXID.
    let plexus: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "org.codehaus.plexus:plexus-cipher")
        .map(|p| p["SPDXID"].as_str().unwrap())
        .collect();
    assert_eq!(
        plexus,
        [
            "SPDXRef-Package-maven-org.codehaus.plexus-plexus-cipher-2.0",
            "SPDXRef-Package-maven-org.codehaus.plexus-plexus-cipher-2.0-2"
        ]
    );
    // The recorded text is kept for each LicenseRef.
    let infos = doc["hasExtractedLicensingInfos"].as_array().unwrap();
    assert!(infos
        .iter()
        .any(|i| i["licenseId"] == "LicenseRef-Artistic-or-GPL-1"
            && i["extractedText"] == "Artistic or GPL-1+"));
    // A layer index out of range: no layer, no panic.
    assert_eq!(
        by_name(&doc, "packages", "musl")["sourceInfo"],
        "found in /hand/made"
    );
}

#[test]
fn cyclonedx_validates() {
    let pkgs = inventory();
    let doc = cyclonedx_json(&subject(), &layers(), &pkgs, CREATED, "0.9.0");
    assert_eq!(cyclonedx_errors(&doc), Vec::<String>::new(), "{doc:#}");
    assert_eq!(doc["metadata"]["component"]["type"], "container");
    assert_eq!(doc["components"].as_array().unwrap().len(), pkgs.len());
    let refs: HashSet<&str> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs.len(), pkgs.len(), "bom-refs are unique");
    let node = by_name(&doc, "components", "node");
    assert_eq!(node["group"], "@types");
    assert_eq!(node["purl"], "pkg:npm/%40types/node@20.11.5");
    assert_eq!(node["licenses"], json!([{"license": {"id": "MIT"}}]));
    let commons = by_name(&doc, "components", "commons");
    assert_eq!(commons["group"], "org.apache");
    let ssl = by_name(&doc, "components", "libssl3");
    assert_eq!(
        ssl["licenses"],
        json!([{"license": {"id": "Apache-2.0"}}, {"license": {"name": "Artistic or GPL-1+"}}])
    );
    let props = &ssl["properties"];
    assert!(props.as_array().unwrap().contains(
        &json!({"name": "berth:layer:diffID", "value": format!("sha256:{}", "a1".repeat(32))})
    ));
    assert!(props
        .as_array()
        .unwrap()
        .contains(&json!({"name": "berth:foundIn", "value": "var/lib/dpkg/status"})));
    assert_eq!(
        by_name(&doc, "components", "dual")["licenses"],
        json!([{"expression": "(MIT OR Apache-2.0) AND BSD-3-Clause AND ISC"}])
    );
    assert_eq!(
        by_name(&doc, "components", "libstdc++6")["licenses"],
        json!([
            {"license": {"name": "GPL-3+ with GCC-exception-3.1"}},
            {"license": {"id": "GFDL-1.2-or-later"}},
            {"license": {"name": "Artistic"}}
        ])
    );
}

#[test]
fn empty_inventory_validates() {
    for kind in [SubjectKind::Image, SubjectKind::Container] {
        let s = Subject {
            name: "empty".into(),
            id: "0123456789abcdef".repeat(4),
            kind,
        };
        let doc = spdx_json(&s, &[], &[], CREATED, "0.9.0");
        assert_eq!(spdx_errors(&doc), Vec::<String>::new(), "{doc:#}");
        assert!(doc.get("hasExtractedLicensingInfos").is_none());
        let doc = cyclonedx_json(&s, &[], &[], CREATED, "0.9.0");
        assert_eq!(cyclonedx_errors(&doc), Vec::<String>::new(), "{doc:#}");
        assert_eq!(json(&s, &[], &[])["packages"], json!([]));
        assert!(table(&[], &[]).is_empty());
    }
}

/// Sets the member at JSON pointer `ptr`, which its parent need not have.
fn set(d: &mut Value, ptr: &str, v: Value) {
    let (parent, key) = ptr.rsplit_once('/').unwrap();
    match d.pointer_mut(parent).unwrap() {
        Value::Object(o) => {
            o.insert(key.to_string(), v);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = v,
        _ => panic!("{ptr}"),
    }
}

/// The validators reject what they should: each check can fail.
#[test]
fn validators_reject_broken_documents() {
    let pkgs = inventory();
    let good = cyclonedx_json(&subject(), &layers(), &pkgs, CREATED, "0.9.0");
    for (ptr, bad) in [
        ("/serialNumber", json!("urn:uuid:NOT-A-UUID")),
        ("/components/0/type", json!("librar")),
        (
            "/components/0/licenses",
            json!([{"license": {"id": "Not-A-Licence"}}]),
        ),
        ("/metadata/timestamp", json!("yesterday")),
        ("/specVersion", json!(1.5)),
    ] {
        let mut d = good.clone();
        set(&mut d, ptr, bad);
        assert!(!cyclonedx_errors(&d).is_empty(), "{ptr} accepted");
    }
    let good = spdx_json(&subject(), &layers(), &pkgs, CREATED, "0.9.0");
    for (ptr, bad) in [
        ("/packages/1/SPDXID", json!("SPDXRef-Package deb")),
        ("/packages/2/SPDXID", json!("SPDXRef-image")),
        ("/packages/1/licenseDeclared", json!("Apache 2.0")),
        (
            "/packages/1/licenseDeclared",
            json!("MIT AND LicenseRef-nowhere"),
        ),
        (
            "/packages/1/licenseDeclared",
            json!("GPL-2.0-only WITH MIT"),
        ),
        ("/packages/1/filesAnalyzed", json!("no")),
        ("/relationships/0/relationshipType", json!("HAS")),
        (
            "/relationships/1/relatedSpdxElement",
            json!("SPDXRef-nothing"),
        ),
        (
            "/creationInfo/created",
            json!("2026-12-01T02:46:47.123+01:00"),
        ),
        ("/documentNamespace", json!("https://berth.invalid/spdx#x")),
    ] {
        let mut d = good.clone();
        set(&mut d, ptr, bad);
        assert!(!spdx_errors(&d).is_empty(), "{ptr} accepted");
    }
    let mut d = good.clone();
    d.as_object_mut().unwrap().remove("dataLicense");
    assert!(!spdx_errors(&d).is_empty(), "no dataLicense accepted");
}

#[test]
fn deterministic_namespace_and_serial() {
    let pkgs = inventory();
    let (s, l) = (subject(), layers());
    let a = spdx_json(&s, &l, &pkgs, CREATED, "0.9.0");
    assert_eq!(a, spdx_json(&s, &l, &pkgs, CREATED, "0.9.0"));
    let ns = a["documentNamespace"].as_str().unwrap();
    let hash = ns
        .strip_prefix("https://berth.invalid/spdx/image/registry.example%2Fteam%2Fapp:1.0-")
        .unwrap();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ns}"
    );
    let b = spdx_json(&s, &l, &pkgs, "2026-12-01T02:46:48Z", "0.9.0");
    assert_ne!(a["documentNamespace"], b["documentNamespace"]);
    let c = spdx_json(&s, &l, &pkgs[1..], CREATED, "0.9.0");
    assert_ne!(a["documentNamespace"], c["documentNamespace"]);

    let a = cyclonedx_json(&s, &l, &pkgs, CREATED, "0.9.0");
    assert_eq!(a, cyclonedx_json(&s, &l, &pkgs, CREATED, "0.9.0"));
    let serial = a["serialNumber"].as_str().unwrap();
    assert_eq!(serial.len(), "urn:uuid:".len() + 36);
    assert_eq!(&serial[23..24], "8", "version 8: {serial}");
    assert!(
        matches!(&serial[28..29], "8" | "9" | "a" | "b"),
        "variant: {serial}"
    );
    let b = cyclonedx_json(&s, &l, &pkgs, "2026-12-01T02:46:48Z", "0.9.0");
    assert_ne!(a["serialNumber"], b["serialNumber"]);
}

#[test]
fn berth_json_and_table() {
    let pkgs = inventory();
    let doc = json(&subject(), &layers(), &pkgs);
    assert_eq!(doc["subject"]["kind"], "image");
    assert_eq!(doc["layers"][1]["index"], 1);
    assert_eq!(doc["layers"][2]["created_by"], Value::Null);
    let six = by_name(&doc, "packages", "six");
    assert_eq!(six["ecosystem"], "pypi");
    assert_eq!(six["layer"], 1);
    assert_eq!(six["layer_digest"], format!("sha256:{}", "b2".repeat(32)));
    assert!(six["layer_created_by"]
        .as_str()
        .unwrap()
        .starts_with("RUN "));
    assert_eq!(
        six["found_in"],
        "usr/local/lib/python3.11/site-packages/six-1.17.0.dist-info/METADATA"
    );
    // Every Package field is there, under the name Package serialises it with.
    let p: Package = serde_json::from_value(six.clone()).unwrap();
    assert_eq!(&p, pkgs.iter().find(|p| p.name == "six").unwrap());
    assert_eq!(
        by_name(&doc, "packages", "musl")["layer_digest"],
        Value::Null
    );

    let rows = table(&pkgs, &layers());
    assert_eq!(rows.len(), pkgs.len());
    assert!(rows.windows(2).all(|w| w[0] <= w[1]), "sorted");
    let row = rows.iter().find(|r| r[0] == "libssl3").unwrap();
    assert_eq!(
        row,
        &[
            "libssl3".to_string(),
            "3.0.22-1~deb12u2".into(),
            "deb".into(),
            "Apache-2.0, Artistic or GPL-1+".into(),
            "a1a1a1a1a1a1".into()
        ]
    );
    assert_eq!(rows.iter().find(|r| r[0] == "musl").unwrap()[4], "-");
    assert_eq!(TABLE_HEADER.len(), rows[0].len());
}

/// Every id berth may write as a CycloneDX `license.id` is one the CycloneDX
/// schema lists.
#[test]
fn license_ids_are_cyclonedx_ids() {
    let enumerated: HashSet<String> = schema("spdx.schema.json")["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ids: Vec<&str> = all_license_ids().collect();
    assert!(ids.len() > 600);
    for id in ids {
        assert!(enumerated.contains(id), "{id}");
    }
}

#[test]
fn declared_licences() {
    let mut refs = LicenseRefs::default();
    let p = |ls: &[&str]| pkg(Ecosystem::Npm, "x", "1", "pkg:npm/x@1", ls);
    assert_eq!(spdx_declared(&p(&[]), &mut refs), "NOASSERTION");
    assert_eq!(spdx_declared(&p(&["MIT OR ISC"]), &mut refs), "MIT OR ISC");
    // Duplicates (the same licence spelt twice) once.
    assert_eq!(
        spdx_declared(&p(&["MIT OR ISC", "mit or isc", "Zlib"]), &mut refs),
        "(MIT OR ISC) AND Zlib"
    );
    assert_eq!(
        spdx_declared(&p(&["MIT", "MIT License", "BSD"]), &mut refs),
        "MIT AND LicenseRef-BSD"
    );
    assert_eq!(
        refs.refs,
        [("BSD".to_string(), "LicenseRef-BSD".to_string())]
    );
}
