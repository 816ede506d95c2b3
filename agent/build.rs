//! Records the git revision for `ecs-diag --version`, so a binary found on a fleet names the
//! exact source it came from. `ECS_DIAG_GIT_REV` overrides it (source tarballs without .git).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ECS_DIAG_GIT_REV");
    let git = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.git");
    // A new commit moves the branch ref (or packed-refs); a checkout moves HEAD.
    println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
    println!(
        "cargo:rerun-if-changed={}",
        git.join("packed-refs").display()
    );
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed={}", git.join(r).display());
        }
    }
    let rev = std::env::var("ECS_DIAG_GIT_REV")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ECS_DIAG_GIT_REV={rev}");
}
