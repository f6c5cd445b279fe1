//! Building an instance from its configuration: the store, Redis, the queue and its batch
//! writers with what runs after each stored batch, the background tasks, every service of
//! the request path, and the bound listeners. Each piece is built here once and handed to
//! those that use it; nothing below this module constructs its own dependencies.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use chrono::Utc;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use super::Application;
use super::caches::Caches;
use crate::auth::{self, AdminToken, Authenticator};
use crate::config::{Acknowledge, Config, StoreBackend};
use crate::enrich::Enricher;
use crate::http::{self, state::AppState};
use crate::ingest::after_write::AfterWrite;
use crate::ingest::event_types::EventTypes;
use crate::ingest::queue::{self, BatchPolicy, Unstored};
use crate::ingest::writer::spawn_writers;
use crate::ingest::{AckPolicy, Admission, Ingestor, Preparation};
use crate::lifecycle::{AuditLog, ErasureRunner, Erasures, Sweeper, spawn_runner, spawn_sweeper};
use crate::limits::{RateLimits, ReplayGuard};
use crate::manage::Management;
use crate::redis::{InvalidationBus, Redis};
use crate::reports::{DataAsOf, ReportService};
use crate::store::cassandra::CassandraStore;
use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};
use crate::store::{Store, upkeep};
use crate::telemetry::Metrics;

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = open_store(&config).await?;
        Application::build_with_store(config, store).await
    }

    /// Builds an instance on an already open store (several instances may share one).
    pub async fn build_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Application> {
        let metrics = Arc::new(Metrics::new());
        // Before anything connects: a GeoIP database that can't be read stops the start.
        let enricher = Arc::new(Enricher::new(&config.enrich, Arc::clone(&metrics))?);
        let redis = connect_redis(&config, &metrics).await?;
        let (queue, receiver) = queue::bounded(
            config.ingest.queue_capacity,
            usize::try_from(config.ingest.queue_max_bytes.as_u64()).unwrap_or(usize::MAX),
        );
        let batches = BatchPolicy {
            max_events: config.ingest.batch_size,
            linger: config.ingest.linger,
        };
        let data_as_of = data_as_of(config.ingest.acknowledge, queue.unstored());
        let caches = Caches::new(&config, &store, &metrics);
        let forget = caches.invalidation_handler();
        let after_write = AfterWrite::new(InvalidationBus::new(redis.clone(), Arc::clone(&forget)));
        let writers = spawn_writers(
            config.ingest.writers,
            receiver,
            store.clone(),
            batches,
            Arc::clone(&metrics),
            Arc::new(after_write),
        );
        let listener_task = match &config.redis.url {
            Some(url) => Some(
                InvalidationBus::listen(&config.redis, url.expose_secret(), Arc::clone(&forget))
                    .await
                    .map_err(|error| {
                        anyhow::anyhow!("cannot subscribe to cache invalidations: {error}")
                    })?,
            ),
            None => None,
        };
        let settler = upkeep::spawn_settler(Arc::clone(&store), Arc::clone(&metrics));
        let draining = Arc::new(AtomicBool::new(false));
        let reports = Arc::new(ReportService::new(
            store.clone(),
            Arc::clone(&caches.directory),
            data_as_of,
            Arc::clone(&caches.report_generations),
            redis.clone(),
            &config.reports,
            Arc::clone(&metrics),
        ));
        let erasure_wake = Arc::new(tokio::sync::Notify::new());
        let eraser = spawn_runner(ErasureRunner::new(
            Arc::clone(&store),
            Arc::clone(&reports),
            InvalidationBus::new(redis.clone(), Arc::clone(&forget)),
            Arc::clone(&erasure_wake),
        ));
        let sweeper = spawn_sweeper(Sweeper {
            store: Arc::clone(&store),
            invalidations: InvalidationBus::new(redis.clone(), Arc::clone(&forget)),
            metrics: Arc::clone(&metrics),
            interval: config.store.retention_sweep,
        });
        let state = Arc::new(AppState {
            authenticator: Authenticator::new(
                admin_token(&config)?,
                Arc::clone(&caches.verifier),
                Arc::clone(&caches.directory),
            ),
            admission: Admission::new(
                RateLimits::new(redis.clone()),
                ReplayGuard::new(
                    config.limits.replay_window,
                    config.limits.max_nonces_per_partner,
                    redis.clone(),
                ),
                &config.limits,
                Arc::clone(&metrics),
            ),
            ingestor: Ingestor::new(
                Preparation {
                    directory: Arc::clone(&caches.directory),
                    schemas: caches.schemas,
                    enricher,
                    event_types: EventTypes::new(
                        store.clone(),
                        config.ingest.max_event_types_per_partner,
                    ),
                },
                queue,
                AckPolicy {
                    acknowledge: config.ingest.acknowledge,
                    timeout: config.ingest.ack_timeout,
                },
                Arc::clone(&metrics),
                config.ingest.max_clock_skew,
            ),
            management: Management::new(
                Arc::clone(&store),
                InvalidationBus::new(redis.clone(), Arc::clone(&forget)),
                config.auth.pbkdf2_iterations,
            ),
            erasures: Erasures::new(
                Arc::clone(&store),
                InvalidationBus::new(redis.clone(), Arc::clone(&forget)),
                Arc::clone(&erasure_wake),
            ),
            audit: AuditLog::new(Arc::clone(&store)),
            reports: Arc::clone(&reports),
            bodies: http::body::BodyGuard::new(
                config.http.max_body_bytes_in_flight.as_u64(),
                config.http.body_read_timeout,
            ),
            redis: redis.clone(),
            directory: caches.directory,
            store,
            metrics,
            draining: Arc::clone(&draining),
            config,
        });
        let (listener, metrics_listener) = bind(&state.config).await?;
        Ok(Application {
            listener,
            metrics_listener,
            state,
            writers,
            draining,
            background: listener_task
                .into_iter()
                .chain(settler)
                .chain([eraser, sweeper])
                .collect(),
            redis,
        })
    }
}

/// Opens the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match config.store.backend {
        StoreBackend::Embedded => Ok(Arc::new(
            EmbeddedStore::open_with(
                &config.store.data_dir,
                EmbeddedOptions {
                    cache_bytes: usize::try_from(config.store.cache_size.as_u64())
                        .unwrap_or(usize::MAX),
                    breakdown_settle: config.store.breakdown_settle,
                    breakdown_fold_interval: config.store.breakdown_fold_interval,
                },
            )
            .context("cannot open the embedded store")?,
        )),
        StoreBackend::Cassandra => Ok(Arc::new(
            CassandraStore::open(&config.cassandra)
                .await
                .context("cannot open the cassandra store")?,
        )),
    }
}

/// The API's listener, and the operations one when `telemetry.metrics_listen` is set.
async fn bind(config: &Config) -> anyhow::Result<(TcpListener, Option<TcpListener>)> {
    let listen = config.http.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let metrics_listener =
        match config.telemetry.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} (telemetry.metrics_listen)")
            })?),
            None => None,
        };
    Ok((listener, metrics_listener))
}

/// `dataAsOf` of reports: with durable acknowledgement every acknowledged event is stored
/// before its 202, so a report includes all of them as of when it starts reading; with
/// in-memory acknowledgement, only those received before the oldest one still queued.
fn data_as_of(acknowledge: Acknowledge, unstored: Unstored) -> DataAsOf {
    match acknowledge {
        Acknowledge::Stored => Arc::new(Utc::now),
        Acknowledge::Queued => Arc::new(move || {
            let now = Utc::now();
            unstored.oldest().map_or(now, |oldest| oldest.min(now))
        }),
    }
}

async fn connect_redis(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<Arc<Redis>>> {
    let Some(url) = &config.redis.url else {
        return Ok(None);
    };
    let redis = Redis::connect(&config.redis, url.expose_secret(), Arc::clone(metrics)).await?;
    Ok(Some(Arc::new(redis)))
}

fn admin_token(config: &Config) -> anyhow::Result<AdminToken> {
    Ok(match &config.auth.admin_token {
        Some(token) => AdminToken::new(token),
        None => AdminToken::new(&auth::generated_admin_token(&config.store.data_dir)?),
    })
}
