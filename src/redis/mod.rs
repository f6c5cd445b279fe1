//! The optional Redis that makes several instances behave as one: shared rate limits,
//! the replay guard's nonces, cache invalidation over pub/sub, and computed results
//! shared between instances (`shared_cache`). Every call has a
//! timeout and every failure is absorbed by the caller's local fallback, so Redis being
//! down or slow degrades the service (reported in `/health`), never breaks it.

pub mod invalidation;
pub mod shared_cache;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config as FredConfig, ReconnectPolicy};
use fred::types::config::ConnectionConfig;

pub use invalidation::{Invalidation, InvalidationBus};

use crate::config::RedisConfig;
use crate::telemetry::Metrics;

const MIN_RECONNECT_DELAY_MS: u32 = 100;
const MAX_RECONNECT_DELAY_MS: u32 = 2_000;

pub struct Redis {
    client: Client,
    prefix: String,
    command_timeout: Duration,
    /// The outcome of the latest call, so a failure streak is logged once, not per call.
    healthy: AtomicBool,
    metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("invalid redis.url: {0}")]
    Config(String),
}

pub(crate) fn builder(config: &RedisConfig, url: &str) -> Result<Builder, RedisError> {
    let fred_config =
        FredConfig::from_url(url).map_err(|error| RedisError::Config(error.to_string()))?;
    let mut builder = Builder::from_config(fred_config);
    builder
        .with_connection_config(|connection: &mut ConnectionConfig| {
            connection.connection_timeout = config.connect_timeout;
            connection.internal_command_timeout = config.command_timeout;
            connection.max_command_attempts = 1;
        })
        .with_performance_config(|performance| {
            performance.default_command_timeout = config.command_timeout;
        })
        // Retry forever: the service keeps running on local fallbacks meanwhile.
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            MIN_RECONNECT_DELAY_MS,
            MAX_RECONNECT_DELAY_MS,
            2,
        ));
    Ok(builder)
}

impl Redis {
    /// Connects in the background; a Redis that is down at start is retried forever.
    pub async fn connect(
        config: &RedisConfig,
        url: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Redis, RedisError> {
        let client = builder(config, url)?
            .build()
            .map_err(|error| RedisError::Config(error.to_string()))?;
        client.connect();
        let connected =
            tokio::time::timeout(config.connect_timeout, client.wait_for_connect()).await;
        if !matches!(connected, Ok(Ok(()))) {
            tracing::warn!("redis is not reachable yet; using local limits until it is");
        }
        Ok(Redis {
            client,
            prefix: config.key_prefix.clone(),
            command_timeout: config.command_timeout,
            healthy: AtomicBool::new(matches!(connected, Ok(Ok(())))),
            metrics,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A key in this deployment's namespace.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Runs one Redis call with the timeout; `None` (counted as a fallback for
    /// `operation`) when Redis failed or was too slow.
    pub async fn call<T, E: std::fmt::Display>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Option<T> {
        let outcome = tokio::time::timeout(self.command_timeout, call).await;
        match outcome {
            Ok(Ok(value)) => {
                self.healthy.store(true, Ordering::Relaxed);
                Some(value)
            }
            Ok(Err(error)) => {
                self.record_fallback(operation, &error.to_string());
                None
            }
            Err(_) => {
                self.record_fallback(operation, "timed out");
                None
            }
        }
    }

    fn record_fallback(&self, operation: &'static str, reason: &str) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                operation,
                reason,
                "redis unavailable, falling back to local state"
            );
        }
        self.metrics
            .redis_fallbacks
            .with_label_values(&[operation])
            .inc();
    }

    /// A real round trip, for `/health`.
    pub async fn ping(&self) -> bool {
        self.call("ping", self.client.ping::<String>(None))
            .await
            .is_some()
    }

    pub async fn quit(&self) {
        let _ = tokio::time::timeout(self.command_timeout, self.client.quit()).await;
    }
}
