//! A `kennel` command line built from a typed request: each value goes
//! as `--name=VALUE`, so no value can be read as another option, and a
//! value with a control character (or longer than a page) is refused as
//! bad input before anything runs.

use std::ffi::OsString;

use crate::error::{ApiError, ApiResult};

const MAX_VALUE: usize = 4096;

#[derive(Debug, Default)]
pub struct KennelArgs(Vec<OsString>);

impl KennelArgs {
    /// `kennel -q COMMAND...`.
    pub fn new(command: &[&str]) -> Self {
        let mut v: Vec<OsString> = vec!["-q".into()];
        v.extend(command.iter().map(OsString::from));
        KennelArgs(v)
    }

    /// A positional value already checked (a VE id, a template name).
    pub fn positional(mut self, value: &str) -> ApiResult<Self> {
        check("argument", value)?;
        if value.starts_with('-') {
            return Err(ApiError::bad_input(format!(
                "'{}' cannot start with '-'",
                value.escape_default()
            )));
        }
        self.0.push(value.into());
        Ok(self)
    }

    pub fn flag(mut self, name: &str, on: bool) -> Self {
        if on {
            self.0.push(format!("--{name}").into());
        }
        self
    }

    pub fn opt(mut self, name: &str, value: Option<&str>) -> ApiResult<Self> {
        if let Some(v) = value {
            check(name, v)?;
            self.0.push(format!("--{name}={v}").into());
        }
        Ok(self)
    }

    pub fn opts(mut self, name: &str, values: &[String]) -> ApiResult<Self> {
        for v in values {
            self = self.opt(name, Some(v))?;
        }
        Ok(self)
    }

    pub fn into_vec(self) -> Vec<OsString> {
        self.0
    }
}

fn check(name: &str, v: &str) -> ApiResult<()> {
    if v.len() > MAX_VALUE || v.chars().any(char::is_control) {
        return Err(ApiError::bad_input(format!(
            "{name}: a value must be one line of at most {MAX_VALUE} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_become_options() {
        let a = KennelArgs::new(&["set"])
            .positional("101")
            .and_then(|a| a.opt("hostname", Some("--root=/tmp")))
            .expect("args")
            .into_vec();
        assert_eq!(a, ["-q", "set", "101", "--hostname=--root=/tmp"]);
        assert!(KennelArgs::new(&["x"]).positional("-f").is_err());
        assert!(KennelArgs::new(&["x"])
            .opt("hostname", Some("a\0b"))
            .is_err());
        assert!(KennelArgs::new(&["x"])
            .opt("hostname", Some("a\nb"))
            .is_err());
    }
}
