//! The service's certificate: the one configured (`--tls-cert`,
//! `--tls-key`, PEM), else a self-signed one made on the first start and
//! kept in `<lib>/api/tls/` (the key root's alone), for `localhost`, the
//! host's name and loopback addresses. Clients pin it or are given it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where a made certificate is kept.
pub fn default_paths(lib: &Path) -> (PathBuf, PathBuf) {
    let dir = lib.join("api").join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// The TLS settings for `cert` and `key`, making both first if neither
/// exists and `make` is true.
pub fn server_config(cert: &Path, key: &Path, make: bool) -> Result<Arc<rustls::ServerConfig>> {
    if make && !cert.exists() && !key.exists() {
        make_self_signed(cert, key)?;
    }
    let certs: Vec<CertificateDer<'static>> = {
        let text = fs::read(cert).with_context(|| format!("read {}", cert.display()))?;
        rustls_pemfile::certs(&mut text.as_slice())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not a PEM certificate", cert.display()))?
    };
    if certs.is_empty() {
        return Err(anyhow!("{} holds no certificate", cert.display()));
    }
    let key: PrivateKeyDer<'static> = {
        let text = fs::read(key).with_context(|| format!("read {}", key.display()))?;
        rustls_pemfile::private_key(&mut text.as_slice())
            .with_context(|| format!("{} is not a PEM private key", key.display()))?
            .ok_or_else(|| anyhow!("{} holds no private key", key.display()))?
    };
    // ring (no C toolchain or cmake to build, unlike aws-lc-rs); its
    // provider lacks only the post-quantum key exchange.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not fit together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn make_self_signed(cert: &Path, key: &Path) -> Result<()> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = rustix::system::uname().nodename().to_str() {
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_string());
        }
    }
    let made = rcgen::generate_simple_self_signed(names).context("make a certificate")?;
    if let Some(dir) = cert.parent() {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    write_new(key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, made.cert.pem().as_bytes(), 0o644)?;
    tracing::info!("made a self-signed certificate: {}", cert.display());
    Ok(())
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("write {}", path.display()))
}
