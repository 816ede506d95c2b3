//! `cargo run -p xtask -- assets DIR`: writes the man pages (`ecs-diag.1.gz` and one per
//! command) and the bash, zsh and fish completions generated from the CLI definition, for the
//! packages to ship. Kept out of the agent so the installed binary does not carry the
//! generators. The pages' FILES, EXIT STATUS, EXAMPLES and SEE ALSO come from
//! `ecs_diag::manual`, the same text `--help` ends with.

use std::io::Write;
use std::path::Path;

use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("assets") if args.len() == 3 => {
            if let Err(e) = assets(Path::new(&args[2])) {
                eprintln!("xtask assets: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: cargo run -p xtask -- assets DIR");
            std::process::exit(64);
        }
    }
}

/// Every man page: (file stem, roff text).
fn pages() -> std::io::Result<Vec<(String, String)>> {
    let cmd = ecs_diag::cli::command();
    let mut out = vec![("ecs-diag".to_string(), page(cmd.clone(), "")?)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("ecs-diag-{}", sub.get_name());
        out.push((
            name.clone(),
            page(
                sub.clone().name(name).version(ecs_diag::cli::VERSION),
                sub.get_name(),
            )?,
        ));
    }
    Ok(out)
}

/// One page: clap's title, name, synopsis, description, options (and commands), then the
/// manual's sections.
fn page(cmd: clap::Command, command: &str) -> std::io::Result<String> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut w = Vec::new();
    man.render_title(&mut w)?;
    man.render_name_section(&mut w)?;
    man.render_synopsis_section(&mut w)?;
    let manual = ecs_diag::manual::of(command);
    let mut description = Roff::new();
    description.control("SH", ["DESCRIPTION"]);
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        description.text([roman(about.to_string())]);
    }
    for d in manual.map(|m| m.details).unwrap_or_default() {
        description.control("PP", []).text([roman(*d)]);
    }
    description.to_writer(&mut w)?;
    man.render_options_section(&mut w)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut w)?;
    }
    if let Some(m) = manual {
        let mut r = Roff::new();
        for (title, rows) in [
            ("FILES", m.files),
            ("EXIT STATUS", m.exit_status),
            ("EXAMPLES", m.examples),
        ] {
            if rows.is_empty() {
                continue;
            }
            r.control("SH", [title]);
            for (a, b) in rows {
                r.control("TP", []).text([bold(*a)]).text([roman(*b)]);
            }
        }
        if !m.see_also.is_empty() {
            r.control("SH", ["SEE ALSO"]);
            r.text([roman(m.see_also.join(", "))]);
        }
        r.to_writer(&mut w)?;
    }
    man.render_version_section(&mut w)?;
    String::from_utf8(w).map_err(std::io::Error::other)
}

fn assets(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in pages()? {
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(dir.join(format!("{name}.1.gz")))?,
            flate2::Compression::best(),
        );
        gz.write_all(text.as_bytes())?;
        gz.finish()?;
    }
    let cmd = ecs_diag::cli::command();
    for (shell, file) in [
        (Shell::Bash, "ecs-diag.bash"),
        (Shell::Zsh, "_ecs-diag"),
        (Shell::Fish, "ecs-diag.fish"),
    ] {
        let mut out = std::fs::File::create(dir.join(file))?;
        clap_complete::generate(shell, &mut cmd.clone(), "ecs-diag", &mut out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages with the build's git revision taken out (it changes with every commit).
    fn stable(text: &str) -> String {
        let rev = env!("CARGO_PKG_VERSION");
        text.lines()
            .map(|l| match l.find(&format!("{rev} (git ")) {
                Some(i) => format!(
                    "{}{rev} (git REV){}",
                    &l[..i],
                    &l[i..].split_once(')').map(|x| x.1).unwrap_or("")
                ),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Each page has the manual's sections, and equals its snapshot in xtask/snapshots
    /// (`UPDATE_SNAPSHOTS=1 cargo test -p xtask` rewrites them after a deliberate change).
    #[test]
    fn man_pages_match_their_snapshots() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
        let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
        let pages = pages().unwrap();
        assert_eq!(pages.len(), 9, "ecs-diag and its eight commands");
        for (name, text) in pages {
            for section in ["FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
                // checks and explain read no files.
                if section == "FILES" && (name == "ecs-diag-checks" || name == "ecs-diag-explain") {
                    continue;
                }
                assert!(
                    text.contains(&format!(".SH \"{section}\""))
                        || text.contains(&format!(".SH {section}")),
                    "{name} has no {section}"
                );
            }
            let text = stable(&text);
            let path = dir.join(format!("{name}.1"));
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display())
            });
            assert!(want == text, "{name} differs from {}: UPDATE_SNAPSHOTS=1 cargo test -p xtask after checking the change", path.display());
        }
    }
}
