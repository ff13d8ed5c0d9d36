//! HTTP on a Unix socket (`<run>/kenneld.sock`, mode 0600 in root's
//! 0700 run directory): root on this host, without a token. The peer's
//! uid is taken from the kernel (`SO_PEERCRED`), not believed from the
//! request.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use crate::access::Peer;

/// Binds `path`, replacing a socket a previous run left (never another
/// kind of file).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a socket: remove it or pass --socket",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

pub async fn serve(listener: UnixListener, router: Router, budget: Arc<Semaphore>) {
    // Its own budget (serve/budget.rs): clients on the network never
    // use it up.
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("accept on the Unix socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(uid) = stream.peer_cred().map(|c| c.uid()) else {
            continue;
        };
        let Ok(permit) = Arc::clone(&budget).try_acquire_owned() else {
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            super::connection(stream, Peer::Unix { uid }, router).await
        });
    }
}
