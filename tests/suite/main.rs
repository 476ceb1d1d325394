//! wscheck's integration tests, one binary: the prober against scripted and real peers on
//! loopback (reached through `--connect-to`), rcgen certificates made at test time.

mod answers;
mod browser;
mod cli;
mod conformance;
mod deep;
mod demo;
mod diagnoses;
mod faults;
mod load;
mod output;
mod preflight;
mod protocols;
mod readme;
mod regressions;
mod standin;
mod support;
