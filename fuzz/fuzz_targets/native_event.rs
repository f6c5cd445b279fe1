//! `POST /api/v1/events`: a body split into fields and validated (`volcanion::fuzzing::native_event`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| volcanion::fuzzing::native_event(data));
