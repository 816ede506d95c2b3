//! The check catalogue in docs/DESIGN.md and the registry in the code are the same list; the
//! repository's DESIGN.md is the project's shared one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

/// Checks DESIGN.md catalogues whose source is not written yet. Each moves out of here when
/// its check is registered; the test fails if one is registered while still listed.
const PLANNED: &[&str] = &[];

fn design() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/DESIGN.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The ids of the catalogue table: first cells of its rows, `firewall.icmp_in / icmp_out /
/// icmp6` shorthand expanded (`load.cpu / load.memory` is written out).
fn catalogued(design: &str) -> BTreeSet<String> {
    let table = design
        .split("## Check catalogue")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("DESIGN.md has a '## Check catalogue' section");
    let mut ids = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| ")) {
        let cell = row.split('|').nth(1).unwrap_or("").trim();
        let Some((family, _)) = cell.split_once('.') else {
            continue;
        };
        for (i, part) in cell.split(" / ").enumerate() {
            let part = part.trim();
            ids.insert(if i == 0 || part.contains('.') {
                part.to_string()
            } else {
                format!("{family}.{part}")
            });
        }
    }
    ids
}

#[test]
fn design_catalogue_matches_the_registry() {
    let listed = catalogued(&design());
    let registered: BTreeSet<String> = ecs_diag::checks::catalogue()
        .map(|c| c.id.to_string())
        .collect();
    for id in &registered {
        assert!(
            listed.contains(id),
            "{id} is registered but not in DESIGN.md's catalogue"
        );
        assert!(
            !PLANNED.contains(&id.as_str()),
            "{id} is registered: take it off PLANNED"
        );
    }
    for id in &listed {
        assert!(
            registered.contains(id) || PLANNED.contains(&id.as_str()),
            "DESIGN.md catalogues {id}, which is neither registered nor planned"
        );
    }
}

/// Where the shared notes are checked out next to the repository, the copy must equal them.
#[test]
fn the_repository_design_is_the_shared_one() {
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/DESIGN.md");
    match std::fs::read_to_string(shared) {
        Ok(s) => assert!(
            s == design(),
            "docs/DESIGN.md differs from {shared}: copy it over"
        ),
        Err(_) => eprintln!("{shared} not present: nothing to compare"),
    }
}
