//! The source tree's layers, checked: every `crate::` path in a file under
//! `src/` names a module of its own layer or one below, and two modules of
//! the same layer do not name each other. With that, no import runs upward
//! and no two layers import each other in a circle; the README's picture of
//! the layers is this table.

use std::path::{Path, PathBuf};

/// Each top-level module of the crate and its layer, lowest first.
const LAYERS: &[(&str, u8)] = &[
    ("metrics", 1),
    ("storage", 2),
    ("http", 3),
    ("ids", 4),
    ("ingest", 4),
    ("config", 5),
    ("server", 6),
    ("app", 7),
    ("testing", 8),
];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names as `crate::<module>`, leaving
/// out comments.
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.push(name);
        }
        rest = after;
    }
    found
}

#[test]
fn no_module_names_one_above_it_or_beside_it() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top =
            relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
        // The crate root and the binary sit above every layer.
        let Some(own) = layer_of(&top) else {
            assert!(["lib", "main"].contains(&top.as_str()), "{} is in no layer: add it to LAYERS", relative.display());
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for module in named_modules(line) {
                if module == top {
                    continue;
                }
                match layer_of(&module) {
                    Some(layer) if layer < own => {}
                    Some(layer) => wrong.push(format!(
                        "{}:{}: {top} (layer {own}) names crate::{module} (layer {layer})",
                        relative.display(),
                        n + 1
                    )),
                    // Names re-exported at the root (`crate::Config`) count as the root's.
                    None => wrong.push(format!(
                        "{}:{}: names crate::{module}, which is no layer",
                        relative.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports that break the layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_a_path_in_code_but_not_in_a_comment() {
    assert_eq!(named_modules("use crate::http::error::AppError; // crate::app"), ["http"]);
    assert_eq!(named_modules("let x = crate::storage::postgres::describe(e) + crate::ids::now();"), ["storage", "ids"]);
    assert!(named_modules("//! see crate::app").is_empty());
}
