//! The host's boot and shutdown (`kennel boot`, `kennel shutdown`, run by
//! `kennel-onboot.service`): every VE marked `onboot` started, every
//! running VE stopped, group by group in boot order ([`super::order`]),
//! each group through [`Kennel::batch`]'s workers, the next group once the
//! whole group is done. A VE that fails is its report, and the others go
//! on: one broken VE never keeps the host's others down.
//!
//! "Done" is what `kennel start` means: the VE's init runs. The services
//! inside may still be coming up when the next group starts, as with
//! OpenVZ's `BOOTORDER`.

use super::order::{boot_groups, shutdown_groups, Group};
use super::protocol::{one_line, Outcome, Report};
use super::{BatchOptions, Op};
use crate::error::{Result, VeError};
use crate::id::VeId;
use crate::lifecycle::{Kennel, VeState};

/// What the host's boot or shutdown tells its caller, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A group begins; its VEs' reports follow.
    Group(Group),
    /// One VE's report: done, skipped (already where the boot or
    /// shutdown takes it) or failed.
    Report(Report),
}

impl Kennel {
    /// Starts every VE marked `onboot`, highest boot order first, VEs
    /// without an order last. A VE already running is reported skipped, as
    /// is one that a worker finds running (`opts.skip_idle` is taken as
    /// set); a VE whose configuration cannot be read is reported failed
    /// first (it may be one to start). Errs only if the VEs cannot be
    /// listed.
    pub fn boot(&self, opts: &BatchOptions, on_event: &mut dyn FnMut(HostEvent)) -> Result<()> {
        let mut marked = Vec::new();
        for id in self.ids()? {
            let cfg = match self.config(&id) {
                Ok(cfg) => cfg,
                Err(VeError::NoSuchVe(_)) => continue, // destroyed meanwhile
                Err(e) => {
                    on_event(HostEvent::Report(failed(id, &e)));
                    continue;
                }
            };
            if !cfg.boot.onboot {
                continue;
            }
            match self.state_of(&id) {
                Ok((state, _)) if state.is_running() => on_event(HostEvent::Report(Report {
                    id,
                    outcome: Outcome::Skipped,
                })),
                _ => marked.push((id, cfg.boot.order)),
            }
        }
        self.in_groups(Op::Start, boot_groups(marked), opts, on_event);
        Ok(())
    }

    /// Stops every running VE cleanly, each killed after `timeout` as
    /// `kennel stop` does: VEs without a boot order first, then lowest
    /// order first (the reverse of [`Kennel::boot`]), whether or not they
    /// are marked `onboot`. A VE waiting to start again after a reboot of
    /// its own is stopped too (its restart is taken away). Stopped VEs are
    /// not reported. Errs only if the VEs cannot be listed.
    pub fn shutdown(
        &self,
        timeout: std::time::Duration,
        opts: &BatchOptions,
        on_event: &mut dyn FnMut(HostEvent),
    ) -> Result<()> {
        let mut running = Vec::new();
        for id in self.ids()? {
            match self.state_of(&id) {
                // Running; or tearing down, which the stop waits for; or
                // waiting to start again after a reboot of its own.
                Ok((state, _)) if state != VeState::Stopped || self.restart_pending(&id) => {}
                Ok(_) => continue,
                Err(e) => {
                    on_event(HostEvent::Report(failed(id, &e)));
                    continue;
                }
            }
            // A configuration that cannot be read gives no order; the stop
            // itself then says what is wrong.
            let order = self.config(&id).ok().and_then(|c| c.boot.order);
            running.push((id, order));
        }
        self.in_groups(
            Op::Stop { timeout },
            shutdown_groups(running),
            opts,
            on_event,
        );
        Ok(())
    }

    /// `op` on each group in turn, each group at once.
    fn in_groups(
        &self,
        op: Op,
        groups: Vec<Group>,
        opts: &BatchOptions,
        on_event: &mut dyn FnMut(HostEvent),
    ) {
        let opts = BatchOptions {
            skip_idle: true,
            ..opts.clone()
        };
        for group in groups {
            tracing::debug!(
                "{op:?}: boot order {}, {} VEs",
                group.order.map_or("none".into(), |o| o.to_string()),
                group.ids.len()
            );
            let ids = group.ids.clone();
            on_event(HostEvent::Group(group));
            self.batch(op, &ids, &opts, &mut |r| on_event(HostEvent::Report(r)));
        }
    }
}

/// VE `id`'s report of `err`.
fn failed(id: VeId, err: &VeError) -> Report {
    Report {
        id,
        outcome: Outcome::Failed {
            code: err.kind().exit_code(),
            message: one_line(err),
        },
    }
}
