//! Text bytes of a binlog row image to Unicode, by the column's character set.
//!
//! The binlog carries a string column's bytes as stored: in the column's own character set, not
//! the connection's. The table map's optional metadata (`binlog_row_metadata=FULL`) gives each
//! column's collation id; [`Charset::of_collation`] maps it to its character set (MariaDB 10.11's
//! ids, checked against `information_schema` by an integration test) and [`Charset::decode`]
//! turns the bytes into text exactly as MariaDB's own `CONVERT(x USING utf8mb4)` does, or refuses.
//!
//! Exact or refused: a byte sequence that has no character in the set (a malformed UTF-8/16/32
//! sequence, a byte that the code page leaves undefined) is an error for that column, never a
//! replacement character. A character set not handled here is refused by name, so such a row goes
//! to the dead-letter queue rather than arriving re-encoded.
//!
//! Single-byte sets use encoding_rs's tables (the WHATWG Encoding Standard) corrected to MariaDB's
//! where the two differ: MariaDB's `latin1` is windows-1252 with its five holes mapped to the C1
//! controls (as WHATWG does); its `cp1256` predates the 1998 revision and leaves eight bytes
//! undefined; its `greek` is ISO 8859-7:1987 (no euro, drachma or ypogegrammeni, and 0xA1/0xA2
//! are modifier letter apostrophes); its `hebrew` maps 0xAF to an overline.

use std::sync::OnceLock;

use encoding_rs::{Encoding, ISO_8859_7, ISO_8859_8, KOI8_R, WINDOWS_1252, WINDOWS_1256};

/// A column's character set, as far as decoding is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `binary` (collation 63): bytes, not text.
    Binary,
    /// utf8mb3 and utf8mb4: UTF-8 (MariaDB stores nothing else in them).
    Utf8,
    /// ucs2: UTF-16 big-endian without surrogates (the BMP only).
    Ucs2,
    /// utf16: big-endian, surrogate pairs allowed.
    Utf16,
    Utf16le,
    /// utf32: big-endian code points.
    Utf32,
    /// A single-byte code page.
    Single(SingleByte),
    /// A character set this decoder does not handle (named for the reason).
    Unsupported(&'static str),
    /// A collation id MariaDB 10.11 does not have (or no charset metadata in the binlog).
    Unknown(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleByte {
    Latin1,
    Cp1256,
    Greek,
    Hebrew,
    Koi8r,
}

/// Collation ids below 2048, by character set (MariaDB 10.11, `information_schema.COLLATION_
/// CHARACTER_SET_APPLICABILITY`). The UCA 14.0 collations (ids 2048 and up) are in [`uca1400`].
const COLLATIONS: &[(&str, &[u16])] = &[
    ("armscii8", &[32, 64, 1056, 1088]),
    ("ascii", &[11, 65, 1035, 1089]),
    ("big5", &[1, 84, 1025, 1108]),
    ("binary", &[63]),
    ("cp1250", &[26, 34, 44, 66, 99, 1050, 1090]),
    ("cp1251", &[14, 23, 50, 51, 52, 1074, 1075]),
    ("cp1256", &[57, 67, 1081, 1091]),
    ("cp1257", &[29, 58, 59, 1082, 1083]),
    ("cp850", &[4, 80, 1028, 1104]),
    ("cp852", &[40, 81, 1064, 1105]),
    ("cp866", &[36, 68, 1060, 1092]),
    ("cp932", &[95, 96, 1119, 1120]),
    ("dec8", &[3, 69, 1027, 1093]),
    ("eucjpms", &[97, 98, 1121, 1122]),
    ("euckr", &[19, 85, 1043, 1109]),
    ("gb2312", &[24, 86, 1048, 1110]),
    ("gbk", &[28, 87, 1052, 1111]),
    ("geostd8", &[92, 93, 1116, 1117]),
    ("greek", &[25, 70, 1049, 1094]),
    ("hebrew", &[16, 71, 1040, 1095]),
    ("hp8", &[6, 72, 1030, 1096]),
    ("keybcs2", &[37, 73, 1061, 1097]),
    ("koi8r", &[7, 74, 1031, 1098]),
    ("koi8u", &[22, 75, 1046, 1099]),
    ("latin1", &[5, 8, 15, 31, 47, 48, 49, 94, 1032, 1071]),
    ("latin2", &[2, 9, 21, 27, 77, 1033, 1101]),
    ("latin5", &[30, 78, 1054, 1102]),
    ("latin7", &[20, 41, 42, 79, 1065, 1103]),
    ("macce", &[38, 43, 1062, 1067]),
    ("macroman", &[39, 53, 1063, 1077]),
    ("sjis", &[13, 88, 1037, 1112]),
    ("swe7", &[10, 82, 1034, 1106]),
    ("tis620", &[18, 89, 1042, 1113]),
    ("ujis", &[12, 91, 1036, 1115]),
    (
        "ucs2",
        &[35, 90, 159, 640, 641, 642, 1059, 1114, 1152, 1174],
    ),
    ("utf16", &[54, 55, 672, 673, 674, 1078, 1079, 1125, 1147]),
    ("utf16le", &[56, 62, 1080, 1086]),
    ("utf32", &[60, 61, 736, 737, 738, 1084, 1085, 1184, 1206]),
    (
        "utf8mb3",
        &[33, 83, 223, 576, 577, 578, 1057, 1107, 1216, 1238],
    ),
    ("utf8mb4", &[45, 46, 608, 609, 610, 1069, 1070, 1248, 1270]),
];

/// The per-language UCA 4.0 collations: 24 or 26 consecutive ids per Unicode set.
const UCA_RANGES: &[(&str, u16, u16)] = &[
    ("ucs2", 128, 151),
    ("utf8mb3", 192, 215),
    ("utf8mb4", 224, 247),
    ("utf16", 101, 124),
    ("utf32", 160, 183),
];

/// UCA 14.0 collations (MariaDB 10.10+): 256 ids per Unicode set, 200 of them used.
fn uca1400(id: u16) -> Option<&'static str> {
    let name = match id >> 8 {
        8 => "utf8mb3",
        9 => "utf8mb4",
        10 => "ucs2",
        11 => "utf16",
        12 => "utf32",
        _ => return None,
    };
    ((id & 0xff) < 200).then_some(name)
}

/// The character set name of a collation id, if MariaDB 10.11 has it.
pub fn charset_name(id: u16) -> Option<&'static str> {
    COLLATIONS
        .iter()
        .find(|(_, ids)| ids.contains(&id))
        .map(|(name, _)| *name)
        .or_else(|| {
            UCA_RANGES
                .iter()
                .find(|(_, lo, hi)| (*lo..=*hi).contains(&id))
                .map(|(name, ..)| *name)
        })
        .or_else(|| uca1400(id))
}

impl Charset {
    pub fn of_collation(id: u16) -> Charset {
        match charset_name(id) {
            None => Charset::Unknown(id),
            Some("binary") => Charset::Binary,
            Some("utf8mb3" | "utf8mb4") => Charset::Utf8,
            Some("ucs2") => Charset::Ucs2,
            Some("utf16") => Charset::Utf16,
            Some("utf16le") => Charset::Utf16le,
            Some("utf32") => Charset::Utf32,
            Some("latin1") => Charset::Single(SingleByte::Latin1),
            Some("cp1256") => Charset::Single(SingleByte::Cp1256),
            Some("greek") => Charset::Single(SingleByte::Greek),
            Some("hebrew") => Charset::Single(SingleByte::Hebrew),
            Some("koi8r") => Charset::Single(SingleByte::Koi8r),
            Some(other) => Charset::Unsupported(other),
        }
    }

    /// [`Charset::decode`] of an owned buffer: UTF-8 text (most columns) is kept without a copy.
    pub fn decode_owned(self, bytes: Vec<u8>) -> Result<String, String> {
        match self {
            Charset::Utf8 => String::from_utf8(bytes)
                .map_err(|e| format!("malformed UTF-8 at byte {}", e.utf8_error().valid_up_to())),
            _ => self.decode(&bytes),
        }
    }

    /// The text the bytes stand for, or why there is none (no byte values in the reason).
    pub fn decode(self, bytes: &[u8]) -> Result<String, String> {
        match self {
            Charset::Binary => Err("binary string is not text".into()),
            Charset::Utf8 => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|e| format!("malformed UTF-8 at byte {}", e.valid_up_to())),
            Charset::Ucs2 => {
                units(bytes, 2, |c| u16::from_be_bytes([c[0], c[1]]) as u32).and_then(|u| ucs2(&u))
            }
            Charset::Utf16 => {
                units(bytes, 2, |c| u16::from_be_bytes([c[0], c[1]]) as u32).and_then(|u| utf16(&u))
            }
            Charset::Utf16le => {
                units(bytes, 2, |c| u16::from_le_bytes([c[0], c[1]]) as u32).and_then(|u| utf16(&u))
            }
            Charset::Utf32 => units(bytes, 4, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .and_then(|u| utf32(&u)),
            Charset::Single(set) => set.decode(bytes),
            Charset::Unsupported(name) => Err(format!("character set {name} is not supported")),
            Charset::Unknown(id) => Err(format!(
                "collation {id} is unknown (is binlog_row_metadata=FULL?)"
            )),
        }
    }
}

fn units(bytes: &[u8], width: usize, unit: impl Fn(&[u8]) -> u32) -> Result<Vec<u32>, String> {
    if !bytes.len().is_multiple_of(width) {
        return Err(format!("text length is not a multiple of {width} bytes"));
    }
    Ok(bytes.chunks_exact(width).map(unit).collect())
}

fn ucs2(units: &[u32]) -> Result<String, String> {
    units
        .iter()
        .map(|&u| char::from_u32(u).ok_or_else(|| "UCS-2 text has a surrogate".to_string()))
        .collect()
}

fn utf16(units: &[u32]) -> Result<String, String> {
    char::decode_utf16(units.iter().map(|&u| u as u16))
        .collect::<Result<String, _>>()
        .map_err(|_| "UTF-16 text has an unpaired surrogate".to_string())
}

fn utf32(units: &[u32]) -> Result<String, String> {
    units
        .iter()
        .map(|&u| char::from_u32(u).ok_or_else(|| "UTF-32 text has an invalid code point".into()))
        .collect()
}

impl SingleByte {
    pub fn name(self) -> &'static str {
        match self {
            SingleByte::Latin1 => "latin1",
            SingleByte::Cp1256 => "cp1256",
            SingleByte::Greek => "greek",
            SingleByte::Hebrew => "hebrew",
            SingleByte::Koi8r => "koi8r",
        }
    }

    fn decode(self, bytes: &[u8]) -> Result<String, String> {
        if bytes.is_ascii() {
            // Every set here is ASCII in its lower half.
            return Ok(String::from_utf8(bytes.to_vec()).expect("ASCII"));
        }
        let table = self.table();
        let mut out = String::with_capacity(bytes.len() * 2);
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                0..=0x7f => out.push(b as char),
                _ => out.push(
                    table[(b - 0x80) as usize]
                        .ok_or_else(|| format!("byte {i} has no character in {}", self.name()))?,
                ),
            }
        }
        Ok(out)
    }

    /// The upper half of the code page: encoding_rs's table with MariaDB's differences.
    pub fn table(self) -> &'static [Option<char>; 128] {
        static TABLES: [OnceLock<[Option<char>; 128]>; 5] = [const { OnceLock::new() }; 5];
        TABLES[self as usize].get_or_init(|| {
            let (encoding, fixes) = self.source();
            let mut t = [None; 128];
            for (i, slot) in t.iter_mut().enumerate() {
                *slot = whatwg(encoding, 0x80 + i as u8);
            }
            for &(byte, c) in fixes {
                t[(byte - 0x80) as usize] = c;
            }
            t
        })
    }

    fn source(self) -> (&'static Encoding, &'static [(u8, Option<char>)]) {
        match self {
            SingleByte::Latin1 => (WINDOWS_1252, &[]),
            SingleByte::Cp1256 => (
                WINDOWS_1256,
                &[
                    (0x8a, None),
                    (0x8f, None),
                    (0x98, None),
                    (0x9a, None),
                    (0x9f, None),
                    (0xaa, None),
                    (0xc0, None),
                    (0xff, None),
                ],
            ),
            SingleByte::Greek => (
                ISO_8859_7,
                &[
                    (0xa1, Some('\u{02bd}')),
                    (0xa2, Some('\u{02bc}')),
                    (0xa4, None),
                    (0xa5, None),
                    (0xaa, None),
                ],
            ),
            SingleByte::Hebrew => (ISO_8859_8, &[(0xaf, Some('\u{203e}'))]),
            SingleByte::Koi8r => (KOI8_R, &[]),
        }
    }
}

/// One byte through encoding_rs, `None` where the WHATWG table has no character.
fn whatwg(encoding: &'static Encoding, byte: u8) -> Option<char> {
    let bytes = [byte];
    let s = encoding.decode_without_bom_handling_and_without_replacement(&bytes)?;
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
#[path = "charset_tests.rs"]
mod tests;
