//! A `kenneld` for one test: started on a free loopback port with the
//! test's private state root, its output kept for failure messages, and
//! killed (by its PID) when the test is done. The client trusts the
//! certificate the service made, nothing else.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{TestRoot, KENNEL};

/// The service binary, built beside `kennel` by `cargo test --workspace`
/// (or `cargo build -p kenneld`).
pub fn kenneld_path() -> PathBuf {
    let p = Path::new(KENNEL).with_file_name("kenneld");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build -p kenneld)",
        p.display()
    );
    p
}

pub struct Service {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    pub socket: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    client: Client,
    root: PathBuf,
}

/// An answer: its status and its body as JSON (`Null` if it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    pub content_type: String,
}

impl Service {
    /// Waits for job `id` to end; returns it.
    pub fn job_end(&self, token: Option<&str>, id: u64) -> Value {
        let mut job = Value::Null;
        assert!(
            crate::common::wait_for(crate::common::secs(180), || {
                job = self.get(&format!("/v1/jobs/{id}"), token).body;
                job["state"] != "running"
            }),
            "job {id} ended: {job}"
        );
        job
    }

    /// Runs the job `a` answered with to its end; asserts it succeeded.
    pub fn job_ok(&self, token: Option<&str>, a: &Answer) -> Value {
        assert_eq!(a.status, 202, "{a:?}");
        let id = a.body["id"].as_u64().expect("a job");
        let job = self.job_end(token, id);
        assert_eq!(job["state"], "succeeded", "{job}");
        job
    }

    pub fn start(root: &TestRoot) -> Service {
        Self::start_with(root, &[])
    }

    pub fn start_with(root: &TestRoot, extra: &[&str]) -> Service {
        let socket = root.dir.join("kenneld.sock");
        let mut child = Command::new(kenneld_path())
            .arg("--root")
            .arg(&root.dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .env_remove("KENNEL_ROOT")
            .env("KENNEL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kenneld");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(at) = line.find("https://") {
                        let url: String = line[at..]
                            .chars()
                            .take_while(|c| !c.is_whitespace())
                            .collect();
                        let _ = tx.send(url);
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kenneld did not start: {:?}", log.lock().unwrap());
            }
        };
        let cert = std::fs::read(root.dir.join("lib/api/tls/cert.pem"))
            .expect("the service's certificate");
        let client = Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert).expect("pem"))
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        Service {
            child: Some(child),
            url,
            socket,
            log,
            client,
            root: root.dir.clone(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// A token made with `kennel api token create ARGS`.
    pub fn token(&self, root: &TestRoot, args: &[&str]) -> String {
        let mut a = vec!["-q", "api", "token", "create"];
        a.extend_from_slice(args);
        root.ok(&a).trim().to_string()
    }

    /// An admin's token.
    pub fn admin(&self, root: &TestRoot) -> String {
        self.token(root, &["--role", "admin"])
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut r = self.client.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub fn send(&self, r: RequestBuilder) -> Answer {
        let resp = r.send().expect("the request reaches the service");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            text,
            content_type,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(self.request(Method::GET, path, token))
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut r = self.request(Method::POST, path, token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r)
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut r = self.request(
            Method::from_bytes(method.as_bytes()).expect("method"),
            path,
            token,
        );
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r)
    }

    /// A request over the Unix socket (root, no token), with curl.
    pub fn unix(&self, method: &str, path: &str) -> (u16, Value) {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "-X",
                method,
                "--unix-socket",
            ])
            .arg(&self.socket)
            .arg(format!("http://kenneld{path}"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// The audit log's entries.
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.root.join("lib/api/audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Stops the service (SIGTERM, then SIGKILL after 10 s) and waits for
    /// it and its workers to end.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as i32;
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return self.wait_for_workers();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        self.wait_for_workers();
    }

    /// Kills the service at once (SIGKILL), as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.wait_for_workers();
    }

    /// Its batch workers end when their input closes.
    fn wait_for_workers(&self) {
        let root = self.root.to_string_lossy().to_string();
        crate::common::wait_for(Duration::from_secs(10), || {
            crate::common::processes().into_iter().all(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd);
                !(cmd.contains("__batch-worker") && cmd.contains(&root))
            })
        });
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}
