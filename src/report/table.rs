//! The default output, laid out for the terminal's width: the route once in the header
//! line, one table row per `scheme[:port]`, then each distinct failure explained once, what
//! reached the app, the deep checks and the verdict, wrapped with hanging indents.

use std::io::Write;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};

use super::model::{AppView, ProbeView, Report, Style, format_ms};
use crate::deep::{DeepReport, HoldResult, InstancesResult, Kind, LatencyResult, SizesResult};
use crate::plan::Candidate;

/// A row's name: `wss`, `wss:443`, `ws:8080`. Every URL of a report shares the route (host
/// and path), which the header line names once, so the table stays narrow however long
/// the route's name is.
pub fn label(candidate: &Candidate) -> String {
    match candidate.explicit_port {
        Some(port) => format!("{}:{port}", candidate.scheme.as_str()),
        None => candidate.scheme.as_str().to_owned(),
    }
}

/// The columns of the probe table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Url,
    Result,
    Stage,
    Http,
    Time,
    Code,
}

const COLUMNS: [Column; 6] = [
    Column::Url,
    Column::Result,
    Column::Stage,
    Column::Http,
    Column::Time,
    Column::Code,
];

/// The columns a table too wide for the terminal gives up, first to last: the time (the
/// JSON has every stage's), then the stage and the HTTP status (the code and the Why
/// section say where and how it failed). URL, result and code always stay.
const DROP_ORDER: [Column; 3] = [Column::Time, Column::Stage, Column::Http];

impl Column {
    fn title(self) -> &'static str {
        match self {
            Column::Url => "URL",
            Column::Result => "Result",
            Column::Stage => "Stage",
            Column::Http => "HTTP",
            Column::Time => "Time",
            Column::Code => "Code",
        }
    }

    fn cell(self, probe: &ProbeView, style: &Style) -> Cell {
        match self {
            Column::Url => Cell::new(label(&probe.result.candidate)),
            Column::Result if style.colour => {
                Cell::new(probe.result_word()).fg(if probe.result.ok {
                    Color::Green
                } else {
                    Color::Red
                })
            }
            Column::Result => Cell::new(probe.result_word()),
            Column::Stage => Cell::new(probe.result.stage.as_str()),
            Column::Http => Cell::new(
                probe
                    .http_status
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            ),
            Column::Time => Cell::new(format_ms(probe.result.timings.total)),
            Column::Code => Cell::new(probe.diagnosis.code.as_str()),
        }
    }
}

/// The table of probes, as wide as its content allows within `style.width`: columns are
/// dropped (see [`DROP_ORDER`]) until it fits; below even that, cells wrap.
pub fn probe_table(report: &Report, style: &Style) -> Table {
    let mut shown = COLUMNS.to_vec();
    let mut table = table_of(report, style, &shown);
    for column in DROP_ORDER {
        if fits(&table, style.width) {
            return table;
        }
        shown.retain(|c| *c != column);
        table = table_of(report, style, &shown);
    }
    if !fits(&table, style.width) {
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(u16::try_from(style.width).unwrap_or(u16::MAX));
    }
    table
}

fn table_of(report: &Report, style: &Style, columns: &[Column]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(columns.iter().map(|c| c.title()));
    if style.colour {
        table.enforce_styling();
    }
    for probe in &report.probes {
        table.add_row(columns.iter().map(|c| c.cell(probe, style)));
    }
    table
}

/// Every line of a table is as wide as its top border, which carries no colour codes.
fn fits(table: &Table, width: usize) -> bool {
    table
        .lines()
        .next()
        .is_none_or(|line| line.chars().count() <= width)
}

/// Lays `words` out after `prefix`, joined by `sep`, in lines of at most `width` characters
/// (counted as chars: the report's text is ASCII but for `·`, `—` and names), continuation
/// lines indented by `indent`, so that the terminal never wraps a line itself and breaks
/// the hanging indent. A word that does not fit at the indent gets a line of its own, moved
/// left so that it still ends within the width. A single word longer than the whole width
/// (a long URL, a certificate name) is not broken, since breaking it would break copying
/// it: it stands alone at column 0 and overflows.
pub fn wrap<'a>(
    prefix: &str,
    words: impl IntoIterator<Item = &'a str>,
    sep: &str,
    indent: usize,
    width: usize,
) -> Vec<String> {
    let len = |s: &str| s.chars().count();
    let mut lines = Vec::new();
    let mut line = prefix.to_owned();
    let mut has_word = false;
    for word in words {
        let gap = if has_word { len(sep) } else { 0 };
        if len(&line) + gap + len(word) <= width {
            if has_word {
                line.push_str(sep);
            }
            line.push_str(word);
        } else {
            if !line.trim().is_empty() {
                lines.push(line.trim_end().to_owned());
            }
            let pad = if indent + len(word) <= width {
                indent
            } else {
                width.saturating_sub(len(word))
            };
            line = format!("{}{word}", " ".repeat(pad));
        }
        has_word = true;
    }
    if !line.trim().is_empty() || lines.is_empty() {
        lines.push(line.trim_end().to_owned());
    }
    lines
}

/// Writes `text` after `prefix`, word-wrapped at `width` with a hanging `indent`.
pub(super) fn put(
    out: &mut dyn Write,
    prefix: &str,
    text: &str,
    indent: usize,
    width: usize,
) -> std::io::Result<()> {
    let words = glued_words(text);
    for line in wrap(prefix, words.iter().map(String::as_str), " ", indent, width) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The words of `text`, a separator (`·`, `—`) glued to the word before it, so that a
/// line ends with the separator rather than the next one starting with it.
fn glued_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match words.last_mut() {
            Some(last) if word == "·" || word == "—" => {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_owned()),
        }
    }
    words
}

pub fn render(report: &Report, style: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let width = style.width;
    let count = report.probes.len();
    let segments = [
        format!("wscheck {}", report.tool.version),
        route(report),
        format!("{count} URL{}", if count == 1 { "" } else { "s" }),
        report.generated_at.clone(),
    ];
    for line in wrap("", segments.iter().map(String::as_str), " · ", 2, width) {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "{}", probe_table(report, style))?;
    render_why(report, width, out)?;
    if let Some(app) = &report.app {
        render_app(report, app, width, out)?;
    }
    if let Some(deep) = &report.deep {
        render_deep(deep, width, out)?;
    }
    for note in &report.notes {
        writeln!(out)?;
        put(out, "Note: ", note, 6, width)?;
    }
    if style.verbose {
        render_handshakes(report, out)?;
    }
    writeln!(out)?;
    let verdict = format!(
        "{}{}",
        if report.verdict.ok { "" } else { "FAIL — " },
        report.verdict.summary
    );
    put(out, "Verdict: ", &verdict, 9, width)
}

/// The route as the header line names it: host and path, a lone `/` left out.
fn route(report: &Report) -> String {
    match report.target.path.as_str() {
        "/" => report.target.host.clone(),
        path => format!("{}{path}", report.target.host),
    }
}

/// The row name of the probe of `url`, or the URL itself when no row has it.
fn label_of(report: &Report, url: &str) -> String {
    report
        .probes
        .iter()
        .find(|p| p.result.candidate.url == url)
        .map_or_else(|| url.to_owned(), |p| label(&p.result.candidate))
}

/// Each distinct failure once: where it was seen, who answered, the detail and the fix.
fn render_why(report: &Report, width: usize, out: &mut dyn Write) -> std::io::Result<()> {
    // Labels are 14 columns wide ("    answered: "); their text hangs under itself.
    const LABEL: usize = 14;
    let failures = report.failures();
    if failures.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nWhy:")?;
    for (code, probes) in &failures {
        let first = probes[0];
        let headline = format!("{} — {}", code.as_str(), code.summary());
        put(out, "  ", &headline, 4, width)?;
        let seen: Vec<String> = probes.iter().map(|p| label(&p.result.candidate)).collect();
        put(out, "    seen at:  ", &seen.join(", "), LABEL, width)?;
        let answered = first.diagnosis.answered_by.describe();
        put(out, "    answered: ", answered, LABEL, width)?;
        if !first.diagnosis.detail.is_empty() {
            put(out, "    detail:   ", &first.diagnosis.detail, LABEL, width)?;
        }
        put(out, "    fix:      ", code.fix(), LABEL, width)?;
    }
    Ok(())
}

fn render_app(
    report: &Report,
    app: &AppView,
    width: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out)?;
    let via = label_of(report, &app.via_url);
    put(
        out,
        "",
        &format!("What reached the app (via {via}):"),
        2,
        width,
    )?;
    let who = format!(
        "app {} · instance {} · $PORT {} · connection from {}",
        app.application_name
            .as_deref()
            .unwrap_or("(no VCAP_APPLICATION)"),
        app.instance_index.as_deref().unwrap_or("-"),
        app.port.as_deref().unwrap_or("-"),
        app.peer
    );
    put(out, "  ", &who, 4, width)?;
    for header in &app.forwarded_headers {
        put(
            out,
            "  ",
            &format!("{}: {}", header.name, header.value),
            4,
            width,
        )?;
    }
    for who in &app.added_by {
        put(out, "  added by: ", who, 12, width)?;
    }
    Ok(())
}

/// `-v`: each handshake as sent and answered (already redacted). Not wrapped: these lines
/// are protocol text, to be compared with a server's logs and copied as they are; a header
/// line broken in two would read as two headers.
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

/// The deep-check section, wrapped at `width` (the Markdown report embeds it as a text
/// block, at the default width).
pub fn render_deep(deep: &DeepReport, width: usize, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out)?;
    put(
        out,
        "",
        &format!("Deep checks over {}:", deep.url),
        2,
        width,
    )?;
    if let Some(hold) = &deep.hold {
        put(out, "  idle hold: ", &hold_text(hold), 13, width)?;
    }
    if let Some(sizes) = &deep.sizes {
        render_sizes(sizes, width, out)?;
    }
    if let Some(latency) = &deep.latency {
        render_latency(latency, width, out)?;
    }
    if let Some(instances) = &deep.instances {
        render_instances(instances, width, out)?;
    }
    if let Some(polled) = &deep.polling {
        let mut line = format!(
            "{} of {} sessions completed, {} lost ({})",
            polled.completed, polled.sessions, polled.lost, polled.path
        );
        if !polled.cookies.is_empty() {
            line.push_str(&format!("; cookies set: {}", polled.cookies.join(", ")));
        }
        if let Some(error) = &polled.error {
            line.push_str(&format!("; failed: {error}"));
        }
        put(out, "  long-polling: ", &line, 16, width)?;
    }
    for finding in &deep.findings {
        let headline = format!("{} — {}", finding.code.as_str(), finding.summary);
        put(out, "  ", &headline, 4, width)?;
        put(out, "    detail: ", &finding.detail, 12, width)?;
        put(out, "    fix:    ", finding.fix, 12, width)?;
    }
    Ok(())
}

fn hold_text(hold: &HoldResult) -> String {
    let requested = hold.requested_ms / 1000.0;
    match (&hold.error, &hold.cut) {
        (Some(error), _) => error.clone(),
        (None, Some(cut)) => format!(
            "cut after {:.1} s of {requested:.0} s ({}{}); server pings seen: {}; ping every {} s or more often",
            cut.after_ms / 1000.0,
            cut.how,
            cut.close_code.map(|c| format!(" {c}")).unwrap_or_default(),
            hold.server_pings,
            hold.recommended_ping_interval_s.unwrap_or(1)
        ),
        (None, None) => match hold.ping_interval_ms {
            Some(every) => format!(
                "survived {requested:.0} s with a ping every {:.1} s ({} pings, {} pongs)",
                every / 1000.0,
                hold.pings_sent,
                hold.pongs_received
            ),
            None => format!(
                "survived {requested:.0} s idle (server pings seen: {})",
                hold.server_pings
            ),
        },
    }
}

fn render_sizes(sizes: &SizesResult, width: usize, out: &mut dyn Write) -> std::io::Result<()> {
    let mut table = Table::new();
    // Indented by two: the table gets the rest of the width and wraps its cells in it.
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(u16::try_from(width.saturating_sub(2)).unwrap_or(u16::MAX))
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
    let largest = sizes.largest_ok.map_or_else(
        || "none".to_owned(),
        |b| bytesize::ByteSize(b as u64).to_string(),
    );
    let headline = format!("message sizes (largest that passed: {largest}):");
    put(out, "  ", &headline, 4, width)?;
    for line in table.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn render_latency(
    latency: &LatencyResult,
    width: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"));
    let rtt = format!(
        "{} of {} round trips · min {} · median {} · p99 {} · max {}",
        latency.completed,
        latency.requested,
        f(latency.min_ms),
        f(latency.median_ms),
        f(latency.p99_ms),
        f(latency.max_ms)
    );
    put(out, "  latency: ", &rtt, 11, width)?;
    let s = &latency.setup_ms;
    let setup = format!(
        "dns {} · connect {} · tls {} · upgrade {}",
        f(s.dns),
        f(s.connect),
        f(s.tls),
        f(s.upgrade)
    );
    put(out, "  set-up: ", &setup, 10, width)?;
    if let Some(error) = &latency.error {
        put(out, "  latency stopped: ", error, 4, width)?;
    }
    Ok(())
}

fn render_instances(
    instances: &InstancesResult,
    width: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let opened = format!(
        "{} of {} connections opened",
        instances.opened, instances.requested
    );
    put(out, "  instances: ", &opened, 13, width)?;
    for i in &instances.instances {
        let line = format!(
            "instance {} ({}): {} connection{}",
            i.index.as_deref().unwrap_or("-"),
            i.guid.as_deref().unwrap_or("CF_INSTANCE_GUID not set"),
            i.connections,
            if i.connections == 1 { "" } else { "s" }
        );
        put(out, "    ", &line, 6, width)?;
    }
    if instances.unknown_instance > 0 {
        let line = format!(
            "{} connections to a peer that does not tell its instance (not wscheck-server)",
            instances.unknown_instance
        );
        put(out, "    ", &line, 6, width)?;
    }
    for f in &instances.failures {
        let line = format!("{} × {} — {}", f.connections, f.code.as_str(), f.detail);
        put(out, "    failed: ", &line, 12, width)?;
    }
    if let Some(target) = &instances.targeted {
        put(
            out,
            "    targeted with X-Cf-App-Instance: ",
            target,
            6,
            width,
        )?;
    }
    put(out, "    ", instances.explanation, 6, width)
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrapping_keeps_within_the_width_with_a_hanging_indent() {
        let text = "Use the port-less URL: CF routes take only 443 (wss://) and 80 (ws://).";
        assert_eq!(
            wrap("    fix:      ", text.split(' '), " ", 14, 40),
            [
                "    fix:      Use the port-less URL: CF",
                "              routes take only 443",
                "              (wss://) and 80 (ws://).",
            ]
        );
    }

    #[test]
    fn a_word_longer_than_the_room_moves_left_and_only_a_longer_one_overflows() {
        let fits_the_width = "x".repeat(18);
        let too_long = "y".repeat(25);
        let words = ["a", fits_the_width.as_str(), too_long.as_str(), "b"];
        assert_eq!(
            wrap("Verdict: ", words, " ", 9, 20),
            [
                "Verdict: a".to_owned(),
                format!("  {fits_the_width}"),
                too_long.clone(),
                "         b".to_owned(),
            ]
        );
        assert_eq!(wrap("Note: ", [], " ", 6, 20), ["Note:"]);
    }
}
