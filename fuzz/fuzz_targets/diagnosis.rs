//! The diagnosis, and the report built on it, over arbitrary recorded outcomes: whatever a
//! probe may have recorded (failure, stage, answer, TLS, echo, protocol, timings), the
//! diagnosis is a pure function that never panics, and the table, Markdown and JSON
//! reports render (the JSON parses back).
//!
//! Input: a small text format, so that seeds read as what they stand for and the fuzzer
//! mutates words and numbers. Lines before the first `---` set up the check (`target=`,
//! `arg=` words of its command line, `width=`, `colour=`, `verbose=`, `app.*` for what
//! reached the app); each `---` starts one probe's outcome, `key=value` a line (keys
//! below, in `outcome`); the plan's URLs take the outcomes in turn. Unknown keys and
//! values that do not parse are ignored: every input is a valid one.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use wscheck::check::recommended;
use wscheck::cli::to_plan::plan_from_argv;
use wscheck::diagnose::{FailureCount, diagnose};
use wscheck::plan::{Candidate, Plan};
use wscheck::probe::echo::{EchoInfo, PeerKind};
use wscheck::probe::protocol::ProtocolInfo;
use wscheck::probe::tls::{CertificateInfo, TlsInfo};
use wscheck::probe::upgrade::HttpResponse;
use wscheck::probe::{Failure, FailureKind, ProbeResult, Stage};
use wscheck::report::{self, AppView, Choice, Format, Report, Style};
use wscheck_server::Environment;
use wscheck_server::info::{Header, Info, RequestInfo};

/// At most this many words on the command line, and outcomes.
const MAX_ARGS: usize = 16;
const MAX_OUTCOMES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut blocks = text.split("\n---");
    let setup = blocks.next().unwrap_or_default();
    let outcomes: Vec<&str> = blocks.take(MAX_OUTCOMES).collect();
    let Some(check) = Check::read(setup) else {
        return;
    };
    let results: Vec<ProbeResult> = check
        .plan
        .candidates
        .iter()
        .enumerate()
        .map(|(i, candidate)| match outcomes.len() {
            0 => ProbeResult::new(candidate),
            n => outcome(candidate, outcomes[i % n]),
        })
        .collect();

    let mut counts = Vec::new();
    for result in &results {
        let diagnosis = diagnose(result);
        assert_eq!(
            diagnosis.code.is_ok(),
            result.failure.is_none(),
            "ok codes are for results without a failure"
        );
        assert_eq!(
            diagnosis,
            diagnose(result),
            "the diagnosis is a pure function"
        );
        FailureCount::tally(&mut counts, result);
    }

    let asked = check.plan.asked();
    let choice = Choice {
        asked,
        recommended: recommended(&results, asked),
    };
    let report = Report::build(
        &check.plan,
        results,
        choice,
        check.app,
        None,
        "2026-01-01T00:00:00Z".to_owned(),
    );
    for format in [Format::Table, Format::Markdown, Format::Json] {
        let mut out = Vec::new();
        report::render(&report, format, &check.style, &mut out).expect("rendered into memory");
        if format == Format::Json {
            serde_json::from_slice::<Value>(&out).expect("the JSON report parses");
        }
    }
});

/// The check the outcomes belong to.
struct Check {
    plan: Plan,
    style: Style,
    app: Option<AppView>,
}

impl Check {
    fn read(setup: &str) -> Option<Check> {
        let mut target = "app.example.com".to_owned();
        let mut args: Vec<String> = Vec::new();
        let mut style = Style::default();
        let mut app: Option<(String, Info)> = None;
        for (key, value) in pairs(setup) {
            if let Some(key) = key.strip_prefix("app.") {
                let (via, info) = app.get_or_insert_with(|| {
                    ("wss://app.example.com/.wscheck/ws".to_owned(), empty_info())
                });
                match key {
                    "via" => *via = value.to_owned(),
                    "header" => {
                        let (name, value) = value.split_once(':').unwrap_or((value, ""));
                        info.request.headers.push(Header {
                            name: name.to_owned(),
                            value: value.trim_start().to_owned(),
                        });
                    }
                    "line" => info.request.line = value.to_owned(),
                    "peer" => info.peer = value.to_owned(),
                    "listen_port" => info.listen_port = value.parse().unwrap_or_default(),
                    "port" => info.environment.port = Some(value.to_owned()),
                    "name" => info.environment.application_name = Some(value.to_owned()),
                    "index" => info.environment.instance_index = Some(value.to_owned()),
                    "guid" => info.environment.instance_guid = Some(value.to_owned()),
                    "uri" => info.environment.application_uris.push(value.to_owned()),
                    _ => {}
                }
                continue;
            }
            match key {
                "target" => target = value.to_owned(),
                "arg" if args.len() < MAX_ARGS => args.push(value.to_owned()),
                // COLUMNS: any positive number.
                "width" => {
                    if let Ok(width) = value.parse::<usize>() {
                        style.width = width.clamp(1, 400);
                    }
                }
                "colour" => style.colour = value == "true",
                "verbose" => style.verbose = value == "true",
                _ => {}
            }
        }
        let mut argv = vec![target.as_str()];
        argv.extend(args.iter().map(String::as_str));
        let plan = plan_from_argv(&argv).ok()?;
        Some(Check {
            plan,
            style,
            app: app.map(|(via, info)| AppView::new(via, info)),
        })
    }
}

fn empty_info() -> Info {
    Info {
        server: "wscheck-server".to_owned(),
        version: "0.1.0".to_owned(),
        uptime_ms: 0,
        request: RequestInfo {
            line: "GET /.wscheck/ws HTTP/1.1".to_owned(),
            method: "GET".to_owned(),
            target: "/.wscheck/ws".to_owned(),
            headers: Vec::new(),
        },
        peer: "10.0.0.1:40000".to_owned(),
        listen_port: 8080,
        environment: Environment::default(),
    }
}

/// The `key=value` lines of a block.
fn pairs(block: &str) -> impl Iterator<Item = (&str, &str)> {
    block
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value))
}

/// A number of milliseconds as a probe records it: finite, not negative.
fn ms(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|ms| ms.is_finite())
        .map(|ms| ms.clamp(0.0, 1e9))
}

fn flag(value: &str) -> bool {
    value.trim() == "true"
}

/// One probe's outcome for `candidate`, from a block of `key=value` lines.
fn outcome(candidate: &Candidate, block: &str) -> ProbeResult {
    let mut result = ProbeResult::new(candidate);
    let mut ok = None;
    for (key, value) in pairs(block) {
        match key {
            "ok" => ok = Some(flag(value)),
            "stage" => result.stage = stage(value).unwrap_or(result.stage),
            "failure" => {
                if let Some(kind) = failure_kind(value) {
                    let message = result.failure.take().map(|f| f.message);
                    result.failure = Some(Failure::new(kind, message.unwrap_or_default()));
                }
            }
            "message" => match &mut result.failure {
                Some(failure) => failure.message = value.to_owned(),
                None => {
                    result.failure = Some(Failure::new(FailureKind::HandshakeClosed, value));
                }
            },
            "status" | "reason" | "header" | "body" => {
                let response = result.response.get_or_insert_with(|| HttpResponse {
                    status: 0,
                    reason: String::new(),
                    headers: Vec::new(),
                    body: String::new(),
                });
                match key {
                    "status" => response.status = value.trim().parse().unwrap_or_default(),
                    "reason" => response.reason = value.to_owned(),
                    "header" => {
                        let (name, value) = value.split_once(':').unwrap_or((value, ""));
                        response
                            .headers
                            .push((name.to_owned(), value.trim_start().to_owned()));
                    }
                    _ => {
                        if !response.body.is_empty() {
                            response.body.push('\n');
                        }
                        response.body.push_str(value);
                    }
                }
            }
            "peer" => {
                result.peer = match value.trim() {
                    "wscheck_server" => PeerKind::WscheckServer,
                    "article_echo_server" => PeerKind::ArticleEchoServer,
                    _ => PeerKind::Unknown,
                }
            }
            "subprotocol" => result.subprotocol = Some(value.to_owned()),
            "held_back" => result.credentials_held_back = flag(value),
            "request" => result.request.push(value.to_owned()),
            "route.host" => result.route.host = value.to_owned(),
            "route.port" => result.route.port = value.trim().parse().unwrap_or_default(),
            "route.redirected" => result.route.redirected = flag(value),
            "route.address" => result
                .route
                .addresses
                .extend(value.trim().parse::<IpAddr>().ok()),
            "route.connected_to" => result.route.connected_to = value.trim().parse().ok(),
            "route.proxy" => result.route.proxy = Some(value.to_owned()),
            "timing.dns" => result.timings.dns = ms(value),
            "timing.connect" => result.timings.connect = ms(value),
            "timing.proxy" => result.timings.proxy = ms(value),
            "timing.tls" => result.timings.tls = ms(value),
            "timing.upgrade" => result.timings.upgrade = ms(value),
            "timing.echo" => result.timings.echo = ms(value),
            "timing.protocol" => result.timings.protocol = ms(value),
            "timing.total" => result.timings.total = ms(value).unwrap_or_default(),
            _ if key.starts_with("tls.") || key.starts_with("cert.") => {
                tls(&mut result, key, value)
            }
            _ if key.starts_with("echo.") => echo(&mut result, key, value),
            _ if key.starts_with("protocol.") => protocol(&mut result, key, value),
            _ => {}
        }
    }
    // A probe that recorded no failure passed every stage, unless the outcome says otherwise.
    result.ok = ok.unwrap_or(result.failure.is_none());
    if result.ok && ok.is_none() {
        result.stage = Stage::Done;
    }
    result
}

fn tls(result: &mut ProbeResult, key: &str, value: &str) {
    let info = result.tls.get_or_insert_with(TlsInfo::default);
    if let Some(key) = key.strip_prefix("cert.") {
        let cert = info.certificate.get_or_insert_with(|| CertificateInfo {
            subject: String::new(),
            issuer: String::new(),
            sans: Vec::new(),
            not_before: String::new(),
            not_after: String::new(),
            expires_in_days: 90,
        });
        match key {
            "subject" => cert.subject = value.to_owned(),
            "issuer" => cert.issuer = value.to_owned(),
            "san" => cert.sans.push(value.to_owned()),
            "not_before" => cert.not_before = value.to_owned(),
            "not_after" => cert.not_after = value.to_owned(),
            // As far as a certificate's dates go (years 1 to 9999).
            "expires_in_days" => {
                cert.expires_in_days = value
                    .trim()
                    .parse::<i64>()
                    .unwrap_or_default()
                    .clamp(-4_000_000, 4_000_000);
            }
            _ => {}
        }
        return;
    }
    match key {
        "tls.version" => info.version = Some(value.to_owned()),
        "tls.cipher" => info.cipher = Some(value.to_owned()),
        "tls.alpn" => info.alpn = Some(value.to_owned()),
        "tls.verified" => info.verified = flag(value),
        "tls.error" => info.verification_error = Some(value.to_owned()),
        _ => {}
    }
}

fn echo(result: &mut ProbeResult, key: &str, value: &str) {
    let echo = result.echo.get_or_insert_with(|| EchoInfo {
        sent: "wscheck-nonce".to_owned(),
        greeting: None,
        reply: None,
        unexpected: None,
        verified: false,
        rtt_ms: None,
        close_code: None,
        close_reason: None,
    });
    match key {
        "echo.sent" => echo.sent = value.to_owned(),
        "echo.greeting" => echo.greeting = Some(value.to_owned()),
        "echo.reply" => echo.reply = Some(value.to_owned()),
        "echo.unexpected" => echo.unexpected = Some(value.to_owned()),
        "echo.verified" => echo.verified = flag(value),
        "echo.rtt_ms" => echo.rtt_ms = ms(value),
        "echo.close_code" => echo.close_code = value.trim().parse().ok(),
        "echo.close_reason" => echo.close_reason = Some(value.to_owned()),
        _ => {}
    }
}

fn protocol(result: &mut ProbeResult, key: &str, value: &str) {
    let info = result.protocol.get_or_insert_with(|| ProtocolInfo {
        name: "socket.io",
        version: None,
        said: Map::new(),
    });
    match key {
        "protocol.name" => {
            info.name = match value.trim() {
                "graphql" => "graphql",
                "socket.io" => "socket.io",
                _ => "other",
            }
        }
        "protocol.version" => info.version = Some(value.to_owned()),
        "protocol.said" => {
            let (name, said) = value.split_once(':').unwrap_or((value, ""));
            let said = serde_json::from_str(said).unwrap_or_else(|_| Value::from(said));
            info.said.insert(name.to_owned(), said);
        }
        _ => {}
    }
}

fn stage(name: &str) -> Option<Stage> {
    Some(match name.trim() {
        "dns" => Stage::Dns,
        "connect" => Stage::Connect,
        "proxy" => Stage::Proxy,
        "tls" => Stage::Tls,
        "upgrade" => Stage::Upgrade,
        "echo" => Stage::Echo,
        "protocol" => Stage::Protocol,
        "done" => Stage::Done,
        _ => return None,
    })
}

/// Every failure kind by its name in the JSON report (`http_refused`, ...); kept in step
/// with the enum by `_every_kind_listed`.
fn failure_kind(name: &str) -> Option<FailureKind> {
    use FailureKind::*;
    const ALL: &[FailureKind] = &[
        DnsFailed,
        DnsTimeout,
        ConnectRefused,
        ConnectTimeout,
        ConnectFailed,
        ProxyUnreachable,
        ProxyRefused,
        ProxyAuthRequired,
        TlsToPlainPeer,
        TlsCertUntrusted,
        TlsCertNameMismatch,
        TlsCertExpired,
        TlsCertInvalid,
        TlsHandshakeFailed,
        TlsTimeout,
        PlainToTlsPeer,
        HttpRefused,
        HandshakeClosed,
        HandshakeTimeout,
        NotHttp,
        HandshakeInvalid,
        SubprotocolNotAccepted,
        EchoTimeout,
        EchoMismatch,
        EchoClosed,
        RequestInvalid,
        ProtocolRefused,
        ProtocolFailed,
        ProtocolMismatch,
    ];
    let name = name.trim();
    ALL.iter().copied().find(|kind| {
        serde_json::to_value(kind)
            .ok()
            .as_ref()
            .and_then(Value::as_str)
            == Some(name)
    })
}

/// Fails to compile when a failure kind is added, so that `failure_kind` lists it too.
fn _every_kind_listed(kind: FailureKind) {
    use FailureKind::*;
    match kind {
        DnsFailed
        | DnsTimeout
        | ConnectRefused
        | ConnectTimeout
        | ConnectFailed
        | ProxyUnreachable
        | ProxyRefused
        | ProxyAuthRequired
        | TlsToPlainPeer
        | TlsCertUntrusted
        | TlsCertNameMismatch
        | TlsCertExpired
        | TlsCertInvalid
        | TlsHandshakeFailed
        | TlsTimeout
        | PlainToTlsPeer
        | HttpRefused
        | HandshakeClosed
        | HandshakeTimeout
        | NotHttp
        | HandshakeInvalid
        | SubprotocolNotAccepted
        | EchoTimeout
        | EchoMismatch
        | EchoClosed
        | RequestInvalid
        | ProtocolRefused
        | ProtocolFailed
        | ProtocolMismatch => {}
    }
}
