//! The library's modules form layers, and a module uses only modules of
//! lower layers (docs/architecture.md): so the import graph has no circle,
//! and a change to a layer cannot reach below it. Read from the sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first; a module may use the modules of any layer
/// below its own, none of its own or above.
const LAYERS: &[&[&str]] = &[
    &["util", "stats", "cancel", "xattr"],
    &["backend", "progress", "retention"],
    &["error"],
    &["catalog"],
    &["repo", "filter"],
    &["sync", "session", "restore", "pipeline", "gc", "audit"],
    &["source"],
    &["ops"],
    &["daemon"],
];

/// The front end's modules (the `cairn` binary), which may use only the
/// library's public items.
const FRONT_END: &[&str] = &["main.rs", "cli.rs", "cli", "logging.rs"];

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(path) {
        for e in dir.filter_map(Result::ok) {
            out.extend(rust_files(&e.path()));
        }
    }
    out.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    out
}

/// The top-level modules a module's code names as `crate::NAME`
/// (comments aside).
fn uses(src: &Path, module: &str) -> BTreeSet<String> {
    let mut files = rust_files(&src.join(format!("{module}.rs")));
    files.extend(rust_files(&src.join(module)));
    let mut used = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // The crate root re-exports the error module's items.
                let name = match name.as_str() {
                    "Error" | "Result" | "Context" | "Action" => "error".to_owned(),
                    _ => name,
                };
                if !name.is_empty() && name != module {
                    used.insert(name);
                }
            }
        }
    }
    used
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().map(move |m| (*m, i)))
        .collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let placed: BTreeSet<&str> = layer_of.keys().copied().collect();
    assert_eq!(declared, placed, "every module of lib.rs has a layer here");
    let mut wrong = Vec::new();
    for (module, layer) in &layer_of {
        for used in uses(&src, module) {
            match layer_of.get(used.as_str()) {
                Some(l) if l < layer => {}
                Some(_) => wrong.push(format!("{module} uses {used}, which is not below it")),
                None => wrong.push(format!("{module} uses crate::{used}, not a module")),
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_front_end_reaches_no_backend() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for part in FRONT_END {
        for f in rust_files(&src.join(part)) {
            let text = std::fs::read_to_string(&f).expect("read");
            for (n, line) in text.lines().enumerate() {
                // Settings of the backends are fine; a handle to one is not.
                if ["DynBackend", ".backend", "backend::open", "Backend for"]
                    .iter()
                    .any(|p| line.contains(p))
                {
                    found.push(format!("{}:{}: {line}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
