//! The watcher: one thread (the library and the files are blocking) that
//! notices what happens to VEs and publishes it.
//!
//! * inotify on `<lib>/ve` (VEs made, deleted), `<run>/ve` and each VE's
//!   run directory (`state.json` comes and goes with a run, `exit.json`
//!   is written as it ends) and, for a running VE, the counter files the
//!   kernel announces changes of: the VE that changed is looked at at
//!   once, so a client hears of a start or a stop within milliseconds.
//! * A sweep every second looks at every running VE: what inotify cannot
//!   tell (an OOM kill or a refused fork on cgroup v1, whose counter files
//!   announce nothing; a VE whose init died while nothing was written).
//!   Every tenth sweep also looks at the stopped VEs and reads every
//!   counter, for whatever a lost inotify event hid.
//!
//! The work is bounded: a stopped VE costs a sweep nothing but every
//! tenth (a `stat` or two then), a running one a `stat` of its state file,
//! two reads of `/proc` and, on cgroup v1, of three counter files (60 us,
//! measured with 440 running VEs); and sweeps are spaced so that they take
//! at most about 3% of one CPU (with 1,000 running VEs on v1 they come
//! every 1.8 s instead of every second; starts and stops are still told
//! at once, by inotify).
//!
//! Each look compares the VE with what was seen last ([`facts::diff`]):
//! a change is published once, however many files and sweeps saw it. At
//! the start, "seen last" is what the journal says, so what happened
//! while kenneld was down is published then; on the very first start
//! (no journal) what exists is taken as it is, without events.
//!
//! Counter rises are told at most about once a second per VE: a fork
//! bomb is refused thousands of times a second, and one event a second
//! with the count says the same.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kennel_ve::{Kennel, VeId};

use super::facts::{self, Known, ReadCounts, Run, VeFacts};
use super::notify::{dir_flags, file_flags, Notify, Seen, Target};
use super::probe::Prober;
use super::{EventKind, EventLog};

/// How often every running VE is looked at.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Every this many sweeps also looks at the stopped VEs whose watches
/// are in place (without them, every sweep does).
const FULL_SWEEP_EVERY: u32 = 10;
/// A VE's counter rises are told at most this often outside sweeps.
const COUNTS_EVERY: Duration = Duration::from_secs(1);
/// Sweeps take at most one part in this of the time (of one CPU, some
/// 3%): where a sweep takes longer than 33 ms (more than about 500
/// running VEs on cgroup v1, measured: 60 us each), they come less often
/// than every second (1,000: every 1.8 s).
const SWEEP_SHARE: u32 = 30;
/// A sweep longer than this is logged.
const SLOW_SWEEP: Duration = Duration::from_millis(250);

/// Starts the watcher thread, which publishes to `log` from then on.
pub fn spawn(kennel: Arc<Kennel>, log: Arc<EventLog>) -> io::Result<()> {
    let w = Watcher::new(kennel, log);
    std::thread::Builder::new()
        .name("kenneld-events".into())
        .spawn(move || w.run())?;
    Ok(())
}

struct Watcher {
    log: Arc<EventLog>,
    probe: Prober,
    lib: PathBuf,
    run: PathBuf,
    /// What was seen of each VE last (and published).
    seen: HashMap<VeId, VeFacts>,
    /// `None`: inotify could not be had; sweeps alone then.
    notify: Option<Notify>,
    roots: Vec<i32>,
    lib_ves: Option<i32>,
    run_ves: Option<i32>,
    run_dirs: HashMap<VeId, i32>,
    /// VEs whose run directory exists but could not be watched.
    unwatched: HashSet<VeId>,
    sweeps: u32,
    /// The counter files watched for a VE's run (all of them, or none).
    counter_watches: HashMap<VeId, (Run, Vec<i32>)>,
    /// When a VE's counter rise was last told.
    counted: HashMap<VeId, Instant>,
    /// VEs whose counters were read but not told (too soon after the
    /// last): the next sweep reads them.
    held: HashSet<VeId>,
    /// Watches refused (the host's inotify limit): warned once.
    watch_limit_warned: bool,
}

impl Watcher {
    fn new(kennel: Arc<Kennel>, log: Arc<EventLog>) -> Self {
        let lib = kennel.paths().lib.clone();
        let run = kennel.paths().run.clone();
        let notify = match Notify::new() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("events: no inotify ({e}): VEs are looked at once a second only");
                None
            }
        };
        Watcher {
            log,
            probe: Prober::new(kennel),
            lib,
            run,
            seen: HashMap::new(),
            notify,
            roots: Vec::new(),
            lib_ves: None,
            run_ves: None,
            run_dirs: HashMap::new(),
            unwatched: HashSet::new(),
            sweeps: 0,
            counter_watches: HashMap::new(),
            counted: HashMap::new(),
            held: HashSet::new(),
            watch_limit_warned: false,
        }
    }

    fn run(mut self) {
        self.watch_roots();
        self.begin();
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        let mut look_at_all = false;
        loop {
            let wait = next_sweep.saturating_duration_since(Instant::now());
            let seen = self.wait(wait);
            if seen.overflow {
                tracing::debug!("events: inotify lost events: looking at every VE");
                next_sweep = Instant::now();
                look_at_all = true;
            }
            let mut dirty = BTreeSet::new();
            for (target, name) in seen.changes {
                let named = || name.as_deref().and_then(|n| VeId::parse(n).ok());
                match target {
                    Target::Root => {
                        if name.as_deref() == Some("ve") {
                            self.watch_roots();
                            next_sweep = Instant::now();
                            look_at_all = true;
                        }
                    }
                    Target::LibVes => dirty.extend(named()),
                    Target::RunVes => {
                        if let Some(id) = named() {
                            // First: what it holds from now on is seen.
                            self.watch_run_dir(&id);
                            dirty.insert(id);
                        }
                    }
                    Target::RunDir(id) | Target::Counter(id) => {
                        dirty.insert(id);
                    }
                }
            }
            for id in &dirty {
                self.look(id, false, true, true);
            }
            if Instant::now() >= next_sweep {
                self.sweeps = self.sweeps.wrapping_add(1);
                let took = self.sweep(look_at_all || self.sweeps.is_multiple_of(FULL_SWEEP_EVERY));
                look_at_all = false;
                next_sweep = Instant::now() + SWEEP_EVERY.max(took * SWEEP_SHARE);
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> Seen {
        let Some(n) = self.notify.as_mut() else {
            std::thread::sleep(timeout);
            return Seen::default();
        };
        match n.wait(timeout) {
            Ok(seen) => seen,
            Err(e) => {
                tracing::warn!(
                    "events: inotify failed ({e}): VEs are looked at once a second only"
                );
                self.notify = None;
                Seen::default()
            }
        }
    }

    /// The first look: against the journal, or (none yet) taken as it is.
    fn begin(&mut self) {
        match self.log.known() {
            Some(known) => {
                self.seen = known
                    .iter()
                    .filter_map(|(id, f)| Some((VeId::parse(id).ok()?, f.clone())))
                    .collect();
                let _ = self.sweep(true);
            }
            None => {
                let mut known = Known::default();
                for id in self.ids() {
                    self.watch_run_dir(&id);
                    match self.probe.observe(&id, None, true, true) {
                        Ok(now) => {
                            if let (_, Some(f)) = facts::diff(None, now.as_ref()) {
                                known.insert(id.as_str(), f.clone());
                                self.track(&id, &f);
                                self.seen.insert(id, f);
                            }
                        }
                        Err(e) => tracing::debug!("events: VE {id}: {e}"),
                    }
                }
                self.log.set_baseline(known);
            }
        }
    }

    /// The VEs there are (and were: one gone is looked at once more).
    fn ids(&self) -> BTreeSet<VeId> {
        let mut ids: BTreeSet<VeId> = match self.probe.ids() {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                tracing::warn!("events: cannot list the VEs: {e}");
                return self.seen.keys().cloned().collect();
            }
        };
        ids.extend(self.seen.keys().cloned());
        ids
    }

    /// Looks at the VEs: all of them if `full`, else those a watch
    /// would not tell of. Returns how long it took.
    fn sweep(&mut self, full: bool) -> Duration {
        let start = Instant::now();
        self.watch_roots();
        // A VE made is notified: a partial sweep need not list them all.
        let ids: Vec<VeId> = if full || !self.live(self.lib_ves) {
            self.ids().into_iter().collect()
        } else {
            self.seen.keys().cloned().collect()
        };
        let mut looked = 0;
        for id in &ids {
            if !full && self.quiet(id) {
                continue;
            }
            if !self.run_dir_watched(id) {
                self.watch_run_dir(id);
            }
            let counters = full || !self.counters_notified(id) || self.held.contains(id);
            self.look(id, true, full, counters);
            looked += 1;
        }
        let took = start.elapsed();
        if took > SLOW_SWEEP {
            tracing::debug!(
                "events: a sweep of {looked} of {} VEs took {took:?}",
                ids.len()
            );
        } else {
            tracing::trace!(
                "events: a sweep of {looked} of {} VEs took {took:?}",
                ids.len()
            );
        }
        took
    }

    /// Whether every change of VE `id`'s counters is notified (cgroup
    /// v2), so that a sweep need not read them.
    fn counters_notified(&self, id: &VeId) -> bool {
        let (Some(n), Some((_, wds))) = (&self.notify, self.counter_watches.get(id)) else {
            return false;
        };
        !wds.is_empty() && wds.iter().all(|wd| n.is_live(*wd))
    }

    fn run_dir_watched(&self, id: &VeId) -> bool {
        self.live(self.run_dirs.get(id).copied())
    }

    /// Whether VE `id` is stopped and watched so that a change of it
    /// would be told without a look: its start makes or changes its run
    /// directory, its end renames its directory away.
    fn quiet(&self, id: &VeId) -> bool {
        self.live(self.lib_ves)
            && self.live(self.run_ves)
            && self.seen.get(id).is_some_and(|f| f.state == facts::STOPPED)
            && !self.unwatched.contains(id)
            && self.run_dirs.get(id).is_none_or(|wd| self.live(Some(*wd)))
    }

    /// Whether watch `wd` is in place.
    fn live(&self, wd: Option<i32>) -> bool {
        match (&self.notify, wd) {
            (Some(n), Some(wd)) => n.is_live(wd),
            _ => false,
        }
    }

    /// Looks at VE `id` and publishes what changed. `sweep`: counter
    /// rises are told whenever they are seen (otherwise at most once per
    /// [`COUNTS_EVERY`], unless the VE's state changes with them).
    /// `recheck`: also whether its configuration changed (a change of its
    /// directory is notified: sweeps do it only when full). `counters`:
    /// read them (a sweep need not where every change is notified).
    fn look(&mut self, id: &VeId, sweep: bool, recheck: bool, counters: bool) {
        let before = self.seen.get(id);
        let now = match self.probe.observe(id, before, recheck, counters) {
            Ok(now) => now,
            Err(e) => {
                tracing::debug!("events: VE {id}: {e}");
                return;
            }
        };
        let due = sweep
            || self
                .counted
                .get(id)
                .is_none_or(|t| t.elapsed() >= COUNTS_EVERY);
        let mut held = false;
        let now = now.map(|mut n| {
            let quiet = before.is_some_and(|b| b.state == n.state && b.run == n.run);
            if !due && quiet {
                // Unknown for now: the next sweep reads them again.
                n.counts = ReadCounts::default();
                held = true;
            }
            n
        });
        if held {
            self.held.insert(id.clone());
        } else if counters {
            self.held.remove(id);
        }
        let (events, after) = facts::diff(before, now.as_ref());
        let mut counted = false;
        for (uuid, kind) in events {
            counted |= matches!(kind, EventKind::Oom { .. } | EventKind::LimitHit { .. });
            self.log.publish(id, &uuid, kind);
        }
        if counted {
            self.counted.insert(id.clone(), Instant::now());
        }
        match after {
            Some(f) => {
                self.track(id, &f);
                self.seen.insert(id.clone(), f);
            }
            None => {
                self.untrack(id);
                self.seen.remove(id);
            }
        }
    }

    /// Watches `<lib>/ve` and `<run>/ve`, or, while one is missing, the
    /// directory it will appear in.
    fn watch_roots(&mut self) {
        let Some(n) = self.notify.as_mut() else {
            return;
        };
        let mut missing = false;
        for (slot, dir, target) in [
            (&mut self.lib_ves, self.lib.join("ve"), Target::LibVes),
            (&mut self.run_ves, self.run.join("ve"), Target::RunVes),
        ] {
            if slot.is_some_and(|wd| n.is_live(wd)) {
                continue;
            }
            match n.watch(&dir, dir_flags(), target) {
                Ok(wd) => *slot = Some(wd),
                Err(e) if e.kind() == io::ErrorKind::NotFound => missing = true,
                Err(e) => tracing::warn!("events: cannot watch {}: {e}", dir.display()),
            }
        }
        if missing && self.roots.is_empty() {
            for dir in [&self.lib, &self.run] {
                let flags = rustix::fs::inotify::WatchFlags::CREATE
                    | rustix::fs::inotify::WatchFlags::MOVED_TO
                    | rustix::fs::inotify::WatchFlags::ONLYDIR;
                match n.watch(dir, flags, Target::Root) {
                    Ok(wd) => self.roots.push(wd),
                    Err(e) => tracing::warn!("events: cannot watch {}: {e}", dir.display()),
                }
            }
        } else if !missing && !self.roots.is_empty() {
            for wd in std::mem::take(&mut self.roots) {
                n.unwatch(wd);
            }
        }
    }

    fn watch_run_dir(&mut self, id: &VeId) {
        let Some(n) = self.notify.as_mut() else {
            return;
        };
        if self.run_dirs.get(id).is_some_and(|wd| n.is_live(*wd)) {
            return;
        }
        let dir = self.probe.run_dir(id);
        match n.watch(&dir, dir_flags(), Target::RunDir(id.clone())) {
            Ok(wd) => {
                self.run_dirs.insert(id.clone(), wd);
                self.unwatched.remove(id);
            }
            // Never started yet: `<run>/ve` tells when it is made.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.run_dirs.remove(id);
                self.unwatched.remove(id);
            }
            Err(e) => {
                self.run_dirs.remove(id);
                self.unwatched.insert(id.clone());
                self.watch_refused(&dir, &e);
            }
        }
    }

    fn watch_refused(&mut self, path: &std::path::Path, e: &io::Error) {
        if !self.watch_limit_warned {
            tracing::warn!(
                "events: cannot watch {} ({e}; raise fs.inotify.max_user_watches?): such VEs are looked at once a second",
                path.display()
            );
            self.watch_limit_warned = true;
        }
    }

    /// Keeps the watches of VE `id`, in `f`, as they should be.
    fn track(&mut self, id: &VeId, f: &VeFacts) {
        if self.notify.is_none() {
            return;
        }
        let current = self.counter_watches.get(id).map(|(r, _)| r);
        if current == f.run.as_ref() {
            return;
        }
        self.unwatch_counters(id);
        let Some(run) = &f.run else {
            return;
        };
        let files = self.probe.notifying_files(id, run);
        let mut wds = Vec::new();
        let mut refused = false;
        for file in &files {
            let Some(n) = self.notify.as_mut() else {
                return;
            };
            match n.watch(file, file_flags(), Target::Counter(id.clone())) {
                Ok(wd) => wds.push(wd),
                // Not counted here (no swap accounting): nothing to tell.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    refused = true;
                    self.watch_refused(file, &e);
                }
            }
        }
        if refused {
            // Not all: sweeps read them all anyway.
            if let Some(n) = self.notify.as_mut() {
                for wd in wds.drain(..) {
                    n.unwatch(wd);
                }
            }
        }
        self.counter_watches.insert(id.clone(), (run.clone(), wds));
    }

    fn unwatch_counters(&mut self, id: &VeId) {
        if let Some((_, wds)) = self.counter_watches.remove(id) {
            if let Some(n) = self.notify.as_mut() {
                for wd in wds {
                    n.unwatch(wd);
                }
            }
        }
    }

    /// VE `id` is gone: its watches go too.
    fn untrack(&mut self, id: &VeId) {
        self.unwatch_counters(id);
        self.counted.remove(id);
        self.held.remove(id);
        self.unwatched.remove(id);
        if let Some(wd) = self.run_dirs.remove(id) {
            if let Some(n) = self.notify.as_mut() {
                n.unwatch(wd);
            }
        }
    }
}
