//! The .deb and .rpm as an operator meets them (built by `scripts/package`, which the test
//! command runs first): contents and metadata; the .deb installed with dpkg on this machine,
//! run from its installed path, upgraded over itself, removed and purged without leftovers; the
//! .rpm inspected with `rpm -qp` and installed into a scratch root; the unit verified.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

fn built(dir: &str, ext: &str) -> PathBuf {
    let dir = target().join(dir);
    let found = std::fs::read_dir(&dir).ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
    });
    found.unwrap_or_else(|| panic!("no .{ext} in {}: run scripts/package first", dir.display()))
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SHIPPED: &[&str] = &[
    "/usr/bin/ecs-diag",
    "/etc/ecs-diag/config.toml",
    "/usr/share/man/man1/ecs-diag.1.gz",
    "/usr/share/man/man1/ecs-diag-check.1.gz",
    "/usr/share/bash-completion/completions/ecs-diag",
    "/usr/share/fish/vendor_completions.d/ecs-diag.fish",
    "/usr/share/ecs-diag/prometheus/ecs-diag.rules.yml",
    "/usr/share/doc/ecs-diag/README.md",
];

/// The section names of an ELF file: a stripped binary has no `.symtab`.
fn has_symtab(bin: &Path) -> bool {
    let out = run(&["readelf", "-S", "-W", bin.to_str().unwrap()]);
    assert!(out.status.success(), "readelf (binutils) is needed");
    String::from_utf8_lossy(&out.stdout).contains(".symtab")
}

#[test]
fn deb_contents_and_metadata() {
    let deb = built("debian", "deb");
    let deb = deb.to_str().unwrap();
    let field = |f: &str| ok(&["dpkg-deb", "-f", deb, f]).trim().to_string();
    assert_eq!(field("Package"), "ecs-diag");
    assert_eq!(field("Recommends"), "iptables, nftables");
    assert!(
        !field("Depends").contains("iptables"),
        "firewall tools are recommendations only"
    );
    assert!(field("Description").contains("pinged"));
    let list = ok(&["dpkg-deb", "-c", deb]);
    for f in SHIPPED.iter().chain(&[
        "/usr/lib/systemd/system/ecs-diag.service",
        "/usr/share/zsh/vendor-completions/_ecs-diag",
        "/usr/share/doc/ecs-diag/copyright",
    ]) {
        assert!(
            list.contains(&format!(".{f}")),
            "{f} missing from the .deb:\n{list}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    ok(&[
        "dpkg-deb",
        "-e",
        deb,
        tmp.path().join("ctl").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("ctl/conffiles"))
            .unwrap()
            .trim(),
        "/etc/ecs-diag/config.toml"
    );
    let postinst = std::fs::read_to_string(tmp.path().join("ctl/postinst")).unwrap();
    assert!(postinst.contains("deb-systemd-helper enable ecs-diag.service"));
    assert!(
        postinst.contains("deb-systemd-invoke $_dh_action ecs-diag.service"),
        "start/restart through policy-rc.d"
    );
    ok(&[
        "dpkg-deb",
        "-x",
        deb,
        tmp.path().join("root").to_str().unwrap(),
    ]);
    assert!(
        !has_symtab(&tmp.path().join("root/usr/bin/ecs-diag")),
        "the shipped binary is stripped"
    );
}

/// Purges the package when the test ends, however it ends.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run(&["dpkg", "--purge", "ecs-diag"]);
    }
}

#[test]
fn deb_installs_runs_upgrades_and_purges_without_leftovers() {
    let deb = built("debian", "deb");
    let deb = deb.to_str().unwrap();
    let _purge = Purge;
    ok(&["dpkg", "-i", deb]);
    for f in SHIPPED {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    // Enabled (the start itself is left to systemd, which is not PID 1 here).
    assert!(Path::new("/etc/systemd/system/multi-user.target.wants/ecs-diag.service").exists());

    // From the installed path, with the installed default config. DMI decides whether the
    // metadata service is asked; on a non-ECS machine it is not.
    let dmi = std::fs::read_to_string("/sys/class/dmi/id/product_name").unwrap_or_default();
    assert!(
        !dmi.contains("Alibaba Cloud ECS"),
        "this test must not run on a real ECS instance"
    );
    let out = run(&["/usr/bin/ecs-diag", "check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "installed check --json ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        report["checks"].as_array().unwrap().len(),
        ecs_diag::checks::CATALOGUE.len()
    );
    assert!(matches!(out.status.code(), Some(0..=3)));

    // An upgrade (here: the same package again) keeps the operator's config.
    let cfg = "/etc/ecs-diag/config.toml";
    let mut edited = std::fs::read_to_string(cfg).unwrap();
    edited.push_str("\n# edited by the operator\n");
    std::fs::write(cfg, &edited).unwrap();
    ok(&["dpkg", "-i", deb]);
    assert_eq!(
        std::fs::read_to_string(cfg).unwrap(),
        edited,
        "upgrade must not overwrite the config"
    );

    // Remove: program gone, config kept. Purge: nothing left.
    ok(&["dpkg", "-r", "ecs-diag"]);
    assert!(!Path::new("/usr/bin/ecs-diag").exists());
    assert!(Path::new(cfg).exists(), "remove keeps the conffile");
    ok(&["dpkg", "--purge", "ecs-diag"]);
    for f in SHIPPED.iter().chain(&[
        "/etc/ecs-diag",
        "/usr/lib/systemd/system/ecs-diag.service",
        "/etc/systemd/system/ecs-diag.service",
        "/etc/systemd/system/multi-user.target.wants/ecs-diag.service",
        "/var/lib/systemd/deb-systemd-helper-enabled/ecs-diag.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-masked/ecs-diag.service",
    ]) {
        assert!(!Path::new(f).exists(), "{f} left behind after purge");
    }
    assert!(!run(&["dpkg", "-s", "ecs-diag"]).status.success());
}

#[test]
fn rpm_metadata_scripts_and_scratch_root_install() {
    let rpm = built("generate-rpm", "rpm");
    let rpm = rpm.to_str().unwrap();
    let q = |args: &[&str]| {
        let mut a = vec!["rpm", "-qp"];
        a.extend_from_slice(args);
        a.push(rpm);
        ok(&a)
    };
    assert_eq!(q(&["--queryformat", "%{NAME} %{LICENSE}"]), "ecs-diag MIT");
    let list = q(&["--list"]);
    for f in SHIPPED.iter().chain(&[
        "/usr/lib/systemd/system/ecs-diag.service",
        "/usr/share/licenses/ecs-diag/LICENSE",
        "/usr/share/zsh/site-functions/_ecs-diag",
    ]) {
        assert!(
            list.lines().any(|l| l == *f),
            "{f} missing from the .rpm:\n{list}"
        );
    }
    assert_eq!(q(&["--configfiles"]).trim(), "/etc/ecs-diag/config.toml");
    let scripts = q(&["--scripts"]);
    assert!(
        scripts.contains("systemctl enable --now ecs-diag.service"),
        "{scripts}"
    );
    assert!(
        scripts.contains("systemctl try-restart ecs-diag.service"),
        "{scripts}"
    );
    assert!(
        scripts.contains("systemctl disable --now ecs-diag.service"),
        "{scripts}"
    );
    let recommends = q(&["--recommends"]);
    assert!(
        recommends.contains("iptables") && recommends.contains("nftables"),
        "{recommends}"
    );
    assert!(!q(&["--requires"]).contains("iptables"));

    // Into a scratch root: files land, the binary runs, erase removes them.
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    ok(&["rpm", "--root", r, "--initdb"]);
    // No shell in the scratch root for the scriptlets, and no glibc package to satisfy deps.
    ok(&["rpm", "--root", r, "-i", "--nodeps", "--noscripts", rpm]);
    let bin = root.path().join("usr/bin/ecs-diag");
    let version = ok(&[bin.to_str().unwrap(), "--version"]);
    assert!(version.starts_with("ecs-diag "), "{version}");
    assert!(root.path().join("etc/ecs-diag/config.toml").exists());
    ok(&["rpm", "--root", r, "-e", "--noscripts", "ecs-diag"]);
    assert!(!bin.exists());
}

#[test]
fn unit_passes_systemd_analyze() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/ecs-diag.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/ecs-diag serve"));
    // verify needs the ExecStart binary to exist: point it at the release build.
    let bin = target().join("release/ecs-diag");
    assert!(bin.exists(), "run scripts/package first");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ecs-diag.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/ecs-diag", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = run(&["systemd-analyze", "verify", path.to_str().unwrap()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let out = run(&[
        "systemd-analyze",
        "security",
        "--offline=true",
        path.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ecs-diag.service: ")
                .nth(1)
        })
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(score <= 2.5, "exposure {score} above the 2.5 target");
}

/// Every check keeps working with only the capabilities the unit leaves the daemon
/// (its CapabilityBoundingSet) and no_new_privs: nothing degrades for lack of privilege.
#[test]
fn checks_work_with_only_the_units_capabilities() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/ecs-diag.service"),
    )
    .unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds capabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    let bin = target().join("release/ecs-diag");
    assert!(bin.exists(), "run scripts/package first");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[metadata]\nmode = \"never\"\n").unwrap();
    let bounding = format!("--bounding-set=-all,{}", caps.join(","));
    let out = run(&[
        "setpriv",
        &bounding,
        "--no-new-privs",
        bin.to_str().unwrap(),
        "check",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    for c in report["checks"].as_array().unwrap() {
        let summary = c["summary"].as_str().unwrap();
        for denied in [
            "Permission denied",
            "Operation not permitted",
            "must be root",
        ] {
            assert!(
                !summary.contains(denied),
                "{} lacks a privilege under the unit's capabilities: {summary}",
                c["id"]
            );
        }
    }
    for id in [
        "firewall.icmp_in",
        "firewall.icmp_out",
        "firewall.ports",
        "net.drops",
    ] {
        let c = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        assert_ne!(c["status"], "unknown", "{id}: {}", c["summary"]);
    }
}
