//! Test harness shared by the suites: paths, real peers started as child processes (Node
//! `ws`, the article's scripts), WebSocket helpers, and rcgen certificates made at test time.

pub mod fixtures;
pub mod pki;
pub mod rabbitmq;
pub mod standin;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `tests/node`: package.json, package-lock.json and the Node peers.
pub fn node_dir() -> PathBuf {
    repo_root().join("tests/node")
}

/// Installs the Node packages of `tests/node` with `npm ci` when they are missing or stale.
/// A file lock keeps parallel test binaries from installing at the same time.
pub fn ensure_node_modules() -> Result<PathBuf> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = node_dir();
    if *done {
        return Ok(dir.join("node_modules"));
    }
    let lock_file = std::fs::File::create(std::env::temp_dir().join("wscheck-npm.lock"))?;
    lock_file.lock()?;
    let wanted =
        std::fs::read(dir.join("package-lock.json")).context("tests/node/package-lock.json")?;
    let stamp = dir.join("node_modules/.wscheck-installed");
    if std::fs::read(&stamp).ok().as_deref() != Some(&wanted[..]) {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .context("running `npm ci` in tests/node (is Node.js with npm installed?)")?;
        if !status.success() {
            bail!("`npm ci` in tests/node failed with {status}");
        }
        std::fs::write(&stamp, &wanted)?;
    }
    *done = true;
    Ok(dir.join("node_modules"))
}

/// The `bin` folder of `tests/python/.venv` (Flask, Flask-Sock: the Python apps of
/// `tests/apps`), created with `python3 -m venv` and filled with `pip install -r
/// tests/python/requirements.txt` when missing or stale, as `scripts/test` does. Put it
/// first on `PATH` so that a manifest's `python app.py` runs in it. A file lock keeps
/// parallel test binaries from installing at the same time.
pub fn python_venv() -> Result<PathBuf> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = repo_root().join("tests/python");
    let venv = dir.join(".venv");
    let bin = venv.join("bin");
    if *done {
        return Ok(bin);
    }
    let lock_file = std::fs::File::create(std::env::temp_dir().join("wscheck-venv.lock"))?;
    lock_file.lock()?;
    let wanted =
        std::fs::read(dir.join("requirements.txt")).context("tests/python/requirements.txt")?;
    let stamp = venv.join(".wscheck-installed");
    if std::fs::read(&stamp).ok().as_deref() != Some(&wanted[..]) || !bin.join("python").exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("running `python3 -m venv` (is Python 3 with venv installed?)")?;
        if !status.success() {
            bail!(
                "`python3 -m venv tests/python/.venv` failed with {status} (on Debian: apt-get install python3-venv)"
            );
        }
        let status = Command::new(bin.join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(dir.join("requirements.txt"))
            .status()
            .context("running pip in tests/python/.venv")?;
        if !status.success() {
            bail!("`pip install -r tests/python/requirements.txt` failed with {status}");
        }
        std::fs::write(&stamp, &wanted)?;
    }
    *done = true;
    Ok(bin)
}

/// An HTTP client for tests (reqwest on rustls with the ring provider, as the product uses).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// A child process killed when dropped, so a failing test leaves nothing behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `wscheck-server` process on a loopback port it chose (`PORT=0`), its output kept.
pub struct ServerProcess {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    /// Everything the process printed (stdout and stderr).
    output: std::sync::Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `binary` with a clean environment plus `env`; waits for its listening line.
    pub fn start(binary: &Path, env: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(command.spawn().expect("start wscheck-server"));
        let output = std::sync::Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let stdout = child.0.stdout.take().expect("piped stdout");
        let stderr = child.0.stderr.take().expect("piped stderr");
        for (pipe, port_tx) in [
            (
                Box::new(stdout) as Box<dyn std::io::Read + Send>,
                Some(port_tx),
            ),
            (Box::new(stderr), None),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let (Some(tx), Some(rest)) =
                        (&port_tx, line.split("listening addr=0.0.0.0:").nth(1))
                        && let Some(Ok(port)) =
                            rest.split_whitespace().next().map(str::parse::<u16>)
                    {
                        let _ = tx.send(port);
                    }
                    let mut all = output.lock().unwrap_or_else(|p| p.into_inner());
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server printed its listening address");
        ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            output,
        }
    }

    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asserts the process still runs and never printed a panic.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.child.0.try_wait().expect("wait").is_none(),
            "server exited:\n{}",
            self.output()
        );
        let output = self.output();
        assert!(!output.contains("panicked"), "server panicked:\n{output}");
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn terminate(&self) {
        self.signal("TERM");
    }
}

/// The `wscheck-server` binary of this workspace (debug), built if needed.
pub fn server_binary() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--locked",
                "-p",
                "wscheck-server",
                "--bin",
                "wscheck-server",
            ])
            .current_dir(repo_root())
            .status()
            .expect("cargo build -p wscheck-server");
        assert!(status.success(), "building wscheck-server failed");
        *built = true;
    }
    // Next to this test binary's own profile directory (target/debug/deps/..).
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("wscheck-server")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| repo_root().join("target/debug/wscheck-server"))
}

/// A port that was free a moment ago on 127.0.0.1, for peers that only take a port number
/// (the article's `server.js` reads `PORT`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_listener(addr: SocketAddr, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listening on {addr} after {within:?}")
}

/// Starts the article's `server.js` on a free loopback port.
pub fn start_article_server() -> Result<(ChildGuard, SocketAddr)> {
    let modules = ensure_node_modules()?;
    let port = free_port();
    let child = Command::new("node")
        .arg(node_dir().join("article/server.js"))
        .env("PORT", port.to_string())
        .env("NODE_PATH", &modules)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting node (is Node.js installed?)")?;
    let guard = ChildGuard(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_listener(addr, Duration::from_secs(10))?;
    Ok((guard, addr))
}

/// Runs the article's `client.js` against `url` (its `const url = ...` line replaced, as
/// the article tells readers to) and returns the lines it printed once it printed
/// `expected_lines` lines, or whatever it printed within ten seconds.
pub fn run_article_client(url: &str, expected_lines: usize) -> Result<Vec<String>> {
    let modules = ensure_node_modules()?;
    let original = std::fs::read_to_string(node_dir().join("article/client.js"))?;
    let mut replaced = 0;
    let script: String = original
        .lines()
        .map(|line| {
            if line.starts_with("const url = ") {
                replaced += 1;
                format!("const url = {url:?}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    if replaced != 1 {
        bail!("client.js should have exactly one `const url = ` line, found {replaced}");
    }
    let dir = tempdir("article-client")?;
    let path = dir.join("client.js");
    std::fs::write(&path, script)?;
    let child = Command::new("node")
        .arg(&path)
        .env("NODE_PATH", &modules)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting node")?;
    let mut guard = ChildGuard(child);
    let stdout = guard.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while lines.len() < expected_lines {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    Ok(lines)
}

/// Opens `url` in Debian's headless Chromium (driven by `tests/node/browser/check-page.js`
/// with playwright-core) and returns what the bundled server's page showed. `map_hosts`
/// goes to Chromium's `--host-resolver-rules` (names to loopback, never to the network).
pub fn browser_check(url: &str, map_hosts: Option<&str>) -> Result<serde_json::Value> {
    let modules = ensure_node_modules()?;
    if !Path::new("/usr/bin/chromium").exists() {
        bail!(
            "Chromium is not installed: run scripts/test (it installs Debian's chromium), or apt-get install chromium"
        );
    }
    let screenshot = tempdir("browser")?.join("page.png");
    let mut command = Command::new("node");
    command
        .arg(node_dir().join("browser/check-page.js"))
        .arg(url)
        .arg(&screenshot)
        .env("NODE_PATH", &modules);
    if let Some(rules) = map_hosts {
        command.env("MAP_HOSTS", rules);
    }
    let output = command.output().context("running node")?;
    if !output.status.success() {
        bail!(
            "check-page.js failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// A fresh, empty directory under the system temp dir.
pub fn tempdir(label: &str) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wscheck-{label}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a plain WebSocket to `addr` at `path`, with extra request headers.
pub async fn ws_connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Ws> {
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    let tcp = TcpStream::connect(addr).await?;
    let (ws, _response) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(request, tcp),
    )
    .await
    .context("handshake timed out")??;
    Ok(ws)
}

/// Reads the next data message as text, within five seconds.
pub async fn next_text(ws: &mut Ws) -> Result<String> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Err(_) => bail!("no message within 5 s"),
            Ok(None) => bail!("stream ended"),
            Ok(Some(Err(error))) => bail!("websocket error: {error}"),
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.to_string()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(other))) => bail!("expected text, got {other:?}"),
        }
    }
}

/// Sends a text message and returns the reply.
pub async fn round_trip(ws: &mut Ws, text: &str) -> Result<String> {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(text))
        .await?;
    next_text(ws).await
}
