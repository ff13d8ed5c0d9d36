//! A VE's network from the lifecycle's side: checks that span VEs (an
//! address belongs to one VE only), the live part of `kennel set`
//! (`set.rs`), and the host-side teardown when a VE ends.

use std::os::fd::AsFd;

use kennel_net::netlink::Netlink;
use kennel_net::reconcile::{self, check_bridge};
use kennel_net::{Target, VeNetwork};

use super::Kennel;
use crate::claims::thing::{network_things, Thing};
use crate::claims::Claims;
use crate::config::VeConfig;
use crate::error::{Result, VeError};
use crate::id::VeId;

/// What network `a` holds that `b` does not.
fn network_difference(a: &VeNetwork, b: &VeNetwork) -> Vec<Thing> {
    let (mut ta, tb) = (network_things(a), network_things(b));
    ta.retain(|t| !tb.contains(t));
    ta
}

impl Kennel {
    /// Checks `net` for VE `id` against the host and the other VEs: every
    /// address, MAC and forwarded port is free (by the claims index, not
    /// by reading the other VEs), every bridge and uplink exists. Call
    /// with the host lock held; [`Claims::take`] claims what passed.
    pub(crate) fn check_network(&self, id: &VeId, net: &VeNetwork, claims: &Claims) -> Result<()> {
        net.validate()?;
        if net.is_empty() {
            return Ok(());
        }
        claims.check(id, &network_things(net))?;
        let mut nl = Netlink::open().map_err(kennel_net::NetError::from)?;
        for ip in net.all_ips() {
            if nl
                .is_local_address(ip)
                .map_err(kennel_net::NetError::from)?
            {
                return Err(VeError::BadInput(format!(
                    "address {ip} is one of this host's own: give the VE an address of its own"
                )));
            }
        }
        for n in &net.netifs {
            check_bridge(&mut nl, &n.bridge)?;
        }
        if let Some(up) = &net.nat_via {
            if nl
                .link_index(up)
                .map_err(kennel_net::NetError::from)?
                .is_none()
            {
                return Err(VeError::BadInput(format!(
                    "unknown uplink {up}: name the host interface VEs reach the outside through"
                )));
            }
        }
        Ok(())
    }

    /// Claims what `new`'s network holds and `old`'s did not; returns
    /// them, for [`Kennel::release_network`] if the change fails.
    pub(crate) fn claim_network(
        &self,
        claims: &Claims,
        old: &VeConfig,
        new: &VeConfig,
    ) -> Result<Vec<Thing>> {
        let added = network_difference(&new.network, &old.network);
        claims.take(&new.id, &added)?;
        Ok(added)
    }

    /// Releases what `old`'s network held and `new`'s (saved) does not.
    pub(crate) fn release_network(&self, claims: &Claims, old: &VeConfig, new: &VeConfig) {
        let gone = network_difference(&old.network, &new.network);
        if let Err(e) = claims.release(&new.id, &gone) {
            tracing::warn!("VE {}: {e}", new.id);
        }
    }

    /// The network part of a live change, under the VE's network lock and
    /// only while its init lives (its teardown takes the same lock). On
    /// failure it puts back `old` as far as it can and reports the failure.
    pub(super) fn apply_network_live(&self, old: &VeConfig, new: &VeConfig) -> Result<()> {
        let id = &new.id;
        let _net = self.lock_network(id)?;
        let run = self
            .run_state(id)?
            .ok_or_else(|| VeError::NotRunning(id.to_string()))?;
        let netns = kennel_runtime::live::open_ns_of_init(run.init_pid, run.init_start, "net")?;
        let run_dir = self.paths.ve_run(id);
        let target = Target {
            ve: id.as_str(),
            run_dir: &run_dir,
            host: &self.host.network,
        };
        if let Err(e) = reconcile::reconcile(target, Some(netns.as_fd()), &new.network) {
            if let Err(back) = reconcile::reconcile(target, Some(netns.as_fd()), &old.network) {
                tracing::warn!("VE {id}: putting the network back failed too: {back}");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// The hostname and the VE's own files, for a running VE: written by
    /// the VE's root inside the VE (`kennel_runtime::inside`), never by the
    /// host's root through a path the VE could have redirected.
    pub(super) fn apply_files_live(&self, old: &VeConfig, new: &VeConfig) -> Result<Vec<String>> {
        let id = &new.id;
        let Some(run) = self.run_state(id)? else {
            return Ok(Vec::new());
        };
        let seccomp = self.ve_seccomp(id)?;
        let ve = kennel_runtime::inside::InsideVe {
            init_pid: run.init_pid,
            init_start: run.init_start,
            seccomp: &seccomp,
            uts: new.hostname != old.hostname,
            keep: &[],
        };
        let hostname = (new.hostname != old.hostname).then_some(new.hostname.as_str());
        let skipped: Vec<String> = kennel_runtime::inside::run(&ve, || {
            if let Some(h) = hostname {
                rustix::system::sethostname(h.as_bytes())
                    .map_err(|e| format!("set the hostname: {e}"))?;
            }
            let root = kennel_runtime::inside::ve_root()?;
            let view = kennel_net::guest::GuestView {
                ve: id.as_str(),
                hostname: &new.hostname,
                net: &new.network,
            };
            let target = kennel_net::guest::Root {
                fd: std::os::fd::AsFd::as_fd(&root),
            };
            kennel_net::guest::apply(&target, &view).map_err(|e| e.to_string())
        })?;
        Ok(skipped
            .into_iter()
            .map(|f| format!("{f} in VE {id} is not a regular file (a symlink?): left as it is"))
            .collect())
    }

    fn lock_network(&self, id: &VeId) -> Result<crate::lock::Lock> {
        crate::lock::Lock::acquire(
            &self.paths.locks().join(format!("net-{id}")),
            std::time::Duration::from_secs(20),
            id.as_str(),
        )
    }

    /// Removes the host side of VE `id`'s network (links, proxy entries,
    /// nftables tables). For a VE that is not running.
    pub(crate) fn teardown_network(&self, id: &VeId) -> Result<()> {
        // Waits for a live `kennel set` to finish, whose additions are in
        // the record by then.
        let _net = self.lock_network(id)?;
        let run_dir = self.paths.ve_run(id);
        reconcile::teardown(Target {
            ve: id.as_str(),
            run_dir: &run_dir,
            host: &self.host.network,
        })?;
        Ok(())
    }
}
