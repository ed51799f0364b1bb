//! Membership changes in the native encoding (a join, a leave, a loss, and the receiver's new
//! table): encoded and decoded.

use super::control::{put_addr, put_u16, put_u32, put_u64};
use super::*;

/// A membership change: version, what changed and about which node (with a joining node's
/// address and, in Chord mode, its identifier: a flag, then 20 bytes big-endian; a leaver's
/// expected count), then the receiver's new table if it has one (a flag; a count, then ID
/// and address per entry; the same for its backup entries).
pub(super) fn encode_membership(message: &MembershipChange, out: &mut Vec<u8>) {
    out.push(kind::MEMBERSHIP);
    put_u32(out, message.version);
    match &message.change {
        Change::Join {
            id,
            addr,
            identifier,
        } => {
            out.push(change_code::JOIN);
            put_u32(out, *id);
            put_addr(out, addr);
            match identifier {
                None => out.push(0),
                Some(identifier) => {
                    out.push(1);
                    out.extend_from_slice(&identifier.to_be_bytes());
                }
            }
        }
        Change::Commit { id } => {
            out.push(change_code::COMMIT);
            put_u32(out, *id);
        }
        Change::Open { id } => {
            out.push(change_code::OPEN);
            put_u32(out, *id);
        }
        Change::Leave { id } => {
            out.push(change_code::LEAVE);
            put_u32(out, *id);
        }
        Change::Drain { id, expected } => {
            out.push(change_code::DRAIN);
            put_u32(out, *id);
            put_u64(out, *expected);
        }
        Change::Gone { id } => {
            out.push(change_code::GONE);
            put_u32(out, *id);
        }
        Change::Close { id } => {
            out.push(change_code::CLOSE);
            put_u32(out, *id);
        }
        Change::Lost { ids } | Change::Repair { ids } => {
            out.push(match &message.change {
                Change::Lost { .. } => change_code::LOST,
                _ => change_code::REPAIR,
            });
            let count = ids.len().min(REPAIR_NODES_MAX);
            put_u16(out, count as u16);
            for id in &ids[..count] {
                put_u32(out, *id);
            }
        }
    }
    match &message.table {
        None => out.push(0),
        Some(table) => {
            out.push(1);
            for list in [&table.entries, &table.backups] {
                out.push(list.len().min(usize::from(u8::MAX)) as u8);
                for entry in list.iter().take(usize::from(u8::MAX)) {
                    put_u32(out, entry.id);
                    put_addr(out, &entry.addr);
                }
            }
        }
    }
}

pub(super) fn decode_membership(reader: &mut Reader<'_>) -> Result<MembershipChange, WireError> {
    let version = reader.u32_le()?;
    let code = reader.u8()?;
    if matches!(code, change_code::LOST | change_code::REPAIR) {
        let count = usize::from(reader.u16_le()?);
        if !(1..=REPAIR_NODES_MAX).contains(&count) {
            return Err(WireError::BadField {
                what: "membership change nodes",
                detail: format!("{count} nodes (1 to {REPAIR_NODES_MAX})"),
            });
        }
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            ids.push(reader.u32_le()?);
        }
        let change = if code == change_code::LOST {
            Change::Lost { ids }
        } else {
            Change::Repair { ids }
        };
        return Ok(MembershipChange {
            version,
            change,
            table: decode_new_table(reader)?,
        });
    }
    let id = reader.u32_le()?;
    let change = match code {
        change_code::JOIN => {
            let addr = reader.addr_le()?;
            let identifier = if reader.bool()? {
                Some(Id::from_be_bytes(reader.array()?))
            } else {
                None
            };
            Change::Join {
                id,
                addr,
                identifier,
            }
        }
        change_code::COMMIT => Change::Commit { id },
        change_code::OPEN => Change::Open { id },
        change_code::LEAVE => Change::Leave { id },
        change_code::DRAIN => Change::Drain {
            id,
            expected: reader.u64_le()?,
        },
        change_code::GONE => Change::Gone { id },
        change_code::CLOSE => Change::Close { id },
        other => {
            return Err(WireError::BadField {
                what: "membership change",
                detail: format!("unknown change {other}"),
            });
        }
    };
    Ok(MembershipChange {
        version,
        change,
        table: decode_new_table(reader)?,
    })
}

/// A membership change's new table, if it has one.
fn decode_new_table(reader: &mut Reader<'_>) -> Result<Option<NewTable>, WireError> {
    Ok(if reader.bool()? {
        let mut lists = [Vec::new(), Vec::new()];
        for (list, (what, most)) in lists.iter_mut().zip([
            ("membership change table", NR_MAX),
            ("membership change backups", BACKUP_ENTRIES),
        ]) {
            let count = usize::from(reader.u8()?);
            if count > most {
                return Err(WireError::BadField {
                    what,
                    detail: format!("{count} entries (at most {most})"),
                });
            }
            list.reserve(count);
            for _ in 0..count {
                let id = reader.u32_le()?;
                list.push(ManifestEntry {
                    id,
                    addr: reader.addr_le()?,
                });
            }
        }
        let [entries, backups] = lists;
        Some(NewTable { entries, backups })
    } else {
        None
    })
}
