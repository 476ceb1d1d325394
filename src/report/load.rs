//! The `wscheck load` report as text: a few labelled lines, as a table or as a Markdown
//! list (JSON goes through the one JSON writer).

use std::io::Write;

use super::json;
use super::model::Format;
use crate::load::{ConnectionsView, LoadReport, SettingsView};

/// Writes a load report in `format`.
pub fn render(report: &LoadReport, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    if format == Format::Json {
        return json::write(report, out);
    }
    let md = format == Format::Markdown;
    if md {
        writeln!(out, "### Load test of `{}`\n", report.url)?;
    } else {
        writeln!(
            out,
            "wscheck load · {} · {}",
            report.url, report.generated_at
        )?;
    }
    for (label, value) in lines(report) {
        if md {
            writeln!(out, "- **{label}:** {value}")?;
        } else {
            writeln!(out, "  {label:<12} {value}")?;
        }
    }
    Ok(())
}

/// The report's lines, label and text.
fn lines(report: &LoadReport) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        ("settings", settings(&report.settings)),
        ("connections", connections(&report.connections)),
    ];
    let m = &report.messages;
    lines.push((
        "messages",
        format!(
            "{} echoed ({:.0}/s), {} bytes verified; lost {}, out of order {}, mismatched {}",
            m.echoed, m.per_second, m.bytes_verified, m.lost, m.out_of_order, m.mismatched
        ),
    ));
    if let Some(l) = &report.latency_us {
        lines.push((
            "latency",
            format!(
                "min {} µs · p50 {} · p90 {} · p99 {} · p99.9 {} · max {} µs",
                l.min, l.p50, l.p90, l.p99, l.p999, l.max
            ),
        ));
    }
    if !report.errors.is_empty() {
        let errors: Vec<String> = report
            .errors
            .iter()
            .map(|(k, v)| format!("{k} × {v}"))
            .collect();
        lines.push(("errors", errors.join(", ")));
    }
    if let Some(cpu) = report.cpu_seconds {
        let per_message = report
            .cpu_us_per_message
            .map(|us| format!(", {us:.2} µs per message sent"))
            .unwrap_or_default();
        lines.push((
            "generator",
            format!("{cpu:.2} s CPU in this process{per_message}"),
        ));
    }
    let result = if report.ok {
        "ok: every connection opened, every echo intact and in order"
    } else {
        "FAIL"
    };
    lines.push(("result", result.to_owned()));
    lines
}

fn settings(s: &SettingsView) -> String {
    let rate = match s.rate {
        None if s.in_flight == 1 => "closed loop (one message in flight per connection)".to_owned(),
        None => format!(
            "closed loop ({} messages in flight per connection)",
            s.in_flight
        ),
        Some(0.0) => "idle (connections held, no messages)".to_owned(),
        Some(r) => format!("{r} msgs/s in total"),
    };
    format!(
        "{} connections · {} B messages · {rate} · {:.0} s (+{:.0} s ramp-up, {:.0} s warm-up)",
        s.connections,
        s.size,
        s.duration_ms / 1000.0,
        s.ramp_up_ms / 1000.0,
        s.warmup_ms / 1000.0
    )
}

fn connections(c: &ConnectionsView) -> String {
    let mut text = format!("{} of {} opened", c.opened, c.requested);
    if c.dropped > 0 {
        text.push_str(&format!(", {} dropped during the run", c.dropped));
    }
    for f in &c.failed {
        text.push_str(&format!(
            "; {} failed: {} ({})",
            f.connections,
            f.code.as_str(),
            f.detail
        ));
    }
    text
}
