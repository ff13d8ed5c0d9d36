//! The hostile review's findings against the service (docs/SECURITY.md,
//! "The API service"), one test each: what a tenant's token, or anyone
//! who reaches the port, could do before.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{secs, wait_for, TestRoot};
use crate::service::Service;

fn port(svc: &Service) -> u16 {
    svc.url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// Idle connections from one address take only that address's share: root's
/// socket and other addresses still get in. The service's budget is set
/// to 600, so that 600 from one address would take all of it but for the
/// share per address (512).
#[test]
fn idle_connections_from_one_address_lock_nobody_else_out() {
    let root = TestRoot::new("api-idle");
    let svc = Service::start_with(&root, &["--max-connections", "600"]);
    let admin = svc.admin(&root);
    let held: Vec<TcpStream> = (0..600)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port(&svc))).ok())
        .collect();
    assert!(held.len() >= 512, "{}", held.len());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        svc.unix("GET", "/v1/host").0,
        200,
        "root's socket has its own budget"
    );
    let cert = std::fs::read(root.dir.join("lib/api/tls/cert.pem")).unwrap();
    let other = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = other
        .get(format!("{}/v1/host", svc.url))
        .bearer_auth(&admin)
        .send()
        .expect("another address gets in");
    assert_eq!(r.status(), 200);
    drop(held);
    drop(svc);
    root.finish();
}

fn batch_workers(root: &TestRoot) -> usize {
    let r = root.dir.to_string_lossy().to_string();
    crate::common::processes()
        .into_iter()
        .filter(|p| {
            let c = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let c = String::from_utf8_lossy(&c);
            c.contains("__batch-worker") && c.contains(&r)
        })
        .count()
}

/// Stops with timeouts of the client's choice leave no worker behind,
/// and a second change to a VE under way is refused at once.
#[test]
fn a_client_cannot_make_the_service_keep_processes() {
    let root = TestRoot::new("api-procs");
    root.create_busybox("3", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "3", "--role", "operator"],
    );
    let before = batch_workers(&root);
    for t in 0..20 {
        let a = svc.post(
            &format!("/v1/ves/3/actions/stop?timeout={t}"),
            Some(&acme),
            None,
        );
        assert_eq!(a.body["code"], "not_running", "{a:?}");
    }
    assert!(
        wait_for(secs(5), || batch_workers(&root) <= before),
        "{} workers left, {before} before",
        batch_workers(&root)
    );
    drop(svc);
    root.finish();
}

/// A tenant's change waiting for the VE's lock finds, once it holds it,
/// that the VE was made again under its id: refused as missing, not done.
#[test]
fn a_change_acts_only_on_the_granted_ve_under_its_lock() {
    let root = TestRoot::new("api-regrant-lock");
    root.create_busybox("4", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "4", "--role", "operator"],
    );
    let lock = root.dir.join("run/locks/ve-4");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .unwrap();
    // Hold the VE's lock while the tenant's start waits for it.
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "3"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let conf = root.dir.join("lib/ve/4/ve.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let uuid = root.config("4")["uuid"].as_str().unwrap().to_string();
    let started = std::thread::scope(|s| {
        let req = s.spawn(|| svc.post("/v1/ves/4/actions/start", Some(&acme), None));
        std::thread::sleep(Duration::from_millis(500));
        // Meanwhile, "another VE" under the same id (as a destroy and a
        // create would leave it).
        std::fs::write(
            &conf,
            text.replace(&uuid, "00000000-0000-4000-8000-000000000000"),
        )
        .unwrap();
        req.join().unwrap()
    });
    let _ = holder.wait();
    assert_eq!(started.status, 404, "{started:?}");
    assert_eq!(started.body["code"], "no_such_ve");
    std::fs::write(&conf, text).unwrap();
    assert_eq!(root.status("4")["state"], "stopped", "nothing was started");
    drop(svc);
    root.finish();
}

/// A revoked token's shell ends; a GET that opens nothing writes no
/// audit line; a frame over 64 KiB is refused; a tenant learns nothing
/// of others' activity from /v1/host.
#[test]
fn sessions_end_with_their_token_and_record_only_what_happened() {
    let root = TestRoot::new("api-sessions");
    root.start_busybox("6", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "6", "--role", "operator"],
    );
    let lines = svc.audit().len();
    let plain = svc.get("/v1/ves/6/shell", Some(&acme));
    assert_eq!(plain.status, 400, "{plain:?}");
    assert_eq!(
        svc.audit().len(),
        lines,
        "no shell was opened: nothing to record"
    );
    assert_eq!(
        svc.get("/v1/host", Some(&acme)).body["last_event"],
        json!(null)
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ended = rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&svc.socket).await.unwrap();
        let mut req = "ws://kenneld/v1/ves/6/shell".into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {acme}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .expect("opens");
        ws.send(Message::Binary(b"echo in-$((2+3))\n".to_vec().into()))
            .await
            .unwrap();
        let mut seen = String::new();
        let t = Instant::now();
        while !seen.contains("in-5") && t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(Ok(Message::Binary(b)))) =
                tokio::time::timeout(Duration::from_secs(20), ws.next()).await
            {
                seen.push_str(&String::from_utf8_lossy(&b));
            }
        }
        assert!(seen.contains("in-5"), "{seen:?}");
        let id = &acme[3..19];
        crate::common::TestRoot::ok(&root, &["api", "token", "revoke", id]);
        let t = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    break Some(t.elapsed())
                }
                Ok(Some(Ok(_))) => continue,
                Err(_) => break None,
            }
        }
    });
    assert!(ended.is_some(), "the shell of a revoked token ends");

    // A message larger than the session's limit closes it. (The frame
    // limit refuses a frame at its header, before buffering it; this
    // does not tell the two limits apart.)
    let admin = svc.admin(&root);
    let closed = rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&svc.socket).await.unwrap();
        let mut req = "ws://kenneld/v1/ves/6/shell".into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {admin}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .expect("opens");
        let _ = ws.send(Message::Binary(vec![b'x'; 100 << 10].into())).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => break false,
            }
        }
    });
    assert!(closed, "an oversized frame ends the session");
    drop(svc);
    root.finish();
}

/// Many requests with one new token at once (a panel's workers) are
/// checked once, not each counted as an attempt: none is refused.
#[test]
fn a_burst_with_a_new_token_is_let_in() {
    let root = TestRoot::new("api-burst");
    let svc = Service::start(&root);
    let token = svc.admin(&root);
    let cert = std::fs::read(root.dir.join("lib/api/tls/cert.pem")).unwrap();
    let url = svc.url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let statuses = rt.block_on(async move {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let (c, u, t) = (client.clone(), url.clone(), token.clone());
                tokio::spawn(async move {
                    c.get(format!("{u}/v1/ves"))
                        .bearer_auth(t)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or(0));
        }
        out
    });
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    drop(svc);
    root.finish();
}

/// An event stream opened on the socket as `token` (root without one):
/// its status, and the connection, held open.
fn open_stream(svc: &Service, token: Option<&str>) -> (String, std::os::unix::net::UnixStream) {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&svc.socket).expect("connect");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET /v1/events HTTP/1.1\r\nHost: kenneld\r\n{auth}\r\n").expect("ask");
    s.set_read_timeout(Some(secs(30))).expect("timeout");
    let mut status = String::new();
    std::io::BufReader::new(&s)
        .read_line(&mut status)
        .expect("a status line");
    (status, s)
}

/// A shell over the socket as `token` (root without one): the
/// WebSocket, or the status it was refused with.
async fn open_shell(
    svc: &Service,
    token: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>,
    tokio_tungstenite::tungstenite::http::StatusCode,
> {
    let stream = tokio::net::UnixStream::connect(&svc.socket).await.unwrap();
    let mut req = "ws://kenneld/v1/ves/6/shell".into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::client_async(req, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status()),
        Err(e) => panic!("shell: {e}"),
    }
}

/// A token holds only so many event streams and shells open, and the
/// host only so many shells (each a host pty and a process): the next
/// one is refused with 429 until one ends, and other tokens are not held
/// back by one token's share.
#[test]
fn a_token_holds_only_so_many_streams_and_shells_open() {
    let root = TestRoot::new("api-slots");
    root.start_busybox("6", &["--storage", "dir"]);
    let svc = Service::start_with(
        &root,
        &[
            "--streams-per-token",
            "3",
            "--terminals-per-token",
            "2",
            "--terminals",
            "3",
        ],
    );
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "6", "--role", "operator"],
    );
    let admin = svc.admin(&root);

    let mut streams: Vec<_> = (0..3).map(|_| open_stream(&svc, Some(&acme))).collect();
    for (status, _) in &streams {
        assert!(status.contains(" 200 "), "{status}");
    }
    let (refused, _) = open_stream(&svc, Some(&acme));
    assert!(refused.contains(" 429 "), "{refused}");
    let (other, _other) = open_stream(&svc, Some(&admin));
    assert!(other.contains(" 200 "), "another token: {other}");
    streams.pop();
    let again = || open_stream(&svc, Some(&acme)).0;
    assert!(
        wait_for(secs(10), || again().contains(" 200 ")),
        "a stream that ended gives its place back"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let a1 = open_shell(&svc, Some(&acme)).await.expect("first shell");
        let _a2 = open_shell(&svc, Some(&acme)).await.expect("second shell");
        assert_eq!(
            open_shell(&svc, Some(&acme))
                .await
                .err()
                .map(|s| s.as_u16()),
            Some(429)
        );
        let _b = open_shell(&svc, Some(&admin))
            .await
            .expect("the host's third");
        // The host's bound holds root back too.
        assert_eq!(
            open_shell(&svc, None).await.err().map(|s| s.as_u16()),
            Some(429)
        );
        drop(a1);
        let mut reopened = false;
        for _ in 0..50 {
            if open_shell(&svc, None).await.is_ok() {
                reopened = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(reopened, "a shell that ended gives its place back");
    });
    drop(streams);
    drop(svc);
    root.finish();
}
