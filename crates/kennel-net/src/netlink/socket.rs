//! The socket: opening it (here or in another network namespace), and one
//! request/reply exchange with the kernel.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;

use netlink_packet_core::{
    parse_string, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::{NetlinkError, Result};

/// Room for one reply datagram. The kernel sizes dump datagrams to at most
/// 32 KiB; a larger one is reported, never silently cut.
const RECV_BUF_LEN: usize = 64 * 1024;

/// `MSG_TRUNC`: `recv` returns a datagram's real length even when it did
/// not fit.
const MSG_TRUNC: i32 = rustix::net::RecvFlags::TRUNC.bits() as i32;

/// Length of `struct nlmsghdr`.
const NLMSG_HDR_LEN: usize = 16;

/// `NLMSGERR_ATTR_MSG`: the extended ack's text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// How often a dump the kernel marks inconsistent (`NLM_F_DUMP_INTR`: the
/// table changed while it was read) is retried.
const DUMP_ATTEMPTS: usize = 5;

/// One message of a reply: its type (`RTM_NEWLINK`, ...) and its payload
/// (the bytes after the netlink header).
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) kind: u16,
    pub(super) payload: Vec<u8>,
}

/// A synchronous `NETLINK_ROUTE` socket bound to the network namespace it was
/// opened in.
pub struct Netlink {
    socket: Socket,
    port: u32,
    seq: u32,
    buf: Vec<u8>,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink")
            .field("socket", &self.socket)
            .field("port", &self.port)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Netlink {
    /// A `NETLINK_ROUTE` socket in the caller's current network namespace.
    pub fn open() -> Result<Self> {
        let op = "open rtnetlink socket";
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| NetlinkError::io(op, e))?;
        let addr = socket.bind_auto().map_err(|e| NetlinkError::io(op, e))?;
        // Only the kernel (port 0) may talk to this socket.
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NetlinkError::io(op, e))?;
        // Best effort: the kernel's error text, and errors without the
        // request echoed back. Older kernels lack these options.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Self {
            socket,
            port: addr.port_number(),
            seq: 0,
            buf: vec![0; RECV_BUF_LEN],
        })
    }

    /// A socket inside the network namespace `netns` (an fd of
    /// `/proc/PID/ns/net`). The calling thread's namespace is not changed:
    /// the socket is created on a short-lived thread that enters `netns`
    /// first (a socket stays in the namespace it was created in).
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Self> {
        let op = "open rtnetlink socket in another network namespace";
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("kennel-netlink".into())
                .spawn_scoped(scope, move || {
                    move_into_link_name_space(netns, Some(LinkNameSpaceType::Network))
                        .map_err(|e| NetlinkError::io(op, e.into()))?;
                    Self::open()
                })
                .map_err(|e| NetlinkError::io(op, e))?;
            worker
                .join()
                .map_err(|_| NetlinkError::protocol(op, "the socket thread panicked"))?
        })
    }

    /// Sends `msg` with `NLM_F_REQUEST|NLM_F_ACK|flags` and returns the
    /// messages of the reply, up to the kernel's acknowledgement.
    pub(super) fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<Reply>> {
        let seq = self.send(op, msg, NLM_F_ACK | flags)?;
        Ok(self.receive(op, seq, false)?.0)
    }

    /// Dumps with `msg` (`NLM_F_DUMP`) and returns every message up to
    /// `NLMSG_DONE`. A dump the kernel marks inconsistent is read again.
    pub(super) fn dump(&mut self, op: &str, msg: RouteNetlinkMessage) -> Result<Vec<Reply>> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.send(op, msg.clone(), NLM_F_ACK | NLM_F_DUMP)?;
            let (replies, interrupted) = self.receive(op, seq, true)?;
            if !interrupted {
                return Ok(replies);
            }
        }
        Err(NetlinkError::protocol(
            op,
            format!("the dump was interrupted by changes {DUMP_ATTEMPTS} times in a row"),
        ))
    }

    fn next_seq(&mut self) -> u32 {
        // 0 is what kernel notifications carry; never use it.
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&mut self, op: &str, msg: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        header.port_number = self.port;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        loop {
            match self.socket.send(&bytes, 0) {
                Ok(n) if n == bytes.len() => return Ok(seq),
                Ok(n) => {
                    return Err(NetlinkError::protocol(
                        op,
                        format!("sent {n} of {} bytes", bytes.len()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetlinkError::io(op, e)),
            }
        }
    }

    /// Reads the reply to request `seq`: its messages, and whether any was
    /// flagged `NLM_F_DUMP_INTR`. Messages of other requests (left over
    /// from an earlier, failed exchange) are skipped.
    fn receive(&mut self, op: &str, seq: u32, dump: bool) -> Result<(Vec<Reply>, bool)> {
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let n = loop {
                match self.socket.recv(&mut &mut self.buf[..], MSG_TRUNC) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(NetlinkError::io(op, e)),
                }
            };
            if n > self.buf.len() {
                return Err(NetlinkError::protocol(
                    op,
                    format!(
                        "a reply datagram of {n} bytes exceeds the {} byte buffer",
                        self.buf.len()
                    ),
                ));
            }
            let mut data = &self.buf[..n];
            while !data.is_empty() {
                let msg = NetlinkBuffer::new_checked(data)
                    .map_err(|e| NetlinkError::protocol(op, format!("bad reply: {e}")))?;
                let len = msg.length() as usize;
                let next = len.saturating_add(3) & !3;
                if msg.sequence_number() == seq {
                    let payload = msg.payload();
                    match msg.message_type() {
                        NLMSG_NOOP => {}
                        NLMSG_ERROR => {
                            let code = leading_i32(payload)
                                .ok_or_else(|| NetlinkError::protocol(op, "short NLMSG_ERROR"))?;
                            if code != 0 {
                                return Err(kernel_error(
                                    op,
                                    code,
                                    error_ext_ack(msg.flags(), payload),
                                ));
                            }
                            if !dump {
                                return Ok((replies, interrupted));
                            }
                        }
                        NLMSG_DONE => {
                            // The kernel may send an empty NLMSG_DONE.
                            let code = leading_i32(payload).unwrap_or(0);
                            if code != 0 {
                                return Err(kernel_error(
                                    op,
                                    code,
                                    done_ext_ack(msg.flags(), payload),
                                ));
                            }
                            return Ok((replies, interrupted));
                        }
                        NLMSG_OVERRUN => {
                            return Err(NetlinkError::protocol(
                                op,
                                "the kernel reported an overrun",
                            ))
                        }
                        kind => {
                            interrupted |= msg.flags() & NLM_F_DUMP_INTR != 0;
                            replies.push(Reply {
                                kind,
                                payload: payload.to_vec(),
                            });
                        }
                    }
                }
                data = data.get(next..).unwrap_or_default();
            }
        }
    }
}

fn leading_i32(bytes: &[u8]) -> Option<i32> {
    let raw: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(i32::from_ne_bytes(raw))
}

fn kernel_error(op: &str, code: i32, message: Option<String>) -> NetlinkError {
    NetlinkError::Kernel {
        op: op.to_owned(),
        errno: code.checked_abs().unwrap_or(i32::MAX),
        message,
    }
}

/// The extended ack text of an `NLMSG_ERROR` payload: the error code, the
/// request's header (and whole request unless `NLM_F_CAPPED`), then TLVs.
fn error_ext_ack(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request = payload.get(4..)?;
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDR_LEN
    } else {
        (NetlinkBuffer::new_checked(request).ok()?.length() as usize).saturating_add(3) & !3
    };
    ext_ack_text(request.get(skip..)?)
}

/// The extended ack text of an `NLMSG_DONE` payload: the code, then TLVs.
fn done_ext_ack(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    ext_ack_text(payload.get(4..)?)
}

fn ext_ack_text(tlvs: &[u8]) -> Option<String> {
    NlasIterator::new(tlvs)
        .map_while(|nla| nla.ok())
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .and_then(|nla| parse_string(nla.value()).ok())
        .filter(|text| !text.is_empty())
}
