//! Reports and their formats: the probe report (`model`), rendered as a table, JSON or
//! Markdown into any `io::Write`; the renderers of `load` and `--routes-file` reports sit
//! beside them; `redact` keeps secrets out of all of them.

pub mod app;
pub mod json;
pub mod load;
pub mod markdown;
mod model;
pub mod redact;
pub mod routes;
pub mod table;

pub use model::{
    AppView, Choice, DEFAULT_WIDTH, Format, ProbeView, Report, SCHEMA_VERSION, Style, TargetView,
    Tool, Verdict, format_ms, now_utc,
};

/// Writes `report` in `format`.
pub fn render(
    report: &Report,
    format: Format,
    style: &Style,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Table => table::render(report, style, out),
        Format::Json => json::write(report, out),
        Format::Markdown => markdown::render(report, out),
    }
}
