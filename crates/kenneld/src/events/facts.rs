//! What is known of each VE (its uuid, state, run and counters), and the
//! events that tell the difference between two such views: the pure core
//! of the event stream, kept apart from files and the kernel so that it
//! can be tested whole.
//!
//! The same facts come from two directions and must agree: the watcher
//! *observes* a VE ([`Observed`]) and publishes [`diff`] against what it
//! saw last; the log *folds* the published events ([`Known::apply`]) to
//! know, after a restart, what the last events said. Folding the events
//! of a diff gives the diff's new facts (tested below), so a restarted
//! kenneld compares the kernel with exactly what its clients were told.

use std::collections::BTreeMap;

use kennel_runtime::state::ExitRecord;
use serde::{Deserialize, Serialize};

use super::{Event, EventKind};

/// The state a VE without a run is in.
pub const STOPPED: &str = "stopped";
const STOPPING: &str = "stopping";

/// Which run of a VE: its init's PID and when it started (a restart
/// within one second still has another PID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub init_pid: i32,
    pub started_at: String,
}

/// The counters a rise of which is an event, in the VE's current run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Processes the OOM killer of its memory limit killed.
    pub oom: u64,
    /// Forks refused at its process limit.
    pub numproc: u64,
    /// Times memory and swap were both full.
    pub swap: u64,
}

/// What is known of one VE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VeFacts {
    pub uuid: String,
    /// `running`, `running (monitor lost)`, `stopping` or `stopped`.
    pub state: String,
    /// The run it is in (running or stopping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    #[serde(default)]
    pub counts: Counts,
}

impl VeFacts {
    pub fn stopped(uuid: &str) -> Self {
        VeFacts {
            uuid: uuid.to_string(),
            state: STOPPED.to_string(),
            run: None,
            counts: Counts::default(),
        }
    }
}

/// Counters as read now: `None` for one that could not be read (its
/// cgroup gone or going), which keeps the last value rather than
/// pretending it fell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    pub oom: Option<u64>,
    pub numproc: Option<u64>,
    pub swap: Option<u64>,
}

/// One VE as seen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub uuid: String,
    pub state: String,
    pub run: Option<Run>,
    pub counts: ReadCounts,
    /// Its exit record, read when [`needs_exit`] says a stop is to be told.
    pub exit: Option<ExitRecord>,
}

/// Each VE's facts, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Known(BTreeMap<String, VeFacts>);

impl Known {
    #[cfg(test)]
    pub fn get(&self, id: &str) -> Option<&VeFacts> {
        self.0.get(id)
    }

    pub fn insert(&mut self, id: &str, facts: VeFacts) {
        self.0.insert(id.to_string(), facts);
    }

    pub fn remove(&mut self, id: &str) {
        self.0.remove(id);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &VeFacts)> {
        self.0.iter()
    }

    /// The facts after event `e`.
    pub fn apply(&mut self, e: &Event) {
        match &e.kind {
            EventKind::Created => self.insert(&e.ve, VeFacts::stopped(&e.uuid)),
            EventKind::Destroyed => self.remove(&e.ve),
            EventKind::State {
                to,
                init_pid,
                started_at,
                ..
            } => {
                let f = self
                    .0
                    .entry(e.ve.clone())
                    .or_insert_with(|| VeFacts::stopped(&e.uuid));
                let run = match (init_pid, started_at) {
                    (Some(p), Some(s)) => Some(Run {
                        init_pid: *p,
                        started_at: s.clone(),
                    }),
                    _ => None,
                };
                if run != f.run {
                    f.counts = Counts::default();
                }
                f.uuid.clone_from(&e.uuid);
                f.state.clone_from(to);
                f.run = run;
            }
            EventKind::Oom { total, .. } => {
                if let Some(f) = self.0.get_mut(&e.ve) {
                    f.counts.oom = *total;
                }
            }
            EventKind::LimitHit {
                resource, total, ..
            } => {
                if let Some(f) = self.0.get_mut(&e.ve) {
                    match resource.as_str() {
                        "numproc" => f.counts.numproc = *total,
                        "swap" => f.counts.swap = *total,
                        _ => {}
                    }
                }
            }
        }
    }
}

fn is_stop(state: &str) -> bool {
    state == STOPPED || state == STOPPING
}

/// Whether telling the change from `before` to a VE now in `state` and
/// `run` needs its exit record (a run ended, or is ending): read it only
/// then, not for every VE at every sweep.
pub fn needs_exit(before: Option<&VeFacts>, state: &str, run: Option<&Run>) -> bool {
    let Some(b) = before else {
        return false;
    };
    (is_stop(state) && b.state != state) || (b.run.is_some() && b.run.as_ref() != run)
}

/// How a run that started at `started` ended, if `exit` is its record
/// (not an older run's: written at or after that start).
fn how(exit: Option<&ExitRecord>, started: Option<&Run>) -> Option<String> {
    let exit = exit?;
    let at = humantime::parse_rfc3339_weak(&exit.at).ok()?;
    let start = humantime::parse_rfc3339_weak(&started?.started_at).ok()?;
    (at >= start).then(|| exit.how.clone())
}

/// How the run of `b` (or, never seen running, of `n`) ended, for a
/// change to a stop.
fn stop_how(b: &VeFacts, n: &Observed) -> Option<String> {
    if is_stop(&n.state) {
        how(n.exit.as_ref(), b.run.as_ref().or(n.run.as_ref()))
    } else {
        None
    }
}

fn state_event(from: &str, to: &str, how: Option<String>, run: Option<&Run>) -> EventKind {
    EventKind::State {
        from: from.to_string(),
        to: to.to_string(),
        how,
        init_pid: run.map(|r| r.init_pid),
        started_at: run.map(|r| r.started_at.clone()),
    }
}

/// The rises from `before` to `now` as events, and the counters after.
fn count_events(before: Counts, now: ReadCounts, out: &mut Vec<EventKind>) -> Counts {
    let mut after = before;
    let mut rise =
        |was: u64, is: Option<u64>, slot: &mut u64, make: &dyn Fn(u64, u64) -> EventKind| {
            if let Some(is) = is {
                if is > was {
                    out.push(make(is - was, is));
                }
                // A fall (a count over a VE's sub-cgroups, one of them gone)
                // is followed silently: the next rise is news again.
                *slot = is;
            }
        };
    rise(before.oom, now.oom, &mut after.oom, &|kills, total| {
        EventKind::Oom { kills, total }
    });
    rise(
        before.numproc,
        now.numproc,
        &mut after.numproc,
        &|fails, total| EventKind::LimitHit {
            resource: "numproc".into(),
            fails,
            total,
        },
    );
    rise(before.swap, now.swap, &mut after.swap, &|fails, total| {
        EventKind::LimitHit {
            resource: "swap".into(),
            fails,
            total,
        }
    });
    after
}

/// The events from `before` to `now` (`None`: no such VE), each with the
/// uuid it is about, in the order they happened; and the facts after.
pub fn diff(
    before: Option<&VeFacts>,
    now: Option<&Observed>,
) -> (Vec<(String, EventKind)>, Option<VeFacts>) {
    let mut out = Vec::new();
    let after = match (before, now) {
        (None, None) => None,
        (Some(b), None) => {
            gone(b, &mut out);
            None
        }
        (None, Some(n)) => Some(appeared(n, &mut out)),
        (Some(b), Some(n)) if b.uuid != n.uuid => {
            // Another VE under the same id.
            gone(b, &mut out);
            Some(appeared(n, &mut out))
        }
        (Some(b), Some(n)) => Some(changed(b, n, &mut out)),
    };
    (out, after)
}

/// VE `b` no longer exists: its stop, if it was not stopped, then its end.
fn gone(b: &VeFacts, out: &mut Vec<(String, EventKind)>) {
    if b.state != STOPPED {
        out.push((b.uuid.clone(), state_event(&b.state, STOPPED, None, None)));
    }
    out.push((b.uuid.clone(), EventKind::Destroyed));
}

/// VE `n` is new: made, and whatever it did since.
fn appeared(n: &Observed, out: &mut Vec<(String, EventKind)>) -> VeFacts {
    out.push((n.uuid.clone(), EventKind::Created));
    changed(&VeFacts::stopped(&n.uuid), n, out)
}

/// The same VE, `b` then `n`.
fn changed(b: &VeFacts, n: &Observed, out: &mut Vec<(String, EventKind)>) -> VeFacts {
    let uuid = &n.uuid;
    let mut kinds = Vec::new();
    let same_run = b.run == n.run;
    let counts = if b.run.is_some() && n.run.is_some() && !same_run {
        // The run seen last ended and another began in between.
        let h = how(n.exit.as_ref(), b.run.as_ref());
        kinds.push(state_event(&b.state, STOPPED, h, None));
        kinds.push(state_event(STOPPED, &n.state, None, n.run.as_ref()));
        count_events(Counts::default(), n.counts, &mut kinds)
    } else if same_run {
        // Counters first: what the run did before it changed state.
        let counts = match n.run {
            Some(_) => count_events(b.counts, n.counts, &mut kinds),
            None => Counts::default(),
        };
        if b.state != n.state {
            kinds.push(state_event(
                &b.state,
                &n.state,
                stop_how(b, n),
                n.run.as_ref(),
            ));
        }
        counts
    } else {
        // A run began (and its counters are its own) or ended.
        kinds.push(state_event(
            &b.state,
            &n.state,
            stop_how(b, n),
            n.run.as_ref(),
        ));
        match n.run {
            Some(_) => count_events(Counts::default(), n.counts, &mut kinds),
            None => Counts::default(),
        }
    };
    out.extend(kinds.into_iter().map(|k| (uuid.clone(), k)));
    VeFacts {
        uuid: uuid.clone(),
        state: n.state.clone(),
        run: n.run.clone(),
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pid: i32, at: &str) -> Option<Run> {
        Some(Run {
            init_pid: pid,
            started_at: at.into(),
        })
    }

    fn obs(state: &str, r: Option<Run>, oom: u64, numproc: u64) -> Observed {
        Observed {
            uuid: "u1".into(),
            state: state.into(),
            run: r,
            counts: if state == STOPPED {
                ReadCounts::default()
            } else {
                ReadCounts {
                    oom: Some(oom),
                    numproc: Some(numproc),
                    swap: Some(0),
                }
            },
            exit: None,
        }
    }

    fn exit(at: &str, how: &str) -> Option<ExitRecord> {
        Some(ExitRecord {
            at: at.into(),
            how: how.into(),
        })
    }

    const T0: &str = "2025-03-01T10:00:00Z";
    const T1: &str = "2025-03-01T10:05:00Z";

    /// Folds the events of each diff and checks they give its facts.
    fn walk(steps: &[Option<Observed>]) -> Vec<EventKind> {
        walk_with(steps, true)
    }

    /// [`walk`]; `exact`: the counters too (a fall is followed without
    /// an event, which the fold cannot know).
    fn walk_with(steps: &[Option<Observed>], exact: bool) -> Vec<EventKind> {
        let mut seen: Option<VeFacts> = None;
        let mut folded = Known::default();
        let mut all = Vec::new();
        for (i, now) in steps.iter().enumerate() {
            let (events, after) = diff(seen.as_ref(), now.as_ref());
            for (uuid, kind) in events {
                folded.apply(&Event {
                    seq: i as u64,
                    time: String::new(),
                    ve: "101".into(),
                    uuid,
                    kind: kind.clone(),
                });
                all.push(kind);
            }
            let strip = |f: Option<&VeFacts>| {
                f.cloned().map(|mut f| {
                    if !exact {
                        f.counts = Counts::default();
                    }
                    f
                })
            };
            assert_eq!(
                strip(folded.get("101")),
                strip(after.as_ref()),
                "step {i}: the fold agrees"
            );
            seen = after;
        }
        all
    }

    fn types(events: &[EventKind]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                EventKind::State { from, to, .. } => format!("{from}>{to}"),
                other => other.type_name().to_string(),
            })
            .collect()
    }

    #[test]
    fn a_ves_life_is_told_once_in_order() {
        let mut stopping = obs(STOPPING, run(10, T0), 1, 0);
        stopping.exit = exit(T1, "killed by the OOM killer");
        let mut stopped = obs(STOPPED, None, 0, 0);
        stopped.exit = exit(T1, "killed by the OOM killer");
        let events = walk(&[
            None,
            Some(obs(STOPPED, None, 0, 0)),
            Some(obs(STOPPED, None, 0, 0)),
            Some(obs("running", run(10, T0), 0, 0)),
            Some(obs("running", run(10, T0), 0, 0)),
            Some(obs("running", run(10, T0), 1, 0)),
            Some(stopping),
            Some(stopped.clone()),
            Some(stopped),
            None,
        ]);
        assert_eq!(
            types(&events),
            vec![
                "created",
                "stopped>running",
                "oom",
                "running>stopping",
                "stopping>stopped",
                "destroyed"
            ]
        );
        assert!(
            matches!(&events[1], EventKind::State { init_pid: Some(10), started_at: Some(s), .. } if s == T0)
        );
        for e in &events[3..5] {
            assert!(
                matches!(e, EventKind::State { how: Some(h), .. } if h == "killed by the OOM killer"),
                "{e:?}"
            );
        }
        assert_eq!(events[2], EventKind::Oom { kills: 1, total: 1 });
    }

    #[test]
    fn counters_rise_once_and_a_fall_or_an_unreadable_one_is_no_event() {
        let mut gone = obs("running", run(10, T0), 0, 0);
        gone.counts = ReadCounts::default();
        let events = walk_with(
            &[
                Some(obs("running", run(10, T0), 0, 0)),
                Some(obs("running", run(10, T0), 0, 3)),
                Some(obs("running", run(10, T0), 0, 3)),
                Some(gone),
                Some(obs("running", run(10, T0), 0, 3)),
                Some(obs("running", run(10, T0), 0, 1)),
                Some(obs("running", run(10, T0), 0, 2)),
            ],
            false,
        );
        let hits: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                EventKind::LimitHit {
                    resource,
                    fails,
                    total,
                } => Some((resource.as_str(), *fails, *total)),
                _ => None,
            })
            .collect();
        assert_eq!(hits, vec![("numproc", 3, 3), ("numproc", 1, 2)]);
    }

    #[test]
    fn a_restart_between_two_looks_is_a_stop_and_a_start() {
        let mut again = obs("running", run(20, T1), 0, 0);
        again.exit = exit(T1, "rebooted");
        let events = walk(&[Some(obs("running", run(10, T0), 2, 0)), Some(again)]);
        assert_eq!(
            types(&events),
            vec![
                "created",
                "stopped>running",
                "oom",
                "running>stopped",
                "stopped>running"
            ]
        );
        assert!(
            matches!(&events[3], EventKind::State { how: Some(h), init_pid: None, .. } if h == "rebooted")
        );
        assert!(matches!(
            &events[4],
            EventKind::State {
                init_pid: Some(20),
                ..
            }
        ));
    }

    #[test]
    fn an_older_runs_exit_record_is_not_this_stops() {
        let mut stopped = obs(STOPPED, None, 0, 0);
        stopped.exit = exit("2025-03-01T09:00:00Z", "exited 0");
        let events = walk(&[Some(obs("running", run(10, T0), 0, 0)), Some(stopped)]);
        assert!(
            matches!(events.last(), Some(EventKind::State { how: None, .. })),
            "{events:?}"
        );
    }

    #[test]
    fn another_ve_under_the_same_id_is_a_destroy_and_a_create() {
        let mut other = obs("running", run(30, T1), 0, 0);
        other.uuid = "u2".into();
        let (events, after) = diff(
            Some(&VeFacts {
                uuid: "u1".into(),
                state: "running".into(),
                run: run(10, T0),
                counts: Counts::default(),
            }),
            Some(&other),
        );
        let who: Vec<(&str, &str)> = events
            .iter()
            .map(|(u, k)| (u.as_str(), k.type_name()))
            .collect();
        assert_eq!(
            who,
            vec![
                ("u1", "state"),
                ("u1", "destroyed"),
                ("u2", "created"),
                ("u2", "state")
            ]
        );
        assert_eq!(after.map(|f| f.uuid), Some("u2".into()));
    }

    #[test]
    fn the_exit_record_is_read_only_when_a_run_ends() {
        let running = VeFacts {
            uuid: "u".into(),
            state: "running".into(),
            run: run(1, T0),
            counts: Counts::default(),
        };
        assert!(!needs_exit(Some(&running), "running", run(1, T0).as_ref()));
        assert!(needs_exit(Some(&running), STOPPING, run(1, T0).as_ref()));
        assert!(needs_exit(Some(&running), STOPPED, None));
        assert!(needs_exit(Some(&running), "running", run(2, T1).as_ref()));
        let stopped = VeFacts::stopped("u");
        assert!(!needs_exit(Some(&stopped), STOPPED, None));
        assert!(!needs_exit(None, STOPPED, None));
    }
}
