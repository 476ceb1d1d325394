//! From parsed flags to a validated command, one small conversion per concern (target,
//! matrix, connection, proxies, deep checks, load), as ripgrep's `HiArgs::from_low_args`.
//! Everything after this knows no clap.

use std::path::PathBuf;

use super::{
    AppArgs, CheckArgs, Cli, CommandArgs, ConnectionArgs, FormatArg, LoadArgs, ProtocolArg,
    ScenarioArg, SchemeArg,
};
use crate::demo::Scenario;
use crate::error::{Error, Usage};
use crate::load::{LoadSettings, MAX_IN_FLIGHT, MIN_SIZE};
use crate::plan::{
    APP_PORT, Candidate, DEFAULT_MATRIX, Deep, EnvProxy, Origin, Plan, Proxies, Scheme, Target,
    is_internal_host, parse_connect_to, parse_header, parse_port_item, parse_proxy, parse_resolve,
    parse_stomp_header, parse_target,
};
use crate::preflight::AppPlan;
use crate::probe::protocol::ProtocolChoice;
use crate::report::Format;
use crate::report::redact::shell_quote;

/// What the command line asks for, validated.
#[derive(Debug, Clone)]
pub enum Command {
    /// `wscheck TARGET`: probe one route's matrix.
    Check { plan: Plan, output: Output },
    /// `wscheck --routes-file FILE`: every route of the file, in file order.
    Routes { plans: Vec<Plan>, output: Output },
    /// `wscheck load URL`.
    Load {
        plan: Plan,
        settings: LoadSettings,
        format: Format,
    },
    /// `wscheck demo [--scenario NAME]`.
    Demo { output: Output, scenario: Scenario },
    /// `wscheck app [DIR]`.
    App { plan: AppPlan, output: Output },
}

/// How the report is to be written (colour is decided by the terminal, not here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub format: Format,
    pub verbose: bool,
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Self {
        match arg {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Markdown => Format::Markdown,
        }
    }
}

impl From<ScenarioArg> for Scenario {
    fn from(arg: ScenarioArg) -> Self {
        match arg {
            ScenarioArg::Healthy => Scenario::Healthy,
            ScenarioArg::UpgradeStripped => Scenario::UpgradeStripped,
            ScenarioArg::AppDown => Scenario::AppDown,
        }
    }
}

impl From<SchemeArg> for Scheme {
    fn from(arg: SchemeArg) -> Self {
        match arg {
            SchemeArg::Ws => Scheme::Ws,
            SchemeArg::Wss => Scheme::Wss,
        }
    }
}

/// Turns a parsed command line into a command, or names the first thing wrong with it.
/// `env` is the proxy environment (`cli::env_proxy()` in the binary).
pub fn command(cli: Cli, env: &EnvProxy) -> Result<Command, Error> {
    let output = Output {
        format: cli.check.format.into(),
        verbose: cli.check.verbose,
    };
    match cli.command {
        Some(CommandArgs::App(args)) => Ok(Command::App {
            plan: app_plan(&args)?,
            output: Output {
                format: args.format.into(),
                verbose: false,
            },
        }),
        Some(CommandArgs::Demo(args)) => Ok(Command::Demo {
            output: Output {
                format: args.format.into(),
                verbose: false,
            },
            scenario: args.scenario.into(),
        }),
        Some(CommandArgs::Load(args)) => Ok(Command::Load {
            plan: load_plan(&args, env)?,
            settings: load_settings(&args)?,
            format: args.format.into(),
        }),
        None if cli.check.routes_file.is_some() => Ok(Command::Routes {
            plans: routes_plans(&cli.check, env)?,
            output,
        }),
        None => Ok(Command::Check {
            plan: check_plan(&cli.check, env)?,
            output,
        }),
    }
}

/// The plan of `wscheck TARGET`.
pub fn check_plan(args: &CheckArgs, env: &EnvProxy) -> Result<Plan, Usage> {
    let input = args.target.as_deref().ok_or(Usage::MissingTarget)?;
    let target = target(input, args.path.as_deref())?;
    let candidates = matrix(&target, args)?;
    if args.message.as_deref() == Some("") {
        return Err(Usage::EmptyMessage);
    }
    let mut plan = connection(target, candidates, &args.conn, env)?;
    plan.message = args.message.clone();
    plan.echo = !args.no_echo;
    plan.protocol = match args.protocol {
        ProtocolArg::Auto => ProtocolChoice::Auto,
        ProtocolArg::Raw => ProtocolChoice::Raw,
        ProtocolArg::Socketio => ProtocolChoice::SocketIo,
        ProtocolArg::Graphql => ProtocolChoice::Graphql,
        ProtocolArg::Stomp => ProtocolChoice::Stomp,
        ProtocolArg::Sockjs => ProtocolChoice::Sockjs,
    };
    plan.stomp_headers = args
        .stomp_headers
        .iter()
        .map(|h| parse_stomp_header(h))
        .collect::<Result<_, _>>()?;
    plan.deep = deep(args)?;
    Ok(plan)
}

/// A check plan from a command line (program name first), as the binary parses it, with
/// no proxy environment: for the probes wscheck itself runs (demo, app).
pub fn plan_from_argv(args: &[&str]) -> Result<Plan, Error> {
    let argv = std::iter::once("wscheck").chain(args.iter().copied());
    let cli = <Cli as clap::Parser>::try_parse_from(argv)
        .map_err(|e| Error::Setup(format!("internal command line: {e}")))?;
    Ok(check_plan(&cli.check, &EnvProxy::default())?)
}

/// The plan of `wscheck app`: the manifest read, the WebSocket path and the route's host.
fn app_plan(args: &AppArgs) -> Result<AppPlan, Error> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    crate::preflight::process::check_dir(&dir)?;
    let command = (!args.command.is_empty()).then(|| shell_words(&args.command));
    let manifest = crate::preflight::manifest::load(
        &dir,
        args.manifest.as_deref(),
        args.app.as_deref(),
        command,
    )?;
    let route = manifest.routes.first().map(String::as_str).unwrap_or("");
    let (route_host, route_path) = match route.split_once('/') {
        Some((host, path)) => (host.to_owned(), format!("/{path}")),
        None => (route.to_owned(), "/".to_owned()),
    };
    let path = match &args.path {
        Some(path) => target("localhost", Some(path))?.path,
        None => route_path,
    };
    let route_host = match route_host.is_empty() {
        false => route_host,
        true => format!("{}.apps.wscheck.test", dns_label(&manifest.name)),
    };
    Ok(AppPlan {
        manifest,
        path,
        route_host,
    })
}

/// An app name as a DNS label (`My_App` → `my-app`).
fn dns_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "app".to_owned()
    } else {
        label.to_owned()
    }
}

/// The words after `--` as one command for `bash -c`, quoted where the shell would split.
fn shell_words(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    quoted.join(" ")
}

/// The plan of `wscheck load URL`: the URL alone (as `--only`), with the connection options.
pub fn load_plan(args: &LoadArgs, env: &EnvProxy) -> Result<Plan, Usage> {
    let target = target(&args.url, None)?;
    let candidate = only_candidate(&target);
    connection(target, vec![candidate], &args.conn, env)
}

/// One plan per line of `--routes-file` (a bad line is an error naming it).
fn routes_plans(args: &CheckArgs, env: &EnvProxy) -> Result<Vec<Plan>, Error> {
    let Some(path) = &args.routes_file else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| Error::Setup(format!("--routes-file {}: {error}", path.display())))?;
    let routes = crate::routes::parse_routes(&text);
    if routes.is_empty() {
        return Err(Usage::EmptyRoutesFile {
            path: path.display().to_string(),
        }
        .into());
    }
    let mut plans = Vec::with_capacity(routes.len());
    for (line, route) in routes {
        let mut route_args = args.clone();
        route_args.target = Some(route);
        let plan = check_plan(&route_args, env).map_err(|error| Usage::RoutesFileLine {
            line,
            error: Box::new(error),
        })?;
        plans.push(plan);
    }
    Ok(plans)
}

/// TARGET, with `--path` replacing its path.
fn target(input: &str, path: Option<&str>) -> Result<Target, Usage> {
    let mut target = parse_target(input)?;
    if let Some(path) = path {
        if !path.starts_with('/') || path.chars().any(char::is_whitespace) {
            return Err(Usage::InvalidPath(path.to_owned()));
        }
        target.path = path.to_owned();
    }
    Ok(target)
}

/// The URL alone: as given, or `wss://<route>` for a bare route.
fn only_candidate(target: &Target) -> Candidate {
    let (scheme, port) = target.given.unwrap_or((Scheme::Wss, None));
    Candidate::new(target, scheme, port)
}

/// The URLs to probe: TARGET first, then its neighbours (the default matrix, or
/// `--schemes` × `--ports`), none with `--only`.
fn matrix(target: &Target, args: &CheckArgs) -> Result<Vec<Candidate>, Usage> {
    let ports = args
        .ports
        .iter()
        .map(|p| parse_port_item(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut schemes: Vec<Scheme> = Vec::new();
    for scheme in &args.schemes {
        let scheme = Scheme::from(*scheme);
        if !schemes.contains(&scheme) {
            schemes.push(scheme);
        }
    }
    // An internal route answers plain ws:// on the app's port, not 443/80 (an explicit
    // port, in TARGET or --ports, wins).
    let internal = is_internal_host(target.bare_host());
    if schemes.is_empty() {
        schemes = if internal {
            vec![Scheme::Ws]
        } else {
            vec![Scheme::Wss, Scheme::Ws]
        };
    }
    let mut matrix: Vec<(Scheme, Option<u16>)> = Vec::new();
    let mut push = |entry: (Scheme, Option<u16>)| {
        if !matrix.contains(&entry) {
            matrix.push(entry);
        }
    };
    if let Some(given) = target.given {
        push(given);
    }
    if args.only {
        match target.given {
            None if internal => push((schemes[0], Some(APP_PORT))),
            None => push((Scheme::Wss, None)),
            Some(_) => {}
        }
    } else if ports.is_empty() && internal {
        if !matches!(target.given, Some((_, Some(_)))) {
            schemes.iter().for_each(|s| push((*s, Some(APP_PORT))));
        }
    } else if ports.is_empty() {
        DEFAULT_MATRIX
            .iter()
            .filter(|(s, _)| schemes.contains(s))
            .for_each(|e| push(*e));
    } else {
        for scheme in &schemes {
            for port in &ports {
                push((*scheme, *port));
            }
        }
    }
    Ok(matrix
        .into_iter()
        .map(|(scheme, port)| Candidate::new(target, scheme, port))
        .collect())
}

/// Everything about how to reach the target: headers, Origin, subprotocols, trust,
/// redirection, timeouts, proxies. Shared by the check and `load`.
fn connection(
    target: Target,
    candidates: Vec<Candidate>,
    conn: &ConnectionArgs,
    env: &EnvProxy,
) -> Result<Plan, Usage> {
    let origin = origin(conn)?;
    for protocol in &conn.subprotocols {
        if protocol.is_empty() || protocol.contains([' ', ',', '\t']) {
            return Err(Usage::InvalidSubprotocol(protocol.clone()));
        }
    }
    if conn.timeout.is_zero() {
        return Err(Usage::ZeroDuration { flag: "timeout" });
    }
    if conn.connect_timeout.is_zero() {
        return Err(Usage::ZeroDuration {
            flag: "connect-timeout",
        });
    }
    Ok(Plan {
        target,
        candidates,
        headers: headers(conn)?,
        origin,
        subprotocols: conn.subprotocols.clone(),
        insecure: conn.insecure,
        cacert: conn.cacert.clone(),
        connect_to: conn
            .connect_to
            .iter()
            .map(|c| parse_connect_to(c))
            .collect::<Result<_, _>>()?,
        resolve: conn
            .resolve
            .iter()
            .map(|r| parse_resolve(r))
            .collect::<Result<_, _>>()?,
        timeout: conn.timeout,
        connect_timeout: conn.connect_timeout,
        message: None,
        echo: true,
        protocol: ProtocolChoice::Auto,
        stomp_headers: Vec::new(),
        allow_plaintext_credentials: conn.allow_plaintext_credentials,
        deep: Deep::default(),
        proxies: proxies(conn, env)?,
    })
}

/// `-H` headers in order, then `X-Cf-App-Instance` for `--instance`.
fn headers(conn: &ConnectionArgs) -> Result<Vec<(String, String)>, Usage> {
    let mut headers = conn
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(instance) = &conn.instance {
        let valid = instance.split_once(':').is_some_and(|(guid, index)| {
            !guid.is_empty()
                && guid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                && index.parse::<u32>().is_ok()
        });
        if !valid {
            return Err(Usage::InvalidInstance(instance.clone()));
        }
        headers.push(("X-Cf-App-Instance".to_owned(), instance.clone()));
    }
    Ok(headers)
}

/// The Origin header: `--origin`, none with `--no-origin`, else the route's own page per
/// scheme (`Plan::origin_for`).
fn origin(conn: &ConnectionArgs) -> Result<Origin, Usage> {
    if conn.no_origin {
        return Ok(Origin::None);
    }
    let Some(origin) = &conn.origin else {
        return Ok(Origin::Default);
    };
    let valid = url::Url::parse(origin)
        .ok()
        .is_some_and(|u| u.host_str().is_some() && !origin.contains(char::is_whitespace));
    if !valid {
        return Err(Usage::InvalidOrigin(origin.clone()));
    }
    Ok(Origin::Given(origin.clone()))
}

/// The proxies for wss and ws, and the bypass list: `-x` and `--noproxy` override the
/// environment.
fn proxies(conn: &ConnectionArgs, env: &EnvProxy) -> Result<Proxies, Usage> {
    let (wss, ws) = match &conn.proxy {
        Some(url) => {
            let proxy = parse_proxy(url, "--proxy")?;
            (Some(proxy.clone()), Some(proxy))
        }
        None => {
            let from_env = |value: &Option<crate::plan::EnvValue>| {
                value
                    .as_ref()
                    .map(|v| parse_proxy(&v.value, v.name))
                    .transpose()
            };
            (from_env(&env.wss)?, from_env(&env.ws)?)
        }
    };
    let no_proxy = conn
        .noproxy
        .as_deref()
        .or(env.no_proxy.as_ref().map(|v| v.value.as_str()))
        .map(|list| {
            list.split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Proxies { wss, ws, no_proxy })
}

/// The deep checks, each within its documented range.
fn deep(args: &CheckArgs) -> Result<Deep, Usage> {
    let mut sizes = Vec::new();
    for size in &args.sizes {
        let bytes = usize::try_from(size.as_u64())
            .ok()
            .filter(|b| (1..=(256 << 20)).contains(b))
            .ok_or_else(|| Usage::InvalidDeep {
                flag: "sizes",
                reason: format!("{size} is outside 1 B..256 MiB"),
            })?;
        if !sizes.contains(&bytes) {
            sizes.push(bytes);
        }
    }
    sizes.sort_unstable();
    if args.hold.is_some_and(|h| h.is_zero()) {
        return Err(Usage::ZeroDuration { flag: "hold" });
    }
    if args.ping_interval.is_some_and(|p| p.is_zero()) {
        return Err(Usage::ZeroDuration {
            flag: "ping-interval",
        });
    }
    in_range("count", args.count, 1..=100_000)?;
    in_range("connections", args.connections, 1..=10_000)?;
    Ok(Deep {
        hold: args.hold,
        ping_interval: args.ping_interval,
        sizes,
        count: args.count,
        connections: args.connections,
        polling: args.polling,
    })
}

fn in_range(
    flag: &'static str,
    value: Option<u32>,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(), Usage> {
    match value {
        Some(v) if !range.contains(&v) => Err(Usage::InvalidDeep {
            flag,
            reason: format!("{v} is outside {}..{}", range.start(), range.end()),
        }),
        _ => Ok(()),
    }
}

/// `wscheck load`'s settings, each within its documented range.
pub fn load_settings(args: &LoadArgs) -> Result<LoadSettings, Usage> {
    let bad = |message: String| Err(Usage::InvalidLoad(message));
    let size = usize::try_from(args.size.as_u64()).unwrap_or(usize::MAX);
    if !(MIN_SIZE..=(64 << 20)).contains(&size) {
        return bad(format!(
            "invalid --size {}: must be between {MIN_SIZE} B and 64 MiB",
            args.size
        ));
    }
    if !(1..=50_000).contains(&args.connections) {
        return bad(format!(
            "invalid --connections {}: must be between 1 and 50000",
            args.connections
        ));
    }
    if args.duration.is_zero() {
        return Err(Usage::ZeroDuration { flag: "duration" });
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate >= 0.0)
    {
        return bad(format!(
            "invalid --rate {rate}: must be a number of messages per second, 0 or more"
        ));
    }
    if !(1..=MAX_IN_FLIGHT).contains(&args.in_flight) {
        return bad(format!(
            "invalid --in-flight {}: must be between 1 and {MAX_IN_FLIGHT}",
            args.in_flight
        ));
    }
    if args.in_flight > 1 && args.rate.is_some() {
        return bad(
            "--in-flight is for the closed loop; with --rate, the rate sets how many messages are in flight"
                .to_owned(),
        );
    }
    Ok(LoadSettings {
        connections: args.connections,
        duration: args.duration,
        rate: args.rate,
        size,
        in_flight: args.in_flight as usize,
        ramp_up: args.ramp_up,
        warmup: args.warmup,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::plan::Proxy;

    /// Parses `wscheck ARGS...` as the binary does (clap's defaults apply).
    fn cli(argv: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("wscheck").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    fn plan_with(argv: &[&str], env: &EnvProxy) -> Result<Plan, Usage> {
        check_plan(&cli(argv).check, env)
    }

    fn plan(argv: &[&str]) -> Result<Plan, Usage> {
        plan_with(argv, &EnvProxy::default())
    }

    fn urls(plan: &Plan) -> Vec<&str> {
        plan.candidates.iter().map(|c| c.url.as_str()).collect()
    }

    #[test]
    fn an_internal_route_is_probed_on_the_app_port() {
        let urls_of = |argv: &[&str]| -> Vec<String> {
            urls(&plan(argv).unwrap())
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            urls_of(&["chat.apps.internal"]),
            ["ws://chat.apps.internal:8080/"]
        );
        assert_eq!(
            urls_of(&["chat.apps.internal", "--only"]),
            ["ws://chat.apps.internal:8080/"]
        );
        // An explicit port wins; a URL without one keeps its neighbour on the app port.
        assert_eq!(
            urls_of(&["ws://chat.apps.internal:9000/x"]),
            ["ws://chat.apps.internal:9000/x"]
        );
        assert_eq!(
            urls_of(&["ws://chat.apps.internal/"]),
            ["ws://chat.apps.internal/", "ws://chat.apps.internal:8080/"]
        );
        assert_eq!(
            urls_of(&["chat.apps.internal", "--ports", "61443"]),
            ["ws://chat.apps.internal:61443/"]
        );
        assert_eq!(
            urls_of(&["chat.apps.internal", "--schemes", "wss"]),
            ["wss://chat.apps.internal:8080/"]
        );
        let upper = plan(&["CHAT.Apps.Internal."]).unwrap();
        assert!(upper.candidates[0].is_internal());
        assert_eq!(upper.asked(), 0);
        let outside = plan(&["chat.apps.internal.example.com"]).unwrap();
        assert!(!outside.candidates[0].is_internal());
    }

    #[test]
    fn clap_defaults_make_a_valid_plan() {
        let plan = plan(&["app.example.com"]).unwrap();
        assert_eq!(plan.timeout, Duration::from_secs(10));
        assert_eq!(plan.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bare_route_gets_the_default_matrix() {
        let plan = plan(&["myapp.cfapps.eu10.hana.ondemand.com"]).unwrap();
        let h = "myapp.cfapps.eu10.hana.ondemand.com";
        assert_eq!(
            urls(&plan),
            [
                format!("wss://{h}/"),
                format!("wss://{h}:443/"),
                format!("ws://{h}/"),
                format!("ws://{h}:80/"),
                format!("wss://{h}:8080/"),
                format!("ws://{h}:8080/"),
                format!("wss://{h}:4443/"),
                format!("ws://{h}:4443/"),
            ]
        );
        let origins: Vec<_> = plan
            .candidates
            .iter()
            .map(|c| plan.origin_for(c).unwrap())
            .collect();
        assert_eq!(origins[0], format!("https://{h}"));
        assert_eq!(origins[2], format!("http://{h}"));
    }

    #[test]
    fn host_header_carries_the_port_only_when_not_the_default() {
        let plan = plan(&["app.example.com"]).unwrap();
        let hosts: Vec<_> = plan
            .candidates
            .iter()
            .map(|c| c.host_header.as_str())
            .collect();
        assert_eq!(
            hosts,
            [
                "app.example.com",
                "app.example.com",
                "app.example.com",
                "app.example.com",
                "app.example.com:8080",
                "app.example.com:8080",
                "app.example.com:4443",
                "app.example.com:4443",
            ]
        );
    }

    #[test]
    fn route_with_path_keeps_path_and_query() {
        let plan = plan(&["myapp.example.com/socket?room=1"]).unwrap();
        assert_eq!(
            plan.candidates[0].url,
            "wss://myapp.example.com/socket?room=1"
        );
    }

    #[test]
    fn full_url_with_port_comes_first_with_its_neighbours() {
        let p = plan(&["ws://myapp.example.com:8080/ws"]).unwrap();
        assert_eq!(p.candidates[0].url, "ws://myapp.example.com:8080/ws");
        assert_eq!(p.candidates.len(), 8);
        assert_eq!(
            urls(&plan(&["ws://myapp.example.com:8080/ws", "--only"]).unwrap()),
            ["ws://myapp.example.com:8080/ws"]
        );
    }

    #[test]
    fn explicit_default_port_is_kept_apart_from_no_port() {
        let plan = plan(&["wss://myapp.example.com:443", "--only"]).unwrap();
        assert_eq!(urls(&plan), ["wss://myapp.example.com:443/"]);
        assert_eq!(plan.candidates[0].explicit_port, Some(443));
    }

    #[test]
    fn http_urls_map_to_ws_schemes() {
        assert_eq!(
            urls(&plan(&["https://myapp.example.com/x", "--only"]).unwrap()),
            ["wss://myapp.example.com/x"]
        );
        assert_eq!(
            urls(&plan(&["http://myapp.example.com", "--only"]).unwrap()),
            ["ws://myapp.example.com/"]
        );
    }

    #[test]
    fn ipv6_literals_and_idns_work() {
        let p = plan(&["wss://[::1]:8443/x", "--only"]).unwrap();
        assert_eq!(urls(&p), ["wss://[::1]:8443/x"]);
        assert_eq!(p.target.bare_host(), "::1");
        assert_eq!(
            p.route(&p.candidates[0]).pinned,
            Some(vec!["::1".parse().unwrap()])
        );
        let p = plan(&["bücher.example"]).unwrap();
        assert_eq!(p.target.host, "xn--bcher-kva.example");
    }

    #[test]
    fn ports_and_schemes_narrow_or_extend_the_matrix() {
        assert_eq!(
            urls(
                &plan(&[
                    "app.example.com",
                    "--ports",
                    "default,8443",
                    "--schemes",
                    "wss"
                ])
                .unwrap()
            ),
            ["wss://app.example.com/", "wss://app.example.com:8443/"]
        );
        let p = plan(&["app.example.com", "--schemes", "ws"]).unwrap();
        assert_eq!(p.candidates.len(), 4);
    }

    #[test]
    fn invalid_input_names_what_is_wrong() {
        for (input, needle) in [
            ("", "empty"),
            ("ftp://x.example.com", "unsupported scheme 'ftp'"),
            ("wss://", "no host"),
            ("app.example.com:99999", "port '99999'"),
            ("app .example.com", "spaces"),
            ("wss://a..b/", "empty label"),
            ("wss://app.example.com/#frag", "fragment"),
        ] {
            let error = plan(&[input]).unwrap_err().to_string();
            assert!(error.contains(needle), "{input:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        assert_eq!(plan(&[]).unwrap_err(), Usage::MissingTarget);
        assert_eq!(
            plan(&["app.example.com", "--ports", "http"]).unwrap_err(),
            Usage::InvalidPort("http".into())
        );
        assert!(matches!(
            plan(&["app.example.com", "-H", "NoColon"]).unwrap_err(),
            Usage::InvalidHeader(_)
        ));
        assert!(
            plan(&["app.example.com", "--timeout", "0s"])
                .unwrap_err()
                .to_string()
                .contains("--timeout")
        );
    }

    #[test]
    fn userinfo_is_taken_out_of_the_urls() {
        let p = plan(&["wss://user:p%40ss@app.example.com/x"]).unwrap();
        assert_eq!(p.target.userinfo, Some(("user".into(), "p@ss".into())));
        assert!(p.candidates.iter().all(|c| !c.url.contains("user")));
        assert_eq!(p.target.input, "wss://app.example.com/x");
        assert!(p.has_credentials());
    }

    #[test]
    fn connect_to_and_resolve_follow_curl() {
        let p = plan(&[
            "app.example.com",
            "--connect-to",
            "app.example.com:443:127.0.0.1:8443",
            "--connect-to",
            "::[::1]:",
            "--resolve",
            "localhost:9000:127.0.0.2,[::1]",
        ])
        .unwrap();
        let wss = p.route(&p.candidates[0]);
        assert_eq!((wss.host.as_str(), wss.port), ("127.0.0.1", 8443));
        assert_eq!(wss.pinned, Some(vec!["127.0.0.1".parse().unwrap()]));
        assert!(wss.redirected);
        let ws8080 = p.route(&p.candidates[5]);
        assert_eq!((ws8080.host.as_str(), ws8080.port), ("::1", 8080));

        let p = plan(&[
            "localhost:9000",
            "--resolve",
            "localhost:9000:127.0.0.2,[::1]",
        ])
        .unwrap();
        let r = p.route(&p.candidates[0]);
        assert_eq!(
            r.pinned,
            Some(vec!["127.0.0.2".parse().unwrap(), "::1".parse().unwrap()])
        );
        assert!(!r.redirected);

        for bad in ["a:b", "h:1:h:x", "h:1:h:2:3"] {
            assert!(
                matches!(
                    plan(&["app.example.com", "--connect-to", bad]).unwrap_err(),
                    Usage::InvalidConnectTo(_)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            plan(&["app.example.com", "--resolve", "h:443:not-an-ip"]).unwrap_err(),
            Usage::InvalidResolve(_)
        ));
    }

    #[test]
    fn proxies_come_from_the_flag_or_the_environment_and_skip_loopback_and_no_proxy() {
        let env = EnvProxy::from_lookup(|name| match name {
            "HTTPS_PROXY" => Some("http://proxy.corp.example:3128".into()),
            "http_proxy" => Some("proxy.corp.example:8080".into()),
            "NO_PROXY" => Some("internal.example,.svc".into()),
            _ => None,
        });
        let p = plan_with(&["app.example.com"], &env).unwrap();
        assert_eq!(
            p.proxy_for(&p.candidates[0]).map(Proxy::display).as_deref(),
            Some("proxy.corp.example:3128")
        );
        assert_eq!(
            p.proxy_for(&p.candidates[2]).map(Proxy::display).as_deref(),
            Some("proxy.corp.example:8080")
        );

        for direct in ["api.internal.example", "x.svc", "localhost", "127.0.0.1"] {
            let p = plan_with(&[direct], &env).unwrap();
            assert!(p.proxy_for(&p.candidates[0]).is_none(), "{direct}");
        }

        let p = plan_with(&["app.example.com", "-x", "http://u:p%40ss@10.1.2.3"], &env).unwrap();
        let proxy = p.proxy_for(&p.candidates[0]).unwrap();
        assert_eq!(
            (proxy.port, proxy.credentials.clone()),
            (1080, Some(("u".into(), "p@ss".into())))
        );

        let error = plan(&["app.example.com", "-x", "https://u:secret@proxy:443"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("only http://") && !error.contains("secret"),
            "{error}"
        );
    }

    #[test]
    fn deep_checks_and_instance_targeting_are_validated() {
        let p = plan(&[
            "app.example.com",
            "--sizes",
            "64KiB,1KiB,1KiB",
            "--instance",
            "2d8b1ba5-4b6e:1",
        ])
        .unwrap();
        assert_eq!(p.deep.sizes, [1024, 65536]);
        assert!(
            p.headers
                .contains(&("X-Cf-App-Instance".into(), "2d8b1ba5-4b6e:1".into()))
        );
        assert!(matches!(
            plan(&["app.example.com", "--instance", "guid-without-index"]).unwrap_err(),
            Usage::InvalidInstance(_)
        ));
        assert!(
            plan(&["app.example.com", "--count", "0"])
                .unwrap_err()
                .to_string()
                .contains("--count")
        );
        assert!(
            plan(&["app.example.com", "--hold", "0s"])
                .unwrap_err()
                .to_string()
                .contains("--hold")
        );
    }

    #[test]
    fn origin_defaults_to_the_route_per_scheme_and_can_be_dropped_or_replaced() {
        let origins = |args: &[&str]| {
            let plan = plan(args).unwrap();
            plan.candidates
                .iter()
                .map(|c| (c.url.clone(), plan.origin_for(c)))
                .collect::<Vec<_>>()
        };
        let defaults = origins(&["app.example.com", "--ports", "default,8080"]);
        assert_eq!(defaults.len(), 4, "{defaults:?}");
        for (url, origin) in &defaults {
            let want = if url.starts_with("wss://") {
                "https://app.example.com"
            } else {
                "http://app.example.com"
            };
            assert_eq!(origin.as_deref(), Some(want), "{url}");
        }
        for (url, origin) in origins(&["app.example.com", "--no-origin"]) {
            assert_eq!(origin, None, "{url}");
        }
        let given = ["app.example.com", "--origin", "https://other.example.com"];
        for (url, origin) in origins(&given) {
            assert_eq!(
                origin.as_deref(),
                Some("https://other.example.com"),
                "{url}"
            );
        }
        assert!(matches!(
            plan(&["app.example.com", "--origin", "not an origin"]).unwrap_err(),
            Usage::InvalidOrigin(_)
        ));
    }

    #[test]
    fn load_takes_the_url_alone_with_the_connection_options() {
        let Ok(Command::Load { plan, settings, .. }) = command(
            cli(&[
                "load",
                "app.example.com",
                "--in-flight",
                "4",
                "-H",
                "X-A: 1",
            ]),
            &EnvProxy::default(),
        ) else {
            panic!("a load command");
        };
        assert_eq!(urls(&plan), ["wss://app.example.com/"]);
        assert_eq!(plan.headers, [("X-A".to_owned(), "1".to_owned())]);
        assert_eq!((settings.in_flight, settings.connections), (4, 10));
    }
}
