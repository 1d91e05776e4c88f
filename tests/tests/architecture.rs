//! The agent's layout, held to docs/architecture.md: this test reads every `use` and path
//! of agent/src (tests aside), resolves `crate::` and `super::` paths to the modules they
//! name, and checks that
//! - each top-level module imports exactly the modules the doc's table lists for it;
//! - every import goes to a lower layer (the table's first column);
//! - no two modules below one top-level module import each other, directly or not.
//!
//! No root, no lab: it reads files only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every module of the crate, by path (`["report", "bfd"]`), with its source (tests cut).
fn modules(root: &Path) -> BTreeMap<ModPath, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().with_extension("");
            let mut parts: ModPath = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().map(String::as_str) == Some("mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let src = std::fs::read_to_string(&p).unwrap();
            let src = match src.find("#[cfg(test)]") {
                Some(i) => &src[..i],
                None => &src[..],
            };
            let code: String = src
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(parts, code);
        }
    }
    out
}

fn ident(s: &[u8], i: usize) -> Option<(String, usize)> {
    let start = i;
    let mut j = i;
    while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
        j += 1;
    }
    (j > start && !s[start].is_ascii_digit())
        .then(|| (String::from_utf8_lossy(&s[start..j]).into_owned(), j))
}

/// The paths of one path tree starting at `i` (`a::b::{c, d::e}` gives `a::b::c`, `a::b::d::e`).
fn tree(s: &[u8], mut i: usize) -> (Vec<ModPath>, usize) {
    let mut out = Vec::new();
    let mut seg: ModPath = Vec::new();
    loop {
        if s.get(i) != Some(&b'{') {
            let Some((id, j)) = ident(s, i) else { break };
            seg.push(id);
            i = j;
            if s.get(i..i + 2) != Some(b"::") {
                break;
            }
            i += 2;
        }
        {
            if s.get(i) == Some(&b'{') {
                i += 1;
                loop {
                    while i < s.len() && matches!(s[i], b' ' | b'\n' | b'\t' | b',') {
                        i += 1;
                    }
                    if i >= s.len() || s[i] == b'}' {
                        return (out, i + 1);
                    }
                    let (sub, j) = tree(s, i);
                    for p in sub {
                        out.push(seg.iter().cloned().chain(p).collect());
                    }
                    if j == i {
                        i += 1;
                    } else {
                        i = j;
                    }
                }
            }
        }
    }
    out.push(seg);
    (out, i)
}

/// The modules `path`'s code names, each resolved to the deepest module that exists.
fn imports(path: &ModPath, code: &str, known: &BTreeSet<ModPath>) -> BTreeSet<ModPath> {
    let s = code.as_bytes();
    let mut out = BTreeSet::new();
    for kw in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(k) = code[from..].find(kw) {
            let at = from + k;
            from = at + kw.len();
            if at > 0 && (s[at - 1].is_ascii_alphanumeric() || s[at - 1] == b'_') {
                continue;
            }
            let base: ModPath = if kw == "crate::" {
                Vec::new()
            } else {
                path[..path.len().saturating_sub(1)].to_vec()
            };
            let (paths, _) = tree(s, from);
            for p in paths {
                let mut b = base.clone();
                let mut p = p.as_slice();
                while p.first().map(String::as_str) == Some("super") {
                    b.pop();
                    p = &p[1..];
                }
                let full: ModPath = b.into_iter().chain(p.iter().cloned()).collect();
                if let Some(m) = (1..=full.len())
                    .rev()
                    .map(|k| full[..k].to_vec())
                    .find(|m| known.contains(m))
                {
                    out.insert(m);
                }
            }
        }
    }
    out
}

/// The doc's table: module -> (layer, documented imports).
fn documented() -> BTreeMap<String, (u32, BTreeSet<String>)> {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let tick = |c: &str| -> Vec<String> {
        c.split('`')
            .skip(1)
            .step_by(2)
            .map(|x| x.to_string())
            .collect()
    };
    let mut out = BTreeMap::new();
    for l in doc.lines() {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        if cells.len() < 6 {
            continue;
        }
        let names = tick(cells[2]);
        let (Ok(layer), [name]) = (cells[1].parse::<u32>(), names.as_slice()) else {
            continue;
        };
        let imports = tick(cells[4]).into_iter().collect();
        out.insert(name.clone(), (layer, imports));
    }
    assert!(
        out.len() >= 10,
        "docs/architecture.md has no module table (| layer | `module` | job | `imports` |)"
    );
    out
}

/// The top-level module graph of agent/src, and the graph of the modules one level down.
fn graph() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<ModPath, BTreeSet<ModPath>>,
) {
    let mods = modules(&repo().join("agent/src"));
    let known: BTreeSet<ModPath> = mods.keys().cloned().collect();
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut second: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (path, code) in &mods {
        top.entry(path[0].clone()).or_default();
        for m in imports(path, code, &known) {
            if m[0] != path[0] {
                top.get_mut(&path[0]).unwrap().insert(m[0].clone());
            } else if path.len() >= 2 && m.len() >= 2 && m[1] != path[1] {
                second
                    .entry(path[..2].to_vec())
                    .or_default()
                    .insert(m[..2].to_vec());
            }
        }
    }
    (top, second)
}

fn cycle<N: Ord + Clone + std::fmt::Debug>(g: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(
        n: &N,
        g: &BTreeMap<N, BTreeSet<N>>,
        on: &mut Vec<N>,
        done: &mut BTreeSet<N>,
    ) -> Option<Vec<N>> {
        if let Some(i) = on.iter().position(|x| x == n) {
            return Some(on[i..].to_vec());
        }
        if done.contains(n) {
            return None;
        }
        on.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, on, done) {
                return Some(c);
            }
        }
        on.pop();
        done.insert(n.clone());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

#[test]
fn the_code_has_the_layers_the_doc_gives() {
    let (top, _) = graph();
    let doc = documented();
    let mut errors = Vec::new();
    for (m, imps) in &top {
        let Some((layer, documented)) = doc.get(m) else {
            errors.push(format!(
                "agent/src/{m} is not in docs/architecture.md's table"
            ));
            continue;
        };
        if imps != documented {
            errors.push(format!(
                "{m} imports {imps:?}; docs/architecture.md says {documented:?}"
            ));
        }
        for i in imps {
            match doc.get(i) {
                Some((l, _)) if l < layer => {}
                Some((l, _)) => errors.push(format!(
                    "{m} (layer {layer}) imports {i} (layer {l}): imports go down only"
                )),
                None => errors.push(format!("{m} imports {i}, which the doc does not list")),
            }
        }
    }
    for m in doc.keys() {
        if !top.contains_key(m) {
            errors.push(format!(
                "docs/architecture.md lists {m}, which agent/src does not have"
            ));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(cycle(&top).is_none(), "import circle: {:?}", cycle(&top));
}

#[test]
fn no_module_circles_inside_a_layer() {
    let (_, second) = graph();
    assert!(
        cycle(&second).is_none(),
        "import circle between modules: {:?}",
        cycle(&second)
    );
}

#[test]
fn the_resolver_sees_grouped_and_relative_imports() {
    let known: BTreeSet<ModPath> = [
        vec!["a"],
        vec!["b"],
        vec!["b", "c"],
        vec!["d"],
        vec!["a", "x"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    let code =
        "use crate::{b::c::Thing, d};\nuse super::super::b::Z;\nfn f() { crate::a::x::g(); }";
    let got = imports(&["a", "x", "y"].map(String::from).to_vec(), code, &known);
    let want: BTreeSet<ModPath> = [vec!["b", "c"], vec!["d"], vec!["a"], vec!["a", "x"]]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
    assert_eq!(got, want);
}
