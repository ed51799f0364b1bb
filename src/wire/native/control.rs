//! Control messages in the native encoding (registration, manifests, tasks, summaries,
//! lookups through the registry, membership changes): encoded and decoded.

use super::membership::{decode_membership, encode_membership};
use super::*;

/// One frame: the length prefix, then what `body` writes.
pub(super) fn put_frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_BYTES]);
    body(out);
    let declared = (out.len() - start - PREFIX_BYTES) as u32;
    out[start..start + PREFIX_BYTES].copy_from_slice(&declared.to_le_bytes());
}

/// A manifest too large for one frame: the first frame (type 6) with the node's own part and
/// as many members as fit, then continuations (type 23) of as many members as a frame holds,
/// until every member is sent. Nothing is copied but into `out`.
pub(super) fn encode_manifest_in_frames(manifest: &Manifest, out: &mut Vec<u8>) {
    let members = manifest.all_ids.len();
    let per_member = member_bytes(manifest.chord.as_deref());
    let head = manifest_bytes(manifest) - members * per_member;
    let mut sent = members.min(FRAME_BYTES_MAX.saturating_sub(head) / per_member);
    put_frame(out, |out| put_manifest(out, manifest, members, 0..sent));
    let per_frame = (FRAME_BYTES_MAX - MANIFEST_MORE_HEAD_BYTES) / per_member;
    while sent < members {
        let next = members.min(sent + per_frame);
        put_frame(out, |out| {
            out.push(kind::MANIFEST_MORE);
            put_members(
                out,
                &manifest.all_ids,
                manifest.chord.as_deref(),
                sent..next,
            );
        });
        sent = next;
    }
}

/// A manifest's first (or only) frame: the node's own part, the overlay's `members` in all,
/// and the members `carried` of them.
pub(super) fn put_manifest(
    out: &mut Vec<u8>,
    manifest: &Manifest,
    members: usize,
    carried: std::ops::Range<usize>,
) {
    out.push(kind::MANIFEST);
    out.push(manifest.entries.len() as u8);
    out.push(manifest.trace_slots);
    out.push(manifest.trace_slot_bytes);
    put_u64(out, manifest.window_bytes);
    for entry in &manifest.entries {
        put_u32(out, entry.id);
        put_addr(out, &entry.addr);
    }
    put_u32(out, members as u32);
    put_members(out, &manifest.all_ids, manifest.chord.as_deref(), carried);
    put_u32(out, manifest.epoch);
    // Backup entries: an optional last section (a manifest without them ends above).
    if !manifest.backups.is_empty() {
        out.push(manifest.backups.len() as u8);
        for entry in &manifest.backups {
            put_u32(out, entry.id);
            put_addr(out, &entry.addr);
        }
    }
}

/// The members `range` of a manifest: their count, their IDs, the identifier width m (0 for
/// position fingers) and, in Chord mode, their identifiers.
pub(super) fn put_members(
    out: &mut Vec<u8>,
    ids: &[NodeId],
    chord: Option<&ChordIds>,
    range: std::ops::Range<usize>,
) {
    put_u32(out, range.len() as u32);
    for id in &ids[range.clone()] {
        put_u32(out, *id);
    }
    match chord {
        None => out.push(0),
        Some(chord) => {
            out.push(chord.bits as u8);
            let width = identifier_bytes(chord.bits);
            for id in &chord.ids[range] {
                out.extend_from_slice(&id.to_be_bytes()[ID_BYTES - width..]);
            }
        }
    }
}

pub(super) fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(U16::new(value).as_bytes());
}
pub(super) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(U32::new(value).as_bytes());
}
pub(super) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(U64::new(value).as_bytes());
}
pub(super) fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(I64::new(value).as_bytes());
}
pub(super) fn put_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    put_ip(out, addr.ip());
    put_u16(out, addr.port());
}
pub(super) fn put_status(out: &mut Vec<u8>, status: Status, info: &str) {
    put_i64(
        out,
        match status {
            Status::Ok(id) => i64::from(id),
            Status::Failed => -1,
        },
    );
    put_string(out, info);
}

pub(super) fn encode_body(message: &Control, out: &mut Vec<u8>) {
    match message {
        Control::Register { addr, group } => {
            out.push(kind::REGISTER);
            put_addr(out, addr);
            if let Some(group) = group {
                put_u64(out, group.token);
                put_u32(out, group.size);
            }
        }
        Control::RegisterStatus { status, info } => {
            out.push(kind::REGISTER_STATUS);
            put_status(out, *status, info);
        }
        Control::Deregister { addr, id } => {
            out.push(kind::DEREGISTER);
            put_addr(out, addr);
            put_u32(out, *id);
        }
        Control::DeregisterStatus { status, info } => {
            out.push(kind::DEREGISTER_STATUS);
            put_status(out, *status, info);
        }
        Control::Manifest(manifest) => put_manifest(
            out,
            manifest,
            manifest.all_ids.len(),
            0..manifest.all_ids.len(),
        ),
        Control::ManifestStart { manifest, members } => {
            put_manifest(out, manifest, *members, 0..manifest.all_ids.len())
        }
        Control::ManifestMore(more) => {
            out.push(kind::MANIFEST_MORE);
            put_members(out, &more.ids, more.chord.as_ref(), 0..more.ids.len());
        }
        Control::SetupStatus { status, info } => {
            out.push(kind::SETUP_STATUS);
            put_status(out, *status, info);
        }
        Control::TaskInitiate {
            run,
            packets,
            extra_payload_bytes,
            rate_per_s,
            targets,
        } => {
            out.push(kind::TASK_INITIATE);
            put_u32(out, *run);
            put_u64(out, *packets);
            put_u32(out, *extra_payload_bytes);
            put_u32(out, *rate_per_s);
            out.push(match targets {
                Targets::Nodes => 0,
                Targets::Keys { bits } => *bits as u8,
            });
        }
        Control::TaskFinished { addr, id } => {
            out.push(kind::TASK_FINISHED);
            put_addr(out, addr);
            put_u32(out, *id);
        }
        Control::SummaryRequest { reset, links } => {
            out.push(kind::SUMMARY_REQUEST);
            out.push(u8::from(*reset) | u8::from(*links) << 1);
        }
        Control::Hello { nonce, version } => {
            out.push(kind::HELLO);
            match nonce {
                Some(nonce) => {
                    out.push(1);
                    out.extend_from_slice(nonce);
                }
                None => out.push(0),
            }
            out.extend_from_slice(&version.to_le_bytes());
        }
        Control::Challenge { nonce, proof } => {
            out.push(kind::CHALLENGE);
            out.extend_from_slice(nonce);
            out.extend_from_slice(proof);
        }
        Control::Response { proof } => {
            out.push(kind::RESPONSE);
            out.extend_from_slice(proof);
        }
        Control::Lookup { number, key } => {
            out.push(kind::LOOKUP_REQUEST);
            put_u32(out, *number);
            put_string(out, key);
        }
        Control::LookupResult { number, result } => {
            out.push(kind::LOOKUP_RESULT);
            put_u32(out, *number);
            match result {
                Ok(answer) => {
                    out.push(1);
                    put_string(out, &answer.key);
                    put_u32(out, answer.owner);
                    out.push(answer.path.len() as u8);
                    for node in &answer.path {
                        put_u32(out, *node);
                    }
                    put_u64(out, answer.round_trip_ns);
                }
                Err(why) => {
                    out.push(0);
                    put_string(out, why);
                }
            }
        }
        Control::Refused(refusal) => {
            out.push(kind::REFUSED);
            match refusal {
                Refusal::Busy => out.push(refusal_code::BUSY),
                Refusal::SecretRequired => out.push(refusal_code::SECRET_REQUIRED),
                Refusal::NoSecret => out.push(refusal_code::NO_SECRET),
                Refusal::WrongSecret => out.push(refusal_code::WRONG_SECRET),
                Refusal::ClassicWire => out.push(refusal_code::CLASSIC_WIRE),
                Refusal::Version { ours } => {
                    out.push(refusal_code::VERSION);
                    out.extend_from_slice(&ours.to_le_bytes());
                }
            }
        }
        Control::Membership(change) => encode_membership(change, out),
        Control::MembershipAck { version, count } => {
            out.push(kind::MEMBERSHIP_ACK);
            put_u32(out, *version);
            put_u64(out, *count);
        }
        Control::Summary {
            id,
            reset,
            counters,
            stats,
            links,
        } => {
            out.push(kind::SUMMARY);
            put_u32(out, *id);
            out.push(u8::from(*reset));
            put_u64(out, counters.sent);
            put_u64(out, counters.received);
            put_u64(out, counters.relayed);
            put_i64(out, counters.sum_sent);
            put_i64(out, counters.sum_received);
            put_u64(out, counters.corrupted);
            put_u64(out, counters.dropped);
            put_u64(out, counters.stale);
            put_u64(out, counters.links_cut);
            put_u64(out, counters.relay_bound_drops);
            match stats {
                None => out.push(0),
                Some(stats) => {
                    out.push(1);
                    stats.encode(out);
                }
            }
            put_u32(out, u32::try_from(links.len()).unwrap_or(u32::MAX));
            for link in links {
                put_u32(out, link.peer);
                put_u64(out, link.sent);
                put_u64(out, link.received);
            }
        }
    }
}

impl Reader<'_> {
    pub(super) fn u16_le(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(super) fn u32_le(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(super) fn u64_le(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(super) fn i64_le(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub(super) fn addr_le(&mut self) -> Result<SocketAddr, WireError> {
        let ip = self.ip()?;
        Ok(SocketAddr::new(ip, self.u16_le()?))
    }
    pub(super) fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(WireError::BadField {
                what: "flag",
                detail: format!("{other} (must be 0 or 1)"),
            }),
        }
    }
    pub(super) fn status_le(&mut self) -> Result<(Status, String), WireError> {
        let raw = self.i64_le()?;
        let status = match raw {
            -1 => Status::Failed,
            id if (0..=i64::from(u32::MAX)).contains(&id) => Status::Ok(id as u32),
            other => {
                return Err(WireError::BadField {
                    what: "status",
                    detail: format!("{other} (must be an ID or -1)"),
                });
            }
        };
        Ok((status, self.string()?))
    }
}

/// Bytes of `manifest` encoded, length prefix included.
pub(super) fn manifest_bytes(manifest: &Manifest) -> usize {
    let address = |addr: &SocketAddr| {
        if addr.is_ipv4() {
            1 + 4 + 2
        } else {
            1 + 16 + 2
        }
    };
    let entries: usize = manifest
        .entries
        .iter()
        .chain(&manifest.backups)
        .map(|e| 4 + address(&e.addr))
        .sum();
    let backups = usize::from(!manifest.backups.is_empty());
    PREFIX_BYTES
        + 1
        + 1
        + 1
        + 1
        + 8
        + entries
        + 4
        + 4
        + 1
        + manifest.all_ids.len() * member_bytes(manifest.chord.as_deref())
        + 4
        + backups
}

/// Bytes of one member in a manifest: its ID and, in Chord mode, its identifier.
pub(super) fn member_bytes(chord: Option<&ChordIds>) -> usize {
    4 + chord.map_or(0, |chord| identifier_bytes(chord.bits))
}

/// Bytes of one Chord identifier of `bits` bits in a manifest: its big-endian form without
/// the leading bytes that are always zero.
pub(super) fn identifier_bytes(bits: u32) -> usize {
    bits.div_ceil(8) as usize
}

/// A manifest's `count` Chord identifiers of `bits` bits, each checked to lie in the space.
pub(super) fn chord_ids(
    reader: &mut Reader<'_>,
    bits: u32,
    count: usize,
) -> Result<ChordIds, WireError> {
    let space = IdSpace::new(bits).ok_or_else(|| WireError::BadField {
        what: "manifest identifier bits",
        detail: format!("{bits} (must be 1..={CHORD_ID_BITS_MAX})"),
    })?;
    let width = identifier_bytes(bits);
    if count > reader.remaining() / width {
        return Err(WireError::Truncated {
            what: "manifest identifiers",
        });
    }
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let mut bytes = [0; ID_BYTES];
        bytes[ID_BYTES - width..].copy_from_slice(reader.take(width)?);
        let id = Id::from_be_bytes(bytes);
        if !space.contains(id) {
            return Err(WireError::BadField {
                what: "manifest identifier",
                detail: format!("{id:x} is outside the {bits}-bit space"),
            });
        }
        ids.push(id);
    }
    Ok(ChordIds { bits, ids })
}

/// A manifest's members (`put_members`), each count checked against the bytes left before
/// anything is allocated.
pub(super) fn members_of(reader: &mut Reader<'_>) -> Result<Members, WireError> {
    let count = reader.u32_le()? as usize;
    if count > reader.remaining() / 4 {
        return Err(WireError::Truncated {
            what: "manifest ID list",
        });
    }
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(reader.u32_le()?);
    }
    let chord = match u32::from(reader.u8()?) {
        0 => None,
        bits => Some(chord_ids(reader, bits, count)?),
    };
    Ok(Members { ids, chord })
}

/// A registration's group: u64 token, u32 size (1..=`NODES_MAX`).
fn group_tag(reader: &mut Reader<'_>) -> Result<GroupTag, WireError> {
    let token = reader.u64_le()?;
    let size = reader.u32_le()?;
    if size == 0 || size as usize > NODES_MAX {
        return Err(WireError::BadField {
            what: "registration group size",
            detail: format!("{size} nodes (must be 1 to {NODES_MAX})"),
        });
    }
    Ok(GroupTag { token, size })
}

pub(super) fn decode_body(body: &[u8]) -> Result<Control, WireError> {
    let mut reader = Reader::new(body, "control message");
    let code = reader.u8()?;
    let message = match code {
        kind::REGISTER => Control::Register {
            addr: reader.addr_le()?,
            group: if reader.remaining() > 0 {
                Some(group_tag(&mut reader)?)
            } else {
                None
            },
        },
        kind::REGISTER_STATUS => {
            let (status, info) = reader.status_le()?;
            Control::RegisterStatus { status, info }
        }
        kind::DEREGISTER => Control::Deregister {
            addr: reader.addr_le()?,
            id: reader.u32_le()?,
        },
        kind::DEREGISTER_STATUS => {
            let (status, info) = reader.status_le()?;
            Control::DeregisterStatus { status, info }
        }
        kind::MANIFEST => {
            let count = usize::from(reader.u8()?);
            let trace_slots = reader.u8()?;
            if usize::from(trace_slots) > TRACE_SLOTS_MAX {
                return Err(WireError::BadField {
                    what: "manifest trace slots",
                    detail: format!("{trace_slots} (at most {TRACE_SLOTS_MAX})"),
                });
            }
            let trace_slot_bytes = reader.u8()?;
            if !matches!(trace_slot_bytes, 1 | 2 | 4) {
                return Err(WireError::BadField {
                    what: "manifest trace slot bytes",
                    detail: format!("{trace_slot_bytes} (1, 2 or 4)"),
                });
            }
            let window_bytes = reader.u64_le()?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let id = reader.u32_le()?;
                entries.push(ManifestEntry {
                    id,
                    addr: reader.addr_le()?,
                });
            }
            let members = reader.u32_le()? as usize;
            if members > MANIFEST_MEMBERS_MAX {
                return Err(WireError::BadField {
                    what: "manifest members",
                    detail: format!("{members} (at most {MANIFEST_MEMBERS_MAX})"),
                });
            }
            let Members {
                ids: all_ids,
                chord,
            } = members_of(&mut reader)?;
            if all_ids.len() > members {
                return Err(WireError::BadField {
                    what: "manifest members",
                    detail: format!("{} carried of {members}", all_ids.len()),
                });
            }
            let epoch = reader.u32_le()?;
            let mut backups = Vec::new();
            if reader.remaining() > 0 {
                let count = usize::from(reader.u8()?);
                for _ in 0..count {
                    let id = reader.u32_le()?;
                    backups.push(ManifestEntry {
                        id,
                        addr: reader.addr_le()?,
                    });
                }
            }
            let carried = all_ids.len();
            let manifest = Manifest {
                entries,
                all_ids: all_ids.into(),
                chord: chord.map(std::sync::Arc::new),
                trace_slots,
                trace_slot_bytes,
                window_bytes,
                backups,
                epoch,
            };
            if carried == members {
                Control::Manifest(manifest)
            } else {
                Control::ManifestStart { manifest, members }
            }
        }
        kind::MANIFEST_MORE => Control::ManifestMore(members_of(&mut reader)?),
        kind::SETUP_STATUS => {
            let (status, info) = reader.status_le()?;
            Control::SetupStatus { status, info }
        }
        kind::TASK_INITIATE => Control::TaskInitiate {
            run: reader.u32_le()?,
            packets: reader.u64_le()?,
            extra_payload_bytes: reader.u32_le()?,
            rate_per_s: reader.u32_le()?,
            targets: match u32::from(reader.u8()?) {
                0 => Targets::Nodes,
                bits @ 1..=CHORD_ID_BITS_MAX => Targets::Keys { bits },
                other => {
                    return Err(WireError::BadField {
                        what: "task key bits",
                        detail: format!("{other} (0 for nodes, or 1..={CHORD_ID_BITS_MAX})"),
                    });
                }
            },
        },
        kind::TASK_FINISHED => Control::TaskFinished {
            addr: reader.addr_le()?,
            id: reader.u32_le()?,
        },
        kind::SUMMARY_REQUEST => match reader.u8()? {
            flags @ 0..=3 => Control::SummaryRequest {
                reset: flags & 1 != 0,
                links: flags & 2 != 0,
            },
            other => {
                return Err(WireError::BadField {
                    what: "summary request flags",
                    detail: format!("{other} (bit 0: reset, bit 1: per-link counts)"),
                });
            }
        },
        kind::SUMMARY => Control::Summary {
            id: reader.u32_le()?,
            reset: reader.bool()?,
            counters: Counters {
                sent: reader.u64_le()?,
                received: reader.u64_le()?,
                relayed: reader.u64_le()?,
                sum_sent: reader.i64_le()?,
                sum_received: reader.i64_le()?,
                corrupted: reader.u64_le()?,
                dropped: reader.u64_le()?,
                stale: reader.u64_le()?,
                links_cut: reader.u64_le()?,
                relay_bound_drops: reader.u64_le()?,
            },
            stats: if reader.bool()? {
                let (stats, used) =
                    RunStats::decode(reader.rest()).map_err(|detail| WireError::BadField {
                        what: "traffic summary statistics",
                        detail,
                    })?;
                reader.take(used)?;
                Some(stats)
            } else {
                None
            },
            links: {
                let count = reader.u32_le()? as usize;
                // Bounded before allocating: a node has at most this many links.
                if count > SUMMARY_LINKS_MAX || reader.rest().len() < count * LINK_COUNT_BYTES {
                    return Err(WireError::BadField {
                        what: "traffic summary links",
                        detail: format!("{count} links in {} bytes", reader.rest().len()),
                    });
                }
                let mut links = Vec::with_capacity(count);
                for _ in 0..count {
                    links.push(LinkCount {
                        peer: reader.u32_le()?,
                        sent: reader.u64_le()?,
                        received: reader.u64_le()?,
                    });
                }
                links
            },
        },
        kind::HELLO => Control::Hello {
            nonce: match reader.u8()? {
                0 => None,
                1 => Some(reader.array()?),
                other => {
                    return Err(WireError::BadField {
                        what: "hello",
                        detail: format!("secret flag {other} (must be 0 or 1)"),
                    });
                }
            },
            // The builds before protocol versions sent none.
            version: if reader.remaining() == 0 {
                PROTOCOL_VERSION_UNNAMED
            } else {
                reader.u16_le()?
            },
        },
        kind::CHALLENGE => Control::Challenge {
            nonce: reader.array()?,
            proof: reader.array()?,
        },
        kind::RESPONSE => Control::Response {
            proof: reader.array()?,
        },
        kind::LOOKUP_REQUEST => Control::Lookup {
            number: reader.u32_le()?,
            key: reader.string()?,
        },
        kind::LOOKUP_RESULT => Control::LookupResult {
            number: reader.u32_le()?,
            result: if reader.bool()? {
                let key = reader.string()?;
                let owner = reader.u32_le()?;
                let count = usize::from(reader.u8()?);
                if count > LOOKUP_PATH_MAX {
                    return Err(WireError::BadField {
                        what: "lookup path",
                        detail: format!("{count} nodes (at most {LOOKUP_PATH_MAX})"),
                    });
                }
                let mut path = Vec::with_capacity(count);
                for _ in 0..count {
                    path.push(reader.u32_le()?);
                }
                Ok(LookupAnswer {
                    key,
                    owner,
                    path,
                    round_trip_ns: reader.u64_le()?,
                })
            } else {
                Err(reader.string()?)
            },
        },
        kind::REFUSED => Control::Refused(match reader.u8()? {
            refusal_code::BUSY => Refusal::Busy,
            refusal_code::SECRET_REQUIRED => Refusal::SecretRequired,
            refusal_code::NO_SECRET => Refusal::NoSecret,
            refusal_code::WRONG_SECRET => Refusal::WrongSecret,
            refusal_code::CLASSIC_WIRE => Refusal::ClassicWire,
            refusal_code::VERSION => Refusal::Version {
                ours: reader.u16_le()?,
            },
            other => {
                return Err(WireError::BadField {
                    what: "refusal",
                    detail: format!("unknown reason {other}"),
                });
            }
        }),
        kind::MEMBERSHIP => Control::Membership(decode_membership(&mut reader)?),
        kind::MEMBERSHIP_ACK => Control::MembershipAck {
            version: reader.u32_le()?,
            count: reader.u64_le()?,
        },
        other => return Err(WireError::UnknownType(other)),
    };
    reader.finish()?;
    Ok(message)
}
