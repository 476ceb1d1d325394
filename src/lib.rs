//! wscheck: finds out why a WebSocket route (on Cloud Foundry above all) does not connect.
//!
//! The pipeline is plan → probe → diagnose → report: `cli` turns flags into a validated
//! command (`cli::to_plan`), `check` probes a plan's URLs (`probe`), `diagnose` explains
//! each outcome, `report` renders; `app` is the program around them (runtime, dispatch,
//! exit codes). `deep`, `load`, `routes` and `demo` are the other modes.

pub mod app;
pub mod check;
pub mod cli;
pub mod deep;
pub mod demo;
pub mod diagnose;
pub mod error;
pub mod load;
pub mod plan;
pub mod preflight;
pub mod probe;
pub mod report;
pub mod router;
pub mod routes;

pub use app::{EXIT_ERROR, EXIT_FAILED, EXIT_OK};
pub use check::{check, check_with};
pub use error::Error;
