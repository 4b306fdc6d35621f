//! The container's PID 1 with `--init` (`init/berth_init.rs`, built by
//! `build.rs`): a ~2 KiB freestanding static program, run from a sealed
//! memfd. The container sees `/proc/1/exe` as that memfd (it cannot be
//! written: sealed), `/proc/1/environ` as its own environment and
//! `/proc/1/cmdline` as `berth-init EXE -- ARGV...`; the init makes itself
//! not dumpable. Nothing of the host's berth binary, paths or environment
//! is reachable from it.

use std::io::{self, Write};
use std::os::fd::OwnedFd;

static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// argv[0] of the init, as `ps` shows it inside the container.
pub(crate) const INIT_NAME: &str = "berth-init";

/// A sealed, executable memfd holding the init program.
pub(crate) fn sealed_init() -> io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    if INIT.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--init is not available on this architecture",
        ));
    }
    let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC where the kernel knows it (vm.memfd_noexec may demand it).
    let fd = match rustix::fs::memfd_create(INIT_NAME, base | MemfdFlags::EXEC) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(INIT_NAME, base)?,
        Err(e) => return Err(e.into()),
    };
    let mut f = std::fs::File::from(fd);
    f.write_all(INIT)?;
    let fd = OwnedFd::from(f);
    let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
    // F_SEAL_EXEC (Linux 6.3) also freezes the mode bits; older kernels
    // refuse it, and the other seals are what matters.
    if rustix::fs::fcntl_add_seals(&fd, seals | SealFlags::EXEC).is_err() {
        rustix::fs::fcntl_add_seals(&fd, seals)?;
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_is_a_small_static_elf() {
        if INIT.is_empty() {
            return;
        }
        assert_eq!(&INIT[..4], b"\x7fELF");
        assert!(INIT.len() < 64 * 1024, "{} bytes", INIT.len());
    }

    #[test]
    fn the_memfd_is_sealed() {
        if INIT.is_empty() {
            return;
        }
        let fd = sealed_init().unwrap();
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
        assert!(seals.contains(rustix::fs::SealFlags::WRITE | rustix::fs::SealFlags::SEAL));
        let mut f = std::fs::File::from(fd);
        assert!(f.write_all(b"x").is_err());
    }
}
