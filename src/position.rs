//! Stream positions: one tagged type for every source kind.
//!
//! A position is "everything up to here has been applied". Positions of one endpoint are totally
//! ordered; positions of different kinds never compare (the store keys them per endpoint).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Position {
    /// PostgreSQL WAL location (end of the last applied commit).
    Lsn(u64),
    /// MariaDB GTID state (`domain-server-seq` list) to resume from, with the binlog file and
    /// end offset of the same point, which order two positions of one server.
    Gtid {
        gtid: String,
        file: String,
        offset: u64,
    },
    /// Binlog file and offset when GTIDs are off.
    File { file: String, offset: u64 },
}

impl Position {
    /// Order within one endpoint; `None` when the two positions are of different kinds.
    pub fn compare(&self, other: &Position) -> Option<Ordering> {
        match (self, other) {
            (Position::Lsn(a), Position::Lsn(b)) => Some(a.cmp(b)),
            (a, b) => match (a.binlog(), b.binlog()) {
                (Some((fa, oa)), Some((fb, ob))) if a.is_gtid() == b.is_gtid() => {
                    Some(binlog_file_order(fa, fb).then(oa.cmp(&ob)))
                }
                _ => None,
            },
        }
    }

    /// Whether a stream read up to `self` has read everything at or before `mark` (a MySQL
    /// mark may be a plain file position while the stream counts in GTID positions).
    pub fn reached(&self, mark: &Position) -> bool {
        match (self, mark) {
            (Position::Lsn(a), Position::Lsn(b)) => a >= b,
            (a, b) => match (a.binlog(), b.binlog()) {
                (Some((fa, oa)), Some((fb, ob))) => {
                    binlog_file_order(fa, fb).then(oa.cmp(&ob)) != Ordering::Less
                }
                _ => false,
            },
        }
    }

    /// Binlog file and offset of a MySQL/MariaDB position.
    pub fn binlog(&self) -> Option<(&str, u64)> {
        match self {
            Position::Gtid { file, offset, .. } | Position::File { file, offset } => {
                Some((file.as_str(), *offset))
            }
            Position::Lsn(_) => None,
        }
    }

    fn is_gtid(&self) -> bool {
        matches!(self, Position::Gtid { .. })
    }

    /// The command-line form `parse` reads: `16/B374D848`, `0-1-42,1-2-7@binlog.000003:1234`
    /// (MariaDB GTID state at binlog file:offset) or `binlog.000003:1234`.
    pub fn to_arg(&self) -> String {
        match self {
            Position::Lsn(l) => format_lsn(*l),
            Position::Gtid { gtid, file, offset } => format!("{gtid}@{file}:{offset}"),
            Position::File { file, offset } => format!("{file}:{offset}"),
        }
    }

    pub fn parse(text: &str) -> Option<Position> {
        if let Some(lsn) = parse_lsn(text) {
            return Some(Position::Lsn(lsn));
        }
        let (gtid, rest) = match text.split_once('@') {
            Some((g, r)) => (Some(g), r),
            None => (None, text),
        };
        let (file, offset) = rest.rsplit_once(':')?;
        let offset = offset.parse().ok()?;
        if file.is_empty() {
            return None;
        }
        Some(match gtid {
            Some(g) => Position::Gtid {
                gtid: g.to_string(),
                file: file.to_string(),
                offset,
            },
            None => Position::File {
                file: file.to_string(),
                offset,
            },
        })
    }

    pub fn lsn(&self) -> Option<u64> {
        match self {
            Position::Lsn(l) => Some(*l),
            _ => None,
        }
    }
}

/// Binlog files are `<base>.<number>`: compare the number, then the whole name.
fn binlog_file_order(a: &str, b: &str) -> Ordering {
    let num = |s: &str| s.rsplit('.').next().and_then(|n| n.parse::<u64>().ok());
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// PostgreSQL's `X/Y` LSN text form.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
        return None;
    }
    Some((hi << 32) | lo)
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Lsn(l) => write!(f, "lsn {}", format_lsn(*l)),
            Position::Gtid {
                gtid, file, offset, ..
            } => {
                write!(f, "gtid {gtid} ({file}:{offset})")
            }
            Position::File { file, offset } => write!(f, "{file}:{offset}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trips() {
        let lsn = (0x16u64 << 32) | 0xB374D848;
        assert_eq!(format_lsn(lsn), "16/B374D848");
        assert_eq!(parse_lsn("16/B374D848"), Some(lsn));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("nonsense"), None);
        assert_eq!(parse_lsn("1FFFFFFFF/0"), None);
    }

    #[test]
    fn command_line_forms_round_trip() {
        for p in [
            Position::Lsn(0x16_B374_D848),
            Position::Gtid {
                gtid: "0-1-42,1-2-7".into(),
                file: "binlog.000003".into(),
                offset: 1234,
            },
            Position::File {
                file: "binlog.000003".into(),
                offset: 4,
            },
        ] {
            assert_eq!(Position::parse(&p.to_arg()), Some(p));
        }
        assert_eq!(Position::parse("nonsense"), None);
        assert_eq!(Position::parse("binlog:x"), None);
    }

    #[test]
    fn positions_order_within_kind_only() {
        assert_eq!(
            Position::Lsn(1).compare(&Position::Lsn(2)),
            Some(Ordering::Less)
        );
        let f = |file: &str, offset| Position::File {
            file: file.into(),
            offset,
        };
        assert_eq!(
            f("bin.000009", 900).compare(&f("bin.000010", 4)),
            Some(Ordering::Less)
        );
        assert_eq!(Position::Lsn(1).compare(&f("bin.000001", 4)), None);
    }
}
