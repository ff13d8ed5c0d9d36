//! `create`'s resource options, parsed into a VE's [`Resources`]: each a
//! clear one-line error naming the option when it does not parse.

use kennel_ve::cpuset::CpuSet;
use kennel_ve::limit::Limit;
use kennel_ve::resources::{Percent, Resources, Weight};
use kennel_ve::units::{parse_cpus, Size};
use kennel_ve::VeError;

use crate::cli::ResourceArgs;

/// A whole number for option `what`.
fn count(s: &str, what: &str) -> Result<u64, VeError> {
    s.trim().parse::<u64>().map_err(|_| {
        VeError::BadInput(format!(
            "invalid {what} '{s}': use a whole number such as 512, or unlimited"
        ))
    })
}

/// A size that names its unit: on the command line a bare number is a
/// mistake more often than bytes (`--memory 2048`).
pub(crate) fn size_with_unit(s: &str, what: &str) -> Result<Size, VeError> {
    if s.trim().chars().all(|c| c.is_ascii_digit()) && s.trim() != "0" {
        return Err(VeError::BadInput(format!(
            "invalid {what} '{s}': give a unit, e.g. {}M or {}G",
            s.trim(),
            s.trim()
        )));
    }
    Size::parse(s).map_err(|e| VeError::BadInput(format!("{what}: {e}")))
}

pub fn resources(a: &ResourceArgs) -> Result<Resources, VeError> {
    fn opt(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    Ok(Resources {
        memory: opt(&a.memory)
            .map(|s| Limit::parse(s, |s| size_with_unit(s, "--memory")))
            .transpose()?,
        swap: opt(&a.swap)
            .map(|s| size_with_unit(s, "--swap"))
            .transpose()?,
        cpus: opt(&a.cpus).map(parse_cpus).transpose()?,
        cpu_limit: opt(&a.cpu_limit)
            .map(|s| Limit::parse(s, Percent::parse))
            .transpose()?,
        cpu_weight: opt(&a.cpu_weight)
            .map(|s| Weight::parse(s, "--cpu-weight"))
            .transpose()?,
        cpumask: opt(&a.cpumask).map(CpuSet::parse).transpose()?,
        numproc: opt(&a.numproc)
            .map(|s| Limit::parse(s, |s| count(s, "--numproc")))
            .transpose()?,
        numpty: opt(&a.numpty).map(crate::set_args::numpty).transpose()?,
        nofile: opt(&a.nofile).map(|s| count(s, "--nofile")).transpose()?,
        io_weight: opt(&a.io_weight)
            .map(|s| Weight::parse(s, "--io-weight"))
            .transpose()?,
        io_limit: opt(&a.io_limit)
            .map(|s| Limit::parse(s, |s| size_with_unit(s, "--io-limit")))
            .transpose()?,
        iops_limit: opt(&a.iops_limit)
            .map(|s| Limit::parse(s, |s| count(s, "--iops-limit")))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut ResourceArgs)) -> ResourceArgs {
        let mut a = ResourceArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn every_option_parses() {
        let r = resources(&args(|a| {
            a.memory = Some("2G".into());
            a.swap = Some("1G".into());
            a.cpus = Some("2".into());
            a.cpu_limit = Some("50%".into());
            a.cpu_weight = Some("500".into());
            a.cpumask = Some("0-1".into());
            a.numproc = Some("200".into());
            a.io_weight = Some("400".into());
            a.io_limit = Some("50M".into());
            a.iops_limit = Some("1000".into());
            a.nofile = Some("65536".into());
        }))
        .expect("parse");
        assert_eq!(r.memory, Some(Limit::Max(Size(2 << 30))));
        assert_eq!(
            r.cpu_limit,
            Some(Limit::Max(Percent::parse("50%").expect("50%")))
        );
        assert_eq!(r.io_limit, Some(Limit::Max(Size(50 << 20))));
        assert_eq!(r.iops_limit, Some(Limit::Max(1000)));
        r.validate().expect("valid");
        let u = resources(&args(|a| {
            a.memory = Some("unlimited".into());
            a.numproc = Some("unlimited".into());
        }))
        .expect("parse");
        assert_eq!(
            (u.memory, u.numproc),
            (Some(Limit::Unlimited), Some(Limit::Unlimited))
        );
    }

    #[test]
    fn bad_values_name_their_option() {
        type Set = fn(&mut ResourceArgs);
        let cases: [(Set, &str); 7] = [
            (|a| a.memory = Some("2048".into()), "give a unit"),
            (|a| a.memory = Some("-1G".into()), "--memory"),
            (|a| a.cpu_limit = Some("0%".into()), "CPU limit"),
            (|a| a.cpu_weight = Some("0".into()), "--cpu-weight"),
            (|a| a.cpumask = Some("1-0".into()), "CPU list"),
            (|a| a.numproc = Some("lots".into()), "--numproc"),
            (|a| a.iops_limit = Some("-5".into()), "--iops-limit"),
        ];
        for (set, says) in cases {
            match resources(&args(set)) {
                Ok(r) => panic!("accepted: {r:?}"),
                Err(e) => assert!(e.to_string().contains(says), "{e}"),
            }
        }
    }
}
