//! rowbridge: change-data-capture between a PostgreSQL CRM and a MySQL/MariaDB ERP.
//!
//! Data flows source -> mapping -> sink inside one [`pipeline::Flow`] per endpoint pair; the
//! [`store`] keeps checkpoints and dead letters. See DESIGN.md for the contracts between parts.

pub mod admin;
pub mod board;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod position;
pub mod sink;
pub mod source;
pub mod store;
pub mod tls;
pub mod verify;

pub use config::Config;
pub use error::{Error, ErrorClass, Result};
