//! Where requests come in: HTTPS on a TCP address ([`tcp`], TLS by
//! rustls with [`tls`]'s certificate) and HTTP on a Unix socket that only
//! root may open ([`unix`]). Each connection is served by hyper in a task
//! of its own, with the client's address (or uid) put on every request
//! as a [`Peer`]; slow or silent clients are cut off by time limits, and
//! the number of connections is bounded.

pub mod budget;
pub mod tcp;
pub mod tls;
pub mod unix;

use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::ServiceExt;

use crate::access::Peer;

/// A client must send a request's headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves one connection `io` from `peer` to its end.
pub async fn connection<I>(io: I, peer: Peer, router: Router)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer);
        router.clone().oneshot(req.map(Body::new))
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 << 10);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .await
    {
        tracing::debug!("a connection from {peer:?} ended: {e}");
    }
}
