//! The README as a new user follows it: its two commands are the scripts that CI runs, the
//! install command works in a clean clone with an empty HOME and no sudo, the test command's
//! prerequisite step names what such a machine lacks, and every link in the repository's
//! Markdown resolves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The shell block after `<!-- NAME -->` in the README.
fn command(marker: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let after = readme
        .split(&format!("<!-- {marker} -->"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has no <!-- {marker} --> block"));
    let block = after.split("```sh\n").nth(1).unwrap();
    block.split("```").next().unwrap().trim().to_string()
}

#[test]
fn the_readme_commands_are_what_ci_runs() {
    assert_eq!(command("install-command"), "./scripts/install");
    assert_eq!(command("test-command"), "./scripts/test");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == "./scripts/test"), "{ci}");
}

/// A directory of the tools a fresh machine has, a `sudo` that fails if called, and rustup's
/// proxies — but none of the cargo tools installed on this one.
fn bare_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sudo = bin.join("sudo");
    std::fs::write(
        &sudo,
        "#!/bin/sh\necho \"sudo must not be needed: $*\" >&2\nexit 99\n",
    )
    .unwrap();
    std::fs::set_permissions(&sudo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let rustup = which("rustup");
    for proxy in ["cargo", "rustc", "rustup"] {
        std::os::unix::fs::symlink(&rustup, bin.join(proxy)).unwrap();
    }
    format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display()
    )
}

fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn rustup_home() -> String {
    std::env::var("RUSTUP_HOME")
        .unwrap_or_else(|_| format!("{}/.rustup", std::env::var("HOME").unwrap()))
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn clean_clone(dir: &Path) -> PathBuf {
    let clone = dir.join("clone");
    let out = Command::new("git")
        .args([
            "clone",
            "-q",
            repo().to_str().unwrap(),
            clone.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    clone
}

/// `./scripts/install` in a clean clone, HOME empty, no sudo (as root): it builds, installs
/// and runs the diagnosis. Its prefix is a temp directory instead of /usr/local.
#[test]
fn the_install_command_works_in_a_clean_clone_without_sudo() {
    if !is_root() {
        eprintln!("skipped: needs root (as the README's command does without sudo)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clone = clean_clone(dir.path());
    let prefix = dir.path().join("prefix");
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap()));
    let out = Command::new("bash")
        .arg("-c")
        .arg(command("install-command"))
        .current_dir(&clone)
        .env_clear()
        .env("HOME", dir.path().join("home"))
        .env("PATH", bare_path(dir.path()))
        .env("RUSTUP_HOME", rustup_home())
        // The crates.io cache and toolchain of this machine (no download of every crate).
        .env("CARGO_HOME", cargo_home)
        .env("ECS_DIAG_PREFIX", &prefix)
        // The command as written, built quicker: optimisation is not what this proves.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("sudo must not be needed"), "{stderr}");
    assert!(
        prefix.join("bin/ecs-diag").is_file(),
        "not installed:\n{stderr}"
    );
    // The diagnosis ran: its table, and an exit code of the diagnosis (0-3), not an error.
    assert!(stdout.starts_with("STATUS"), "{stdout}\n{stderr}");
    assert!(
        matches!(out.status.code(), Some(0..=3)),
        "{:?}\n{stderr}",
        out.status
    );
}

/// On a machine with none of the cargo tools and an empty HOME, the test command's first step
/// names each of them (and PyPI's zig) as missing — and does not need sudo to say so.
#[test]
fn the_test_command_finds_what_a_fresh_machine_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let clone = clean_clone(dir.path());
    let out = Command::new(clone.join("scripts/prerequisites"))
        .arg("--dry-run")
        .env_clear()
        .env("HOME", dir.path().join("home"))
        .env("PATH", bare_path(dir.path()))
        .env("RUSTUP_HOME", rustup_home())
        .env("CARGO_HOME", dir.path().join("cargo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for tool in [
        "cargo-deb@",
        "cargo-generate-rpm@",
        "cargo-fuzz@",
        "ziglang==",
        "cargo-zigbuild==",
    ] {
        assert!(stderr.contains(tool), "{tool} not named missing:\n{stderr}");
    }
    assert!(!stderr.contains("sudo must not be needed"), "{stderr}");
    // What scripts/test then puts on PATH: the cargo tools' and the virtualenv's directories.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("PATH+=") && stdout.contains("venv/bin"),
        "{stdout}"
    );
}

/// GitHub's anchor for a heading: lower-case, spaces to dashes, punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every relative link `[..](target)` in the repository's Markdown names a file that exists,
/// and every `#anchor` a heading of that file.
#[test]
fn every_markdown_link_resolves() {
    let files = Command::new("git")
        .args(["ls-files", "*.md"])
        .current_dir(repo())
        .output()
        .unwrap();
    let mut broken = Vec::new();
    let mut checked = 0;
    for md in String::from_utf8(files.stdout).unwrap().lines() {
        let path = repo().join(md);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file_path = if file.is_empty() {
                path.clone()
            } else {
                path.parent().unwrap().join(file)
            };
            if !file_path.exists() {
                broken.push(format!("{md}: {target} (no such file)"));
                continue;
            }
            if !anchor.is_empty() && file_path.extension().is_some_and(|e| e == "md") {
                let linked = std::fs::read_to_string(&file_path).unwrap();
                let found = linked
                    .lines()
                    .filter_map(|l| {
                        l.trim_start_matches('#')
                            .strip_prefix(' ')
                            .filter(|_| l.starts_with('#'))
                    })
                    .any(|h| slug(h) == anchor);
                if !found {
                    broken.push(format!("{md}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 0, "no links found: the checker is not looking");
}
