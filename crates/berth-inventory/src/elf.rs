//! Just enough of ELF to find a named section in an executable: the file header,
//! the section header table and the section-name string table, read with bounded
//! seeks and reads (never the whole file).

use std::io::{Read, Seek, SeekFrom};

use crate::ParseError;

pub(crate) const MAGIC: &[u8; 4] = b"\x7fELF";

/// Section tables bigger than this are refused.
const MAX_SECTIONS: u64 = 4096;
const MAX_SHSTRTAB: u64 = 1 << 20;
const SHT_NOBITS: u64 = 8;

#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

struct Reader {
    le: bool,
    wide: bool,
}

impl Reader {
    fn u16(&self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(u64::from(if self.le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        }))
    }
    fn u32(&self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(u64::from(if self.le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        }))
    }
    fn u64(&self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.le {
            u64::from_le_bytes(s)
        } else {
            u64::from_be_bytes(s)
        })
    }
    fn word(&self, b: &[u8], at: usize) -> Option<u64> {
        if self.wide {
            self.u64(b, at)
        } else {
            self.u32(b, at)
        }
    }
}

pub(crate) fn read_at<F: Read + Seek>(
    f: &mut F,
    offset: u64,
    len: u64,
    file_size: u64,
) -> Result<Vec<u8>, ParseError> {
    let end = offset
        .checked_add(len)
        .ok_or_else(|| ParseError::new("ELF: offset overflows"))?;
    if end > file_size {
        return Err(ParseError::new(format!(
            "ELF: truncated ({end} > {file_size} bytes)"
        )));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| ParseError::new(format!("ELF: {e}")))?;
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| ParseError::new("ELF: too large"))?];
    f.read_exact(&mut buf)
        .map_err(|e| ParseError::new(format!("ELF: {e}")))?;
    Ok(buf)
}

/// The sections of an ELF file of `file_size` bytes.
pub(crate) fn sections<F: Read + Seek>(
    f: &mut F,
    file_size: u64,
) -> Result<Vec<Section>, ParseError> {
    let bad = |what: &str| ParseError::new(format!("ELF: {what}"));
    let hdr = read_at(f, 0, 64.min(file_size), file_size)?;
    if hdr.get(..4) != Some(&MAGIC[..]) {
        return Err(bad("no ELF magic"));
    }
    let wide = match hdr.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(bad("unknown class")),
    };
    let le = match hdr.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err(bad("unknown byte order")),
    };
    let r = Reader { le, wide };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (
            r.u64(&hdr, 0x28),
            r.u16(&hdr, 0x3a),
            r.u16(&hdr, 0x3c),
            r.u16(&hdr, 0x3e),
        )
    } else {
        (
            r.u32(&hdr, 0x20),
            r.u16(&hdr, 0x2e),
            r.u16(&hdr, 0x30),
            r.u16(&hdr, 0x32),
        )
    };
    let (Some(shoff), Some(shentsize), Some(shnum), Some(shstrndx)) =
        (shoff, shentsize, shnum, shstrndx)
    else {
        return Err(bad("truncated header"));
    };
    if shoff == 0 || shnum == 0 {
        return Ok(Vec::new());
    }
    let min_ent = if wide { 64 } else { 40 };
    if shentsize < min_ent || shnum > MAX_SECTIONS || shstrndx >= shnum {
        return Err(bad("bad section header table"));
    }
    let table = read_at(f, shoff, shentsize * shnum, file_size)?;
    let mut raw = Vec::new();
    for i in 0..shnum {
        let e = usize::try_from(i * shentsize).map_err(|_| bad("too large"))?;
        let name = r.u32(&table, e);
        let ty = r.u32(&table, e + 4);
        let (off, size) = if wide {
            (r.word(&table, e + 0x18), r.word(&table, e + 0x20))
        } else {
            (r.word(&table, e + 0x10), r.word(&table, e + 0x14))
        };
        let (Some(name), Some(ty), Some(off), Some(size)) = (name, ty, off, size) else {
            return Err(bad("truncated section header"));
        };
        raw.push((name, ty, off, size));
    }
    let (_, _, str_off, str_size) = raw[usize::try_from(shstrndx).map_err(|_| bad("too large"))?];
    if str_size > MAX_SHSTRTAB {
        return Err(bad("section name table too large"));
    }
    let strtab = read_at(f, str_off, str_size, file_size)?;
    let mut out = Vec::new();
    for (name, ty, offset, size) in raw {
        if ty == SHT_NOBITS {
            continue;
        }
        let start = usize::try_from(name).map_err(|_| bad("too large"))?;
        let Some(rest) = strtab.get(start..) else {
            return Err(bad("section name past the name table"));
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        out.push(Section {
            name: String::from_utf8_lossy(&rest[..end]).into_owned(),
            offset,
            size,
        });
    }
    Ok(out)
}

/// The contents of the first section called `name`, if it is at most `cap` bytes.
pub(crate) fn section<F: Read + Seek>(
    f: &mut F,
    file_size: u64,
    secs: &[Section],
    name: &str,
    cap: u64,
) -> Result<Option<Vec<u8>>, ParseError> {
    let Some(s) = secs.iter().find(|s| s.name == name) else {
        return Ok(None);
    };
    if s.size > cap {
        return Err(ParseError::new(format!(
            "ELF section {name} is {} bytes, more than {cap}",
            s.size
        )));
    }
    read_at(f, s.offset, s.size, file_size).map(Some)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal little-endian ELF64 file holding the given sections.
    pub(crate) fn elf64(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut names = Vec::new();
        for (n, _) in sections {
            names.push(strtab.len() as u32);
            strtab.extend_from_slice(n.as_bytes());
            strtab.push(0);
        }
        let shstr_name = strtab.len() as u32;
        strtab.extend_from_slice(b".shstrtab\0");
        let mut body = vec![0u8; 64];
        let mut placed = Vec::new();
        for (_, data) in sections {
            placed.push((body.len() as u64, data.len() as u64));
            body.extend_from_slice(data);
        }
        let str_off = body.len() as u64;
        body.extend_from_slice(&strtab);
        while body.len() & 7 != 0 {
            body.push(0);
        }
        let shoff = body.len() as u64;
        body.extend_from_slice(&[0u8; 64]); // the null section
        let mut sh = |name: u32, ty: u32, off: u64, size: u64| {
            let mut e = [0u8; 64];
            e[0..4].copy_from_slice(&name.to_le_bytes());
            e[4..8].copy_from_slice(&ty.to_le_bytes());
            e[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            e[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            body.extend_from_slice(&e);
        };
        for (i, (off, size)) in placed.iter().enumerate() {
            sh(names[i], 1, *off, *size);
        }
        sh(shstr_name, 3, str_off, strtab.len() as u64);
        let shnum = sections.len() as u16 + 2;
        body[0..4].copy_from_slice(MAGIC);
        body[4] = 2;
        body[5] = 1;
        body[6] = 1;
        body[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        body[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        body[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
        body[0x3e..0x40].copy_from_slice(&(shnum - 1).to_le_bytes());
        body
    }

    #[test]
    fn finds_sections() {
        let b = elf64(&[(".text", b"code"), (".dep-v0", b"hello")]);
        let mut c = std::io::Cursor::new(&b);
        let secs = sections(&mut c, b.len() as u64).unwrap();
        let d = section(&mut c, b.len() as u64, &secs, ".dep-v0", 100).unwrap();
        assert_eq!(d.as_deref(), Some(&b"hello"[..]));
        assert!(section(&mut c, b.len() as u64, &secs, ".dep-v0", 2).is_err());
    }

    #[test]
    fn truncated_never_panics() {
        let b = elf64(&[(".go.buildinfo", &[1u8; 40])]);
        for cut in 0..b.len() {
            let mut c = std::io::Cursor::new(&b[..cut]);
            let _ = sections(&mut c, cut as u64);
        }
        let mut bad = b.clone();
        bad[0x3c] = 0xff;
        bad[0x3d] = 0xff;
        assert!(sections(&mut std::io::Cursor::new(&bad), bad.len() as u64).is_err());
    }
}
