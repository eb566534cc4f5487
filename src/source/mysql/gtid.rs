//! MariaDB GTIDs: the events mysql_common leaves raw, and the replication state string.
//!
//! A MariaDB GTID is `domain-server-seq`; the state a replica resumes from
//! (`@slave_connect_state`) is the last GTID per domain, comma-separated. Pure code: bytes and
//! strings in, values out, no panics on any input.

use std::collections::BTreeMap;
use std::fmt;

/// MariaDB binlog event types mysql_common does not parse.
pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
pub const MARIADB_GTID: u8 = 162;
pub const MARIADB_GTID_LIST: u8 = 163;

/// `FL_STANDALONE`: the group is a single statement with no XID/COMMIT (DDL).
pub const FL_STANDALONE: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A decoded MariaDB GTID event (type 162): starts an event group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    pub gtid: Gtid,
    pub flags: u8,
}

impl GtidEvent {
    pub fn standalone(&self) -> bool {
        self.flags & FL_STANDALONE != 0
    }
}

/// Decode a GTID event body (after the common header, checksum removed). The server id comes
/// from the event header.
pub fn decode_gtid_event(data: &[u8], server: u32) -> Result<GtidEvent, String> {
    if data.len() < 13 {
        return Err(format!(
            "GTID event: {} bytes, needs at least 13",
            data.len()
        ));
    }
    let seq = u64::from_le_bytes(data[0..8].try_into().expect("8 bytes"));
    let domain = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
    Ok(GtidEvent {
        gtid: Gtid {
            domain,
            server,
            seq,
        },
        flags: data[12],
    })
}

/// Decode a GTID list event body (type 163): the binlog's state at its start.
pub fn decode_gtid_list(data: &[u8]) -> Result<Vec<Gtid>, String> {
    if data.len() < 4 {
        return Err("GTID list event: shorter than its count".into());
    }
    let count =
        (u32::from_le_bytes(data[0..4].try_into().expect("4 bytes")) & 0x0FFF_FFFF) as usize;
    let body = &data[4..];
    if body.len() < count.saturating_mul(16) {
        return Err(format!(
            "GTID list event: {count} entries do not fit in {} bytes",
            body.len()
        ));
    }
    Ok(body
        .chunks_exact(16)
        .take(count)
        .map(|c| Gtid {
            domain: u32::from_le_bytes(c[0..4].try_into().expect("4 bytes")),
            server: u32::from_le_bytes(c[4..8].try_into().expect("4 bytes")),
            seq: u64::from_le_bytes(c[8..16].try_into().expect("8 bytes")),
        })
        .collect())
}

/// Last applied GTID per replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidState(BTreeMap<u32, Gtid>);

impl GtidState {
    pub fn parse(text: &str) -> Result<GtidState, String> {
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let (Some(d), Some(s), Some(n), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(format!(
                    "'{part}' is not a MariaDB GTID (domain-server-seq)"
                ));
            };
            let bad = || format!("'{part}' is not a MariaDB GTID (domain-server-seq)");
            let gtid = Gtid {
                domain: d.parse().map_err(|_| bad())?,
                server: s.parse().map_err(|_| bad())?,
                seq: n.parse().map_err(|_| bad())?,
            };
            map.insert(gtid.domain, gtid);
        }
        Ok(GtidState(map))
    }

    pub fn apply(&mut self, gtid: Gtid) {
        self.0.insert(gtid.domain, gtid);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.values().map(Gtid::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_event_decodes() {
        let mut data = 42u64.to_le_bytes().to_vec();
        data.extend(7u32.to_le_bytes());
        data.push(FL_STANDALONE);
        data.extend([0u8; 6]);
        let ev = decode_gtid_event(&data, 3).unwrap();
        assert_eq!(ev.gtid.to_string(), "7-3-42");
        assert!(ev.standalone());
        assert!(decode_gtid_event(&data[..12], 3).is_err());
    }

    #[test]
    fn gtid_list_decodes_and_rejects_short_input() {
        let mut data = 2u32.to_le_bytes().to_vec();
        for (d, s, n) in [(0u32, 1u32, 10u64), (1, 2, 5)] {
            data.extend(d.to_le_bytes());
            data.extend(s.to_le_bytes());
            data.extend(n.to_le_bytes());
        }
        let list = decode_gtid_list(&data).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].to_string(), "1-2-5");
        assert!(decode_gtid_list(&data[..20]).is_err());
        assert!(decode_gtid_list(&[0xFF, 0xFF, 0xFF, 0x0F]).is_err());
    }

    #[test]
    fn state_keeps_last_gtid_per_domain() {
        let mut s = GtidState::parse("0-1-10, 2-1-3").unwrap();
        s.apply(Gtid {
            domain: 0,
            server: 2,
            seq: 11,
        });
        s.apply(Gtid {
            domain: 1,
            server: 1,
            seq: 1,
        });
        assert_eq!(s.to_string(), "0-2-11,1-1-1,2-1-3");
        assert_eq!(GtidState::parse("").unwrap(), GtidState::default());
        assert!(GtidState::parse("0-1").is_err());
        assert!(GtidState::parse("a-b-c").is_err());
        assert!(GtidState::parse("0-1-2-3").is_err());
    }
}
