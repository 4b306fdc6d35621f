//! What an idle server gives back: the allocator's free memory, and its
//! mappings of the code and read-only data that the last requests paged in.
//!
//! Code is mapped from the executable's and the libraries' files: a page a
//! request ran stays mapped into this process (resident, in its VmRSS) long
//! after, though the kernel could drop it and read it again at any time —
//! which is what it does under memory pressure. A berth serve that handled
//! a run, a build and a push has most of the berth binary mapped; idle, it
//! runs a few pages of its event loop. So once quiet, the server drops its
//! mappings of every page that is not its own: file-backed, not writable,
//! never written (no private copy). The page cache keeps the pages (shared
//! with every other berth process, reclaimable), and the next request maps
//! back the ones it runs, as a fresh process would (minor faults).

/// Gives back what an idle server does not need; call from a blocking
/// thread.
pub fn idle() {
    // SAFETY: malloc_trim only returns free memory to the kernel; it takes
    // the allocator's locks.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for m in clean_file_mappings(&smaps) {
        // SAFETY: `m` is a whole mapping of this process, of a file, not
        // writable and with no anonymous (privately written) page: dropping
        // its page-table entries loses nothing, the next access reads the
        // same bytes from the file's page cache, exactly as after the
        // kernel reclaimed them. Such mappings (the executable, its
        // libraries) are never unmapped while the process runs, so the
        // range still is this mapping.
        unsafe {
            libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED);
        }
    }
}

/// A range of this process's address space.
#[derive(Debug, PartialEq, Eq)]
struct Range {
    start: usize,
    len: usize,
}

/// The mappings of `smaps` (`/proc/self/smaps`) whose pages are all clean
/// file pages: backed by a file (a path), not writable, no anonymous page,
/// not locked.
fn clean_file_mappings(smaps: &str) -> Vec<Range> {
    let mut out = Vec::new();
    // The mapping being read: its range, and whether it still qualifies.
    let mut cur: Option<(Range, bool)> = None;
    for line in smaps.lines() {
        if let Some((range, ok)) = header(line) {
            cur = Some((range, ok));
            continue;
        }
        let Some((_, ok)) = cur.as_mut() else {
            continue;
        };
        if let Some(v) = line.strip_prefix("Anonymous:") {
            if v.trim() != "0 kB" {
                *ok = false;
            }
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            // The last line of a mapping's entry.
            if flags.split_whitespace().any(|f| f == "lo") {
                *ok = false;
            }
            if let Some((range, true)) = cur.take() {
                out.push(range);
            }
        }
    }
    out
}

/// A mapping's first line (`START-END PERMS OFFSET DEV INODE PATH`): its
/// range, and whether it is a read-only mapping of a file.
fn header(line: &str) -> Option<(Range, bool)> {
    let mut f = line.split_whitespace();
    let (start, end) = f.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = f.next()?;
    if perms.len() != 4 {
        return None;
    }
    let (_offset, _dev, _inode) = (f.next()?, f.next()?, f.next()?);
    let path = f.next().unwrap_or("");
    let ok = path.starts_with('/') && !perms.contains('w') && end > start;
    Some((
        Range {
            start,
            len: end - start,
        },
        ok,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a1200000-55d0a1400000 r--p 00000000 08:01 123 /usr/bin/berth
Size:               2048 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
55d0a1400000-55d0a1800000 r-xp 00200000 08:01 123 /usr/bin/berth
Size:               4096 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw sd
55d0a1800000-55d0a1810000 r--p 00600000 08:01 123 /usr/bin/berth
Size:                 64 kB
Anonymous:            64 kB
VmFlags: rd mr mw me dw ac sd
55d0a1810000-55d0a1811000 rw-p 00610000 08:01 123 /usr/bin/berth
Anonymous:             4 kB
VmFlags: rd wr mr mw me dw ac sd
55d0a2000000-55d0a2100000 rw-p 00000000 00:00 0 [heap]
Anonymous:           100 kB
VmFlags: rd wr mr mw me ac sd
7f0000000000-7f0000001000 r-xp 00000000 08:01 77 /usr/lib/libc.so.6
Anonymous:             0 kB
VmFlags: rd ex mr mw me lo sd
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
VmFlags: rd ex mr mw me de sd
";

    #[test]
    fn only_clean_read_only_file_mappings_qualify() {
        // The relocated (written) read-only data, the writable data, the
        // heap, a locked mapping and the vDSO do not.
        assert_eq!(
            clean_file_mappings(SMAPS),
            [
                Range {
                    start: 0x55d0a1200000,
                    len: 0x200000
                },
                Range {
                    start: 0x55d0a1400000,
                    len: 0x400000
                },
            ]
        );
    }

    #[test]
    fn what_is_not_a_header_is_not_one() {
        assert!(header("Size:               2048 kB").is_none());
        assert!(header("VmFlags: rd ex").is_none());
        assert!(header("").is_none());
    }
}
