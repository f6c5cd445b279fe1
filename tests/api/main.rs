//! The HTTP integration suite: the real router on an ephemeral port, a fresh store per
//! test, driven over real HTTP (and, for restarts, the real binary).

mod cassandra_breakdowns;
mod cassandra_migrate;
mod cassandra_rollups;
mod cassandra_store;
mod dashboard;
mod enrich;
mod enrichment_stored;
mod hardening;
mod hardening_access;
mod hardening_cardinality;
mod hardening_exposure;
mod hardening_ids;
mod hardening_keys;
mod hardening_operator;
mod hardening_reads;
mod helpers;
mod hooked_store;
mod ingest;
mod keys;
mod layers;
mod load_scenarios;
mod management;
mod openapi;
mod operations;
mod own_redis;
mod process;
mod reading;
mod redis;
mod reports;
mod restart;
mod schemas;
mod segment;
mod segment_sdks;
mod slow_clients;
mod traces;
