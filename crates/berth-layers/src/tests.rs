//! Behaviour of the crate as the engine uses it. These tests run as root (ownership,
//! device nodes and `trusted.*` xattrs need it), each in its own temp directory.

use std::fs;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_types::Digest;
use tar::{Builder, EntryType, Header};
use tempfile::TempDir;

use crate::*;

const MTIME: u64 = 1_600_000_000;

const OVERLAY: ApplyOptions = ApplyOptions {
    whiteouts: WhiteoutMode::Overlay,
    allow_devices: false,
    no_overwrite_dir_non_dir: false,
};
const IMPORT: ApplyOptions = ApplyOptions {
    whiteouts: WhiteoutMode::Skip,
    allow_devices: false,
    no_overwrite_dir_non_dir: false,
};

/// An in-memory layer tar.
struct Tar(Builder<Vec<u8>>);

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h
}

impl Tar {
    fn new() -> Self {
        Tar(Builder::new(Vec::new()))
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = header(EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        let mut h = header(EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn owned_file(&mut self, path: &str, uid: u64, gid: u64, data: &[u8]) -> &mut Self {
        let mut h = header(EntryType::Regular, 0o640, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(EntryType::Link, 0o644, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn fifo(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = header(EntryType::Fifo, mode, 0);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn device(&mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = header(kind, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// An entry whose name (and link name) bytes are written as given, bypassing the
    /// builder's refusal of `..` and absolute paths.
    fn raw(&mut self, kind: EntryType, name: &[u8], link: &[u8], data: &[u8]) -> &mut Self {
        let mut h = header(kind, 0o644, data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    /// A PAX extended header for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let mut h = header(EntryType::XHeader, 0o644, data.len() as u64);
        self.0
            .append_data(&mut h, "PaxHeaders/x", data.as_slice())
            .unwrap();
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        self.0.finish().unwrap();
        self.0.get_ref().clone()
    }
}

fn apply(tar: &[u8], dest: &Path, opts: &ApplyOptions) -> Result<LayerStats, LayerError> {
    apply_layer(Cursor::new(tar.to_vec()), dest, opts)
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn rootfs_round_trip_with_diff_id_over_the_whole_stream() {
    let long = format!("usr/share/{}/file.txt", "d".repeat(120));
    let mut tar = Tar::new();
    tar.dir("./", 0o755)
        .dir("bin", 0o755)
        .file("bin/sh", 0o755, b"#!busybox\n")
        .file("bin/su", 0o4755, b"setuid")
        .dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
        .owned_file("etc/shadow", 1000, 42, b"secret")
        .symlink("etc/mtab", "/proc/mounts")
        .symlink("usr-bin", "usr/bin")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .hardlink("usr/bin/sh", "bin/sh")
        .file(&long, 0o600, b"long name")
        .dir("tmp", 0o1777)
        .pax(&[("SCHILY.xattr.trusted.berth", b"fifo")])
        .fifo("tmp/fifo", 0o620)
        .pax(&[
            ("SCHILY.xattr.user.origin", b"berth"),
            (
                "SCHILY.xattr.security.capability",
                &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            ("mtime", b"1600000000.25"),
        ])
        .file("bin/ping", 0o755, b"ping")
        .dir("readonly", 0o555)
        .file("readonly/inside", 0o444, b"written after its directory");
    let mut bytes = tar.bytes();
    // GNU tar pads to a 10 KiB record: the digest covers the stream, not the members.
    bytes.extend_from_slice(&[0u8; 8192]);

    let dir = TempDir::new().unwrap();
    let dest = dir.path().join("rootfs");
    fs::create_dir(&dest).unwrap();
    let stats = apply(&bytes, &dest, &OVERLAY).unwrap();

    assert_eq!(stats.diff_id, Digest::of_bytes(&bytes));
    assert_eq!(stats.entries, 18);
    let content = [
        &b"#!busybox\n"[..],
        b"setuid",
        b"root:x:0:0::/root:/bin/sh\n",
        b"secret",
        b"long name",
        b"ping",
        b"written after its directory",
    ];
    // Docker's layer size: file content and each symlink's target length.
    let links = ["/proc/mounts", "usr/bin"];
    assert_eq!(
        stats.size,
        content.iter().map(|c| c.len() as u64).sum::<u64>()
            + links.iter().map(|l| l.len() as u64).sum::<u64>()
    );

    assert_eq!(fs::read(dest.join("bin/sh")).unwrap(), b"#!busybox\n");
    assert_eq!(mode_of(&dest.join("bin/sh")), 0o755);
    assert_eq!(mode_of(&dest.join("bin/su")), 0o4755);
    let shadow = fs::metadata(dest.join("etc/shadow")).unwrap();
    assert_eq!(
        (shadow.uid(), shadow.gid(), shadow.mode() & 0o7777),
        (1000, 42, 0o640)
    );
    assert_eq!(shadow.mtime(), MTIME as i64);
    assert_eq!(
        fs::read_link(dest.join("etc/mtab")).unwrap(),
        Path::new("/proc/mounts")
    );
    assert_eq!(
        fs::read_link(dest.join("usr-bin")).unwrap(),
        Path::new("usr/bin")
    );
    let sh = fs::metadata(dest.join("bin/sh")).unwrap();
    let linked = fs::metadata(dest.join("usr/bin/sh")).unwrap();
    assert_eq!((sh.ino(), sh.nlink()), (linked.ino(), 2));
    assert_eq!(fs::read(dest.join(&long)).unwrap(), b"long name");
    assert!(fs::metadata(dest.join("tmp/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(mode_of(&dest.join("tmp/fifo")), 0o620);
    let mut value = [0u8; 64];
    let n = rustix::fs::lgetxattr(dest.join("tmp/fifo"), "trusted.berth", &mut value[..]).unwrap();
    assert_eq!(&value[..n], b"fifo");
    assert_eq!(mode_of(&dest.join("tmp")), 0o1777);
    assert_eq!(
        fs::metadata(dest.join("tmp")).unwrap().mtime(),
        MTIME as i64
    );
    assert_eq!(mode_of(&dest.join("readonly")), 0o555);
    assert_eq!(
        fs::metadata(dest.join("readonly")).unwrap().mtime(),
        MTIME as i64
    );
    assert_eq!(fs::metadata(&dest).unwrap().mtime(), MTIME as i64);

    let ping = dest.join("bin/ping");
    let meta = fs::metadata(&ping).unwrap();
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (MTIME as i64, 250_000_000)
    );
    let mut value = [0u8; 64];
    let n = rustix::fs::getxattr(&ping, "user.origin", &mut value[..]).unwrap();
    assert_eq!(&value[..n], b"berth");
    let n = rustix::fs::getxattr(&ping, "security.capability", &mut value[..]).unwrap();
    assert_eq!(n, 20);
}

#[test]
fn dot_dot_escape_refuses_the_layer_and_leaves_nothing() {
    for name in [&b"../escape"[..], b"a/../../escape", b"/../escape"] {
        let dir = TempDir::new().unwrap();
        let layers = dir.path().join("layers");
        let tar = Tar::new()
            .dir("a", 0o755)
            .file("a/ok", 0o644, b"fine")
            .raw(EntryType::Regular, name, b"", b"evil")
            .bytes();
        let err = unpack_to_temp(Cursor::new(tar), &layers, &IMPORT).unwrap_err();
        assert!(matches!(err, LayerError::Escape { .. }), "{err}");
        assert!(err.to_string().contains("escapes the layer root"), "{err}");
        assert!(leftovers(&layers).is_empty(), "{:?}", leftovers(&layers));
        assert!(!dir.path().join("escape").exists());
    }
}

#[test]
fn pax_path_cannot_smuggle_an_escape() {
    let dir = TempDir::new().unwrap();
    let layers = dir.path().join("layers");
    let tar = Tar::new()
        .pax(&[("path", b"../../pax-escape")])
        .file("harmless", 0o644, b"evil")
        .bytes();
    let err = unpack_to_temp(Cursor::new(tar), &layers, &IMPORT).unwrap_err();
    assert!(
        matches!(err, LayerError::Escape { ref path } if path == "../../pax-escape"),
        "{err}"
    );
    assert!(leftovers(&layers).is_empty());
    assert!(!dir.path().join("pax-escape").exists());
}

#[test]
fn absolute_paths_are_stripped_into_the_root() {
    let dir = TempDir::new().unwrap();
    let tar = Tar::new()
        .raw(EntryType::Regular, b"/abs/path", b"", b"inside")
        .bytes();
    let stats = apply(&tar, dir.path(), &IMPORT).unwrap();
    assert_eq!(stats.entries, 1);
    assert_eq!(fs::read(dir.path().join("abs/path")).unwrap(), b"inside");
    assert_eq!(mode_of(&dir.path().join("abs")), 0o755);
}

#[test]
fn writes_through_symlinks_stay_inside_the_root() {
    let outside = TempDir::new().unwrap();
    let base = TempDir::new().unwrap();
    let dest = base.path().join("a/b/dest");
    fs::create_dir_all(&dest).unwrap();
    let abs_target = outside.path().to_str().unwrap().to_string();
    let tar = Tar::new()
        .symlink("evil", &abs_target)
        .file("evil/pwned", 0o644, b"absolute")
        .symlink("up", "../../../..")
        .file("up/pwned2", 0o644, b"relative")
        .dir("up/made-dir", 0o755)
        .symlink("loop", "loop")
        .bytes();
    let stats = apply(&tar, &dest, &OVERLAY).unwrap();
    assert_eq!(stats.entries, 6);

    assert!(leftovers(outside.path()).is_empty());
    assert!(!base.path().join("pwned2").exists());
    assert!(!base.path().join("a/pwned2").exists());
    assert!(!base.path().join("made-dir").exists());
    // Both symlinks were followed as if the layer root were `/`.
    assert_eq!(
        fs::read_link(dest.join("evil")).unwrap(),
        Path::new(&abs_target)
    );
    let inside = dest.join(abs_target.trim_start_matches('/')).join("pwned");
    assert_eq!(fs::read(inside).unwrap(), b"absolute");
    assert_eq!(fs::read(dest.join("pwned2")).unwrap(), b"relative");
    assert!(dest.join("made-dir").is_dir());

    // A symlink loop as a parent is an error, not a hang.
    let tar = Tar::new()
        .symlink("loop", "loop")
        .file("loop/x", 0o644, b"")
        .bytes();
    let fresh = TempDir::new().unwrap();
    let err = apply(&tar, fresh.path(), &OVERLAY).unwrap_err();
    assert!(matches!(err, LayerError::Entry { .. }), "{err}");
}

#[test]
fn hard_links_out_of_the_layer_are_refused() {
    let dir = TempDir::new().unwrap();
    let layers = dir.path().join("layers");
    let tar = Tar::new()
        .raw(EntryType::Link, b"passwd", b"../../etc/passwd", b"")
        .bytes();
    let err = unpack_to_temp(Cursor::new(tar), &layers, &IMPORT).unwrap_err();
    assert!(matches!(err, LayerError::LinkEscape { .. }), "{err}");
    assert!(leftovers(&layers).is_empty());

    // `/etc/passwd` exists on the host, but not in the layer.
    let tar = Tar::new()
        .raw(EntryType::Link, b"passwd", b"/etc/passwd", b"")
        .bytes();
    let err = unpack_to_temp(Cursor::new(tar), &layers, &IMPORT).unwrap_err();
    assert!(matches!(err, LayerError::LinkTargetMissing { .. }), "{err}");
    assert!(leftovers(&layers).is_empty());
}

#[test]
fn hard_link_to_a_missing_target_is_refused() {
    let dir = TempDir::new().unwrap();
    let layers = dir.path().join("layers");
    let tar = Tar::new()
        .file("present", 0o644, b"x")
        .hardlink("link", "nope")
        .bytes();
    let err = unpack_to_temp(Cursor::new(tar), &layers, &IMPORT).unwrap_err();
    assert!(matches!(err, LayerError::LinkTargetMissing { .. }), "{err}");
    assert!(err.to_string().contains("\"link\""), "{err}");
    assert!(leftovers(&layers).is_empty());
}

#[test]
fn hard_link_through_a_symlinked_directory_stays_inside() {
    let dir = TempDir::new().unwrap();
    let tar = Tar::new()
        .symlink("etc", "/")
        .file("etc/passwd", 0o644, b"layer passwd")
        .hardlink("copy", "etc/passwd")
        .bytes();
    apply(&tar, dir.path(), &IMPORT).unwrap();
    assert_eq!(fs::read(dir.path().join("copy")).unwrap(), b"layer passwd");
    assert_eq!(
        fs::read(dir.path().join("passwd")).unwrap(),
        b"layer passwd"
    );
}

#[test]
fn device_nodes_are_refused_unless_allowed() {
    let dir = TempDir::new().unwrap();
    let layers = dir.path().join("layers");
    let tar = Tar::new()
        .dir("dev", 0o755)
        .device(EntryType::Char, "dev/null", 1, 3)
        .bytes();
    let err = unpack_to_temp(Cursor::new(tar.clone()), &layers, &IMPORT).unwrap_err();
    assert!(matches!(err, LayerError::DeviceNotAllowed { .. }), "{err}");
    assert!(leftovers(&layers).is_empty());

    let blk = Tar::new().device(EntryType::Block, "sda", 8, 0).bytes();
    let err = apply(&blk, dir.path(), &OVERLAY).unwrap_err();
    assert!(matches!(err, LayerError::DeviceNotAllowed { .. }), "{err}");

    let allow = ApplyOptions {
        allow_devices: true,
        no_overwrite_dir_non_dir: false,
        ..IMPORT
    };
    let (temp, _) = unpack_to_temp(Cursor::new(tar), &layers, &allow).unwrap();
    let meta = fs::symlink_metadata(temp.join("dev/null")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(meta.mode() & 0o7777, 0o666);
}

#[test]
fn decompress_detects_gzip_zstd_bzip2_xz_and_plain_tar() {
    let tar = Tar::new().file("hello", 0o644, b"hello world").bytes();

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(tar.as_slice(), 3).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&tar).unwrap();
    let bz = bz.finish().unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&tar).unwrap();
    let xz = xz.finish().unwrap();

    for (input, kind) in [
        (gz, Compression::Gzip),
        (zst, Compression::Zstd),
        (bz, Compression::Bzip2),
        (xz, Compression::Xz),
        (tar.clone(), Compression::None),
    ] {
        let (found, mut r) = decompress(Cursor::new(input)).unwrap();
        assert_eq!(found, kind);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, tar);
    }

    // A stream shorter than any magic is just short.
    let (found, mut r) = decompress(Cursor::new(vec![0x1f])).unwrap();
    assert_eq!(found, Compression::None);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, [0x1f]);
}

#[test]
fn compressed_layer_applies_with_the_uncompressed_diff_id() {
    let tar = Tar::new()
        .dir("etc", 0o755)
        .file("etc/os-release", 0o644, b"ID=berth\n")
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let (kind, r) = decompress(Cursor::new(gz.finish().unwrap())).unwrap();
    assert_eq!(kind, Compression::Gzip);
    let dir = TempDir::new().unwrap();
    let (temp, stats) = unpack_to_temp(r, dir.path(), &IMPORT).unwrap();
    assert_eq!(stats.diff_id, Digest::of_bytes(&tar));
    let final_dir = dir.path().join(stats.diff_id.hex());
    commit_temp(&temp, &final_dir).unwrap();
    assert_eq!(
        fs::read(final_dir.join("etc/os-release")).unwrap(),
        b"ID=berth\n"
    );
    assert_eq!(leftovers(dir.path()), vec![stats.diff_id.hex().to_string()]);
}

#[test]
fn overlay_mode_converts_whiteouts() {
    let tar = Tar::new()
        .dir("a", 0o755)
        .file("a/.wh.b", 0o644, b"")
        .file("a/.wh..wh..opq", 0o644, b"")
        .file("a/kept", 0o644, b"kept")
        .file(".wh.top", 0o644, b"")
        .bytes();

    let dir = TempDir::new().unwrap();
    apply(&tar, dir.path(), &OVERLAY).unwrap();
    let wh = fs::symlink_metadata(dir.path().join("a/b")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(fs::symlink_metadata(dir.path().join("top"))
        .unwrap()
        .file_type()
        .is_char_device());
    let mut value = [0u8; 8];
    let n = rustix::fs::getxattr(
        dir.path().join("a"),
        "trusted.overlay.opaque",
        &mut value[..],
    )
    .unwrap();
    assert_eq!(&value[..n], b"y");
    assert!(!dir.path().join("a/.wh.b").exists());
    assert!(!dir.path().join("a/.wh..wh..opq").exists());
    assert_eq!(fs::read(dir.path().join("a/kept")).unwrap(), b"kept");

    let skip = TempDir::new().unwrap();
    apply(&tar, skip.path(), &IMPORT).unwrap();
    assert_eq!(leftovers(&skip.path().join("a")), vec!["kept".to_string()]);
    assert_eq!(leftovers(skip.path()), vec!["a".to_string()]);
    assert!(rustix::fs::getxattr(
        skip.path().join("a"),
        "trusted.overlay.opaque",
        &mut value[..]
    )
    .is_err());
}

#[test]
fn layers_cannot_set_overlay_xattrs_themselves() {
    let tar = Tar::new()
        .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .dir("a", 0o755)
        .bytes();
    let dir = TempDir::new().unwrap();
    apply(&tar, dir.path(), &OVERLAY).unwrap();
    let mut value = [0u8; 8];
    assert!(rustix::fs::getxattr(
        dir.path().join("a"),
        "trusted.overlay.redirect",
        &mut value[..]
    )
    .is_err());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tar = Tar::new()
        .file("x", 0o644, b"file")
        .dir("x", 0o700)
        .file("x/inner", 0o644, b"inner")
        .file("x", 0o600, b"file again")
        .symlink("y", "x")
        .file("y", 0o644, b"not through the symlink")
        .dir("d", 0o755)
        .dir("d", 0o711)
        .bytes();
    let dir = TempDir::new().unwrap();
    apply(&tar, dir.path(), &IMPORT).unwrap();
    assert_eq!(fs::read(dir.path().join("x")).unwrap(), b"file again");
    assert_eq!(mode_of(&dir.path().join("x")), 0o600);
    assert!(fs::symlink_metadata(dir.path().join("y"))
        .unwrap()
        .is_file());
    assert_eq!(
        fs::read(dir.path().join("y")).unwrap(),
        b"not through the symlink"
    );
    assert_eq!(mode_of(&dir.path().join("d")), 0o711);
}

#[test]
fn no_overwrite_dir_non_dir_keeps_each_kind() {
    let keep = ApplyOptions {
        no_overwrite_dir_non_dir: true,
        ..IMPORT
    };
    let dir = TempDir::new().unwrap();
    fs::create_dir_all(dir.path().join("d/sub")).unwrap();
    fs::write(dir.path().join("f"), "old").unwrap();
    // Same kinds are merged and replaced as always.
    let same = Tar::new()
        .dir("d", 0o755)
        .file("d/new", 0o644, b"new")
        .file("f", 0o644, b"new")
        .bytes();
    apply(&same, dir.path(), &keep).unwrap();
    assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"new");
    for (tar, path, existing_dir) in [
        (Tar::new().file("d/sub", 0o644, b"x").bytes(), "d/sub", true),
        (Tar::new().symlink("./d", "f").bytes(), "d", true),
        (Tar::new().dir("f/", 0o755).bytes(), "f", false),
    ] {
        match apply(&tar, dir.path(), &keep) {
            Err(LayerError::KindConflict {
                path: p,
                existing_dir: e,
            }) => assert_eq!((p.as_str(), e), (path, existing_dir)),
            other => panic!("{path}: {other:?}"),
        }
    }
    assert!(dir.path().join("d/sub").is_dir());
    assert!(fs::symlink_metadata(dir.path().join("d")).unwrap().is_dir());
    assert!(dir.path().join("f").is_file());
    assert_eq!(
        LayerError::KindConflict {
            path: "d/sub".into(),
            existing_dir: true
        }
        .to_string(),
        "cannot overwrite directory \"d/sub\" with non-directory"
    );
    // Without the option, as a layer: replaced.
    apply(
        &Tar::new().file("d/sub", 0o644, b"x").bytes(),
        dir.path(),
        &IMPORT,
    )
    .unwrap();
    assert!(dir.path().join("d/sub").is_file());
}

#[test]
fn truncated_stream_is_an_archive_error_and_leaves_nothing() {
    let tar = Tar::new().file("big", 0o644, &[7u8; 4096]).bytes();
    let dir = TempDir::new().unwrap();
    let err = unpack_to_temp(Cursor::new(tar[..2000].to_vec()), dir.path(), &IMPORT).unwrap_err();
    assert!(matches!(err, LayerError::Archive(_)), "{err}");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn blob_with_wrong_digest_leaves_nothing() {
    let dir = TempDir::new().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let wrong = Digest::of_bytes(b"something else");
    let err = store.ingest(&b"content"[..], Some(&wrong)).unwrap_err();
    assert!(matches!(err, LayerError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(wrong.as_str()), "{err}");
    assert!(leftovers(&dir.path().join("tmp")).is_empty());
    assert!(leftovers(&dir.path().join("blobs/sha256")).is_empty());
    assert!(!store.contains(&wrong));
}

#[test]
fn blob_store_round_trip() {
    let dir = TempDir::new().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let data = vec![42u8; 600_000];
    let expected = Digest::of_bytes(&data);
    let (d, size) = store.ingest(data.as_slice(), Some(&expected)).unwrap();
    assert_eq!((d.clone(), size), (expected.clone(), 600_000));
    assert!(store.contains(&d));
    assert_eq!(
        store.path(&d),
        dir.path().join("blobs/sha256").join(d.hex())
    );
    // Idempotent.
    assert_eq!(store.ingest(data.as_slice(), None).unwrap().0, d);
    assert_eq!(store.read(&d).unwrap(), data);
    assert!(leftovers(&dir.path().join("tmp")).is_empty());

    let small = store.put_bytes(b"{}").unwrap();
    assert_eq!(small, Digest::of_bytes(b"{}"));
    fs::write(store.path(&small), b"{\"tampered\":1}").unwrap();
    assert!(matches!(
        store.read(&small),
        Err(LayerError::BlobCorrupt { .. })
    ));

    store.remove(&d).unwrap();
    store.remove(&d).unwrap();
    assert!(!store.contains(&d));
    assert!(matches!(store.read(&d), Err(LayerError::BlobNotFound(_))));
}

#[test]
fn commit_temp_onto_an_existing_layer_drops_the_temp() {
    let dir = TempDir::new().unwrap();
    let tar = Tar::new().file("f", 0o644, b"same").bytes();
    let (first, stats) = unpack_to_temp(Cursor::new(tar.clone()), dir.path(), &IMPORT).unwrap();
    let (second, _) = unpack_to_temp(Cursor::new(tar), dir.path(), &IMPORT).unwrap();
    let final_dir = dir.path().join(stats.diff_id.hex());
    commit_temp(&first, &final_dir).unwrap();
    commit_temp(&second, &final_dir).unwrap();
    assert!(!second.exists());
    assert_eq!(leftovers(dir.path()), vec![stats.diff_id.hex().to_string()]);
    assert_eq!(fs::read(final_dir.join("f")).unwrap(), b"same");
}

#[test]
fn remove_layer_dir_never_follows_symlinks() {
    let outside = TempDir::new().unwrap();
    fs::write(outside.path().join("precious"), b"keep").unwrap();
    let dir = TempDir::new().unwrap();
    let layer = dir.path().join("layer");
    fs::create_dir_all(layer.join("a/b")).unwrap();
    fs::write(layer.join("a/b/file"), b"x").unwrap();
    std::os::unix::fs::symlink(outside.path(), layer.join("a/link")).unwrap();
    fs::set_permissions(layer.join("a/b"), fs::Permissions::from_mode(0o500)).unwrap();

    remove_layer_dir(&layer).unwrap();
    assert!(!layer.exists());
    assert_eq!(fs::read(outside.path().join("precious")).unwrap(), b"keep");
    // Absent is fine.
    remove_layer_dir(&layer).unwrap();

    // A symlink given as the layer directory is removed, not its target.
    let link = dir.path().join("link-to-outside");
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    remove_layer_dir(&link).unwrap();
    assert!(fs::symlink_metadata(&link).is_err());
    assert!(outside.path().join("precious").exists());
}

#[test]
fn collect_garbage_removes_only_dead_leftovers() {
    let dir = TempDir::new().unwrap();
    let layers = dir.path().join("layers");
    let tmp = dir.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    // A pid above any pid_max: that process is gone.
    let dead = "tmp-2147483000-00000000deadbeef";
    fs::create_dir_all(layers.join(dead).join("usr/bin")).unwrap();
    fs::write(tmp.join(dead), b"half a blob").unwrap();
    let live = format!("tmp-{}-00000000cafebabe", std::process::id());
    fs::create_dir_all(layers.join(&live)).unwrap();
    fs::create_dir_all(layers.join("0123abcd")).unwrap();
    fs::write(tmp.join("unrelated"), b"not ours").unwrap();

    collect_garbage(&layers, &tmp);

    let mut left = leftovers(&layers);
    left.sort();
    assert_eq!(left, vec!["0123abcd".to_string(), live]);
    assert_eq!(leftovers(&tmp), vec!["unrelated".to_string()]);
}

#[test]
fn dir_size_counts_files_once_and_symlinks_by_their_target() {
    let dir = TempDir::new().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
    fs::write(dir.path().join("sub/b"), vec![0u8; 24]).unwrap();
    fs::hard_link(dir.path().join("a"), dir.path().join("sub/a-again")).unwrap();
    let outside = TempDir::new().unwrap();
    fs::write(outside.path().join("huge"), vec![0u8; 1 << 20]).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
    // The symlink is not followed: it counts the length of its target.
    let link_len = outside.path().as_os_str().len() as u64;
    assert_eq!(dir_size(dir.path()), 1024 + link_len);
    assert_eq!(dir_size(&dir.path().join("missing")), 0);
}

#[test]
fn ingest_with_tees_the_content_and_checks_it_last() {
    let dir = TempDir::new().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let expected = Digest::of_bytes(&data);
    // The consumer reads a part; the rest is drained before the check.
    let (d, size, head) = store
        .ingest_with(
            data.as_slice(),
            Some(&expected),
            |r| -> Result<Vec<u8>, LayerError> {
                let mut head = vec![0u8; 1000];
                r.read_exact(&mut head).map_err(LayerError::Archive)?;
                Ok(head)
            },
        )
        .unwrap();
    assert_eq!((d.clone(), size), (expected.clone(), 700_000));
    assert_eq!(head, data[..1000]);
    assert_eq!(fs::read(store.path(&d)).unwrap(), data);
    assert!(leftovers(&dir.path().join("tmp")).is_empty());

    // A consumer that fails on content that is not what its digest says:
    // the mismatch is the error, and nothing is stored.
    let wrong = Digest::of_bytes(b"other");
    let err = store
        .ingest_with(
            data.as_slice(),
            Some(&wrong),
            |_| -> Result<(), LayerError> {
                Err(LayerError::Archive(std::io::Error::other("bad tar")))
            },
        )
        .unwrap_err();
    assert!(matches!(err, LayerError::DigestMismatch { .. }), "{err}");
    // On the right content, the consumer's own error stands.
    let err = store
        .ingest_with(
            data.as_slice(),
            Some(&expected),
            |_| -> Result<(), LayerError> {
                Err(LayerError::Archive(std::io::Error::other("bad tar")))
            },
        )
        .unwrap_err();
    assert!(matches!(err, LayerError::Archive(_)), "{err}");
    assert!(leftovers(&dir.path().join("tmp")).is_empty());
    assert!(!store.contains(&wrong));
}
