//! The CRC32 of an originated payload from its value, in four table lookups.
//!
//! A run's payloads differ only in their first four bytes (the value); the extra bytes after
//! them are the same for every packet of the run. CRC32 is affine over GF(2): for messages of
//! one length, `crc(a ^ b) = crc(a) ^ crc(b) ^ crc(zeros)`. So
//! `crc(value ++ extra) = crc(0000 ++ extra) ^ T0[value[0]] ^ T1[value[1]] ^ T2[value[2]] ^
//! T3[value[3]]`, where `Tk[b]` is the contribution of byte `b` at position `k`:
//! `crc(b at k, zeros elsewhere) ^ crc(zeros)`. Every CRC here is `crc32fast`'s (through
//! [`crc32`]); the tables only combine them. Origination then costs four loads instead of a
//! CRC of the whole payload (docs/PERFORMANCE.md: 232 -> 196 instructions per packet for a
//! 4-byte payload, and no 4 KiB CRC per packet in W3). Sinks compute the CRC of what arrived:
//! for a payload of just the 4-byte value, that is this with no extra bytes (`native::crc32`).

use super::native::crc32_by_hasher as crc32;

/// Precomputed CRC32 of the payloads of one run (see the module documentation).
#[derive(Clone, Debug)]
pub struct PayloadCrc {
    len: usize,
    base: u32,
    tables: Box<[[u32; 256]; 4]>,
}

impl PayloadCrc {
    /// For payloads of `template.len()` bytes (at least 4) that equal `template` after their
    /// first four bytes. Costs 34 CRCs of that length.
    pub fn new(template: &[u8]) -> PayloadCrc {
        assert!(template.len() >= 4, "a payload starts with a 4-byte value");
        let mut message = template.to_vec();
        message[..4].fill(0);
        let base = crc32(&message);
        message.fill(0);
        let zeros = crc32(&message);
        let mut tables = Box::new([[0u32; 256]; 4]);
        for (position, table) in tables.iter_mut().enumerate() {
            let mut bits = [0u32; 8];
            for (bit, column) in bits.iter_mut().enumerate() {
                message[position] = 1 << bit;
                *column = crc32(&message) ^ zeros;
            }
            message[position] = 0;
            for byte in 1..256usize {
                // The entry of `byte` is that of `byte` without its lowest bit, plus that bit's.
                let lowest = byte & byte.wrapping_neg();
                table[byte] = table[byte ^ lowest] ^ bits[lowest.trailing_zeros() as usize];
            }
        }
        PayloadCrc {
            len: template.len(),
            base,
            tables,
        }
    }

    /// Makes this ready for payloads like `template`. The tables depend only on the length,
    /// so for a template of the same length only one CRC is computed; otherwise it is built
    /// anew.
    pub fn retarget(&mut self, template: &[u8]) {
        if template.len() != self.len {
            *self = PayloadCrc::new(template);
            return;
        }
        let mut message = template.to_vec();
        message[..4].fill(0);
        self.base = crc32(&message);
    }

    /// The CRC32 of the payload whose first four bytes are `value`.
    #[inline]
    pub fn of(&self, value: [u8; 4]) -> u32 {
        self.base
            ^ self.tables[0][usize::from(value[0])]
            ^ self.tables[1][usize::from(value[1])]
            ^ self.tables[2][usize::from(value[2])]
            ^ self.tables[3][usize::from(value[3])]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Against crc32fast over the whole payload, for payloads of 4 bytes to 33 KiB.
        #[test]
        fn equals_the_crc_of_the_whole_payload(
            extra in proptest::collection::vec(any::<u8>(), 0..2048),
            long in any::<bool>(),
            values in proptest::collection::vec(any::<[u8; 4]>(), 1..16),
        ) {
            let mut payload = vec![0u8; 4];
            payload.extend_from_slice(&extra);
            if long {
                payload.resize(4 + 32 * 1024, 0x5a);
            }
            let table = PayloadCrc::new(&payload);
            prop_assert_eq!(table.len, payload.len());
            for value in values {
                payload[..4].copy_from_slice(&value);
                prop_assert_eq!(table.of(value), crc32fast::hash(&payload));
            }
        }
    }

    proptest! {
        /// `native::crc32`, which takes the tables for 4-byte payloads, is crc32fast's CRC for
        /// every length.
        #[test]
        fn native_crc32_is_crc32fast(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(crate::wire::native::crc32(&bytes), crc32fast::hash(&bytes));
        }
    }

    /// The edges, deterministically: a bare 4-byte value (every value with one byte set, and
    /// a spread of others) and the largest payload a run may have.
    #[test]
    fn four_bytes_and_the_largest_payload() {
        let bare = PayloadCrc::new(&[0; 4]);
        for value in (0..=u32::MAX)
            .step_by(65_521)
            .chain([u32::MAX, 1, 0x8000_0000])
        {
            let bytes = value.to_le_bytes();
            assert_eq!(bare.of(bytes), crc32fast::hash(&bytes));
            assert_eq!(crate::wire::native::crc32(&bytes), crc32fast::hash(&bytes));
        }
        let mut payload: Vec<u8> = (0..crate::limits::PAYLOAD_BYTES_MAX)
            .map(|i| (i * 7) as u8)
            .collect();
        let largest = PayloadCrc::new(&payload);
        for value in [[0, 0, 0, 0], [1, 2, 3, 4], [255; 4], [0x80, 0, 0, 0x01]] {
            payload[..4].copy_from_slice(&value);
            assert_eq!(largest.of(value), crc32fast::hash(&payload));
        }
    }

    /// A retargeted table is the table of its new template, same length or not.
    #[test]
    fn retarget_equals_new() {
        let mut table = PayloadCrc::new(b"\0\0\0\0first");
        for template in [&b"\0\0\0\0other"[..], b"\0\0\0\0longer one", b"1234"] {
            table.retarget(template);
            let fresh = PayloadCrc::new(template);
            assert_eq!(table.len, template.len());
            for value in [[9, 8, 7, 6], [0; 4], [255; 4]] {
                assert_eq!(table.of(value), fresh.of(value));
            }
        }
    }

    #[test]
    fn every_byte_of_every_position() {
        let mut payload = *b"\0\0\0\0extra";
        let table = PayloadCrc::new(&payload);
        for position in 0..4 {
            for byte in 0..=255u8 {
                payload[..4].fill(0x33);
                payload[position] = byte;
                let value = payload[..4].try_into().unwrap();
                assert_eq!(table.of(value), crc32fast::hash(&payload));
            }
        }
    }
}
