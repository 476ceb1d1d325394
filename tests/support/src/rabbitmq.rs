//! A private RabbitMQ broker (Debian's `rabbitmq-server`) with its Web-STOMP plugin, on
//! loopback ports of its own: its own node name, Erlang port mapper port, data and log
//! directories, so that it neither needs nor disturbs a system broker.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{ChildGuard, free_port, tempdir, wait_for_listener};

/// Where Debian installs the broker's own start script (the one in /usr/sbin switches to
/// the `rabbitmq` user, which a test's private directories do not belong to).
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A running broker; stopped (with its port mapper) when dropped.
pub struct RabbitMq {
    /// Web-STOMP's WebSocket listener (path `/ws`).
    pub web_stomp: SocketAddr,
    dir: PathBuf,
    epmd_port: u16,
    _child: ChildGuard,
}

impl RabbitMq {
    /// Starts a broker whose default virtual host is `vhost` (RabbitMQ's is `/`), the
    /// `guest` user allowed on loopback as by default.
    pub fn start(vhost: &str) -> Result<RabbitMq> {
        if !Path::new(SERVER).exists() {
            bail!("{SERVER} is missing: install Debian's rabbitmq-server (scripts/test does)");
        }
        let dir = tempdir("rabbitmq")?;
        let web_stomp = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "listeners.tcp.default = 127.0.0.1:{}\n\
             stomp.listeners.tcp.1 = 127.0.0.1:{}\n\
             web_stomp.tcp.ip = 127.0.0.1\n\
             web_stomp.tcp.port = {}\n\
             default_vhost = {vhost}\n",
            free_port(),
            free_port(),
            web_stomp.port(),
        );
        std::fs::write(dir.join("rabbitmq.conf"), config)?;
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_web_stomp].\n")?;
        let epmd_port = free_port();
        let log = std::fs::File::create(dir.join("broker.log"))?;
        let child = Command::new(SERVER)
            .env("HOME", &dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("wscheck{}@localhost", web_stomp.port()),
            )
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("broker.pid"))
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_LOGS", "-")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting rabbitmq-server")?;
        let broker = RabbitMq {
            web_stomp,
            dir,
            epmd_port,
            _child: ChildGuard(child),
        };
        wait_for_listener(web_stomp, Duration::from_secs(60))
            .with_context(|| format!("rabbitmq log:\n{}", broker.log()))?;
        Ok(broker)
    }

    /// What the broker wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // The start script runs the Erlang VM as a child: stop the VM by its pid file,
        // then the port mapper the VM started in the background.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("broker.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = Command::new("epmd")
            .args(["-port", &self.epmd_port.to_string(), "-kill"])
            .status();
    }
}
