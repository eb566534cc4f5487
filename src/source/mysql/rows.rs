//! Row images of a binlog rows event, decoded straight from the event's bytes.
//!
//! `mysql_common`'s row iterator rebuilds a full column description (names, schema, flags, each
//! an allocation) and re-reads the table map's optional metadata for every row image; that was
//! most of the ERP -> CRM flow's CPU. Here the per-column facts come once from the table map
//! ([`ColumnInfo`]) and each value is parsed in place with `mysql_common`'s value decoder.
//!
//! Layout of the rows data (both MySQL and MariaDB, rows event v1/v2): for each row, the
//! before image (UPDATE, DELETE) and then the after image (INSERT, UPDATE). An image is a null
//! bitmap over the columns present in the event's column bitmap, then the non-null values in
//! column order. Partial JSON updates (MySQL 8's PARTIAL_UPDATE_ROWS_EVENT) are not decoded
//! here; the caller uses `mysql_common`'s own iterator for those.

use mysql_common::binlog::value::BinlogValue;
use mysql_common::io::ParseBuf;
use mysql_common::proto::MyDeserialize;

use super::decode::{self, ColumnInfo};
use crate::model::RowImage;

/// Which columns an image carries, by table column (the event's column bitmap).
pub type Present<'a> = &'a [bool];

/// A decoded image: values by table column (`None` = not in the image or not representable),
/// and the reasons of the columns that could not be represented.
pub type Decoded = (RowImage, Vec<(usize, String)>);

/// Decode the rows data of one event. `before` / `after` are the event's column bitmaps (absent
/// for images the event kind has not). Calls `row` once per row with its two images.
pub fn decode_rows(
    columns: &[ColumnInfo],
    data: &[u8],
    before: Option<Present<'_>>,
    after: Option<Present<'_>>,
    mut row: impl FnMut(Option<Decoded>, Option<Decoded>),
) -> Result<(), String> {
    for p in before.iter().chain(after.iter()) {
        if p.len() > columns.len() {
            return Err(format!(
                "rows event has {} columns, the table map {}",
                p.len(),
                columns.len()
            ));
        }
    }
    let mut buf = ParseBuf(data);
    while !buf.is_empty() {
        let b = before.map(|p| image(columns, p, &mut buf)).transpose()?;
        let a = after.map(|p| image(columns, p, &mut buf)).transpose()?;
        row(b, a);
    }
    Ok(())
}

fn image<'d>(
    columns: &'d [ColumnInfo],
    present: Present<'_>,
    buf: &mut ParseBuf<'d>,
) -> Result<Decoded, String> {
    let nulls_len = present.iter().filter(|&&p| p).count().div_ceil(8);
    let nulls: &[u8] = buf
        .parse(nulls_len)
        .map_err(|_| "rows event ends inside a null bitmap")?;
    let mut values: RowImage = vec![None; columns.len()];
    let mut invalid = Vec::new();
    let mut n = 0;
    for (i, col) in columns.iter().enumerate().take(present.len()) {
        if !present[i] {
            continue;
        }
        let null = nulls[n / 8] & (1 << (n % 8)) != 0;
        n += 1;
        if null {
            values[i] = Some(crate::model::Value::Null);
            continue;
        }
        let ty = col
            .column_type
            .ok_or_else(|| format!("column '{}' has no type", col.name))?;
        let ctx = (ty, col.meta.as_slice(), col.unsigned, false);
        let v = BinlogValue::deserialize(ctx, buf)
            .map_err(|e| format!("column '{}': {e}", col.name))?;
        match decode::value(col, v) {
            Ok(v) => values[i] = Some(v),
            Err(reason) => invalid.push((i, format!("column '{}': {reason}", col.name))),
        }
    }
    Ok((values, invalid))
}

#[cfg(test)]
mod tests {
    use mysql_common::constants::ColumnType;

    use super::*;
    use crate::model::Value;

    fn col(name: &str, ty: ColumnType, meta: &[u8]) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            column_type: Some(ty),
            meta: meta.to_vec(),
            charset: super::super::charset::Charset::Utf8,
            ..ColumnInfo::default()
        }
    }

    fn columns() -> Vec<ColumnInfo> {
        vec![
            col("id", ColumnType::MYSQL_TYPE_LONGLONG, &[]),
            // VARCHAR(100) utf8mb4: max length 400 -> two length bytes.
            col(
                "name",
                ColumnType::MYSQL_TYPE_VARCHAR,
                &400u16.to_le_bytes(),
            ),
            col("n", ColumnType::MYSQL_TYPE_LONG, &[]),
        ]
    }

    /// One image: null bitmap, then values (the test writes the bytes MariaDB would).
    fn image_bytes(id: i64, name: Option<&str>, n: i32) -> Vec<u8> {
        let mut b = vec![if name.is_none() { 0b010 } else { 0 }];
        b.extend(id.to_le_bytes());
        if let Some(s) = name {
            b.extend((s.len() as u16).to_le_bytes());
            b.extend(s.as_bytes());
        }
        b.extend(n.to_le_bytes());
        b
    }

    #[test]
    fn update_rows_give_before_and_after_in_order() {
        let cols = columns();
        let mut data = image_bytes(1, Some("Ann"), 5);
        data.extend(image_bytes(1, Some("Anna 🦀"), 6));
        data.extend(image_bytes(2, None, -1));
        data.extend(image_bytes(2, Some("Bo"), -1));
        let all = [true; 3];
        let mut rows = Vec::new();
        decode_rows(&cols, &data, Some(&all[..]), Some(&all[..]), |b, a| {
            rows.push((b.unwrap().0, a.unwrap().0))
        })
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1[1], Some(Value::Text("Anna 🦀".into())));
        assert_eq!(rows[0].0[2], Some(Value::Int(5)));
        assert_eq!(rows[1].0[1], Some(Value::Null));
        assert_eq!(rows[1].1[0], Some(Value::Int(2)));
        assert_eq!(rows[1].1[2], Some(Value::Int(-1)));
    }

    #[test]
    fn columns_outside_the_image_are_absent_not_null() {
        let cols = columns();
        // Only id and n present (a MINIMAL-like image): null bitmap over 2 columns.
        let mut data = vec![0u8];
        data.extend(7i64.to_le_bytes());
        data.extend(9i32.to_le_bytes());
        let bits = [true, false, true];
        let mut rows = Vec::new();
        decode_rows(&cols, &data, Some(&bits[..]), None, |b, a| {
            rows.push((b, a))
        })
        .unwrap();
        let (img, invalid) = rows[0].0.clone().unwrap();
        assert!(rows[0].1.is_none());
        assert!(invalid.is_empty());
        assert_eq!(img, vec![Some(Value::Int(7)), None, Some(Value::Int(9))]);
    }

    #[test]
    fn invalid_text_is_reported_per_column_and_the_row_goes_on() {
        let cols = columns();
        let mut data = vec![0u8];
        data.extend(3i64.to_le_bytes());
        data.extend(2u16.to_le_bytes());
        data.extend([0xff, 0xfe]);
        data.extend(4i32.to_le_bytes());
        let all = [true; 3];
        let mut rows = Vec::new();
        decode_rows(&cols, &data, None, Some(&all[..]), |_, a| {
            rows.push(a.unwrap())
        })
        .unwrap();
        let (img, invalid) = &rows[0];
        assert_eq!(img[1], None);
        assert_eq!(img[2], Some(Value::Int(4)));
        assert_eq!(invalid.len(), 1);
        assert!(invalid[0].1.contains("column 'name'"), "{invalid:?}");
    }

    #[test]
    fn truncated_data_is_an_error_not_a_panic() {
        let cols = columns();
        let data = image_bytes(1, Some("Ann"), 5);
        let all = [true; 3];
        for cut in 0..data.len() - 1 {
            let r = decode_rows(&cols, &data[..cut + 1], None, Some(&all[..]), |_, _| {});
            assert!(r.is_err(), "cut at {}", cut + 1);
        }
        let r = decode_rows(&cols[..2], &data, None, Some(&all[..]), |_, _| {});
        assert!(r.unwrap_err().contains("3 columns"));
    }
}
