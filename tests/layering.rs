//! The proxy crate's modules depend on each other one way: no cycle among the top-level
//! modules of `proxy/src` (a file `x.rs` or a folder `x/`), judged from the `crate::x` paths
//! each one names. A cycle is what makes a module impossible to read, test or change alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module (but `main`) and the other top-level modules it names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read proxy/src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let top = top_module(src, file);
        if top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        // The code without comments, as one line: a `use crate::{..}` group rustfmt wrapped
        // over several lines is read whole.
        let code: String = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        let named = graph.entry(top.clone()).or_default();
        named.extend(crate_paths(&code).filter(|m| *m != top));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for named in graph.values_mut() {
        named.retain(|m| modules.contains(m));
    }
    graph
}

fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a line names: `crate::x` and `use crate::{x, y::z}`.
fn crate_paths(code: &str) -> impl Iterator<Item = String> + '_ {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    code.match_indices("crate::").flat_map(move |(at, _)| {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(ident)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
            None => vec![ident(rest)],
        }
    })
}

/// Modules on a cycle: those that can reach themselves.
fn on_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
        if seen.contains(start) {
            let back: Vec<String> = graph[start]
                .iter()
                .filter(|m| {
                    let mut reach = BTreeSet::new();
                    let mut todo = vec![*m];
                    while let Some(x) = todo.pop() {
                        if reach.insert(x.clone()) {
                            todo.extend(graph.get(x).into_iter().flatten());
                        }
                    }
                    reach.contains(start)
                })
                .cloned()
                .collect();
            found.push((start.clone(), back));
        }
    }
    found
}

#[test]
fn proxy_modules_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(graph.len() > 20, "read the modules: {:?}", graph.keys());
    assert!(
        graph["http_proxy"].contains("runtime"),
        "the reader sees `crate::` paths: {:?}",
        graph["http_proxy"]
    );
    let cycles = on_cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules on a cycle (module -> the modules it names that lead back to it): {cycles:#?}"
    );
}

#[test]
fn a_cycle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", &["b"][..]),
        ("b", &["c"][..]),
        ("c", &["a"][..]),
        ("d", &["a"][..]),
    ]
    .into_iter()
    .map(|(m, named)| (m.into(), named.iter().map(|s| s.to_string()).collect()))
    .collect();
    let on: Vec<String> = on_cycles(&graph).into_iter().map(|(m, _)| m).collect();
    assert_eq!(on, ["a", "b", "c"]);
    let paths: Vec<String> = crate_paths("use crate::{feedback::X, lifecycle};").collect();
    assert_eq!(paths, ["feedback", "lifecycle"]);
    let wrapped: Vec<String> = crate_paths("use crate::{\n    a::B,\n    c,\n};").collect();
    assert_eq!(wrapped, ["a", "c"]);
}
