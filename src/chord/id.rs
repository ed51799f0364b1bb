//! Identifiers of up to 160 bits and their arithmetic modulo 2^m.
//!
//! An [`Id`] is an unsigned integer below 2^160, held as a 32-bit high part and a 128-bit low
//! part so that comparison, addition and subtraction are two machine operations each (no
//! bignum, no allocation: lookups run in loops of millions). Its byte form is 20 bytes
//! big-endian, the form a key takes on the wire. An [`IdSpace`] fixes m: every identifier of
//! an overlay lies in 0..2^m, and distances are clockwise, modulo 2^m.

use sha2::{Digest, Sha256};

use crate::limits::CHORD_ID_BITS_MAX;

/// An unsigned integer below 2^160. The derived order compares `high` first, then `low`:
/// the numeric order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id {
    high: u32,
    low: u128,
}

/// Bytes of an identifier in its big-endian byte form.
pub const ID_BYTES: usize = 20;

impl Id {
    pub const ZERO: Id = Id { high: 0, low: 0 };

    /// The identifier whose big-endian bytes are `bytes`.
    pub fn from_be_bytes(bytes: [u8; ID_BYTES]) -> Id {
        let (high, low) = bytes.split_at(4);
        Id {
            high: u32::from_be_bytes(high.try_into().expect("4 bytes")),
            low: u128::from_be_bytes(low.try_into().expect("16 bytes")),
        }
    }

    /// The 20 big-endian bytes of this identifier.
    pub fn to_be_bytes(self) -> [u8; ID_BYTES] {
        let mut bytes = [0; ID_BYTES];
        bytes[..4].copy_from_slice(&self.high.to_be_bytes());
        bytes[4..].copy_from_slice(&self.low.to_be_bytes());
        bytes
    }

    /// floor(log2(self)), `None` for zero.
    #[inline]
    pub fn ilog2(self) -> Option<u32> {
        if self.high != 0 {
            Some(128 + self.high.ilog2())
        } else {
            self.low.checked_ilog2()
        }
    }

    #[inline]
    fn wrapping_add(self, other: Id) -> Id {
        let (low, carry) = self.low.overflowing_add(other.low);
        Id {
            high: self
                .high
                .wrapping_add(other.high)
                .wrapping_add(u32::from(carry)),
            low,
        }
    }

    #[inline]
    fn wrapping_sub(self, other: Id) -> Id {
        let (low, borrow) = self.low.overflowing_sub(other.low);
        Id {
            high: self
                .high
                .wrapping_sub(other.high)
                .wrapping_sub(u32::from(borrow)),
            low,
        }
    }
}

impl std::ops::Shr<u32> for Id {
    type Output = Id;

    /// self >> shift, for shift < 160.
    fn shr(self, shift: u32) -> Id {
        debug_assert!(shift < 160);
        match shift {
            0 => self,
            1..128 => Id {
                high: self.high.checked_shr(shift).unwrap_or(0),
                low: (self.low >> shift) | (u128::from(self.high) << (128 - shift)),
            },
            _ => Id {
                high: 0,
                low: u128::from(self.high >> (shift - 128)),
            },
        }
    }
}

impl From<u128> for Id {
    fn from(low: u128) -> Id {
        Id { high: 0, low }
    }
}

impl std::fmt::LowerHex for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.high != 0 {
            write!(f, "{:x}{:032x}", self.high, self.low)
        } else {
            write!(f, "{:x}", self.low)
        }
    }
}

/// The identifier space 0..2^m of one overlay, m in 1..=160.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSpace {
    bits: u32,
    /// 2^m - 1.
    max: Id,
}

impl IdSpace {
    /// The space of `bits`-bit identifiers; `None` unless 1 <= bits <= 160.
    pub fn new(bits: u32) -> Option<IdSpace> {
        if !(1..=CHORD_ID_BITS_MAX).contains(&bits) {
            return None;
        }
        let max = if bits >= 128 {
            Id {
                high: u32::MAX.checked_shr(160 - bits).unwrap_or(0),
                low: u128::MAX,
            }
        } else {
            Id {
                high: 0,
                low: u128::MAX >> (128 - bits),
            }
        };
        Some(IdSpace { bits, max })
    }

    /// m: the identifier width in bits.
    pub fn bits(self) -> u32 {
        self.bits
    }

    /// The largest identifier, 2^m - 1.
    pub fn max(self) -> Id {
        self.max
    }

    /// Whether `id` lies in 0..2^m.
    pub fn contains(self, id: Id) -> bool {
        id <= self.max
    }

    /// `id` modulo 2^m.
    #[inline]
    pub fn reduce(self, id: Id) -> Id {
        Id {
            high: id.high & self.max.high,
            low: id.low & self.max.low,
        }
    }

    /// (a + b) mod 2^m.
    #[inline]
    pub fn add(self, a: Id, b: Id) -> Id {
        self.reduce(a.wrapping_add(b))
    }

    /// The clockwise distance from `from` to `to`: (to - from) mod 2^m.
    #[inline]
    pub fn distance(self, from: Id, to: Id) -> Id {
        self.reduce(to.wrapping_sub(from))
    }

    /// 2^i, for i < m.
    pub fn power_of_two(self, i: u32) -> Id {
        assert!(i < self.bits, "2^{i} is not below 2^{}", self.bits);
        if i < 128 {
            Id::from(1u128 << i)
        } else {
            Id {
                high: 1 << (i - 128),
                low: 0,
            }
        }
    }

    /// A uniformly random identifier.
    pub fn random(self, rng: &mut impl rand::Rng) -> Id {
        self.reduce(Id {
            high: rng.random(),
            low: rng.random(),
        })
    }

    /// A uniformly random identifier below `bound` (which is at least 1 and in this space).
    pub fn random_below(self, bound: Id, rng: &mut impl rand::Rng) -> Id {
        debug_assert!(bound != Id::ZERO && self.contains(bound));
        let Some(top) = self.distance(Id::from(1), bound).ilog2() else {
            return Id::ZERO;
        };
        // Drawn from the smallest power-of-two range that holds `bound`: each draw is kept
        // with probability above 1/2, so the loop ends after fewer than two draws on average.
        let range = IdSpace::new(top + 1).expect("top < bits <= 160");
        loop {
            let id = range.random(rng);
            if id < bound {
                return id;
            }
        }
    }

    /// Bytes of a key of this space on the wire: ceil(m / 8).
    pub fn key_bytes(self) -> usize {
        self.bits.div_ceil(8) as usize
    }

    /// `id` as a key on the wire: its last [`IdSpace::key_bytes`] big-endian bytes.
    pub fn write_key(self, id: Id, out: &mut [u8; ID_BYTES]) -> &[u8] {
        *out = id.to_be_bytes();
        &out[ID_BYTES - self.key_bytes()..]
    }

    /// The key whose wire bytes are `bytes`: `None` unless they are as wide as this space's
    /// keys and the value lies in the space.
    pub fn read_key(self, bytes: &[u8]) -> Option<Id> {
        if bytes.len() != self.key_bytes() {
            return None;
        }
        let mut full = [0; ID_BYTES];
        full[ID_BYTES - bytes.len()..].copy_from_slice(bytes);
        let id = Id::from_be_bytes(full);
        self.contains(id).then_some(id)
    }

    /// The key an operator typed: `0x` and hex digits, or decimal digits, for a number in
    /// this space; with `strings`, any other text is hashed into it ([`IdSpace::hash`]).
    pub fn parse_key(self, text: &str, strings: bool) -> Result<Id, String> {
        let number = if let Some(hex) = text.strip_prefix("0x") {
            parse_hex(hex).ok_or_else(|| format!("'{text}' is not a hexadecimal number"))?
        } else if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u128>()
                .map(Id::from)
                .map_err(|_| format!("{text} does not fit in {} bits", self.bits))?
        } else if strings {
            return Ok(self.hash(text.as_bytes()));
        } else {
            return Err(format!(
                "'{text}' is not a number: with position fingers a key is a node ID (decimal, \
                 or hex after 0x)"
            ));
        };
        if !self.contains(number) {
            return Err(format!("{text} does not fit in {} bits", self.bits));
        }
        Ok(number)
    }

    /// The first m bits of SHA-256(`bytes`), as an identifier: consistent hashing.
    pub fn hash(self, bytes: &[u8]) -> Id {
        let digest = Sha256::digest(bytes);
        let first: [u8; ID_BYTES] = digest[..ID_BYTES].try_into().expect("32 >= 20 bytes");
        Id::from_be_bytes(first) >> (160 - self.bits)
    }
}

/// The value of 1 to 40 hex digits (160 bits).
fn parse_hex(digits: &str) -> Option<Id> {
    if digits.is_empty() || digits.len() > 2 * ID_BYTES {
        return None;
    }
    let mut bytes = [0; ID_BYTES];
    for (i, digit) in digits.chars().rev().enumerate() {
        let value = digit.to_digit(16)? as u8;
        bytes[ID_BYTES - 1 - i / 2] |= value << (4 * (i % 2));
    }
    Some(Id::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(bits: u32) -> IdSpace {
        IdSpace::new(bits).unwrap()
    }

    #[test]
    fn widths() {
        assert!(IdSpace::new(0).is_none());
        assert!(IdSpace::new(161).is_none());
        assert_eq!(space(7).max(), Id::from(127));
        assert_eq!(space(128).max(), Id::from(u128::MAX));
        assert_eq!(space(160).max().to_be_bytes(), [0xff; ID_BYTES]);
        let mut bytes = [0xff; ID_BYTES];
        bytes[..3].fill(0);
        bytes[3] = 0x01;
        assert_eq!(space(129).max().to_be_bytes(), bytes);
    }

    #[test]
    fn bytes_round_trip_big_endian() {
        let mut bytes = [0; ID_BYTES];
        bytes[19] = 1;
        assert_eq!(Id::from_be_bytes(bytes), Id::from(1));
        bytes = [0; ID_BYTES];
        bytes[0] = 0x80;
        let top = Id::from_be_bytes(bytes);
        assert_eq!(top, space(160).power_of_two(159));
        assert_eq!(top.to_be_bytes(), bytes);
        assert!(
            top > Id::from(u128::MAX),
            "compared as one unsigned integer"
        );
        assert_eq!(format!("{top:x}"), format!("8{}", "0".repeat(39)));
    }

    #[test]
    fn distance_wraps_around() {
        let s = space(7);
        assert_eq!(s.distance(Id::from(120), Id::from(5)), Id::from(13));
        assert_eq!(s.distance(Id::from(5), Id::from(120)), Id::from(115));
        assert_eq!(s.distance(Id::from(9), Id::from(9)), Id::ZERO);
        assert_eq!(s.add(Id::from(127), Id::from(1)), Id::ZERO);
        assert_eq!(s.add(Id::from(100), s.power_of_two(6)), Id::from(36));
    }

    #[test]
    fn arithmetic_at_the_160_bit_edges() {
        let s = space(160);
        let max = s.max();
        let one = Id::from(1);
        assert_eq!(s.add(max, one), Id::ZERO);
        assert_eq!(s.distance(one, Id::ZERO), max);
        assert_eq!(s.distance(max, one), Id::from(2));
        // A borrow out of the low 128 bits into the high 32.
        let above_low = s.power_of_two(128);
        assert_eq!(s.distance(Id::from(u128::MAX), above_low), one);
        assert_eq!(s.add(Id::from(u128::MAX), one), above_low);
        assert_eq!(s.distance(above_low, Id::from(u128::MAX)), max);
        assert_eq!(max.ilog2(), Some(159));
        assert_eq!(above_low.ilog2(), Some(128));
        assert_eq!(Id::from(u128::MAX).ilog2(), Some(127));
        assert_eq!(one.ilog2(), Some(0));
        assert_eq!(Id::ZERO.ilog2(), None);
        // m = 129 and m = 128: wrap at the boundary between the parts.
        let s = space(129);
        assert_eq!(s.add(s.max(), one), Id::ZERO);
        assert_eq!(s.add(Id::from(u128::MAX), one), s.power_of_two(128));
        let s = space(128);
        assert_eq!(s.add(Id::from(u128::MAX), one), Id::ZERO);
        assert_eq!(s.distance(one, Id::ZERO), Id::from(u128::MAX));
    }

    #[test]
    fn shifts() {
        let top = space(160).power_of_two(159);
        assert_eq!(top >> 159, Id::from(1));
        assert_eq!(top >> 31, space(160).power_of_two(128));
        assert_eq!(top >> 32, Id::from(1 << 127));
        assert_eq!(top >> 33, Id::from(1 << 126));
        assert_eq!(top >> 0, top);
        assert_eq!(Id::from(6) >> 1, Id::from(3));
    }

    #[test]
    fn hashes_take_the_first_m_bits() {
        let digest = Sha256::digest(b"127.0.0.1:4000");
        for bits in [1, 7, 32, 127, 128, 129, 160] {
            let id = space(bits).hash(b"127.0.0.1:4000");
            assert!(space(bits).contains(id));
            let first = Id::from_be_bytes(digest[..20].try_into().unwrap());
            assert_eq!(id, first >> (160 - bits), "m = {bits}");
        }
        assert_eq!(
            space(8).hash(b"127.0.0.1:4000"),
            Id::from(u128::from(digest[0]))
        );
    }

    #[test]
    fn random_ids_stay_in_the_space() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for bits in [1, 3, 64, 128, 130, 160] {
            for _ in 0..100 {
                assert!(space(bits).contains(space(bits).random(&mut rng)));
            }
        }
    }
}
