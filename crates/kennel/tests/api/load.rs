//! 200 clients at once (loopback only, bounded in count and time):
//! listing, reading counters, starting and stopping VEs, and changing
//! one VE's addresses. No request fails for a reason other than the
//! VE's state, and no change is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::TestRoot;
use crate::service::Service;

/// Clients at once: 200 on a host; 40 in the cgroup v2 VM, whose
/// emulated CPU is several times slower (the concurrency is the same
/// code; the VM checks it on cgroup v2).
fn clients() -> usize {
    if std::env::var_os("KP_GUEST").is_some() {
        40
    } else {
        200
    }
}
const READS_PER_CLIENT: usize = 10;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
fn two_hundred_clients_at_once_lose_nothing() {
    let root = TestRoot::new("api-load");
    for id in ["1", "2", "3", "4"] {
        root.start_busybox(id, &["--storage", "dir"]);
    }
    root.create_busybox("9", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let token = svc.admin(&root);
    let cert = std::fs::read(root.dir.join("lib/api/tls/cert.pem")).unwrap();
    let url = svc.url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let results = rt.block_on(async move {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(120))
            // Shorter than the service's wait for a next request on a
            // kept-alive connection: a pooled connection the service has
            // closed is never reused.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let shared = Arc::new((client, url, token));
        let mut tasks = Vec::new();
        for n in 0..clients() {
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(async move {
                let (client, url, token) = &*shared;
                let mut seen: Vec<(&'static str, Duration, u16, Value)> = Vec::new();
                let call = |method: reqwest::Method, path: String, body: Option<Value>| {
                    let mut r = client
                        .request(method, format!("{url}{path}"))
                        .bearer_auth(token);
                    if let Some(b) = body {
                        r = r.json(&b);
                    }
                    async move {
                        let t = Instant::now();
                        let resp = r.send().await.expect("the service answers");
                        let status = resp.status().as_u16();
                        let body: Value = resp.json().await.unwrap_or(Value::Null);
                        (t.elapsed(), status, body)
                    }
                };
                for i in 0..READS_PER_CLIENT {
                    let (d, s, b) = call(reqwest::Method::GET, "/v1/ves".into(), None).await;
                    seen.push(("list", d, s, b));
                    let ve = 1 + (n + i) % 4;
                    let (d, s, b) =
                        call(reqwest::Method::GET, format!("/v1/ves/{ve}/stat"), None).await;
                    seen.push(("stat", d, s, b));
                }
                // One distinct address from each client on VE 9.
                let ip = format!("198.18.{}.{}", n / 200, 1 + n % 200);
                // One change to a VE at a time: a panel retries `busy`.
                loop {
                    let body = Some(json!({"ip_add": [ip.clone()]}));
                    let (d, s, b) = call(reqwest::Method::PATCH, "/v1/ves/9".into(), body).await;
                    let busy = s == 409 && b["code"] == "busy";
                    seen.push(("set", d, s, b));
                    if !busy {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Every fifth client stops or starts VE 1..4.
                if n % 5 == 0 {
                    let ve = 1 + (n / 5) % 4;
                    let action = if (n / 20) % 2 == 0 {
                        "stop?timeout=5"
                    } else {
                        "start"
                    };
                    let (d, s, b) = call(
                        reqwest::Method::POST,
                        format!("/v1/ves/{ve}/actions/{action}"),
                        None,
                    )
                    .await;
                    seen.push(("action", d, s, b));
                }
                seen
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        all
    });
    let wall = started.elapsed();
    // Only the VE's state may refuse a request: stat of a stopped VE,
    // a start of a running one, a stop of a stopped one, another change
    // to the same VE under way (409).
    for (what, _, status, body) in &results {
        let ok = *status == 200
            || (*status == 409
                && matches!(
                    body["code"].as_str(),
                    Some("not_running" | "running" | "busy")
                ));
        assert!(ok, "{what}: {status} {body}");
    }
    // No lost update: every client's address is on VE 9.
    let cfg = root.config("9");
    let text = cfg.to_string();
    for n in 0..clients() {
        let ip = format!("198.18.{}.{}", n / 200, 1 + n % 200);
        assert!(text.contains(&format!("\"{ip}")), "{ip} lost: {text}");
    }
    for what in ["list", "stat", "set", "action"] {
        let mut d: Vec<Duration> = results
            .iter()
            .filter(|r| r.0 == what)
            .map(|r| r.1)
            .collect();
        if d.is_empty() {
            continue;
        }
        let n = d.len();
        eprintln!(
            "load: {what}: {n} requests, p50 {:.1} ms, p99 {:.1} ms",
            percentile(&mut d, 0.5).as_secs_f64() * 1e3,
            percentile(&mut d, 0.99).as_secs_f64() * 1e3
        );
    }
    eprintln!(
        "load: {} requests from {} clients in {:.1} s",
        results.len(),
        clients(),
        wall.as_secs_f64()
    );
    drop(svc);
    root.finish();
}
