//! The line protocol between a batch and its workers.
//!
//! To a worker, on its standard input: one VE id a line, optionally
//! followed by the uuid the VE must have (`ID UUID`: the API service
//! acting for a tenant; another VE under that id is reported missing).
//! From it, on its standard output, one line per id, in the order they
//! came:
//!
//! ```text
//! ok ID started PID      ok ID stopped      ok ID stop-timed-out      ok ID killed
//! skip ID                err ID CODE MESSAGE
//! ```
//!
//! `CODE` is the exit status a `kennel` command for that one VE would have
//! had (docs/CLI.md); `MESSAGE` is its error on one line, made safe for a
//! terminal. Ids are checked before they are sent or believed.

use crate::id::VeId;

/// What was done to a VE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Started {
        init_pid: i32,
    },
    /// Its init shut down within the timeout.
    Stopped,
    /// The timeout passed and it was killed.
    StopTimedOut,
    Killed,
}

/// How one VE of a batch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Done),
    /// Already in the wanted state, or gone (only with `skip_idle`).
    Skipped,
    Failed {
        code: i32,
        message: String,
    },
}

/// One VE's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub id: VeId,
    pub outcome: Outcome,
}

impl Report {
    /// The report as one protocol line, without its newline.
    pub fn to_line(&self) -> String {
        let id = &self.id;
        match &self.outcome {
            Outcome::Done(Done::Started { init_pid }) => format!("ok {id} started {init_pid}"),
            Outcome::Done(Done::Stopped) => format!("ok {id} stopped"),
            Outcome::Done(Done::StopTimedOut) => format!("ok {id} stop-timed-out"),
            Outcome::Done(Done::Killed) => format!("ok {id} killed"),
            Outcome::Skipped => format!("skip {id}"),
            Outcome::Failed { code, message } => {
                format!("err {id} {code} {}", message.replace(['\n', '\r'], " "))
            }
        }
    }

    /// A protocol line (without its newline); `None` if it is not one.
    pub fn parse(line: &str) -> Option<Report> {
        let mut w = line.splitn(4, ' ');
        let (kind, id) = (w.next()?, VeId::parse(w.next()?).ok()?);
        let outcome = match (kind, w.next(), w.next()) {
            ("ok", Some("started"), Some(pid)) => Outcome::Done(Done::Started {
                init_pid: pid.parse().ok()?,
            }),
            ("ok", Some("stopped"), None) => Outcome::Done(Done::Stopped),
            ("ok", Some("stop-timed-out"), None) => Outcome::Done(Done::StopTimedOut),
            ("ok", Some("killed"), None) => Outcome::Done(Done::Killed),
            ("skip", None, None) => Outcome::Skipped,
            ("err", Some(code), message) => Outcome::Failed {
                code: code.parse().ok()?,
                message: message.unwrap_or_default().to_string(),
            },
            _ => return None,
        };
        Some(Report { id, outcome })
    }
}

/// A request line: a VE id, and the uuid it must have if one is given
/// (`[0-9a-f-]`, at most 64 characters); `None` if it is not one.
pub fn parse_request(line: &str) -> Option<(VeId, Option<String>)> {
    let mut w = line.split_whitespace();
    let id = VeId::parse(w.next()?).ok()?;
    let uuid = match w.next() {
        None => None,
        Some(u) if u.len() <= 64 && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') => {
            Some(u.to_string())
        }
        Some(_) => return None,
    };
    w.next().is_none().then_some((id, uuid))
}

/// An error and its causes on one line, each cause once (a message often
/// repeats its source), safe to print on a terminal.
pub fn one_line(err: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let s = e.to_string();
        if !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
        cause = e.source();
    }
    kennel_storage::shown::terminal_safe(&out.replace(['\n', '\r'], " ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> VeId {
        VeId::parse(s).expect("id")
    }

    #[test]
    fn reports_round_trip() {
        for outcome in [
            Outcome::Done(Done::Started { init_pid: 4242 }),
            Outcome::Done(Done::Stopped),
            Outcome::Done(Done::StopTimedOut),
            Outcome::Done(Done::Killed),
            Outcome::Skipped,
            Outcome::Failed {
                code: 12,
                message: "VE 7 failed to start: mount the root: no space".into(),
            },
            Outcome::Failed {
                code: 1,
                message: String::new(),
            },
        ] {
            let r = Report {
                id: id("7"),
                outcome,
            };
            assert_eq!(Report::parse(&r.to_line()), Some(r));
        }
    }

    #[test]
    fn requests_name_a_ve_and_perhaps_its_uuid() {
        assert_eq!(parse_request("7"), Some((id("7"), None)));
        assert_eq!(
            parse_request("7 0f1e-2d"),
            Some((id("7"), Some("0f1e-2d".into())))
        );
        for bad in [
            "",
            "../x",
            "7 uuid!",
            "7 a b",
            &format!("7 {}", "a".repeat(65)),
        ] {
            assert_eq!(parse_request(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_message_stays_on_its_line() {
        let r = Report {
            id: id("a-1"),
            outcome: Outcome::Failed {
                code: 2,
                message: "one\ntwo\r".into(),
            },
        };
        assert_eq!(r.to_line(), "err a-1 2 one two ");
    }

    #[test]
    fn what_is_not_a_report() {
        for line in [
            "",
            "ok",
            "ok 7",
            "ok 7 started",
            "ok 7 started x",
            "ok 7 stopped extra",
            "ok ../x stopped",
            "skip 7 more",
            "err 7",
            "err 7 x msg",
            "done 7",
        ] {
            assert_eq!(Report::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn causes_are_said_once() {
        let e = crate::VeError::Io {
            what: "read x".into(),
            source: std::io::Error::other("gone\n\u{1b}[2J"),
        };
        let s = one_line(&e);
        assert!(s.starts_with("read x: gone"), "{s}");
        assert_eq!(s.matches("gone").count(), 1, "{s}");
        assert!(!s.contains('\n') && !s.contains('\u{1b}'), "{s}");
    }
}
