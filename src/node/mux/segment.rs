//! A trunk's bytes (docs/PROTOCOL.md, "Trunks"): the connector's magic, then segments, each a
//! 9-byte header (kind, stream, payload length; little-endian) and its payload.

use std::net::{IpAddr, SocketAddr};

use crate::limits::GROUP_NODES_MAX;

/// What a trunk's connector sends first. Read as a native frame's length prefix it declares
/// more than a frame may hold, so a node alone in its process refuses it at once; no segment
/// kind starts with its first byte.
pub(super) const MAGIC: &[u8; 8] = b"OVTRUNK1";
/// Bytes of a segment's header.
pub(super) const HEADER_BYTES: usize = 9;

/// A handshake message (`crate::auth`), as a native control frame. Stream 0.
pub(super) const CONTROL: u8 = 1;
/// The listening addresses of the sender's nodes: `count: u16`, then `count` addresses.
/// Stream 0; sent once, when the sender's side of the handshake is done.
pub(super) const LISTENERS: u8 = 2;
/// The sender opens `stream` to the listener at the address in the payload (one address).
pub(super) const OPEN: u8 = 3;
/// Bytes of `stream`, in order: a batch of its link's frames (they may be cut anywhere).
pub(super) const DATA: u8 = 4;
/// The sender closed `stream` after the bytes it sent on it. No payload.
pub(super) const CLOSE: u8 = 5;
/// The sender consumed this many more DATA bytes of the trunk (`u32`): the receiver of it may
/// send as many more (its credit outstanding at most, `credit::TrunkCredit`). Stream 0.
pub(super) const CREDIT: u8 = 6;

/// Bytes of an address: IPv6 (an IPv4 address mapped), then the port.
pub(super) const ADDR_BYTES: usize = 18;
/// The largest control message a handshake sends (a challenge: a nonce and a proof, framed).
pub(super) const CONTROL_BYTES_MAX: usize = 256;
/// The largest list of listeners: every node of the largest group.
pub(super) const LISTENERS_BYTES_MAX: usize = 2 + GROUP_NODES_MAX * ADDR_BYTES;

const _: () = assert!(MAGIC[0] > CREDIT);

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) kind: u8,
    pub(super) stream: u32,
    pub(super) len: usize,
}

/// The header `bytes` start with, once all of it is there.
pub(super) fn header(bytes: &[u8]) -> Option<Header> {
    let head = bytes.first_chunk::<HEADER_BYTES>()?;
    Some(Header {
        kind: head[0],
        stream: u32::from_le_bytes([head[1], head[2], head[3], head[4]]),
        len: u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize,
    })
}

/// Appends a header.
pub(super) fn put_header(out: &mut Vec<u8>, kind: u8, stream: u32, len: usize) {
    let len = u32::try_from(len).expect("a segment's payload fits its length field");
    out.push(kind);
    out.extend_from_slice(&stream.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
}

/// Appends `bytes` as DATA segments of `stream` (one, unless they outgrow a length field).
pub(super) fn put_data(out: &mut Vec<u8>, stream: u32, bytes: &[u8]) {
    for chunk in bytes.chunks(u32::MAX as usize) {
        put_header(out, DATA, stream, chunk.len());
        out.extend_from_slice(chunk);
    }
}

/// Appends a CREDIT segment for `bytes` consumed (sent as several past a length field).
pub(super) fn put_credit(out: &mut Vec<u8>, bytes: usize) {
    let mut left = bytes;
    while left > 0 {
        let part = left.min(u32::MAX as usize);
        put_header(out, CREDIT, 0, 4);
        out.extend_from_slice(&(part as u32).to_le_bytes());
        left -= part;
    }
}

/// The bytes a CREDIT segment's payload grants.
pub(super) fn credit(payload: &[u8]) -> Result<usize, String> {
    let bytes: [u8; 4] = payload
        .try_into()
        .map_err(|_| format!("a credit of {} bytes", payload.len()))?;
    Ok(u32::from_le_bytes(bytes) as usize)
}

fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&addr.port().to_le_bytes());
}

fn addr(bytes: &[u8; ADDR_BYTES]) -> SocketAddr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&bytes[..16]);
    let port = u16::from_le_bytes([bytes[16], bytes[17]]);
    SocketAddr::new(IpAddr::from(octets).to_canonical(), port)
}

/// Appends an OPEN segment.
pub(super) fn put_open(out: &mut Vec<u8>, stream: u32, to: SocketAddr) {
    put_header(out, OPEN, stream, ADDR_BYTES);
    put_addr(out, to);
}

/// The address an OPEN segment's payload names.
pub(super) fn open_addr(payload: &[u8]) -> Result<SocketAddr, String> {
    let bytes: &[u8; ADDR_BYTES] = payload
        .try_into()
        .map_err(|_| format!("an open of {} bytes", payload.len()))?;
    Ok(addr(bytes))
}

/// Appends a LISTENERS segment.
pub(super) fn put_listeners(out: &mut Vec<u8>, listeners: &[SocketAddr]) {
    assert!(listeners.len() <= GROUP_NODES_MAX);
    put_header(out, LISTENERS, 0, 2 + listeners.len() * ADDR_BYTES);
    out.extend_from_slice(&(listeners.len() as u16).to_le_bytes());
    for &listener in listeners {
        put_addr(out, listener);
    }
}

/// The addresses a LISTENERS segment's payload lists.
pub(super) fn listeners(payload: &[u8]) -> Result<Vec<SocketAddr>, String> {
    let (count, rest) = payload
        .split_first_chunk::<2>()
        .ok_or("a list of listeners without its count")?;
    let count = u16::from_le_bytes(*count) as usize;
    if count > GROUP_NODES_MAX || rest.len() != count * ADDR_BYTES {
        return Err(format!(
            "a list of {count} listeners in {} bytes",
            payload.len()
        ));
    }
    Ok(rest
        .chunks_exact(ADDR_BYTES)
        .map(|chunk| addr(chunk.try_into().expect("chunks of ADDR_BYTES")))
        .collect())
}

/// The most payload a segment of `kind` may declare (`None`: no such kind). DATA's payload is
/// passed on as it arrives, so it is bounded only by its length field.
pub(super) fn payload_max(kind: u8) -> Option<usize> {
    match kind {
        CONTROL => Some(CONTROL_BYTES_MAX),
        LISTENERS => Some(LISTENERS_BYTES_MAX),
        OPEN => Some(ADDR_BYTES),
        DATA => Some(u32::MAX as usize),
        CLOSE => Some(0),
        CREDIT => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_read_back_as_written() {
        let mut out = Vec::new();
        let v4: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        let v6: SocketAddr = "[::1]:5".parse().unwrap();
        put_open(&mut out, 7, v4);
        put_listeners(&mut out, &[v4, v6]);
        put_data(&mut out, 9, b"abc");
        put_header(&mut out, CLOSE, 9, 0);
        // Golden bytes of the first header: kind, stream, length, little-endian.
        assert_eq!(&out[..HEADER_BYTES], &[OPEN, 7, 0, 0, 0, 18, 0, 0, 0]);
        let open = header(&out).unwrap();
        assert_eq!((open.kind, open.stream, open.len), (OPEN, 7, ADDR_BYTES));
        let payload = &out[HEADER_BYTES..HEADER_BYTES + open.len];
        assert_eq!(open_addr(payload), Ok(v4));
        let at = HEADER_BYTES + open.len;
        let list = header(&out[at..]).unwrap();
        let payload = &out[at + HEADER_BYTES..at + HEADER_BYTES + list.len];
        assert_eq!(listeners(payload), Ok(vec![v4, v6]));
        let at = at + HEADER_BYTES + list.len;
        assert_eq!(
            header(&out[at..]),
            Some(Header {
                kind: DATA,
                stream: 9,
                len: 3
            })
        );
        assert!(header(&out[..HEADER_BYTES - 1]).is_none());
    }

    #[test]
    fn malformed_payloads_are_named_not_trusted() {
        assert!(open_addr(&[0; 5]).is_err());
        assert!(listeners(&[]).is_err());
        // A count that the bytes do not hold, and one past the largest group.
        assert!(listeners(&[2, 0, 1, 2, 3]).is_err());
        let big = (GROUP_NODES_MAX as u16 + 1).to_le_bytes();
        assert!(listeners(&big).is_err());
        assert_eq!(payload_max(MAGIC[0]), None);
        assert_eq!(payload_max(0), None);
    }
}
