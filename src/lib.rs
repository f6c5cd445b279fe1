//! Volcanion Tracking: a self-hosted event tracking backend. The floors, top down
//! (docs/ARCHITECTURE.md draws them and follows an event and a report through them):
//!
//! - `app`       the composition: opens the store, builds each service from the
//!   configuration and wires them (`wiring`), the caches and what drops them (`caches`),
//!   serving until shutdown and draining (`serve`); re-exported as `Application`,
//!   `open_store`
//! - `http`      the accept loop with its timeouts and cap (`http::server`), the axum
//!   router and its layers (correlation id and request span, access log and metrics in
//!   `http::observe`, the client address behind trusted proxies in
//!   `http::client_address`), extractors, bodies read under a deadline and byte budget
//!   (`http::body`), problem+json (`http::problem`), OpenAPI (`http::openapi`), one
//!   module per resource, and `http::ingest`, one module per endpoint family (native,
//!   batch, legacy, Segment), each handing its request to `ingest::Submission`
//!
//! The use cases:
//! - `ingest`    the use case `Submission` (one request, credential to answer, any wire
//!   format); admission (replay, rate charge); the wire formats (`format`: native,
//!   legacy, Segment), the batch judge (`batch`), the pipeline (subsystem, the bound on
//!   event types per partner in `event_types`, event structure, queue, wait for the
//!   store), the bounded queue, the batch writers and what runs after a write
//!   (`after_write`)
//! - `manage`    management: check, write, then invalidate caches everywhere; the
//!   operator's rollup rebuild and verify (`manage::rollups`)
//! - `auth`      API key format and hashing, verification cache, admin token,
//!   `authenticate` (credential → caller), read access, key creation/rotation rules
//! - `export`    every event of a range, ascending, a store page at a time, as NDJSON,
//!   CSV or Parquet; one person's events (`model::PersonIds`)
//! - `lifecycle` erasure requests and purges, their job runner (a person's hours from the
//!   people index, erased a day at a time, resumed after a crash), the retention sweeper,
//!   the audit log
//! - `reports`   summary and time series: whole hours from rollups, the edges from raw
//!   events (`plan`), cached in memory and shared through Redis, bounded by compute
//!   slots (`slots`)
//!
//! The services they share:
//! - `limits`    per-key and per-partner rate limits, the replay guard
//! - `tenants`   partner and subsystem field rules, and a cached directory
//! - `schemas`   event structures (JSON Schema): compiling, checking, a cached registry
//! - `enrich`    an event's page, referrer, UTM, browser, OS, device, bot and country
//!   (pure computation, with a user-agent cache and the operator's GeoIP database)
//!
//! Storage, and beside it:
//! - `store`     storage traits over `model`; the embedded (redb) store and the Cassandra
//!   one (session, `keyspace`, recorded `settings`, migrations, `event_claims`, reads
//!   with cursors, rollups folded by recount); `upkeep` runs the periodic rollup fold
//! - `rollups`   hourly counts and actor sketches, the data reports read, breakdown cells
//!   by dimension (docs/BREAKDOWNS.md) and people's postings beside them (no store, no HTTP)
//! - `people`    who an event belongs to (joins of anonymous ids to users), and what
//!   funnels and retention count over people's moments (no store, no HTTP)
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
//! Arrows point one way: http → manage/ingest/auth/reports/export/lifecycle →
//! limits/tenants/schemas → store → rollups/people/model (and redis beside them); `ingest`
//! and `manage` also use `auth`, `lifecycle` uses `reports`, `schemas` uses `tenants`. Nothing below `http` imports axum. `tests/api/layers.rs` fails
//! when an import points up, or a file or handler grows too long. `fuzzing` (hidden) is
//! the public door of the fuzz entry points, which live beside what they fuzz.

mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod enrich;
pub mod error;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod ingest;
pub mod lifecycle;
pub mod limits;
pub mod manage;
pub mod model;
pub mod people;
pub mod redis;
pub mod reports;
pub mod rollups;
pub mod schemas;
pub mod store;
pub mod telemetry;
pub mod tenants;

pub use app::{Application, open_store};
