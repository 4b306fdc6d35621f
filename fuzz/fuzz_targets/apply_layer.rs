//! `apply_layer` on any byte stream (plain, or sniffed for gzip/zstd first):
//! it unpacks or refuses without panicking, and never writes outside the
//! layer directory (a sibling directory and the parent stay as they were).
//! The first byte picks the options. Runs as root (devices, whiteouts).
#![no_main]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_layers::{apply_layer, decompress, remove_layer_dir, ApplyOptions, WhiteoutMode};
use libfuzzer_sys::fuzz_target;

/// A fresh directory per input, under one per process.
fn scratch() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir().join(format!("berth-fuzz-apply-{}", std::process::id()));
    base.join(N.fetch_add(1, Ordering::Relaxed).to_string())
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, tar)) = data.split_first() else {
        return;
    };
    let opts = ApplyOptions {
        whiteouts: if mode & 1 == 0 {
            WhiteoutMode::Overlay
        } else {
            WhiteoutMode::Skip
        },
        allow_devices: mode & 2 != 0,
        no_overwrite_dir_non_dir: mode & 8 != 0,
    };
    let top = scratch();
    let layer = top.join("layer");
    let outside = top.join("outside");
    for d in [&layer, &outside] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    let stream = std::io::Cursor::new(tar.to_vec());
    let _ = if mode & 4 != 0 {
        decompress(stream).and_then(|(_, r)| apply_layer(r, &layer, &opts))
    } else {
        apply_layer(stream, &layer, &opts)
    };
    assert_eq!(
        entries(&top),
        ["layer", "outside"],
        "wrote next to the layer"
    );
    assert!(
        entries(&outside).is_empty(),
        "wrote into a sibling directory"
    );
    remove_layer_dir(&layer).unwrap_or_else(|e| panic!("cannot remove the layer: {e}"));
    std::fs::remove_dir_all(&top).unwrap_or_else(|e| panic!("rm {}: {e}", top.display()));
});
