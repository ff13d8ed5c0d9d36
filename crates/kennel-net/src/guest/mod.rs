//! The VE's own view of its network, written into its files so that it
//! agrees with what Kennel set up and survives a reboot inside the VE:
//! `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`, and the
//! distribution's network configuration: a marked block in
//! `/etc/network/interfaces` (Debian's ifupdown and busybox) and one
//! `10-kennel-IF.network` file per interface for systemd-networkd.
//!
//! Kennel configures the interfaces itself, from the host, at every start;
//! these files describe the same so that the VE's own tools (`ifup`,
//! `networkctl`) neither fight nor forget it. The ifupdown block uses
//! `ip ... replace`, so running it again changes nothing.
//!
//! Everything is written through [`in_root::Root`]: the files are the
//! VE's, and so are any symlinks in their place.

pub mod in_root;

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::error::Result;
use crate::model::VeNetwork;
use crate::plan::{self, LinkKind};

pub use in_root::{Existing, Root};

const BEGIN: &str = "# BEGIN kennel: written at every start; edit with `kennel set`";
const END: &str = "# END kennel";
const NETWORKD_DIR: &str = "etc/systemd/network";
const NETWORKD_PREFIX: &str = "10-kennel-";

/// What the VE's files should say.
#[derive(Debug, Clone)]
pub struct GuestView<'a> {
    pub ve: &'a str,
    pub hostname: &'a str,
    pub net: &'a VeNetwork,
}

/// Writes every file that `view` decides, into `root`. Returns the files
/// left alone because the VE made them something else than a regular
/// file (a symlink, say), for the operator to hear about.
pub fn apply(root: &Root<'_>, view: &GuestView<'_>) -> Result<Vec<String>> {
    let mut skipped = Vec::new();
    let mut put = |path: &str, old: &Existing, text: Option<String>| -> Result<()> {
        let Some(text) = text else { return Ok(()) };
        if matches!(old, Existing::Text(t) if *t == text) {
            return Ok(());
        }
        if *old == Existing::Other || !root.write(path, &text)? {
            skipped.push(format!("/{path}"));
        }
        Ok(())
    };
    let text_of = |e: &Existing| match e {
        Existing::Text(t) => Some(t.clone()),
        _ => None,
    };
    let hostname = root.read("etc/hostname");
    put(
        "etc/hostname",
        &hostname,
        Some(format!("{}\n", view.hostname)),
    )?;
    let hosts = root.read("etc/hosts");
    put(
        "etc/hosts",
        &hosts,
        Some(render_hosts(text_of(&hosts).as_deref(), view)),
    )?;
    let resolv = root.read("etc/resolv.conf");
    put(
        "etc/resolv.conf",
        &resolv,
        render_resolv(text_of(&resolv).as_deref(), view.net),
    )?;
    let ifupdown = ["sbin/ifup", "usr/sbin/ifup", "bin/busybox"]
        .iter()
        .any(|p| root.exists(p));
    let interfaces = root.read("etc/network/interfaces");
    if root.exists("etc/network") && (ifupdown || interfaces != Existing::Missing) {
        let text = replace_block(
            text_of(&interfaces).as_deref().unwrap_or(""),
            &render_ifupdown(view),
        );
        put("etc/network/interfaces", &interfaces, Some(text))?;
    }
    if root.exists(NETWORKD_DIR) {
        let files = render_networkd(view);
        for old in root.list(NETWORKD_DIR) {
            if old.starts_with(NETWORKD_PREFIX) && !files.iter().any(|(n, _)| *n == old) {
                root.remove(&format!("{NETWORKD_DIR}/{old}"))?;
            }
        }
        for (name, text) in files {
            let path = format!("{NETWORKD_DIR}/{name}");
            let old = root.read(&path);
            put(&path, &old, Some(text))?;
        }
    }
    Ok(skipped)
}

/// Replaces the Kennel block of `text` with `block` (appending it when
/// there is none); everything else stays as the VE had it.
pub fn replace_block(text: &str, block: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let begin = lines.iter().position(|l| l.starts_with("# BEGIN kennel"));
    // Without its end line a block is not Kennel's whole: only the
    // marker goes, the VE's lines after it stay.
    let end = begin.and_then(|b| lines[b..].iter().position(|l| *l == END).map(|e| b + e));
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let ours = match (begin, end) {
            (Some(b), Some(e)) => (b..=e).contains(&i),
            (Some(b), None) => i == b,
            _ => false,
        };
        if !ours {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !block.is_empty() {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(block);
    }
    out
}

fn render_hosts(old: Option<&str>, view: &GuestView<'_>) -> String {
    let mut block = format!("{BEGIN}\n127.0.1.1\t{}\n", view.hostname);
    for ip in view.net.all_ips() {
        let _ = writeln!(block, "{ip}\t{}", view.hostname);
    }
    block.push_str(END);
    block.push('\n');
    let base = old.unwrap_or("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    replace_block(base, &block)
}

/// `None` when the VE's resolver is left alone (nothing configured).
fn render_resolv(old: Option<&str>, net: &VeNetwork) -> Option<String> {
    if net.nameservers.is_empty() && net.searchdomains.is_empty() {
        return None;
    }
    let mut out = String::from(
        "# nameserver and search lines are set by Kennel (`kennel set --nameserver`)\n",
    );
    if !net.searchdomains.is_empty() {
        let _ = writeln!(out, "search {}", net.searchdomains.join(" "));
    }
    for ns in &net.nameservers {
        let _ = writeln!(out, "nameserver {ns}");
    }
    for line in old.unwrap_or("").lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        let ours = matches!(key, "nameserver" | "search" | "domain")
            || line.starts_with("# nameserver and search lines are set by Kennel");
        if !ours {
            out.push_str(line);
            out.push('\n');
        }
    }
    Some(out)
}

fn family(a: &IpAddr) -> &'static str {
    if a.is_ipv4() {
        "ip"
    } else {
        "ip -6"
    }
}

fn render_ifupdown(view: &GuestView<'_>) -> String {
    let links = plan::links(view.ve, view.net);
    if links.is_empty() {
        return String::new();
    }
    let mut s = format!("{BEGIN}\n");
    for l in &links {
        let dhcp = matches!(l.kind, LinkKind::Bridged { dhcp: true, .. });
        let method = if dhcp { "dhcp" } else { "manual" };
        let _ = writeln!(s, "auto {0}\niface {0} inet {method}", l.inside);
        let _ = writeln!(s, "\tup ip link set {} up", l.inside);
        for ip in &l.ips {
            // `nodad`: usable at once, as Kennel sets it (IPv6 only).
            let nodad = if ip.addr().is_ipv6() { " nodad" } else { "" };
            let _ = writeln!(
                s,
                "\tup {} addr replace {ip} dev {}{nodad}",
                family(&ip.addr()),
                l.inside
            );
        }
        for gw in &l.gateways {
            let _ = writeln!(
                s,
                "\tup {} route replace default via {gw} dev {} onlink",
                family(gw),
                l.inside
            );
        }
    }
    s.push_str(END);
    s.push('\n');
    s
}

fn render_networkd(view: &GuestView<'_>) -> Vec<(String, String)> {
    plan::links(view.ve, view.net)
        .iter()
        .map(|l| {
            let mut s = format!("# Written by Kennel at every start; change it with `kennel set {}`.\n[Match]\nName={}\n\n[Network]\n", view.ve, l.inside);
            if matches!(l.kind, LinkKind::Bridged { dhcp: true, .. }) {
                s.push_str("DHCP=yes\n");
            }
            s.push_str("LinkLocalAddressing=ipv6\nIPv6AcceptRA=no\nKeepConfiguration=yes\n");
            for ip in &l.ips {
                let _ = write!(s, "\n[Address]\nAddress={ip}\n");
                if ip.addr().is_ipv6() {
                    s.push_str("DuplicateAddressDetection=none\n");
                }
            }
            for gw in &l.gateways {
                let _ = write!(s, "\n[Route]\nGateway={gw}\nGatewayOnLink=yes\n");
            }
            (format!("{NETWORKD_PREFIX}{}.network", l.inside), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_ve_address;

    fn net() -> VeNetwork {
        VeNetwork {
            ips: vec![
                parse_ve_address("192.0.2.11").unwrap(),
                parse_ve_address("2001:db8::11").unwrap(),
            ],
            nameservers: vec!["192.0.2.53".parse().unwrap()],
            searchdomains: vec!["example.net".into()],
            ..Default::default()
        }
    }

    #[test]
    fn resolv_keeps_other_lines() {
        let r = render_resolv(Some("nameserver 8.8.8.8\noptions rotate\n"), &net()).unwrap();
        assert!(
            r.contains("search example.net\nnameserver 192.0.2.53\n"),
            "{r}"
        );
        assert!(r.contains("options rotate"), "{r}");
        assert!(!r.contains("8.8.8.8"), "{r}");
        assert!(render_resolv(None, &VeNetwork::default()).is_none());
    }

    #[test]
    fn hosts_block_is_replaced_not_repeated() {
        let n = net();
        let view = GuestView {
            ve: "101",
            hostname: "web1",
            net: &n,
        };
        let once = render_hosts(Some("127.0.0.1\tlocalhost\n10.9.9.9 mine\n"), &view);
        let twice = render_hosts(Some(&once), &view);
        assert_eq!(once, twice);
        assert!(once.contains("10.9.9.9 mine"), "{once}");
        assert!(once.contains("192.0.2.11\tweb1"), "{once}");
    }

    #[test]
    fn ifupdown_and_networkd() {
        let n = net();
        let view = GuestView {
            ve: "101",
            hostname: "web1",
            net: &n,
        };
        let b = render_ifupdown(&view);
        assert!(b.contains("iface eth0 inet manual"), "{b}");
        assert!(
            b.contains("up ip addr replace 192.0.2.11/32 dev eth0\n"),
            "{b}"
        );
        assert!(
            b.contains("up ip -6 addr replace 2001:db8::11/128 dev eth0 nodad\n"),
            "{b}"
        );
        assert!(
            b.contains("up ip route replace default via 169.254.0.1 dev eth0 onlink"),
            "{b}"
        );
        let text = replace_block("auto lo\niface lo inet loopback\n", &b);
        assert_eq!(replace_block(&text, &b), text);
        // A block that lost its end line takes nothing of the VE's with it.
        let cut = replace_block("# BEGIN kennel: x\nmine\n", "");
        assert_eq!(cut, "mine\n");
        assert!(text.starts_with("auto lo\n"));
        let files = render_networkd(&view);
        assert_eq!(files[0].0, "10-kennel-eth0.network");
        assert!(
            files[0].1.contains("Address=192.0.2.11/32"),
            "{}",
            files[0].1
        );
        assert!(files[0].1.contains("Gateway=fe80::1"), "{}", files[0].1);
    }
}
