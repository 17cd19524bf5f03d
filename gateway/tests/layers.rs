//! The gateway's top-level modules depend one way, from the bottom up, as
//! `src/lib.rs` lists them: no import cycle between them, and no module
//! reaching up a layer. Read from the sources (every `crate::module` path
//! outside comments, tests included), so a new `use` that breaks the order
//! fails here, with the file that added it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module, as in `src/lib.rs`. A module may use its
/// own layer's modules (without a cycle) and any layer below.
const LAYERS: &[(&str, u8)] = &[
    ("config", 1),
    ("clock", 1),
    ("metrics", 1),
    ("domain", 1),
    ("telemetry", 1),
    ("memory", 1),
    ("open_files", 1),
    ("shutdown", 1),
    ("recent_cache", 1),
    ("deflate", 1),
    ("store", 2),
    ("redis", 2),
    ("bus", 2),
    ("presence", 2),
    ("user_conns", 2),
    ("user_status", 2),
    ("history", 2),
    ("limits", 2),
    ("auth", 2),
    ("admission", 2),
    ("error", 2),
    ("conn", 3),
    ("hub", 4),
    ("node", 5),
    ("state", 6),
    ("ws", 7),
    ("routes", 7),
    ("serve", 8),
    ("startup", 8),
    ("cli", 8),
];

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

/// The source without `//` comments (doc links name modules without
/// depending on them).
fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module a file names: `crate::x` and `use crate::{x, y}`.
fn modules_named(code: &str, modules: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                named.insert(ident(part.trim()));
            }
        } else {
            named.insert(ident(rest));
        }
    }
    named.retain(|m| modules.contains(m.as_str()));
    named
}

/// module -> (module it uses -> a file that does)
fn dependencies() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
        if top == "lib" || top == "main" {
            continue;
        }
        assert!(
            modules.contains(top),
            "src/{rel}: module `{top}` has no layer in tests/layers.rs (and src/lib.rs's list)"
        );
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        for used in modules_named(&code, &modules) {
            if used != top {
                deps.entry(top.to_owned())
                    .or_default()
                    .entry(used)
                    .or_insert_with(|| format!("src/{rel}"));
            }
        }
    }
    deps
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut upward = Vec::new();
    for (module, uses) in dependencies() {
        for (used, file) in uses {
            if layer[used.as_str()] > layer[module.as_str()] {
                upward.push(format!(
                    "{module} (layer {}) uses {used} (layer {}) in {file}",
                    layer[module.as_str()],
                    layer[used.as_str()]
                ));
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

#[test]
fn there_is_no_import_cycle_between_top_level_modules() {
    let deps = dependencies();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit<'a>(
        module: &'a str,
        deps: &'a BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|m| *m == module) {
            let mut cycle: Vec<String> = path[at..].iter().map(|m| m.to_string()).collect();
            cycle.push(module.to_owned());
            let files: Vec<String> = path[at..]
                .iter()
                .zip(cycle.iter().skip(1))
                .map(|(from, to)| format!("{from} -> {to}: {}", deps[*from][to]))
                .collect();
            return Some(format!("{}\n{}", cycle.join(" -> "), files.join("\n")));
        }
        if !done.insert(module) {
            return None;
        }
        path.push(module);
        for used in deps.get(module).into_iter().flat_map(|d| d.keys()) {
            if let Some(cycle) = visit(used, deps, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in deps.keys() {
        if let Some(cycle) = visit(module, &deps, &mut Vec::new(), &mut done) {
            panic!("import cycle: {cycle}");
        }
    }
}
