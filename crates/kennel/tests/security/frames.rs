//! Ethernet frames built by the test, sent raw by `kennel-attack
//! send-frame` from inside a VE: forged sources, ARP claims and probes,
//! VLAN tags, router adverts.

pub type Mac = [u8; 6];

pub fn mac(s: &str) -> Mac {
    let mut m = [0u8; 6];
    for (i, p) in s.trim().split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    m
}

pub fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .unwrap_or([0; 4])
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// IPv4/UDP to port 9 (discard), from `src` to `dst`.
pub fn udp4(dmac: Mac, smac: Mac, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let payload = b"kennel-attack";
    let udp_len = 8 + payload.len();
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    let total = (20 + udp_len) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&40000u16.to_be_bytes());
    ip.extend_from_slice(&9u16.to_be_bytes());
    ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(payload);
    eth(dmac, smac, 0x0800, &ip)
}

/// ARP (`op` 1 request, 2 reply) from `smac` claiming `sip`.
pub fn arp(op: u16, smac: Mac, sip: [u8; 4], tmac: Mac, tip: [u8; 4], dst: Mac) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&smac);
    a.extend_from_slice(&sip);
    a.extend_from_slice(&tmac);
    a.extend_from_slice(&tip);
    eth(dst, smac, 0x0806, &a)
}

/// An 802.1Q-tagged copy of `frame` (VLAN `vid`).
pub fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// An IPv6 router advert to all nodes, from the link-local address
/// `smac` gives (EUI-64), claiming a default route.
pub fn router_advert(smac: Mac) -> Vec<u8> {
    let mut src = [0u8; 16];
    src[0] = 0xfe;
    src[1] = 0x80;
    src[8] = smac[0] ^ 2;
    src[9] = smac[1];
    src[10] = smac[2];
    src[11] = 0xff;
    src[12] = 0xfe;
    src[13] = smac[3];
    src[14] = smac[4];
    src[15] = smac[5];
    let mut dst = [0u8; 16];
    dst[0] = 0xff;
    dst[1] = 0x02;
    dst[15] = 1;
    // type 134, code 0, checksum, hop limit 64, flags 0, lifetime 1800,
    // reachable 0, retrans 0
    let mut icmp = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&icmp);
    let c = csum(&pseudo);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    ip.push(58);
    ip.push(255);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&icmp);
    eth([0x33, 0x33, 0, 0, 0, 1], smac, 0x86dd, &ip)
}
