//! Docker's multiplexed stream (moby's `pkg/stdcopy`), in which `logs` and a non-tty `exec`
//! answer: each chunk of output is a frame with an 8-byte header, `[stream, 0, 0, 0, size as
//! big-endian u32]`, stream 0 stdin, 1 stdout, 2 stderr. A tty's output is sent raw instead.

use bytes::{BufMut, Bytes, BytesMut};

/// What API versions up to 1.41 call every attach stream, multiplexed or not.
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
/// From API 1.42, a multiplexed stream says so.
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

const HEADER: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fd {
    Stdout = 1,
    Stderr = 2,
}

/// Appends `payload` to `out` as frames of `fd` (one, unless it is over 4 GiB; none when
/// it is empty).
pub fn frame_into(out: &mut BytesMut, fd: Fd, payload: &[u8]) {
    for chunk in payload.chunks(u32::MAX as usize) {
        out.reserve(HEADER + chunk.len());
        out.put_u8(fd as u8);
        out.put_bytes(0, 3);
        // chunks() bounds the length by u32::MAX.
        out.put_u32(u32::try_from(chunk.len()).unwrap_or(u32::MAX));
        out.put_slice(chunk);
    }
}

/// `payload` as one frame of `fd`.
pub fn frame(fd: Fd, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + payload.len());
    frame_into(&mut out, fd, payload);
    out.freeze()
}

/// The content type of a multiplexed answer for API `version` ("1.41").
pub fn multiplexed_type(version: &str) -> &'static str {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (1, 42) {
        MULTIPLEXED_STREAM
    } else {
        RAW_STREAM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_stream_and_big_endian_size() {
        assert_eq!(
            frame(Fd::Stdout, b"hi\n").as_ref(),
            b"\x01\0\0\0\0\0\0\x03hi\n"
        );
        let long = vec![b'x'; 0x1_02_03];
        let framed = frame(Fd::Stderr, &long);
        assert_eq!(&framed[..8], b"\x02\0\0\0\0\x01\x02\x03");
        assert_eq!(framed.len(), 8 + long.len());
        assert!(frame(Fd::Stdout, b"").is_empty(), "no empty frames");
    }

    #[test]
    fn content_type_follows_the_version() {
        assert_eq!(multiplexed_type("1.41"), RAW_STREAM);
        assert_eq!(multiplexed_type("1.24"), RAW_STREAM);
        assert_eq!(multiplexed_type("1.42"), MULTIPLEXED_STREAM);
        assert_eq!(multiplexed_type("1.43"), MULTIPLEXED_STREAM);
    }
}
