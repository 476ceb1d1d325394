//! A local Cloud Foundry stand-in built from real parts: Debian's nginx configured to act
//! like gorouter (TLS "443" with a `*.apps.wscheck.test` certificate from a test CA, plain
//! "80", forwarding headers, `X-Cf-Routererror` answers), and apps behind it on their own
//! `$PORT`: the bundled server, the article's Node `server.js`, the SAP approuter.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::pki::TestCa;
use crate::{ChildGuard, ensure_node_modules, free_port, node_dir, tempdir, wait_for_listener};

/// The apps' domain; the router's certificate is for `*.apps.wscheck.test`.
pub const DOMAIN: &str = "apps.wscheck.test";

/// How the router treats one route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Host name below `DOMAIN`, e.g. `echo` for `echo.apps.wscheck.test`.
    pub name: String,
    /// Where the app's instances listen, instance 0 first (a port nobody listens on is a
    /// dead instance). Several are balanced round robin, as gorouter does.
    pub backends: Vec<SocketAddr>,
    /// Pass `Upgrade`/`Connection` on (gorouter does; the classic nginx mistake does not).
    pub pass_upgrade: bool,
    /// Idle cut-off of a proxied connection (gorouter has none; load balancers do).
    pub idle_timeout: Option<Duration>,
}

impl Route {
    pub fn new(name: &str, backend: SocketAddr) -> Self {
        Self::instances(name, vec![backend])
    }

    /// A route to several instances of one app.
    pub fn instances(name: &str, backends: Vec<SocketAddr>) -> Self {
        Self {
            name: name.to_owned(),
            backends,
            pass_upgrade: true,
            idle_timeout: None,
        }
    }

    pub fn host(&self) -> String {
        format!("{}.{DOMAIN}", self.name)
    }
}

/// The app GUID the stand-in router knows for `X-Cf-App-Instance: APP_GUID:INDEX`.
pub const APP_GUID: &str = "5a9e1c1e-0000-4000-8000-0000000000a1";

/// A running nginx router.
pub struct Router {
    pub tls: SocketAddr,
    pub plain: SocketAddr,
    pub ca: TestCa,
    pub cacert: PathBuf,
    pub dir: PathBuf,
    _nginx: ChildGuard,
}

fn nginx_binary() -> Result<PathBuf> {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return Ok(candidate.into());
        }
    }
    bail!(
        "nginx is not installed: run scripts/test (it installs Debian's nginx-light), or apt-get install nginx-light"
    )
}

impl Router {
    /// Writes the configuration for `routes` and starts nginx on two free loopback ports.
    pub fn start(routes: &[Route]) -> Result<Router> {
        let nginx = nginx_binary()?;
        let dir = tempdir("nginx")?;
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let ca = TestCa::new("wscheck stand-in CA")?;
        let cacert = ca.write(&dir)?;
        let (cert, key) = ca.leaf(&[&format!("*.{DOMAIN}")])?.write(&dir, &ca)?;
        let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let plain = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = nginx_config(&dir, routes, tls, plain, &cert, &key);
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, config)?;

        let check = Command::new(&nginx)
            .args(["-t", "-q", "-p"])
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .output()?;
        if !check.status.success() {
            bail!(
                "nginx rejected its configuration:\n{}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting nginx")?;
        let guard = ChildGuard(child);
        wait_for_listener(tls, Duration::from_secs(10))?;
        wait_for_listener(plain, Duration::from_secs(10))?;
        Ok(Router {
            tls,
            plain,
            ca,
            cacert,
            dir,
            _nginx: guard,
        })
    }

    /// `--connect-to` rules that send a route's 443 and 80 to this router and every other
    /// port to `nowhere` (as on CF, where only 443 and 80 are open).
    pub fn connect_to(&self, nowhere: SocketAddr) -> Vec<String> {
        vec![
            format!(":443:{}:{}", self.tls.ip(), self.tls.port()),
            format!(":80:{}:{}", self.plain.ip(), self.plain.port()),
            format!("::{}:{}", nowhere.ip(), nowhere.port()),
        ]
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }
}

/// The `X-Cf-Instanceid` the stand-in router sends for instance `index` of a route: made
/// up, GUID-shaped and stable (on CF it is the instance's `CF_INSTANCE_GUID`).
pub fn instance_guid(index: usize) -> String {
    format!("1e57a2ce-0000-4000-8000-{index:012x}")
}

/// nginx lines answering as gorouter's error writer does (errorwriter/error_writer.go):
/// `X-Cf-Routererror`, `text/plain; charset=utf-8` (the configuration's `default_type`),
/// `X-Content-Type-Options: nosniff`, and the body `<status> <text>: <message>` followed by
/// a newline (Go's `fmt.Fprintln`). `message` may use nginx variables.
fn gorouter_error(
    status: u16,
    router_error: &str,
    cache_control: Option<&str>,
    message: &str,
) -> String {
    let text = match status {
        400 => "Bad Request",
        404 => "Not Found",
        502 => "Bad Gateway",
        _ => unreachable!("no gorouter answer {status} in the stand-in"),
    };
    let mut lines = format!("add_header X-Cf-Routererror \"{router_error}\" always;\n");
    if let Some(cache_control) = cache_control {
        let _ = writeln!(
            lines,
            "add_header Cache-Control \"{cache_control}\" always;"
        );
    }
    lines.push_str("add_header X-Content-Type-Options nosniff always;\n");
    let _ = writeln!(lines, "return {status} \"{status} {text}: {message}\\n\";");
    lines
}

/// Indents every line of `lines` by `spaces`.
fn indent(lines: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    lines.lines().map(|line| format!("{pad}{line}\n")).collect()
}

/// gorouter's 404 for a host no app is mapped to (handlers/lookup.go handleMissingRoute).
const UNKNOWN_ROUTE: &str = "Requested route ('$http_host') does not exist.";
/// gorouter's 400 for an `X-Cf-App-Instance` that is not `APP_GUID:INDEX`.
const INVALID_INSTANCE_HEADER: &str = "Invalid X-CF-App-Instance Header";
/// gorouter's 400 for a well-formed `X-Cf-App-Instance` naming no instance of the route (it
/// ends without a period, as gorouter's does).
const UNKNOWN_INSTANCE: &str = "Requested instance ('$cf_app_instance_index') with guid ('$cf_app_instance_guid') does not exist for route ('$http_host')";

/// The two checks gorouter makes before it looks at the route (handlers/lookup.go): no
/// `Host` (an HTTP/1.0 request; nginx itself refuses an HTTP/1.1 one without Host), then a
/// malformed `X-Cf-App-Instance`.
fn before_lookup() -> String {
    format!(
        "if ($http_host = \"\") {{\n{}}}\nif ($cf_app_instance = invalid) {{\n{}}}\n",
        indent(
            &gorouter_error(
                400,
                "empty_host",
                Some("public,max-age=2"),
                "Request had empty Host header"
            ),
            4
        ),
        indent(
            &gorouter_error(
                400,
                "invalid_cf_app_instance_header",
                Some("no-cache, no-store"),
                INVALID_INSTANCE_HEADER
            ),
            4
        ),
    )
}

/// Go's answer to plain HTTP on a TLS port (net/http), instead of nginx's HTML page. nginx
/// cannot write Go's `HTTP/1.0` status line nor leave out its own headers.
fn http_to_https() -> &'static str {
    "error_page 497 = @http_to_https;\nlocation @http_to_https {\n    return 400 \"Client sent an HTTP request to an HTTPS server.\\n\";\n}\n"
}

/// gorouter's session affinity, as `http`-level maps (indented for the `http` block).
///
/// Request side (handlers/helpers.go `GetStickySession`): the request is sticky when it
/// carries a `JSESSIONID` cookie (gorouter's default `sticky_session_cookie_names`; any
/// value, even none) *and* a `__VCAP_ID__` cookie; `$cf_sticky_id` is then the first
/// `__VCAP_ID__`'s value. Go matches cookie names case-sensitively and splits at `;` only,
/// hence regexes on `$http_cookie` rather than nginx's `$cookie_*` (case-insensitive, also
/// splits at `,`).
///
/// Response side (proxy/round_tripper/proxy_round_tripper.go `setupStickySession`), used
/// by the instance servers, which `set $cf_instance_guid`: `$cf_vcap_set_cookie` is
/// `__VCAP_ID__=<guid>; Path=/; HttpOnly` plus what Go copies from the app's first
/// `JSESSIONID` Set-Cookie (Expires, Max-Age only when it deletes, Secure, SameSite,
/// Partitioned), or "" (no header) — set when the app's answer sets `JSESSIONID`, or when
/// the request was sticky to another (or an unknown) instance; never when the app set
/// `__VCAP_ID__` itself. `$upstream_http_set_cookie` is the app's first Set-Cookie line on
/// nginx 1.22 (all of them, joined with ", ", from 1.23), so `$cf_jsessionid_line` cuts the
/// `JSESSIONID` one out at a ", name=" boundary; `$upstream_cookie_*` (every line, values
/// only) tells that a later line sets the cookie.
const STICKY_MAPS: &str = r#"
    # Session affinity, request side (gorouter's GetStickySession).
    map $http_cookie $cf_request_jsessionid {
        "~(?:^|;)[ \t]*JSESSIONID[ \t]*(?:=|;|$)" 1;
        default 0;
    }
    map $http_cookie $cf_request_vcap_id {
        "~(?:^|;)[ \t]*__VCAP_ID__[ \t]*=(?<cf_rv>[^;]*?)[ \t]*(?:;|$)" $cf_rv;
        default "";
    }
    map "$cf_request_jsessionid$cf_request_vcap_id" $cf_sticky_id {
        "~^1(?<cf_sid>.+)$" $cf_sid;
        default "";
    }

    # Session affinity, response side (gorouter's setupStickySession), in instance servers.
    map $upstream_http_set_cookie $cf_jsessionid_line {
        "~(?:^|, )[ \t]*(?<cf_jl>JSESSIONID[ \t]*=.*?)(?:, [^=;, ]+=|$)" $cf_jl;
        default "";
    }
    map "$cf_jsessionid_line|$upstream_cookie_jsessionid" $cf_response_jsessionid {
        "|" 0;
        default 1;
    }
    map "$upstream_cookie___vcap_id__|$upstream_http_set_cookie" $cf_response_vcap_id {
        "~^[^|]" 1;
        "~\|(?:.*, )?[ \t]*__VCAP_ID__[ \t]*=" 1;
        default 0;
    }
    map "$cf_sticky_id|$cf_instance_guid" $cf_sticky_elsewhere {
        "~^\|" 0;
        "~^(?<cf_se>[^|]*)\|\k<cf_se>$" 0;
        default 1;
    }
    map $cf_jsessionid_line $cf_vcap_expires {
        "~;[ \t]*(?i:expires)=(?<cf_ex1>[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} (?:160[1-9]|16[1-9][0-9]|1[7-9][0-9]{2}|[2-9][0-9]{3}) [0-9]{2}:[0-9]{2}:[0-9]{2}) [A-Z]{3,5}[ \t]*(?:;|$)" "; Expires=${cf_ex1} GMT";
        "~;[ \t]*(?i:expires)=(?<cf_ex2>[A-Za-z]{3}, [0-9]{2})-(?<cf_ex3>[A-Za-z]{3})-(?<cf_ex4>(?:160[1-9]|16[1-9][0-9]|1[7-9][0-9]{2}|[2-9][0-9]{3}) [0-9]{2}:[0-9]{2}:[0-9]{2}) [A-Z]{3,5}[ \t]*(?:;|$)" "; Expires=${cf_ex2} ${cf_ex3} ${cf_ex4} GMT";
        default "";
    }
    map $cf_jsessionid_line $cf_vcap_max_age {
        "~;[ \t]*(?i:max-age)=(?:0+|-[0-9]+)[ \t]*(?:;|$)" "; Max-Age=0";
        default "";
    }
    map $cf_jsessionid_line $cf_vcap_secure {
        "~;[ \t]*(?i:secure)[ \t]*(?:=[^;]*)?(?:;|$)" "; Secure";
        default "";
    }
    map $cf_jsessionid_line $cf_vcap_samesite {
        "~;[ \t]*(?i:samesite)=(?i:lax)[ \t]*(?:;|$)" "; SameSite=Lax";
        "~;[ \t]*(?i:samesite)=(?i:strict)[ \t]*(?:;|$)" "; SameSite=Strict";
        "~;[ \t]*(?i:samesite)=(?i:none)[ \t]*(?:;|$)" "; SameSite=None";
        default "";
    }
    map $cf_jsessionid_line $cf_vcap_partitioned {
        "~;[ \t]*(?i:partitioned)[ \t]*(?:=[^;]*)?(?:;|$)" "; Partitioned";
        default "";
    }
    map "$cf_response_vcap_id$cf_response_jsessionid$cf_sticky_elsewhere" $cf_vcap_set_cookie {
        "~^0(?:1.|.1)$" "__VCAP_ID__=${cf_instance_guid}; Path=/${cf_vcap_expires}${cf_vcap_max_age}; HttpOnly${cf_vcap_secure}${cf_vcap_samesite}${cf_vcap_partitioned}";
        default "";
    }
"#;

/// `text` with the characters of a socket address that a PCRE treats specially escaped.
fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, ch| {
        if matches!(ch, '.' | '[' | ']') {
            out.push('\\');
        }
        out.push(ch);
        out
    })
}

/// The front's per-route map picking the server a request goes to: the instance named by a
/// valid `X-Cf-App-Instance` (gorouter looks the route up with only that instance in the
/// pool, so it wins over stickiness), else the sticky instance (`$cf_sticky_id`, an
/// instance's guid or, as gorouter's pool also indexes them, its `host:port`), else the
/// round robin (`upstream`); or `invalid` / `unknown` for gorouter's 400s. A sticky request
/// does not move the round robin on, as in gorouter (route/roundrobin.go `Next`).
fn target_map(upstream: &str, route: &Route) -> String {
    let mut m = format!(
        "    map \"$cf_app_instance:$http_x_cf_app_instance|$cf_sticky_id\" $cf_target_{upstream} {{\n"
    );
    for (index, backend) in route.backends.iter().enumerate() {
        for id in [instance_guid(index), backend.to_string()] {
            let _ = writeln!(
                m,
                "        \"~^none:\\|{}$\" {upstream}_{index};",
                regex_escape(&id)
            );
        }
    }
    let _ = writeln!(
        m,
        "        \"~^none:\" {upstream};\n        \"~^invalid:\" invalid;"
    );
    for index in 0..route.backends.len() {
        let _ = writeln!(
            m,
            "        \"~^valid:{APP_GUID}:{index}\\|\" {upstream}_{index};"
        );
    }
    m.push_str("        default unknown;\n    }\n");
    m
}

/// The configuration of the stand-in router.
///
/// Two layers of nginx, so that the app sees which instance it is:
/// - the *front* servers (TLS and plain listeners, one per route plus the default server
///   for unknown hosts) do what gorouter does before it picks an endpoint: error answers,
///   `X-Cf-App-Instance`, `Upgrade` only with `Connection: upgrade`, `X-Forwarded-*`,
///   `X-Request-Start`, `X-Vcap-Request-Id` (toward the app and on the app's answer);
/// - one *instance* server per backend, on a unix socket in the router's directory, that
///   the front balances round robin (or picks by `X-Cf-App-Instance`). It knows its own
///   index, so it adds `X-Cf-Applicationid`, `X-Cf-Instanceid` and `X-Cf-Instanceindex`,
///   dials the app, and answers gorouter's 502 `endpoint_failure` when the app refuses.
///
/// Session affinity as gorouter's (`STICKY_MAPS`, `target_map`): a request carrying the
/// `JSESSIONID` and `__VCAP_ID__` cookies goes to the instance whose guid (`instance_guid`)
/// the latter names, unless `X-Cf-App-Instance` names one; an answer that sets `JSESSIONID`,
/// or that comes from another instance than the request's `__VCAP_ID__` named, gets
/// `Set-Cookie: __VCAP_ID__=<guid>; Path=/; HttpOnly` (plus JSESSIONID's Expires, deleting
/// Max-Age, Secure, SameSite, Partitioned), on the 101 of a WebSocket upgrade too.
///
/// A single nginx `upstream` cannot tell the request which server it chose (`$upstream_addr`
/// is known only after the request headers were built), hence the second layer.
///
/// Known differences from gorouter (routing-release v0.317.0), out of nginx's reach or kept
/// on purpose:
/// - nginx adds `Server: nginx` (and `Connection: keep-alive`) to every answer, and writes
///   `HTTP/1.1` status lines where Go answers an HTTP/1.0 request (or plain HTTP on the TLS
///   port) with `HTTP/1.0`; an HTTP/1.1 request without `Host` gets nginx's own HTML 400,
///   not gorouter's `empty_host`;
/// - a refused dial is not retried on another instance: gorouter retries dial errors and
///   prunes the endpoint, the stand-in keeps sending a crashed instance its share (the deep
///   tests count on it);
/// - the `endpoint_failure` texts are those of a refused and a timed-out dial; an app that
///   accepts and closes without answering also gets the "connection refused" one, and one
///   that does not answer within the idle timeout the "i/o timeout" one;
/// - only the first `Connection` header line is read (nginx 1.22's `$http_connection`);
/// - sticky sessions: on nginx 1.22 `$upstream_http_set_cookie` is the app's first
///   Set-Cookie line, so `__VCAP_ID__` copies JSESSIONID's attributes only when JSESSIONID is
///   the first cookie the app sets (a later one gets `Path=/; HttpOnly` alone, and a later
///   one with an empty value, as when it is deleted, is not seen); a later line's cookie
///   name is matched case-insensitively (`$upstream_cookie_*`); an Expires date is copied
///   as written (Go re-computes the weekday, checks the ranges and takes any zone as GMT);
///   cookie values are not unquoted nor checked for Go's invalid bytes; the sticky names
///   are gorouter's defaults only (`JSESSIONID`, `secure_cookies: false`, no
///   `sticky_sessions_for_auth_negotiate`), and `Path` is always `/` (routes have no path);
///   a sticky request to a dead instance gets the 502, where gorouter retries on another
///   instance and answers with that one's `__VCAP_ID__`;
/// - the TLS listener offers no HTTP/2 (gorouter negotiates `h2` when offered).
fn nginx_config(
    dir: &Path,
    routes: &[Route],
    tls: SocketAddr,
    plain: SocketAddr,
    cert: &Path,
    key: &Path,
) -> String {
    let d = dir.display();
    // Snippets every server block shares, made once.
    let http_to_https = indent(http_to_https(), 8);
    let before_lookup = indent(&before_lookup(), 12);
    let unknown_instance = indent(
        &gorouter_error(
            400,
            "unknown_route",
            Some("no-cache, no-store"),
            UNKNOWN_INSTANCE,
        ),
        16,
    );
    let mut c = String::new();
    // One process, in the foreground: the harness owns its lifetime.
    let _ = write!(
        c,
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    # Answers nginx writes itself are gorouter's plain text, whatever the path's extension.
    types {{ }}
    default_type "text/plain; charset=utf-8";
    server_tokens off;
    ssl_certificate {cert};
    ssl_certificate_key {key};

    # Like gorouter (Go's ReverseProxy): Upgrade goes on only when the client's Connection
    # names the `upgrade` token; otherwise the app sees a plain request, `Connection: close`.
    map $http_connection $cf_wants_upgrade {{
        "~*(^|,)[ \t]*upgrade[ \t]*(,|$)" 1;
        default 0;
    }}
    map "$cf_wants_upgrade$http_upgrade" $cf_upgrade {{
        "~^1(.+)$" $1;
        default "";
    }}
    map $cf_upgrade $cf_connection {{
        "" close;
        default upgrade;
    }}

    # X-Vcap-Request-Id: a version 4 UUID, dashed, made of nginx's 32 random hex digits.
    map $request_id $vcap_request_id {{
        "~^(?<vr_a>[0-9a-f]{{8}})(?<vr_b>[0-9a-f]{{4}})[0-9a-f](?<vr_c>[0-9a-f]{{3}})(?<vr_v>[0-9a-f])(?<vr_d>[0-9a-f]{{3}})(?<vr_e>[0-9a-f]{{12}})$" "$vr_a-$vr_b-4$vr_c-$vr_variant$vr_d-$vr_e";
        default $request_id;
    }}
    map $vr_v $vr_variant {{
        "~[048c]" 8;
        "~[159d]" 9;
        "~[26ae]" a;
        default b;
    }}
    # On the app's answers (the 101 included) unless the app set its own; not on the
    # router's own error answers (gorouter sets it in ModifyResponse only).
    map "$upstream_http_x_cf_routererror$upstream_http_x_vcap_request_id" $cf_response_request_id {{
        "" $vcap_request_id;
        default "";
    }}

    # X-Request-Start: integer milliseconds ($msec is "1234.567"), kept when the client sent one.
    map $msec $cf_msec {{
        "~^(?<ms_s>[0-9]+)\.(?<ms_f>[0-9]{{3}})$" $ms_s$ms_f;
        default $msec;
    }}
    map $http_x_request_start $cf_request_start {{
        "" $cf_msec;
        default $http_x_request_start;
    }}

    # X-Forwarded-Proto: kept when the client (a load balancer) sent one, as gorouter's
    # default (sanitize_forwarded_proto: false) does.
    map $http_x_forwarded_proto $cf_forwarded_proto {{
        "" $scheme;
        default $http_x_forwarded_proto;
    }}

    # X-Cf-App-Instance: absent, well formed (gorouter's regex) or invalid.
    map $http_x_cf_app_instance $cf_app_instance {{
        "" none;
        "~^[0-9a-f]{{8}}-(?:[0-9a-f]{{4}}-){{3}}[0-9a-f]{{12}}:[0-9]+$" valid;
        default invalid;
    }}
    map $http_x_cf_app_instance $cf_app_instance_guid {{
        "~^([^:]*):([0-9]*)$" $1;
        default "";
    }}
    map $http_x_cf_app_instance $cf_app_instance_index {{
        "~^([^:]*):([0-9]*)$" $2;
        default "";
    }}
{sticky}
    # An unmapped host gets gorouter's answer.
    server {{
        listen {tls} ssl default_server;
        listen {plain} default_server;
        # Declares the variable the instance servers set (there may be none).
        set $cf_instance_guid "";
{http_to_https}        location / {{
{before_lookup}            if ($cf_app_instance = valid) {{
{unknown_instance}            }}
{unknown_route}        }}
    }}
"#,
        cert = cert.display(),
        key = key.display(),
        sticky = STICKY_MAPS,
        unknown_route = indent(
            &gorouter_error(
                404,
                "unknown_route",
                Some("no-cache, no-store"),
                UNKNOWN_ROUTE
            ),
            12
        ),
    );
    for (r, route) in routes.iter().enumerate() {
        let idle = route
            .idle_timeout
            .map_or_else(|| "3600s".to_owned(), |t| format!("{}ms", t.as_millis()));
        let upgrade = if route.pass_upgrade {
            "proxy_set_header Upgrade $cf_upgrade;\n            proxy_set_header Connection $cf_connection;"
        } else {
            "# The classic mistake: hop-by-hop Upgrade/Connection are not passed on."
        };
        // Round robin over the instance servers, as gorouter balances instances.
        let upstream = format!("app{r}");
        let _ = writeln!(c, "    upstream {upstream} {{");
        for index in 0..route.backends.len() {
            let _ = writeln!(c, "        server unix:{d}/i{r}-{index}.sock max_fails=0;");
        }
        let _ = writeln!(c, "    }}");
        c.push_str(&target_map(&upstream, route));
        let _ = write!(
            c,
            r#"    server {{
        listen {tls} ssl;
        listen {plain};
        server_name {host};
{http_to_https}        location / {{
{before_lookup}            if ($cf_target_{upstream} = unknown) {{
{unknown_instance}            }}
            proxy_pass http://$cf_target_{upstream};
            proxy_next_upstream off;
            proxy_http_version 1.1;
            {upgrade}
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $cf_forwarded_proto;
            proxy_set_header X-Request-Start $cf_request_start;
            proxy_set_header X-Vcap-Request-Id $vcap_request_id;
            proxy_set_header X-Cf-App-Instance "";
            proxy_read_timeout {idle};
            proxy_send_timeout {idle};
            proxy_buffering off;
            add_header X-Vcap-Request-Id $cf_response_request_id always;
        }}
    }}
"#,
            host = route.host(),
        );
        for (index, backend) in route.backends.iter().enumerate() {
            let _ = write!(
                c,
                r#"    upstream {upstream}_{index} {{ server unix:{d}/i{r}-{index}.sock max_fails=0; }}
    server {{
        listen unix:{d}/i{r}-{index}.sock;
        set $cf_instance_guid {guid};
        location / {{
            proxy_pass http://{backend};
            proxy_next_upstream off;
            proxy_http_version 1.1;
            proxy_connect_timeout 5s;
            {upgrade}
            proxy_set_header Host $http_host;
            proxy_set_header X-Cf-Applicationid {APP_GUID};
            proxy_set_header X-Cf-Instanceid {guid};
            proxy_set_header X-Cf-Instanceindex {index};
            proxy_read_timeout {idle};
            proxy_send_timeout {idle};
            proxy_buffering off;
            add_header Set-Cookie $cf_vcap_set_cookie always;
            error_page 502 = @endpoint_refused;
            error_page 504 = @endpoint_timeout;
        }}
        location @endpoint_refused {{
{refused}        }}
        location @endpoint_timeout {{
{timeout}        }}
    }}
"#,
                guid = instance_guid(index),
                refused = indent(
                    &gorouter_error(
                        502,
                        "endpoint_failure (dial tcp $upstream_addr: connect: connection refused)",
                        None,
                        "Registered endpoint failed to handle the request."
                    ),
                    12
                ),
                timeout = indent(
                    &gorouter_error(
                        502,
                        "endpoint_failure (dial tcp $upstream_addr: i/o timeout)",
                        None,
                        "Registered endpoint failed to handle the request."
                    ),
                    12
                ),
            );
        }
    }
    c.push_str("}\n");
    c
}

/// A running tinyproxy (Debian's), the corporate proxy of the tests.
pub struct Tinyproxy {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _child: ChildGuard,
}

impl Tinyproxy {
    /// Starts tinyproxy on a free loopback port. `credentials` turns on Basic auth (407
    /// without them); `connect_ports` limits CONNECT to those ports (403 otherwise).
    pub fn start(credentials: Option<(&str, &str)>, connect_ports: &[u16]) -> Result<Tinyproxy> {
        let binary = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("tinyproxy is not installed: run scripts/test (it installs it), or apt-get install tinyproxy")?;
        let dir = tempdir("tinyproxy")?;
        let port = free_port();
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 200\nLogLevel Info\nAllow 127.0.0.1\nDisableViaHeader Yes\n"
        );
        if let Some((user, pass)) = credentials {
            config.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        for p in connect_ports {
            config.push_str(&format!("ConnectPort {p}\n"));
        }
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(&conf, config)?;
        let log = std::fs::File::create(dir.join("tinyproxy.log"))?;
        let child = Command::new(binary)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting tinyproxy")?;
        let guard = ChildGuard(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_listener(addr, Duration::from_secs(10))?;
        Ok(Tinyproxy {
            addr,
            dir,
            _child: guard,
        })
    }

    /// `http://[user:pass@]127.0.0.1:port`.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("http://{u}:{p}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }
}

/// The article's `server.js`, started on its own `$PORT` (see `crate::start_article_server`).
pub use crate::start_article_server;

/// A running SAP approuter.
pub struct Approuter {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _child: ChildGuard,
}

impl Approuter {
    /// Starts `@sap/approuter` (from `tests/node`) with a destination to `backend`, every
    /// route public (`authenticationType: none`), WebSockets enabled or not.
    pub fn start(backend: SocketAddr, websockets: bool) -> Result<Approuter> {
        let modules = ensure_node_modules()?;
        let dir = tempdir("approuter")?;
        let xs_app = serde_json::json!({
            "authenticationMethod": "none",
            "websockets": { "enabled": websockets },
            "routes": [{
                "source": "^/(.*)$",
                "target": "$1",
                "destination": "backend",
                "authenticationType": "none"
            }]
        });
        let default_env = serde_json::json!({
            "destinations": [{ "name": "backend", "url": format!("http://{backend}"), "forwardAuthToken": false }]
        });
        std::fs::write(dir.join("xs-app.json"), serde_json::to_vec_pretty(&xs_app)?)?;
        std::fs::write(
            dir.join("default-env.json"),
            serde_json::to_vec_pretty(&default_env)?,
        )?;
        let port = free_port();
        let log = std::fs::File::create(dir.join("approuter.log"))?;
        let child = Command::new("node")
            .arg(node_dir().join("node_modules/@sap/approuter/approuter.js"))
            .current_dir(&dir)
            .env("NODE_ENV", "development")
            .env("PORT", port.to_string())
            .env("NODE_PATH", &modules)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the approuter (node)")?;
        let guard = ChildGuard(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_listener(addr, Duration::from_secs(30)).with_context(|| {
            format!(
                "approuter log:\n{}",
                std::fs::read_to_string(dir.join("approuter.log")).unwrap_or_default()
            )
        })?;
        Ok(Approuter {
            addr,
            dir,
            _child: guard,
        })
    }
}
