//! What a completion belongs to: the `user_data` token of every submission.
//!
//! Layout (most significant first): operation kind (8 bits), slot generation (24 bits), slab
//! index (32 bits). The generation lets a completion be checked against the slot it was
//! submitted for.

/// The kind of operation a submission is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// The multishot accept on the listener.
    Accept = 1,
    /// A receive on a connection.
    Recv = 2,
    /// A send on a connection.
    Send = 3,
    /// A connect on an outbound connection.
    Connect = 4,
    /// A receive on the console socket.
    Console = 5,
    /// A cancellation of another operation (at exit).
    Cancel = 6,
    /// A receive on a signal's socket (the slot is the signal's index).
    Signal = 7,
}

/// Bits of the generation kept in a token.
const GENERATION_BITS: u32 = 24;
/// Mask of the generation kept in a token.
pub(crate) const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// A decoded `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: OpKind,
    pub slot: usize,
    pub generation: u32,
}

impl Token {
    /// A token for an operation that belongs to no connection slot.
    pub fn unslotted(kind: OpKind) -> Token {
        Token {
            kind,
            slot: 0,
            generation: 0,
        }
    }

    pub fn encode(self) -> u64 {
        let slot = u32::try_from(self.slot).expect("slab index fits in 32 bits");
        assert!(self.generation <= GENERATION_MASK, "generation is masked");
        (self.kind as u64) << 56 | u64::from(self.generation) << 32 | u64::from(slot)
    }

    pub fn decode(user_data: u64) -> Token {
        let kind = match user_data >> 56 {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Connect,
            5 => OpKind::Console,
            6 => OpKind::Cancel,
            7 => OpKind::Signal,
            other => panic!("completion with unknown operation kind {other}"),
        };
        Token {
            kind,
            slot: (user_data & 0xFFFF_FFFF) as usize,
            generation: ((user_data >> 32) as u32) & GENERATION_MASK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        let token = Token {
            kind: OpKind::Send,
            slot: 4095,
            generation: GENERATION_MASK,
        };
        assert_eq!(Token::decode(token.encode()), token);
        let accept = Token::unslotted(OpKind::Accept);
        assert_eq!(Token::decode(accept.encode()), accept);
    }
}
