//! `POST /api/events/ingest`: `apiKey` and the legacy property fields, then the event.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volcanion::fuzzing::legacy(data));
