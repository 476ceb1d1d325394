//! The default output: a table, one row per URL, then each distinct failure explained once,
//! what reached the app, and the verdict.

use std::io::Write;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};

use super::model::{AppView, ProbeView, Report, Style, format_ms};
use crate::deep::{DeepReport, HoldResult, InstancesResult, Kind, LatencyResult, SizesResult};

fn http_cell(probe: &ProbeView) -> String {
    probe
        .http_status
        .map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// The table of probes (also used by the demo and the Markdown renderer's sibling).
pub fn probe_table(report: &Report, style: &Style) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(["URL", "Result", "Stage", "HTTP", "Time", "Code"]);
    if style.colour {
        table.enforce_styling();
    }
    for probe in &report.probes {
        let mut result = Cell::new(probe.result_word());
        if style.colour {
            result = result.fg(if probe.result.ok {
                Color::Green
            } else {
                Color::Red
            });
        }
        table.add_row(vec![
            Cell::new(&probe.result.candidate.url),
            result,
            Cell::new(probe.result.stage.as_str()),
            Cell::new(http_cell(probe)),
            Cell::new(format_ms(probe.result.timings.total)),
            Cell::new(probe.diagnosis.code.as_str()),
        ]);
    }
    table
}

pub fn render(report: &Report, style: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "wscheck {} · {} · {} URL{} · {}",
        report.tool.version,
        report.target.input,
        report.probes.len(),
        if report.probes.len() == 1 { "" } else { "s" },
        report.generated_at
    )?;
    writeln!(out, "{}", probe_table(report, style))?;
    render_why(report, out)?;
    if let Some(app) = &report.app {
        render_app(app, out)?;
    }
    if let Some(deep) = &report.deep {
        render_deep(deep, out)?;
    }
    for note in &report.notes {
        writeln!(out, "\nNote: {note}")?;
    }
    if style.verbose {
        render_handshakes(report, out)?;
    }
    writeln!(
        out,
        "\nVerdict: {}{}",
        if report.verdict.ok { "" } else { "FAIL — " },
        report.verdict.summary
    )
}

/// Each distinct failure once: where it was seen, who answered, the detail and the fix.
fn render_why(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let failures = report.failures();
    if failures.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nWhy:")?;
    for (code, probes) in &failures {
        let first = probes[0];
        writeln!(out, "  {} — {}", code.as_str(), code.summary())?;
        let urls: Vec<&str> = probes
            .iter()
            .map(|p| p.result.candidate.url.as_str())
            .collect();
        writeln!(out, "    seen at:  {}", urls.join(", "))?;
        writeln!(
            out,
            "    answered: {}",
            first.diagnosis.answered_by.describe()
        )?;
        if !first.diagnosis.detail.is_empty() {
            writeln!(out, "    detail:   {}", first.diagnosis.detail)?;
        }
        writeln!(out, "    fix:      {}", code.fix())?;
    }
    Ok(())
}

fn render_app(app: &AppView, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "\nWhat reached the app (via {}):", app.via_url)?;
    writeln!(
        out,
        "  app {} · instance {} · $PORT {} · connection from {}",
        app.application_name
            .as_deref()
            .unwrap_or("(no VCAP_APPLICATION)"),
        app.instance_index.as_deref().unwrap_or("-"),
        app.port.as_deref().unwrap_or("-"),
        app.peer
    )?;
    for header in &app.forwarded_headers {
        writeln!(out, "  {}: {}", header.name, header.value)?;
    }
    for who in &app.added_by {
        writeln!(out, "  added by: {who}")?;
    }
    Ok(())
}

/// `-v`: each handshake as sent and answered (already redacted).
fn render_handshakes(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "\nHandshakes:")?;
    for probe in report
        .probes
        .iter()
        .filter(|p| !p.result.request.is_empty())
    {
        writeln!(out, "  {}", probe.result.candidate.url)?;
        for line in &probe.result.request {
            writeln!(out, "    > {line}")?;
        }
        if let Some(response) = &probe.result.response {
            writeln!(
                out,
                "    < HTTP/1.1 {} {}",
                response.status, response.reason
            )?;
            for (name, value) in &response.headers {
                writeln!(out, "    < {name}: {value}")?;
            }
            for line in response.body.lines().take(20) {
                writeln!(out, "    < {line}")?;
            }
        }
    }
    Ok(())
}

/// The deep-check section (the Markdown report embeds it as a text block).
pub fn render_deep(deep: &DeepReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "\nDeep checks over {}:", deep.url)?;
    if let Some(hold) = &deep.hold {
        render_hold(hold, out)?;
    }
    if let Some(sizes) = &deep.sizes {
        render_sizes(sizes, out)?;
    }
    if let Some(latency) = &deep.latency {
        render_latency(latency, out)?;
    }
    if let Some(instances) = &deep.instances {
        render_instances(instances, out)?;
    }
    for finding in &deep.findings {
        writeln!(out, "  {} — {}", finding.code.as_str(), finding.summary)?;
        writeln!(out, "    detail: {}", finding.detail)?;
        writeln!(out, "    fix:    {}", finding.fix)?;
    }
    Ok(())
}

fn render_hold(hold: &HoldResult, out: &mut dyn Write) -> std::io::Result<()> {
    let requested = hold.requested_ms / 1000.0;
    match (&hold.error, &hold.cut) {
        (Some(error), _) => writeln!(out, "  idle hold: {error}"),
        (None, Some(cut)) => writeln!(
            out,
            "  idle hold: cut after {:.1} s of {requested:.0} s ({}{}); server pings seen: {}; ping every {} s or more often",
            cut.after_ms / 1000.0,
            cut.how,
            cut.close_code.map(|c| format!(" {c}")).unwrap_or_default(),
            hold.server_pings,
            hold.recommended_ping_interval_s.unwrap_or(1)
        ),
        (None, None) => match hold.ping_interval_ms {
            Some(every) => writeln!(
                out,
                "  idle hold: survived {requested:.0} s with a ping every {:.1} s ({} pings, {} pongs)",
                every / 1000.0,
                hold.pings_sent,
                hold.pongs_received
            ),
            None => writeln!(
                out,
                "  idle hold: survived {requested:.0} s idle (server pings seen: {})",
                hold.server_pings
            ),
        },
    }
}

fn render_sizes(sizes: &SizesResult, out: &mut dyn Write) -> std::io::Result<()> {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_header(["Size", "Text", "Binary"]);
    let mut seen = Vec::new();
    for r in &sizes.results {
        if seen.contains(&r.size) {
            continue;
        }
        seen.push(r.size);
        let cell = |kind| {
            sizes
                .results
                .iter()
                .find(|x| x.size == r.size && x.kind == kind)
                .map(|x| match x.rtt_ms {
                    Some(rtt) => format!("ok ({})", format_ms(rtt)),
                    None => x.outcome.clone(),
                })
                .unwrap_or_default()
        };
        table.add_row(vec![
            bytesize::ByteSize(r.size as u64).to_string(),
            cell(Kind::Text),
            cell(Kind::Binary),
        ]);
    }
    writeln!(
        out,
        "  message sizes (largest that passed: {}):",
        sizes.largest_ok.map_or_else(
            || "none".to_owned(),
            |b| bytesize::ByteSize(b as u64).to_string()
        )
    )?;
    for line in table.to_string().lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn render_latency(latency: &LatencyResult, out: &mut dyn Write) -> std::io::Result<()> {
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"));
    writeln!(
        out,
        "  latency: {} of {} round trips · min {} · median {} · p99 {} · max {}",
        latency.completed,
        latency.requested,
        f(latency.min_ms),
        f(latency.median_ms),
        f(latency.p99_ms),
        f(latency.max_ms)
    )?;
    let s = &latency.setup_ms;
    writeln!(
        out,
        "  set-up: dns {} · connect {} · tls {} · upgrade {}",
        f(s.dns),
        f(s.connect),
        f(s.tls),
        f(s.upgrade)
    )?;
    if let Some(error) = &latency.error {
        writeln!(out, "  latency stopped: {error}")?;
    }
    Ok(())
}

fn render_instances(instances: &InstancesResult, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "  instances: {} of {} connections opened",
        instances.opened, instances.requested
    )?;
    for i in &instances.instances {
        writeln!(
            out,
            "    instance {} ({}): {} connection{}",
            i.index.as_deref().unwrap_or("-"),
            i.guid.as_deref().unwrap_or("CF_INSTANCE_GUID not set"),
            i.connections,
            if i.connections == 1 { "" } else { "s" }
        )?;
    }
    if instances.unknown_instance > 0 {
        writeln!(
            out,
            "    {} connections to a peer that does not tell its instance (not wscheck-server)",
            instances.unknown_instance
        )?;
    }
    for f in &instances.failures {
        writeln!(
            out,
            "    failed: {} × {} — {}",
            f.connections,
            f.code.as_str(),
            f.detail
        )?;
    }
    if let Some(target) = &instances.targeted {
        writeln!(out, "    targeted with X-Cf-App-Instance: {target}")?;
    }
    writeln!(out, "    {}", instances.explanation)
}
