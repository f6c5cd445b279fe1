//! The accept loop. axum's `serve` has no timers, so this runs hyper's HTTP/1 directly:
//! - `header_read_timeout` closes a connection that sends nothing, half a request head, or
//!   sits idle after a response (hyper starts the timer whenever it waits for a head);
//! - at most `max_connections` are open at once: at the cap, accepting pauses (clients
//!   wait in the kernel's backlog) instead of running out of file descriptors;
//! - shutdown stops accepting, lets requests in flight finish, and after `shutdown_grace`
//!   drops the connections still open, so a half-sent request can't hold the process.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// Time to wait before accepting again after `accept` failed (e.g. out of descriptors).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Descriptors kept free for the store, Redis, logs and the like.
const RESERVED_DESCRIPTORS: u64 = 256;

#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// Raises the soft open-files limit to the hard one where allowed, and returns the
/// connection cap that fits under it: `wanted`, or fewer when descriptors are short.
pub fn fit_connection_cap(wanted: usize) -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the open-files limit");
            return wanted;
        }
    };
    let available =
        usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX);
    if available < wanted {
        tracing::warn!(
            open_files_limit = soft,
            max_connections = available,
            "the open-files limit allows fewer connections than http.max_connections"
        );
    }
    wanted.min(available).max(1)
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains as described above.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(with_client_address(router.clone(), remote));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
        // Reap finished connections so the set stays as large as what is open.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                open = connections.len(),
                "connections still open after the shutdown grace: closing them"
            );
        }
    }
    connections.shutdown().await;
}

/// A second listener (`telemetry.metrics_listen`) served beside the main one, on its own
/// task, until `stop`. Its router holds the application state, so it must be stopped
/// before the queue can close.
pub struct SideServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl SideServer {
    pub fn spawn(listener: TcpListener, router: Router, limits: ServerLimits) -> SideServer {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, "serving metrics and health");
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        SideServer { stop, task }
    }

    /// Stops accepting, lets requests in flight finish (up to the shutdown grace) and
    /// returns once every connection, and with it the router, is gone.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the metrics listener panicked");
        }
    }
}

/// The router, with the client's address in every request (`ConnectInfo`).
fn with_client_address(
    router: Router,
    remote: SocketAddr,
) -> impl tower::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    router.map_request(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    })
}
