//! nf_tables over netlink, by hand: one batch (one transaction) that
//! creates, replaces or deletes a VE's `netdev` table.
//!
//! Why not `nft`: starting the nft program costs 2-4 ms (loading its
//! libraries, reading the ruleset cache, which grows with every VE's
//! table), on every VE start; a batch sent from here costs a few dozen
//! microseconds and does not grow with the number of VEs. Why not a crate:
//! the maintained Rust ones are GPL (`rustables`) or bind the C libraries.
//! The encoding is small: tables, chains, anonymous constant sets and
//! eight expressions (`meta`, `payload`, `exthdr`, `cmp`, `bitwise`,
//! `lookup`, `limit`, `immediate`), with the constants of
//! `linux/netfilter/nf_tables.h`.

use std::io;

use netlink_sys::{Socket, SocketAddr};

use super::expr::{Base, Chain, Expr, Hook, MetaKey, Verdict, PRIORITY};
use crate::error::{NetError, Result};

const NETLINK_NETFILTER: isize = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFPROTO_NETDEV: u8 = 5;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFT_SET_ANONYMOUS: u32 = 0x1;
const NFT_SET_CONSTANT: u32 = 0x2;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_LOOKUP_F_INV: u32 = 1;
const NFT_META_PROTOCOL: u32 = 1;
const NFT_META_L4PROTO: u32 = 16;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

/// Attribute writer: type-length-value, 4-byte aligned, nests by
/// back-patching the length.
struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    fn put(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn str(&mut self, kind: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(kind, &v);
    }

    fn be32(&mut self, kind: u16, v: u32) {
        self.put(kind, &v.to_be_bytes());
    }

    fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        f(&mut Attrs(self.0));
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn data(&mut self, kind: u16, value: &[u8]) {
        self.nest(kind, |a| a.put(NFTA_DATA_VALUE, value));
    }
}

/// One transaction being built.
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    /// Sequence numbers of the messages that will be acknowledged.
    acked: Vec<u32>,
    /// Offset and sequence number of the last transaction message.
    last: Option<(usize, u32)>,
    next_set: u32,
}

impl Batch {
    fn new() -> Self {
        let mut b = Batch::bare();
        b.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, |_| {});
        b
    }

    /// Messages without a transaction around them (a query).
    fn bare() -> Self {
        Batch {
            buf: Vec::with_capacity(8192),
            seq: 1,
            acked: Vec::new(),
            last: None,
            next_set: 1,
        }
    }

    /// Appends one message: netlink header, `nfgenmsg`, attributes.
    fn message(&mut self, kind: u16, flags: u16, family: u8, f: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.buf.len();
        let ty = if kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END {
            kind
        } else {
            (NFNL_SUBSYS_NFTABLES << 8) | kind
        };
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version, resource id (the batch's subsystem).
        self.buf.push(family);
        self.buf.push(0);
        let res = if ty == NFNL_MSG_BATCH_BEGIN || ty == NFNL_MSG_BATCH_END {
            NFNL_SUBSYS_NFTABLES
        } else {
            0
        };
        self.buf.extend_from_slice(&res.to_be_bytes());
        f(&mut Attrs(&mut self.buf));
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        if flags & NLM_F_ACK != 0 {
            self.acked.push(self.seq);
        }
        self.seq += 1;
    }

    /// A message of the transaction. Only the last one asks for an
    /// acknowledgement (see [`Batch::finish`]): errors come back anyway,
    /// and an ack for each of hundreds of messages could overflow the
    /// socket's receive buffer.
    fn op(&mut self, kind: u16, extra: u16, f: impl FnOnce(&mut Attrs<'_>)) {
        self.last = Some((self.buf.len(), self.seq));
        self.message(kind, NLM_F_REQUEST | extra, NFPROTO_NETDEV, f);
    }

    fn table(&mut self, kind: u16, extra: u16, table: &str) {
        self.op(kind, extra, |a| a.str(NFTA_TABLE_NAME, table));
    }

    fn chain(&mut self, table: &str, c: &Chain) {
        self.op(NFT_MSG_NEWCHAIN, NLM_F_CREATE, |a| {
            a.str(NFTA_CHAIN_TABLE, table);
            a.str(NFTA_CHAIN_NAME, &c.name);
            if let Some((hook, dev)) = &c.hook {
                a.nest(NFTA_CHAIN_HOOK, |h| {
                    h.be32(
                        NFTA_HOOK_HOOKNUM,
                        match hook {
                            Hook::Ingress => 0,
                            Hook::Egress => 1,
                        },
                    );
                    h.be32(NFTA_HOOK_PRIORITY, PRIORITY as u32);
                    h.str(NFTA_HOOK_DEV, dev);
                });
                a.be32(
                    NFTA_CHAIN_POLICY,
                    if c.policy_accept { NF_ACCEPT } else { NF_DROP } as u32,
                );
                a.str(NFTA_CHAIN_TYPE, "filter");
            }
        });
    }

    /// An anonymous constant set holding `keys` (of nft's data type
    /// `key_type`, which only `nft list` reads); returns its id.
    fn set(&mut self, table: &str, keys: &[Vec<u8>], key_type: u32) -> u32 {
        let id = self.next_set;
        self.next_set += 1;
        let key_len = keys.first().map_or(0, Vec::len) as u32;
        self.op(NFT_MSG_NEWSET, NLM_F_CREATE, |a| {
            a.str(NFTA_SET_TABLE, table);
            a.str(NFTA_SET_NAME, "__set%d");
            a.be32(NFTA_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
            a.be32(NFTA_SET_KEY_TYPE, key_type);
            a.be32(NFTA_SET_KEY_LEN, key_len);
            a.be32(NFTA_SET_ID, id);
        });
        self.op(NFT_MSG_NEWSETELEM, NLM_F_CREATE, |a| {
            a.str(NFTA_SET_ELEM_LIST_TABLE, table);
            a.str(NFTA_SET_ELEM_LIST_SET, "__set%d");
            a.be32(NFTA_SET_ELEM_LIST_SET_ID, id);
            a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |l| {
                for k in keys {
                    l.nest(NFTA_LIST_ELEM, |e| e.data(NFTA_SET_ELEM_KEY, k));
                }
            });
        });
        id
    }

    fn rule(&mut self, table: &str, chain: &str, exprs: &[Expr]) {
        // Sets first: a rule names them by the id given here.
        let sets: Vec<Option<u32>> = exprs
            .iter()
            .map(|e| match e {
                Expr::Lookup { keys, kind, .. } => Some(self.set(table, keys, kind.nft_type())),
                _ => None,
            })
            .collect();
        // Appended: without NLM_F_APPEND a new rule goes first.
        self.op(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, |a| {
            a.str(NFTA_RULE_TABLE, table);
            a.str(NFTA_RULE_CHAIN, chain);
            a.nest(NFTA_RULE_EXPRESSIONS, |list| {
                for (e, set) in exprs.iter().zip(&sets) {
                    list.nest(NFTA_LIST_ELEM, |x| expr(x, e, *set));
                }
            });
        });
    }

    fn finish(mut self) -> Self {
        if let Some((at, seq)) = self.last {
            let flags = u16::from_ne_bytes([self.buf[at + 6], self.buf[at + 7]]) | NLM_F_ACK;
            self.buf[at + 6..at + 8].copy_from_slice(&flags.to_ne_bytes());
            self.acked.push(seq);
        }
        self.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, |_| {});
        self
    }
}

/// One expression: its name and its attributes.
fn expr(a: &mut Attrs<'_>, e: &Expr, set: Option<u32>) {
    let name = match e {
        Expr::Meta(_) => "meta",
        Expr::Payload { .. } => "payload",
        Expr::Exthdr { .. } => "exthdr",
        Expr::Cmp { .. } => "cmp",
        Expr::Mask(_) => "bitwise",
        Expr::Lookup { .. } => "lookup",
        Expr::Verdict(_) => "immediate",
        Expr::Limit { .. } => "limit",
    };
    a.str(NFTA_EXPR_NAME, name);
    a.nest(NFTA_EXPR_DATA, |d| match e {
        Expr::Meta(key) => {
            d.be32(1, NFT_REG_1); // NFTA_META_DREG
            d.be32(
                2, // NFTA_META_KEY
                match key {
                    MetaKey::Protocol => NFT_META_PROTOCOL,
                    MetaKey::L4Proto => NFT_META_L4PROTO,
                },
            );
        }
        Expr::Payload { base, offset, len } => {
            d.be32(1, NFT_REG_1); // NFTA_PAYLOAD_DREG
            d.be32(
                2, // NFTA_PAYLOAD_BASE
                match base {
                    Base::Link => 0,
                    Base::Network => 1,
                    Base::Transport => 2,
                },
            );
            d.be32(3, *offset); // NFTA_PAYLOAD_OFFSET
            d.be32(4, *len); // NFTA_PAYLOAD_LEN
        }
        Expr::Exthdr {
            kind,
            offset,
            len,
            present,
        } => {
            d.be32(1, NFT_REG_1); // NFTA_EXTHDR_DREG
            d.put(2, &[*kind]); // NFTA_EXTHDR_TYPE
            d.be32(3, *offset); // NFTA_EXTHDR_OFFSET
            d.be32(4, *len); // NFTA_EXTHDR_LEN
            d.be32(5, u32::from(*present)); // NFTA_EXTHDR_FLAGS: NFT_EXTHDR_F_PRESENT
            d.be32(6, 0); // NFTA_EXTHDR_OP: NFT_EXTHDR_OP_IPV6
        }
        Expr::Cmp { eq, data } => {
            d.be32(1, NFT_REG_1); // NFTA_CMP_SREG
            d.be32(2, if *eq { NFT_CMP_EQ } else { NFT_CMP_NEQ }); // NFTA_CMP_OP
            d.data(3, data); // NFTA_CMP_DATA
        }
        Expr::Mask(mask) => {
            d.be32(1, NFT_REG_1); // NFTA_BITWISE_SREG
            d.be32(2, NFT_REG_1); // NFTA_BITWISE_DREG
            d.be32(3, mask.len() as u32); // NFTA_BITWISE_LEN
            d.data(4, mask); // NFTA_BITWISE_MASK
            d.data(5, &vec![0; mask.len()]); // NFTA_BITWISE_XOR
        }
        Expr::Lookup { not, .. } => {
            d.str(1, "__set%d"); // NFTA_LOOKUP_SET
            d.be32(2, NFT_REG_1); // NFTA_LOOKUP_SREG
            d.be32(4, set.unwrap_or(0)); // NFTA_LOOKUP_SET_ID
            if *not {
                d.be32(5, NFT_LOOKUP_F_INV); // NFTA_LOOKUP_FLAGS
            }
        }
        Expr::Limit {
            bytes_per_sec,
            burst,
        } => {
            d.put(1, &bytes_per_sec.to_be_bytes()); // NFTA_LIMIT_RATE (be64)
            d.put(2, &1u64.to_be_bytes()); // NFTA_LIMIT_UNIT: per second
            d.be32(3, *burst); // NFTA_LIMIT_BURST
            d.be32(4, 1); // NFTA_LIMIT_TYPE: NFT_LIMIT_PKT_BYTES
            d.be32(5, 1); // NFTA_LIMIT_FLAGS: NFT_LIMIT_F_INV ("over")
        }
        Expr::Verdict(v) => {
            d.be32(1, NFT_REG_VERDICT); // NFTA_IMMEDIATE_DREG
            d.nest(2, |data| {
                // NFTA_IMMEDIATE_DATA
                data.nest(NFTA_DATA_VERDICT, |vd| {
                    let (code, chain) = match v {
                        Verdict::Accept => (NF_ACCEPT, None),
                        Verdict::Drop => (NF_DROP, None),
                        Verdict::Jump(c) => (NFT_JUMP, Some(c.as_str())),
                        Verdict::Goto(c) => (NFT_GOTO, Some(c.as_str())),
                        Verdict::Return => (NFT_RETURN, None),
                    };
                    vd.be32(NFTA_VERDICT_CODE, code as u32);
                    if let Some(c) = chain {
                        vd.str(NFTA_VERDICT_CHAIN, c);
                    }
                });
            });
        }
    });
}

/// What a batch does to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create it; fails (EEXIST) if it exists.
    Create,
    /// Make it exactly this, whatever exists.
    Replace,
}

/// Sends one transaction that makes `table` (netdev family) hold
/// `chains` (removing it when there are none, in [`Mode::Replace`]).
pub fn apply(table: &str, chains: &[Chain], mode: Mode) -> Result<()> {
    let mut b = Batch::new();
    match mode {
        Mode::Create => {
            if chains.is_empty() {
                return Ok(());
            }
            b.table(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, table);
        }
        Mode::Replace => {
            // `add` then `delete`: both succeed whether it existed or not.
            b.table(NFT_MSG_NEWTABLE, NLM_F_CREATE, table);
            b.table(NFT_MSG_DELTABLE, 0, table);
            if !chains.is_empty() {
                b.table(NFT_MSG_NEWTABLE, NLM_F_CREATE, table);
            }
        }
    }
    for c in chains {
        b.chain(table, c);
    }
    for c in chains {
        for r in &c.rules {
            b.rule(table, &c.name, r);
        }
    }
    send(b.finish())
}

fn send(b: Batch) -> Result<()> {
    let io_err = |what: &str, e: io::Error| NetError::Io {
        what: format!("nf_tables: {what}"),
        source: e,
    };
    let mut sock =
        Socket::new(NETLINK_NETFILTER).map_err(|e| io_err("open a netlink socket", e))?;
    sock.bind_auto().map_err(|e| io_err("bind", e))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| io_err("connect", e))?;
    sock.send(&b.buf, 0)
        .map_err(|e| io_err("send the batch", e))?;
    let mut pending: Vec<u32> = b.acked.clone();
    let mut buf = vec![0u8; 64 * 1024];
    while !pending.is_empty() {
        let n = sock
            .recv(&mut &mut buf[..], 0)
            .map_err(|e| io_err("receive", e))?;
        let mut at = 0;
        while at + 16 <= n {
            let word = |o: usize| u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
            let len = word(at) as usize;
            let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            let seq = word(at + 8);
            if len < 16 || at + len > n {
                break;
            }
            if ty == NLMSG_ERROR && len >= 20 {
                let code =
                    i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                if code != 0 {
                    return Err(NetError::Tool {
                        tool: "nf_tables",
                        what: "apply the VE's firewall".into(),
                        detail: io::Error::from_raw_os_error(-code).to_string(),
                    });
                }
                pending.retain(|s| *s != seq);
            }
            at += (len + 3) & !3;
        }
    }
    Ok(())
}

/// Whether `table` (netdev family) exists: one request for it alone, not
/// a dump of every table (the host's namespace holds one per running VE).
pub fn table_exists(table: &str) -> Result<bool> {
    let mut b = Batch::bare();
    b.message(
        NFT_MSG_GETTABLE,
        NLM_F_REQUEST | NLM_F_ACK,
        NFPROTO_NETDEV,
        |a| a.str(NFTA_TABLE_NAME, table),
    );
    match send(b) {
        Ok(()) => Ok(true),
        Err(e) if is_errno(&e, ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

const ENOENT: i32 = 2;
const EEXIST: i32 = 17;

/// Whether an error from [`send`] is the kernel's `errno`.
fn is_errno(e: &NetError, errno: i32) -> bool {
    let text = io::Error::from_raw_os_error(errno).to_string();
    matches!(e, NetError::Tool { detail, .. } if *detail == text)
}

/// Whether an error from [`apply`] says the table already exists.
pub fn is_exists(e: &NetError) -> bool {
    is_errno(e, EEXIST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_aligned_and_nested() {
        let mut v = Vec::new();
        let mut a = Attrs(&mut v);
        a.str(1, "abc");
        assert_eq!(v.len(), 8, "4 header + 4 bytes (\"abc\\0\")");
        let mut a = Attrs(&mut v);
        a.nest(2, |n| n.be32(1, 7));
        assert_eq!(v.len(), 8 + 4 + 8);
        assert_eq!(u16::from_ne_bytes([v[8], v[9]]), 12);
        assert_eq!(u16::from_ne_bytes([v[10], v[11]]), 2 | NLA_F_NESTED);
    }

    #[test]
    fn a_batch_is_framed() {
        let b = Batch::new().finish();
        // Two 20-byte messages: begin and end.
        assert_eq!(b.buf.len(), 40);
        assert!(b.acked.is_empty());
    }
}
