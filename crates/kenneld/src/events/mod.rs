//! VE events: state changes, creation and destruction, OOM kills and
//! limit hits, numbered in one sequence so that a client that reconnects
//! resumes where it left off (`GET /v1/events`, `api/events.rs`).
//!
//! Kennel has no daemon that could announce what it does: a VE is
//! started and stopped by `kennel` commands and its own monitor, and the
//! state is files and the kernel. So events are *observed*, not told:
//! [`watch`] follows the state root with inotify (milliseconds) and a
//! sweep every second (what inotify cannot see: counters, a VE whose init
//! died without a file changing), and publishes every difference between
//! what it saw last and what it sees now ([`facts`]). That also makes a
//! restart of kenneld harmless: the [`journal`] keeps the events (and
//! with them each VE's last known facts) in the run directory, so the
//! sequence goes on, old positions can still be resumed, and whatever
//! changed while kenneld was down is published when it comes back.
//!
//! [`EventLog`] is the one place events enter: it numbers them, writes
//! them to the journal, and keeps the newest [`MEM_EVENTS`] in memory,
//! from which every client reads at its own pace ([`EventLog::after`]).

pub mod cursor;
mod facts;
mod filter;
mod journal;
mod notify;
mod probe;
mod watch;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kennel_ve::VeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use facts::Known;
pub use filter::Filter;
pub use watch::spawn as spawn_watcher;

use journal::Journal;

/// Events kept in memory, for clients that resume (and what a journal
/// of two 8 MiB files holds, roughly: ~250 bytes an event).
pub const MEM_EVENTS: usize = 100_000;

/// The journal's file is rotated at this size (one old file is kept).
const JOURNAL_ROTATE_AT: u64 = 8 << 20;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Its place in the sequence over all VEs (also the SSE `id`):
    /// resume after it with `?after=SEQ` or the `Last-Event-ID` header.
    /// A tenant's token sees, here and as the `id`, an opaque cursor (a
    /// string of 32 hex digits) instead (`events::cursor`).
    pub seq: u64,
    /// When it was seen: RFC 3339, milliseconds.
    pub time: String,
    pub ve: String,
    /// The VE's uuid (a VE made again under the same id is another VE).
    pub uuid: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened (`type`; also the SSE `event` name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The VE's state changed: `running`, `running (monitor lost)`,
    /// `stopping` or `stopped`.
    State {
        from: String,
        to: String,
        /// How its init ended (`exited 0`, `killed by the OOM killer`,
        /// `rebooted`, ...), for a stop, when the VE's exit record says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        how: Option<String>,
        /// The run the VE is in (`running`, `stopping`): its init's PID.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init_pid: Option<i32>,
        /// When that run started (RFC 3339).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at: Option<String>,
    },
    /// A VE was made (`kennel create`, a restore, a copy).
    Created,
    /// A VE was deleted.
    Destroyed,
    /// The OOM killer of the VE's memory limit killed `kills` processes
    /// more (`total` in this run).
    Oom { kills: u64, total: u64 },
    /// A limit refused the VE something `fails` more times (`total` in
    /// this run). `resource`: `numproc` (a fork or clone refused at the
    /// process limit) or `swap` (memory and swap both full).
    LimitHit {
        resource: String,
        fails: u64,
        total: u64,
    },
}

impl EventKind {
    /// Its `type` (the SSE event name, and what `?type=` filters on).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::State { .. } => "state",
            EventKind::Created => "created",
            EventKind::Destroyed => "destroyed",
            EventKind::Oom { .. } => "oom",
            EventKind::LimitHit { .. } => "limit_hit",
        }
    }

    /// Every `type`.
    pub const TYPES: [&'static str; 5] = ["state", "created", "destroyed", "oom", "limit_hit"];
}

/// Events after a position that are no longer kept: the stream goes on at
/// `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Gap {
    /// The position asked for.
    pub after: u64,
    /// The first event still kept (or the next one to come).
    pub next: u64,
}

/// Events after a position.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<Event>,
    /// Some events after the position are no longer kept (or the position
    /// is ahead of the sequence: another journal's, lost with `/run` at a
    /// reboot); `events` start at its `next`.
    pub gap: Option<Gap>,
}

/// The numbered events kept, and where new ones are announced.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Inner>,
    tx: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug)]
struct Inner {
    /// The newest events, their `seq`s consecutive.
    ring: VecDeque<Event>,
    cap: usize,
    last: u64,
    journal: Journal,
    /// Each VE's facts as the events so far tell them (the journal's
    /// snapshots, for a restart).
    known: Known,
    /// No journal existed: nothing is known of the VEs yet.
    fresh: bool,
    /// The journal could not be written (warned once until it can).
    failing: bool,
}

impl EventLog {
    /// The log of state root run directory `run`, from its journal
    /// (`<run>/api/events.jsonl`), made if missing.
    pub fn open(run: &Path) -> std::io::Result<Arc<Self>> {
        Self::open_with(&run.join("api"), JOURNAL_ROTATE_AT, MEM_EVENTS)
    }

    fn open_with(dir: &Path, rotate_at: u64, cap: usize) -> std::io::Result<Arc<Self>> {
        let (journal, replayed) = Journal::open(dir, rotate_at, cap)?;
        if replayed.skipped > 0 {
            tracing::warn!(
                "events: skipped {} unreadable lines of the journal in {}",
                replayed.skipped,
                dir.display()
            );
        }
        let last = replayed.last;
        Ok(Arc::new(EventLog {
            inner: Mutex::new(Inner {
                ring: replayed.events,
                cap,
                last,
                journal,
                known: replayed.known,
                fresh: replayed.fresh,
                failing: false,
            }),
            tx: tokio::sync::watch::channel(last).0,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers, keeps and journals an event of VE `ve` (uuid `uuid`), and
    /// wakes the clients.
    pub fn publish(&self, ve: &VeId, uuid: &str, kind: EventKind) -> Event {
        let mut inner = self.lock();
        let seq = inner.last + 1;
        let e = Event {
            seq,
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            ve: ve.to_string(),
            uuid: uuid.to_string(),
            kind,
        };
        let Inner {
            journal,
            known,
            last,
            failing,
            ..
        } = &mut *inner;
        match journal.append(&e, known, *last) {
            Ok(()) if *failing => {
                tracing::info!("events: the journal is written again");
                *failing = false;
            }
            Ok(()) => {}
            Err(err) if !*failing => {
                tracing::warn!(
                    "events: cannot write the journal (events are kept in memory only): {err}"
                );
                *failing = true;
            }
            Err(_) => {}
        }
        known.apply(&e);
        inner.last = seq;
        inner.fresh = false;
        inner.ring.push_back(e.clone());
        while inner.ring.len() > inner.cap {
            inner.ring.pop_front();
        }
        drop(inner);
        self.tx.send_replace(seq);
        e
    }

    /// Up to `max` events after position `seq`.
    pub fn after(&self, seq: u64, max: usize) -> Page {
        let inner = self.lock();
        let first = inner.ring.front().map_or(inner.last + 1, |e| e.seq);
        if seq > inner.last {
            return Page {
                events: Vec::new(),
                gap: Some(Gap {
                    after: seq,
                    next: inner.last + 1,
                }),
            };
        }
        let (gap, skip) = if seq + 1 < first {
            (
                Some(Gap {
                    after: seq,
                    next: first,
                }),
                0,
            )
        } else {
            (None, usize::try_from(seq + 1 - first).unwrap_or(usize::MAX))
        };
        Page {
            events: inner.ring.iter().skip(skip).take(max).cloned().collect(),
            gap,
        }
    }

    /// The newest event's position (0: none yet).
    pub fn last_seq(&self) -> u64 {
        *self.tx.borrow()
    }

    /// Tells of every new event (its position).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Each VE's facts as the events so far tell them; `None` if nothing
    /// is known (no journal existed): see [`EventLog::set_baseline`].
    pub fn known(&self) -> Option<Known> {
        let inner = self.lock();
        (!inner.fresh).then(|| inner.known.clone())
    }

    /// Records `known` as what is true now without an event (kenneld's
    /// first start: the VEs that exist are not news), so that a later
    /// start compares with it.
    pub fn set_baseline(&self, known: Known) {
        let mut inner = self.lock();
        let last = inner.last;
        if let Err(e) = inner.journal.snapshot(&known, last) {
            tracing::warn!("events: cannot write the journal: {e}");
        }
        inner.known = known;
        inner.fresh = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> VeId {
        VeId::parse(s).unwrap()
    }

    #[test]
    fn events_are_numbered_and_read_after_a_position() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open_with(d.path(), 1 << 20, 100).unwrap();
        assert_eq!(log.last_seq(), 0);
        assert!(log.known().is_none(), "a new journal knows nothing");
        for _ in 0..5 {
            log.publish(&id("101"), "u1", EventKind::Created);
        }
        assert_eq!(log.last_seq(), 5);
        let p = log.after(2, 2);
        assert_eq!(
            p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(p.gap.is_none());
        assert!(log.after(5, 10).events.is_empty());
        assert_eq!(log.after(0, 10).events.len(), 5);
    }

    #[test]
    fn a_position_no_longer_kept_or_ahead_is_a_gap() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open_with(d.path(), 1 << 20, 3).unwrap();
        for _ in 0..10 {
            log.publish(&id("101"), "u1", EventKind::Created);
        }
        let p = log.after(2, 100);
        assert_eq!(p.gap, Some(Gap { after: 2, next: 8 }));
        assert_eq!(
            p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        let p = log.after(7, 100);
        assert!(p.gap.is_none(), "8 is the oldest kept: nothing missed");
        assert_eq!(p.events.len(), 3);
        let p = log.after(50, 100);
        assert_eq!(
            p.gap,
            Some(Gap {
                after: 50,
                next: 11
            })
        );
        assert!(p.events.is_empty());
    }

    #[test]
    fn a_reopened_log_goes_on_with_the_sequence_and_its_facts() {
        let d = tempfile::tempdir().unwrap();
        {
            let log = EventLog::open_with(d.path(), 1 << 20, 100).unwrap();
            log.set_baseline(Known::default());
            log.publish(&id("101"), "u1", EventKind::Created);
            log.publish(
                &id("101"),
                "u1",
                EventKind::State {
                    from: "stopped".into(),
                    to: "running".into(),
                    how: None,
                    init_pid: Some(7),
                    started_at: Some("2025-01-01T00:00:00Z".into()),
                },
            );
        }
        let log = EventLog::open_with(d.path(), 1 << 20, 100).unwrap();
        assert_eq!(log.last_seq(), 2);
        assert_eq!(log.after(0, 10).events.len(), 2);
        let known = log.known().expect("known after a restart");
        assert_eq!(known.get("101").map(|f| f.state.as_str()), Some("running"));
        assert_eq!(log.publish(&id("102"), "u2", EventKind::Created).seq, 3);
    }

    #[test]
    fn a_baseline_alone_makes_the_journal_known() {
        let d = tempfile::tempdir().unwrap();
        {
            let log = EventLog::open_with(d.path(), 1 << 20, 100).unwrap();
            let mut k = Known::default();
            k.insert("101", facts::VeFacts::stopped("u1"));
            log.set_baseline(k);
        }
        let log = EventLog::open_with(d.path(), 1 << 20, 100).unwrap();
        let known = log.known().expect("known");
        assert_eq!(known.get("101").map(|f| f.uuid.as_str()), Some("u1"));
        assert_eq!(log.last_seq(), 0);
    }

    #[test]
    fn the_json_of_an_event_is_flat() {
        let e = Event {
            seq: 4,
            time: "t".into(),
            ve: "101".into(),
            uuid: "u".into(),
            kind: EventKind::LimitHit {
                resource: "numproc".into(),
                fails: 2,
                total: 5,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "limit_hit");
        assert_eq!(v["resource"], "numproc");
        assert_eq!(v["seq"], 4);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let s = serde_json::to_value(EventKind::State {
            from: "running".into(),
            to: "stopped".into(),
            how: None,
            init_pid: None,
            started_at: None,
        })
        .unwrap();
        assert_eq!(
            s,
            serde_json::json!({"type": "state", "from": "running", "to": "stopped"})
        );
    }
}
