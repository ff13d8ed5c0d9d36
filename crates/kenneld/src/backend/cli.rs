//! Runs `kennel [--root R] -q ARGS...` for a request, and turns its exit
//! status and one-line error into the API's error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use crate::error::{ApiError, ApiResult};

/// Output kept of a command: the CLI prints one line of error, or a JSON
/// document; anything beyond this is cut.
const MAX_OUTPUT: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct KennelCli {
    pub exe: PathBuf,
    pub root: Option<PathBuf>,
}

impl KennelCli {
    /// The command line for `args`: the state root first, then `args`.
    pub fn command(&self, args: &[OsString]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.exe);
        match &self.root {
            Some(r) => {
                cmd.arg("--root").arg(r);
            }
            None => {
                cmd.env_remove("KENNEL_ROOT");
            }
        }
        cmd.args(args);
        cmd
    }

    /// Runs `kennel ARGS` to its end (even if the request is dropped) and
    /// returns its standard output.
    pub async fn run(&self, args: Vec<OsString>) -> ApiResult<String> {
        self.run_with_input(args, None).await
    }

    /// [`run`](Self::run), with `input` on the command's standard input
    /// (a secret that must not be on its command line, which every host
    /// user may read in `/proc`).
    pub async fn run_with_input(
        &self,
        args: Vec<OsString>,
        input: Option<Vec<u8>>,
    ) -> ApiResult<String> {
        let mut cmd = self.command(&args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
        let what = args
            .iter()
            .find(|a| !a.to_string_lossy().starts_with('-'))
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let task = tokio::spawn(async move {
            let mut child = cmd.spawn()?;
            if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
                use tokio::io::AsyncWriteExt;
                // Small (a password); a command that does not read it
                // gets EPIPE here, which its own error then explains.
                let _ = stdin.write_all(&bytes).await;
            }
            child.wait_with_output().await
        });
        let out = task
            .await
            .map_err(|e| ApiError::internal(format!("running kennel {what} failed: {e}")))?
            .map_err(|e| ApiError::internal(format!("cannot run kennel {what}: {e}")))?;
        if out.status.success() {
            let mut stdout = out.stdout;
            stdout.truncate(MAX_OUTPUT);
            return Ok(String::from_utf8_lossy(&stdout).into_owned());
        }
        let code = out.status.code().unwrap_or(1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(ApiError::from_exit(code, error_line(&stderr, &what)))
    }
}

/// The CLI's error: its last line that starts with `kennel: ` (notes and
/// warnings come before it), without that prefix.
fn error_line(stderr: &str, what: &str) -> String {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("kennel: "))
        .map(|l| l.chars().take(2000).collect())
        .unwrap_or_else(|| format!("kennel {what} failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_the_last_kennel_line() {
        let e = "kennel: note: x\nsomething\nkennel: VE 7 is running (stop it first)\n";
        assert_eq!(error_line(e, "destroy"), "VE 7 is running (stop it first)");
        assert_eq!(error_line("", "destroy"), "kennel destroy failed");
    }
}
