//! Test support for registry pulls: a real registry on loopback, offline-built images to push
//! into it, and a fault-injecting proxy in front of it. All traffic stays on 127.0.0.0/8.
//!
//! The consumers come after this code, so parts are unused in some builds of the test binary.
#![allow(dead_code)]

pub mod images;
pub mod layout;
pub mod load;
pub mod net;
pub mod proxy;
pub mod registry;
pub mod sandbox;

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `bytes`, computed here rather than by berth so tests check berth against
/// an independent implementation.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Lowercase hex; sha2 0.11's output type has no `LowerHex`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}
