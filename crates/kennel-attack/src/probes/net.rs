//! Layer 2: forged frames out, and a promiscuous ear on the VE's link.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::sys::{self, ename};
use crate::verdict::{blocked, error, escaped, info, Verdict};

fn ifindex(name: &str) -> Result<i32, Verdict> {
    let c = std::ffi::CString::new(name).map_err(|_| error("bad interface name"))?;
    // SAFETY: c is a valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(error(format!("no interface {name}")))
    } else {
        Ok(i as i32)
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn packet_socket(proto: u16) -> Result<std::os::fd::OwnedFd, Verdict> {
    // SAFETY: no pointers.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto.to_be() as i32) };
    if fd < 0 {
        return Err(error(format!("packet socket: {}", ename(sys::errno()))));
    }
    Ok(sys::own(fd))
}

/// `send-frame IFACE HEX [COUNT]`: sends a whole Ethernet frame (the
/// suite builds it) COUNT times, 10 ms apart.
pub fn send_frame(args: &[String]) -> Verdict {
    let (Some(iface), Some(frame)) = (args.first(), args.get(1).and_then(|h| hex(h))) else {
        return error("usage: send-frame IFACE HEX [COUNT]");
    };
    let count: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let idx = match ifindex(iface) {
        Ok(i) => i,
        Err(v) => return v,
    };
    let sock = match packet_socket(0) {
        Ok(s) => s,
        Err(v) => return v,
    };
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_ifindex = idx;
    sa.sll_halen = 6;
    sa.sll_addr[..6].copy_from_slice(&frame[..6.min(frame.len())]);
    let mut sent = 0;
    for _ in 0..count {
        // SAFETY: frame and sa are valid for their lengths.
        let r = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r > 0 {
            sent += 1;
        }
        sys::sleep_ms(10);
    }
    // Whether it arrived anywhere is for the receiver to say.
    blocked(format!(
        "sent {sent} of {count} frames (the suite counts at the receivers)"
    ))
}

/// `sniff IFACE MILLIS OWN_MAC [ADDR...]`: promiscuous on IFACE for
/// MILLIS; any unicast frame for a MAC not its own, or any packet from or
/// to one of ADDR (a neighbour's addresses, IPv4), is a leak.
pub fn sniff(args: &[String]) -> Verdict {
    let (Some(iface), Some(ms), Some(own)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
        args.get(2).and_then(|m| hex(&m.replace(':', ""))),
    ) else {
        return error("usage: sniff IFACE MILLIS OWN_MAC [IPV4...]");
    };
    let watch: Vec<[u8; 4]> = args[3..]
        .iter()
        .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .map(|a| a.octets())
        .collect();
    let idx = match ifindex(iface) {
        Ok(i) => i,
        Err(v) => return v,
    };
    let sock = match packet_socket(libc::ETH_P_ALL as u16) {
        Ok(s) => s,
        Err(v) => return v,
    };
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sa.sll_ifindex = idx;
    // SAFETY: sa is a valid sockaddr_ll of its size.
    unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    let mreq = libc::packet_mreq {
        mr_ifindex: idx,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: mreq is a valid packet_mreq.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq as *const libc::packet_mreq as *const libc::c_void,
            std::mem::size_of::<libc::packet_mreq>() as u32,
        )
    };
    info(format!(
        "promiscuous mode: {}",
        if r == 0 {
            "on".into()
        } else {
            ename(sys::errno())
        }
    ));
    let end = Instant::now() + Duration::from_millis(ms);
    let (mut frames, mut foreign, mut theirs) = (0usize, 0usize, 0usize);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            continue;
        }
        // SAFETY: an all-zero sockaddr_ll is valid.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut flen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: buf and from are writable and of the given sizes.
        let n = unsafe {
            libc::recvfrom(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut flen,
            )
        };
        if n < 14 {
            continue;
        }
        let f = &buf[..n as usize];
        frames += 1;
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let dst = &f[..6];
        if dst[0] & 1 == 0 && dst != own.as_slice() {
            foreign += 1;
        }
        if f[12..14] == [0x08, 0x00] && f.len() >= 34 {
            let (s, d) = (&f[26..30], &f[30..34]);
            if watch.iter().any(|w| w == s || w == d) {
                theirs += 1;
            }
        }
    }
    info(format!("{frames} frames seen"));
    if foreign + theirs > 0 {
        escaped(format!(
            "{foreign} unicast frames for other MACs, {theirs} packets of the neighbour"
        ))
    } else {
        blocked(format!("{frames} frames, none for anyone else"))
    }
}

/// `nft-flush`: deletes every nftables table the caller's network
/// namespace has (what `nft flush ruleset` does), over raw netlink.
pub fn nft_flush(_: &[String]) -> Verdict {
    // SAFETY: no pointers.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER) };
    if fd < 0 {
        return error(format!("netlink socket: {}", ename(sys::errno())));
    }
    let sock = sys::own(fd);
    let msg = |ty: u16, flags: u16, seq: u32, res_id: u16| -> Vec<u8> {
        let mut m = Vec::with_capacity(20);
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version, res_id (big-endian)
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&res_id.to_be_bytes());
        m
    };
    const REQ: u16 = libc::NLM_F_REQUEST as u16;
    const ACK: u16 = libc::NLM_F_ACK as u16;
    let mut batch = msg(0x10, REQ, 1, 10); // NFNL_MSG_BATCH_BEGIN, subsys nftables
    batch.extend(msg((10 << 8) | 2, REQ | ACK, 2, 0)); // NFT_MSG_DELTABLE, all tables
    batch.extend(msg(0x11, REQ, 3, 10)); // NFNL_MSG_BATCH_END
                                         // SAFETY: batch is a valid buffer of its length.
    let r = unsafe { libc::send(sock.as_raw_fd(), batch.as_ptr().cast(), batch.len(), 0) };
    if r < 0 {
        return error(format!("send: {}", ename(sys::errno())));
    }
    let mut buf = [0u8; 4096];
    // SAFETY: buf is writable.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let code = if n >= 20 {
        i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]])
    } else {
        -1
    };
    blocked(format!(
        "flushed its own network namespace's ruleset (ack {code}); the host's is another namespace"
    ))
}
