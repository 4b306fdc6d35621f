//! Builds `init/berth_init.rs`, the freestanding static PID 1 for `--init`,
//! with the same rustc that builds the crate, and leaves it in OUT_DIR for
//! `include_bytes!` (see `src/init.rs`). It is its own program, not a
//! workspace binary, because it needs `panic=abort`, no libc and static
//! linking, which Cargo profiles cannot set for one binary.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "init/berth_init.rs";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("berth-init");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        // No init for this architecture: `--init` reports it (src/init.rs).
        let _ = std::fs::write(&out, b"");
        return;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-type=bin",
            "--crate-name=berth_init",
            "-Cpanic=abort",
            "-Copt-level=s",
            "-Cdebuginfo=0",
            "-Cstrip=symbols",
            "-Crelocation-model=static",
            "-Ctarget-feature=+crt-static",
            "-Clink-arg=-nostartfiles",
            "-Clink-arg=-nostdlib",
            "-Clink-arg=-static",
            "-Clink-arg=-Wl,--build-id=none",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building {src} failed: {s}"),
        Err(e) => panic!("running rustc for {src}: {e}"),
    }
}
