//! A decoded cursor, as the embedded and the Cassandra stores read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    volcanion::fuzzing::store_cursor(data);
});
