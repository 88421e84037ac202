//! Content digests (`sha256:<64 hex>`) and a reader that computes one while data streams by.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use crate::sha256::{Sha256, hex_digest};

/// A sha256 content digest. Other algorithms are refused: every registry and image format in
/// use today addresses content by sha256, and accepting one we cannot verify would be worse.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("unsupported digest algorithm in `{text}`: only sha256 is supported")]
    Algorithm { text: String },
    #[error("malformed digest `{text}`: expected `sha256:` and 64 lowercase hex digits")]
    Malformed { text: String },
}

impl Digest {
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// From a hex string already known to be a sha256 (a hasher's output).
    pub(crate) fn from_hex(hex: String) -> Digest {
        Digest { hex }
    }

    /// The digest of a byte slice.
    pub(crate) fn of(bytes: &[u8]) -> Digest {
        Digest {
            hex: hex_digest(bytes),
        }
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::Malformed { text: s.into() });
        };
        if algorithm != "sha256" {
            return Err(DigestError::Algorithm { text: s.into() });
        }
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::Malformed { text: s.into() });
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Passes data through while hashing it and counting bytes; fails once more than `limit`
/// bytes have passed, so a decompression bomb stops at the limit instead of filling the disk.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit,
        }
    }

    /// Read to the end (hashing everything), then return the digest and byte count.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            Digest {
                hex: self.hasher.finish_hex(),
            },
            self.count,
        ))
    }
}

/// The error a [`HashingReader`] returns past its limit; recognised by [`is_limit_error`].
#[derive(Debug, thiserror::Error)]
#[error("more than {limit} bytes")]
struct LimitExceeded {
    pub limit: u64,
}

pub(crate) fn is_limit_error(e: &io::Error) -> Option<u64> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
        .map(|l| l.limit)
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(LimitExceeded { limit: self.limit }));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::of(b""), d);
    }

    #[test]
    fn rejects_other_forms() {
        assert!(matches!(
            "sha512:abcd".parse::<Digest>(),
            Err(DigestError::Algorithm { .. })
        ));
        assert!(matches!(
            "sha256:ABC".parse::<Digest>(),
            Err(DigestError::Malformed { .. })
        ));
        assert!(matches!(
            EMPTY
                .to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<Digest>(),
            Err(DigestError::Malformed { .. })
        ));
        assert!(matches!(
            "e3b0c442".parse::<Digest>(),
            Err(DigestError::Malformed { .. })
        ));
    }

    #[test]
    fn hashing_reader_hashes_counts_and_limits() {
        let (d, n) = HashingReader::new(&b"hello"[..], 100).finish().unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(n, 5);
        let err = HashingReader::new(&[0u8; 1000][..], 999)
            .finish()
            .unwrap_err();
        assert_eq!(is_limit_error(&err), Some(999));
    }
}
