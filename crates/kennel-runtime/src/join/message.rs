//! The channel from a joining child (`child.rs`) to `kennel exec` (`mod.rs`):
//! a `SOCK_SEQPACKET` pair whose child end is close-on-exec, so the end of
//! file the parent sees is the child's `execve` (or its death).

use std::os::fd::{BorrowedFd, OwnedFd};

use super::NotRun;
use crate::sync::{recv_msg, send_msg};

/// What the child says before it execs the command.
#[derive(Debug)]
pub(crate) enum FromJoin {
    /// The master of the command's pty (from the VE's devpts).
    Pty(OwnedFd),
    /// The command could not be run, and why; `message` is one line.
    Failed { why: NotRun, message: String },
    /// End of file: the command runs (or the child died).
    Eof,
}

const PTY: u8 = b'P';
const FAILED: u8 = b'F';
/// What follows `FAILED`: why.
const NOT_FOUND: u8 = b'n';
const NOT_RUN: u8 = b'x';
/// Longest message the parent reads: an error line.
const MAX: usize = 4096;

impl FromJoin {
    pub(crate) fn send(&self, sock: BorrowedFd<'_>) -> std::io::Result<()> {
        match self {
            FromJoin::Pty(fd) => {
                use std::os::fd::AsFd;
                send_msg(sock, &[PTY], &[fd.as_fd()])
            }
            FromJoin::Failed { why, message } => {
                let why = match why {
                    NotRun::NotFound => NOT_FOUND,
                    NotRun::Failed => NOT_RUN,
                };
                let mut data = vec![FAILED, why];
                data.extend(message.bytes().take(MAX - 2));
                send_msg(sock, &data, &[])
            }
            FromJoin::Eof => Ok(()),
        }
    }

    pub(crate) fn recv(sock: BorrowedFd<'_>) -> std::io::Result<Self> {
        let mut buf = vec![0u8; MAX];
        let (n, mut fds) = recv_msg(sock, &mut buf)?;
        Ok(match (buf.get(..n).unwrap_or_default(), fds.pop()) {
            ([], _) => FromJoin::Eof,
            ([PTY], Some(fd)) => FromJoin::Pty(fd),
            ([FAILED, why, msg @ ..], _) => FromJoin::Failed {
                why: if *why == NOT_FOUND {
                    NotRun::NotFound
                } else {
                    NotRun::Failed
                },
                message: String::from_utf8_lossy(msg).into_owned(),
            },
            _ => FromJoin::Failed {
                why: NotRun::Failed,
                message: "unexpected message from the joining process".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    fn round_trip(msg: FromJoin) -> FromJoin {
        let (a, b) = crate::sync::channel().expect("socketpair");
        msg.send(a.as_fd()).expect("send");
        drop(a);
        FromJoin::recv(b.as_fd()).expect("recv")
    }

    #[test]
    fn failures_cross_with_why_and_message() {
        for why in [NotRun::NotFound, NotRun::Failed] {
            let back = round_trip(FromJoin::Failed {
                why,
                message: "cannot run x: nope".into(),
            });
            assert!(
                matches!(&back, FromJoin::Failed { why: w, message } if *w == why && message == "cannot run x: nope"),
                "{back:?}"
            );
        }
    }

    #[test]
    fn a_long_message_is_cut_and_the_end_is_eof() {
        let back = round_trip(FromJoin::Failed {
            why: NotRun::Failed,
            message: "y".repeat(10_000),
        });
        let FromJoin::Failed { message, .. } = back else {
            panic!("{back:?}");
        };
        assert_eq!(message.len(), MAX - 2);
        assert!(matches!(round_trip(FromJoin::Eof), FromJoin::Eof));
    }

    #[test]
    fn a_pty_arrives_with_its_descriptor() {
        let (r, _w) = rustix::pipe::pipe().expect("pipe");
        assert!(matches!(round_trip(FromJoin::Pty(r)), FromJoin::Pty(_)));
    }
}
