//! The families `/metrics` serves of each VE, as a table: name (without
//! its unit and `_total`, which the encoder adds), help, unit, type, and
//! the function from a VE to its value. A value the kernel does not count,
//! or a limit that is unlimited, is `None`: no sample, never a zero.

use kennel_ve::lifecycle::stat::{Accounting, Counter, VeSample};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::LinkCounters;

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

/// A family's descriptor.
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
    pub kind: MetricType,
}

pub const fn gauge(name: &'static str, help: &'static str, unit: Option<Unit>) -> Family {
    Family {
        name,
        help,
        unit,
        kind: MetricType::Gauge,
    }
}

pub const fn counter(name: &'static str, help: &'static str, unit: Option<Unit>) -> Family {
    Family {
        name,
        help,
        unit,
        kind: MetricType::Counter,
    }
}

pub const BYTES: Option<Unit> = Some(Unit::Bytes);
pub const SECONDS: Option<Unit> = Some(Unit::Seconds);

pub fn int(n: Option<u64>) -> Option<Value> {
    n.map(Value::Int)
}

fn secs(ns: Option<u64>) -> Option<Value> {
    ns.map(|n| Value::Float(n as f64 / 1e9))
}

type Pick = fn(&Accounting) -> Counter;

/// What a running VE holds of one resource, its peak, limit and fails.
fn held(s: &VeSample, r: Pick) -> Option<Value> {
    int(s.counters.as_ref().map(r).and_then(|c| c.held))
}
fn peak(s: &VeSample, r: Pick) -> Option<Value> {
    int(s.counters.as_ref().map(r).and_then(|c| c.peak))
}
fn limit(s: &VeSample, r: Pick) -> Option<Value> {
    int(s.counters.as_ref().map(r).and_then(|c| c.limit))
}
fn fails(s: &VeSample, r: Pick) -> Option<Value> {
    int(s.counters.as_ref().map(r).and_then(|c| c.fails))
}

const MEM: Pick = |a| a.memory;
const SWAP: Pick = |a| a.swap;
const KMEM: Pick = |a| a.kernel_memory;
const PROCS: Pick = |a| a.processes;

pub type VeValue = fn(&VeSample) -> Option<Value>;

/// Families with one sample per VE (label `ve`).
#[rustfmt::skip]
pub fn ve_families() -> Vec<(Family, VeValue)> {
    vec![
        (gauge("kennel_ve_running", "Whether the VE runs (1) or not (0).", None), |s| Some(Value::Int(u64::from(s.state.is_running())))),
        (gauge("kennel_ve_uptime", "Time since the VE's init started.", SECONDS), |s| int(s.uptime_secs)),
        (counter("kennel_ve_cpu", "CPU time the VE used.", SECONDS), |s| secs(s.counters.and_then(|a| a.cpu.usage_ns))),
        (counter("kennel_ve_cpu_throttled_periods", "Periods in which the VE ran out of its CPU limit.", None), |s| int(s.counters.and_then(|a| a.cpu.throttled))),
        (counter("kennel_ve_cpu_throttled", "Time the VE was held back by its CPU limit.", SECONDS), |s| secs(s.counters.and_then(|a| a.cpu.throttled_ns))),
        (gauge("kennel_ve_memory", "Memory the VE holds (page cache included).", BYTES), |s| held(s, MEM)),
        (gauge("kennel_ve_memory_peak", "The most memory the VE held.", BYTES), |s| peak(s, MEM)),
        (gauge("kennel_ve_memory_limit", "The VE's memory limit (absent: none).", BYTES), |s| limit(s, MEM)),
        (counter("kennel_ve_memory_fails", "Times the VE reached its memory limit.", None), |s| fails(s, MEM)),
        (gauge("kennel_ve_swap", "Swap the VE holds.", BYTES), |s| held(s, SWAP)),
        (gauge("kennel_ve_swap_peak", "The most swap the VE held.", BYTES), |s| peak(s, SWAP)),
        (gauge("kennel_ve_swap_limit", "The VE's swap limit (absent: none).", BYTES), |s| limit(s, SWAP)),
        (counter("kennel_ve_swap_fails", "Times the VE's swap-out was refused at its limit.", None), |s| fails(s, SWAP)),
        (gauge("kennel_ve_kernel_memory", "Kernel memory charged to the VE.", BYTES), |s| held(s, KMEM)),
        (gauge("kennel_ve_kernel_memory_peak", "The most kernel memory charged to the VE.", BYTES), |s| peak(s, KMEM)),
        (gauge("kennel_ve_kernel_memory_limit", "The VE's kernel memory limit (absent: none).", BYTES), |s| limit(s, KMEM)),
        (counter("kennel_ve_kernel_memory_fails", "Times the VE reached its kernel memory limit.", None), |s| fails(s, KMEM)),
        (gauge("kennel_ve_processes", "Processes and threads in the VE.", None), |s| held(s, PROCS)),
        (gauge("kennel_ve_processes_peak", "The most processes and threads the VE had.", None), |s| peak(s, PROCS)),
        (gauge("kennel_ve_processes_limit", "The VE's process limit (absent: none).", None), |s| limit(s, PROCS)),
        (counter("kennel_ve_processes_fails", "Forks refused at the VE's process limit.", None), |s| fails(s, PROCS)),
        (counter("kennel_ve_oom_kills", "Processes the OOM killer of the VE's memory limit killed.", None), |s| int(s.counters.and_then(|a| a.oom_kills))),
        (counter("kennel_ve_io_read", "Bytes the VE read from disks.", BYTES), |s| int(s.counters.and_then(|a| a.io).map(|i| i.read_bytes))),
        (counter("kennel_ve_io_written", "Bytes the VE wrote to disks.", BYTES), |s| int(s.counters.and_then(|a| a.io).map(|i| i.write_bytes))),
        (counter("kennel_ve_io_reads", "Read operations of the VE on disks.", None), |s| int(s.counters.and_then(|a| a.io).map(|i| i.reads))),
        (counter("kennel_ve_io_writes", "Write operations of the VE on disks.", None), |s| int(s.counters.and_then(|a| a.io).map(|i| i.writes))),
        (gauge("kennel_ve_disk_allocated", "Bytes the VE's disk image takes in the pool.", BYTES), |s| int(s.disk.map(|d| d.allocated))),
        (gauge("kennel_ve_disk_size", "The size of the VE's disk.", BYTES), |s| int(s.disk.map(|d| d.size))),
    ]
}

pub type LinkValue = fn(&LinkCounters) -> u64;

/// Families with one sample per VE interface (labels `ve`, `interface`),
/// counted as the VE sees them.
#[rustfmt::skip]
pub fn link_families() -> [(Family, LinkValue); 4] {
    [
        (counter("kennel_ve_network_receive", "Bytes the VE received on the interface.", BYTES), |c| c.rx_bytes),
        (counter("kennel_ve_network_transmit", "Bytes the VE sent on the interface.", BYTES), |c| c.tx_bytes),
        (counter("kennel_ve_network_receive_packets", "Packets the VE received on the interface.", None), |c| c.rx_packets),
        (counter("kennel_ve_network_transmit_packets", "Packets the VE sent on the interface.", None), |c| c.tx_packets),
    ]
}
