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
    fn no_dmi_is_not_ecs() {
        let dir = tempfile::tempdir().unwrap();
        let dmi = dmi(dir.path());
        assert!(!dmi.ok().unwrap().is_alibaba_ecs());
    }
}
