//! pgoutput (protocol version 1) decoder: bytes in, typed messages out.
//!
//! Pure and total: no I/O, no panics on any input; a malformed message is a [`DecodeError`]
//! naming the message kind and what was short. Text and binary tuple values are returned as
//! slices of the input buffer; [`super::values`] turns them into [`crate::model::Value`]s.

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pgoutput: {}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        final_lsn: u64,
        commit_time: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        commit_time: i64,
    },
    Origin {
        commit_lsn: u64,
        name: String,
    },
    Relation(Relation),
    Type {
        id: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Tuple,
    },
    Update {
        relation: u32,
        old: Option<OldTuple>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        old: OldTuple,
    },
    Truncate {
        relations: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
    Message {
        transactional: bool,
        lsn: u64,
        prefix: String,
        content: Bytes,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity key.
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_mod: i32,
}

/// The old row of an update or delete: only the key columns (`K`) or the whole row (`O`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldTuple {
    pub key_only: bool,
    pub tuple: Tuple,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple(pub Vec<Datum>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    Null,
    /// An unchanged TOASTed value the server did not send.
    Unchanged,
    Text(Bytes),
    Binary(Bytes),
}

/// Decode one pgoutput message from an XLogData payload.
pub fn decode(data: &Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader { buf: data, pos: 0 };
    let tag = r.u8("message tag")?;
    let msg = match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64("begin lsn")?,
            commit_time: r.i64("begin time")?,
            xid: r.u32("begin xid")?,
        },
        b'C' => {
            r.u8("commit flags")?;
            Message::Commit {
                commit_lsn: r.u64("commit lsn")?,
                end_lsn: r.u64("commit end lsn")?,
                commit_time: r.i64("commit time")?,
            }
        }
        b'O' => Message::Origin {
            commit_lsn: r.u64("origin lsn")?,
            name: r.cstr("origin name")?,
        },
        b'R' => Message::Relation(relation(&mut r)?),
        b'Y' => Message::Type {
            id: r.u32("type oid")?,
            namespace: r.cstr("type namespace")?,
            name: r.cstr("type name")?,
        },
        b'I' => {
            let relation = r.u32("insert relation")?;
            r.expect(b'N', "insert")?;
            Message::Insert {
                relation,
                new: tuple(&mut r)?,
            }
        }
        b'U' => update(&mut r)?,
        b'D' => {
            let relation = r.u32("delete relation")?;
            let kind = r.u8("delete tuple kind")?;
            Message::Delete {
                relation,
                old: old_tuple(kind, &mut r, "delete")?,
            }
        }
        b'T' => {
            let n = r.u32("truncate count")? as usize;
            let options = r.u8("truncate options")?;
            if n > r.remaining() / 4 {
                return Err(DecodeError(format!("truncate: {n} relations do not fit")));
            }
            let mut relations = Vec::with_capacity(n);
            for _ in 0..n {
                relations.push(r.u32("truncate relation")?);
            }
            Message::Truncate {
                relations,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
            }
        }
        b'M' => {
            let flags = r.u8("message flags")?;
            let lsn = r.u64("message lsn")?;
            let prefix = r.cstr("message prefix")?;
            let len = r.u32("message length")? as usize;
            Message::Message {
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content: r.bytes(len, "message content")?,
            }
        }
        other => return Err(DecodeError(format!("unknown message tag 0x{other:02x}"))),
    };
    Ok(msg)
}

fn relation(r: &mut Reader<'_>) -> Result<Relation, DecodeError> {
    let id = r.u32("relation id")?;
    let namespace = r.cstr("relation namespace")?;
    let name = r.cstr("relation name")?;
    let replica_identity = r.u8("replica identity")?;
    let n = r.u16("relation column count")? as usize;
    let mut columns = Vec::with_capacity(n.min(1600));
    for _ in 0..n {
        let flags = r.u8("column flags")?;
        columns.push(RelationColumn {
            key: flags & 1 != 0,
            name: r.cstr("column name")?,
            type_oid: r.u32("column type")?,
            type_mod: r.i32("column typmod")?,
        });
    }
    Ok(Relation {
        id,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

fn update(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let relation = r.u32("update relation")?;
    let mut kind = r.u8("update tuple kind")?;
    let mut old = None;
    if kind == b'K' || kind == b'O' {
        old = Some(old_tuple(kind, r, "update")?);
        kind = r.u8("update new tuple kind")?;
    }
    if kind != b'N' {
        return Err(DecodeError(format!(
            "update: expected new tuple, got 0x{kind:02x}"
        )));
    }
    Ok(Message::Update {
        relation,
        old,
        new: tuple(r)?,
    })
}

fn old_tuple(kind: u8, r: &mut Reader<'_>, what: &str) -> Result<OldTuple, DecodeError> {
    match kind {
        b'K' | b'O' => Ok(OldTuple {
            key_only: kind == b'K',
            tuple: tuple(r)?,
        }),
        other => Err(DecodeError(format!(
            "{what}: expected K or O, got 0x{other:02x}"
        ))),
    }
}

fn tuple(r: &mut Reader<'_>) -> Result<Tuple, DecodeError> {
    let n = r.u16("tuple column count")? as usize;
    let mut datums = Vec::with_capacity(n.min(1600));
    for _ in 0..n {
        let datum = match r.u8("tuple column kind")? {
            b'n' => Datum::Null,
            b'u' => Datum::Unchanged,
            b't' => {
                let len = r.u32("text length")? as usize;
                Datum::Text(r.bytes(len, "text value")?)
            }
            b'b' => {
                let len = r.u32("binary length")? as usize;
                Datum::Binary(r.bytes(len, "binary value")?)
            }
            other => {
                return Err(DecodeError(format!(
                    "unknown tuple column kind 0x{other:02x}"
                )))
            }
        };
        datums.push(datum);
    }
    Ok(Tuple(datums))
}

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError(format!(
                "{what}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(self.u32(what)? as i32)
    }
    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(self.u64(what)? as i64)
    }
    fn expect(&mut self, tag: u8, what: &str) -> Result<(), DecodeError> {
        let got = self.u8(what)?;
        if got != tag {
            return Err(DecodeError(format!(
                "{what}: expected {:?}, got 0x{got:02x}",
                tag as char
            )));
        }
        Ok(())
    }
    fn bytes(&mut self, n: usize, what: &str) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError(format!(
                "{what}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }
    fn cstr(&mut self, what: &str) -> Result<String, DecodeError> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| DecodeError(format!("{what}: missing terminator")))?;
        let s = std::str::from_utf8(&rest[..end])
            .map_err(|_| DecodeError(format!("{what}: not UTF-8")))?
            .to_string();
        self.pos += end + 1;
        Ok(s)
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
