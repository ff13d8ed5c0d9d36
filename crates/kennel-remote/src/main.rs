//! `kennel --remote URL COMMAND...`: the CLI's VE commands against a
//! `kenneld` on another host, over its REST API.
//!
//! A program of its own, run by `kennel` when it sees `--remote` (as git
//! runs `git-remote-https`): the local CLI stays a small static binary
//! that starts in a millisecond, without an HTTP and TLS stack it would
//! load on every command, and the remote one speaks only the API, so it
//! needs no root and no state root.
//!
//! The token comes from `KENNEL_TOKEN` (or `--token-file`), never from
//! the command line, where `ps` would show it. The server's certificate
//! is checked against `--ca FILE` (`KENNEL_CA`; a kenneld's own
//! self-signed one is `/var/lib/kennel/api/tls/cert.pem` on its host), or
//! the system's roots.

mod client;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match commands::Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "kennel: {} (see `kennel --remote URL --help`)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e
                .downcast_ref::<client::ApiFailure>()
                .map_or(1, client::ApiFailure::exit_code);
            let mut msg = String::new();
            for cause in e.chain() {
                let s = cause.to_string();
                if !msg.contains(&s) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&s);
                }
            }
            eprintln!("kennel: {}", msg.replace(['\n', '\r'], " "));
            ExitCode::from(code)
        }
    }
}
