//! Byte fixtures for the pgoutput v1 decoder, built field by field as the PostgreSQL docs
//! ("Logical Replication Message Formats") lay them out, plus truncation, malformed-input and
//! fuzz checks that `decode` answers every input with a value or an error, never a panic.

use super::*;

/// Big-endian message builder, one method per wire type.
#[derive(Default, Clone)]
struct Buf(Vec<u8>);

impl Buf {
    fn tag(t: u8) -> Buf {
        Buf(vec![t])
    }
    fn u8(mut self, v: u8) -> Buf {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Buf {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Buf {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(self, v: i32) -> Buf {
        self.u32(v as u32)
    }
    fn u64(mut self, v: u64) -> Buf {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(self, v: i64) -> Buf {
        self.u64(v as u64)
    }
    fn raw(mut self, b: &[u8]) -> Buf {
        self.0.extend_from_slice(b);
        self
    }
    fn cstr(self, s: &str) -> Buf {
        self.raw(s.as_bytes()).u8(0)
    }
    /// TupleData `t`: u32 length, then the text bytes.
    fn text(self, b: &[u8]) -> Buf {
        self.u8(b't').u32(b.len() as u32).raw(b)
    }
    /// TupleData `b`: u32 length, then the binary bytes.
    fn binary(self, b: &[u8]) -> Buf {
        self.u8(b'b').u32(b.len() as u32).raw(b)
    }
    fn null(self) -> Buf {
        self.u8(b'n')
    }
    fn unchanged(self) -> Buf {
        self.u8(b'u')
    }
    fn done(self) -> Bytes {
        Bytes::from(self.0)
    }
}

const LSN: u64 = (0x16 << 32) | 0xB374_D848;
const END_LSN: u64 = LSN + 0x38;
/// 2024-07-11 in microseconds since 2000-01-01.
const TIME: i64 = 774_000_000_123_456;
const REL: u32 = 16_385;

fn text(s: &str) -> Datum {
    Datum::Text(Bytes::copy_from_slice(s.as_bytes()))
}

type Fixture = (Bytes, Message);

fn begin() -> Fixture {
    let b = Buf::tag(b'B').u64(LSN).i64(TIME).u32(771).done();
    let m = Message::Begin {
        final_lsn: LSN,
        commit_time: TIME,
        xid: 771,
    };
    (b, m)
}

fn commit() -> Fixture {
    let b = Buf::tag(b'C').u8(0).u64(LSN).u64(END_LSN).i64(TIME).done();
    let m = Message::Commit {
        commit_lsn: LSN,
        end_lsn: END_LSN,
        commit_time: TIME,
    };
    (b, m)
}

/// A commit time before the PostgreSQL epoch is negative on the wire.
fn commit_before_epoch() -> Fixture {
    let b = Buf::tag(b'C').u8(0).u64(1).u64(2).i64(-1).done();
    let m = Message::Commit {
        commit_lsn: 1,
        end_lsn: 2,
        commit_time: -1,
    };
    (b, m)
}

fn origin() -> Fixture {
    let b = Buf::tag(b'O').u64(LSN).cstr("erp_node").done();
    let m = Message::Origin {
        commit_lsn: LSN,
        name: "erp_node".into(),
    };
    (b, m)
}

fn relation() -> Fixture {
    // numeric(10,2) has typmod ((10 << 16) | 2) + 4.
    let numeric_typmod = ((10 << 16) | 2) + 4;
    let b = Buf::tag(b'R')
        .u32(REL)
        .cstr("public")
        .cstr("customers")
        .u8(b'd')
        .u16(3)
        .u8(1)
        .cstr("id")
        .u32(23)
        .i32(-1)
        .u8(0)
        .cstr("name")
        .u32(25)
        .i32(-1)
        .u8(0)
        .cstr("balance")
        .u32(1700)
        .i32(numeric_typmod)
        .done();
    let col = |key, name: &str, type_oid, type_mod| RelationColumn {
        key,
        name: name.into(),
        type_oid,
        type_mod,
    };
    let m = Message::Relation(Relation {
        id: REL,
        namespace: "public".into(),
        name: "customers".into(),
        replica_identity: b'd',
        columns: vec![
            col(true, "id", 23, -1),
            col(false, "name", 25, -1),
            col(false, "balance", 1700, numeric_typmod),
        ],
    });
    (b, m)
}

fn relation_no_columns() -> Fixture {
    let b = Buf::tag(b'R')
        .u32(REL + 1)
        .cstr("crm")
        .cstr("empty")
        .u8(b'n')
        .u16(0)
        .done();
    let m = Message::Relation(Relation {
        id: REL + 1,
        namespace: "crm".into(),
        name: "empty".into(),
        replica_identity: b'n',
        columns: vec![],
    });
    (b, m)
}

fn type_msg() -> Fixture {
    let b = Buf::tag(b'Y')
        .u32(16_400)
        .cstr("public")
        .cstr("mood")
        .done();
    let m = Message::Type {
        id: 16_400,
        namespace: "public".into(),
        name: "mood".into(),
    };
    (b, m)
}

fn insert() -> Fixture {
    let b = Buf::tag(b'I')
        .u32(REL)
        .u8(b'N')
        .u16(3)
        .text(b"1")
        .text(b"Ana")
        .null()
        .done();
    let m = Message::Insert {
        relation: REL,
        new: Tuple(vec![text("1"), text("Ana"), Datum::Null]),
    };
    (b, m)
}

/// 4-byte UTF-8 (U+1F980) next to 2-byte UTF-8, and an empty text value.
fn insert_utf8() -> Fixture {
    let b = Buf::tag(b'I')
        .u32(REL)
        .u8(b'N')
        .u16(3)
        .text("Zoë 🦀".as_bytes())
        .text(&[0xF0, 0x9F, 0xA6, 0x80])
        .text(b"")
        .done();
    let m = Message::Insert {
        relation: REL,
        new: Tuple(vec![text("Zoë 🦀"), text("🦀"), text("")]),
    };
    (b, m)
}

fn insert_binary() -> Fixture {
    let b = Buf::tag(b'I')
        .u32(REL)
        .u8(b'N')
        .u16(1)
        .binary(&[0, 0xFF, 0, 1])
        .done();
    let m = Message::Insert {
        relation: REL,
        new: Tuple(vec![Datum::Binary(Bytes::from_static(&[0, 0xFF, 0, 1]))]),
    };
    (b, m)
}

fn insert_zero_columns() -> Fixture {
    let b = Buf::tag(b'I').u32(REL).u8(b'N').u16(0).done();
    let m = Message::Insert {
        relation: REL,
        new: Tuple(vec![]),
    };
    (b, m)
}

/// Replica identity default, key changed: old tuple `K` carries the key, nulls elsewhere.
fn update_key_old() -> Fixture {
    let b = Buf::tag(b'U')
        .u32(REL)
        .u8(b'K')
        .u16(3)
        .text(b"1")
        .null()
        .null()
        .u8(b'N')
        .u16(3)
        .text(b"2")
        .text(b"Ana")
        .unchanged()
        .done();
    let m = Message::Update {
        relation: REL,
        old: Some(OldTuple {
            key_only: true,
            tuple: Tuple(vec![text("1"), Datum::Null, Datum::Null]),
        }),
        new: Tuple(vec![text("2"), text("Ana"), Datum::Unchanged]),
    };
    (b, m)
}

/// Replica identity full: old tuple `O` carries the whole row.
fn update_full_old() -> Fixture {
    let b = Buf::tag(b'U')
        .u32(REL)
        .u8(b'O')
        .u16(2)
        .text(b"1")
        .text(b"Ana")
        .u8(b'N')
        .u16(2)
        .text(b"1")
        .text(b"Bea")
        .done();
    let m = Message::Update {
        relation: REL,
        old: Some(OldTuple {
            key_only: false,
            tuple: Tuple(vec![text("1"), text("Ana")]),
        }),
        new: Tuple(vec![text("1"), text("Bea")]),
    };
    (b, m)
}

/// Key unchanged: no old tuple; the TOASTed column was not sent.
fn update_no_old() -> Fixture {
    let b = Buf::tag(b'U')
        .u32(REL)
        .u8(b'N')
        .u16(3)
        .text(b"1")
        .unchanged()
        .null()
        .done();
    let m = Message::Update {
        relation: REL,
        old: None,
        new: Tuple(vec![text("1"), Datum::Unchanged, Datum::Null]),
    };
    (b, m)
}

fn delete_key() -> Fixture {
    let b = Buf::tag(b'D')
        .u32(REL)
        .u8(b'K')
        .u16(3)
        .text(b"7")
        .null()
        .null()
        .done();
    let m = Message::Delete {
        relation: REL,
        old: OldTuple {
            key_only: true,
            tuple: Tuple(vec![text("7"), Datum::Null, Datum::Null]),
        },
    };
    (b, m)
}

fn delete_full() -> Fixture {
    let b = Buf::tag(b'D')
        .u32(REL)
        .u8(b'O')
        .u16(2)
        .text(b"7")
        .text(b"Cy")
        .done();
    let m = Message::Delete {
        relation: REL,
        old: OldTuple {
            key_only: false,
            tuple: Tuple(vec![text("7"), text("Cy")]),
        },
    };
    (b, m)
}

fn truncate_both_options() -> Fixture {
    let b = Buf::tag(b'T').u32(2).u8(1 | 2).u32(REL).u32(REL + 1).done();
    let m = Message::Truncate {
        relations: vec![REL, REL + 1],
        cascade: true,
        restart_identity: true,
    };
    (b, m)
}

fn truncate_cascade() -> Fixture {
    let b = Buf::tag(b'T').u32(1).u8(1).u32(REL).done();
    let m = Message::Truncate {
        relations: vec![REL],
        cascade: true,
        restart_identity: false,
    };
    (b, m)
}

fn truncate_restart_identity() -> Fixture {
    let b = Buf::tag(b'T').u32(1).u8(2).u32(REL).done();
    let m = Message::Truncate {
        relations: vec![REL],
        cascade: false,
        restart_identity: true,
    };
    (b, m)
}

fn message_transactional() -> Fixture {
    let b = Buf::tag(b'M')
        .u8(1)
        .u64(LSN)
        .cstr("rowbridge")
        .u32(5)
        .raw(b"hello")
        .done();
    let m = Message::Message {
        transactional: true,
        lsn: LSN,
        prefix: "rowbridge".into(),
        content: Bytes::from_static(b"hello"),
    };
    (b, m)
}

fn message_empty() -> Fixture {
    let b = Buf::tag(b'M').u8(0).u64(LSN).cstr("").u32(0).done();
    let m = Message::Message {
        transactional: false,
        lsn: LSN,
        prefix: String::new(),
        content: Bytes::new(),
    };
    (b, m)
}

fn all_fixtures() -> Vec<(&'static str, Fixture)> {
    vec![
        ("begin", begin()),
        ("commit", commit()),
        ("commit_before_epoch", commit_before_epoch()),
        ("origin", origin()),
        ("relation", relation()),
        ("relation_no_columns", relation_no_columns()),
        ("type", type_msg()),
        ("insert", insert()),
        ("insert_utf8", insert_utf8()),
        ("insert_binary", insert_binary()),
        ("insert_zero_columns", insert_zero_columns()),
        ("update_key_old", update_key_old()),
        ("update_full_old", update_full_old()),
        ("update_no_old", update_no_old()),
        ("delete_key", delete_key()),
        ("delete_full", delete_full()),
        ("truncate_both_options", truncate_both_options()),
        ("truncate_cascade", truncate_cascade()),
        ("truncate_restart_identity", truncate_restart_identity()),
        ("message_transactional", message_transactional()),
        ("message_empty", message_empty()),
    ]
}

#[track_caller]
fn check((bytes, expected): Fixture) {
    assert_eq!(decode(&bytes), Ok(expected));
}

/// Decoding fails and the error message contains `needle`.
#[track_caller]
fn fails_with(bytes: Bytes, needle: &str) {
    let err = decode(&bytes).expect_err("malformed input decoded");
    assert!(err.0.contains(needle), "{err} does not mention {needle:?}");
    assert!(err.to_string().starts_with("pgoutput: "), "{err}");
}

#[test]
fn begin_decodes() {
    check(begin());
}

#[test]
fn commit_decodes() {
    check(commit());
    check(commit_before_epoch());
}

#[test]
fn origin_decodes() {
    check(origin());
}

#[test]
fn relation_decodes_with_key_flag_and_typmod() {
    check(relation());
    check(relation_no_columns());
}

#[test]
fn type_decodes() {
    check(type_msg());
}

#[test]
fn insert_decodes() {
    check(insert());
    check(insert_binary());
}

#[test]
fn four_byte_utf8_text_is_kept_byte_exact() {
    let (bytes, expected) = insert_utf8();
    let got = decode(&bytes).unwrap();
    assert_eq!(got, expected);
    let Message::Insert { new, .. } = got else {
        unreachable!()
    };
    let Datum::Text(crab) = &new.0[1] else {
        panic!("expected text, got {:?}", new.0[1])
    };
    assert_eq!(std::str::from_utf8(crab).unwrap(), "\u{1F980}");
    assert_eq!(crab.len(), 4);
}

#[test]
fn zero_column_tuple_decodes() {
    check(insert_zero_columns());
}

#[test]
fn update_with_key_old_tuple_is_key_only() {
    check(update_key_old());
}

#[test]
fn update_with_full_old_tuple() {
    check(update_full_old());
}

#[test]
fn update_without_old_tuple() {
    check(update_no_old());
}

#[test]
fn unchanged_toast_datum_decodes() {
    let (bytes, _) = update_no_old();
    let Ok(Message::Update { new, .. }) = decode(&bytes) else {
        panic!("update did not decode")
    };
    assert_eq!(new.0[1], Datum::Unchanged);
}

#[test]
fn delete_decodes() {
    check(delete_key());
    check(delete_full());
}

#[test]
fn truncate_decodes_options() {
    check(truncate_both_options());
    check(truncate_cascade());
    check(truncate_restart_identity());
}

#[test]
fn logical_message_decodes() {
    check(message_transactional());
    check(message_empty());
}

#[test]
fn every_strict_prefix_is_an_error() {
    for (name, (bytes, _)) in all_fixtures() {
        for len in 0..bytes.len() {
            let prefix = bytes.slice(..len);
            match decode(&prefix) {
                Err(e) => assert!(!e.0.is_empty(), "{name}[..{len}]: empty error"),
                Ok(m) => panic!("{name}[..{len}] decoded to {m:?}"),
            }
        }
    }
}

#[test]
fn empty_input_is_an_error() {
    fails_with(Bytes::new(), "message tag");
}

#[test]
fn unknown_tag_is_an_error() {
    fails_with(Buf::tag(b'Z').u64(0).done(), "unknown message tag 0x5a");
    // Protocol v2 stream messages are not v1.
    fails_with(
        Buf::tag(b'S').u32(1).u8(1).done(),
        "unknown message tag 0x53",
    );
}

#[test]
fn unknown_tuple_kind_is_an_error() {
    let b = Buf::tag(b'I')
        .u32(REL)
        .u8(b'N')
        .u16(2)
        .text(b"1")
        .u8(b'x')
        .done();
    fails_with(b, "unknown tuple column kind 0x78");
}

#[test]
fn wrong_tuple_markers_are_errors() {
    let insert_old = Buf::tag(b'I').u32(REL).u8(b'K').u16(0).done();
    fails_with(insert_old, "insert: expected 'N', got 0x4b");
    let update_bad = Buf::tag(b'U').u32(REL).u8(b'X').u16(0).done();
    fails_with(update_bad, "update: expected new tuple, got 0x58");
    let update_two_old = Buf::tag(b'U')
        .u32(REL)
        .u8(b'K')
        .u16(0)
        .u8(b'O')
        .u16(0)
        .done();
    fails_with(update_two_old, "update: expected new tuple, got 0x4f");
    let delete_new = Buf::tag(b'D').u32(REL).u8(b'N').u16(0).done();
    fails_with(delete_new, "delete: expected K or O, got 0x4e");
}

#[test]
fn missing_cstring_terminator_is_an_error() {
    let b = Buf::tag(b'O').u64(LSN).raw(b"erp_node").done();
    fails_with(b, "origin name: missing terminator");
    let b = Buf::tag(b'Y').u32(1).cstr("public").raw(b"mood").done();
    fails_with(b, "type name: missing terminator");
}

#[test]
fn non_utf8_relation_name_is_an_error() {
    let b = Buf::tag(b'R')
        .u32(REL)
        .cstr("public")
        .raw(&[b'c', 0xFF, 0xFE])
        .u8(0)
        .u8(b'd')
        .u16(0)
        .done();
    fails_with(b, "relation name: not UTF-8");
    // A truncated 4-byte sequence is not UTF-8 either.
    let b = Buf::tag(b'R')
        .u32(REL)
        .raw(&[0xF0, 0x9F, 0xA6])
        .u8(0)
        .cstr("t")
        .u8(b'd')
        .u16(0)
        .done();
    fails_with(b, "relation namespace: not UTF-8");
}

#[test]
fn huge_truncate_count_is_an_error() {
    let b = Buf::tag(b'T').u32(u32::MAX).u8(0).u32(REL).done();
    fails_with(b, "truncate: 4294967295 relations do not fit");
    let b = Buf::tag(b'T').u32(3).u8(0).u32(REL).u32(REL).done();
    fails_with(b, "do not fit");
}

#[test]
fn huge_lengths_are_errors() {
    let b = Buf::tag(b'I')
        .u32(REL)
        .u8(b'N')
        .u16(1)
        .u8(b't')
        .u32(0xFFFF_FFFF)
        .raw(b"abc")
        .done();
    fails_with(b, "text value: needs 4294967295 bytes, 3 left");
    let b = Buf::tag(b'I')
        .u32(REL)
        .u8(b'N')
        .u16(1)
        .u8(b'b')
        .u32(0xFFFF_FFFF)
        .done();
    fails_with(b, "binary value: needs 4294967295 bytes, 0 left");
    let b = Buf::tag(b'M')
        .u8(0)
        .u64(LSN)
        .cstr("p")
        .u32(0xFFFF_FFFF)
        .raw(b"x")
        .done();
    fails_with(b, "message content: needs 4294967295 bytes, 1 left");
}

#[test]
fn huge_column_counts_are_errors() {
    let b = Buf::tag(b'I').u32(REL).u8(b'N').u16(u16::MAX).null().done();
    fails_with(b, "tuple column kind");
    let b = Buf::tag(b'R')
        .u32(REL)
        .cstr("public")
        .cstr("t")
        .u8(b'd')
        .u16(u16::MAX)
        .done();
    fails_with(b, "column flags");
}

/// xorshift64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bytes_never_panic() {
    const TAGS: &[u8] = b"BCORYIUDTM";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    for i in 0..20_000 {
        let len = rng.below(64);
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && !v.is_empty() {
            v[0] = TAGS[rng.below(TAGS.len())];
        }
        if decode(&Bytes::from(v)).is_ok() {
            decoded += 1;
        }
    }
    // Some short random messages (Begin, Commit, zero-column tuples) are valid.
    assert!(decoded > 0);
}

#[test]
fn mutated_fixtures_never_panic() {
    let fixtures = all_fixtures();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        let (_, (bytes, _)) = &fixtures[rng.below(fixtures.len())];
        let mut v = bytes.to_vec();
        for _ in 0..=rng.below(3) {
            let at = rng.below(v.len());
            v[at] = match rng.below(4) {
                0 => 0,
                1 => 0xFF,
                _ => rng.next() as u8,
            };
        }
        let _ = decode(&Bytes::from(v));
    }
}
