//! Byte fixtures for every character set the binlog source decodes. The bytes are what MariaDB
//! stores; the expected text is what its `CONVERT(x USING utf8mb4)` gives.

use super::*;

fn dec(collation: u16, bytes: &[u8]) -> Result<String, String> {
    Charset::of_collation(collation).decode(bytes)
}

#[test]
fn collation_ids_name_their_character_sets() {
    assert_eq!(Charset::of_collation(63), Charset::Binary);
    for id in [33, 83, 192, 223, 45, 46, 224, 247, 2048, 2304, 2503] {
        assert_eq!(Charset::of_collation(id), Charset::Utf8, "{id}");
    }
    for id in [8, 5, 47, 48, 94, 1032] {
        assert_eq!(
            Charset::of_collation(id),
            Charset::Single(SingleByte::Latin1),
            "{id}"
        );
    }
    assert_eq!(
        Charset::of_collation(57),
        Charset::Single(SingleByte::Cp1256)
    );
    assert_eq!(
        Charset::of_collation(25),
        Charset::Single(SingleByte::Greek)
    );
    assert_eq!(
        Charset::of_collation(16),
        Charset::Single(SingleByte::Hebrew)
    );
    assert_eq!(Charset::of_collation(7), Charset::Single(SingleByte::Koi8r));
    assert_eq!(Charset::of_collation(35), Charset::Ucs2);
    assert_eq!(Charset::of_collation(2560), Charset::Ucs2);
    assert_eq!(Charset::of_collation(54), Charset::Utf16);
    assert_eq!(Charset::of_collation(56), Charset::Utf16le);
    assert_eq!(Charset::of_collation(60), Charset::Utf32);
    assert_eq!(Charset::of_collation(3271), Charset::Utf32);
    assert_eq!(Charset::of_collation(1), Charset::Unsupported("big5"));
    assert_eq!(Charset::of_collation(0), Charset::Unknown(0));
    assert_eq!(Charset::of_collation(2248), Charset::Unknown(2248));
    assert_eq!(Charset::of_collation(4000), Charset::Unknown(4000));
}

#[test]
fn latin1_is_cp1252_with_its_holes_as_c1_controls() {
    // The seen case: latin1 bytes 4D C3 A9 6C are the four characters "MÃ©l".
    assert_eq!(dec(8, &[0x4d, 0xc3, 0xa9, 0x6c]).unwrap(), "MÃ©l");
    assert_eq!(dec(8, &[0x4d, 0xe9, 0x6c]).unwrap(), "Mél");
    assert_eq!(dec(8, b"caf\xe9").unwrap(), "café");
    assert_eq!(dec(8, b"\x80100").unwrap(), "€100");
    assert_eq!(
        dec(8, &[0x81, 0x8d, 0x8f, 0x90, 0x9d]).unwrap(),
        "\u{81}\u{8d}\u{8f}\u{90}\u{9d}"
    );
    assert_eq!(dec(8, &[0x9f, 0xff, 0x99]).unwrap(), "Ÿÿ™");
    // Every byte decodes: latin1 has no undefined byte in MariaDB.
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(dec(8, &all).unwrap().chars().count(), 256);
}

#[test]
fn cp1256_arabic_and_its_undefined_bytes() {
    // "مرحبا" (hello) in windows-1256.
    assert_eq!(dec(57, &[0xe3, 0xd1, 0xcd, 0xc8, 0xc7]).unwrap(), "مرحبا");
    assert_eq!(dec(57, &[0x80, 0x81, 0xa1, 0xbf]).unwrap(), "€پ،؟");
    for b in [0x8a, 0x8f, 0x98, 0x9a, 0x9f, 0xaa, 0xc0, 0xff] {
        let err = dec(57, &[b'a', b]).unwrap_err();
        assert_eq!(err, "byte 1 has no character in cp1256", "{b:#x}");
    }
}

#[test]
fn greek_hebrew_koi8r() {
    // "Καλημέρα" in ISO 8859-7.
    let greek = [0xca, 0xe1, 0xeb, 0xe7, 0xec, 0xdd, 0xf1, 0xe1];
    assert_eq!(dec(25, &greek).unwrap(), "Καλημέρα");
    assert_eq!(dec(25, &[0xa1, 0xa2]).unwrap(), "\u{2bd}\u{2bc}");
    for b in [0xa4, 0xa5, 0xaa, 0xae, 0xd2, 0xff] {
        assert!(dec(25, &[b]).is_err(), "{b:#x}");
    }
    // "שלום" in ISO 8859-8.
    assert_eq!(dec(16, &[0xf9, 0xec, 0xe5, 0xed]).unwrap(), "שלום");
    assert_eq!(
        dec(16, &[0xaf, 0xdf, 0xfd]).unwrap(),
        "\u{203e}\u{2017}\u{200e}"
    );
    for b in [0xa1, 0xbf, 0xc0, 0xde, 0xfb, 0xff] {
        assert!(dec(16, &[b]).is_err(), "{b:#x}");
    }
    // "Привет" in KOI8-R.
    assert_eq!(
        dec(7, &[0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]).unwrap(),
        "Привет"
    );
    assert_eq!(dec(7, &[0x9a, 0xb3, 0xa3]).unwrap(), "\u{a0}Ёё");
}

#[test]
fn utf8_sets_refuse_malformed_bytes() {
    assert_eq!(dec(45, "é🎉 مرحبا".as_bytes()).unwrap(), "é🎉 مرحبا");
    assert_eq!(dec(33, "€".as_bytes()).unwrap(), "€");
    assert_eq!(
        dec(45, &[b'a', 0xff, 0xfe]).unwrap_err(),
        "malformed UTF-8 at byte 1"
    );
    assert!(dec(45, &[0xf0, 0x9f, 0x8e]).is_err());
}

#[test]
fn wide_unicode_sets() {
    // "é" and "🎉" (U+1F389: surrogates D83C DF89).
    assert_eq!(dec(35, &[0x00, 0xe9, 0x20, 0xac]).unwrap(), "é€");
    assert!(
        dec(35, &[0xd8, 0x3c, 0xdf, 0x89]).is_err(),
        "ucs2 has no pairs"
    );
    assert_eq!(
        dec(54, &[0x00, 0xe9, 0xd8, 0x3c, 0xdf, 0x89]).unwrap(),
        "é🎉"
    );
    assert_eq!(
        dec(56, &[0xe9, 0x00, 0x3c, 0xd8, 0x89, 0xdf]).unwrap(),
        "é🎉"
    );
    assert!(dec(54, &[0xd8, 0x3c]).is_err(), "unpaired high surrogate");
    assert!(
        dec(56, &[0x89, 0xdf, 0x41, 0x00]).is_err(),
        "lone low surrogate"
    );
    assert!(dec(54, &[0x00]).is_err(), "odd length");
    assert_eq!(dec(60, &[0, 0, 0, 0xe9, 0, 1, 0xf3, 0x89]).unwrap(), "é🎉");
    assert!(dec(60, &[0, 0, 0xd8, 0]).is_err(), "surrogate code point");
    assert!(dec(60, &[0, 0x11, 0, 0]).is_err(), "beyond U+10FFFF");
    assert!(dec(60, &[0, 0, 0]).is_err());
}

#[test]
fn binary_and_unsupported_sets_are_refused_as_text() {
    assert!(dec(63, b"abc").is_err());
    assert_eq!(
        dec(1, b"abc").unwrap_err(),
        "character set big5 is not supported"
    );
    assert!(dec(0, b"abc").unwrap_err().contains("binlog_row_metadata"));
}

#[test]
fn reasons_never_carry_the_bytes() {
    let secret = [b'S', 0x8a, b'X'];
    let reason = dec(57, &secret).unwrap_err();
    assert!(!reason.contains('S') && !reason.contains("8a") && !reason.contains("0x"));
}

#[test]
fn any_bytes_in_any_collation_decode_or_refuse_without_panic() {
    // A small xorshift: the same pseudo-random inputs on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let ids: Vec<u16> = (0..4096).filter(|&id| charset_name(id).is_some()).collect();
    assert!(ids.len() > 1000);
    for &id in &ids {
        for len in 0..12 {
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let cs = Charset::of_collation(id);
            let (a, b) = (cs.decode(&bytes), cs.decode_owned(bytes.clone()));
            assert_eq!(a, b, "collation {id}");
            if let (Charset::Single(_), Ok(text)) = (cs, a) {
                // No code page here maps a byte to U+FFFD: one in the text is a replacement.
                assert!(!text.contains('\u{fffd}'), "collation {id}");
                assert_eq!(text.chars().count(), bytes.len(), "collation {id}");
            }
        }
    }
}
