//! MySQL/MariaDB source: the row binlog, read as a replica.
//!
//! Setup checks `log_bin`, `binlog_format=ROW`, `binlog_row_image=FULL` and
//! `binlog_row_metadata=FULL` (column names, keys, ENUM/SET names come from the table map
//! events, so they stay right across ALTER TABLE), each with the fix when it is wrong. Text
//! is decoded by each column's character set from the same metadata ([`Charset`]): exact, or
//! refused for that row.
//!
//! Progress tracking: a position is the GTID state after a committed event group plus the binlog
//! file and end offset of its commit event. On MariaDB the stream resumes by GTID
//! (`@slave_connect_state`), so a rotated binlog does not matter; on MySQL (no MariaDB GTIDs) it
//! resumes by file and offset. Nothing is acknowledged to the server: the binlog is kept by the
//! server's own retention, and a checkpoint whose binlog was purged stops the flow with a
//! resync hint instead of silently restarting from "now".

mod charset;
mod decode;
pub mod gtid;
mod rows;
mod setup;
mod stream;

pub use charset::{charset_name, Charset};
pub use decode::{bit_text, value as decode_value, ColumnInfo};
pub use setup::{current_position, verify_settings, Flavor};
pub use stream::MysqlSource;
