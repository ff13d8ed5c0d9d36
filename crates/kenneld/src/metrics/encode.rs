//! A snapshot as OpenMetrics text, through `prometheus-client`'s text
//! encoder: a registry made per scrape holds one [`Collector`] that writes
//! each family once, with every sample of it together (as the format
//! requires), VEs in id order. The VEs' families are the tables of
//! [`super::families`]; a stopped VE has `kennel_ve_running 0` and its
//! disk, counters exist only while it runs. A family without a sample is
//! left out.
//!
//! The crate writes label values as given, so [`Escaped`] escapes them
//! (`\`, `"`, newline); names and help texts here are constants.

use std::fmt::Write;

use kennel_ve::lifecycle::stat::VeSample;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::families::{
    counter, gauge, int, link_families, ve_families, Family, Value, BYTES, SECONDS,
};
use super::{LinkCounters, Snapshot, View};

/// What the answer is.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value as the text format needs it.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, out: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => out.write_str("\\\\")?,
                '"' => out.write_str("\\\"")?,
                '\n' => out.write_str("\\n")?,
                c => out.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Writes one sample of family `kind` with `value`.
fn sample(m: &mut MetricEncoder, kind: MetricType, value: Value) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (MetricType::Counter, Value::Int(n)) => m.encode_counter::<NoLabelSet, _, u64>(&n, None),
        (MetricType::Counter, Value::Float(f)) => m.encode_counter::<NoLabelSet, _, u64>(&f, None),
        // The encoder refuses a gauge above i64::MAX: no count gets there.
        (_, Value::Int(n)) => m.encode_gauge(&i64::try_from(n).unwrap_or(i64::MAX)),
        (_, Value::Float(f)) => m.encode_gauge(&f),
    }
}

/// Writes family `f` with `samples` (label sets and values), if any.
fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    f: &Family,
    samples: impl IntoIterator<Item = (L, Value)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(f.name, f.help, f.unit.as_ref(), f.kind)?;
    for (labels, value) in samples {
        sample(&mut m.encode_family(&labels)?, f.kind, value)?;
    }
    Ok(())
}

/// Writes an unlabelled family with its one value, if it has one.
fn single(
    enc: &mut DescriptorEncoder,
    f: &Family,
    value: Option<Value>,
) -> Result<(), std::fmt::Error> {
    let Some(v) = value else {
        return Ok(());
    };
    let mut m = enc.encode_descriptor(f.name, f.help, f.unit.as_ref(), f.kind)?;
    sample(&mut m, f.kind, v)
}

/// One scrape's answer: the snapshot as `view` may see it.
#[derive(Debug)]
struct Scrape {
    snapshot: std::sync::Arc<Snapshot>,
    view: View,
    /// Scrapes answered, this one included.
    scrapes: u64,
}

impl Scrape {
    fn encode_ves(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ves: Vec<&VeSample> = self
            .snapshot
            .ves
            .iter()
            .filter(|s| self.view.shows(&s.id, &s.uuid))
            .collect();
        for (f, value) in ve_families() {
            let samples = ves
                .iter()
                .filter_map(|s| value(s).map(|v| ([("ve", Escaped(s.id.as_str()))], v)));
            family(enc, &f, samples)?;
        }
        // Each VE interface whose host end has counters.
        let links: Vec<(&VeSample, &str, LinkCounters)> = ves
            .iter()
            .flat_map(|s| {
                s.links.iter().filter_map(move |l| {
                    let c = self.snapshot.links.get(&l.host)?;
                    Some((*s, l.inside.as_str(), c.as_seen_inside()))
                })
            })
            .collect();
        for (f, value) in link_families() {
            let samples = links.iter().map(|(s, inside, c)| {
                (
                    [
                        ("ve", Escaped(s.id.as_str())),
                        ("interface", Escaped(inside)),
                    ],
                    Value::Int(value(c)),
                )
            });
            family(enc, &f, samples)?;
        }
        Ok(())
    }

    fn encode_host(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ves = &self.snapshot.ves;
        let running = ves.iter().filter(|s| s.state.is_running()).count();
        single(
            enc,
            &gauge("kennel_host_ves", "VEs defined on the host.", None),
            Some(Value::Int(ves.len() as u64)),
        )?;
        single(
            enc,
            &gauge("kennel_host_ves_running", "VEs running on the host.", None),
            Some(Value::Int(running as u64)),
        )?;
        let host = self.snapshot.host.unwrap_or_default();
        single(
            enc,
            &gauge(
                "kennel_host_memory_available",
                "The host's MemAvailable.",
                BYTES,
            ),
            int(host.memory_available),
        )?;
        single(
            enc,
            &gauge("kennel_host_memory_total", "The host's MemTotal.", BYTES),
            int(host.memory_total),
        )?;
        for (i, name, help) in [
            (
                0,
                "kennel_host_load1",
                "The host's load average over 1 minute.",
            ),
            (
                1,
                "kennel_host_load5",
                "The host's load average over 5 minutes.",
            ),
            (
                2,
                "kennel_host_load15",
                "The host's load average over 15 minutes.",
            ),
        ] {
            let v = host.load.map(|l| Value::Float(l[i]));
            single(enc, &gauge(name, help, None), v)?;
        }
        let p = self.snapshot.process.unwrap_or_default();
        single(
            enc,
            &gauge(
                "kenneld_start_time",
                "When kenneld started, since the epoch.",
                SECONDS,
            ),
            p.start_time_secs.map(Value::Float),
        )?;
        single(
            enc,
            &counter("kenneld_cpu", "CPU time kenneld used.", SECONDS),
            p.cpu_secs.map(Value::Float),
        )?;
        single(
            enc,
            &gauge(
                "kenneld_resident_memory",
                "kenneld's resident memory.",
                BYTES,
            ),
            int(p.resident_bytes),
        )?;
        single(
            enc,
            &counter(
                "kenneld_scrapes",
                "Scrapes of /metrics answered, this one included.",
                None,
            ),
            Some(Value::Int(self.scrapes)),
        )?;
        single(
            enc,
            &gauge(
                "kenneld_scrape_collect",
                "How long reading this answer's snapshot took.",
                SECONDS,
            ),
            Some(Value::Float(self.snapshot.took.as_secs_f64())),
        )
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        family(
            &mut enc,
            &gauge(
                "kenneld_build_info",
                "kenneld's version (the value is 1).",
                None,
            ),
            [(
                [("version", Escaped(env!("CARGO_PKG_VERSION")))],
                Value::Int(1),
            )],
        )?;
        if self.view.shows_host() {
            self.encode_host(&mut enc)?;
        }
        self.encode_ves(&mut enc)
    }
}

/// The answer to a scrape by `view` of `snapshot`; `scrapes`: how many
/// were answered, this one included.
pub fn encode(
    snapshot: std::sync::Arc<Snapshot>,
    view: View,
    scrapes: u64,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        snapshot,
        view,
        scrapes,
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
