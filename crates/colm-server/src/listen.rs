//! Serving connections with limits that a slow or idle client cannot outlast: the accept loop
//! of [`crate::serve`] (hyper-util's connection builder, as `axum::serve` uses it, plus what
//! `axum::serve` leaves out).
//!
//! - **Header read timeout** ([`ConnectionLimits::header_read`]): a connection's first byte,
//!   a request's headers, and on a kept-alive connection the next request's, must arrive within
//!   it (hyper's `header_read_timeout`, driven by a Tokio timer, and before it a wait for the
//!   first byte, which hyper's protocol detection reads untimed); a stalled or idle connection
//!   is closed.
//! - **Body read timeout** ([`ConnectionLimits::body_read`]): once its headers are in, a
//!   request's body must arrive within it (tower-http's `RequestBodyTimeoutLayer`); else 408
//!   ([`crate::body::read_body`]) and the connection closes.
//! - **Connections at once** ([`ConnectionLimits::max_connections`]): more wait in the
//!   listener's backlog until one closes.
//!
//! Without these (the defaults of `axum::serve`), 300 connections stalled mid-headers and 100
//! mid-body were all still open after 70 s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// Limits of the HTTP connections a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time for a request's headers to arrive, and for the next request's on an idle
    /// kept-alive connection (HTTP/1).
    pub header_read: Duration,
    /// Time for a request's body to arrive once its headers have.
    pub body_read: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

/// Default [`ConnectionLimits::header_read`], ms.
pub const HEADER_READ_MS: u64 = 10_000;
/// Default [`ConnectionLimits::body_read`], ms.
pub const BODY_READ_MS: u64 = 30_000;
/// Default [`ConnectionLimits::max_connections`].
pub const MAX_CONNECTIONS: usize = 1024;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_millis(HEADER_READ_MS),
            body_read: Duration::from_millis(BODY_READ_MS),
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// How long a shutdown waits for open requests to finish before it drops them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets open
/// requests finish for up to [`SHUTDOWN_GRACE`]. An accept error (out of file descriptors)
/// is logged and retried after a pause.
///
/// # Errors
/// None yet: the signature leaves room for listener errors that end the loop.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let first_byte = limits.header_read;
        tokio::spawn(async move {
            // Held while the connection lives.
            let _permit = permit;
            // The builder reads the first bytes to tell HTTP/1 from HTTP/2 before hyper's
            // header timeout applies: a connection that sends nothing is closed here.
            let mut byte = [0u8; 1];
            if !matches!(
                tokio::time::timeout(first_byte, stream.peek(&mut byte)).await,
                Ok(Ok(1..))
            ) {
                return;
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open after {SHUTDOWN_GRACE:?}; dropping them");
    }
    Ok(())
}
