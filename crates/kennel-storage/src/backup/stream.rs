//! Reading a backup stream from its first byte to its last, and telling
//! what is wrong with it.
//!
//! The reader stack is: the source, counted (progress); zstd, whose
//! failures are caught on the way up and classified (an input that ends
//! inside a frame is *truncated*, a checksum or block that does not check
//! is *corrupt*, a first frame that is not zstd is *not a backup*); a
//! hasher that hashes the tar bytes one 512-byte block *late*, so that
//! when the end member's header has just been read its state is exactly
//! the hash of everything before it; and the shared member loop of
//! [`crate::unpack`], with its per-member metadata budget.
//!
//! [`read_backup`] checks the stream's shape — the manifest first, the
//! template's members if the manifest says it holds the template (and
//! only then), layer members, the index, the end record, the tar end,
//! nothing after — and hands the members to a [`Visitor`]. A visitor that
//! does not want the template's members (a restore) leaves them to the
//! loop, which reads them past, hashing them like every other byte. After the end record it reads the
//! stream to its end, so the last frame's checksum is checked too. An
//! error is reported as the first fault the stream showed, whatever the
//! layer above made of it.

use std::cell::{Cell, RefCell};
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::footer::{Footer, FOOTER_LEN, HASH_LEN};
use super::format::{hex, END_NAME, INDEX_NAME, LAYER_PREFIX, MANIFEST_NAME, TEMPLATE_PREFIX};
use super::manifest::{BackupManifest, EndRecord};
use super::BackupError;
use crate::error::{Result, StorageError};
use crate::shown::{shown, terminal_safe};
use crate::unpack::{for_each_member, Budgeted, Flow, Stopped};

/// Largest manifest or end record read.
const MAX_JSON: u64 = 16 << 20;

/// Bytes after the tar end that are read and must be zeros (tar writers
/// pad to records of 10 KiB).
const MAX_TRAILER: u64 = 64 << 10;

/// What went wrong under the tar parser.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    Truncated,
    Corrupt(String),
    Foreign(String),
}

/// State shared between the reader stack and [`read_backup`].
#[derive(Default)]
struct Probe {
    fault: RefCell<Option<Fault>>,
    /// Decompressed bytes produced.
    produced: Cell<u64>,
    /// Compressed bytes read.
    consumed: Cell<u64>,
    /// The compressed bytes: hashed but for the last [`HASH_LEN`], and
    /// the last [`FOOTER_LEN`] of them.
    file: RefCell<FileHash>,
}

#[derive(Default)]
struct FileHash {
    hash: HashState,
    tail: Vec<u8>,
    /// The first bytes (a zstd magic number, or not).
    head: Vec<u8>,
}

/// How every zstd frame begins.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl FileHash {
    fn push(&mut self, b: &[u8]) {
        let want = ZSTD_MAGIC
            .len()
            .saturating_sub(self.head.len())
            .min(b.len());
        self.head.extend_from_slice(&b[..want]);
        self.hash.push(b, HASH_LEN);
        if b.len() >= FOOTER_LEN {
            self.tail.clear();
            self.tail.extend_from_slice(&b[b.len() - FOOTER_LEN..]);
        } else {
            self.tail.extend_from_slice(b);
            let excess = self.tail.len().saturating_sub(FOOTER_LEN);
            self.tail.drain(..excess);
        }
    }
}

/// The source, counted for progress.
struct Progress<'p, R> {
    inner: R,
    probe: Rc<Probe>,
    progress: &'p dyn Fn(u64),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.probe.file.borrow_mut().push(&buf[..n]);
        let done = self.probe.consumed.get() + n as u64;
        self.probe.consumed.set(done);
        (self.progress)(done);
        Ok(n)
    }
}

/// zstd's output; its errors are recorded in the probe.
struct Classify<R> {
    inner: R,
    probe: Rc<Probe>,
}

impl<R: Read> Read for Classify<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.probe
                    .produced
                    .set(self.probe.produced.get() + n as u64);
                Ok(n)
            }
            Err(e) => {
                let fault = if self.probe.consumed.get() == 0 {
                    Fault::Foreign("the file is empty".into())
                } else if e.kind() == io::ErrorKind::UnexpectedEof {
                    Fault::Truncated
                } else if self.probe.produced.get() == 0
                    && self.probe.file.borrow().head != ZSTD_MAGIC
                {
                    Fault::Foreign(format!("it is not zstd-compressed ({})", short(&e)))
                } else {
                    Fault::Corrupt(short(&e))
                };
                self.probe.fault.borrow_mut().get_or_insert(fault);
                Err(e)
            }
        }
    }
}

fn short(e: &impl std::fmt::Display) -> String {
    shown(e.to_string())
}

/// Hashes what goes through it, one block late.
struct LagHash<R> {
    inner: R,
    state: Rc<RefCell<HashState>>,
}

#[derive(Default)]
struct HashState {
    sha: Sha256,
    /// The last bytes read, not hashed yet.
    lag: Vec<u8>,
}

/// One tar block.
const LAG: usize = 512;

impl HashState {
    /// Takes `b` in, hashing all but the last `keep` bytes seen.
    fn push(&mut self, b: &[u8], keep: usize) {
        let total = self.lag.len() + b.len();
        if total <= keep {
            self.lag.extend_from_slice(b);
            return;
        }
        let excess = total - keep;
        if excess >= self.lag.len() {
            self.sha.update(&self.lag);
            let from_b = excess - self.lag.len();
            self.sha.update(&b[..from_b]);
            self.lag.clear();
            self.lag.extend_from_slice(&b[from_b..]);
        } else {
            self.sha.update(&self.lag[..excess]);
            self.lag.drain(..excess);
            self.lag.extend_from_slice(b);
        }
    }

    /// The hash of everything read but the last block.
    fn before_last_block(&self) -> String {
        hex(&self.sha.clone().finalize())
    }
}

impl<R: Read> Read for LagHash<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.state.borrow_mut().push(&buf[..n], LAG);
        Ok(n)
    }
}

/// What [`read_backup`] hands on.
pub(crate) trait Visitor {
    /// The manifest, checked for its version and shape.
    fn manifest(&mut self, _m: &BackupManifest) -> Result<Flow> {
        Ok(Flow::Continue)
    }

    /// A template member, `rel` its path without the `template/` prefix
    /// (only in a backup whose manifest says it holds the template, and
    /// before every layer member). Data left unread is read (and hashed)
    /// by the loop.
    fn template<R: Read>(&mut self, _entry: &mut tar::Entry<'_, R>, _rel: &[u8]) -> Result<()> {
        Ok(())
    }

    /// A layer member, `rel` its path without the `layer/` prefix. Data
    /// left unread is read (and hashed) by the loop.
    fn layer<R: Read>(&mut self, _entry: &mut tar::Entry<'_, R>, _rel: &[u8]) -> Result<()> {
        Ok(())
    }

    /// The index member.
    fn index<R: Read>(&mut self, _entry: &mut tar::Entry<'_, R>) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

/// What a stream held.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub manifest: BackupManifest,
    /// `None` if the visitor stopped before it.
    pub end: Option<EndRecord>,
    pub members: u64,
    pub layer_bytes: u64,
    /// Members under `template/` (counted in `members` too).
    pub template_members: u64,
}

/// Where in the stream the loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Manifest,
    /// After the manifest of a backup that holds its template.
    Template,
    Layer,
    End,
    Done,
}

fn read_json_bytes<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    what: &str,
) -> std::result::Result<Vec<u8>, String> {
    if entry.size() > MAX_JSON {
        return Err(format!("its {what} is too large"));
    }
    let mut text = Vec::new();
    entry
        .take(MAX_JSON)
        .read_to_end(&mut text)
        .map_err(|e| format!("its {what} cannot be read ({})", short(&e)))?;
    Ok(text)
}

fn parse_json<T: serde::de::DeserializeOwned>(
    text: &[u8],
    what: &str,
) -> std::result::Result<T, String> {
    serde_json::from_slice(text).map_err(|e| format!("its {what} is malformed ({})", short(&e)))
}

/// The manifest member, checked.
fn parse_manifest<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<BackupManifest> {
    let text = read_json_bytes(entry, "manifest").map_err(BackupError::Foreign)?;
    let v: VersionOnly = parse_json(&text, "manifest").map_err(BackupError::Foreign)?;
    if v.format != super::format::FORMAT_VERSION {
        return Err(BackupError::Version(v.format).into());
    }
    let m: BackupManifest = parse_json(&text, "manifest").map_err(BackupError::Foreign)?;
    m.check().map_err(BackupError::Corrupt)?;
    Ok(m)
}

/// Just the version of a manifest, whatever else a later version holds.
#[derive(serde::Deserialize)]
struct VersionOnly {
    format: u32,
}

/// Reads the backup stream `src`, checking its shape and integrity, and
/// calls `v` with its parts. `progress` is given the compressed bytes
/// read so far.
pub(crate) fn read_backup<R: Read, V: Visitor>(
    src: R,
    progress: &dyn Fn(u64),
    v: &mut V,
) -> Result<Summary> {
    let probe = Rc::new(Probe::default());
    let source = Progress {
        inner: src,
        probe: Rc::clone(&probe),
        progress,
    };
    let decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 17, source))
            .map_err(|e| BackupError::Foreign(short(&e)))?;
    let hash = Rc::new(RefCell::new(HashState::default()));
    let mut stack = LagHash {
        inner: Classify {
            inner: decoder,
            probe: Rc::clone(&probe),
        },
        state: Rc::clone(&hash),
    };
    let mut walk = Walk {
        v,
        stage: Stage::Manifest,
        manifest: None,
        end: None,
        members: 0,
        layer_bytes: 0,
        template_members: 0,
        hash: &hash,
        stopped: false,
        pending: None,
    };
    let result = for_each_member(&mut stack, |entry| walk.member(entry)).map(|_| ());
    if walk.stage == Stage::Manifest && matches!(result, Err(Stopped::Parse(_))) {
        // The first frame holds the manifest alone: read it to its end, so
        // that a damaged frame is told from a foreign one by its checksum.
        let _ = io::copy(&mut (&mut stack.inner).take(MAX_JSON), &mut io::sink());
    }
    let mut fault = probe.fault.borrow().clone();
    if fault == Some(Fault::Truncated) && ends_with_footer(&probe) {
        // zstd ran out of input, yet the file ends as written: a frame's
        // block sizes were damaged, not cut.
        fault = Some(Fault::Corrupt(
            "a frame does not end where it should".into(),
        ));
    }
    match (result, fault) {
        (_, Some(f)) => return Err(fault_error(f, walk.stage)),
        (Err(Stopped::Visit(e)), None) => return Err(e),
        (Err(Stopped::Parse(e)), None) => return Err(parse_error(e, walk.stage)),
        (Ok(_), None) if walk.pending.is_some() => {
            return Err(walk
                .pending
                .take()
                .unwrap_or_else(|| BackupError::Truncated.into()))
        }
        (Ok(()), None) => {}
    }
    let Some(manifest) = walk.manifest.take() else {
        return Err(match walk.stage {
            _ if probe.produced.get() == 0 => BackupError::Foreign("the file is empty".into()),
            _ => BackupError::Foreign("it holds no manifest".into()),
        }
        .into());
    };
    if walk.stopped {
        return Ok(Summary {
            manifest,
            end: None,
            members: walk.members,
            layer_bytes: walk.layer_bytes,
            template_members: walk.template_members,
        });
    }
    if walk.stage != Stage::Done {
        return Err(BackupError::Truncated.into());
    }
    drain(&mut stack, &probe)?;
    check_footer(&probe)?;
    Ok(Summary {
        manifest,
        end: walk.end,
        members: walk.members,
        layer_bytes: walk.layer_bytes,
        template_members: walk.template_members,
    })
}

/// Reads what follows the tar end: zeros, then the end of the last frame
/// (whose checksum zstd checks as it gets there).
fn drain<R: Read>(rest: R, probe: &Probe) -> Result<()> {
    let mut rest = rest.take(MAX_TRAILER + 1);
    let mut buf = [0u8; 4096];
    let mut total = 0u64;
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if total > MAX_TRAILER || buf[..n].iter().any(|&b| b != 0) {
                    return Err(
                        BackupError::Corrupt("data after the end of the archive".into()).into(),
                    );
                }
            }
            Err(_) => {
                let fault = probe.fault.borrow().clone();
                return Err(fault_error(fault.unwrap_or(Fault::Truncated), Stage::Done));
            }
        }
    }
    Ok(())
}

/// Whether the bytes read so far end with a footer that counts them.
fn ends_with_footer(probe: &Probe) -> bool {
    let file = probe.file.borrow();
    let tail: Option<&[u8; FOOTER_LEN]> = file.tail.as_slice().try_into().ok();
    tail.is_some_and(|t| Footer::decode(t, probe.consumed.get()).is_some())
}

/// Checks the footer the stream ended with, and its hash of the file.
fn check_footer(probe: &Probe) -> Result<()> {
    let file = probe.file.borrow();
    let tail: Option<&[u8; FOOTER_LEN]> = file.tail.as_slice().try_into().ok();
    let Some(tail) = tail.filter(|t| Footer::decode(t, probe.consumed.get()).is_some()) else {
        return Err(BackupError::Corrupt("its footer is missing or damaged".into()).into());
    };
    if !Footer::hash_matches(tail, file.hash.sha.clone()) {
        return Err(BackupError::Corrupt("checksum mismatch".into()).into());
    }
    Ok(())
}

fn fault_error(f: Fault, stage: Stage) -> StorageError {
    match f {
        // Past the end record, a truncation can only be of the tar end or
        // the last frame's checksum: still not the stream that was written.
        Fault::Truncated if stage == Stage::Done => {
            BackupError::Corrupt("the stream ends inside its last frame".into())
        }
        Fault::Truncated => BackupError::Truncated,
        Fault::Corrupt(why) => BackupError::Corrupt(why),
        Fault::Foreign(why) => BackupError::Foreign(why),
    }
    .into()
}

fn parse_error(e: StorageError, stage: Stage) -> StorageError {
    // The tar parser's reasons may quote the stream's bytes.
    let why = match &e {
        StorageError::Archive { reason, .. } => terminal_safe(reason).into_owned(),
        other => terminal_safe(&other.to_string()).into_owned(),
    };
    match stage {
        Stage::Manifest => BackupError::Foreign(why),
        _ => BackupError::Corrupt(why),
    }
    .into()
}

struct Walk<'a, V> {
    v: &'a mut V,
    stage: Stage,
    manifest: Option<BackupManifest>,
    end: Option<EndRecord>,
    members: u64,
    layer_bytes: u64,
    template_members: u64,
    hash: &'a Rc<RefCell<HashState>>,
    stopped: bool,
    /// The manifest's error, reported at the next member.
    pending: Option<StorageError>,
}

impl<V: Visitor> Walk<'_, V> {
    fn member<R: Read>(&mut self, entry: &mut tar::Entry<'_, Budgeted<R>>) -> Result<Flow> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let raw = entry.path_bytes().into_owned();
        let name = shown(&raw);
        match self.stage {
            Stage::Manifest => {
                if raw != MANIFEST_NAME.as_bytes() {
                    return Err(BackupError::Foreign(format!(
                        "its first member is '{name}', not {MANIFEST_NAME}"
                    ))
                    .into());
                }
                let m = match parse_manifest(entry) {
                    Ok(m) => m,
                    Err(e) => {
                        // Judged once the next header is read: if the frame's
                        // checksum fails then, the manifest was corrupt, not
                        // foreign.
                        self.pending = Some(e);
                        self.stage = Stage::Layer;
                        return Ok(Flow::Continue);
                    }
                };
                self.members += 1;
                self.stage = if m.template_included {
                    Stage::Template
                } else {
                    Stage::Layer
                };
                let flow = self.v.manifest(&m)?;
                self.manifest = Some(m);
                self.stopped = flow == Flow::Stop;
                Ok(flow)
            }
            Stage::Template if raw.starts_with(TEMPLATE_PREFIX.as_bytes()) => {
                self.members += 1;
                self.template_members += 1;
                let rel = &raw[TEMPLATE_PREFIX.len()..];
                self.v.template(entry, rel)?;
                Ok(Flow::Continue)
            }
            Stage::Template | Stage::Layer => {
                if self.stage == Stage::Template {
                    if self.template_members == 0 {
                        return Err(BackupError::Corrupt(
                            "its manifest says it holds the template, but it holds none".into(),
                        )
                        .into());
                    }
                    self.stage = Stage::Layer;
                }
                self.members += 1;
                if let Some(rel) = raw.strip_prefix(LAYER_PREFIX.as_bytes()) {
                    if entry.header().entry_type().is_file() {
                        self.layer_bytes += entry.size();
                    }
                    self.v.layer(entry, rel)?;
                    Ok(Flow::Continue)
                } else if raw == INDEX_NAME.as_bytes() {
                    self.stage = Stage::End;
                    let flow = self.v.index(entry)?;
                    self.stopped = flow == Flow::Stop;
                    Ok(flow)
                } else if raw.starts_with(TEMPLATE_PREFIX.as_bytes()) {
                    Err(BackupError::Corrupt(format!(
                        "a template member '{name}' where none may be (after the layer's, or \
                         in a backup without the template)"
                    ))
                    .into())
                } else {
                    Err(BackupError::Corrupt(format!("an unexpected member '{name}'")).into())
                }
            }
            Stage::End => {
                if raw != END_NAME.as_bytes() {
                    return Err(BackupError::Corrupt(format!(
                        "'{name}' where the end record should be"
                    ))
                    .into());
                }
                // The lag holds exactly this member's header.
                let sha = self.hash.borrow().before_last_block();
                let end: EndRecord = read_json_bytes(entry, "end record")
                    .and_then(|t| parse_json(&t, "end record"))
                    .map_err(BackupError::Corrupt)?;
                let id = self.manifest.as_ref().map(|m| m.id);
                if Some(end.id) != id {
                    return Err(
                        BackupError::Corrupt("the end record is another backup's".into()).into(),
                    );
                }
                if end.sha256 != sha {
                    return Err(BackupError::Corrupt("checksum mismatch".into()).into());
                }
                if end.members != self.members || end.layer_bytes != self.layer_bytes {
                    return Err(BackupError::Corrupt(
                        "the end record's counts do not match the members".into(),
                    )
                    .into());
                }
                self.end = Some(end);
                self.stage = Stage::Done;
                Ok(Flow::Continue)
            }
            Stage::Done => {
                Err(BackupError::Corrupt(format!("a member '{name}' after the end record")).into())
            }
        }
    }
}
