//! Reads DMI (is this an Alibaba Cloud ECS instance?) and the driver bound to each NIC from
//! sysfs, under the configurable `paths.sys` root.

use std::collections::BTreeMap;
use std::path::Path;

use crate::snapshot::{Dmi, Gathered, NicDriver};

/// `class/dmi/id/{sys_vendor,product_name}`; a missing file is simply absent (not every
/// machine has DMI), any other read error fails the source.
pub fn dmi(sys: &Path) -> Gathered<Dmi> {
    let read = |name: &str| -> Result<Option<String>, String> {
        let path = sys.join("class/dmi/id").join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    match (read("sys_vendor"), read("product_name")) {
        (Ok(sys_vendor), Ok(product_name)) => Gathered::Ok(Dmi {
            sys_vendor,
            product_name,
        }),
        (Err(e), _) | (_, Err(e)) => Gathered::Failed(e),
    }
}

/// Parses os-release (`KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> crate::snapshot::OsRelease {
    let mut os = crate::snapshot::OsRelease::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'');
        match k.trim() {
            "ID" => os.id = v.to_ascii_lowercase(),
            "ID_LIKE" => os.id_like = v.split_whitespace().map(str::to_ascii_lowercase).collect(),
            "PRETTY_NAME" => os.pretty_name = Some(v.to_string()),
            _ => {}
        }
    }
    os
}

/// `{etc}/os-release`, else `{root}/usr/lib/os-release`.
pub fn os_release(paths: &crate::config::PathsConfig) -> Gathered<crate::snapshot::OsRelease> {
    let candidates = [
        paths.etc.join("os-release"),
        paths.root().join("usr/lib/os-release"),
    ];
    for p in &candidates {
        if let Ok(text) = super::read_config_file(p) {
            return Gathered::Ok(parse_os_release(&text));
        }
    }
    Gathered::Failed(format!(
        "no os-release at {} or {}",
        candidates[0].display(),
        candidates[1].display()
    ))
}

/// `class/net/<name>/device/driver` for each interface name.
pub fn drivers<'a>(
    sys: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Gathered<BTreeMap<String, NicDriver>> {
    let mut out = BTreeMap::new();
    for name in names {
        let device = sys.join("class/net").join(name).join("device");
        let has_device = device.exists();
        let driver = std::fs::read_link(device.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
        out.insert(name.to_string(), NicDriver { has_device, driver });
    }
    Gathered::Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dmi_and_driver_from_a_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        std::fs::create_dir_all(sys.join("class/dmi/id")).unwrap();
        std::fs::write(sys.join("class/dmi/id/product_name"), "Alibaba Cloud ECS\n").unwrap();
        std::fs::create_dir_all(sys.join("bus/virtio/drivers/virtio_net")).unwrap();
        std::fs::create_dir_all(sys.join("class/net/eth0/device")).unwrap();
        std::os::unix::fs::symlink(
            sys.join("bus/virtio/drivers/virtio_net"),
            sys.join("class/net/eth0/device/driver"),
        )
        .unwrap();
        std::fs::create_dir_all(sys.join("class/net/eth1/device")).unwrap();

        let dmi = dmi(sys);
        let dmi = dmi.ok().unwrap();
        assert!(dmi.is_alibaba_ecs());
        assert_eq!(dmi.sys_vendor, None);

        let d = drivers(sys, ["eth0", "eth1", "veth9"]);
        let d = d.ok().unwrap();
        assert_eq!(d["eth0"].driver.as_deref(), Some("virtio_net"));
        assert!(d["eth1"].has_device && d["eth1"].driver.is_none());
        assert!(!d["veth9"].has_device);
    }

    #[test]
    fn os_release_families() {
        let alinux = parse_os_release("NAME=\"Alibaba Cloud Linux\"\nID=\"alinux\"\nID_LIKE=\"rhel fedora centos anolis\"\nPRETTY_NAME=\"Alibaba Cloud Linux 3.2104 U12\"\n");
        assert!(alinux.rhel_like() && !alinux.debian_like());
        let ubuntu = parse_os_release("ID=ubuntu\nID_LIKE=debian\n");
        assert!(ubuntu.debian_like());
        assert!(!parse_os_release("ID=arch\n").rhel_like());
    }

    #[test]
    fn no_dmi_is_not_ecs() {
        let dir = tempfile::tempdir().unwrap();
        let dmi = dmi(dir.path());
        assert!(!dmi.ok().unwrap().is_alibaba_ecs());
    }
}
