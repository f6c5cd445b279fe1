//! The floors of the house, checked: a lower floor must not import a higher one.
//!
//! `src/lib.rs` opens with the map (http → manage/ingest/auth/reports →
//! limits/tenants/schemas → store → rollups/model, redis beside them; nothing below
//! `http` imports axum), and docs/ARCHITECTURE.md draws it. This test reads every file
//! under `src/`, test modules included, and fails when a top-level module names
//! (`crate::x`, `use crate::{x, …}`) a module its row of `MAY_USE` does not list, or when
//! a module other than `http` names axum. `src/main.rs` (the binary) and `src/lib.rs` (the
//! map and the module declarations) are not checked; the wiring lives in `app`, which may
//! use every floor.
//!
//! An arrow the table lacks is a design change: add it here together with the map and
//! ARCHITECTURE.md. A new top-level module fails until it has a row.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The ground floor every module may use: settings, the closed error kinds, the metric
/// and tracing names, and the read-through cache.
const GROUND: &[&str] = &["config", "error", "telemetry", "cache"];

/// Each top-level module and the modules it may name, besides `GROUND` (whose own rows
/// say what they may use among themselves).
const MAY_USE: &[(&str, &[&str])] = &[
    // The composition: builds every service and wires them together, so it may use
    // every floor (it names no axum: the router is `http`'s).
    (
        "app",
        &[
            "http",
            "manage",
            "ingest",
            "auth",
            "reports",
            "lifecycle",
            "limits",
            "tenants",
            "schemas",
            "enrich",
            "store",
            "rollups",
            "people",
            "model",
            "redis",
        ],
    ),
    // The HTTP adapter: routes, extractors, wire formats, problem+json.
    (
        "http",
        &[
            "manage",
            "ingest",
            "auth",
            "reports",
            "export",
            "lifecycle",
            "limits",
            "tenants",
            "schemas",
            "store",
            "rollups",
            "people",
            "model",
            "redis",
        ],
    ),
    // The use cases. Ingestion and management act for an authenticated caller, so they
    // may use `auth`; no other arrow runs between these five.
    (
        "manage",
        &[
            "auth", "limits", "tenants", "schemas", "enrich", "store", "rollups", "people",
            "model", "redis",
        ],
    ),
    (
        "ingest",
        &[
            "auth", "limits", "tenants", "schemas", "enrich", "store", "rollups", "people",
            "model", "redis",
        ],
    ),
    (
        "auth",
        &[
            "limits", "tenants", "schemas", "store", "rollups", "people", "model", "redis",
        ],
    ),
    (
        "reports",
        &[
            "limits", "tenants", "schemas", "store", "rollups", "people", "model", "redis",
        ],
    ),
    // The data lifecycle: erasure jobs find a person's hours through the people index
    // reports read (the one arrow between use cases), and the audit log.
    (
        "lifecycle",
        &[
            "reports", "tenants", "store", "rollups", "people", "model", "redis",
        ],
    ),
    // Export: the store's pages, encoded as they come.
    ("export", &["store", "people", "model"]),
    // The services the use cases share. Event structures belong to a subsystem, so
    // `schemas` may use `tenants`.
    ("limits", &["store", "rollups", "people", "model", "redis"]),
    ("tenants", &["store", "rollups", "people", "model", "redis"]),
    (
        "schemas",
        &["tenants", "store", "rollups", "people", "model", "redis"],
    ),
    // Storage: the traits over `model`, and the rollups it keeps.
    ("store", &["rollups", "people", "model"]),
    ("rollups", &["people", "model"]),
    // People: who an event belongs to, funnels and retention (pure computation).
    ("people", &["model"]),
    // Enrichment at ingest: pure computation over the event's own fields.
    ("enrich", &["model"]),
    ("model", &[]),
    // Beside the store: the optional shared Redis.
    ("redis", &["model"]),
    // The ground floor, each row naming what it uses of the others.
    ("config", &[]),
    ("error", &[]),
    ("telemetry", &["config"]),
    ("cache", &["config", "telemetry"]),
    // The one public door of the fuzz entry points, which live beside what they fuzz.
    ("fuzzing", &["http", "ingest", "store"]),
];

/// The modules that may name axum: the HTTP adapter alone.
const MAY_USE_AXUM: &[&str] = &["http"];

/// No source file holds more lines than this before its `#[cfg(test)]` module.
const MAX_FILE_LINES: usize = 400;
/// No handler (an `async fn` under `src/http/` taking axum's `State`) is longer than this.
const MAX_HANDLER_LINES: usize = 40;

#[test]
fn no_module_imports_a_floor_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut unknown_modules = BTreeSet::new();
    let mut violations = Vec::new();
    for file in rust_files(&src) {
        let relative = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let module = top_level_module(&relative);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(allowed) = allowed_for(&module) else {
            unknown_modules.insert(module);
            continue;
        };
        let text = fs::read_to_string(&file).expect("source file is UTF-8");
        let code = code_only(&text);
        for (line, named) in crate_references(&code) {
            if named == module || allowed.contains(named.as_str()) {
                continue;
            }
            violations.push(format!(
                "src/{relative}:{line}: `{module}` names `crate::{named}`, a floor it may not use"
            ));
        }
        if !MAY_USE_AXUM.contains(&module.as_str()) {
            for line in lines_naming(&code, "axum") {
                violations.push(format!(
                    "src/{relative}:{line}: `{module}` names axum; only `http` may"
                ));
            }
        }
    }
    assert!(
        unknown_modules.is_empty(),
        "top-level modules without a row in MAY_USE: {unknown_modules:?}"
    );
    assert!(
        violations.is_empty(),
        "imports against the floors of src/lib.rs's map:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_source_file_is_longer_than_400_lines_outside_its_tests() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let too_long: Vec<String> = rust_files(&src)
        .into_iter()
        .filter_map(|file| {
            let text = fs::read_to_string(&file).expect("source file is UTF-8");
            let lines = lines_before_tests(&text);
            (lines > MAX_FILE_LINES).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(
        too_long.is_empty(),
        "files over {MAX_FILE_LINES} lines before their tests (split along a seam):\n{}",
        too_long.join("\n")
    );
}

#[test]
fn no_handler_is_longer_than_40_lines() {
    let http = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut too_long = Vec::new();
    for file in rust_files(&http) {
        let text = fs::read_to_string(&file).expect("source file is UTF-8");
        for (name, lines) in handler_lengths(&text) {
            if lines > MAX_HANDLER_LINES {
                too_long.push(format!("{}: {name} has {lines} lines", file.display()));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "handlers over {MAX_HANDLER_LINES} lines (move the work into its use case):\n{}",
        too_long.join("\n")
    );
}

#[test]
fn sizes_are_counted_before_the_tests_and_per_handler() {
    let text = "use x;\n\n#[cfg(test)]\nmod tests {\n}\n";
    assert_eq!(lines_before_tests(text), 2);
    let handlers = "pub async fn list(\n    State(state): State<Arc<AppState>>,\n) -> R {\n    one();\n    two()\n}\n\nasync fn helper(x: u8) {\n}\n";
    assert_eq!(handler_lengths(handlers), [("list".to_string(), 6)]);
}

/// Lines of a file before its `#[cfg(test)]` module (all of them when it has none).
fn lines_before_tests(text: &str) -> usize {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .count()
}

/// Each top-level `async fn` taking axum's `State` (a handler): its name and its lines,
/// signature included, up to its closing brace at the start of a line.
fn handler_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut handlers = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(rest) = line
            .strip_prefix("pub async fn ")
            .or_else(|| line.strip_prefix("async fn "))
        else {
            continue;
        };
        let Some(length) = lines[start..].iter().position(|line| *line == "}") else {
            continue;
        };
        let function = &lines[start..=start + length];
        let signature_end = function
            .iter()
            .position(|line| line.ends_with('{'))
            .unwrap_or(0);
        if function[..=signature_end]
            .iter()
            .any(|line| line.contains("State<"))
        {
            let name = rest.split(['(', '<']).next().unwrap_or_default();
            handlers.push((name.to_string(), length + 1));
        }
    }
    handlers
}

#[test]
fn references_are_found_in_paths_and_groups_but_not_in_comments_or_strings() {
    let text = r#"
use crate::store::Store;
use crate::{
    auth::Caller,
    model::{Event, Partner},
};
// use crate::http::Router;
/* crate::manage */
let url = "crate::reports";
let quote = '"';
let value = crate::limits::check();
let other = volcanion_crate::ignored;
"#;
    let code = code_only(text);
    let named: Vec<(usize, String)> = crate_references(&code);
    let expected = [(2, "store"), (4, "auth"), (5, "model"), (11, "limits")]
        .map(|(line, module)| (line, module.to_string()));
    assert_eq!(named, expected);
    assert_eq!(
        lines_naming(&code_only("use axum::Router; // axum"), "axum"),
        [1]
    );
    assert!(lines_naming(&code_only("let text = \"axum::Router\";"), "axum").is_empty());
}

fn allowed_for(module: &str) -> Option<BTreeSet<&'static str>> {
    let (_, own) = MAY_USE.iter().find(|(name, _)| *name == module)?;
    let mut allowed: BTreeSet<&str> = own.iter().copied().collect();
    if !GROUND.contains(&module) {
        allowed.extend(GROUND.iter().copied());
    }
    Some(allowed)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("src is readable")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// `config.rs` and `config/sources.rs` both belong to `config`.
fn top_level_module(relative: &str) -> String {
    let first = relative.split('/').next().unwrap_or(relative);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// The source with comments, string and character literals blanked out (newlines kept,
/// so line numbers still hold): a path in a doc comment or a log message is no import.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let mut index = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while index < chars.len() {
        let rest = &chars[index..];
        let skipped = if rest.starts_with(&['/', '/']) {
            rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            block_comment_length(rest)
        } else if rest[0] == '"' {
            string_length(rest, 1, 0)
        } else if rest[0] == 'r'
            && raw_string_hashes(rest).is_some()
            && !follows_identifier(&chars, index)
        {
            let hashes = raw_string_hashes(rest).expect("checked");
            string_length(rest, hashes + 2, hashes)
        } else if rest[0] == '\'' {
            char_literal_length(rest)
        } else {
            0
        };
        if skipped == 0 {
            code.push(rest[0]);
            index += 1;
        } else {
            code.extend(rest[..skipped].iter().map(|&c| blank(c)));
            index += skipped;
        }
    }
    code
}

fn follows_identifier(chars: &[char], index: usize) -> bool {
    index > 0 && is_identifier_char(chars[index - 1])
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Nested block comments, as Rust allows them.
fn block_comment_length(rest: &[char]) -> usize {
    let mut depth = 0;
    let mut index = 0;
    while index < rest.len() {
        if rest[index..].starts_with(&['/', '*']) {
            depth += 1;
            index += 2;
        } else if rest[index..].starts_with(&['*', '/']) {
            depth -= 1;
            index += 2;
            if depth == 0 {
                return index;
            }
        } else {
            index += 1;
        }
    }
    rest.len()
}

/// `r"…"` or `r#"…"#`: the number of `#`s, or `None` if this `r` starts no raw string.
fn raw_string_hashes(rest: &[char]) -> Option<usize> {
    let hashes = rest[1..].iter().take_while(|&&c| c == '#').count();
    (rest.get(1 + hashes) == Some(&'"')).then_some(hashes)
}

/// A string from its opening quote (`open` characters long) to its closing quote and
/// `hashes` `#`s; escapes count only in plain strings.
fn string_length(rest: &[char], open: usize, hashes: usize) -> usize {
    let raw = open > 1 || rest[0] == 'r';
    let mut index = open;
    while index < rest.len() {
        match rest[index] {
            '\\' if !raw => index += 2,
            '"' if rest[index + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes =>
            {
                return index + 1 + hashes;
            }
            _ => index += 1,
        }
    }
    rest.len()
}

/// `'x'` and `'\n'` are characters; `'a` in `&'a str` is a lifetime (left as code).
fn char_literal_length(rest: &[char]) -> usize {
    if rest.get(1) == Some(&'\\') {
        return rest[2..]
            .iter()
            .position(|&c| c == '\'')
            .map_or(0, |end| end + 3);
    }
    if rest.get(2) == Some(&'\'') { 3 } else { 0 }
}

/// Each module named after `crate::`, directly or in a `crate::{…}` group, with its line.
fn crate_references(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for start in occurrences(code, "crate::") {
        let after = code[start + "crate::".len()..].trim_start();
        let position = code.len() - after.len();
        if after.starts_with('{') {
            found.extend(group_heads(code, position + 1));
        } else if let Some(name) = leading_identifier(after) {
            found.push((line_of(code, position), name.to_string()));
        }
    }
    found
}

/// The first identifier of each item in a `{…}` group starting at `start` (after `{`).
fn group_heads(code: &str, start: usize) -> Vec<(usize, String)> {
    let mut heads = Vec::new();
    let mut depth = 1;
    let mut expecting_head = true;
    let mut index = start;
    while index < code.len() && depth > 0 {
        let rest = &code[index..];
        let c = rest.chars().next().expect("not at the end");
        if expecting_head && is_identifier_char(c) {
            let name = leading_identifier(rest).expect("starts with one");
            heads.push((line_of(code, index), name.to_string()));
            expecting_head = false;
            index += name.len();
            continue;
        }
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 1 => expecting_head = true,
            _ => {}
        }
        index += c.len_utf8();
    }
    heads
}

fn leading_identifier(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !is_identifier_char(c))
        .unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// Where `word::` appears as a path's first segment (not as the end of another name).
fn occurrences<'a>(code: &'a str, pattern: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(pattern)
        .map(|(start, _)| start)
        .filter(move |&start| {
            code[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !is_identifier_char(c))
        })
}

fn lines_naming(code: &str, crate_name: &str) -> Vec<usize> {
    let path = format!("{crate_name}::");
    let mut lines: Vec<usize> = occurrences(code, &path)
        .map(|start| line_of(code, start))
        .collect();
    lines.dedup();
    lines
}

fn line_of(code: &str, position: usize) -> usize {
    code[..position].matches('\n').count() + 1
}
