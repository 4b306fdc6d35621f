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

/// Input read and compressed at a time by [`GzipEncoder`].
const GZ_CHUNK: usize = 1 << 20;
/// A chunk that shrinks by less than this (per mille) is not worth deflating.
const GZ_KEEP_PER_MILLE: usize = 970;
/// While storing, every this many chunks one is deflated again to notice
/// content that compresses.
const GZ_PROBE_EVERY: u32 = 8;
/// gzip's header as Go's and flate2's write it: no name, mtime 0, OS unknown.
const GZ_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

enum GzState {
    Header,
    Body,
    Done,
}

/// A gzip stream of `inner` (deflate level 1), read as it is made, that
/// stores the chunks deflate cannot shrink (already compressed or random
/// data: deflating them costs the most and gains nothing) and tries deflate
/// again on every [`GZ_PROBE_EVERY`]th. Each 1 MiB chunk ends byte-aligned
/// (a sync flush, or stored blocks) so its compressed size is known and the
/// next chunk may go the other way; the output depends only on the input.
/// Any gzip reader reads it.
pub struct GzipEncoder<R> {
    inner: R,
    deflate: flate2::Compress,
    crc: flate2::Crc,
    input: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    storing: bool,
    since_probe: u32,
    state: GzState,
}

impl<R: Read> GzipEncoder<R> {
    pub fn new(inner: R) -> GzipEncoder<R> {
        GzipEncoder {
            inner,
            deflate: flate2::Compress::new(flate2::Compression::fast(), false),
            crc: flate2::Crc::new(),
            input: vec![0u8; GZ_CHUNK],
            out: Vec::with_capacity(GZ_CHUNK + (GZ_CHUNK >> 4) + 64),
            pos: 0,
            storing: false,
            since_probe: 0,
            state: GzState::Header,
        }
    }

    /// Makes the next piece of output.
    fn fill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        match self.state {
            GzState::Header => {
                self.out.extend_from_slice(&GZ_HEADER);
                self.state = GzState::Body;
                return Ok(());
            }
            GzState::Done => return Ok(()),
            GzState::Body => {}
        }
        let mut n = 0;
        while n < GZ_CHUNK {
            match self.inner.read(&mut self.input[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let last = n < GZ_CHUNK;
        self.crc.update(&self.input[..n]);
        if self.storing {
            self.store(n, last);
        } else {
            self.deflate_chunk(n, last)?;
        }
        if last {
            self.out.extend_from_slice(&self.crc.sum().to_le_bytes());
            self.out.extend_from_slice(&self.crc.amount().to_le_bytes());
            self.state = GzState::Done;
            return Ok(());
        }
        // The next chunk's way, from how this one did.
        if self.storing {
            self.since_probe += 1;
            if self.since_probe >= GZ_PROBE_EVERY {
                // A fresh deflater: the old one's window is not what the
                // reader has seen last.
                self.deflate = flate2::Compress::new(flate2::Compression::fast(), false);
                self.storing = false;
            }
        } else if self.out.len() * 1000 > n * GZ_KEEP_PER_MILLE {
            self.storing = true;
            self.since_probe = 0;
        }
        Ok(())
    }

    /// The chunk as stored deflate blocks (the stream is byte-aligned after
    /// a sync flush); the last chunk ends with an empty final block.
    fn store(&mut self, n: usize, last: bool) {
        for piece in self.input[..n].chunks(0xffff) {
            let len = piece.len() as u16;
            self.out.push(0);
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(&(!len).to_le_bytes());
            self.out.extend_from_slice(piece);
        }
        if last {
            self.out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        }
    }

    /// The chunk deflated, ending with a sync flush (or the stream's end).
    fn deflate_chunk(&mut self, n: usize, last: bool) -> io::Result<()> {
        let flush = if last {
            flate2::FlushCompress::Finish
        } else {
            flate2::FlushCompress::Sync
        };
        let start = self.deflate.total_in();
        loop {
            let used = usize::try_from(self.deflate.total_in() - start).unwrap_or(n);
            if self.out.capacity() - self.out.len() < 64 << 10 {
                self.out.reserve(64 << 10);
            }
            let status = self
                .deflate
                .compress_vec(&self.input[used..n], &mut self.out, flush)
                .map_err(io::Error::other)?;
            let used = usize::try_from(self.deflate.total_in() - start).unwrap_or(n);
            let room = self.out.capacity() - self.out.len();
            match status {
                flate2::Status::StreamEnd => return Ok(()),
                _ if !last && used == n && room > 0 => return Ok(()),
                _ => {}
            }
        }
    }
}

impl<R: Read> Read for GzipEncoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if matches!(self.state, GzState::Done) {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod gzip_tests {
    use super::*;

    fn roundtrip(data: &[u8]) -> usize {
        let mut gz = Vec::new();
        GzipEncoder::new(data).read_to_end(&mut gz).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "round trip of {} bytes", data.len());
        let mut again = Vec::new();
        GzipEncoder::new(data).read_to_end(&mut again).unwrap();
        assert_eq!(again, gz, "the same input makes the same bytes");
        gz.len()
    }

    /// xorshift: bytes deflate cannot shrink, without a dependency.
    fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn gzip_of_text_noise_and_both_round_trips() {
        assert!(roundtrip(b"") < 32);
        let text: Vec<u8> = b"all work and no play makes jack a dull boy\n"
            .iter()
            .cycle()
            .take(3 * GZ_CHUNK + 17)
            .copied()
            .collect();
        assert!(roundtrip(&text) < text.len() / 20);
        let random = noise(5 * GZ_CHUNK + 3, 0x9e37_79b9_7f4a_7c15);
        // Only the first chunk is deflated (and grows a little); the rest
        // is stored.
        let size = roundtrip(&random);
        assert!(size < random.len() + random.len() / 50, "{size}");
        // Noise, then text: deflate comes back at a probe (at most
        // GZ_PROBE_EVERY chunks of text are stored).
        let mut mixed = noise(2 * GZ_CHUNK, 7);
        mixed.extend(text.iter().cycle().take(30 * GZ_CHUNK).copied());
        assert!(roundtrip(&mixed) < 11 * GZ_CHUNK);
    }
}
