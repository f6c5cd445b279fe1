//! `POST /api/v1/events/batch`: the envelope, its count limit, then every event.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volcanion::fuzzing::batch(data));
