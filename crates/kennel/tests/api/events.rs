//! The event stream (`GET /v1/events`, Server-Sent Events) with real VEs:
//! starts and stops arrive in order and within milliseconds, OOM kills
//! and refused forks are events, a client that reconnects with the last
//! id it saw misses nothing (also across a restart of the service, which
//! publishes what happened while it was down), filters narrow the
//! stream, and a tenant sees only its own VEs' events.

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::common::{secs, TestRoot};
use crate::service::Service;

/// One event as a client reads it.
#[derive(Debug, Clone)]
struct Sse {
    /// The id as a number (a host admin's).
    id: Option<u64>,
    /// The id as sent.
    raw_id: String,
    event: String,
    data: Value,
    /// When it arrived.
    at: Instant,
}

impl Sse {
    fn ve(&self) -> &str {
        self.data["ve"].as_str().unwrap_or("")
    }

    /// `state` events: the state it went to.
    fn to(&self) -> &str {
        self.data["to"].as_str().unwrap_or("")
    }

    fn is_state(&self, ve: &str, to: &str) -> bool {
        self.event == "state" && self.ve() == ve && self.to() == to
    }
}

/// An open stream, read by a thread of its own (it ends when the service
/// closes the connection, or at the next event once this is dropped).
struct Stream {
    rx: Receiver<Sse>,
}

/// Opens `/v1/events` + `query` with `token` (and `Last-Event-ID`).
fn open(svc: &Service, root: &TestRoot, query: &str, token: &str, last_id: Option<u64>) -> Stream {
    open_with(
        svc,
        root,
        query,
        token,
        last_id.map(|n| n.to_string()).as_deref(),
    )
}

/// [`open`], with any `Last-Event-ID`.
fn open_with(
    svc: &Service,
    root: &TestRoot,
    query: &str,
    token: &str,
    last_id: Option<&str>,
) -> Stream {
    let cert =
        std::fs::read(root.dir.join("lib/api/tls/cert.pem")).expect("the service's certificate");
    // No time limit: a stream lasts as long as the test wants it.
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).expect("pem"))
        .tls_built_in_root_certs(false)
        .timeout(None)
        .build()
        .expect("client");
    let mut req = client
        .get(format!("{}/v1/events{query}", svc.url))
        .bearer_auth(token);
    if let Some(n) = last_id {
        req = req.header("Last-Event-ID", n);
    }
    let resp = req.send().expect("the stream opens");
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { return };
            if line.is_empty() {
                if !data.is_empty() {
                    let raw_id = std::mem::take(&mut id);
                    let sse = Sse {
                        id: raw_id.parse().ok(),
                        raw_id,
                        event: std::mem::take(&mut event),
                        data: serde_json::from_str(&data).expect("data is JSON"),
                        at: Instant::now(),
                    };
                    if tx.send(sse).is_err() {
                        return;
                    }
                }
                data.clear();
            } else if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    });
    Stream { rx }
}

impl Stream {
    /// Events up to and including the first that `want` matches; fails
    /// the test (with what came) if none does within `within`.
    fn until(&self, within: Duration, what: &str, want: impl Fn(&Sse) -> bool) -> Vec<Sse> {
        let end = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) => {
                    let done = want(&e);
                    got.push(e);
                    if done {
                        return got;
                    }
                }
                Err(_) => panic!("no {what} within {within:?}; got {got:#?}"),
            }
        }
    }

    /// Everything that arrives within `within`.
    fn drain(&self, within: Duration) -> Vec<Sse> {
        let end = Instant::now() + within;
        let mut got = Vec::new();
        while let Ok(e) = self
            .rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            got.push(e);
        }
        got
    }
}

fn ids(events: &[Sse]) -> Vec<u64> {
    events.iter().filter_map(|e| e.id).collect()
}

fn uuid(root: &TestRoot, id: &str) -> String {
    root.config(id)["uuid"].as_str().expect("uuid").to_string()
}

/// How long after `done` event `e` arrived (0 if before).
fn after(e: &Sse, done: Instant) -> Duration {
    e.at.saturating_duration_since(done)
}

#[test]
fn state_changes_stream_in_order_and_a_reconnect_misses_nothing() {
    let root = TestRoot::new("api-events");
    root.create_busybox("101", &["--storage", "dir"]);
    let mut svc = Service::start(&root);
    let admin = svc.admin(&root);
    let t = Some(admin.as_str());
    // A VE that existed before the service's first start is no news.
    let live = open(&svc, &root, "", &admin, None);

    let made = svc.post(
        "/v1/ves",
        t,
        Some(json!({"id": "102", "template": "busybox", "storage": "dir"})),
    );
    assert_eq!(made.status, 201, "{made:?}");
    let got = live.until(secs(5), "102 created", |e| e.event == "created");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].ve(), "102");
    assert_eq!(got[0].data["uuid"], uuid(&root, "102").as_str());
    let first = got[0].id.expect("an id");
    assert_eq!(got[0].data["seq"], first);

    // Start and stop through the API: in order, each within moments of
    // the change.
    let started = svc.post("/v1/ves/101/actions/start", t, None);
    assert_eq!(started.status, 200, "{started:?}");
    let done = Instant::now();
    let got = live.until(secs(5), "101 running", |e| e.is_state("101", "running"));
    let run = got.last().expect("event");
    assert_eq!(run.data["from"], "stopped");
    assert_eq!(run.data["init_pid"], started.body["init_pid"]);
    assert!(run.data["started_at"].is_string(), "{run:?}");
    let late = after(run, done);
    eprintln!("start: the event came {late:?} after the answer");
    assert!(late < Duration::from_millis(500), "{late:?}");

    let stopped = svc.post("/v1/ves/101/actions/stop?timeout=20", t, None);
    assert_eq!(stopped.body["result"], "stopped", "{stopped:?}");
    let done = Instant::now();
    let got = live.until(secs(5), "101 stopped", |e| e.is_state("101", "stopped"));
    let tos: Vec<&str> = got.iter().map(Sse::to).collect();
    assert!(
        tos == ["stopping", "stopped"] || tos == ["stopped"],
        "{got:#?}"
    );
    let end = got.last().expect("event");
    assert!(end.data["how"].is_string(), "a stop says how: {end:?}");
    assert!(end.data.get("init_pid").is_none(), "{end:?}");
    let late = after(end, done);
    eprintln!("stop: the event came {late:?} after the answer");
    assert!(late < Duration::from_millis(500), "{late:?}");
    let seen = end.id.expect("id");

    // Ids are the sequence, without holes.
    let all = live.drain(Duration::from_millis(300));
    assert!(all.is_empty(), "nothing else happened: {all:#?}");

    // While this client is away: a start and a kill through the CLI.
    root.ok(&["start", "101"]);
    root.ok(&["kill", "101"]);
    let missed = live.until(secs(5), "101 killed", |e| e.is_state("101", "stopped"));
    assert_eq!(
        missed.last().map(|e| e.data["how"].clone()),
        Some(json!("killed by kennel"))
    );
    // A reconnect with the last id seen gets exactly those, by header
    // or query.
    let again = open(&svc, &root, "", &admin, Some(seen));
    let replayed = again.until(secs(5), "the kill again", |e| e.is_state("101", "stopped"));
    assert_eq!(ids(&replayed), ids(&missed));
    assert_eq!(replayed.first().and_then(|e| e.id), Some(seen + 1));
    let by_query = open(&svc, &root, &format!("?after={seen}"), &admin, None);
    let replayed = by_query.until(secs(5), "the kill again", |e| e.is_state("101", "stopped"));
    assert_eq!(ids(&replayed), ids(&missed));
    let last = missed.last().and_then(|e| e.id).expect("id");

    // Filters: one VE, one type; from the start of the journal.
    let only_102 = open(&svc, &root, "?after=0&ve=102", &admin, None);
    let got = only_102.drain(Duration::from_millis(500));
    assert_eq!(
        got.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["created"],
        "{got:#?}"
    );
    let only_state = open(&svc, &root, "?after=0&type=state", &admin, None);
    let got = only_state.drain(Duration::from_millis(500));
    assert!(
        got.len() >= 4 && got.iter().all(|e| e.event == "state" && e.ve() == "101"),
        "{got:#?}"
    );
    let bad = svc.get("/v1/events?type=bogus", t);
    assert_eq!(
        (bad.status.as_u16(), bad.body["code"].as_str()),
        (400, Some("bad_input"))
    );

    // The service goes away; meanwhile VE 101 starts. Back, it goes on
    // with the sequence, publishes the start it missed, and still
    // serves positions from before its restart.
    drop(live);
    svc.stop();
    root.ok(&["start", "101"]);
    let pid = root.init_pid("101");
    let mut svc = Service::start(&root);
    let back = open(&svc, &root, "", &admin, Some(first));
    let got = back.until(secs(5), "the start seen at the restart", |e| {
        e.is_state("101", "running") && e.id > Some(last)
    });
    assert_eq!(got.first().and_then(|e| e.id), Some(first + 1), "{got:#?}");
    let news = got.last().expect("event");
    assert_eq!(news.id, Some(last + 1), "{got:#?}");
    assert_eq!(news.data["init_pid"], pid);
    assert!(svc.get("/v1/host", t).body["last_event"].as_u64() >= Some(last + 1));

    // A position the service never gave (its journal was lost) is a gap.
    let ahead = open(&svc, &root, "", &admin, Some(last + 1000));
    let gap = ahead.until(secs(5), "a gap", |_| true);
    assert_eq!(gap[0].event, "gap");
    assert_eq!(gap[0].data["after"], last + 1000);

    // Destroying a running VE: its stop, then its end.
    assert_eq!(
        svc.call("DELETE", "/v1/ves/101?force=true", t, None)
            .status
            .as_u16()
            / 100,
        2
    );
    let got = back.until(secs(10), "101 destroyed", |e| e.event == "destroyed");
    assert!(got.iter().any(|e| e.is_state("101", "stopped")), "{got:#?}");
    svc.stop();
    root.finish();
}

#[test]
fn oom_kills_and_refused_forks_are_events() {
    let root = TestRoot::new("api-events-limits");
    root.start_busybox("101", &["--storage", "dir", "--memory", "64M"]);
    root.start_busybox("102", &["--storage", "dir", "--numproc", "16"]);
    let mut svc = Service::start(&root);
    let admin = svc.admin(&root);
    let hits = open(&svc, &root, "?type=oom,limit_hit", &admin, None);

    // A process that wants more than the VE's memory: the OOM killer of
    // the VE's limit takes it (the largest), not init. Until the watcher
    // has first looked at the VE, what its counters hold is where it
    // starts from, not news: on a slow CPU an OOM kill that early is not
    // an event, so a later one is made.
    let mut got = Vec::new();
    for _ in 0..3 {
        let _ = root.run(&[
            "exec",
            "101",
            "--",
            "/bin/dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=128M",
            "count=1",
        ]);
        got.extend(hits.drain(secs(5)));
        if got.iter().any(|e| e.event == "oom") {
            break;
        }
    }
    let oom = got
        .iter()
        .rev()
        .find(|e| e.event == "oom")
        .unwrap_or_else(|| panic!("no OOM kill in 101; got {got:#?}"));
    assert_eq!(oom.ve(), "101");
    assert_eq!(oom.data["uuid"], uuid(&root, "101").as_str());
    assert!(oom.data["kills"].as_u64() >= Some(1), "{oom:?}");
    assert!(
        oom.data["total"].as_u64() >= oom.data["kills"].as_u64(),
        "{oom:?}"
    );

    // A shell that forks past numproc.
    let _ = root.run(&[
        "exec",
        "102",
        "--",
        "/bin/sh",
        "-c",
        "for i in $(seq 40); do sleep 3 & done 2>/dev/null; true",
    ]);
    let got = hits.until(secs(10), "a refused fork in 102", |e| {
        e.event == "limit_hit" && e.ve() == "102"
    });
    let hit = got.last().expect("event");
    assert_eq!(hit.data["resource"], "numproc");
    assert!(hit.data["fails"].as_u64() >= Some(1), "{hit:?}");
    // The stream says what the counters say.
    let stat = svc.get("/v1/ves/102/stat", Some(&admin));
    let told: u64 = hits
        .drain(secs(2))
        .iter()
        .chain(got.iter())
        .filter(|e| e.ve() == "102" && e.event == "limit_hit")
        .map(|e| e.data["fails"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        stat.body["processes"]["fails"].as_u64(),
        Some(told),
        "{stat:?}"
    );
    assert!(got.iter().all(|e| e.ve() != "102" || e.event != "oom"));
    svc.stop();
    root.finish();
}

#[test]
fn a_tenant_sees_only_its_own_ves_events() {
    let root = TestRoot::new("api-events-tenants");
    root.create_busybox("101", &["--storage", "dir"]);
    root.create_busybox("102", &["--storage", "dir"]);
    let mut svc = Service::start(&root);
    let admin = svc.admin(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "101", "--role", "viewer"],
    );
    let all = open(&svc, &root, "", &admin, None);
    let mine = open(&svc, &root, "", &acme, None);
    // Asking for another's VE by name widens nothing.
    let nosy = open(&svc, &root, "?ve=102", &acme, None);

    // Each VE is seen running before it is killed: a start and a kill
    // closer together than the watcher looks may be told as one change.
    let mut seen = Vec::new();
    for id in ["102", "101"] {
        root.ok(&["start", id]);
        seen.extend(all.until(secs(5), "running", |e| e.is_state(id, "running")));
        root.ok(&["kill", id]);
    }
    seen.extend(all.until(secs(5), "101 stopped", |e| e.is_state("101", "stopped")));
    assert!(seen.iter().any(|e| e.ve() == "102"), "{seen:#?}");
    let got = mine.until(secs(5), "101 stopped", |e| e.is_state("101", "stopped"));
    assert!(got.iter().all(|e| e.ve() == "101"), "{got:#?}");
    assert!(got.iter().any(|e| e.is_state("101", "running")), "{got:#?}");
    // A tenant sees opaque cursors, not the numbers of the sequence over
    // all VEs: the gaps between its events would tell of the others'.
    for e in &got {
        assert!(e.id.is_none() && e.raw_id.len() == 32, "{e:?}");
        assert_eq!(e.data["seq"].as_str(), Some(e.raw_id.as_str()), "{e:?}");
    }
    // It resumes after one and misses nothing; from 0, it gets all kept.
    let again = open_with(&svc, &root, "", &acme, Some(&got[0].raw_id));
    let replay = again.until(secs(5), "101 stopped", |e| e.is_state("101", "stopped"));
    let raw = |v: &[Sse]| v.iter().map(|e| e.raw_id.clone()).collect::<Vec<_>>();
    assert_eq!(raw(&replay), raw(&got[1..]));
    let from_0 = open_with(&svc, &root, "?after=0", &acme, None);
    let replay = from_0.until(secs(5), "101 stopped", |e| e.is_state("101", "stopped"));
    assert_eq!(raw(&replay), raw(&got));
    // Numbers are refused: by trying them, it could find its events'
    // places. So is a cursor made up.
    for after in ["5", "00000000000000000000000000000001"] {
        let a = svc.get(&format!("/v1/events?after={after}"), Some(&acme));
        assert_eq!(a.status, 400, "{after}: {a:?}");
    }

    // 101 made again is another VE: its old one's end is the tenant's
    // news, the new one is not.
    root.ok(&["destroy", "101"]);
    root.create_busybox("101", &["--storage", "dir"]);
    all.until(secs(5), "the new 101", |e| {
        e.event == "created" && e.ve() == "101"
    });
    let got = mine.drain(Duration::from_millis(500));
    assert_eq!(
        got.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["destroyed"],
        "{got:#?}"
    );
    assert!(nosy.drain(Duration::from_millis(100)).is_empty());

    // A revoked token's stream ends.
    root.ok(&["api", "token", "revoke", &acme[3..19]]);
    let end = Instant::now() + secs(15);
    while mine
        .rx
        .recv_timeout(end.saturating_duration_since(Instant::now()))
        .is_ok()
    {}
    assert!(
        Instant::now() < end,
        "the revoked token's stream did not end"
    );
    svc.stop();
    root.finish();
}

/// Clients that go away mid-stream leave nothing behind in the service.
#[test]
fn clients_that_leave_are_let_go() {
    let root = TestRoot::new("api-events-leave");
    let mut svc = Service::start(&root);
    let pid = svc.pid();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = fds();
    // Each client stays until it is killed below (the time limit is only
    // a backstop): on a slow emulated CPU, twenty curls take seconds to
    // start.
    let mut curls: Vec<std::process::Child> = (0..20)
        .map(|_| {
            std::process::Command::new("curl")
                .args(["-sN", "--max-time", "120", "--unix-socket"])
                .arg(&svc.socket)
                .arg("http://kenneld/v1/events?after=0")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("curl")
        })
        .collect();
    assert!(
        crate::common::wait_for(secs(60), || fds() >= before + 20),
        "{} descriptors with 20 streams open (before: {before})",
        fds()
    );
    // The clients go away mid-stream, without a word.
    for c in &mut curls {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(
        crate::common::wait_for(secs(15), || fds() <= before + 1),
        "{} descriptors after the streams' clients left (before: {before})",
        fds()
    );
    svc.stop();
    root.finish();
}
