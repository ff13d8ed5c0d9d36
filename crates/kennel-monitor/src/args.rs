//! The monitor's command line.

use std::os::unix::process::CommandExt;
use std::process::Command;

#[derive(Debug)]
pub(crate) struct Args {
    pub id: String,
    pub teardown: Vec<String>,
}

impl Args {
    pub(crate) fn parse(mut it: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut id = None;
        while let Some(a) = it.next() {
            match a.as_str() {
                "--id" => id = it.next(),
                "--" => break,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let teardown: Vec<String> = it.collect();
        match (id, teardown.is_empty()) {
            (Some(id), false) => Ok(Args { id, teardown }),
            (None, _) => Err("missing --id".into()),
            (_, true) => Err("missing teardown command after --".into()),
        }
    }

    /// Replaces this process with the teardown command, adding
    /// `--how "<how init ended>"`. Returns only on failure.
    pub(crate) fn exec_teardown(&self, how: &str) -> std::io::Error {
        let (prog, rest) = match self.teardown.split_first() {
            Some(x) => x,
            None => return std::io::Error::other("empty teardown command"),
        };
        Command::new(prog).args(rest).arg("--how").arg(how).exec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses() {
        let a = Args::parse(s(&["--id", "101", "--", "/k", "x"]).into_iter()).expect("parse");
        assert_eq!(a.id, "101");
        assert_eq!(a.teardown, s(&["/k", "x"]));
    }

    #[test]
    fn refuses_missing_parts() {
        assert!(Args::parse(s(&["--id", "1"]).into_iter()).is_err());
        assert!(Args::parse(s(&["--", "x"]).into_iter()).is_err());
        assert!(Args::parse(s(&["--bogus"]).into_iter()).is_err());
    }
}
