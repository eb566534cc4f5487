//! The one integration test binary: real PostgreSQL 15 and MariaDB started by `support`.

mod support;

#[path = "scenarios/crm_to_erp.rs"]
mod crm_to_erp;

#[path = "scenarios/crm_to_erp_types.rs"]
mod crm_to_erp_types;

#[path = "scenarios/sink_exact.rs"]
mod sink_exact;

#[path = "scenarios/config_errors.rs"]
mod config_errors;

#[path = "scenarios/erp_to_crm.rs"]
mod erp_to_crm;

#[path = "scenarios/erp_to_crm_types.rs"]
mod erp_to_crm_types;

#[path = "scenarios/flows.rs"]
mod flows;

#[path = "scenarios/bidirectional.rs"]
mod bidirectional;

#[path = "scenarios/conflicts.rs"]
mod conflicts;

#[path = "scenarios/ops.rs"]
mod ops;

#[path = "scenarios/resync.rs"]
mod resync;

#[path = "scenarios/network.rs"]
mod network;

#[path = "scenarios/tls.rs"]
mod tls;

#[path = "scenarios/lifecycle.rs"]
mod lifecycle;

#[path = "scenarios/privileges.rs"]
mod privileges;

#[path = "scenarios/service.rs"]
mod service;

#[path = "scenarios/echo_ownership.rs"]
mod echo_ownership;

#[path = "scenarios/source_exact.rs"]
mod source_exact;

#[path = "scenarios/recovery.rs"]
mod recovery;

#[path = "scenarios/store_full.rs"]
mod store_full;

#[path = "scenarios/ops_safety.rs"]
mod ops_safety;
