//! VE events: state changes, OOM kills and limit hits, numbered in one
//! sequence so a client that reconnects resumes where it left off.
//! (Being written: the journal and the watcher.)

use std::path::Path;
use std::sync::{Arc, Mutex};

use kennel_ve::VeId;
use serde::Serialize;
use utoipa::ToSchema;

/// One event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// Its place in the sequence: resume after it with `?after=SEQ` or
    /// the `Last-Event-ID` header.
    pub seq: u64,
    /// RFC 3339, milliseconds.
    pub time: String,
    pub ve: String,
    /// The VE's uuid (a VE made again under the same id is another VE).
    pub uuid: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The VE's state changed (`running`, `stopped`, ...); `how`: how its
    /// init ended, for a stop.
    State {
        from: String,
        to: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        how: Option<String>,
    },
    Created,
    Destroyed,
    /// The OOM killer of the VE's memory limit killed `kills` processes
    /// more (`total` since its start).
    Oom {
        kills: u64,
        total: u64,
    },
    /// A limit refused the VE something `fails` more times (`resource`:
    /// `numproc`, `swap`).
    LimitHit {
        resource: String,
        fails: u64,
        total: u64,
    },
}

/// The numbered events kept.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Vec<Event>>,
    tx: tokio::sync::watch::Sender<u64>,
}

/// Events after a position.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<Event>,
    /// Some events after the position are no longer kept.
    pub gap: bool,
}

impl EventLog {
    pub fn open(_run: &Path) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(EventLog {
            inner: Mutex::new(Vec::new()),
            tx: tokio::sync::watch::channel(0).0,
        }))
    }

    pub fn publish(&self, ve: &VeId, uuid: &str, kind: EventKind) -> Event {
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seq = v.last().map_or(1, |e| e.seq + 1);
        let e = Event {
            seq,
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            ve: ve.to_string(),
            uuid: uuid.to_string(),
            kind,
        };
        v.push(e.clone());
        self.tx.send_replace(seq);
        e
    }

    pub fn after(&self, seq: u64, max: usize) -> Page {
        let v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Page {
            events: v
                .iter()
                .filter(|e| e.seq > seq)
                .take(max)
                .cloned()
                .collect(),
            gap: false,
        }
    }

    pub fn last_seq(&self) -> u64 {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tx.subscribe()
    }
}
