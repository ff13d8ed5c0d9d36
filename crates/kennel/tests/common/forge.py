# Hand-made frames for Kennel's network tests (Python 3, standard library
# only). A test runs this with its own lines appended, with the rights of
# a VE's root in the VE's namespaces, and sends what a hostile VE could on
# its interface (a packet socket): whatever bytes it likes.
import socket
import struct


def mac(s):
    return bytes(int(x, 16) for x in s.split(':'))


def a6(s):
    return socket.inet_pton(socket.AF_INET6, s)


def a4(s):
    return socket.inet_aton(s)


def csum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def ipv6(src, dst, nh, payload, hlim=255, flow=0):
    """An IPv6 packet; `flow` (the flow label) marks it for the receiver."""
    head = struct.pack('!IHBB', (6 << 28) | flow, len(payload), nh, hlim)
    return ('ipv6', head + a6(src) + a6(dst) + payload)


def opts(nh, size=8, router_alert=False):
    """A hop-by-hop or destination options header of `size` bytes."""
    body = b''
    if router_alert:
        body += bytes([5, 2, 0, 0])
    pad = size - 2 - len(body)
    if pad == 1:
        body += b'\0'
    elif pad > 1:
        body += bytes([1, pad - 2]) + bytes(pad - 2)
    return bytes([nh, size // 8 - 1]) + body


def frag(nh, offset=0, more=False, ident=1):
    """A fragment header; `offset` in bytes (a multiple of 8)."""
    return struct.pack('!BBHI', nh, 0, offset | int(more), ident)


def upper6(src, dst, proto, body, at):
    """`body` with its checksum (pseudo-header) at byte `at`."""
    pseudo = a6(src) + a6(dst) + struct.pack('!I3xB', len(body), proto)
    c = csum(pseudo + body)
    return body[:at] + struct.pack('!H', c) + body[at + 2:]


def icmp6(src, dst, typ, rest=b'', code=0):
    return upper6(src, dst, 58, bytes([typ, code, 0, 0]) + rest, 2)


def udp6(src, dst, sport, dport, data=b''):
    body = struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data
    return upper6(src, dst, 17, body, 6)


def nd_opt(kind, value):
    """A neighbour discovery option (type, length in 8-byte units)."""
    return bytes([kind, (2 + len(value) + 7) // 8]) + value


def ipv4(src, dst, proto, payload, ident=0, ttl=1, options=b'', frag=0):
    """An IPv4 packet; `ident` (the IP ID) marks it for the receiver;
    `frag` is the flags and fragment offset field (offset in 8 bytes)."""
    ihl = 5 + len(options) // 4
    head = struct.pack('!BBHHHBBH4s4s', (4 << 4) | ihl, 0, ihl * 4 + len(payload),
                       ident, frag, ttl, proto, 0, a4(src), a4(dst)) + options
    head = head[:10] + struct.pack('!H', csum(head)) + head[12:]
    return ('ipv4', head + payload)


def msg4(typ, rest=b'', code=0):
    """An ICMP, IGMP or PIM message: type, code, checksum, then `rest`."""
    body = bytes([typ, code, 0, 0]) + rest
    return body[:2] + struct.pack('!H', csum(body)) + body[4:]


def arp(op, sha, spa, tha, tpa):
    return ('arp', struct.pack('!HHBBH', 1, 0x0800, 6, 4, op)
            + mac(sha) + a4(spa) + mac(tha) + a4(tpa))


ETHERTYPES = {'ipv6': 0x86dd, 'ipv4': 0x0800, 'arp': 0x0806}


def dst_mac(kind, packet):
    """Multicast and broadcast destinations only: the bridge floods them."""
    if kind == 'ipv6':
        return '33:33:' + ':'.join('%02x' % b for b in packet[36:40])
    if kind == 'ipv4':
        d = packet[16:20]
        return '01:00:5e:%02x:%02x:%02x' % (d[1] & 0x7f, d[2], d[3])
    return 'ff:ff:ff:ff:ff:ff'


def send(iface, src_mac, *packets):
    """Sends each packet in an Ethernet frame from `src_mac`."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for kind, p in packets:
        s.send(mac(dst_mac(kind, p)) + mac(src_mac) + struct.pack('!H', ETHERTYPES[kind]) + p)


def udp4(src, dst, sport, dport, data=b''):
    body = struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data
    pseudo = a4(src) + a4(dst) + struct.pack('!BBH', 0, 17, len(body))
    c = csum(pseudo + body) or 0xffff
    return body[:6] + struct.pack('!H', c) + body[8:]


def send_to(iface, src_mac, dst, *packets):
    """Sends each packet in an Ethernet frame from `src_mac` to `dst`."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for kind, p in packets:
        s.send(mac(dst) + mac(src_mac) + struct.pack('!H', ETHERTYPES[kind]) + p)


def send_routed(*packets):
    """Sends each whole IP packet through the VE's own routing (raw
    sockets with the header given): to its gateway on a routed link."""
    for kind, p in packets:
        if kind == 'ipv4':
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            s.sendto(p, (socket.inet_ntoa(p[16:20]), 0))
        else:
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
            s.sendto(p, (socket.inet_ntop(socket.AF_INET6, p[24:40]), 0))
        s.close()
