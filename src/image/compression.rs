//! Layer compression, recognised by magic bytes rather than trusted from the media type
//! (registries and tools mislabel it often enough).

use std::io::{self, BufRead, BufReader, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

pub(crate) fn detect(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wrap a (possibly compressed) layer stream into a reader of the uncompressed tar.
pub(crate) fn decompress<'a, R: Read + 'a>(
    reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(256 << 10, reader);
    let kind = detect(buffered.fill_buf()?);
    let stream: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(buffered),
        // MultiGzDecoder: some tools write layers as several concatenated gzip members.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    Ok((kind, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(compressed: Vec<u8>, expect: Compression) {
        let (kind, mut r) = decompress(&compressed[..]).unwrap();
        assert_eq!(kind, expect);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"payload".repeat(1000));
    }

    #[test]
    fn detects_and_decodes_each_kind() {
        let data = b"payload".repeat(1000);
        roundtrip(data.clone(), Compression::None);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        roundtrip(gz.finish().unwrap(), Compression::Gzip);
        roundtrip(zstd::encode_all(&data[..], 3).unwrap(), Compression::Zstd);
    }
}
