//! Internal routes (`<app>.apps.internal`): probed on the app's port with ws://, and a
//! connect time-out there diagnosed as a missing network policy. Reached with
//! `--connect-to` on loopback only.

use std::net::SocketAddr;

use wscheck_testkit::fixtures;

use crate::support::{Args, args, check, closed_port, single};

const INTERNAL: &str = "chat.apps.internal";

/// `wscheck chat.apps.internal`, its app port sent to `peer`.
fn internal(peer: SocketAddr) -> Args {
    let mut a = args(INTERNAL);
    a.add(
        "--connect-to",
        format!("{INTERNAL}:8080:127.0.0.1:{}", peer.port()),
    );
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_internal_port_means_no_network_policy() {
    let full = fixtures::full_backlog().unwrap();
    let mut a = internal(full.addr);
    a.set("--connect-timeout", "800ms");
    let report = check(&a).await;
    let probe = single(&report);
    assert_eq!(probe.result.candidate.url, "ws://chat.apps.internal:8080/");
    let d = &probe.diagnosis;
    assert_eq!(d.code.as_str(), "internal_route_no_policy", "{report:#?}");
    assert!(d.fix.contains("cf add-network-policy"), "{}", d.fix);
    assert!(
        d.detail
            .contains("cf add-network-policy SOURCE_APP DEST_APP --port 8080 --protocol tcp"),
        "{}",
        d.detail
    );
    assert!(!report.verdict.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_internal_port_names_the_listener_and_the_policy() {
    let report = check(&internal(closed_port())).await;
    let d = &single(&report).diagnosis;
    assert_eq!(d.code.as_str(), "connect_refused", "{report:#?}");
    assert!(d.detail.contains("0.0.0.0:8080"), "{}", d.detail);
    assert!(d.detail.contains("cf add-network-policy"), "{}", d.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_route_reaching_the_bundled_server_is_ok() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let report = check(&internal(app.addr)).await;
    let probe = single(&report);
    assert_eq!(probe.diagnosis.code.as_str(), "ok", "{report:#?}");
    assert!(report.verdict.ok, "{report:#?}");
    assert_eq!(
        report.verdict.recommended_url.as_deref(),
        Some("ws://chat.apps.internal:8080/")
    );
    assert!(
        !report.verdict.summary.contains("unencrypted"),
        "{}",
        report.verdict.summary
    );
    assert_eq!(
        probe.result.candidate.host_header,
        "chat.apps.internal:8080"
    );
}
