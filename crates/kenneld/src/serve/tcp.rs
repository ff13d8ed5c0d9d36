//! HTTPS on a TCP address. The TLS handshake is done in the
//! connection's own task, within a time limit, so a client that stalls
//! it holds only its own connection.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::access::Peer;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    budget: Arc<super::budget::Budget>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, for one: wait rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = budget.tcp(addr.ip().to_canonical()) else {
            tracing::debug!("too many connections: refused one from {addr}");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    super::connection(stream, Peer::Tcp(addr.ip().to_canonical()), router).await
                }
                Ok(Err(e)) => tracing::debug!("TLS handshake with {addr} failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {addr} timed out"),
            }
        });
    }
}
