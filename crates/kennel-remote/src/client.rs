//! The HTTP side: one client with the token and the trusted certificate,
//! and the API's errors turned back into the CLI's exit statuses.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::Value;

/// An error the service answered with.
#[derive(Debug)]
pub struct ApiFailure {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiFailure {}

impl ApiFailure {
    /// The exit status the local CLI has for the same error (docs/CLI.md).
    pub fn exit_code(&self) -> u8 {
        match self.code.as_str() {
            "bad_input" | "payload_too_large" | "method_not_allowed" | "not_found" | "in_use" => 2,
            "unauthorized" | "forbidden" | "too_many_requests" => 3,
            "no_such_ve" => 4,
            "exists" => 5,
            "running" => 6,
            "not_running" => 7,
            "template" => 9,
            "host_unsupported" => 10,
            "busy" => 11,
            "start_failed" => 12,
            _ => 1,
        }
    }
}

pub struct Remote {
    client: Client,
    base: String,
    token: String,
}

impl Remote {
    pub fn new(url: &str, token: String, ca: Option<&Path>) -> Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("https://") {
            anyhow::bail!(ApiFailure {
                code: "bad_input".into(),
                message: format!("--remote {url}: use an https:// address (kenneld serves TLS)"),
            });
        }
        let mut b = Client::builder()
            .timeout(Duration::from_secs(3600))
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).with_context(|| format!("read {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        Ok(Remote {
            client: b.build().context("set up the HTTPS client")?,
            base,
            token,
        })
    }

    /// `METHOD PATH` with an optional JSON body; the answer's JSON, or
    /// the service's error.
    pub fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r
            .send()
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        let text = resp.text().context("read the answer")?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} answered {status} with something that is not JSON",
                    self.base
                )
            })?
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(ApiFailure {
            code: value["code"].as_str().unwrap_or("internal").to_string(),
            message: value["message"].as_str().map_or_else(
                || format!("{} answered {status}", self.base),
                str::to_string,
            ),
        }
        .into())
    }
}
