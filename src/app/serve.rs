//! Serving an instance until shutdown, and the order it stops in: no new connections,
//! in-flight requests finish, the queue closes (the router that owns its sender is
//! dropped), the writers store everything accepted within `ingest.shutdown_timeout`, then
//! the background tasks end and Redis is left.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinHandle;

use super::Application;
use crate::http;

impl Application {
    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish, closes the queue (by dropping the router that owns its sender) and waits
    /// for the writers to store everything accepted, up to `ingest.shutdown_timeout`.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            metrics_listener,
            state,
            writers,
            draining,
            background,
            redis,
        } = self;
        let drain_timeout = state.config.ingest.shutdown_timeout;
        let http_config = &state.config.http;
        let server_limits = http::server::ServerLimits {
            header_read_timeout: http_config.header_read_timeout,
            max_connections: http::server::fit_connection_cap(http_config.max_connections),
            shutdown_grace: http_config.shutdown_grace,
        };
        let metrics = Arc::clone(&state.metrics);
        tracing::info!(address = %listener.local_addr()?, store = state.store.backend_name(), "serving");
        let side_server = metrics_listener.map(|listener| {
            let router = http::operations_router(Arc::clone(&state));
            http::server::SideServer::spawn(listener, router, server_limits)
        });
        let router = http::router(state);
        let signal = async move {
            shutdown.await;
            draining.store(true, Ordering::Relaxed);
            tracing::info!("shutdown requested: no new connections, draining");
        };
        http::server::serve(listener, router, server_limits, signal).await;
        if let Some(side_server) = side_server {
            side_server.stop().await;
        }
        let drained = tokio::time::timeout(drain_timeout, join_writers(writers)).await;
        background.iter().for_each(JoinHandle::abort);
        if let Some(redis) = redis {
            redis.quit().await;
        }
        match drained {
            Ok(()) => {
                tracing::info!(
                    stored = metrics.events_stored.get(),
                    "queue drained, store closed"
                );
                Ok(())
            }
            Err(_) => anyhow::bail!(
                "the ingest queue did not drain within {}; events still queued were not stored",
                humantime::format_duration(drain_timeout)
            ),
        }
    }
}

async fn join_writers(writers: Vec<JoinHandle<()>>) {
    for outcome in futures::future::join_all(writers).await {
        if let Err(error) = outcome {
            tracing::error!(%error, "a batch writer panicked");
        }
    }
}
