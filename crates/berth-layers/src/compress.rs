//! Detecting and undoing a layer's compression.

use std::io::{self, Cursor, Read};

use crate::{io_err, LayerError};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// The compression of a layer blob, as told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

/// Sniffs the magic bytes of `r` (gzip `1f 8b`, zstd `28 b5 2f fd`, bzip2 `BZh`,
/// xz `fd 37 7a 58 5a 00`, as Docker's archive package does; anything else is taken
/// as uncompressed) and returns a reader of the decompressed stream. The sniffed
/// bytes are not lost: the returned reader starts at the beginning of the stream.
pub fn decompress<'a>(
    mut r: impl Read + 'a,
) -> Result<(Compression, Box<dyn Read + 'a>), LayerError> {
    let mut head = [0u8; 6];
    let mut len = 0;
    while len < head.len() {
        match r.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("cannot read the start of the layer stream", e)),
        }
    }
    let head = &head[..len];
    let kind = if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else if head.starts_with(BZIP2_MAGIC) {
        Compression::Bzip2
    } else if head.starts_with(XZ_MAGIC) {
        Compression::Xz
    } else {
        Compression::None
    };
    let stream = Cursor::new(head.to_vec()).chain(r);
    let reader: Box<dyn Read + 'a> = match kind {
        // Multi-member gzip streams are valid layers (Go's reader accepts them too).
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|e| io_err("cannot start the zstd decoder", e))?,
        ),
        // Concatenated streams, as `bzip2 -c a b` and `xz -c a b` write them.
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(stream)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(stream)),
        Compression::None => Box::new(stream),
    };
    Ok((kind, reader))
}
