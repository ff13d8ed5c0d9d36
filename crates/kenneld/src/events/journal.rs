//! The event journal, `<run>/api/events.jsonl`: one JSON line per event,
//! appended as it is published, so that a restarted kenneld goes on with
//! the sequence, still serves positions from before its restart, and
//! knows what it last told about each VE.
//!
//! It is bounded: at [`Journal::open`]'s `rotate_at` bytes the file
//! becomes `events.jsonl.1` (the one before is dropped) and a new one is
//! begun with a *snapshot* line, `{"snapshot": {"seq": N, "ves": {...}}}`:
//! each VE's facts as of event N. Replaying the old file then the new one
//! gives the events kept and the facts now, however old the last event
//! of a quiet VE is.
//!
//! Each line is written with one `write` to a file opened for appending:
//! a crash leaves at most a torn last line, skipped when read back. The
//! journal lives in the run directory (a tmpfs, like the VEs' run
//! state): it does not outlive a reboot, and neither does any VE's run.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::facts::Known;
use super::Event;

const FILE: &str = "events.jsonl";
const OLD_FILE: &str = "events.jsonl.1";
/// A longer line is no line of ours.
const MAX_LINE: usize = 1 << 20;

/// Each VE's facts as of event `seq`.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    seq: u64,
    ves: Known,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotLine {
    snapshot: Snapshot,
}

#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    size: u64,
    rotate_at: u64,
}

/// What the journal held.
#[derive(Debug, Default)]
pub struct Replayed {
    /// The newest events (at most the `keep` asked for), consecutive.
    pub events: VecDeque<Event>,
    /// The facts after the last event.
    pub known: Known,
    /// The last position.
    pub last: u64,
    /// There was nothing: neither an event nor a snapshot.
    pub fresh: bool,
    /// Lines that were not ours (torn, damaged).
    pub skipped: usize,
}

impl Replayed {
    fn line(&mut self, line: &[u8], keep: usize) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if line.starts_with(br#"{"snapshot""#) {
            match serde_json::from_slice::<SnapshotLine>(line) {
                Ok(s) if s.snapshot.seq >= self.last => {
                    self.known = s.snapshot.ves;
                    self.last = s.snapshot.seq;
                    self.fresh = false;
                }
                _ => self.skipped += 1,
            }
            return;
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(e) if e.seq > self.last => {
                if e.seq != self.last + 1 {
                    // Events lost in between (a write that failed): what
                    // is kept must be consecutive.
                    self.events.clear();
                }
                self.known.apply(&e);
                self.last = e.seq;
                self.fresh = false;
                self.events.push_back(e);
                while self.events.len() > keep {
                    self.events.pop_front();
                }
            }
            _ => self.skipped += 1,
        }
    }

    fn file(&mut self, path: &Path, keep: usize) -> io::Result<()> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut r = BufReader::with_capacity(1 << 16, f);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut r)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            if n > MAX_LINE {
                self.skipped += 1;
                if !line.ends_with(b"\n") {
                    // The rest of an overlong line.
                    let mut rest = Vec::new();
                    r.read_until(b'\n', &mut rest)?;
                }
                continue;
            }
            self.line(&line, keep);
        }
    }
}

impl Journal {
    /// Opens (or begins) the journal in `dir` and reads it back, keeping
    /// the newest `keep` events.
    pub fn open(dir: &Path, rotate_at: u64, keep: usize) -> io::Result<(Journal, Replayed)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut replayed = Replayed {
            fresh: true,
            ..Replayed::default()
        };
        replayed.file(&dir.join(OLD_FILE), keep)?;
        replayed.file(&dir.join(FILE), keep)?;
        let mut file = open_append(&dir.join(FILE))?;
        let size = file.metadata()?.len();
        if size > 0 && !ends_with_newline(&mut file)? {
            // A torn last line: the next one must not be glued to it.
            file.write_all(b"\n")?;
        }
        let size = file.metadata().map_or(size, |m| m.len());
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                file,
                size,
                rotate_at,
            },
            replayed,
        ))
    }

    /// Appends event `e`; `known` and `last` are the facts and position
    /// before it, for the snapshot that begins a new file.
    pub fn append(&mut self, e: &Event, known: &Known, last: u64) -> io::Result<()> {
        let mut line = serde_json::to_vec(e).map_err(io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.rotate_at {
            self.rotate()?;
            self.snapshot(known, last)?;
        }
        self.write(&line)
    }

    /// Appends a snapshot of `known` as of position `seq`.
    pub fn snapshot(&mut self, known: &Known, seq: u64) -> io::Result<()> {
        let mut line = serde_json::to_vec(&SnapshotLine {
            snapshot: Snapshot {
                seq,
                ves: known.clone(),
            },
        })
        .map_err(io::Error::other)?;
        line.push(b'\n');
        self.write(&line)
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        let r = self.file.write_all(line);
        // What was written counts, also when not all of it was.
        self.size = self
            .file
            .metadata()
            .map_or(self.size + line.len() as u64, |m| m.len());
        r
    }

    /// The file becomes the old one; a new one is begun.
    fn rotate(&mut self) -> io::Result<()> {
        let cur = self.dir.join(FILE);
        fs::rename(&cur, self.dir.join(OLD_FILE))?;
        self.file = open_append(&cur)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
}

fn ends_with_newline(f: &mut File) -> io::Result<bool> {
    f.seek(SeekFrom::End(-1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::facts::VeFacts;
    use crate::events::EventKind;

    fn event(seq: u64, ve: &str, kind: EventKind) -> Event {
        Event {
            seq,
            time: "2025-03-01T10:00:00.000Z".into(),
            ve: ve.into(),
            uuid: format!("uuid-{ve}"),
            kind,
        }
    }

    /// Publishes like the log does: append, then fold.
    fn publish(j: &mut Journal, known: &mut Known, last: &mut u64, ve: &str, kind: EventKind) {
        let e = event(*last + 1, ve, kind);
        j.append(&e, known, *last).unwrap();
        known.apply(&e);
        *last = e.seq;
    }

    #[test]
    fn an_empty_journal_is_fresh_and_events_come_back() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, r) = Journal::open(d.path(), 1 << 20, 10).unwrap();
        assert!(r.fresh);
        let (mut known, mut last) = (Known::default(), 0);
        publish(&mut j, &mut known, &mut last, "101", EventKind::Created);
        publish(&mut j, &mut known, &mut last, "102", EventKind::Created);
        publish(&mut j, &mut known, &mut last, "101", EventKind::Destroyed);
        drop(j);
        let (_, r) = Journal::open(d.path(), 1 << 20, 10).unwrap();
        assert!(!r.fresh);
        assert_eq!(r.last, 3);
        assert_eq!(r.events.len(), 3);
        assert!(r.known.get("101").is_none() && r.known.get("102").is_some());
        assert_eq!(r.known, known);
    }

    #[test]
    fn rotation_keeps_one_old_file_and_the_facts_of_quiet_ves() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(d.path(), 2000, 1000).unwrap();
        let (mut known, mut last) = (Known::default(), 0);
        // A VE made first and never heard of again.
        publish(&mut j, &mut known, &mut last, "quiet", EventKind::Created);
        for i in 0..200 {
            let kind = EventKind::Oom {
                kills: 1,
                total: i + 1,
            };
            publish(&mut j, &mut known, &mut last, "busy", EventKind::Created);
            publish(&mut j, &mut known, &mut last, "busy", kind);
        }
        drop(j);
        let files: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        for f in [FILE, OLD_FILE] {
            let len = fs::metadata(d.path().join(f)).unwrap().len();
            assert!(len <= 2000 + 400, "{f}: {len} bytes");
        }
        let (_, r) = Journal::open(d.path(), 2000, 1000).unwrap();
        assert_eq!(r.last, 401);
        assert_eq!(r.known, known, "the snapshot carries what fell out");
        assert_eq!(r.known.get("quiet"), Some(&VeFacts::stopped("uuid-quiet")));
        assert!(r.events.len() < 401, "older events are gone");
        let seqs: Vec<u64> = r.events.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "consecutive");
        assert_eq!(seqs.last(), Some(&401));
        assert_eq!(r.skipped, 0);
    }

    #[test]
    fn a_torn_line_is_skipped_and_not_glued_to_the_next() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut j, _) = Journal::open(d.path(), 1 << 20, 10).unwrap();
            let (mut known, mut last) = (Known::default(), 0);
            publish(&mut j, &mut known, &mut last, "101", EventKind::Created);
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join(FILE))
            .unwrap();
        f.write_all(br#"{"seq":2,"time":"x","ve":"1"#).unwrap();
        drop(f);
        {
            let (mut j, r) = Journal::open(d.path(), 1 << 20, 10).unwrap();
            assert_eq!((r.last, r.skipped), (1, 1));
            let (mut known, mut last) = (r.known, r.last);
            publish(&mut j, &mut known, &mut last, "102", EventKind::Created);
        }
        let (_, r) = Journal::open(d.path(), 1 << 20, 10).unwrap();
        assert_eq!((r.last, r.skipped), (2, 1));
        assert_eq!(
            r.events.iter().map(|e| e.ve.as_str()).collect::<Vec<_>>(),
            vec!["101", "102"]
        );
    }

    #[test]
    fn only_the_newest_events_are_kept_in_memory() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(d.path(), 1 << 20, 1000).unwrap();
        let (mut known, mut last) = (Known::default(), 0);
        for _ in 0..50 {
            publish(&mut j, &mut known, &mut last, "101", EventKind::Created);
        }
        drop(j);
        let (_, r) = Journal::open(d.path(), 1 << 20, 7).unwrap();
        assert_eq!(r.events.len(), 7);
        assert_eq!(r.events.front().map(|e| e.seq), Some(44));
    }

    #[test]
    fn the_journal_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("api");
        let _ = Journal::open(&dir, 1 << 20, 10).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(FILE)), 0o600);
    }
}
