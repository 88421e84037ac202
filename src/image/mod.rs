//! Images: digests, the content store, registry pulls, and unpacking layers safely.

pub mod compression;
pub mod digest;
pub mod store;
pub mod unpack;
