//! Raw Cassandra insert rate for the events row shape, with the scylla driver and no HTTP
//! (the "raw Cassandra ceiling" in the README's "Measured on this kind of machine").
//! Creates (or reuses) a throw-away keyspace with the project's `cql/` tables, then
//! measures, one after the other:
//!
//! - `single`: one INSERT per event into `events_by_partner_day`, `--concurrency` in flight
//! - `batch`:  unlogged batches of `--batch-rows` events of one partition, same concurrency
//! - `both`:   the same batches into both events tables (each event's two rows, as the
//!   service writes them), the two tables' batches concurrently
//! - `claim`:  the de-duplication claim alone (`INSERT ... IF NOT EXISTS`, a Paxos round)
//! - `store`:  `CassandraStore::write_events` in writer-sized batches from `--writers`
//!   concurrent writers: the claim plus both events tables, as the service writes
//!
//! cargo run --release --example cassandra_insert_rate -- --nodes 127.0.0.1:9042 --events 50000

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use scylla::SerializeRow;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use serde_json::json;
use uuid::Uuid;
use volcanion::config::Config;
use volcanion::model::{Event, JsonObject};
use volcanion::store::EventStore;
use volcanion::store::cassandra::CassandraStore;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9042")]
    nodes: String,
    #[arg(long, default_value = "volcanion_bench")]
    keyspace: String,
    /// Events per mode.
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Rows per unlogged batch (one partition).
    #[arg(long, default_value_t = 50)]
    batch_rows: usize,
    /// Events per `write_events` call in the `store` mode (the writers' batch size).
    #[arg(long, default_value_t = 500)]
    store_batch: usize,
    /// Concurrent `write_events` calls in the `store` mode (the service's `ingest.writers`).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Which modes to run, comma-separated (single, batch, claim, store).
    #[arg(
        long,
        default_value = "single,batch,claim,store",
        value_delimiter = ','
    )]
    modes: Vec<String>,
    /// Drop the keyspace at the end.
    #[arg(long)]
    drop: bool,
}

#[derive(SerializeRow)]
struct Row {
    partner_id: Uuid,
    day: NaiveDate,
    bucket: i32,
    event_time: chrono::DateTime<Utc>,
    event_id: String,
    event_time_ns: i64,
    subsystem_id: Uuid,
    event_type: String,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    properties: String,
    context: String,
    is_valid: bool,
    validation_errors: Vec<String>,
    correlation_id: String,
    received_at: chrono::DateTime<Utc>,
    received_at_ns: i64,
}

const INSERT_COLUMNS: &str = "partner_id, day, bucket, event_time, event_id, event_time_ns, \
    subsystem_id, event_type, user_id, anonymous_id, properties, context, is_valid, \
    validation_errors, correlation_id, received_at, received_at_ns";

fn event(partner_id: Uuid, subsystem_id: Uuid, index: usize, run: &str) -> Event {
    let properties = json!({"page": "/products/42", "referrer": "https://example.com/search?q=shoes", "price": 42.5, "currency": "EUR"});
    let context = json!({"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "locale": "en-GB"});
    let now = Utc::now();
    Event {
        event_id: format!("{run}-{index}"),
        partner_id,
        subsystem_id,
        event_type: "page_view".to_string(),
        timestamp: now,
        received_at: now,
        user_id: Some(format!("user_{}", index % 1000)),
        anonymous_id: None,
        properties: JsonObject::parse(properties.to_string()).expect("an object"),
        context: JsonObject::parse(context.to_string()).expect("an object"),
        is_valid: true,
        validation_errors: Vec::new(),
        correlation_id: Uuid::now_v7().to_string(),
        // Client-chosen ids: the full write path, de-duplication claim included.
        enrichment: None,
        client_event_id: true,
    }
}

fn row(event: &Event) -> Row {
    Row {
        partner_id: event.partner_id,
        day: event.timestamp.date_naive(),
        bucket: 0,
        event_time: event.timestamp,
        event_id: event.event_id.clone(),
        event_time_ns: event.timestamp.timestamp_nanos_opt().unwrap_or_default(),
        subsystem_id: event.subsystem_id,
        event_type: event.event_type.clone(),
        user_id: event.user_id.clone(),
        anonymous_id: event.anonymous_id.clone(),
        properties: event.properties.as_str().to_string(),
        context: event.context.as_str().to_string(),
        is_valid: event.is_valid,
        validation_errors: event.validation_errors.clone(),
        correlation_id: event.correlation_id.clone(),
        received_at: event.received_at,
        received_at_ns: event.received_at.timestamp_nanos_opt().unwrap_or_default(),
    }
}

fn report(mode: &str, events: usize, elapsed: Duration) {
    println!(
        "{mode:>7}: {events} events in {:.2}s = {:.0} events/s",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
}

async fn single_inserts(
    session: &Arc<Session>,
    insert: &PreparedStatement,
    rows: Vec<Row>,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    futures::stream::iter(rows)
        .map(|row| async move { session.execute_unpaged(insert, row).await })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(started.elapsed())
}

async fn batch_inserts(
    session: &Arc<Session>,
    insert: &PreparedStatement,
    rows: Vec<Row>,
    rows_per_batch: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let mut chunks: Vec<Vec<Row>> = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        chunks.push(rows.by_ref().take(rows_per_batch).collect());
    }
    let started = Instant::now();
    futures::stream::iter(chunks)
        .map(|chunk| async move {
            let mut batch = Batch::new(BatchType::Unlogged);
            for _ in &chunk {
                batch.append_statement(insert.clone());
            }
            batch.set_is_idempotent(true);
            session.batch(&batch, &chunk).await
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(started.elapsed())
}

async fn claims(
    session: &Arc<Session>,
    claim: &PreparedStatement,
    events: &[Event],
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    futures::stream::iter(events)
        .map(|event| async move {
            let values = (
                event.partner_id,
                event.event_id.as_str(),
                event.timestamp.date_naive(),
                event.timestamp,
                0_i32,
                vec![0_u8; 16],
                0_i32,
            );
            session.execute_unpaged(claim, values).await
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = Config::defaults().cassandra;
    config.nodes = args.nodes.split(',').map(str::to_string).collect();
    config.keyspace = args.keyspace.clone();
    CassandraStore::migrate(&config).await?;
    let session = Arc::new(
        SessionBuilder::new()
            .known_nodes(&config.nodes)
            .build()
            .await
            .context("connect")?,
    );
    let ks = &args.keyspace;
    let markers = vec!["?"; INSERT_COLUMNS.split(',').count()].join(", ");
    let insert = session
        .prepare(format!(
            "INSERT INTO {ks}.events_by_partner_day ({INSERT_COLUMNS}) VALUES ({markers})"
        ))
        .await?;
    let insert_by_subsystem = session
        .prepare(format!(
            "INSERT INTO {ks}.events_by_subsystem_day ({INSERT_COLUMNS}) VALUES ({markers})"
        ))
        .await?;
    let claim = session
        .prepare(format!("INSERT INTO {ks}.event_ids_by_partner (partner_id, event_id, day, event_time, bucket, fingerprint) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"))
        .await?;
    println!(
        "{} events per mode, concurrency {}, {} rows per batch, keyspace {ks} on {}",
        args.events, args.concurrency, args.batch_rows, args.nodes
    );

    let runs = |mode: &str| args.modes.iter().any(|wanted| wanted == mode);
    // Single inserts spread over many partitions (one partner per 100 events).
    if runs("single") {
        let run = Uuid::now_v7().simple().to_string();
        let spread: Vec<Row> = (0..args.events)
            .map(|i| {
                let partner = Uuid::from_u128(u128::from(i as u64 / 100) + 1);
                row(&event(partner, partner, i, &run))
            })
            .collect();
        let elapsed = single_inserts(&session, &insert, spread, args.concurrency).await?;
        report("single", args.events, elapsed);
    }
    // Batches: each batch holds rows of one partition (a hot partner's day).
    let partitioned = |run: &str, first_partner: u128| {
        let partners = args.events / (args.batch_rows * 10) + 1;
        let mut rows: Vec<Row> = (0..args.events)
            .map(|i| {
                let offset = (i / args.batch_rows % partners) as u128;
                let partner = Uuid::from_u128(offset + first_partner);
                row(&event(partner, partner, i, run))
            })
            .collect();
        rows.sort_by_key(|row| row.partner_id);
        rows
    };
    if runs("batch") {
        let run = Uuid::now_v7().simple().to_string();
        let rows = partitioned(&run, 1_000_000);
        let elapsed =
            batch_inserts(&session, &insert, rows, args.batch_rows, args.concurrency).await?;
        report("batch", args.events, elapsed);
    }
    if runs("both") {
        let run = Uuid::now_v7().simple().to_string();
        let rows = partitioned(&run, 2_000_000);
        let copy = partitioned(&run, 2_000_000);
        let started = Instant::now();
        let half = args.concurrency.div_ceil(2);
        futures::try_join!(
            batch_inserts(&session, &insert, rows, args.batch_rows, half),
            batch_inserts(&session, &insert_by_subsystem, copy, args.batch_rows, half),
        )?;
        report("both", args.events, started.elapsed());
    }
    if runs("claim") || runs("store") {
        let run = Uuid::now_v7().simple().to_string();
        let partner = Uuid::now_v7();
        let events: Vec<Event> = (0..args.events)
            .map(|i| event(partner, partner, i, &run))
            .collect();
        if runs("claim") {
            let elapsed = claims(&session, &claim, &events, args.concurrency).await?;
            report("claim", args.events, elapsed);
        }

        // The whole store write path: the keyspace has no partner row, so no TTL lookups hit.
        if runs("store") {
            let store = CassandraStore::open(&config).await?;
            let run = Uuid::now_v7().simple().to_string();
            let events: Vec<Event> = (0..args.events)
                .map(|i| event(partner, Uuid::from_u128(7), i, &run))
                .collect();
            let started = Instant::now();
            futures::stream::iter(events.chunks(args.store_batch))
                .map(|chunk| store.write_events(chunk))
                .buffer_unordered(args.writers)
                .try_collect::<Vec<_>>()
                .await?;
            report("store", args.events, started.elapsed());
        }
    }

    if args.drop {
        CassandraStore::drop_keyspace(&config).await?;
    }
    Ok(())
}
