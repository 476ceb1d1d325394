//! wscheck's integration tests, one binary: the prober against scripted and real peers on
//! loopback (reached through `--connect-to`), rcgen certificates made at test time.

mod answers;
mod browser;
mod cli;
mod completions;
mod conformance;
mod deep;
mod demo;
mod diagnoses;
mod faults;
mod internal;
mod load;
mod output;
mod preflight;
mod protocols;
mod readme;
mod regressions;
mod schemas;
mod standin;
mod support;
