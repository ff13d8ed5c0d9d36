//! The laboratory of one area of the suite: a state root with the busybox
//! template, an attacker VE with `kennel-attack` in it, a neighbour VE
//! with a canary file and a canary process, a canary directory and a
//! canary process on the host, and (for network cases) a network lab in
//! which Kennel plays the host. After every case [`Lab::check`] compares
//! the host and the neighbour with how they were.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{self, netlab::NetLab, TestRoot};
use super::host::Snapshot;

pub const ATT: &str = "att";
pub const NB: &str = "nb";
/// Where the helper lives inside the attacker VE.
pub const TOOL: &str = "/usr/local/bin/kennel-attack";

/// The verdict line of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Blocked(String),
    Escaped(String),
    Error(String),
}

/// Which cgroup layouts a case makes sense on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Any,
    /// The host has v1 controller hierarchies and a cgroup2 (this
    /// machine): the v1 ones confine the VE from outside, it sees the
    /// cgroup2.
    Hybrid,
    /// The VE sees v1 hierarchies: only on a host without any cgroup2
    /// (neither this machine nor the v2 VM is one).
    VeV1,
    /// The VE sees a cgroup2 (pure v2, or hybrid).
    VeV2,
}

pub type CaseFn = fn(&mut Lab) -> Result<(), String>;

/// One attack.
pub struct Case {
    pub name: &'static str,
    pub layout: Layout,
    /// The case may leave the attacker VE broken: restart it afterwards.
    pub restart: bool,
    pub run: CaseFn,
}

pub const fn case(name: &'static str, run: CaseFn) -> Case {
    Case {
        name,
        layout: Layout::Any,
        restart: false,
        run,
    }
}

impl Case {
    pub const fn only(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }
    pub const fn restarts(mut self) -> Self {
        self.restart = true;
        self
    }
}

/// The static helper, built next to the `kennel` binary.
pub fn tool_path() -> PathBuf {
    let p = Path::new(common::KENNEL)
        .parent()
        .expect("target dir")
        .join("kennel-attack");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p kennel-attack` (`cargo test --workspace` does)",
        p.display()
    );
    p
}

#[derive(Default)]
pub struct LabOptions {
    pub net: bool,
    /// A bridge `br0` in the network lab (see `NetLab::add_bridge`).
    pub bridge: bool,
    pub attacker: Vec<String>,
    pub neighbour: Vec<String>,
}

pub struct Lab {
    /// Dropped before `net`: the VEs go before their network lab.
    pub root: TestRoot,
    pub net: Option<NetLab>,
    pub canary_dir: PathBuf,
    /// A host process (`sleep` under a unique name) no VE may touch.
    pub host_canary: Child,
    pub host_canary_comm: String,
    pub nb_init: i32,
    pub nb_canary: String,
    before: Snapshot,
    opts: LabOptions,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Lab {
    pub fn new(area: &str, opts: LabOptions) -> Lab {
        let tool = tool_path();
        let net = opts.net.then(|| {
            let n = NetLab::new(&format!("sec{}", &area[..3.min(area.len())]));
            if opts.bridge {
                n.add_bridge();
            }
            n
        });
        let root = match &net {
            Some(n) => TestRoot::in_netns(&format!("sec-{area}"), &n.host),
            None => TestRoot::new(&format!("sec-{area}")),
        };
        // The v2 VM loads overlayfs in the background while tests start.
        within(10, || {
            fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("overlay"))
        });
        root.busybox();
        let canary_dir = root.dir.join("host-canary");
        fs::create_dir_all(&canary_dir).expect("canary dir");
        fs::write(
            canary_dir.join("secret"),
            format!("host secret of {area}\n"),
        )
        .expect("canary");
        fs::write(canary_dir.join("hosts"), "127.0.0.1 host-canary\n").expect("canary");
        // A host process with a name of its own (comm is the basename of
        // the path it was started by).
        let comm = format!(
            "kc{}{}",
            std::process::id() % 100000,
            &area[..3.min(area.len())]
        );
        let link = canary_dir.join(&comm);
        std::os::unix::fs::symlink("/bin/sleep", &link).expect("canary link");
        let host_canary = Command::new(&link)
            .arg("3600")
            .stdin(Stdio::null())
            .spawn()
            .expect("host canary process");
        let mut lab = Lab {
            root,
            net,
            canary_dir,
            host_canary,
            host_canary_comm: comm,
            nb_init: 0,
            nb_canary: format!("neighbour canary {}", std::process::id()),
            before: Snapshot::take(&[], Path::new("/nonexistent"), None),
            opts,
        };
        lab.create(ATT, &lab.opts.attacker.clone());
        lab.install_tool(&tool);
        lab.create(NB, &lab.opts.neighbour.clone());
        lab.root.sh(
            NB,
            &format!(
                "echo '{}' > /root/canary; sleep 86400 >/dev/null 2>&1 & echo $! > /run/sleeper",
                lab.nb_canary
            ),
        );
        lab.nb_init = lab.root.init_pid(NB);
        lab.before = lab.snapshot();
        lab
    }

    fn create(&self, id: &str, extra: &[String]) {
        let mut args = vec![
            "create",
            id,
            "--template",
            "busybox",
            "--numproc",
            "512",
            "--memory",
            "256M",
        ];
        args.extend(extra.iter().map(String::as_str));
        self.root.ok(&args);
        self.root.ok(&["start", id]);
    }

    fn install_tool(&self, tool: &Path) {
        let f = fs::File::open(tool).expect("open kennel-attack");
        let out = self
            .root
            .cmd()
            .args(["exec", ATT, "--", "/bin/sh", "-c"])
            .arg(format!(
                "mkdir -p /usr/local/bin && cat > {TOOL} && chmod 755 {TOOL}"
            ))
            .stdin(Stdio::from(f))
            .output()
            .expect("copy kennel-attack");
        assert!(
            out.status.success(),
            "copy kennel-attack into the VE: {out:?}"
        );
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.cgroup_dirs(), &self.canary_dir, self.net.as_ref())
    }

    /// The VEs' cgroups and their parent, in every hierarchy.
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut v = self.root.cgroup_dirs("");
        v.extend(self.root.cgroup_dirs(ATT));
        v.extend(self.root.cgroup_dirs(NB));
        v
    }

    /// Runs `kennel-attack ARGS` in the attacker VE (at most `secs`).
    pub fn attack(&self, args: &[&str]) -> Verdict {
        self.attack_in(ATT, args, 30)
    }

    pub fn attack_in(&self, id: &str, args: &[&str], secs: u64) -> Verdict {
        let mut c = self.root.cmd();
        c.args(["exec", id, "--", TOOL]).args(args);
        let (st, out, err) = common::output_within(&mut c, common::secs(secs));
        parse(st, &out, &err)
    }

    /// The attack must be blocked.
    pub fn blocked(&self, args: &[&str]) -> Result<String, String> {
        match self.attack(args) {
            Verdict::Blocked(s) => {
                let short: String = s.chars().take(200).collect();
                eprintln!("    {}: BLOCKED {short}", args[0]);
                Ok(s)
            }
            v => Err(format!("kennel-attack {}: {v:?}", args.join(" "))),
        }
    }

    /// `sh -c SCRIPT` in VE `id`, at most `secs`; (success, stdout+stderr).
    pub fn sh(&self, id: &str, script: &str, secs: u64) -> (bool, String) {
        let mut c = self.root.cmd();
        c.args(["exec", id, "--", "/bin/sh", "-c", script]);
        let (st, out, err) = common::output_within(&mut c, common::secs(secs));
        (st.map(|s| s.success()).unwrap_or(false), out + &err)
    }

    /// `kennel ARGS` with a deadline: (exit code, stdout, stderr).
    pub fn kennel(&self, args: &[&str], secs: u64) -> (Option<i32>, String, String) {
        let mut c = self.root.cmd();
        c.args(args);
        let (st, out, err) = common::output_within(&mut c, common::secs(secs));
        (st.and_then(|s| s.code()), out, err)
    }

    /// Host and neighbour as they were before the first case?
    pub fn check(&mut self) -> Vec<String> {
        let mut out = self.before.diff(&self.snapshot(), &[]);
        if let Ok(Some(st)) = self.host_canary.try_wait() {
            out.push(format!("the host's canary process ended: {st}"));
        }
        let status = self.root.run(&["status", NB, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        if v["init_pid"].as_i64() != Some(self.nb_init as i64) || !common::pid_alive(self.nb_init) {
            out.push(format!(
                "the neighbour's init {} is gone: {v}",
                self.nb_init
            ));
        }
        let (ok, text) = self.sh(
            NB,
            "kill -0 $(cat /run/sleeper) && cat /root/canary && hostname",
            10,
        );
        if !ok || !text.contains(&self.nb_canary) || !text.contains(NB) {
            out.push(format!(
                "the neighbour's process, canary or name changed: {text}"
            ));
        }
        out
    }

    /// Whether the attacker VE still works (runs the helper).
    pub fn attacker_healthy(&self) -> bool {
        matches!(self.attack_in(ATT, &["cwd-check"], 10), Verdict::Blocked(_))
    }

    /// Starts the attacker VE afresh.
    pub fn restart_attacker(&self) -> Result<(), String> {
        let _ = self.kennel(&["kill", ATT], 20);
        let (code, _, err) = self.kennel(&["start", ATT], 30);
        if code != Some(0) {
            return Err(format!("restart of the attacker failed: {err}"));
        }
        self.repair_sh();
        Ok(())
    }

    /// Puts back the attacker's /bin/sh, which the CVE-2019-5736 case
    /// breaks on purpose (without a shell, `sh` cannot).
    pub fn repair_sh(&self) {
        let _ = self.kennel(
            &[
                "exec",
                ATT,
                "--",
                "/bin/busybox",
                "ln",
                "-sf",
                "/bin/busybox",
                "/bin/sh",
            ],
            10,
        );
    }

    /// Rewrites the snapshot after a case changed the host on purpose
    /// (never used to hide an attack's effect: only the lab's own changes).
    pub fn rebase(&mut self) {
        self.before = self.snapshot();
    }

    pub fn finish(self) {
        let Lab {
            root,
            net,
            mut host_canary,
            ..
        } = self;
        let _ = host_canary.kill();
        let _ = host_canary.wait();
        root.finish();
        if let Some(n) = net {
            let leaks = n.leaks();
            assert!(
                leaks.is_empty(),
                "left in the lab's host namespace: {leaks:?}"
            );
        }
    }
}

pub fn parse(st: Option<std::process::ExitStatus>, out: &str, err: &str) -> Verdict {
    let Some(st) = st else {
        return Verdict::Error(format!("timed out; output: {out} {err}"));
    };
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with("BLOCKED") || l.starts_with("ESCAPED") || l.starts_with("ERROR"));
    let v = match line {
        Some(l) if l.starts_with("BLOCKED") => Verdict::Blocked(l[7..].trim().to_string()),
        Some(l) if l.starts_with("ESCAPED") => Verdict::Escaped(l[7..].trim().to_string()),
        Some(l) => Verdict::Error(l[5..].trim().to_string()),
        None => Verdict::Error(format!("no verdict ({st}); output: {out} {err}")),
    };
    let want = match &v {
        Verdict::Blocked(_) => Some(0),
        Verdict::Escaped(_) => Some(1),
        Verdict::Error(_) => st.code(),
    };
    if st.code() != want {
        return Verdict::Error(format!("verdict {v:?} with exit {st}"));
    }
    v
}

/// Runs every case of an area, checking host and neighbour after each;
/// prints one line per case and panics at the end with the failures.
pub fn run_area(area: &str, opts: LabOptions, cases: &[Case]) {
    let t0 = Instant::now();
    let mut lab = Lab::new(area, opts);
    let host_v1 = !common::pure_v2();
    let ve_v2 = common::cgroup2_mount().is_some();
    let mut failed = Vec::new();
    // KENNEL_SECURITY_CASE=TEXT runs only the cases whose name holds it.
    let only = std::env::var("KENNEL_SECURITY_CASE").unwrap_or_default();
    for c in cases.iter().filter(|c| c.name.contains(only.as_str())) {
        let skip = match c.layout {
            Layout::Hybrid if !(host_v1 && ve_v2) => Some("hybrid cgroup hosts only"),
            Layout::VeV1 if ve_v2 => Some("pure v1 hosts only (here the VE sees a cgroup2)"),
            Layout::VeV2 if !ve_v2 => Some("hosts with a cgroup2 only"),
            _ => None,
        };
        if let Some(why) = skip {
            eprintln!("case {}: skipped: {why}", c.name);
            continue;
        }
        let t = Instant::now();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (c.run)(&mut lab)))
            .unwrap_or_else(|p| {
                Err(p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()))
            });
        let mut problems: Vec<String> = res.err().into_iter().collect();
        if c.restart || !lab.attacker_healthy() {
            if let Err(e) = lab.restart_attacker() {
                problems.push(e);
            }
        }
        problems.extend(lab.check());
        // One line per problem: terminal output carries CRs and newlines.
        let problems: Vec<String> = problems
            .iter()
            .map(|p| p.replace('\r', "").replace('\n', " / "))
            .collect();
        let ms = t.elapsed().as_millis();
        if problems.is_empty() {
            eprintln!("case {}: ok ({ms} ms)", c.name);
        } else {
            eprintln!(
                "case {}: FAILED ({ms} ms): {}",
                c.name,
                problems.join("\n    ")
            );
            failed.push(format!("{}: {}", c.name, problems.join(" | ")));
            // Later cases compare with the host as it is now.
            lab.rebase();
        }
    }
    lab.finish();
    eprintln!(
        "area {area}: {} cases in {:.1} s",
        cases.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{} of {} cases failed in {area}:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

pub fn args(v: &[&str]) -> Vec<String> {
    strings(v)
}

/// Waits up to `secs` for `f`.
pub fn within(secs: u64, f: impl FnMut() -> bool) -> bool {
    common::wait_for(common::secs(secs), f)
}

/// An exhausting probe that holds what it took (it printed `HOLDING N`)
/// until [`Holding::release`].
pub struct Holding {
    child: std::process::Child,
    pub count: u64,
    out: std::sync::mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Lab {
    /// Starts `kennel-attack ARGS` and waits (at most `secs`) for it to
    /// hold its resources.
    pub fn hold(&self, args: &[&str], secs: u64) -> Result<Holding, String> {
        use std::io::BufRead;
        let mut c = self.root.cmd();
        c.args(["exec", ATT, "--", TOOL])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let end = Instant::now() + common::secs(secs);
        while Instant::now() < end {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    if let Some(n) = l.strip_prefix("HOLDING ") {
                        let count = n.trim().parse().unwrap_or(0);
                        lines.push(l);
                        return Ok(Holding {
                            child,
                            count,
                            out: rx,
                            lines,
                        });
                    }
                    lines.push(l);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("{args:?} never held anything: {lines:?}"))
    }
}

impl Holding {
    /// Lets go; returns the probe's verdict.
    pub fn release(mut self) -> Verdict {
        drop(self.child.stdin.take());
        let end = Instant::now() + common::secs(30);
        let st = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break Some(st);
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.out.recv_timeout(Duration::from_millis(500)) {
            self.lines.push(l);
        }
        parse(st, &self.lines.join("\n"), "")
    }
}
