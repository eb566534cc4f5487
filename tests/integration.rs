//! The one integration test binary: real PostgreSQL 15 and MariaDB started by `support`.

mod support;

#[path = "scenarios/crm_to_erp.rs"]
mod crm_to_erp;
