//! Segment's wire formats: `POST /v1/batch` envelopes and single-call messages.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volcanion::fuzzing::segment(data));
