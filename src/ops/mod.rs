//! Operating staticlet: the local status API, metrics, readiness, systemd notification.

pub mod memory;
pub mod metrics;
pub mod readiness;
pub mod server;
pub mod table;
pub mod view;
pub mod watchdog;
