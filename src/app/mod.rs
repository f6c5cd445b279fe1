//! Composition: the one place that knows every floor. It opens the store and builds each
//! service from the configuration (`wiring`), keeps the caches of stored records and what
//! drops them (`caches`), and serves until shutdown, then drains the queue (`serve`).
//! `main`, the tests and the benches reach it as `volcanion::Application`.

mod caches;
mod serve;
mod wiring;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http::state::AppState;
use crate::redis::Redis;

pub use wiring::open_store;

/// A bound, ready-to-serve instance: store open, writers running, listener bound.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    writers: Vec<JoinHandle<()>>,
    draining: Arc<AtomicBool>,
    /// `telemetry.metrics_listen`, when set.
    metrics_listener: Option<TcpListener>,
    /// Tasks that live as long as the server (the invalidation listener, the settler).
    background: Vec<JoinHandle<()>>,
    redis: Option<Arc<Redis>>,
}

impl Application {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` and the detailed `/health` are served, when apart from the rest.
    pub fn metrics_local_addr(&self) -> Option<SocketAddr> {
        let listener = self.metrics_listener.as_ref()?;
        Some(
            listener
                .local_addr()
                .expect("a bound listener has an address"),
        )
    }
}
