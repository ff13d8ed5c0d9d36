//! `kennel api token ...`: the API service's tokens (crates/kennel-api).
//! The service (`kenneld`) reads the same file, and refuses a revoked
//! token from its next request.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use kennel_api::store::NewToken;
use kennel_api::{Role, Tenant, TokenId, TokenStore};
use kennel_ve::{Kennel, VeId};
use serde_json::json;

use crate::output::outln;

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Tokens for the API service (kenneld).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (once: only its hash is kept).
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: the service refuses it from its next request.
    Revoke { id: String },
    /// Replace the VEs a tenant's token may touch.
    SetVes {
        id: String,
        /// VE ids, comma-separated (each must exist).
        #[arg(long, value_delimiter = ',', required = true)]
        ves: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// viewer (read), operator (also start, stop, console) or admin (everything).
    #[arg(long, default_value = "viewer")]
    pub role: String,
    /// The tenant the token belongs to: it sees only the VEs of --ves.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The VEs a tenant's token may touch, comma-separated (each must exist).
    #[arg(long, value_delimiter = ',')]
    pub ves: Option<Vec<String>>,
    /// A note shown in `kennel api token list`.
    #[arg(long)]
    pub comment: Option<String>,
}

pub fn run(k: &Kennel, cmd: ApiCommand, quiet: bool) -> Result<i32> {
    let store = TokenStore::new(&k.paths().lib);
    let ApiCommand::Token(cmd) = cmd;
    match cmd {
        TokenCommand::Create(a) => {
            let new = NewToken {
                role: a.role.parse::<Role>()?,
                tenant: a.tenant.as_deref().map(Tenant::parse).transpose()?,
                ves: a.ves.as_deref().map(|v| granted(k, v)).transpose()?,
                comment: a.comment,
            };
            let (token, rec) = store.create(new).context("make an API token")?;
            if !quiet {
                eprintln!(
                    "kennel: made token {} ({}{}); it is shown once, keep it:",
                    rec.id,
                    rec.role,
                    rec.tenant
                        .as_ref()
                        .map(|t| format!(", tenant {t}"))
                        .unwrap_or_default()
                );
            }
            outln!("{}", token.reveal())?;
        }
        TokenCommand::List { json } => {
            let tokens = store.load()?;
            if json {
                let v: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        json!({"id": t.id, "role": t.role, "tenant": t.tenant,
                               "ves": t.ves.as_ref().map(|v| v.keys().collect::<Vec<_>>()),
                               "created": t.created, "comment": t.comment})
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                outln!("{:<16}  {:<8}  {:<12}  VES", "ID", "ROLE", "TENANT")?;
                for t in &tokens {
                    let ves = t.ves.as_ref().map_or("all".to_string(), |v| {
                        v.keys().map(VeId::as_str).collect::<Vec<_>>().join(",")
                    });
                    let tenant = t.tenant.as_ref().map_or("-", Tenant::as_str);
                    outln!("{:<16}  {:<8}  {:<12}  {ves}", t.id, t.role, tenant)?;
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let rec = store.revoke(&TokenId::parse(&id)?)?;
            crate::commands::say(quiet, format!("Revoked token {}", rec.id))?;
        }
        TokenCommand::SetVes { id, ves } => {
            let rec = store.set_ves(&TokenId::parse(&id)?, granted(k, &ves)?)?;
            crate::commands::say(
                quiet,
                format!("Token {} now reaches VEs {}", rec.id, ves.join(",")),
            )?;
        }
    }
    Ok(0)
}

/// The VEs of `ids`, each with its uuid now: a grant names this VE, not
/// one made later under the same id.
fn granted(k: &Kennel, ids: &[String]) -> Result<BTreeMap<VeId, String>> {
    ids.iter()
        .map(|s| {
            let id = VeId::parse(s.trim())?;
            let uuid = k.config(&id)?.uuid;
            Ok((id, uuid))
        })
        .collect()
}
