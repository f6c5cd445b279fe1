//! A `content-encoding: gzip` body through the decompression layer and `BodyGuard::read`:
//! what the guard accepts is what a reference decoder (flate2) reads, and a body that
//! decompresses past the limit is refused. The reference reads one gzip member, as
//! tower-http's request decompression does (it never sets `multiple_members` for gzip):
//! whatever follows the first member is ignored.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let outcome = volcanion::fuzzing::gzip_body(data);
    let limit = volcanion::fuzzing::gzip_body_limit();
    let mut reference = Vec::new();
    let reference_read = flate2::read::GzDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut reference);
    if let (Ok(body), Ok(_)) = (&outcome, &reference_read) {
        assert_eq!(body.as_ref(), reference.as_slice(), "both decoders agree");
    }
    if reference.len() > limit {
        assert!(outcome.is_err(), "a body past the limit is refused");
    }
});
