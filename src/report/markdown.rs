//! `--format markdown`: a block to paste into a support ticket (version, UTC time, the
//! command line, the options that change the network path, target, table, explanations,
//! identical handshakes once); everything already redacted by `Report::build`.

use std::io::Write;

use super::model::{AppView, DEFAULT_WIDTH, ProbeView, Report, format_ms};

/// Escapes what would break a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `text` as inline code; with a backtick inside, fenced by two (CommonMark).
fn code(text: &str) -> String {
    let text = text.replace('\n', " ");
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

pub fn render(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "### WebSocket check: `{}`\n", report.target.input)?;
    writeln!(out, "- **Tool:** wscheck {}", report.tool.version)?;
    writeln!(out, "- **Time (UTC):** {}", report.generated_at)?;
    if let Some(command) = &report.command {
        writeln!(out, "- **Command:** {}", code(command))?;
    }
    writeln!(
        out,
        "- **Target:** `{}` (host `{}`, path `{}`)",
        report.target.input, report.target.host, report.target.path
    )?;
    let path_options = if report.path_options.is_empty() {
        "none (DNS, direct connections, built-in CA roots)".to_owned()
    } else {
        let options: Vec<String> = report.path_options.iter().map(|o| code(o)).collect();
        options.join(", ")
    };
    writeln!(out, "- **Network path options:** {path_options}")?;
    writeln!(
        out,
        "- **Verdict:** {} {}\n",
        if report.verdict.ok { "✅" } else { "❌" },
        cell(&report.verdict.summary)
    )?;
    writeln!(out, "| URL | Result | Stage | HTTP | Time | Code |")?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for probe in &report.probes {
        writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | `{}` |",
            cell(&probe.result.candidate.url),
            probe.result_word(),
            probe.result.stage.as_str(),
            probe
                .http_status
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            format_ms(probe.result.timings.total),
            probe.diagnosis.code.as_str()
        )?;
    }
    render_why(report, out)?;
    if let Some(app) = &report.app {
        render_app(app, out)?;
    }
    if let Some(deep) = &report.deep {
        writeln!(out, "\n#### Deep checks (over `{}`)\n\n```text", deep.url)?;
        let mut text = Vec::new();
        super::table::render_deep(deep, DEFAULT_WIDTH, &mut text)?;
        out.write_all(&text)?;
        writeln!(out, "```")?;
    }
    for note in &report.notes {
        writeln!(out, "\n> {note}")?;
    }
    render_handshakes(report, out)
}

/// Each distinct failure once, as a list.
fn render_why(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let failures = report.failures();
    if !failures.is_empty() {
        writeln!(out, "\n#### Why\n")?;
        for (code, probes) in &failures {
            let first = probes[0];
            let urls: Vec<String> = probes
                .iter()
                .map(|p| format!("`{}`", p.result.candidate.url))
                .collect();
            writeln!(out, "- **`{}`** — {}", code.as_str(), code.summary())?;
            writeln!(out, "  - seen at: {}", urls.join(", "))?;
            writeln!(
                out,
                "  - answered by: {}",
                first.diagnosis.answered_by.describe()
            )?;
            if !first.diagnosis.detail.is_empty() {
                writeln!(out, "  - detail: {}", cell(&first.diagnosis.detail))?;
            }
            writeln!(out, "  - fix: {}", code.fix())?;
        }
    }
    Ok(())
}

fn render_app(app: &AppView, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "\n#### What reached the app (via `{}`)\n", app.via_url)?;
    writeln!(
        out,
        "- app `{}`, instance `{}`, `$PORT` `{}`, connection from `{}`",
        app.application_name.as_deref().unwrap_or("-"),
        app.instance_index.as_deref().unwrap_or("-"),
        app.port.as_deref().unwrap_or("-"),
        app.peer
    )?;
    for header in &app.forwarded_headers {
        writeln!(out, "- `{}: {}`", header.name, header.value)?;
    }
    for who in &app.added_by {
        writeln!(out, "- added by: {who}")?;
    }
    Ok(())
}

/// Headers whose values differ on every handshake by design, so two handshakes are the
/// same when all else is equal: the key and its accept hash (random per request), and the
/// date-like headers (the clock).
const VOLATILE: [&str; 6] = [
    "sec-websocket-key",
    "sec-websocket-accept",
    "date",
    "expires",
    "last-modified",
    "x-request-start",
];

/// Request ids that routers add to every request (gorouter's `X-Vcap-Request-Id`, the
/// approuter's `x-correlationid`, tracing headers). They differ on every handshake too, so
/// they do not keep handshakes apart; but support looks requests up in the router's logs
/// by them, so a group lists each URL's value.
const REQUEST_IDS: [&str; 7] = [
    "x-vcap-request-id",
    "x-request-id",
    "x-correlation-id",
    "x-correlationid",
    "traceparent",
    "x-b3-traceid",
    "x-b3-spanid",
];

/// The name of a `Name: value` head line, lower-case; `None` for the request line.
fn header_name(line: &str) -> Option<String> {
    let (name, _) = line.split_once(':')?;
    (!name.is_empty() && !name.contains(' ')).then(|| name.trim().to_ascii_lowercase())
}

/// A probe's handshake as shown: the request head, then (when answered) the response's
/// status line and headers.
fn handshake_lines(probe: &ProbeView) -> Vec<String> {
    let mut lines = probe.result.request.clone();
    if let Some(response) = &probe.result.response {
        lines.push(String::new());
        lines.push(format!("HTTP/1.1 {} {}", response.status, response.reason));
        lines.extend(response.headers.iter().map(|(n, v)| format!("{n}: {v}")));
    }
    lines
}

/// What two handshakes are compared by: their lines, with the values of [`VOLATILE`] and
/// [`REQUEST_IDS`] headers blanked.
fn comparable(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| match header_name(line) {
            Some(name)
                if VOLATILE.contains(&name.as_str()) || REQUEST_IDS.contains(&name.as_str()) =>
            {
                format!("{name}:")
            }
            _ => line.clone(),
        })
        .collect()
}

/// The probes with a handshake, grouped by identical handshakes, in first-seen order.
fn handshake_groups(report: &Report) -> Vec<Vec<&ProbeView>> {
    let mut groups: Vec<(Vec<String>, Vec<&ProbeView>)> = Vec::new();
    for probe in report
        .probes
        .iter()
        .filter(|p| !p.result.request.is_empty())
    {
        let key = comparable(&handshake_lines(probe));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(probe),
            None => groups.push((key, vec![probe])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// The handshakes, folded away; identical ones (see [`comparable`]) once, headed by every
/// URL that sent it.
fn render_handshakes(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let groups = handshake_groups(report);
    if groups.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n<details><summary>Handshakes</summary>\n")?;
    writeln!(
        out,
        "Identical handshakes are shown once, with every URL that sent them (the values of \
         `Sec-WebSocket-Key`, `Sec-WebSocket-Accept`, date-like headers and request ids \
         are not compared).\n"
    )?;
    for members in groups {
        let urls: Vec<String> = members
            .iter()
            .map(|p| code(&p.result.candidate.url))
            .collect();
        writeln!(out, "{}\n\n```http", urls.join(", "))?;
        for line in handshake_lines(members[0]) {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "```\n")?;
        render_request_ids(&members, out)?;
    }
    writeln!(out, "</details>")
}

/// Under a group of several URLs: each URL's request ids, which the block shows only for
/// the first.
fn render_request_ids(members: &[&ProbeView], out: &mut dyn Write) -> std::io::Result<()> {
    if members.len() < 2 {
        return Ok(());
    }
    let id_of = |probe: &ProbeView, name: &str| {
        handshake_lines(probe)
            .into_iter()
            .find(|l| header_name(l).as_deref() == Some(name))
            .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
    };
    for name in REQUEST_IDS {
        let ids: Vec<String> = members
            .iter()
            .filter_map(|p| {
                Some(format!(
                    "{} {}",
                    code(&p.result.candidate.url),
                    code(&id_of(p, name)?)
                ))
            })
            .collect();
        if ids.len() > 1 {
            writeln!(out, "- {} per URL: {}\n", code(name), ids.join(", "))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::comparable;

    fn handshake(host: &str, key: &str, date: &str, id: &str) -> Vec<String> {
        [
            "GET /ws HTTP/1.1",
            &format!("Host: {host}"),
            &format!("Sec-WebSocket-Key: {key}"),
            "",
            "HTTP/1.1 101 Switching Protocols",
            &format!("date: {date}"),
            "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            &format!("X-Vcap-Request-Id: {id}"),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn handshakes_compare_without_keys_dates_and_request_ids() {
        let first = handshake("h", "dGhlIHNhbXBsZSBub25jZQ==", "Mon, 01 Jan 2026", "id-1");
        let again = handshake("h", "x3JJHMbDL1EzLkh9GBhXDw==", "Tue, 02 Jan 2026", "id-2");
        let other_port = handshake(
            "h:8080",
            "dGhlIHNhbXBsZSBub25jZQ==",
            "Mon, 01 Jan 2026",
            "id-1",
        );
        assert_eq!(comparable(&first), comparable(&again));
        assert_ne!(comparable(&first), comparable(&other_port));
    }
}
