//! Whether a source column can be written to a target column at all, by type family.
//!
//! Text on either side is accepted (the database parses or stores it; a bad value is a row
//! error at run time). The pairs refused here can never work, whatever the row: a date into an
//! integer column, bytes into a number, a number into a UUID.

use crate::mapping::convert::{CastTo, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Numeric,
    Bool,
    Text,
    Date,
    Time,
    Timestamp,
    Json,
    Bytes,
    Uuid,
    /// Anything else (arrays, enums, geometry...): not judged.
    Other,
}

/// The family of a PostgreSQL `format_type` or MySQL `COLUMN_TYPE` string.
pub fn family(data_type: &str) -> Family {
    let t = data_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match base {
        "tinyint" if t.starts_with("tinyint(1)") => Family::Bool,
        "smallint" | "integer" | "int" | "bigint" | "tinyint" | "mediumint" | "numeric"
        | "decimal" | "real" | "double" | "float" | "year" => Family::Numeric,
        "boolean" | "bool" => Family::Bool,
        "text" | "character" | "char" | "varchar" | "tinytext" | "mediumtext" | "longtext"
        | "enum" | "set" | "name" | "citext" => Family::Text,
        "date" => Family::Date,
        "time" => Family::Time,
        "timestamp" | "datetime" => Family::Timestamp,
        "json" | "jsonb" => Family::Json,
        "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary" => {
            Family::Bytes
        }
        "uuid" => Family::Uuid,
        _ => Family::Other,
    }
}

fn cast_family(c: CastTo) -> Family {
    match c {
        CastTo::Text => Family::Text,
        CastTo::Integer | CastTo::Decimal | CastTo::Float => Family::Numeric,
        CastTo::Boolean => Family::Bool,
        CastTo::Date => Family::Date,
        CastTo::Timestamp | CastTo::TimestampTz => Family::Timestamp,
        CastTo::Json => Family::Json,
        CastTo::Uuid => Family::Uuid,
    }
}

/// The family of what a column's steps produce from a source value of `source`.
pub fn after_steps(source: Family, steps: &[Step]) -> Family {
    steps.iter().fold(source, |f, s| match s {
        Step::Cast(c) => cast_family(*c),
        // A value map, a split or a text step produces what the file says: not judged.
        Step::Map(_) | Step::Split { .. } => Family::Other,
        Step::Multiply(_) | Step::Divide(_) | Step::Round(_) => Family::Numeric,
        _ => f,
    })
}

/// Can a value of family `from` be written to a column of family `to`?
pub fn compatible(from: Family, to: Family) -> bool {
    use Family::*;
    match (from, to) {
        (Other, _) | (_, Other) | (Text, _) | (_, Text) => true,
        (a, b) if a == b => true,
        (Bool, Numeric) | (Numeric, Bool) => true,
        (Date, Timestamp) => true,
        (Json, _) | (_, Json) => false,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_both_dialects() {
        assert_eq!(family("tinyint(1)"), Family::Bool);
        assert_eq!(family("tinyint(4)"), Family::Numeric);
        assert_eq!(family("bigint(20) unsigned"), Family::Numeric);
        assert_eq!(family("numeric(18,4)"), Family::Numeric);
        assert_eq!(family("character varying(20)"), Family::Text);
        assert_eq!(family("timestamp with time zone"), Family::Timestamp);
        assert_eq!(family("datetime(6)"), Family::Timestamp);
        assert_eq!(family("time without time zone"), Family::Time);
        assert_eq!(family("enum('a','b')"), Family::Text);
        assert_eq!(family("bytea"), Family::Bytes);
        assert_eq!(family("integer[]"), Family::Other);
        assert_eq!(family("tsvector"), Family::Other);
    }

    #[test]
    fn what_can_never_work_is_refused() {
        assert!(!compatible(Family::Date, Family::Numeric));
        assert!(!compatible(Family::Bytes, Family::Numeric));
        assert!(!compatible(Family::Numeric, Family::Uuid));
        assert!(!compatible(Family::Timestamp, Family::Date));
        assert!(compatible(Family::Date, Family::Timestamp));
        assert!(compatible(Family::Bool, Family::Numeric));
        assert!(compatible(Family::Uuid, Family::Text));
        assert!(compatible(Family::Text, Family::Uuid));
        assert!(compatible(Family::Other, Family::Date));
        assert_eq!(
            after_steps(Family::Timestamp, &[Step::Cast(CastTo::Date)]),
            Family::Date
        );
        assert_eq!(
            after_steps(Family::Numeric, &[Step::Round(2)]),
            Family::Numeric
        );
    }
}
