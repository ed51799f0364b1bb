//! The shared secret of `--secret-file`: every connection starts with a challenge-response
//! keyed by it (HMAC-SHA256), so a host without the secret cannot register, report or inject
//! packets. The acceptor sends a random nonce; the connector answers with
//! HMAC-SHA256(secret, "overlay-auth-v1" || nonce) before anything else; the acceptor checks it
//! in constant time and closes the connection on anything else. Connections are
//! authenticated, not packets, so the data path costs nothing more.
//!
//! [`Handshake`] is the exchange for one connection, the same at the registry and at nodes:
//! what it sends and what it proves is decided here and nowhere else.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;

use crate::limits::{SECRET_BYTES_MIN, SECRET_FILE_BYTES_MAX};
use crate::wire::Control;
use sha2::Sha256;

/// Bytes of a challenge nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a response MAC.
pub const MAC_BYTES: usize = 32;

const CONTEXT: &[u8] = b"overlay-auth-v1";

/// The shared secret.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret from a file's contents (one trailing line ending is not part of it).
    pub fn from_file_contents(bytes: &[u8]) -> Result<Secret, String> {
        let key = bytes
            .strip_suffix(b"\n")
            .map(|b| b.strip_suffix(b"\r").unwrap_or(b))
            .unwrap_or(bytes);
        if key.len() < SECRET_BYTES_MIN {
            return Err(format!(
                "the secret is {} bytes; it must be at least {SECRET_BYTES_MIN}",
                key.len()
            ));
        }
        if key.iter().all(u8::is_ascii_whitespace) {
            return Err("the secret is only white space".into());
        }
        Ok(Secret { key: key.to_vec() })
    }

    /// The secret in the file at `path`, refused as ssh refuses a private key: the file must be
    /// a regular file that only its owner can read or write, and at most
    /// [`SECRET_FILE_BYTES_MAX`] long (so `/dev/zero` or a log file given by mistake is
    /// refused at once, not read until memory runs out).
    pub fn read_file(path: &Path) -> Result<Secret, String> {
        let shown = path.display();
        let file = File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let metadata = file
            .metadata()
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if !metadata.is_file() {
            return Err(format!("{shown} is not a regular file"));
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} has permissions {mode:04o}: other users may read the secret; \
                 `chmod 600 {shown}` and use it again"
            ));
        }
        let mut bytes = Vec::new();
        file.take(SECRET_FILE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if bytes.len() > SECRET_FILE_BYTES_MAX {
            return Err(format!(
                "{shown} is longer than {SECRET_FILE_BYTES_MAX} bytes: a secret file holds one \
                 line"
            ));
        }
        Secret::from_file_contents(&bytes).map_err(|why| format!("{shown}: {why}"))
    }

    fn keyed(&self) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(CONTEXT);
        mac
    }

    /// The answer to `nonce` (what [`Handshake`] sends; tests play peers with it).
    pub fn respond(&self, nonce: &[u8; NONCE_BYTES]) -> [u8; MAC_BYTES] {
        let mut mac = self.keyed();
        mac.update(nonce);
        mac.finalize().into_bytes().into()
    }

    /// Whether `answer` is the answer to `nonce` (constant time).
    fn verify(&self, nonce: &[u8; NONCE_BYTES], answer: &[u8; MAC_BYTES]) -> bool {
        let mut mac = self.keyed();
        mac.update(nonce);
        mac.verify_slice(answer).is_ok()
    }
}

/// Where one connection stands in the challenge-response. The side that accepted the
/// connection challenges ([`Handshake::challenge`]); the side that opened it answers
/// ([`Handshake::answer`]). Until it is [`Handshake::Done`], the peer's first message goes to
/// [`Handshake::on_message`] and nothing else is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// We accepted the connection and sent a challenge: the peer's first message must be the
    /// answer to `nonce`.
    Challenged { nonce: [u8; NONCE_BYTES] },
    /// We opened the connection: the peer's first message must be its challenge.
    AwaitingChallenge,
    /// Authenticated (or no secret is configured).
    Done,
}

/// What the peer's first message did to a [`Handshake`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// The peer answered our challenge with the secret: the connection is authenticated.
    Verified,
    /// The peer challenged us: send `reply` (our answer) before anything else; the connection
    /// is authenticated from our side.
    Reply(Control),
    /// The peer failed the handshake: close the connection.
    Refused(Refusal),
}

/// Why a peer failed the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Our challenge was answered, but not with our secret.
    WrongAnswer,
    /// The first message was not the one the handshake expects (or not a message at all).
    OutOfTurn,
}

impl Handshake {
    /// The accepting side: a fresh nonce from `nonces`, and the challenge to send before
    /// anything else.
    pub fn challenge(nonces: &mut impl RngCore) -> (Handshake, Control) {
        let mut nonce = [0; NONCE_BYTES];
        nonces.fill_bytes(&mut nonce);
        (
            Handshake::Challenged { nonce },
            Control::Challenge { nonce },
        )
    }

    /// The opening side: wait for the peer's challenge.
    pub fn answer() -> Handshake {
        Handshake::AwaitingChallenge
    }

    pub fn is_done(&self) -> bool {
        *self == Handshake::Done
    }

    /// The peer's first message (`None`: a frame that is not a control message). The
    /// handshake is [`Handshake::Done`] after any outcome but a refusal.
    pub fn on_message(&mut self, secret: &Secret, message: Option<&Control>) -> Outcome {
        let outcome = match (&*self, message) {
            (Handshake::Challenged { nonce }, Some(Control::Response { mac })) => {
                if secret.verify(nonce, mac) {
                    Outcome::Verified
                } else {
                    Outcome::Refused(Refusal::WrongAnswer)
                }
            }
            (Handshake::AwaitingChallenge, Some(Control::Challenge { nonce })) => {
                Outcome::Reply(Control::Response {
                    mac: secret.respond(nonce),
                })
            }
            (Handshake::Done, _) => {
                debug_assert!(false, "a message for a finished handshake");
                Outcome::Refused(Refusal::OutOfTurn)
            }
            _ => Outcome::Refused(Refusal::OutOfTurn),
        };
        if !matches!(outcome, Outcome::Refused(_)) {
            *self = Handshake::Done;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn responses_verify_only_with_the_same_secret_and_nonce() {
        let secret = Secret::from_file_contents(b"correct horse battery staple\n").unwrap();
        let other = Secret::from_file_contents(b"correct horse battery stapler").unwrap();
        let nonce = [7u8; NONCE_BYTES];
        let answer = secret.respond(&nonce);
        assert!(secret.verify(&nonce, &answer));
        assert!(!other.verify(&nonce, &answer));
        assert!(!secret.verify(&[8u8; NONCE_BYTES], &answer));
        assert!(Secret::from_file_contents(b"short\n").is_err());
        assert!(Secret::from_file_contents(b"                    \n").is_err());
        assert_eq!(format!("{secret:?}"), "Secret(..)");
    }

    #[test]
    fn the_handshake_answers_challenges_and_verifies_answers() {
        let secret = Secret::from_file_contents(b"correct horse battery staple\n").unwrap();
        let other = Secret::from_file_contents(b"correct horse battery stapler").unwrap();
        let mut nonces = rand::rngs::StdRng::seed_from_u64(7);
        let (mut acceptor, challenge) = Handshake::challenge(&mut nonces);
        let mut connector = Handshake::answer();
        let Outcome::Reply(response) = connector.on_message(&secret, Some(&challenge)) else {
            panic!("the connector answers a challenge");
        };
        assert!(connector.is_done());
        let mut impostor = acceptor.clone();
        assert_eq!(
            acceptor.on_message(&secret, Some(&response)),
            Outcome::Verified
        );
        assert!(acceptor.is_done());
        // The same answer checked against another secret, or anything else first: refused.
        assert_eq!(
            impostor.clone().on_message(&other, Some(&response)),
            Outcome::Refused(Refusal::WrongAnswer)
        );
        assert_eq!(
            impostor.on_message(&secret, Some(&challenge)),
            Outcome::Refused(Refusal::OutOfTurn)
        );
        assert_eq!(
            Handshake::answer().on_message(&secret, None),
            Outcome::Refused(Refusal::OutOfTurn)
        );
        assert!(!impostor.is_done());
    }
}
