//! What the fuzz targets (`fuzz/`, `scripts/fuzz`) found, each kept as a test.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wscheck::cli::to_plan::plan_from_argv;
use wscheck::report::redact::without_userinfo;
use wscheck_testkit::fixtures;

/// target_url: `wss://:secret@host` (a password, no user name) was no credential, so the
/// password was neither sent nor taken out of the TARGET the report shows.
#[test]
fn a_password_without_a_user_name_is_a_credential_and_never_shown() {
    let plan = plan_from_argv(&["wss://:s3cret@app.example.com/ws"]).unwrap();
    assert_eq!(
        plan.target.userinfo,
        Some((String::new(), "s3cret".to_owned()))
    );
    assert!(plan.has_credentials());
    assert_eq!(plan.target.input, "wss://app.example.com/ws");
    assert_eq!(without_userinfo(&plan.target.input), plan.target.input);
    assert!(plan.candidates.iter().all(|c| !c.url.contains("s3cret")));

    // An empty user information (`@` or `:@`) is none.
    let plan = plan_from_argv(&["wss://:@app.example.com/ws"]).unwrap();
    assert_eq!(plan.target.userinfo, None);
}

/// frame_cutter: a frame whose 64-bit length is `u64::MAX` overflowed the server's frame
/// cutter (a panic in debug builds: the session died without a close frame). It is an
/// oversize frame: 1009, as for any other.
#[tokio::test]
async fn the_bundled_server_closes_1009_on_a_frame_announcing_u64_max_bytes() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let mut bytes = b"GET /ws HTTP/1.1\r\nHost: app.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    bytes.extend([0x82, 0xff]);
    bytes.extend([0xff; 8]);
    bytes.extend([1, 2, 3, 4, 0, 0, 0, 0]);
    tcp.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(answer.starts_with(b"HTTP/1.1 101"), "{answer:?}");
    let close = answer
        .windows(2)
        .position(|w| w[0] == 0x88 && usize::from(w[1]) > 1)
        .map(|at| &answer[at + 2..at + 4]);
    assert_eq!(close, Some(&[0x03, 0xf1][..]), "a 1009 close: {answer:?}");
}
