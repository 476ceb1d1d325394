//! The bundle `cf push` uploads is what the manifest runs: built by the one documented
//! command, at the manifest's `path`, started by its `command`, runnable on cflinuxfs4; and
//! the static `wscheck` beside the server, run as `cf ssh` and `cf run-task` would run it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_yaml_ng::Value;
use wscheck_testkit::{ChildGuard, free_port, next_text, repo_root, round_trip, ws_connect};

/// Newest glibc on the cflinuxfs4 stack (Ubuntu 22.04).
const STACK_GLIBC: (u32, u32) = (2, 35);

fn manifest_app() -> Value {
    let text = std::fs::read_to_string(repo_root().join("manifest.yml")).unwrap();
    let manifest: Value = serde_yaml_ng::from_str(&text).unwrap();
    let apps = manifest["applications"].as_sequence().unwrap();
    assert_eq!(apps.len(), 1, "one app in manifest.yml");
    apps[0].clone()
}

/// Whether the ELF file has a PT_INTERP program header (needs a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// The newest `GLIBC_2.N` symbol version the binary references.
fn newest_glibc(elf: &[u8]) -> Option<(u32, u32)> {
    let needle = b"GLIBC_2.";
    elf.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .filter_map(|(i, _)| {
            let digits: String = elf[i + needle.len()..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|b| *b as char)
                .collect();
            digits.parse().ok().map(|minor| (2, minor))
        })
        .max()
}

/// Runs `command` under `bash -c` in `dir` with a container's bare environment (`HOME` is
/// where CF unpacks the bundle's parent), and returns its exit code and stdout.
fn in_container(dir: &Path, home: &Path, command: &str) -> (Option<i32>, String) {
    let output = Command::new("bash")
        .args(["-c", command])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The bundle's `wscheck`, unpacked as CF unpacks it (`$HOME/app`): static, it runs, and it
/// probes the server on `port` as `cf ssh APP -c 'app/wscheck ...'` (from `$HOME`) and
/// `cf run-task APP --command './wscheck ... --format json'` (from `$HOME/app`) would;
/// an internal route's name goes to the app port.
fn probe_from_inside(bundle: &Path, port: u16) {
    let home = wscheck_testkit::tempdir("bundle-home").unwrap();
    let app = home.join("app");
    std::fs::create_dir_all(&app).unwrap();
    for entry in std::fs::read_dir(bundle).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), app.join(entry.file_name())).unwrap();
    }
    let elf = std::fs::read(app.join("wscheck")).expect("the bundle carries wscheck");
    assert!(
        !has_interpreter(&elf),
        "wscheck in the bundle is not static"
    );
    let version = format!("wscheck {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        in_container(&home, &home, "app/wscheck --version"),
        (Some(0), version)
    );

    let (code, table) = in_container(
        &home,
        &home,
        &format!("app/wscheck ws://127.0.0.1:{port}/ --only"),
    );
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains("Verdict: use ws://127.0.0.1:"), "{table}");

    let task = format!(
        "./wscheck chat.apps.internal --connect-to chat.apps.internal:8080:127.0.0.1:{port} --format json"
    );
    let (code, json) = in_container(&app, &home, &task);
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON report");
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["verdict"]["ok"], true, "{report:#}");
    assert_eq!(report["probes"][0]["url"], "ws://chat.apps.internal:8080/");
    assert_eq!(report["probes"][0]["diagnosis"]["code"], "ok");
    assert_eq!(
        report["app"]["info"]["environment"]["instance_guid"],
        "9a1c-bundle"
    );
    std::fs::remove_dir_all(&home).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_build_fills_the_manifest_path_with_a_binary_that_runs_on_cflinuxfs4() {
    let root = repo_root();
    let status = Command::new(root.join("scripts/build-cf-bundle"))
        .current_dir(&root)
        .status()
        .expect("run scripts/build-cf-bundle");
    assert!(status.success(), "scripts/build-cf-bundle failed: {status}");

    let app = manifest_app();
    assert_eq!(app["buildpacks"][0].as_str(), Some("binary_buildpack"));
    assert_eq!(app["health-check-type"].as_str(), Some("http"));
    assert_eq!(app["health-check-http-endpoint"].as_str(), Some("/healthz"));
    assert_eq!(app["random-route"].as_bool(), Some(true));
    assert_eq!(app["memory"].as_str(), Some("64M"));
    let command = app["command"].as_str().unwrap();
    let program = command
        .strip_prefix("exec ")
        .expect("command starts with exec, so the server gets CF's SIGTERM")
        .split_whitespace()
        .next()
        .unwrap();
    let bundle = root.join(app["path"].as_str().unwrap());
    let binary = bundle.join(program);
    assert!(binary.is_file(), "{} missing", binary.display());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&binary).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} not executable", binary.display());
    }

    let elf = std::fs::read(&binary).unwrap();
    if has_interpreter(&elf) {
        let newest = newest_glibc(&elf).expect("a dynamic binary names its glibc versions");
        assert!(
            newest <= STACK_GLIBC,
            "needs glibc {newest:?}, cflinuxfs4 has {STACK_GLIBC:?}"
        );
    }

    // Start it the way CF does: `bash -c <command>` in the app dir, with CF's variables.
    let port = free_port();
    let child = Command::new("bash")
        .args(["-c", command])
        .current_dir(&bundle)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PORT", port.to_string())
        .env("CF_INSTANCE_INDEX", "0")
        .env("CF_INSTANCE_GUID", "9a1c-bundle")
        .env(
            "VCAP_APPLICATION",
            r#"{"application_name":"wscheck-server","application_uris":["wscheck-server-happy-fox.apps.example.test"]}"#,
        )
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wscheck_testkit::wait_for_listener(addr, Duration::from_secs(10)).unwrap();

    let client = wscheck_testkit::http_client();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let info: wscheck_server::info::Info = client
        .get(format!("http://{addr}/.wscheck/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info.environment.port, Some(port.to_string()));
    assert_eq!(
        info.environment.application_name.as_deref(),
        Some("wscheck-server")
    );
    assert_eq!(
        info.environment.instance_guid.as_deref(),
        Some("9a1c-bundle")
    );

    let mut ws = ws_connect(addr, "/", &[]).await.unwrap();
    assert_eq!(
        next_text(&mut ws).await.unwrap(),
        "Hi, this is the Echo-Server"
    );
    assert_eq!(round_trip(&mut ws, "bundle").await.unwrap(), "Echo: bundle");

    probe_from_inside(&bundle, port);

    // `exec` means the server itself gets the SIGTERM CF sends, and exits 0.
    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(Path::new(&binary).exists());
}
