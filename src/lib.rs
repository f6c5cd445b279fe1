//! Volcanion Tracking: a self-hosted event tracking backend. The floors, top down
//! (docs/ARCHITECTURE.md draws them and follows an event and a report through them):
//!
//! - `http`      the accept loop with its timeouts and cap (`http::server`), the axum
//!   router and its layers (correlation id and request span, access log and metrics in
//!   `http::observe`, the client address behind trusted proxies in
//!   `http::client_address`), extractors, bodies read under a deadline and byte budget
//!   (`http::body`), problem+json (`http::problem`), OpenAPI (`http::openapi`), one
//!   module per resource, and `http::ingest` with one module per wire format (native,
//!   batch, legacy, Segment) and the batch envelopes counted while parsed (`envelope`)
//!
//! The use cases:
//! - `ingest`    admission (replay, rate charge), event validation, Segment's messages
//!   translated into the same drafts (`ingest::segment`), the pipeline (subsystem, the
//!   bound on event types per partner in `event_types`, event structure, queue, wait for
//!   the store), the bounded queue, and the batch writers
//! - `manage`    management: check, write, then invalidate caches everywhere; the
//!   operator's rollup rebuild and verify (`manage::rollups`)
//! - `auth`      API key format and hashing, verification cache, admin token,
//!   `authenticate` (credential → caller), read access, key creation/rotation rules
//! - `reports`   summary and time series: whole hours from rollups, the edges from raw
//!   events (`plan`), cached in memory and shared through Redis, bounded by compute
//!   slots (`slots`); `settler` runs the store's rollup fold
//!
//! The services they share:
//! - `limits`    per-key and per-partner rate limits, the replay guard
//! - `tenants`   partner and subsystem field rules, and a cached directory
//! - `schemas`   event structures (JSON Schema): compiling, checking, a cached registry
//!
//! Storage, and beside it:
//! - `store`     storage traits over `model`; the embedded (redb) store and the Cassandra
//!   one (session, `keyspace`, recorded `settings`, migrations, `event_claims`, reads
//!   with cursors, rollups folded by recount)
//! - `enrich`    an event's page, referrer, UTM, browser, OS, device, bot, country (pure)
//! - `rollups`   hourly counts and actor sketches, the data reports read (no store, no HTTP)
//! - `model`     the records every layer shares: event, partner, subsystem, API key,
//!   event structure, validated newtypes (`Code`, `JsonObject`); test fixtures
//! - `redis`     the optional shared Redis: connection with timeouts and fallbacks, cache
//!   invalidation across instances, results shared between them (`shared_cache`)
//!
//! The ground floor, used by all:
//! - `config`    typed configuration, one file per section, each validating itself:
//!   defaults file, `--config` file, environment
//! - `error`     the closed `ErrorKind`s, field errors, and `ServiceError` (no HTTP)
//! - `telemetry` logs, OpenTelemetry traces over OTLP, the Prometheus registry
//! - `cache`     the read-through cache (single-flight, hit/miss metrics) lookups use
//!
//! Arrows point one way: http → manage/ingest/auth/reports → limits/tenants/schemas →
//! store → rollups/model (and redis beside them); `ingest` and `manage` also use `auth`,
//! `schemas` uses `tenants`. Nothing below `http` imports axum. `tests/api/layers.rs` fails
//! when an import points up. `fuzzing` (hidden) drives the router for the fuzz targets.

pub mod auth;
pub mod cache;
pub mod config;
pub mod enrich;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod ingest;
pub mod limits;
pub mod manage;
pub mod model;
pub mod redis;
pub mod reports;
pub mod rollups;
pub mod schemas;
pub mod store;
pub mod telemetry;
pub mod tenants;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use chrono::Utc;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::auth::{AdminToken, Authenticator, KeyVerifier};
use crate::config::{Acknowledge, Config, StoreBackend};
use crate::http::state::AppState;
use crate::ingest::event_types::EventTypes;
use crate::ingest::queue::{BatchPolicy, Unstored};
use crate::ingest::writer::{StoredHook, spawn_writers};
use crate::ingest::{AckPolicy, Admission, Ingestor};
use crate::limits::{RateLimits, ReplayGuard};
use crate::manage::Management;
use crate::redis::{Invalidation, InvalidationBus, Redis, invalidation};
use crate::reports::{DataAsOf, Generations, ReportService};
use crate::rollups::Hour;
use crate::schemas::SchemaRegistry;
use crate::store::Store;
use crate::store::cassandra::CassandraStore;
use crate::store::embedded::EmbeddedStore;
use crate::telemetry::Metrics;
use crate::tenants::Directory;

/// A bound, ready-to-serve instance: store open, writers running, listener bound.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    writers: Vec<JoinHandle<()>>,
    draining: Arc<AtomicBool>,
    /// `telemetry.metrics_listen`, when set.
    metrics_listener: Option<TcpListener>,
    /// Tasks that live as long as the server (the invalidation listener).
    background: Vec<JoinHandle<()>>,
    redis: Option<Arc<Redis>>,
}

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
        let redis = connect_redis(&config, &metrics).await?;
        let (queue, receiver) = ingest::queue::bounded(
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
        let writers = spawn_writers(
            config.ingest.writers,
            receiver,
            store.clone(),
            batches,
            Arc::clone(&metrics),
            late_events_invalidate_reports(InvalidationBus::new(
                redis.clone(),
                Arc::clone(&forget),
            )),
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
        let settler = reports::spawn_settler(Arc::clone(&store), Arc::clone(&metrics));
        let draining = Arc::new(AtomicBool::new(false));
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
                Arc::clone(&caches.directory),
                caches.schemas,
                EventTypes::new(store.clone(), config.ingest.max_event_types_per_partner),
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
                InvalidationBus::new(redis.clone(), forget),
                config.auth.pbkdf2_iterations,
            ),
            reports: ReportService::new(
                store.clone(),
                data_as_of,
                Arc::clone(&caches.report_generations),
                redis.clone(),
                &config.reports,
                Arc::clone(&metrics),
            ),
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
        let listen = state.config.http.listen;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let metrics_listener = match state.config.telemetry.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} (telemetry.metrics_listen)")
            })?),
            None => None,
        };
        Ok(Application {
            listener,
            metrics_listener,
            state,
            writers,
            draining,
            background: listener_task.into_iter().chain(settler).collect(),
            redis,
        })
    }

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

/// Stored events timed before the current hour began land in settled report ranges: their
/// partners' settled reports are dropped here and on every other instance.
fn late_events_invalidate_reports(bus: InvalidationBus) -> StoredHook {
    let bus = Arc::new(bus);
    Arc::new(move |events| {
        let settled_before = Hour::of(Utc::now()).start();
        let partners: BTreeSet<Uuid> = events
            .iter()
            .filter(|event| event.timestamp < settled_before)
            .map(|event| event.partner_id)
            .collect();
        // Applied here before the events' 202s, so no answer after one is stale.
        for partner in partners {
            bus.publish_from_sync(Invalidation::LateEvents(partner));
        }
    })
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

/// Opens the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match config.store.backend {
        StoreBackend::Embedded => Ok(Arc::new(
            EmbeddedStore::open_with_cache(
                &config.store.data_dir,
                usize::try_from(config.store.cache_size.as_u64()).unwrap_or(usize::MAX),
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

async fn join_writers(writers: Vec<JoinHandle<()>>) {
    for outcome in futures::future::join_all(writers).await {
        if let Err(error) = outcome {
            tracing::error!(%error, "a batch writer panicked");
        }
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

/// The request path's caches of stored records, and what drops them on a change.
struct Caches {
    directory: Arc<Directory>,
    schemas: Arc<SchemaRegistry>,
    verifier: Arc<KeyVerifier>,
    report_generations: Arc<Generations>,
}

impl Caches {
    fn new(config: &Config, store: &Arc<dyn Store>, metrics: &Arc<Metrics>) -> Caches {
        Caches {
            directory: Arc::new(Directory::new(
                Arc::clone(store),
                config.limits.directory_cache_ttl,
                Arc::clone(metrics),
            )),
            schemas: Arc::new(SchemaRegistry::new(
                Arc::clone(store),
                config.schemas.cache_ttl,
                Arc::clone(metrics),
            )),
            verifier: Arc::new(KeyVerifier::new(
                Arc::clone(store),
                &config.auth,
                Arc::clone(metrics),
            )),
            report_generations: Arc::new(Generations::default()),
        }
    }

    fn invalidation_handler(&self) -> invalidation::Handler {
        let (directory, verifier, schemas, reports) = (
            Arc::clone(&self.directory),
            Arc::clone(&self.verifier),
            Arc::clone(&self.schemas),
            Arc::clone(&self.report_generations),
        );
        Arc::new(move |change| match change {
            Invalidation::Identities => {
                directory.forget_all();
                verifier.forget_all();
            }
            Invalidation::Schemas => schemas.forget_all(),
            Invalidation::LateEvents(partner) => reports.bump(partner),
            Invalidation::AllReports => reports.bump_all(),
        })
    }
}

fn admin_token(config: &Config) -> anyhow::Result<AdminToken> {
    Ok(match &config.auth.admin_token {
        Some(token) => AdminToken::new(token),
        None => AdminToken::new(&auth::generated_admin_token(&config.store.data_dir)?),
    })
}
