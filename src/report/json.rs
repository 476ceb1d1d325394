//! JSON output: any report (probe, load, routes) as one pretty-printed document, the
//! contract of `SCHEMA_VERSION`.

use std::io::Write;

use serde::Serialize;

/// Writes `value` as one JSON document and a newline.
pub fn write<T: Serialize>(value: &T, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}
