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

fn nginx_config(
    dir: &Path,
    routes: &[Route],
    tls: SocketAddr,
    plain: SocketAddr,
    cert: &Path,
    key: &Path,
) -> String {
    let d = dir.display();
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
    default_type text/plain;
    server_tokens off;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    # Like gorouter: Connection: upgrade only when the client asked for an upgrade.
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}

    # An unmapped host gets gorouter's answer.
    server {{
        listen {tls} ssl default_server;
        listen {plain} default_server;
        location / {{
            add_header X-Cf-Routererror unknown_route always;
            return 404 "404 Not Found: Requested route ('$host') does not exist.\n";
        }}
    }}
"#,
        cert = cert.display(),
        key = key.display(),
    );
    for route in routes {
        let upgrade = if route.pass_upgrade {
            "proxy_set_header Upgrade $http_upgrade;\n            proxy_set_header Connection $connection_upgrade;"
        } else {
            "# The classic mistake: hop-by-hop Upgrade/Connection are not passed on."
        };
        let idle = route
            .idle_timeout
            .map_or_else(|| "3600s".to_owned(), |t| format!("{}ms", t.as_millis()));
        // Gorouter balances instances round robin and honours X-Cf-App-Instance.
        let upstream = format!("app_{}", route.name.replace('-', "_"));
        let _ = writeln!(c, "    upstream {upstream} {{");
        for backend in &route.backends {
            let _ = writeln!(c, "        server {backend} max_fails=0;");
        }
        let _ = writeln!(
            c,
            "    }}\n    map $http_x_cf_app_instance $target_{upstream} {{\n        default {upstream};"
        );
        for (index, backend) in route.backends.iter().enumerate() {
            let _ = writeln!(c, "        \"{APP_GUID}:{index}\" {backend};");
        }
        let _ = writeln!(c, "    }}");
        let _ = write!(
            c,
            r#"
    server {{
        listen {tls} ssl;
        listen {plain};
        server_name {host};
        location / {{
            proxy_pass http://$target_{upstream};
            proxy_next_upstream off;
            proxy_http_version 1.1;
            {upgrade}
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Vcap-Request-Id $request_id;
            proxy_set_header X-Request-Start $msec;
            proxy_read_timeout {idle};
            proxy_send_timeout {idle};
            proxy_buffering off;
            error_page 502 504 = @endpoint_failure;
        }}
        location @endpoint_failure {{
            add_header X-Cf-Routererror "endpoint_failure (dial tcp $upstream_addr: connect: connection refused)" always;
            return 502 "502 Bad Gateway: Registered endpoint failed to handle the request.\n";
        }}
    }}
"#,
            host = route.host(),
        );
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
