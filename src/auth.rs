//! The shared secret of `--secret-file`, and the handshake every native connection starts
//! with (docs/PROTOCOL.md, "Handshake", has the layout and the threat model).
//!
//! The side that opened the connection (the *connector*: always a node) sends a hello first.
//! Without a secret that is all. With one, the hello carries the connector's fresh nonce; the
//! *acceptor* (the registry, or a node taking a link) answers with its own fresh nonce and its
//! proof, and the connector, once that proof checks out, sends its own proof before anything
//! else. Each proof is HMAC-SHA256 keyed by the secret over one transcript: a label naming
//! whose proof it is (acceptor or connector), both parties' roles, the acceptor's address as
//! the connector dialed it, and both nonces. So no proof computed for one exchange is valid in
//! any other: not the other direction's (the label), not toward a party of another role (a
//! node pointed by mistake at an outsider's port expects a registry there, and a node's
//! proof as acceptor names a node), not at another address (an outsider relaying between a
//! node it lured and a real peer presents transcripts that name its own address on one side
//! and the peer's on the other), not on another connection (fresh nonces on both sides). Both
//! sides check in constant time, and the connector checks the acceptor before it proves
//! anything itself. Connections are authenticated, not packets: the data path costs nothing
//! more.
//!
//! Why HMAC over a transcript rather than the Noise framework (`snow`, pattern NNpsk0): we
//! neither encrypt nor authenticate packets (the data plane's speed is the point of the
//! project), so the handshake's only product is "this peer knows the secret and speaks to me,
//! in this role, at this address, now". A Noise handshake would add Diffie-Hellman and a
//! second crate for keys we would then throw away, and would still leave the connection as
//! open to an on-path attacker as this one is. Two MACs over fixed-length fields (`hmac`,
//! `sha2`) give exactly the binding the threat model asks for, and fit in a page.
//!
//! [`Handshake`] is the exchange for one connection, the same at the registry and at nodes:
//! what is sent and what it proves is decided here and nowhere else.

use std::fs::File;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;

use crate::limits::{SECRET_BYTES_MIN, SECRET_FILE_BYTES_MAX};
use crate::wire::native::PROTOCOL_VERSION;
use crate::wire::{Control, Refusal};
use sha2::Sha256;

/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a proof (an HMAC-SHA256).
pub const PROOF_BYTES: usize = 32;

/// The first bytes of every transcript: the protocol and its version.
const LABEL: &[u8; 16] = b"overlay-auth-v2\0";

/// The part a party plays on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Registry,
    Node,
    /// The multiplexer of a process of several nodes (`node::mux`): a trunk's acceptor.
    Trunk,
}

impl Role {
    fn code(self) -> u8 {
        match self {
            Role::Registry => 1,
            Role::Node => 2,
            Role::Trunk => 3,
        }
    }
}

/// Whose proof: the two are computed over the same transcript under different labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The side that accepted the connection.
    Acceptor,
    /// The side that opened it.
    Connector,
}

impl Direction {
    fn label(self) -> &'static [u8; 16] {
        match self {
            Direction::Acceptor => b"acceptor proof\0\0",
            Direction::Connector => b"connector proof\0",
        }
    }
}

/// What a connection's handshake is bound to besides the nonces: the acceptor's role and its
/// address as the connector dialed it (for the acceptor, its local address of the connection).
/// The connector is always a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub acceptor: Role,
    pub acceptor_addr: SocketAddr,
}

/// Everything both proofs of one exchange cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transcript {
    pub binding: Binding,
    pub connector_nonce: [u8; NONCE_BYTES],
    pub acceptor_nonce: [u8; NONCE_BYTES],
}

impl Transcript {
    /// The bytes the proofs are computed over, after the direction's label: every field has a
    /// fixed length, so two different transcripts never give the same bytes.
    fn bytes(&self) -> [u8; 2 + 18 + 2 * NONCE_BYTES] {
        let mut out = [0; 2 + 18 + 2 * NONCE_BYTES];
        out[0] = Role::Node.code();
        out[1] = self.binding.acceptor.code();
        let addr = self.binding.acceptor_addr;
        let ip = match addr.ip().to_canonical() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        out[2..18].copy_from_slice(&ip.octets());
        out[18..20].copy_from_slice(&addr.port().to_be_bytes());
        out[20..52].copy_from_slice(&self.connector_nonce);
        out[52..84].copy_from_slice(&self.acceptor_nonce);
        out
    }
}

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

    fn keyed(&self, direction: Direction, transcript: &Transcript) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(LABEL);
        mac.update(direction.label());
        mac.update(&transcript.bytes());
        mac
    }

    /// `direction`'s proof over `transcript` (what [`Handshake`] sends; tests play peers
    /// with it).
    pub fn proof(&self, direction: Direction, transcript: &Transcript) -> [u8; PROOF_BYTES] {
        self.keyed(direction, transcript)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `proof` is `direction`'s proof over `transcript` (constant time).
    fn verify(
        &self,
        direction: Direction,
        transcript: &Transcript,
        proof: &[u8; PROOF_BYTES],
    ) -> bool {
        self.keyed(direction, transcript)
            .verify_slice(proof)
            .is_ok()
    }
}

/// Where one connection stands in its handshake. The connector starts with
/// [`Handshake::connect`] (and sends the hello it returns), the acceptor with
/// [`Handshake::accept`]; until it is [`Handshake::Done`], each message from the peer goes to
/// [`Handshake::on_message`] and nothing else is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// We opened the connection and sent a hello with `nonce`: the acceptor's challenge must
    /// come next.
    Connecting {
        binding: Binding,
        nonce: [u8; NONCE_BYTES],
    },
    /// We accepted the connection: the connector's hello must come first.
    Accepting { binding: Binding },
    /// We accepted and sent our challenge: the connector's response must come next.
    Challenged { transcript: Transcript },
    /// Authenticated (or no secret on either side).
    Done,
}

/// What a message from the peer did to a [`Handshake`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Send this and wait for the peer's next message.
    Reply(Control),
    /// The handshake is over (authenticated, or no secret on either side); send the message
    /// given first, before anything else.
    Done(Option<Control>),
    /// Not a handshake message, and no secret is needed here: the handshake is over, and the
    /// message is the connection's first request or packet (peers without a hello).
    PassThrough,
    /// The handshake failed: tell the peer [`Failure::tell`] if any, then close.
    Failed(Failure),
}

/// Why a handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The peer's proof does not match our secret and this exchange.
    WrongProof,
    /// We require the secret; the peer has none (its hello says so, or it skipped it).
    PeerHasNoSecret,
    /// The peer offered a secret; we have none.
    WeHaveNoSecret,
    /// The peer refused the connection and said why.
    Refused(Refusal),
    /// The peer sent something else than the handshake's next message.
    OutOfTurn,
    /// The peer's hello names another native protocol version, `theirs` (another build).
    Version { theirs: u16 },
}

impl Failure {
    /// What to tell the peer before closing.
    pub fn tell(self) -> Option<Refusal> {
        match self {
            Failure::WrongProof => Some(Refusal::WrongSecret),
            Failure::PeerHasNoSecret => Some(Refusal::SecretRequired),
            Failure::WeHaveNoSecret => Some(Refusal::NoSecret),
            Failure::Version { .. } => Some(Refusal::Version {
                ours: PROTOCOL_VERSION,
            }),
            Failure::Refused(_) | Failure::OutOfTurn => None,
        }
    }

    /// What happened, said of `peer` (for example "the registry at 10.0.0.1:5000").
    pub fn describe(self, peer: &str) -> String {
        match self {
            Failure::WrongProof => format!(
                "authentication failed: the proof of {peer} does not match the shared secret \
                 (another --secret-file, an impostor, or an address translated on the way: \
                 docs/PROTOCOL.md, \"Address translation\")"
            ),
            Failure::PeerHasNoSecret => {
                format!("{peer} has no shared secret, which this side requires (--secret-file)")
            }
            Failure::WeHaveNoSecret => format!(
                "{peer} offered a shared secret and this side has none: start both with the \
                 same --secret-file, or neither"
            ),
            Failure::Refused(refusal) => refusal.describe(peer),
            Failure::OutOfTurn => format!("{peer} did not follow the handshake"),
            Failure::Version { theirs } => format!(
                "{peer} speaks native protocol version {theirs}, this side \
                 {PROTOCOL_VERSION}: run the same build of overlay everywhere (their data \
                 frames do not read alike)"
            ),
        }
    }
}

impl Handshake {
    /// The connecting side: the hello to send first, and the handshake waiting for the
    /// acceptor's challenge (with a secret) or already done (without).
    pub fn connect(
        secret: Option<&Secret>,
        binding: Binding,
        nonces: &mut impl RngCore,
    ) -> (Handshake, Control) {
        match secret {
            Some(_) => {
                let mut nonce = [0; NONCE_BYTES];
                nonces.fill_bytes(&mut nonce);
                (
                    Handshake::Connecting { binding, nonce },
                    Control::Hello {
                        nonce: Some(nonce),
                        version: PROTOCOL_VERSION,
                    },
                )
            }
            None => (
                Handshake::Done,
                Control::Hello {
                    nonce: None,
                    version: PROTOCOL_VERSION,
                },
            ),
        }
    }

    /// The accepting side, whose local address of the connection is `binding.acceptor_addr`:
    /// wait for the connector's hello.
    pub fn accept(binding: Binding) -> Handshake {
        Handshake::Accepting { binding }
    }

    pub fn is_done(&self) -> bool {
        *self == Handshake::Done
    }

    /// The peer's next message (`None`: a frame that is not a control message, such as a data
    /// packet). The handshake is [`Handshake::Done`] after [`Outcome::Done`] and
    /// [`Outcome::PassThrough`].
    pub fn on_message(
        &mut self,
        secret: Option<&Secret>,
        message: Option<&Control>,
        nonces: &mut impl RngCore,
    ) -> Outcome {
        let outcome = match (&*self, secret, message) {
            (Handshake::Done, _, _) => {
                debug_assert!(false, "a message for a finished handshake");
                Outcome::Failed(Failure::OutOfTurn)
            }
            (_, _, Some(Control::Refused(refusal))) => Outcome::Failed(Failure::Refused(*refusal)),
            // Before the secret: a peer of another build would fail the handshake for
            // reasons that say less.
            (Handshake::Accepting { .. }, _, Some(Control::Hello { version, .. }))
                if *version != PROTOCOL_VERSION =>
            {
                Outcome::Failed(Failure::Version { theirs: *version })
            }
            (
                Handshake::Accepting { binding },
                Some(secret),
                Some(Control::Hello {
                    nonce: Some(theirs),
                    ..
                }),
            ) => {
                let mut ours = [0; NONCE_BYTES];
                nonces.fill_bytes(&mut ours);
                let transcript = Transcript {
                    binding: *binding,
                    connector_nonce: *theirs,
                    acceptor_nonce: ours,
                };
                let proof = secret.proof(Direction::Acceptor, &transcript);
                *self = Handshake::Challenged { transcript };
                return Outcome::Reply(Control::Challenge { nonce: ours, proof });
            }
            (Handshake::Accepting { .. }, Some(_), _) => Outcome::Failed(Failure::PeerHasNoSecret),
            (Handshake::Accepting { .. }, None, Some(Control::Hello { nonce: Some(_), .. })) => {
                Outcome::Failed(Failure::WeHaveNoSecret)
            }
            (Handshake::Accepting { .. }, None, Some(Control::Hello { nonce: None, .. })) => {
                Outcome::Done(None)
            }
            (Handshake::Accepting { .. }, None, _) => Outcome::PassThrough,
            (
                Handshake::Challenged { transcript },
                Some(secret),
                Some(Control::Response { proof }),
            ) => {
                if secret.verify(Direction::Connector, transcript, proof) {
                    Outcome::Done(None)
                } else {
                    Outcome::Failed(Failure::WrongProof)
                }
            }
            (
                Handshake::Connecting { binding, nonce },
                Some(secret),
                Some(Control::Challenge {
                    nonce: theirs,
                    proof,
                }),
            ) => {
                let transcript = Transcript {
                    binding: *binding,
                    connector_nonce: *nonce,
                    acceptor_nonce: *theirs,
                };
                if secret.verify(Direction::Acceptor, &transcript, proof) {
                    Outcome::Done(Some(Control::Response {
                        proof: secret.proof(Direction::Connector, &transcript),
                    }))
                } else {
                    Outcome::Failed(Failure::WrongProof)
                }
            }
            _ => Outcome::Failed(Failure::OutOfTurn),
        };
        if matches!(outcome, Outcome::Done(_) | Outcome::PassThrough) {
            *self = Handshake::Done;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::native::PROTOCOL_VERSION_UNNAMED;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn secret() -> Secret {
        Secret::from_file_contents(b"correct horse battery staple\n").unwrap()
    }

    fn other() -> Secret {
        Secret::from_file_contents(b"correct horse battery stapler").unwrap()
    }

    fn binding(acceptor: Role, addr: &str) -> Binding {
        Binding {
            acceptor,
            acceptor_addr: addr.parse().unwrap(),
        }
    }

    /// Runs a whole exchange: the connector's view of the acceptor is `dialed`, the acceptor's
    /// own is `accepted`. Returns the acceptor's final outcome, or the connector's failure.
    fn exchange(
        connector_secret: Option<&Secret>,
        dialed: Binding,
        acceptor_secret: Option<&Secret>,
        accepted: Binding,
    ) -> Result<Outcome, Failure> {
        let mut nonces = StdRng::seed_from_u64(1);
        let (mut connector, hello) = Handshake::connect(connector_secret, dialed, &mut nonces);
        let mut acceptor = Handshake::accept(accepted);
        let challenge = match acceptor.on_message(acceptor_secret, Some(&hello), &mut nonces) {
            Outcome::Reply(challenge) => challenge,
            other => return Ok(other),
        };
        let response = match connector.on_message(connector_secret, Some(&challenge), &mut nonces) {
            Outcome::Done(Some(response)) => response,
            Outcome::Failed(failure) => return Err(failure),
            other => panic!("the connector answered a challenge with {other:?}"),
        };
        assert!(connector.is_done());
        Ok(acceptor.on_message(acceptor_secret, Some(&response), &mut nonces))
    }

    #[test]
    fn secrets_are_read_with_care() {
        assert!(Secret::from_file_contents(b"short\n").is_err());
        assert!(Secret::from_file_contents(b"                    \n").is_err());
        assert_eq!(format!("{:?}", secret()), "Secret(..)");
    }

    #[test]
    fn both_sides_with_the_secret_authenticate_each_other() {
        let registry = binding(Role::Registry, "127.0.0.1:5000");
        let s = secret();
        assert_eq!(
            exchange(Some(&s), registry, Some(&s), registry),
            Ok(Outcome::Done(None))
        );
        let node = binding(Role::Node, "[::1]:6000");
        assert_eq!(
            exchange(Some(&s), node, Some(&s), node),
            Ok(Outcome::Done(None))
        );
        // An IPv4 address seen through an IPv6 socket is the same address.
        let mapped = binding(Role::Node, "[::ffff:127.0.0.1]:6000");
        let plain = binding(Role::Node, "127.0.0.1:6000");
        assert_eq!(
            exchange(Some(&s), plain, Some(&s), mapped),
            Ok(Outcome::Done(None))
        );
    }

    #[test]
    fn the_connector_refuses_an_acceptor_of_another_role_address_or_secret() {
        let s = secret();
        let registry = binding(Role::Registry, "127.0.0.1:5000");
        // A node that dialed what it thinks is its registry and reached a node.
        let node_there = binding(Role::Node, "127.0.0.1:5000");
        assert_eq!(
            exchange(Some(&s), registry, Some(&s), node_there),
            Err(Failure::WrongProof)
        );
        // Another address (an outsider relaying to the real registry elsewhere).
        let elsewhere = binding(Role::Registry, "127.0.0.1:5001");
        assert_eq!(
            exchange(Some(&s), registry, Some(&s), elsewhere),
            Err(Failure::WrongProof)
        );
        assert_eq!(
            exchange(Some(&s), registry, Some(&other()), registry),
            Err(Failure::WrongProof)
        );
    }

    #[test]
    fn a_missing_secret_on_either_side_is_named() {
        let s = secret();
        let b = binding(Role::Registry, "127.0.0.1:5000");
        assert_eq!(
            exchange(None, b, Some(&s), b),
            Ok(Outcome::Failed(Failure::PeerHasNoSecret))
        );
        assert_eq!(
            exchange(Some(&s), b, None, b),
            Ok(Outcome::Failed(Failure::WeHaveNoSecret))
        );
        assert_eq!(exchange(None, b, None, b), Ok(Outcome::Done(None)));
        assert_eq!(
            Failure::PeerHasNoSecret.tell(),
            Some(Refusal::SecretRequired)
        );
        assert_eq!(Failure::WeHaveNoSecret.tell(), Some(Refusal::NoSecret));
        // Without a secret, a first message that is not a hello is the connection's first
        // request; with one it is refused.
        let mut nonces = StdRng::seed_from_u64(2);
        let register = Control::Register {
            addr: "127.0.0.1:7".parse().unwrap(),
            group: None,
        };
        let mut plain = Handshake::accept(b);
        assert_eq!(
            plain.on_message(None, Some(&register), &mut nonces),
            Outcome::PassThrough
        );
        assert!(plain.is_done());
        assert_eq!(
            Handshake::accept(b).on_message(Some(&s), None, &mut nonces),
            Outcome::Failed(Failure::PeerHasNoSecret)
        );
    }

    /// A hello of another protocol version (an older build's names none: version 1) is
    /// refused with the acceptor's version, with a secret or without, before anything else
    /// (issue 16: the 24-byte data header).
    #[test]
    fn a_hello_of_another_protocol_version_is_refused_with_ours() {
        let s = secret();
        let b = binding(Role::Registry, "127.0.0.1:5000");
        let mut nonces = StdRng::seed_from_u64(5);
        for (secret, nonce) in [(None, None), (Some(&s), Some([1; NONCE_BYTES]))] {
            for theirs in [PROTOCOL_VERSION_UNNAMED, PROTOCOL_VERSION + 1] {
                let hello = Control::Hello {
                    nonce,
                    version: theirs,
                };
                let outcome = Handshake::accept(b).on_message(secret, Some(&hello), &mut nonces);
                assert_eq!(outcome, Outcome::Failed(Failure::Version { theirs }));
            }
        }
        let failure = Failure::Version { theirs: 1 };
        assert_eq!(
            failure.tell(),
            Some(Refusal::Version {
                ours: PROTOCOL_VERSION
            })
        );
        assert!(
            failure.describe("the node at 127.0.0.1:7").starts_with(
                "the node at 127.0.0.1:7 speaks native protocol version 1, this side 4:"
            )
        );
        // The connector, told so, says which versions differ.
        let told = Refusal::Version { ours: 7 }.describe("the registry at 127.0.0.1:5000");
        assert!(told.contains("version 7, this side 4"), "{told}");
        // A hello of this version goes on as before.
        let (_, hello) = Handshake::connect(None, b, &mut nonces);
        assert_eq!(
            Handshake::accept(b).on_message(None, Some(&hello), &mut nonces),
            Outcome::Done(None)
        );
    }

    /// The reflection of issue 12, item 3, in memory: an outsider O lures node N (its registry
    /// port mistyped as O's) and relays between N and a real party P, forwarding every
    /// handshake message unchanged. Whatever P is, N finds P's proof wrong and proves nothing,
    /// so O has nothing to present to P.
    #[test]
    fn an_outsider_relaying_between_a_lured_node_and_a_real_party_gets_nothing() {
        let s = secret();
        let lured = binding(Role::Registry, "127.0.0.66:5000");
        for real in [
            binding(Role::Node, "127.0.0.2:6000"),
            binding(Role::Registry, "127.0.0.66:4999"),
            // Even the real registry on the outsider's port of another host.
            binding(Role::Registry, "10.0.0.1:5000"),
        ] {
            let mut nonces = StdRng::seed_from_u64(3);
            let (mut n, hello) = Handshake::connect(Some(&s), lured, &mut nonces);
            let mut p = Handshake::accept(real);
            let Outcome::Reply(challenge) = p.on_message(Some(&s), Some(&hello), &mut nonces)
            else {
                panic!("P challenges the relayed hello");
            };
            let answer = n.on_message(Some(&s), Some(&challenge), &mut nonces);
            assert_eq!(answer, Outcome::Failed(Failure::WrongProof));
            // What N tells O, relayed to P, fails P's handshake too.
            let told = Control::Refused(Failure::WrongProof.tell().unwrap());
            assert!(matches!(
                p.on_message(Some(&s), Some(&told), &mut nonces),
                Outcome::Failed(Failure::Refused(Refusal::WrongSecret))
            ));
        }
    }

    /// The other reflection: P's challenge is answered by the acceptor proof it made itself,
    /// or by a proof made for another exchange: refused.
    #[test]
    fn a_proof_reflected_back_or_replayed_is_refused() {
        let s = secret();
        let b = binding(Role::Node, "127.0.0.2:6000");
        let mut nonces = StdRng::seed_from_u64(4);
        let mut p = Handshake::accept(b);
        let hello = Control::Hello {
            nonce: Some([7; NONCE_BYTES]),
            version: PROTOCOL_VERSION,
        };
        let Outcome::Reply(Control::Challenge { proof, nonce }) =
            p.on_message(Some(&s), Some(&hello), &mut nonces)
        else {
            panic!("a challenge");
        };
        let mut reflected = p.clone();
        assert_eq!(
            reflected.on_message(Some(&s), Some(&Control::Response { proof }), &mut nonces),
            Outcome::Failed(Failure::WrongProof)
        );
        // A connector proof of an earlier exchange with the same hello: P's nonce differs.
        let mut earlier = Handshake::accept(b);
        let _ = earlier.on_message(Some(&s), Some(&hello), &mut nonces);
        let Handshake::Challenged { transcript } = earlier else {
            panic!("challenged");
        };
        assert_ne!(transcript.acceptor_nonce, nonce);
        let replayed = s.proof(Direction::Connector, &transcript);
        assert_eq!(
            p.on_message(
                Some(&s),
                Some(&Control::Response { proof: replayed }),
                &mut nonces
            ),
            Outcome::Failed(Failure::WrongProof)
        );
    }

    fn arbitrary_transcript() -> impl Strategy<Value = Transcript> {
        (
            any::<bool>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<[u8; NONCE_BYTES]>(),
            any::<[u8; NONCE_BYTES]>(),
        )
            .prop_map(
                |(registry, ip, port, connector_nonce, acceptor_nonce)| Transcript {
                    binding: Binding {
                        acceptor: if registry { Role::Registry } else { Role::Node },
                        acceptor_addr: SocketAddr::new(IpAddr::from(ip).to_canonical(), port),
                    },
                    connector_nonce,
                    acceptor_nonce,
                },
            )
    }

    /// One field of `t` changed: the role, a byte of the address, the port or a nonce byte.
    fn mutated(t: Transcript, field: usize, at: usize) -> Transcript {
        let mut m = t;
        match field % 5 {
            0 => {
                m.binding.acceptor = match t.binding.acceptor {
                    Role::Registry => Role::Node,
                    Role::Node | Role::Trunk => Role::Registry,
                }
            }
            1 => {
                let ip = match t.binding.acceptor_addr.ip() {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                };
                let mut octets = ip.octets();
                octets[at % 16] ^= 1 << (at % 8);
                m.binding
                    .acceptor_addr
                    .set_ip(IpAddr::from(octets).to_canonical());
            }
            2 => m
                .binding
                .acceptor_addr
                .set_port(t.binding.acceptor_addr.port() ^ (1 << (at % 16))),
            3 => m.connector_nonce[at % NONCE_BYTES] ^= 1 << (at % 8),
            _ => m.acceptor_nonce[at % NONCE_BYTES] ^= 1 << (at % 8),
        }
        m
    }

    proptest! {
        /// A proof verifies for its own direction and transcript only: a change of role,
        /// address, port or either nonce, or the other direction, or another secret, and it
        /// is refused.
        #[test]
        fn a_proof_is_bound_to_its_whole_transcript(
            t in arbitrary_transcript(),
            field in 0usize..5,
            at in 0usize..256,
            acceptor in any::<bool>(),
        ) {
            let s = secret();
            let (direction, reverse) = if acceptor {
                (Direction::Acceptor, Direction::Connector)
            } else {
                (Direction::Connector, Direction::Acceptor)
            };
            let proof = s.proof(direction, &t);
            prop_assert!(s.verify(direction, &t, &proof));
            prop_assert!(!s.verify(reverse, &t, &proof));
            prop_assert!(!other().verify(direction, &t, &proof));
            let m = mutated(t, field, at);
            prop_assert_ne!(m, t);
            prop_assert!(!s.verify(direction, &m, &proof));
        }
    }
}
