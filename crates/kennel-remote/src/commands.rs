//! The commands `kennel --remote` knows: the CLI's names and options for
//! what the API offers (list, status, config, stat, start, stop,
//! restart, kill, destroy, template list).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use reqwest::Method;
use serde_json::Value;

use crate::client::Remote;

#[derive(Debug, Parser)]
#[command(
    name = "kennel --remote URL",
    about = "Kennel's commands against a kenneld API service"
)]
pub struct Cli {
    /// The service, e.g. https://host:8443.
    #[arg(long)]
    pub remote: String,
    /// A file holding the API token (default: the KENNEL_TOKEN variable).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust this certificate (PEM) for the service, e.g. its self-signed
    /// /var/lib/kennel/api/tls/cert.pem.
    #[arg(long, env = "KENNEL_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Print only errors.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List VEs (running ones unless --all).
    List {
        #[arg(short, long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show whether a VE runs, with its init, uptime, processes and memory.
    Status {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Show a VE's configuration (JSON).
    Config { id: String },
    /// Show a running VE's resource counters (JSON).
    Stat { id: String },
    /// Start a VE.
    Start { id: String },
    /// Shut a VE down; kill it after the timeout.
    Stop {
        id: String,
        #[arg(long, default_value_t = 30)]
        timeout: u32,
    },
    /// Stop (if running) and start a VE.
    Restart {
        id: String,
        #[arg(long, default_value_t = 30)]
        timeout: u32,
    },
    /// Kill a VE at once.
    Kill { id: String },
    /// Delete a VE and all its files.
    Destroy {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Templates.
    #[command(subcommand)]
    Template(TemplateCommand),
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List templates.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn token(cli: &Cli) -> Result<String> {
    let t = match &cli.token_file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?,
        None => std::env::var("KENNEL_TOKEN").map_err(|_| crate::client::ApiFailure {
            code: "unauthorized".into(),
            message: "no API token: set KENNEL_TOKEN or pass --token-file FILE (make one with `kennel api token create` on the host)".into(),
        })?,
    };
    Ok(t.trim().to_string())
}

/// Path segments are VE ids or names the service checks; anything that
/// could leave its segment is refused here.
fn segment(s: &str) -> Result<&str> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        || s.starts_with('.')
    {
        anyhow::bail!(crate::client::ApiFailure {
            code: "bad_input".into(),
            message: format!("invalid VE id '{}'", s.escape_default()),
        });
    }
    Ok(s)
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.escape_debug().to_string(),
        other => other.to_string(),
    }
}

pub fn run(cli: Cli) -> Result<u8> {
    let remote = Remote::new(&cli.remote, token(&cli)?, cli.ca.as_deref())?;
    let say = |s: String| {
        if !cli.quiet {
            println!("{s}");
        }
    };
    match &cli.command {
        Command::List { all, json } => {
            let path = if *all {
                "/v1/ves"
            } else {
                "/v1/ves?state=running"
            };
            let v = remote.call(Method::GET, path, None)?;
            if *json {
                return print_json(&v).map(|()| 0);
            }
            println!(
                "{:<12} {:<10} {:<20} {:>6} {:>10}",
                "ID", "STATE", "HOSTNAME", "PROCS", "MEMORY"
            );
            for ve in v.as_array().into_iter().flatten() {
                println!(
                    "{:<12} {:<10} {:<20} {:>6} {:>10}",
                    text(&ve["id"]),
                    text(&ve["state"]),
                    text(&ve["hostname"]),
                    text(&ve["procs"]),
                    text(&ve["memory_bytes"])
                );
            }
        }
        Command::Status { id, json } => {
            let v = remote.call(Method::GET, &format!("/v1/ves/{}", segment(id)?), None)?;
            if *json {
                return print_json(&v).map(|()| 0);
            }
            match v["init_pid"].as_i64() {
                Some(pid) => println!(
                    "VE {} {} (init {pid}, up {} s, {} processes)",
                    text(&v["id"]),
                    text(&v["state"]),
                    text(&v["uptime_secs"]),
                    text(&v["procs"])
                ),
                None => println!("VE {} {}", text(&v["id"]), text(&v["state"])),
            }
        }
        Command::Config { id } => print_json(&remote.call(
            Method::GET,
            &format!("/v1/ves/{}/config", segment(id)?),
            None,
        )?)?,
        Command::Stat { id } => print_json(&remote.call(
            Method::GET,
            &format!("/v1/ves/{}/stat", segment(id)?),
            None,
        )?)?,
        Command::Start { id } => {
            let v = remote.call(
                Method::POST,
                &format!("/v1/ves/{}/actions/start", segment(id)?),
                None,
            )?;
            say(format!(
                "Started VE {id} (init PID {})",
                text(&v["init_pid"])
            ));
        }
        Command::Stop { id, timeout } => {
            let v = remote.call(
                Method::POST,
                &format!("/v1/ves/{}/actions/stop?timeout={timeout}", segment(id)?),
                None,
            )?;
            say(match v["result"].as_str() {
                Some("stop_timed_out") => format!("Stopped VE {id} (killed after {timeout} s)"),
                _ => format!("Stopped VE {id}"),
            });
        }
        Command::Restart { id, timeout } => {
            let v = remote.call(
                Method::POST,
                &format!("/v1/ves/{}/actions/restart?timeout={timeout}", segment(id)?),
                None,
            )?;
            say(format!(
                "Restarted VE {id} (init PID {})",
                text(&v["init_pid"])
            ));
        }
        Command::Kill { id } => {
            remote.call(
                Method::POST,
                &format!("/v1/ves/{}/actions/kill", segment(id)?),
                None,
            )?;
            say(format!("Killed VE {id}"));
        }
        Command::Destroy { id, force } => {
            remote.call(
                Method::DELETE,
                &format!("/v1/ves/{}?force={force}", segment(id)?),
                None,
            )?;
            say(format!("Destroyed VE {id}"));
        }
        Command::Template(TemplateCommand::List { json }) => {
            let v = remote.call(Method::GET, "/v1/templates", None)?;
            if *json {
                return print_json(&v).map(|()| 0);
            }
            println!("{:<20} {:<10} {:>12}", "NAME", "INIT", "SIZE");
            for t in v.as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<10} {:>12}",
                    text(&t["name"]),
                    text(&t["init"]),
                    text(&t["size_bytes"])
                );
            }
        }
    }
    Ok(0)
}
