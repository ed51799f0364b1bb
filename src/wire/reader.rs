//! Bounds-checked reading of fields from a frame: no accessor can panic.

use std::net::IpAddr;

use super::WireError;

/// A cursor over one frame's bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    pub(crate) fn take(&mut self, count: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < count {
            return Err(WireError::Truncated { what: self.what });
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn ip(&mut self) -> Result<IpAddr, WireError> {
        let len = self.u8()?;
        match len {
            4 => Ok(IpAddr::from(self.array::<4>()?)),
            16 => Ok(IpAddr::from(self.array::<16>()?)),
            other => Err(WireError::BadField {
                what: "IP address length",
                detail: format!("{other} (must be 4 or 16)"),
            }),
        }
    }

    /// A string prefixed by a one-byte length (ASCII in practice; decoded lossily).
    pub(crate) fn string(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.u8()?);
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Fails if bytes are left over.
    pub(crate) fn finish(self) -> Result<(), WireError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing {
                what: self.what,
                extra: self.bytes.len(),
            })
        }
    }
}

/// Appends an IP address as length byte then raw bytes.
pub(crate) fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(16);
            out.extend_from_slice(&v6.octets());
        }
    }
}

/// Appends a string with a one-byte length, cut at 127 bytes (peers may read the length as a
/// signed byte) on a character boundary.
pub(crate) fn put_string(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(127);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&text.as_bytes()[..end]);
}
