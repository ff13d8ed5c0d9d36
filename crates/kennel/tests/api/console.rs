//! The console and a shell over a WebSocket: a web panel's terminal.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{secs, TestRoot};
use crate::service::Service;

/// Opens `path` as a WebSocket over the service's Unix socket (root),
/// sends `input`, and reads until `want` is seen or `limit` passes;
/// returns what was read.
fn session(svc: &Service, path: &str, input: &[&[u8]], want: &str, limit: Duration) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&svc.socket).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://kenneld{path}"), stream)
            .await
            .expect("the WebSocket opens");
        ws.send(Message::Text(r#"{"cols": 100, "rows": 30}"#.into()))
            .await
            .unwrap();
        for i in input {
            ws.send(Message::Binary(i.to_vec().into())).await.unwrap();
        }
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + limit;
        while !seen.contains(want) {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => seen.push_str(&String::from_utf8_lossy(&b)),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Err(_) => break,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("{e}: {seen}"),
            }
        }
        let _ = ws.close(None).await;
        seen
    })
}

#[test]
fn a_shell_and_the_console_work_over_a_websocket() {
    let root = TestRoot::new("api-console");
    root.start_busybox("7", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let seen = session(
        &svc,
        "/v1/ves/7/shell",
        &[b"stty size; echo hi-$((6*7)) $(hostname)\n"],
        "hi-42 7",
        secs(20),
    );
    assert!(seen.contains("hi-42 7"), "{seen:?}");
    assert!(
        seen.contains("30 100"),
        "the terminal has the browser's size: {seen:?}"
    );
    let seen = session(&svc, "/v1/ves/7/console", &[b"\n"], "login:", secs(20));
    assert!(seen.contains("login:"), "the VE's getty answers: {seen:?}");
    // Each session ended with its WebSocket: no `kennel enter` is left.
    let root_s = root.dir.to_string_lossy().to_string();
    assert!(crate::common::wait_for(secs(5), || {
        crate::common::processes().into_iter().all(|p| {
            let c = String::from_utf8_lossy(
                &std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default(),
            )
            .to_string();
            !(c.contains(&root_s) && (c.contains("\0enter\0") || c.contains("\0console\0")))
        })
    }));
    // A stopped VE has no console.
    root.ok(&["kill", "7"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&svc.socket).await.unwrap();
        tokio_tungstenite::client_async("ws://kenneld/v1/ves/7/shell", stream).await
    });
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 409),
        other => panic!("a stopped VE's shell opened: {other:?}"),
    }
    drop(svc);
    root.finish();
}
