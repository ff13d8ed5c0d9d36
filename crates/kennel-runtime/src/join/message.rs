//! The channel from a joining child (`child.rs`) to `kennel exec` (`mod.rs`):
//! a `SOCK_SEQPACKET` pair whose child end is close-on-exec, so the end of
//! file the parent sees is the child's `execve` (or its death).

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::sync::{recv_msg, send_msg};

/// What the child says before it execs the command.
#[derive(Debug)]
pub(crate) enum FromJoin {
    /// The master of the command's pty (from the VE's devpts).
    Pty(OwnedFd),
    /// The command could not be run; `code` is the exit status to report
    /// (126 cannot run it, 127 not found), `message` one line.
    Failed { code: i32, message: String },
    /// End of file: the command runs (or the child died).
    Eof,
}

const PTY: u8 = b'P';
const FAILED: u8 = b'F';
/// Longest message the parent reads: an error line.
const MAX: usize = 4096;

impl FromJoin {
    pub(crate) fn send(&self, sock: BorrowedFd<'_>) -> std::io::Result<()> {
        match self {
            FromJoin::Pty(fd) => {
                use std::os::fd::AsFd;
                send_msg(sock, &[PTY], &[fd.as_fd()])
            }
            FromJoin::Failed { code, message } => {
                let mut data = vec![FAILED, *code as u8];
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
            ([FAILED, code, msg @ ..], _) => FromJoin::Failed {
                code: i32::from(*code),
                message: String::from_utf8_lossy(msg).into_owned(),
            },
            _ => FromJoin::Failed {
                code: 126,
                message: "unexpected message from the joining process".into(),
            },
        })
    }
}
