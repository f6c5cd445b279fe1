//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the entry points
//! the fuzz targets call (`volcanion::fuzzing`), so CI checks every input the fuzzers
//! kept, with their invariants, without building the fuzz crate (fuzz/README.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use volcanion::fuzzing;

/// What a fuzz target runs on one input.
type Replay = fn(&[u8]);

/// Every fuzz target, with its replay.
const TARGETS: [(&str, Replay); 7] = [
    ("native_event", fuzzing::native_event),
    ("batch", fuzzing::batch),
    ("legacy", fuzzing::legacy),
    ("segment", fuzzing::segment),
    ("gzip_body", gzip_body),
    ("events_query", fuzzing::events_query),
    ("store_cursor", store_cursor),
];

/// What `fuzz/fuzz_targets/gzip_body.rs` checks: the guard reads what flate2 reads, and a
/// body decompressing past the limit is refused. Both read only the first gzip member.
fn gzip_body(data: &[u8]) {
    let outcome = fuzzing::gzip_body(data);
    let limit = fuzzing::gzip_body_limit();
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
}

fn store_cursor(data: &[u8]) {
    fuzzing::store_cursor(data);
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn corpus_of(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn names_in(dir: &Path, keep: impl Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .filter_map(|entry| keep(&entry.expect("a directory entry").path()))
        .collect();
    names.sort();
    names
}

#[test]
fn every_fuzz_target_has_a_corpus_and_a_replay() {
    let mut replayed: Vec<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    replayed.sort();
    let targets = names_in(&fuzz_dir().join("fuzz_targets"), |path| {
        (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_string))?
    });
    let corpora = names_in(&fuzz_dir().join("corpus"), |path| {
        path.is_dir()
            .then(|| path.file_name()?.to_str().map(str::to_string))?
    });
    assert_eq!(
        targets, replayed,
        "fuzz/fuzz_targets vs this test's TARGETS"
    );
    assert_eq!(corpora, replayed, "fuzz/corpus vs this test's TARGETS");
}

#[test]
fn every_corpus_input_keeps_its_targets_invariants() {
    for (target, check) in TARGETS {
        let files = corpus_of(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        for file in files {
            let input = std::fs::read(&file).expect("a corpus file");
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(
                outcome.is_ok(),
                "{target}: {} breaks an invariant (see the panic above)",
                file.display()
            );
        }
    }
}

/// The seeds hold valid cursors of both stores, so the replay reaches the decoders' success
/// paths (and a change of either cursor layout shows up here, as a seed to renew).
#[test]
fn the_cursor_corpus_holds_cursors_each_store_accepts() {
    let mut accepted = fuzzing::CursorAcceptance::default();
    for file in corpus_of("store_cursor") {
        let by_file = fuzzing::store_cursor(&std::fs::read(&file).expect("a corpus file"));
        accepted.embedded |= by_file.embedded;
        accepted.cassandra |= by_file.cassandra;
    }
    assert_eq!(
        accepted,
        fuzzing::CursorAcceptance {
            embedded: true,
            cassandra: true
        }
    );
}
