//! berth's state database.
//!
//! Owns: the SQLite database `berth.db` under the store root (WAL mode, a
//! busy timeout so many `berth` processes can share it), its schema and
//! migrations, and the rows for images, tags, layers, containers and volumes.
//!
//! Never: knows about processes, mounts or files other than the database.
//! A container's runtime state (pid, exit code) is written by its monitor
//! next to the container's files, not here (see ARCHITECTURE.md).
//!
//! Invariants: a row is written last, after the data it describes is safely
//! on disk, so a row always points at complete data; names and tags are
//! unique by constraint, not by check-then-insert. The one row written
//! first is an image claim: a container being created records that it uses
//! its image (and the image's layers) before it lays out its files, in the
//! transaction that checks the image still exists, and the claim goes in the
//! transaction that writes the container's row.

use std::path::Path;
use std::time::Duration;

use berth_types::{ContainerId, Digest};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state database: corrupt row: {0}")]
    Corrupt(String),
    #[error("the container name \"/{0}\" is already in use")]
    NameInUse(String),
    #[error("volume {0} already exists")]
    VolumeExists(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("Address already in use")]
    AddressInUse(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

const SCHEMA_VERSION: i64 = 10;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    id        TEXT PRIMARY KEY,      -- sha256:… of the config bytes
    config    BLOB NOT NULL,         -- the raw config, exactly as hashed
    layers    TEXT NOT NULL,         -- JSON array of chain IDs, bottom first
    size      INTEGER NOT NULL,      -- bytes of all its layers
    parent    TEXT,                  -- the image this one was committed/built from
    created   TEXT NOT NULL,         -- RFC 3339, from the config
    added     INTEGER NOT NULL       -- unix ns, when this store got it
);
CREATE TABLE IF NOT EXISTS tags (
    reference TEXT PRIMARY KEY,      -- docker.io/library/bb:latest
    image_id  TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
-- version 6: the manifest digests an image was pulled by (RepoDigests)
CREATE TABLE IF NOT EXISTS repo_digests (
    repository TEXT NOT NULL,        -- docker.io/library/bb
    digest     TEXT NOT NULL,        -- sha256:… of the manifest
    image_id   TEXT NOT NULL REFERENCES images(id),
    PRIMARY KEY (repository, digest)
);
CREATE INDEX IF NOT EXISTS repo_digests_by_image ON repo_digests(image_id);
-- version 7: the compressed blob a push sends for a layer stored
-- uncompressed (commit, build, import), made once on its first push
CREATE TABLE IF NOT EXISTS compressed_blobs (
    diff_id    TEXT PRIMARY KEY,     -- sha256:… of the uncompressed tar
    blob       TEXT NOT NULL,        -- sha256:… of the compressed blob
    size       INTEGER NOT NULL,     -- its bytes
    media_type TEXT NOT NULL         -- application/vnd.docker.image.rootfs.diff.tar.gzip
);
-- version 7: where a blob is known to be (pulled from, pushed to), for
-- cross-repository mounts
CREATE TABLE IF NOT EXISTS blob_sources (
    blob       TEXT NOT NULL,
    registry   TEXT NOT NULL,        -- 127.0.0.1:5000, docker.io
    repository TEXT NOT NULL,        -- the path on the registry
    PRIMARY KEY (blob, registry, repository)
);
CREATE TABLE IF NOT EXISTS layers (
    chain_id  TEXT PRIMARY KEY,
    diff_id   TEXT NOT NULL,
    parent    TEXT,                  -- chain ID below, NULL for a base layer
    size      INTEGER NOT NULL,
    blob      TEXT                   -- digest of the stored (possibly compressed) tar
);
CREATE TABLE IF NOT EXISTS containers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    image_id    TEXT NOT NULL,
    image       TEXT NOT NULL,       -- the image as the user named it
    created     TEXT NOT NULL,
    config      TEXT NOT NULL,       -- berth_types::ContainerConfig as JSON
    host_config TEXT NOT NULL,       -- berth_types::HostConfig as JSON
    removing    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS containers_by_image ON containers(image_id);
-- Version 2: a container being created holds its image (and the image's
-- layers) from before its files are laid out until its row is written.
CREATE TABLE IF NOT EXISTS image_claims (
    container_id TEXT PRIMARY KEY,   -- the container being created
    image_id     TEXT NOT NULL,
    layers       TEXT NOT NULL       -- JSON array of the chain IDs it stands on
);
CREATE INDEX IF NOT EXISTS image_claims_by_image ON image_claims(image_id);
CREATE TABLE IF NOT EXISTS volumes (
    name      TEXT PRIMARY KEY,
    created   TEXT NOT NULL,
    labels    TEXT NOT NULL DEFAULT '{}',
    options   TEXT NOT NULL DEFAULT '{}'  -- version 3: the local driver's -o
);
-- Version 4: the build cache. A step of `berth build` is reused when its key
-- (its parent's key, the instruction as expanded, the content of what it
-- reads) is here and its image still exists.
CREATE TABLE IF NOT EXISTS build_cache (
    key       TEXT PRIMARY KEY,      -- sha256:… of the step
    image_id  TEXT NOT NULL,         -- the image the step produced
    created   INTEGER NOT NULL,      -- unix ns
    last_used INTEGER NOT NULL,      -- unix ns
    uses      INTEGER NOT NULL DEFAULT 1, -- version 5: made once, then each reuse
    result    INTEGER NOT NULL DEFAULT 0  -- version 5: 1 when a build ended on this image
);
CREATE INDEX IF NOT EXISTS build_cache_by_image ON build_cache(image_id);
-- Digests of build context files, so an unchanged file is not read again.
CREATE TABLE IF NOT EXISTS build_file_digests (
    path    TEXT PRIMARY KEY,        -- the file on the host
    stat    TEXT NOT NULL,           -- dev:ino:size:mtime:ctime when hashed
    digest  TEXT NOT NULL            -- sha256 hex of its content
);
-- Version 8: networks (issue 10). The predefined bridge, host and none are
-- rows too, made (in one transaction) the first time a berth needs a network.
CREATE TABLE IF NOT EXISTS networks (
    id       TEXT PRIMARY KEY,       -- 64 hex digits, as Docker's
    name     TEXT NOT NULL UNIQUE,
    driver   TEXT NOT NULL,          -- bridge, host, null
    created  TEXT NOT NULL,          -- RFC 3339 with nanoseconds
    spec     TEXT NOT NULL           -- berth_types::NetworkSpec as JSON
);
-- Version 8: the address a running container holds on a network. A row
-- lives from the container's start to its stop (or until a berth finds
-- its monitor gone); the address is unique on its network by constraint.
CREATE TABLE IF NOT EXISTS endpoints (
    network_id   TEXT NOT NULL REFERENCES networks(id),
    container_id TEXT NOT NULL,
    ip           TEXT NOT NULL,      -- 172.17.0.2
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE INDEX IF NOT EXISTS endpoints_by_container ON endpoints(container_id);
-- Version 9: the package inventory (issue 12). A layer's is computed once,
-- when the layer is made, from its own files; an image's packages are its
-- layers' composed (upper package databases replace lower ones, whiteouts
-- remove), one row each, for host-wide queries by name without rescanning.
CREATE TABLE IF NOT EXISTS layer_inventory (
    chain_id  TEXT PRIMARY KEY,
    scanner   INTEGER NOT NULL,      -- berth_inventory::SCANNER_VERSION
    inventory TEXT NOT NULL          -- berth_inventory::LayerInventory as JSON
);
CREATE TABLE IF NOT EXISTS image_packages (
    image_id  TEXT NOT NULL,
    name      TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    version   TEXT NOT NULL,
    source    TEXT NOT NULL,         -- the source package ('' when none)
    layer     INTEGER NOT NULL,      -- index of the layer that brought it
    package   TEXT NOT NULL          -- berth_inventory::Package as JSON
);
CREATE INDEX IF NOT EXISTS image_packages_by_image ON image_packages(image_id);
CREATE INDEX IF NOT EXISTS image_packages_by_name ON image_packages(name);
CREATE INDEX IF NOT EXISTS image_packages_by_source ON image_packages(source);
-- Version 10: the images whose packages were composed, and by which
-- scanner: an image with no package at all is inventoried too.
CREATE TABLE IF NOT EXISTS image_inventory (
    image_id TEXT PRIMARY KEY,
    scanner  INTEGER NOT NULL
);
";

/// One package of an image, as `image_packages` holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePackageRow {
    pub image_id: Digest,
    pub name: String,
    pub ecosystem: String,
    pub version: String,
    pub source: String,
    pub layer: i64,
    /// The whole package as JSON.
    pub package: String,
}

/// A network: its identity, and its configuration as JSON
/// (`berth_types::NetworkSpec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRow {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub created: String,
    pub spec: String,
}

/// An address a running container holds on a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRow {
    pub network_id: String,
    pub container_id: ContainerId,
    pub ip: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImageRow {
    pub id: Digest,
    pub config: Vec<u8>,
    pub layers: Vec<Digest>,
    pub size: u64,
    pub parent: Option<Digest>,
    pub created: String,
    pub added: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRow {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub size: u64,
    pub blob: Option<Digest>,
}

/// The compressed blob a push sends for a layer stored uncompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompressedBlob {
    pub blob: Digest,
    pub size: u64,
    pub media_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRow {
    pub id: ContainerId,
    pub name: String,
    pub image_id: Digest,
    pub image: String,
    pub created: String,
    pub config: String,
    pub host_config: String,
    pub removing: bool,
}

/// A container being created: it holds `image_id` and `layers` until its
/// own row is written (or a crash leaves the claim for garbage collection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRow {
    pub container_id: ContainerId,
    pub image_id: Digest,
    pub layers: Vec<Digest>,
}

/// A step of `berth build` whose result is kept (the `build_cache` table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheRow {
    pub key: Digest,
    /// The image the step produced.
    pub image_id: Digest,
    /// Unix ns.
    pub created: i64,
    /// Unix ns.
    pub last_used: i64,
    /// 1 when made, one more for each reuse.
    pub uses: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRow {
    pub name: String,
    pub created: String,
    pub labels: String,
    /// The local driver's options (`-o type=… device=… o=…`), a JSON object.
    pub options: String,
}

/// An image row as SQLite returns it, before validation.
type RawImage = (String, Vec<u8>, String, i64, Option<String>, String, i64);
/// A container row as SQLite returns it, before validation.
type RawContainer = (String, String, String, String, String, String, String, bool);

pub struct Store {
    conn: Connection,
}

fn digest(s: String) -> Result<Digest> {
    Digest::parse(&s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

impl Store {
    /// Opens (creating if needed) `<root>/berth.db`.
    pub fn open(root: &Path) -> Result<Store> {
        let conn = Connection::open(root.join("berth.db"))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            // Version 3: a volumes table of version 2 gets its options column.
            let has_options: bool = tx.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('volumes') WHERE name = 'options'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !has_options {
                tx.execute_batch(
                    "ALTER TABLE volumes ADD COLUMN options TEXT NOT NULL DEFAULT '{}'",
                )?;
            }
            // Version 5: a build_cache table of version 4 counts its uses.
            let has_uses: bool = tx.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('build_cache') WHERE name = 'uses'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !has_uses {
                tx.execute_batch(
                    "ALTER TABLE build_cache ADD COLUMN uses INTEGER NOT NULL DEFAULT 1",
                )?;
            }
            let has_result: bool = tx.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('build_cache') WHERE name = 'result'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !has_result {
                tx.execute_batch(
                    "ALTER TABLE build_cache ADD COLUMN result INTEGER NOT NULL DEFAULT 0",
                )?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        }
        Ok(Store { conn })
    }

    /// Runs `f` in one IMMEDIATE transaction (the write lock is taken up
    /// front, so two writers never deadlock on an upgrade).
    pub fn transaction<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&Tx { c: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Read-only (or single-statement) access without an explicit transaction.
    pub fn read(&self) -> Tx<'_> {
        Tx { c: &self.conn }
    }
}

/// Queries, usable inside or outside a transaction.
pub struct Tx<'a> {
    c: &'a Connection,
}

impl Tx<'_> {
    // ---- images ----
    pub fn insert_image(&self, r: &ImageRow) -> Result<()> {
        let layers =
            serde_json::to_string(&r.layers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.c.execute(
            "INSERT OR IGNORE INTO images (id, config, layers, size, parent, created, added) VALUES (?1,?2,?3,?4,?5,?6,?7)",
            params![r.id.as_str(), r.config, layers, r.size as i64, r.parent.as_ref().map(|p| p.as_str()), r.created, r.added],
        )?;
        Ok(())
    }

    fn image_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawImage> {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
        ))
    }

    fn make_image(
        t: (String, Vec<u8>, String, i64, Option<String>, String, i64),
    ) -> Result<ImageRow> {
        let layers: Vec<Digest> =
            serde_json::from_str(&t.2).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(ImageRow {
            id: digest(t.0)?,
            config: t.1,
            layers,
            size: u64::try_from(t.3).unwrap_or(0),
            parent: t.4.map(digest).transpose()?,
            created: t.5,
            added: t.6,
        })
    }

    pub fn image(&self, id: &Digest) -> Result<Option<ImageRow>> {
        let t = self
            .c
            .query_row(
                "SELECT id, config, layers, size, parent, created, added FROM images WHERE id = ?1",
                [id.as_str()],
                Self::image_from_row,
            )
            .optional()?;
        t.map(Self::make_image).transpose()
    }

    pub fn images(&self) -> Result<Vec<ImageRow>> {
        let mut st = self.c.prepare(
            "SELECT id, config, layers, size, parent, created, added FROM images ORDER BY added DESC",
        )?;
        let rows = st.query_map([], Self::image_from_row)?;
        rows.map(|r| Self::make_image(r?)).collect()
    }

    /// Image IDs whose hex starts with `prefix` (at most 2, enough to tell unique from ambiguous).
    pub fn image_ids_with_prefix(&self, prefix: &str) -> Result<Vec<Digest>> {
        let mut st = self
            .c
            .prepare("SELECT id FROM images WHERE substr(id, 8, ?2) = ?1 LIMIT 2")?;
        let rows = st.query_map(params![prefix, prefix.len() as i64], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|r| digest(r?)).collect()
    }

    pub fn delete_image(&self, id: &Digest) -> Result<()> {
        self.c
            .execute("DELETE FROM tags WHERE image_id = ?1", [id.as_str()])?;
        self.c.execute(
            "DELETE FROM repo_digests WHERE image_id = ?1",
            [id.as_str()],
        )?;
        self.c
            .execute("DELETE FROM build_cache WHERE image_id = ?1", [id.as_str()])?;
        self.c.execute(
            "DELETE FROM image_packages WHERE image_id = ?1",
            [id.as_str()],
        )?;
        self.c.execute(
            "DELETE FROM image_inventory WHERE image_id = ?1",
            [id.as_str()],
        )?;
        self.c
            .execute("DELETE FROM images WHERE id = ?1", [id.as_str()])?;
        Ok(())
    }

    // ---- the package inventory ----
    pub fn put_layer_inventory(&self, chain_id: &Digest, scanner: i64, json: &str) -> Result<()> {
        self.c.execute(
            "INSERT OR REPLACE INTO layer_inventory (chain_id, scanner, inventory) VALUES (?1,?2,?3)",
            params![chain_id.as_str(), scanner, json],
        )?;
        Ok(())
    }
    /// A layer's inventory: (scanner version, JSON), if it was made.
    pub fn layer_inventory(&self, chain_id: &Digest) -> Result<Option<(i64, String)>> {
        Ok(self
            .c
            .query_row(
                "SELECT scanner, inventory FROM layer_inventory WHERE chain_id = ?1",
                [chain_id.as_str()],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?)
    }
    /// Replaces an image's package rows, and records that `scanner`
    /// composed them.
    pub fn set_image_packages(
        &self,
        image_id: &Digest,
        scanner: i64,
        rows: &[ImagePackageRow],
    ) -> Result<()> {
        self.c.execute(
            "DELETE FROM image_packages WHERE image_id = ?1",
            [image_id.as_str()],
        )?;
        let mut st = self.c.prepare_cached(
            "INSERT INTO image_packages (image_id, name, ecosystem, version, source, layer, package) VALUES (?1,?2,?3,?4,?5,?6,?7)",
        )?;
        for r in rows {
            st.execute(params![
                image_id.as_str(),
                r.name,
                r.ecosystem,
                r.version,
                r.source,
                r.layer,
                r.package
            ])?;
        }
        self.mark_inventoried(image_id, scanner)
    }
    /// An image's package rows are its parent's (a layer that brought no
    /// package and hid none): copied in one statement.
    pub fn copy_image_packages(&self, from: &Digest, to: &Digest, scanner: i64) -> Result<()> {
        self.c.execute(
            "DELETE FROM image_packages WHERE image_id = ?1",
            [to.as_str()],
        )?;
        self.c.execute(
            "INSERT INTO image_packages (image_id, name, ecosystem, version, source, layer, package) \
             SELECT ?2, name, ecosystem, version, source, layer, package FROM image_packages WHERE image_id = ?1",
            params![from.as_str(), to.as_str()],
        )?;
        self.mark_inventoried(to, scanner)
    }
    fn mark_inventoried(&self, image_id: &Digest, scanner: i64) -> Result<()> {
        self.c.execute(
            "INSERT OR REPLACE INTO image_inventory (image_id, scanner) VALUES (?1, ?2)",
            params![image_id.as_str(), scanner],
        )?;
        Ok(())
    }
    /// Whether `scanner` composed the image's packages.
    pub fn image_inventoried(&self, image_id: &Digest, scanner: i64) -> Result<bool> {
        Ok(self
            .c
            .query_row(
                "SELECT 1 FROM image_inventory WHERE image_id = ?1 AND scanner = ?2",
                params![image_id.as_str(), scanner],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
    /// The images whose packages `scanner` did not compose (made before
    /// the inventory, by an older scanner, or whose inventory failed).
    pub fn images_not_inventoried(&self, scanner: i64) -> Result<Vec<Digest>> {
        let mut st = self.c.prepare_cached(
            "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM image_inventory WHERE scanner = ?1)",
        )?;
        let rows = st.query_map([scanner], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest(r?)).collect()
    }
    /// An image's package rows (none: not inventoried, or no packages).
    pub fn image_packages(&self, image_id: &Digest) -> Result<Vec<ImagePackageRow>> {
        self.package_rows(
            "SELECT image_id, name, ecosystem, version, source, layer, package FROM image_packages WHERE image_id = ?1",
            image_id.as_str(),
        )
    }
    /// Every image's packages named `name` (or built from the source
    /// package `name`); all of them with `None`.
    pub fn packages_named(&self, name: Option<&str>) -> Result<Vec<ImagePackageRow>> {
        match name {
            Some(n) => self.package_rows(
                "SELECT image_id, name, ecosystem, version, source, layer, package FROM image_packages WHERE name = ?1 OR source = ?1",
                n,
            ),
            None => self.package_rows(
                "SELECT image_id, name, ecosystem, version, source, layer, package FROM image_packages WHERE ?1 = ?1",
                "",
            ),
        }
    }
    fn package_rows(&self, sql: &str, arg: &str) -> Result<Vec<ImagePackageRow>> {
        let mut st = self.c.prepare_cached(sql)?;
        let rows = st.query_map([arg], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, ecosystem, version, source, layer, package) = row?;
            out.push(ImagePackageRow {
                image_id: digest(id)?,
                name,
                ecosystem,
                version,
                source,
                layer,
                package,
            });
        }
        Ok(out)
    }

    /// Images whose parent is `id`.
    pub fn children(&self, id: &Digest) -> Result<Vec<Digest>> {
        let mut st = self.c.prepare("SELECT id FROM images WHERE parent = ?1")?;
        let rows = st.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest(r?)).collect()
    }

    // ---- build cache ----
    /// The image a build step with this key produced, if it still exists.
    pub fn cached_step(&self, key: &Digest) -> Result<Option<Digest>> {
        let id: Option<String> = self
            .c
            .query_row(
                "SELECT c.image_id FROM build_cache c JOIN images i ON i.id = c.image_id WHERE c.key = ?1",
                [key.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        id.map(digest).transpose()
    }

    /// Records (or moves) a step's result; `now` is unix ns.
    pub fn cache_step(&self, key: &Digest, image: &Digest, now: i64) -> Result<()> {
        self.c.execute(
            "INSERT INTO build_cache (key, image_id, created, last_used) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT(key) DO UPDATE SET image_id = excluded.image_id, last_used = excluded.last_used",
            params![key.as_str(), image.as_str(), now],
        )?;
        Ok(())
    }

    /// A reuse of a step's result: its last use and its count of uses.
    pub fn touch_cached_step(&self, key: &Digest, now: i64) -> Result<()> {
        self.c.execute(
            "UPDATE build_cache SET last_used = ?2, uses = uses + 1 WHERE key = ?1",
            params![key.as_str(), now],
        )?;
        Ok(())
    }

    /// Every cache row, oldest first.
    pub fn cache_rows(&self) -> Result<Vec<CacheRow>> {
        let mut st = self.c.prepare(
            "SELECT key, image_id, created, last_used, uses FROM build_cache ORDER BY created, key",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (k, i, created, last_used, uses) = r?;
            Ok(CacheRow {
                key: digest(k)?,
                image_id: digest(i)?,
                created,
                last_used,
                uses: u64::try_from(uses).unwrap_or(0),
            })
        })
        .collect()
    }

    /// The digest of a context file hashed before with the same stat.
    pub fn file_digest(&self, path: &str, stat: &str) -> Result<Option<String>> {
        Ok(self
            .c
            .query_row(
                "SELECT digest FROM build_file_digests WHERE path = ?1 AND stat = ?2",
                params![path, stat],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_file_digest(&self, path: &str, stat: &str, digest: &str) -> Result<()> {
        self.c.execute(
            "INSERT OR REPLACE INTO build_file_digests (path, stat, digest) VALUES (?1, ?2, ?3)",
            params![path, stat, digest],
        )?;
        Ok(())
    }

    /// Marks the image a build ended on (listed by `images` even untagged).
    pub fn mark_build_result(&self, image: &Digest) -> Result<()> {
        self.c.execute(
            "UPDATE build_cache SET result = 1 WHERE image_id = ?1",
            [image.as_str()],
        )?;
        Ok(())
    }

    /// Images that exist only as build steps (not a build's result): what
    /// `images` leaves out without `-a`, as BuildKit's cache is not listed.
    pub fn cache_only_images(&self) -> Result<std::collections::HashSet<Digest>> {
        let mut st = self
            .c
            .prepare("SELECT image_id FROM build_cache GROUP BY image_id HAVING MAX(result) = 0")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest(r?)).collect()
    }

    /// Forgets one step (its image stays).
    pub fn delete_cache_row(&self, key: &Digest) -> Result<()> {
        self.c
            .execute("DELETE FROM build_cache WHERE key = ?1", [key.as_str()])?;
        Ok(())
    }

    /// Images that some cache row points at.
    pub fn is_cached_image(&self, image: &Digest) -> Result<bool> {
        let n: i64 = self.c.query_row(
            "SELECT COUNT(*) FROM build_cache WHERE image_id = ?1",
            [image.as_str()],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    pub fn delete_cache_rows_of(&self, image: &Digest) -> Result<()> {
        self.c.execute(
            "DELETE FROM build_cache WHERE image_id = ?1",
            [image.as_str()],
        )?;
        Ok(())
    }

    // ---- tags ----
    /// Points `reference` (fully qualified) at `image`, returning the image it pointed at before.
    pub fn set_tag(&self, reference: &str, image: &Digest) -> Result<Option<Digest>> {
        let old = self.tag(reference)?;
        self.c.execute(
            "INSERT INTO tags (reference, image_id) VALUES (?1, ?2) ON CONFLICT(reference) DO UPDATE SET image_id = excluded.image_id",
            params![reference, image.as_str()],
        )?;
        Ok(old.filter(|o| o != image))
    }
    pub fn tag(&self, reference: &str) -> Result<Option<Digest>> {
        let s: Option<String> = self
            .c
            .query_row(
                "SELECT image_id FROM tags WHERE reference = ?1",
                [reference],
                |r| r.get(0),
            )
            .optional()?;
        s.map(digest).transpose()
    }
    pub fn remove_tag(&self, reference: &str) -> Result<bool> {
        Ok(self
            .c
            .execute("DELETE FROM tags WHERE reference = ?1", [reference])?
            > 0)
    }
    pub fn tags_of(&self, image: &Digest) -> Result<Vec<String>> {
        let mut st = self
            .c
            .prepare("SELECT reference FROM tags WHERE image_id = ?1 ORDER BY reference")?;
        let rows = st.query_map([image.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
    pub fn all_tags(&self) -> Result<Vec<(String, Digest)>> {
        let mut st = self
            .c
            .prepare("SELECT reference, image_id FROM tags ORDER BY reference")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (a, b) = r?;
            Ok((a, digest(b)?))
        })
        .collect()
    }

    // ---- repo digests ----
    /// Records that `repository@digest` (a manifest) is `image`; returns
    /// the image it named before, if another.
    pub fn set_repo_digest(
        &self,
        repository: &str,
        digest: &Digest,
        image: &Digest,
    ) -> Result<Option<Digest>> {
        let old = self.repo_digest(repository, digest)?;
        self.c.execute(
            "INSERT INTO repo_digests (repository, digest, image_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT(repository, digest) DO UPDATE SET image_id = excluded.image_id",
            params![repository, digest.as_str(), image.as_str()],
        )?;
        Ok(old.filter(|o| o != image))
    }
    /// Removes `repository@digest`; whether there was one.
    pub fn remove_repo_digest(&self, repository: &str, digest: &Digest) -> Result<bool> {
        Ok(self.c.execute(
            "DELETE FROM repo_digests WHERE repository = ?1 AND digest = ?2",
            [repository, digest.as_str()],
        )? > 0)
    }
    /// The image `repository@digest` names.
    pub fn repo_digest(&self, repository: &str, digest: &Digest) -> Result<Option<Digest>> {
        let s: Option<String> = self
            .c
            .query_row(
                "SELECT image_id FROM repo_digests WHERE repository = ?1 AND digest = ?2",
                [repository, digest.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        s.map(crate::digest).transpose()
    }
    /// `repository@digest` of every digest reference to `image`, sorted.
    pub fn repo_digests_of(&self, image: &Digest) -> Result<Vec<(String, Digest)>> {
        let mut st = self.c.prepare(
            "SELECT repository, digest FROM repo_digests WHERE image_id = ?1 ORDER BY repository, digest",
        )?;
        let rows = st.query_map([image.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| {
            let (repo, d) = r?;
            Ok((repo, crate::digest(d)?))
        })
        .collect()
    }

    // ---- compressed blobs and blob sources (push) ----
    /// The compressed blob kept for the layer content `diff_id`.
    pub fn compressed_blob(&self, diff_id: &Digest) -> Result<Option<CompressedBlob>> {
        let t = self
            .c
            .query_row(
                "SELECT blob, size, media_type FROM compressed_blobs WHERE diff_id = ?1",
                [diff_id.as_str()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        t.map(|(blob, size, media_type)| {
            Ok(CompressedBlob {
                blob: digest(blob)?,
                size: u64::try_from(size)
                    .map_err(|_| StoreError::Corrupt(format!("blob size {size}")))?,
                media_type,
            })
        })
        .transpose()
    }
    /// Records the compressed form of the layer content `diff_id`.
    pub fn set_compressed_blob(&self, diff_id: &Digest, c: &CompressedBlob) -> Result<()> {
        self.c.execute(
            "INSERT OR REPLACE INTO compressed_blobs (diff_id, blob, size, media_type) VALUES (?1, ?2, ?3, ?4)",
            params![diff_id.as_str(), c.blob.as_str(), c.size as i64, c.media_type],
        )?;
        Ok(())
    }
    /// Records that `registry` holds `blob` in `repository`.
    pub fn add_blob_source(&self, blob: &Digest, registry: &str, repository: &str) -> Result<()> {
        self.c.execute(
            "INSERT OR IGNORE INTO blob_sources (blob, registry, repository) VALUES (?1, ?2, ?3)",
            params![blob.as_str(), registry, repository],
        )?;
        Ok(())
    }
    /// The repositories of `registry` known to hold `blob`, sorted.
    pub fn blob_sources(&self, blob: &Digest, registry: &str) -> Result<Vec<String>> {
        let mut st = self.c.prepare(
            "SELECT repository FROM blob_sources WHERE blob = ?1 AND registry = ?2 ORDER BY repository",
        )?;
        let rows = st.query_map([blob.as_str(), registry], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    // ---- layers ----
    pub fn insert_layer(&self, l: &LayerRow) -> Result<()> {
        self.c.execute(
            "INSERT OR IGNORE INTO layers (chain_id, diff_id, parent, size, blob) VALUES (?1,?2,?3,?4,?5)",
            params![l.chain_id.as_str(), l.diff_id.as_str(), l.parent.as_ref().map(|p| p.as_str()), l.size as i64, l.blob.as_ref().map(|b| b.as_str())],
        )?;
        Ok(())
    }
    pub fn layer(&self, chain_id: &Digest) -> Result<Option<LayerRow>> {
        let t = self
            .c
            .query_row(
                "SELECT chain_id, diff_id, parent, size, blob FROM layers WHERE chain_id = ?1",
                [chain_id.as_str()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()?;
        t.map(|t| {
            Ok(LayerRow {
                chain_id: digest(t.0)?,
                diff_id: digest(t.1)?,
                parent: t.2.map(digest).transpose()?,
                size: u64::try_from(t.3).unwrap_or(0),
                blob: t.4.map(digest).transpose()?,
            })
        })
        .transpose()
    }
    /// Whether some layer row already stores its tarball as `blob`, or a
    /// push keeps it as a layer's compressed form.
    pub fn layer_with_blob(&self, blob: &Digest) -> Result<bool> {
        let n: i64 = self.c.query_row(
            "SELECT (SELECT count(*) FROM layers WHERE blob = ?1) + \
                    (SELECT count(*) FROM compressed_blobs WHERE blob = ?1)",
            [blob.as_str()],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Whether any image still uses the layer `chain_id`.
    pub fn layer_in_use(&self, chain_id: &Digest) -> Result<bool> {
        let pattern = format!("%\"{}\"%", chain_id.as_str());
        let n: i64 = self.c.query_row(
            "SELECT count(*) FROM images WHERE layers LIKE ?1",
            [pattern],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }
    /// Deletes the layer row; when no other layer has its content, the
    /// record of its compressed blob goes too, and that blob is returned
    /// (for the caller to remove once no row stores it).
    pub fn delete_layer(&self, chain_id: &Digest) -> Result<Option<Digest>> {
        let diff_id: Option<String> = self
            .c
            .query_row(
                "SELECT diff_id FROM layers WHERE chain_id = ?1",
                [chain_id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        self.c.execute(
            "DELETE FROM layers WHERE chain_id = ?1",
            [chain_id.as_str()],
        )?;
        self.c.execute(
            "DELETE FROM layer_inventory WHERE chain_id = ?1",
            [chain_id.as_str()],
        )?;
        let Some(diff_id) = diff_id else {
            return Ok(None);
        };
        let others: i64 = self.c.query_row(
            "SELECT count(*) FROM layers WHERE diff_id = ?1",
            [&diff_id],
            |r| r.get(0),
        )?;
        if others > 0 {
            return Ok(None);
        }
        let blob: Option<String> = self
            .c
            .query_row(
                "SELECT blob FROM compressed_blobs WHERE diff_id = ?1",
                [&diff_id],
                |r| r.get(0),
            )
            .optional()?;
        self.c.execute(
            "DELETE FROM compressed_blobs WHERE diff_id = ?1",
            [&diff_id],
        )?;
        blob.map(digest).transpose()
    }
    /// Records `blob` as the tarball of a layer stored without one (load).
    pub fn set_layer_blob_if_missing(&self, chain_id: &Digest, blob: &Digest) -> Result<()> {
        self.c.execute(
            "UPDATE layers SET blob = ?2 WHERE chain_id = ?1 AND blob IS NULL",
            params![chain_id.as_str(), blob.as_str()],
        )?;
        Ok(())
    }
    pub fn layers(&self) -> Result<Vec<Digest>> {
        let mut st = self.c.prepare("SELECT chain_id FROM layers")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest(r?)).collect()
    }

    // ---- containers ----
    pub fn insert_container(&self, r: &ContainerRow) -> Result<()> {
        let res = self.c.execute(
            "INSERT INTO containers (id, name, image_id, image, created, config, host_config, removing) VALUES (?1,?2,?3,?4,?5,?6,?7,0)",
            params![r.id.as_str(), r.name, r.image_id.as_str(), r.image, r.created, r.config, r.host_config],
        );
        match res {
            Err(e) if is_unique_violation(&e) => Err(StoreError::NameInUse(r.name.clone())),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    fn container_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawContainer> {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ))
    }
    fn make_container(
        t: (String, String, String, String, String, String, String, bool),
    ) -> Result<ContainerRow> {
        Ok(ContainerRow {
            id: ContainerId::parse(&t.0).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            name: t.1,
            image_id: digest(t.2)?,
            image: t.3,
            created: t.4,
            config: t.5,
            host_config: t.6,
            removing: t.7,
        })
    }
    const CONTAINER_COLS: &'static str =
        "id, name, image_id, image, created, config, host_config, removing";

    pub fn container(&self, id: &ContainerId) -> Result<Option<ContainerRow>> {
        let q = format!(
            "SELECT {} FROM containers WHERE id = ?1",
            Self::CONTAINER_COLS
        );
        let t = self
            .c
            .query_row(&q, [id.as_str()], Self::container_from_row)
            .optional()?;
        t.map(Self::make_container).transpose()
    }
    pub fn container_by_name(&self, name: &str) -> Result<Option<ContainerRow>> {
        let q = format!(
            "SELECT {} FROM containers WHERE name = ?1",
            Self::CONTAINER_COLS
        );
        let t = self
            .c
            .query_row(&q, [name], Self::container_from_row)
            .optional()?;
        t.map(Self::make_container).transpose()
    }
    /// Containers whose ID starts with `prefix` (at most 2).
    pub fn containers_with_prefix(&self, prefix: &str) -> Result<Vec<ContainerRow>> {
        // A range of the primary key (IDs are lower-case hex: every ID
        // that starts with the prefix sorts below the prefix and a `g`),
        // not a scan of every row.
        let q = format!(
            "SELECT {} FROM containers WHERE id >= ?1 AND id < ?2 LIMIT 2",
            Self::CONTAINER_COLS
        );
        let mut st = self.c.prepare_cached(&q)?;
        let rows = st.query_map(
            params![prefix, format!("{prefix}g")],
            Self::container_from_row,
        )?;
        rows.map(|r| Self::make_container(r?)).collect()
    }
    /// Every container, newest first.
    pub fn containers(&self) -> Result<Vec<ContainerRow>> {
        let q = format!(
            "SELECT {} FROM containers ORDER BY created DESC, rowid DESC",
            Self::CONTAINER_COLS
        );
        let mut st = self.c.prepare(&q)?;
        let rows = st.query_map([], Self::container_from_row)?;
        rows.map(|r| Self::make_container(r?)).collect()
    }
    /// Containers whose config JSON holds `text` (a label's name): a filter
    /// in SQL, so a caller looking for a few does not read them all.
    pub fn containers_mentioning(&self, text: &str) -> Result<Vec<ContainerRow>> {
        let q = format!(
            "SELECT {} FROM containers WHERE instr(config, ?1) > 0",
            Self::CONTAINER_COLS
        );
        let mut st = self.c.prepare(&q)?;
        let rows = st.query_map([text], Self::container_from_row)?;
        rows.map(|r| Self::make_container(r?)).collect()
    }
    pub fn containers_using_image(&self, image: &Digest) -> Result<Vec<ContainerId>> {
        let mut st = self
            .c
            .prepare("SELECT id FROM containers WHERE image_id = ?1")?;
        let rows = st.query_map([image.as_str()], |r| r.get::<_, String>(0))?;
        rows.map(|r| ContainerId::parse(&r?).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }
    pub fn rename_container(&self, id: &ContainerId, name: &str) -> Result<()> {
        let res = self.c.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id.as_str(), name],
        );
        match res {
            Err(e) if is_unique_violation(&e) => Err(StoreError::NameInUse(name.to_string())),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }
    pub fn update_container_host_config(&self, id: &ContainerId, host_config: &str) -> Result<()> {
        self.c.execute(
            "UPDATE containers SET host_config = ?2 WHERE id = ?1",
            params![id.as_str(), host_config],
        )?;
        Ok(())
    }
    pub fn set_removing(&self, id: &ContainerId) -> Result<()> {
        self.c.execute(
            "UPDATE containers SET removing = 1 WHERE id = ?1",
            [id.as_str()],
        )?;
        Ok(())
    }
    pub fn delete_container(&self, id: &ContainerId) -> Result<()> {
        self.c
            .execute("DELETE FROM containers WHERE id = ?1", [id.as_str()])?;
        Ok(())
    }

    // ---- image claims (containers being created) ----
    pub fn insert_claim(&self, c: &ClaimRow) -> Result<()> {
        let layers =
            serde_json::to_string(&c.layers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.c.execute(
            "INSERT INTO image_claims (container_id, image_id, layers) VALUES (?1, ?2, ?3)",
            params![c.container_id.as_str(), c.image_id.as_str(), layers],
        )?;
        Ok(())
    }
    pub fn claims(&self) -> Result<Vec<ClaimRow>> {
        let mut st = self
            .c
            .prepare("SELECT container_id, image_id, layers FROM image_claims")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|r| {
            let (id, image, layers) = r?;
            Ok(ClaimRow {
                container_id: ContainerId::parse(&id)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                image_id: digest(image)?,
                layers: serde_json::from_str(&layers)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            })
        })
        .collect()
    }
    pub fn claim(&self, container: &ContainerId) -> Result<Option<ClaimRow>> {
        Ok(self
            .claims()?
            .into_iter()
            .find(|c| c.container_id == *container))
    }
    /// The containers being created from `image`.
    pub fn claims_on_image(&self, image: &Digest) -> Result<Vec<ContainerId>> {
        let mut st = self
            .c
            .prepare("SELECT container_id FROM image_claims WHERE image_id = ?1")?;
        let rows = st.query_map([image.as_str()], |r| r.get::<_, String>(0))?;
        rows.map(|r| ContainerId::parse(&r?).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }
    pub fn delete_claim(&self, container: &ContainerId) -> Result<()> {
        self.c.execute(
            "DELETE FROM image_claims WHERE container_id = ?1",
            [container.as_str()],
        )?;
        Ok(())
    }

    // ---- volumes ----
    // ---- networks ----
    pub fn insert_network(&self, n: &NetworkRow) -> Result<()> {
        let res = self.c.execute(
            "INSERT INTO networks (id, name, driver, created, spec) VALUES (?1,?2,?3,?4,?5)",
            params![n.id, n.name, n.driver, n.created, n.spec],
        );
        match res {
            Err(e) if is_unique_violation(&e) => Err(StoreError::NetworkExists(n.name.clone())),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }
    fn network_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkRow> {
        Ok(NetworkRow {
            id: r.get(0)?,
            name: r.get(1)?,
            driver: r.get(2)?,
            created: r.get(3)?,
            spec: r.get(4)?,
        })
    }
    /// Every network, oldest first.
    pub fn networks(&self) -> Result<Vec<NetworkRow>> {
        let mut st = self.c.prepare(
            "SELECT id, name, driver, created, spec FROM networks ORDER BY created, name",
        )?;
        let rows = st.query_map([], Self::network_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
    pub fn network(&self, id: &str) -> Result<Option<NetworkRow>> {
        Ok(self
            .c
            .query_row(
                "SELECT id, name, driver, created, spec FROM networks WHERE id = ?1",
                [id],
                Self::network_from_row,
            )
            .optional()?)
    }
    pub fn network_by_name(&self, name: &str) -> Result<Option<NetworkRow>> {
        Ok(self
            .c
            .query_row(
                "SELECT id, name, driver, created, spec FROM networks WHERE name = ?1",
                [name],
                Self::network_from_row,
            )
            .optional()?)
    }
    pub fn update_network_spec(&self, id: &str, spec: &str) -> Result<()> {
        self.c.execute(
            "UPDATE networks SET spec = ?2 WHERE id = ?1",
            params![id, spec],
        )?;
        Ok(())
    }
    /// Removes a network and the (stale) endpoints still naming it.
    pub fn delete_network(&self, id: &str) -> Result<bool> {
        self.c
            .execute("DELETE FROM endpoints WHERE network_id = ?1", [id])?;
        Ok(self.c.execute("DELETE FROM networks WHERE id = ?1", [id])? > 0)
    }

    // ---- endpoints (leases) ----
    /// Records `container`'s address on `network`; a taken address is
    /// [`StoreError::AddressInUse`].
    pub fn insert_endpoint(&self, e: &EndpointRow) -> Result<()> {
        let res = self.c.execute(
            "INSERT INTO endpoints (network_id, container_id, ip) VALUES (?1,?2,?3)",
            params![e.network_id, e.container_id.as_str(), e.ip],
        );
        match res {
            Err(err) if is_unique_violation(&err) => Err(StoreError::AddressInUse(e.ip.clone())),
            Err(err) => Err(err.into()),
            Ok(_) => Ok(()),
        }
    }
    fn endpoint_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    }
    fn make_endpoint(t: (String, String, String)) -> Result<EndpointRow> {
        Ok(EndpointRow {
            network_id: t.0,
            container_id: ContainerId::parse(&t.1)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ip: t.2,
        })
    }
    pub fn endpoints_on(&self, network_id: &str) -> Result<Vec<EndpointRow>> {
        let mut st = self
            .c
            .prepare("SELECT network_id, container_id, ip FROM endpoints WHERE network_id = ?1")?;
        let rows = st.query_map([network_id], Self::endpoint_from_row)?;
        rows.map(|r| Self::make_endpoint(r?)).collect()
    }
    pub fn endpoints_of(&self, container: &ContainerId) -> Result<Vec<EndpointRow>> {
        let mut st = self.c.prepare(
            "SELECT network_id, container_id, ip FROM endpoints WHERE container_id = ?1",
        )?;
        let rows = st.query_map([container.as_str()], Self::endpoint_from_row)?;
        rows.map(|r| Self::make_endpoint(r?)).collect()
    }
    pub fn all_endpoints(&self) -> Result<Vec<EndpointRow>> {
        let mut st = self
            .c
            .prepare("SELECT network_id, container_id, ip FROM endpoints")?;
        let rows = st.query_map([], Self::endpoint_from_row)?;
        rows.map(|r| Self::make_endpoint(r?)).collect()
    }
    pub fn delete_endpoint(&self, network_id: &str, container: &ContainerId) -> Result<bool> {
        Ok(self.c.execute(
            "DELETE FROM endpoints WHERE network_id = ?1 AND container_id = ?2",
            params![network_id, container.as_str()],
        )? > 0)
    }
    pub fn delete_endpoints_of(&self, container: &ContainerId) -> Result<usize> {
        Ok(self.c.execute(
            "DELETE FROM endpoints WHERE container_id = ?1",
            [container.as_str()],
        )?)
    }

    pub fn insert_volume(&self, v: &VolumeRow) -> Result<()> {
        let res = self.c.execute(
            "INSERT INTO volumes (name, created, labels, options) VALUES (?1, ?2, ?3, ?4)",
            params![v.name, v.created, v.labels, v.options],
        );
        match res {
            Err(e) if is_unique_violation(&e) => Err(StoreError::VolumeExists(v.name.clone())),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }
    pub fn volume(&self, name: &str) -> Result<Option<VolumeRow>> {
        Ok(self
            .c
            .query_row(
                "SELECT name, created, labels, options FROM volumes WHERE name = ?1",
                [name],
                |r| {
                    Ok(VolumeRow {
                        name: r.get(0)?,
                        created: r.get(1)?,
                        labels: r.get(2)?,
                        options: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }
    pub fn volumes(&self) -> Result<Vec<VolumeRow>> {
        let mut st = self
            .c
            .prepare("SELECT name, created, labels, options FROM volumes ORDER BY name")?;
        let rows = st.query_map([], |r| {
            Ok(VolumeRow {
                name: r.get(0)?,
                created: r.get(1)?,
                labels: r.get(2)?,
                options: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
    pub fn delete_volume(&self, name: &str) -> Result<bool> {
        Ok(self
            .c
            .execute("DELETE FROM volumes WHERE name = ?1", [name])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(b: u8) -> ContainerId {
        ContainerId::from_random([b; 32])
    }

    fn row(b: u8, name: &str, image: &Digest) -> ContainerRow {
        ContainerRow {
            id: cid(b),
            name: name.into(),
            image_id: image.clone(),
            image: "bb".into(),
            created: format!("2026-01-01T00:00:0{b}Z"),
            config: "{}".into(),
            host_config: "{}".into(),
            removing: false,
        }
    }

    #[test]
    fn names_are_unique_and_prefixes_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let img = Digest::of_bytes(b"cfg");
        s.transaction(|t| t.insert_container(&row(1, "a", &img)))
            .unwrap();
        let err = s
            .transaction(|t| t.insert_container(&row(2, "a", &img)))
            .unwrap_err();
        assert!(matches!(err, StoreError::NameInUse(n) if n == "a"));
        s.transaction(|t| t.insert_container(&row(2, "b", &img)))
            .unwrap();
        let t = s.read();
        assert_eq!(t.containers_with_prefix("0101").unwrap().len(), 1);
        assert_eq!(t.containers().unwrap()[0].name, "b");
        assert_eq!(t.containers_using_image(&img).unwrap().len(), 2);
        t.rename_container(&cid(2), "c").unwrap();
        assert!(t.rename_container(&cid(1), "c").is_err());
    }

    #[test]
    fn claims_hold_an_image_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let img = Digest::of_bytes(b"cfg");
        let claim = ClaimRow {
            container_id: cid(7),
            image_id: img.clone(),
            layers: vec![Digest::of_bytes(b"layer")],
        };
        s.transaction(|t| t.insert_claim(&claim)).unwrap();
        let t = s.read();
        assert_eq!(t.claims_on_image(&img).unwrap(), vec![cid(7)]);
        assert_eq!(t.claim(&cid(7)).unwrap(), Some(claim));
        assert!(t.insert_claim(&t.claim(&cid(7)).unwrap().unwrap()).is_err());
        t.delete_claim(&cid(7)).unwrap();
        assert!(t.claims().unwrap().is_empty());
    }

    #[test]
    fn a_version_6_database_gains_the_push_tables() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("berth.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE layers (chain_id TEXT PRIMARY KEY, diff_id TEXT NOT NULL, parent TEXT, size INTEGER NOT NULL, blob TEXT); PRAGMA user_version = 6;",
            )
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let t = s.read();
        let d =
            |b: u8| Digest::parse(&format!("sha256:{}", format!("{b:02x}").repeat(32))).unwrap();
        let layer = LayerRow {
            chain_id: d(1),
            diff_id: d(1),
            parent: None,
            size: 3,
            blob: Some(d(2)),
        };
        t.insert_layer(&layer).unwrap();
        let gz = CompressedBlob {
            blob: d(3),
            size: 9,
            media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
        };
        t.set_compressed_blob(&d(1), &gz).unwrap();
        assert_eq!(t.compressed_blob(&d(1)).unwrap(), Some(gz));
        // The compressed blob is kept as long as it is recorded.
        assert!(t.layer_with_blob(&d(3)).unwrap());
        t.add_blob_source(&d(3), "127.0.0.1:5000", "b").unwrap();
        t.add_blob_source(&d(3), "127.0.0.1:5000", "a").unwrap();
        t.add_blob_source(&d(3), "127.0.0.1:5000", "a").unwrap();
        assert_eq!(t.blob_sources(&d(3), "127.0.0.1:5000").unwrap(), ["a", "b"]);
        assert!(t.blob_sources(&d(3), "elsewhere").unwrap().is_empty());
        // Deleting the last layer of that content forgets it and says which.
        assert_eq!(t.delete_layer(&d(1)).unwrap(), Some(d(3)));
        assert_eq!(t.compressed_blob(&d(1)).unwrap(), None);
        assert!(!t.layer_with_blob(&d(3)).unwrap());
    }

    #[test]
    fn a_version_5_database_gains_repo_digests() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("berth.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE images (id TEXT PRIMARY KEY, config BLOB NOT NULL, layers TEXT NOT NULL, size INTEGER NOT NULL, parent TEXT, created TEXT NOT NULL, added INTEGER NOT NULL); PRAGMA user_version = 5;",
            )
            .unwrap();
        }
        let mut s = Store::open(dir.path()).unwrap();
        let id = Digest::of_bytes(b"{}");
        let m = Digest::of_bytes(b"manifest");
        s.transaction(|t| -> Result<()> {
            t.insert_image(&ImageRow {
                id: id.clone(),
                config: b"{}".to_vec(),
                layers: vec![],
                size: 0,
                parent: None,
                created: "then".into(),
                added: 0,
            })?;
            assert_eq!(t.set_repo_digest("docker.io/library/bb", &m, &id)?, None);
            Ok(())
        })
        .unwrap();
        let t = s.read();
        assert_eq!(
            t.repo_digest("docker.io/library/bb", &m).unwrap(),
            Some(id.clone())
        );
        assert_eq!(
            t.repo_digests_of(&id).unwrap(),
            vec![("docker.io/library/bb".to_string(), m.clone())]
        );
        t.delete_image(&id).unwrap();
        assert_eq!(t.repo_digest("docker.io/library/bb", &m).unwrap(), None);
    }

    #[test]
    fn a_version_1_database_gains_the_claims_table() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("berth.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image_id TEXT NOT NULL, image TEXT NOT NULL, created TEXT NOT NULL, config TEXT NOT NULL, host_config TEXT NOT NULL, removing INTEGER NOT NULL DEFAULT 0); PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(s.read().claims().unwrap().is_empty());
    }

    #[test]
    fn a_version_2_database_gains_volume_options() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("berth.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE volumes (name TEXT PRIMARY KEY, created TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}'); \
                 INSERT INTO volumes (name, created) VALUES ('old', 'then'); PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let old = s.read().volume("old").unwrap().unwrap();
        assert_eq!(old.options, "{}");
        let new = VolumeRow {
            name: "new".into(),
            created: "now".into(),
            labels: "{}".into(),
            options: r#"{"type":"tmpfs"}"#.into(),
        };
        s.read().insert_volume(&new).unwrap();
        assert_eq!(s.read().volume("new").unwrap(), Some(new));
    }

    #[test]
    fn a_version_4_build_cache_counts_its_uses() {
        let dir = tempfile::tempdir().unwrap();
        let key = Digest::of_bytes(b"step");
        let img = Digest::of_bytes(b"image");
        {
            let c = Connection::open(dir.path().join("berth.db")).unwrap();
            c.execute_batch(&format!(
                "CREATE TABLE build_cache (key TEXT PRIMARY KEY, image_id TEXT NOT NULL, created INTEGER NOT NULL, last_used INTEGER NOT NULL); \
                 INSERT INTO build_cache VALUES ('{key}', '{img}', 5, 5); PRAGMA user_version = 4;"
            ))
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let t = s.read();
        assert_eq!(t.cache_rows().unwrap()[0].uses, 1);
        t.touch_cached_step(&key, 9).unwrap();
        let row = &t.cache_rows().unwrap()[0];
        assert_eq!((row.uses, row.created, row.last_used), (2, 5, 9));
        t.delete_cache_row(&key).unwrap();
        assert!(t.cache_rows().unwrap().is_empty());
    }

    #[test]
    fn images_tags_layers() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let l = Digest::of_bytes(b"layer");
        let id = Digest::of_bytes(b"cfg");
        s.transaction(|t| {
            t.insert_layer(&LayerRow {
                chain_id: l.clone(),
                diff_id: l.clone(),
                parent: None,
                size: 5,
                blob: None,
            })?;
            t.insert_image(&ImageRow {
                id: id.clone(),
                config: b"cfg".to_vec(),
                layers: vec![l.clone()],
                size: 5,
                parent: None,
                created: "x".into(),
                added: 1,
            })?;
            t.set_tag("docker.io/library/bb:latest", &id)
        })
        .unwrap();
        let t = s.read();
        assert_eq!(
            t.tag("docker.io/library/bb:latest").unwrap(),
            Some(id.clone())
        );
        assert!(t.layer_in_use(&l).unwrap());
        assert_eq!(
            t.image_ids_with_prefix(&id.hex()[..6]).unwrap(),
            vec![id.clone()]
        );
        t.delete_image(&id).unwrap();
        assert!(!t.layer_in_use(&l).unwrap());
        assert_eq!(t.tag("docker.io/library/bb:latest").unwrap(), None);
    }
}
