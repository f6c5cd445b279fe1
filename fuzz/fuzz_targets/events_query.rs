//! `GET /api/v1/events?…`: the query string, and its cursor through both stores.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volcanion::fuzzing::events_query(data));
