//! The shared secret of `--secret-file`: every connection starts with a challenge-response
//! keyed by it (HMAC-SHA256), so a host without the secret cannot register, report or inject
//! packets. The acceptor sends a random nonce; the connector answers with
//! HMAC-SHA256(secret, "overlay-auth-v1" || nonce) before anything else; the acceptor checks it
//! in constant time and closes the connection on anything else. Connections are
//! authenticated, not packets, so the data path costs nothing more.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};

use crate::limits::SECRET_FILE_BYTES_MAX;
use sha2::Sha256;

/// Bytes of a challenge nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a response MAC.
pub const MAC_BYTES: usize = 32;
/// A secret shorter than this is refused (it would be guessable).
pub const SECRET_BYTES_MIN: usize = 16;

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

    /// The answer to `nonce`.
    pub fn respond(&self, nonce: &[u8; NONCE_BYTES]) -> [u8; MAC_BYTES] {
        let mut mac = self.keyed();
        mac.update(nonce);
        mac.finalize().into_bytes().into()
    }

    /// Whether `answer` is the answer to `nonce` (constant time).
    pub fn verify(&self, nonce: &[u8; NONCE_BYTES], answer: &[u8; MAC_BYTES]) -> bool {
        let mut mac = self.keyed();
        mac.update(nonce);
        mac.verify_slice(answer).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
