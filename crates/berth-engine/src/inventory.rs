//! The package inventory (issue 12): what each layer holds, computed once
//! when the layer is made (`berth_inventory::scan_tree` over its unpacked
//! directory), and each image's packages composed from its layers' and
//! kept as rows, so a host-wide query by name reads an index and rescans
//! nothing. A container's writable layer is scanned when it is asked about.
//!
//! Never: marks a layer inventoried when its scan failed (the row is
//! written only with a result), or fails the operation that made a layer
//! because its inventory could not be made (`packages reindex` retries).

use berth_inventory::{
    compose, fingerprint_tree, scan_tree, LayerInventory, Package, SCANNER_VERSION,
};
use berth_store::{ImagePackageRow, ImageRow};
use berth_types::Digest;

use crate::{ContainerView, Engine, EngineError, Result};

/// Where a container's writable layer's inventory is recorded, in its
/// directory (never in the layer, where the container could write it).
const UPPER_INVENTORY: &str = "inventory.json";

/// A container's writable layer's inventory and the fingerprint of the
/// layer it was made from.
#[derive(serde::Serialize, serde::Deserialize)]
struct UpperInventory {
    fingerprint: String,
    inventory: LayerInventory,
}

/// A layer of an SBOM's subject: its diff ID and the history step that made it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SbomLayer {
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// An image's or a container's packages, with the layers they came from
/// (a container's writable layer last).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sbom {
    pub name: String,
    pub id: String,
    pub kind: &'static str,
    pub layers: Vec<SbomLayer>,
    pub packages: Vec<Package>,
    /// What could not be read (a corrupt database, an unsupported format).
    pub findings: Vec<berth_inventory::Finding>,
    /// The distribution (the topmost layer's os-release), for advisories
    /// of one release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<berth_inventory::OsRelease>,
}

/// Where a package of `packages ls` is.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PackageHit {
    /// `image` or `container`.
    pub kind: &'static str,
    pub id: String,
    /// An image's first tag (or its short ID); a container's name.
    pub name: String,
    /// The image a container runs (empty for images).
    pub image: String,
    pub package: Package,
    /// For a container: the package is in its own writable layer.
    pub in_container_layer: bool,
}

/// One finding of `packages impact`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImpactRow {
    /// `image` (to rebuild) or `container` (its own writable layer).
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub package: Package,
    /// The layer that brought the package, and its history step.
    pub layer: Option<SbomLayer>,
    /// The running containers of the image.
    pub containers: Vec<String>,
}

/// `packages ls`'s question.
#[derive(Clone, Debug, Default)]
pub struct PackageQuery {
    pub name: Option<String>,
    pub ecosystem: Option<String>,
    /// `version<3.0.15`, `version>=1,<2`.
    pub version: Vec<berth_inventory::Constraint>,
    pub images: bool,
    pub containers: bool,
}

/// A new layer's scan, running in a thread while the operation that made
/// the layer goes on (`Engine::start_layer_scan`).
pub(crate) struct PendingScan(std::thread::JoinHandle<LayerInventory>);

impl Engine {
    /// Starts scanning the unpacked tree of a layer being made, in a
    /// thread: the directory is opened now, so the scan reads the same tree
    /// when it is renamed into the layer store meanwhile. `None` when it
    /// cannot be opened (the layer is scanned when first asked about).
    pub(crate) fn start_layer_scan(dir: &std::path::Path) -> Option<PendingScan> {
        let fd = rustix::fs::open(
            dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok()?;
        std::thread::Builder::new()
            .name("layer-scan".into())
            .spawn(move || berth_inventory::scan_dir(&fd, &berth_inventory::Limits::default()))
            .ok()
            .map(PendingScan)
    }

    /// Records the result of `start_layer_scan` for `chain_id` (nothing
    /// when the thread failed: the layer is scanned when first asked about).
    pub(crate) fn finish_layer_scan(&self, chain_id: &Digest, scan: PendingScan) {
        let Ok(inv) = scan.0.join() else {
            return;
        };
        if let Ok(json) = serde_json::to_string(&inv) {
            let _ =
                self.store
                    .read()
                    .put_layer_inventory(chain_id, i64::from(SCANNER_VERSION), &json);
        }
    }

    /// A layer's inventory, made and recorded now if it is missing or was
    /// made by an older scanner.
    pub(crate) fn layer_inventory(&self, chain_id: &Digest) -> Result<LayerInventory> {
        if let Some((scanner, json)) = self.store.read().layer_inventory(chain_id)? {
            if scanner == i64::from(SCANNER_VERSION) {
                if let Ok(inv) = serde_json::from_str::<LayerInventory>(&json) {
                    return Ok(inv);
                }
            }
        }
        self.scan_layer(chain_id)
    }

    /// Scans a layer's directory and records what it holds.
    fn scan_layer(&self, chain_id: &Digest) -> Result<LayerInventory> {
        let inv = scan_tree(&self.layer_dir(chain_id)).map_err(|e| EngineError::Runtime {
            code: 125,
            message: format!("inventory of layer {}: {e}", chain_id.short()),
        })?;
        let json = serde_json::to_string(&inv).map_err(|e| EngineError::Runtime {
            code: 125,
            message: format!("inventory of layer {}: {e}", chain_id.short()),
        })?;
        self.store
            .read()
            .put_layer_inventory(chain_id, i64::from(SCANNER_VERSION), &json)?;
        Ok(inv)
    }

    /// Composes an image's packages from its layers' inventories (made
    /// where missing) and records them as rows.
    pub(crate) fn inventory_image(&mut self, row: &ImageRow) -> Result<Vec<Package>> {
        let mut layers = Vec::with_capacity(row.layers.len());
        for l in &row.layers {
            layers.push(self.layer_inventory(l)?);
        }
        let packages = compose(&layers);
        let rows: Vec<ImagePackageRow> = packages
            .iter()
            .map(|p| ImagePackageRow {
                image_id: row.id.clone(),
                name: p.name.clone(),
                ecosystem: p.ecosystem.as_str().to_string(),
                version: p.version.clone(),
                source: p.source.clone().unwrap_or_default(),
                layer: p.layer.map_or(-1, |l| l as i64),
                package: serde_json::to_string(p).unwrap_or_default(),
            })
            .collect();
        let id = row.id.clone();
        self.store.transaction(|t| -> Result<()> {
            Ok(t.set_image_packages(&id, i64::from(SCANNER_VERSION), &rows)?)
        })?;
        Ok(packages)
    }

    /// Inventories a new image, best effort: the operation that made it
    /// succeeded whatever happens here (`packages reindex` catches up).
    pub(crate) fn inventory_new_image(&mut self, id: &Digest) {
        let Ok(Some(row)) = self.store.read().image(id) else {
            return;
        };
        if self.same_packages_as_parent(&row).unwrap_or(false) {
            if let Some(parent) = &row.parent {
                let copied = self.store.transaction(|t| -> Result<()> {
                    Ok(t.copy_image_packages(parent, id, i64::from(SCANNER_VERSION))?)
                });
                if copied.is_ok() {
                    return;
                }
            }
        }
        let _ = self.inventory_image(&row);
    }

    /// Whether an image's packages are its parent's: the parent's were
    /// composed by this scanner, and each layer the image adds on top of
    /// the parent's holds no package, no package database and hides
    /// nothing (the common commit, and a build step that installs
    /// nothing) — then its rows are copied instead of composed.
    fn same_packages_as_parent(&self, row: &ImageRow) -> Result<bool> {
        let Some(parent_id) = &row.parent else {
            return Ok(false);
        };
        let Some(parent) = self.store.read().image(parent_id)? else {
            return Ok(false);
        };
        if !row.layers.starts_with(&parent.layers)
            || !self
                .store
                .read()
                .image_inventoried(parent_id, i64::from(SCANNER_VERSION))?
        {
            return Ok(false);
        }
        for l in &row.layers[parent.layers.len()..] {
            let inv = self.layer_inventory(l)?;
            if !inv.packages.is_empty()
                || !inv.databases.is_empty()
                || !inv.whiteouts.is_empty()
                || !inv.opaque_dirs.is_empty()
                || !inv.findings.is_empty()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// An image's packages, from its rows (inventoried now if it never was).
    fn image_packages(&mut self, row: &ImageRow) -> Result<Vec<Package>> {
        if !self
            .store
            .read()
            .image_inventoried(&row.id, i64::from(SCANNER_VERSION))?
        {
            return self.inventory_image(row);
        }
        let rows = self.store.read().image_packages(&row.id)?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str::<Package>(&r.package).ok())
            .collect())
    }

    /// The layers of an image with the history steps that made them.
    fn sbom_layers(row: &ImageRow) -> Result<Vec<SbomLayer>> {
        let config = Self::image_config(row)?;
        let steps: Vec<Option<String>> = config
            .history
            .iter()
            .filter(|h| !h.empty_layer)
            .map(|h| h.created_by.clone())
            .collect();
        Ok(config
            .rootfs
            .diff_ids
            .iter()
            .enumerate()
            .map(|(i, d)| SbomLayer {
                digest: d.to_string(),
                created_by: steps.get(i).cloned().flatten(),
            })
            .collect())
    }

    /// `sbom IMAGE|CONTAINER`: a container's packages are its image's as
    /// its writable layer changed them.
    pub fn sbom(&mut self, what: &str) -> Result<Sbom> {
        // A container's name first: an image ID prefix ("c1") must not
        // shadow a container named so.
        let named = self
            .store
            .read()
            .container_by_name(what.trim_start_matches('/'))?
            .is_some();
        let image = if named {
            Err(EngineError::NoSuchImage(what.to_string()))
        } else {
            self.resolve_image(what)
        };
        match image {
            Ok(row) => {
                let packages = self.image_packages(&row)?;
                let mut findings = Vec::new();
                let mut os = None;
                for l in &row.layers {
                    if let Ok(inv) = self.layer_inventory(l) {
                        findings.extend(inv.findings);
                        os = inv.os_release.or(os);
                    }
                }
                Ok(Sbom {
                    name: what.to_string(),
                    id: row.id.to_string(),
                    kind: "image",
                    layers: Self::sbom_layers(&row)?,
                    packages,
                    findings,
                    os,
                })
            }
            Err(EngineError::NoSuchImage(_)) => {
                let v = self.container(what).map_err(|e| match e {
                    EngineError::NoSuchContainer(_) => {
                        EngineError::NotFound(format!("No such image or container: {what}"))
                    }
                    e => e,
                })?;
                let (layers, packages, findings) = self.container_packages(&v)?;
                let mut os = None;
                if let Ok(Some(row)) = self.store.read().image(&v.image_id) {
                    for l in &row.layers {
                        if let Ok(inv) = self.layer_inventory(l) {
                            os = inv.os_release.or(os);
                        }
                    }
                }
                Ok(Sbom {
                    name: v.name.clone(),
                    id: v.id.to_string(),
                    kind: "container",
                    layers,
                    packages,
                    findings,
                    os,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A container's packages: its image's layers' inventories with its
    /// writable layer's scanned now, on top.
    fn container_packages(
        &mut self,
        v: &ContainerView,
    ) -> Result<(Vec<SbomLayer>, Vec<Package>, Vec<berth_inventory::Finding>)> {
        let row = self
            .store
            .read()
            .image(&v.image_id)?
            .ok_or_else(|| EngineError::NoSuchImage(v.image_id.to_string()))?;
        let mut invs = Vec::with_capacity(row.layers.len() + 1);
        for l in &row.layers {
            invs.push(self.layer_inventory(l)?);
        }
        let top = Self::scan_upper(v)?;
        let findings = invs
            .iter()
            .chain(std::iter::once(&top))
            .flat_map(|i| i.findings.clone())
            .collect();
        invs.push(top);
        let mut layers = Self::sbom_layers(&row)?;
        layers.push(SbomLayer {
            digest: format!("container:{}", v.id.short()),
            created_by: Some("the container's writable layer".into()),
        });
        Ok((layers, compose(&invs), findings))
    }

    /// `packages ls`: every image's (from the rows) and container's
    /// packages that answer `q`.
    pub fn packages(&mut self, q: &PackageQuery) -> Result<Vec<PackageHit>> {
        let both = !q.images && !q.containers;
        let keep = |p: &Package| {
            q.name
                .as_ref()
                .is_none_or(|n| p.name == *n || p.source.as_deref() == Some(n.as_str()))
                && q.ecosystem
                    .as_ref()
                    .is_none_or(|e| p.ecosystem.as_str() == e.as_str())
                && q.version.iter().all(|c| c.matches(p.ecosystem, &p.version))
        };
        let mut hits = Vec::new();
        // Images never inventoried (made before this feature, or whose
        // inventory failed) are done now, once.
        for id in self
            .store
            .read()
            .images_not_inventoried(i64::from(SCANNER_VERSION))?
        {
            if let Some(row) = self.store.read().image(&id)? {
                let _ = self.image_packages(&row);
            }
        }
        if both || q.images {
            let names = self.image_names()?;
            for r in self.store.read().packages_named(q.name.as_deref())? {
                let Ok(p) = serde_json::from_str::<Package>(&r.package) else {
                    continue;
                };
                if !keep(&p) {
                    continue;
                }
                hits.push(PackageHit {
                    kind: "image",
                    id: r.image_id.to_string(),
                    name: names
                        .get(&r.image_id)
                        .cloned()
                        .unwrap_or_else(|| r.image_id.short().to_string()),
                    image: String::new(),
                    package: p,
                    in_container_layer: false,
                });
            }
        }
        if both || q.containers {
            let mut images = std::collections::HashMap::new();
            for v in self.containers()? {
                if !v.running() {
                    continue;
                }
                for (package, own) in self.container_hits(&v, &keep, &mut images)? {
                    hits.push(PackageHit {
                        kind: "container",
                        id: v.id.to_string(),
                        name: v.name.clone(),
                        image: v.config.image.clone(),
                        in_container_layer: own,
                        package,
                    });
                }
            }
        }
        Ok(hits)
    }

    /// `packages impact NAME --fixed V`: the images holding `name` (or a
    /// package built from the source `name`) below `fixed`, each with the
    /// layer and history step that brought it and the running containers
    /// of that image; and the containers holding it in their own writable
    /// layer.
    pub fn impact(&mut self, name: &str, fixed: &str) -> Result<Vec<ImpactRow>> {
        let q = PackageQuery {
            name: Some(name.to_string()),
            version: vec![berth_inventory::Constraint {
                op: berth_inventory::Op::Lt,
                version: fixed.to_string(),
            }],
            ..Default::default()
        };
        let hits = self.packages(&q)?;
        let containers = self.containers()?;
        let mut out = Vec::new();
        for h in hits {
            match h.kind {
                "image" => {
                    let id = Digest::parse(&h.id).map_err(|e| EngineError::Runtime {
                        code: 125,
                        message: e.to_string(),
                    })?;
                    let Some(row) = self.store.read().image(&id)? else {
                        continue;
                    };
                    let layers = Self::sbom_layers(&row)?;
                    let layer = h.package.layer.and_then(|i| layers.get(i)).cloned();
                    let running: Vec<String> = containers
                        .iter()
                        .filter(|c| c.running() && c.image_id == id)
                        .map(|c| c.name.clone())
                        .collect();
                    out.push(ImpactRow {
                        kind: "image",
                        id: h.id,
                        name: h.name,
                        package: h.package,
                        layer,
                        containers: running,
                    });
                }
                _ if h.in_container_layer => out.push(ImpactRow {
                    kind: "container",
                    id: h.id,
                    name: h.name,
                    package: h.package,
                    layer: None,
                    containers: Vec::new(),
                }),
                _ => {}
            }
        }
        Ok(out)
    }

    /// A container's writable layer's inventory (empty when it has none):
    /// the one recorded in the container's directory while the layer's
    /// fingerprint (metadata only, see `fingerprint_tree`) is unchanged,
    /// else scanned now and recorded.
    fn scan_upper(v: &ContainerView) -> Result<LayerInventory> {
        let upper = v.dir.join("upper");
        if !upper.is_dir() {
            return Ok(LayerInventory::default());
        }
        let err = |e: berth_inventory::ScanError| EngineError::Runtime {
            code: 125,
            message: format!("inventory of container {}: {e}", v.id.short()),
        };
        let limits = berth_inventory::Limits::default();
        let fingerprint = fingerprint_tree(&upper, &limits).map_err(err)?;
        let cache = v.dir.join(UPPER_INVENTORY);
        if let Ok(bytes) = std::fs::read(&cache) {
            if let Ok(c) = serde_json::from_slice::<UpperInventory>(&bytes) {
                if c.fingerprint == fingerprint && c.inventory.scanner == SCANNER_VERSION {
                    return Ok(c.inventory);
                }
            }
        }
        // The fingerprint is taken before the scan: a change during the
        // scan leaves a recorded fingerprint that no longer matches.
        let inventory = scan_tree(&upper).map_err(err)?;
        let c = UpperInventory {
            fingerprint,
            inventory,
        };
        if let Ok(json) = serde_json::to_vec(&c) {
            let _ = crate::netstart::write_atomic(&cache, &json);
        }
        Ok(c.inventory)
    }

    /// What `scan --all` looks at: every image by its ID, then every
    /// running container by its name.
    pub fn scan_targets(&mut self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .store
            .read()
            .images()?
            .into_iter()
            .map(|r| r.id.to_string())
            .collect();
        out.extend(
            self.containers()?
                .into_iter()
                .filter(|v| v.running())
                .map(|v| v.name),
        );
        Ok(out)
    }

    /// A running container's packages that `keep` takes, each with whether
    /// it is in the container's own layer. The writable layer is scanned;
    /// when it holds no package database and hides nothing (no whiteout,
    /// no opaque directory), the rest is its image's rows that `keep` takes
    /// (`images` keeps them for the next container of the same image) — no
    /// layer inventory is read; otherwise everything is composed again.
    fn container_hits(
        &mut self,
        v: &ContainerView,
        keep: &dyn Fn(&Package) -> bool,
        images: &mut std::collections::HashMap<Digest, (usize, Vec<Package>)>,
    ) -> Result<Vec<(Package, bool)>> {
        let top = Self::scan_upper(v)?;
        if top.databases.is_empty() && top.whiteouts.is_empty() && top.opaque_dirs.is_empty() {
            if !images.contains_key(&v.image_id) {
                let Some(row) = self.store.read().image(&v.image_id)? else {
                    return Ok(Vec::new());
                };
                let below: Vec<Package> = self
                    .image_packages(&row)?
                    .into_iter()
                    .filter(|p| keep(p))
                    .collect();
                images.insert(v.image_id.clone(), (row.layers.len(), below));
            }
            let (n, below) = images
                .get(&v.image_id)
                .map(|(n, b)| (*n, b.clone()))
                .unwrap_or_default();
            return Ok(below
                .into_iter()
                .map(|p| (p, false))
                .chain(top.packages.into_iter().filter(|p| keep(p)).map(|mut p| {
                    p.layer = Some(n);
                    (p, true)
                }))
                .collect());
        }
        let (layers, packages, _) = self.container_packages(v)?;
        let top = layers.len().saturating_sub(1);
        Ok(packages
            .into_iter()
            .filter(|p| keep(p))
            .map(|p| {
                let own = p.layer == Some(top);
                (p, own)
            })
            .collect())
    }

    /// Each image's first tag in Docker's familiar form.
    fn image_names(&self) -> Result<std::collections::HashMap<Digest, String>> {
        let mut m = std::collections::HashMap::new();
        for (reference, id) in self.store.read().all_tags()? {
            let name = berth_types::Reference::parse(&reference)
                .map(|r| r.familiar())
                .unwrap_or(reference);
            m.entry(id).or_insert(name);
        }
        Ok(m)
    }

    /// `packages reindex`: every layer's inventory made again, every
    /// image's packages composed again; `progress(done, total)` after each
    /// image.
    pub fn reindex(&mut self, mut progress: impl FnMut(usize, usize)) -> Result<usize> {
        let images = self.store.read().images()?;
        let total = images.len();
        let mut scanned = std::collections::HashSet::new();
        for (i, row) in images.iter().enumerate() {
            for l in &row.layers {
                if scanned.insert(l.clone()) {
                    self.scan_layer(l)?;
                }
            }
            self.inventory_image(row)?;
            progress(i + 1, total);
        }
        Ok(total)
    }
}
