//! TARGET and the other textual options, through the real parsers: `plan::parse_target`
//! (with its invariants: a host, a path from `/`, no credentials in what is shown, and
//! every URL of the matrix parsing back to the same route), the parsers of `--connect-to`,
//! `--resolve`, `-H`, `-x` and `--ports` items, the redaction of the same text, and the
//! whole command line (clap, then `cli::to_plan`) as the binary runs it.
//!
//! Input: text; the first line is TARGET, the following lines are further words of the
//! command line (`--only`, `--ports`, `8080,default`, ...).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wscheck::cli::to_plan::plan_from_argv;
use wscheck::plan::{
    Candidate, Scheme, parse_connect_to, parse_header, parse_port_item, parse_proxy, parse_resolve,
    parse_target,
};
use wscheck::probe::upgrade;
use wscheck::report::redact::{command_line, head_line, text_with_query, without_userinfo};

/// At most this many words after TARGET (clap's work grows with them, not the coverage).
const MAX_WORDS: usize = 24;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or_default();
    let words: Vec<&str> = lines.take(MAX_WORDS).collect();

    parsed_target(target);
    others(target);

    let mut argv = vec![target];
    argv.extend(&words);
    if let Ok(plan) = plan_from_argv(&argv) {
        assert!(!plan.candidates.is_empty(), "a plan without URLs");
        assert!(plan.asked() < plan.candidates.len());
        for candidate in &plan.candidates {
            assert!(
                url::Url::parse(&candidate.url).is_ok(),
                "a URL of the matrix does not parse: {:?}",
                candidate.url
            );
            let _ = plan.route(candidate);
            let _ = plan.proxy_for(candidate);
            let _ = plan.origin_for(candidate);
            let _ = upgrade::build_request(&plan, candidate, &plan.target.path);
        }
        let _ = plan.has_credentials();
    }
    let mut args: Vec<String> = vec!["wscheck".to_owned()];
    args.extend(argv.iter().map(|w| (*w).to_owned()));
    let _ = command_line(&args);
});

fn parsed_target(input: &str) {
    let Ok(target) = parse_target(input) else {
        return;
    };
    assert!(!target.host.is_empty(), "no host: {target:?}");
    assert!(
        target.path.starts_with('/'),
        "a path not from /: {target:?}"
    );
    // Credentials (a user name or a password, as the URL parser reads them) never show.
    let trimmed = input.trim();
    let rest = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if let Ok(url) = url::Url::parse(&format!("wss://{rest}"))
        && (!url.username().is_empty() || url.password().is_some())
    {
        assert_eq!(
            without_userinfo(&target.input),
            target.input,
            "credentials in the TARGET shown"
        );
    }
    // Every URL of the matrix is a TARGET of its own, naming the same route.
    for scheme in [Scheme::Wss, Scheme::Ws] {
        for port in [
            None,
            Some(scheme.default_port()),
            Some(8080),
            target.given.and_then(|g| g.1),
        ] {
            let candidate = Candidate::new(&target, scheme, port);
            let again = parse_target(&candidate.url).unwrap_or_else(|e| {
                panic!("{:?} (from {input:?}) does not parse: {e}", candidate.url)
            });
            assert_eq!(again.host, target.host, "{:?}", candidate.url);
            assert_eq!(again.path, target.path, "{:?}", candidate.url);
            assert_eq!(again.given, Some((scheme, port)), "{:?}", candidate.url);
            assert_eq!(again.userinfo, None);
        }
    }
}

/// The other parsers and the redaction, on the same text: none may panic.
fn others(text: &str) {
    let _ = parse_connect_to(text);
    let _ = parse_resolve(text);
    let _ = parse_header(text);
    let _ = parse_proxy(text, "--proxy");
    for item in text.split(',') {
        let _ = parse_port_item(item);
    }
    let _ = without_userinfo(text);
    let _ = text_with_query(text);
    let _ = head_line(text);
}
