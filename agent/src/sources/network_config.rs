//! Reads the persisted IPv4 configuration of interfaces — ifcfg (RHEL family, Alibaba Cloud
//! Linux), netplan (Ubuntu), ifupdown (Debian), NetworkManager keyfiles and systemd-networkd —
//! enough to tell DHCP from static and to read a static address and gateway: what the
//! interface will get after a reboot.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::snapshot::{AddressingMethod, ConfigFormat, Gathered, InterfaceConfig};

fn new_config(file: &Path, format: ConfigFormat) -> InterfaceConfig {
    InterfaceConfig {
        file: file.display().to_string(),
        format,
        interface: None,
        mac: None,
        method: AddressingMethod::Other,
        addresses: Vec::new(),
        gateway: None,
        netplan_id: None,
    }
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v)
}

fn netmask_prefix(mask: &str) -> Option<u8> {
    let m: Ipv4Addr = mask.trim().parse().ok()?;
    let bits = u32::from(m);
    // A netmask is contiguous ones; anything else is not a netmask.
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones() as u8)
}

/// `10.0.0.5/24`, or a bare address with the prefix given separately.
fn cidr(addr: &str, prefix: Option<u8>) -> Option<Ipv4Net> {
    let addr = addr.trim();
    if let Ok(n) = addr.parse::<Ipv4Net>() {
        return Some(n);
    }
    Ipv4Net::new(addr.parse().ok()?, prefix?).ok()
}

/// `/etc/sysconfig/network-scripts/ifcfg-*`.
pub fn parse_ifcfg(text: &str, file: &Path) -> Option<InterfaceConfig> {
    let mut c = new_config(file, ConfigFormat::Ifcfg);
    let mut kv = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            kv.insert(k.trim().to_ascii_uppercase(), unquote(v).to_string());
        }
    }
    c.interface = kv.get("DEVICE").cloned().or_else(|| {
        file.file_name()?
            .to_str()?
            .strip_prefix("ifcfg-")
            .map(str::to_string)
    });
    c.mac = kv.get("HWADDR").map(|m| m.to_ascii_lowercase());
    let proto = kv.get("BOOTPROTO").map(|s| s.to_ascii_lowercase());
    let mut addrs = Vec::new();
    for (k, v) in &kv {
        let Some(suffix) = k.strip_prefix("IPADDR") else {
            continue;
        };
        let prefix = kv
            .get(&format!("PREFIX{suffix}"))
            .and_then(|p| p.parse().ok())
            .or_else(|| {
                kv.get(&format!("NETMASK{suffix}"))
                    .and_then(|m| netmask_prefix(m))
            });
        if let Some(n) = cidr(v, prefix.or(Some(32))) {
            addrs.push((suffix.to_string(), n));
        }
    }
    addrs.sort();
    c.addresses = addrs.into_iter().map(|(_, n)| n).collect();
    c.gateway = kv.get("GATEWAY").and_then(|g| g.parse().ok());
    c.method = match proto.as_deref() {
        Some("dhcp") | Some("bootp") => AddressingMethod::Dhcp,
        _ if !c.addresses.is_empty() => AddressingMethod::Static,
        _ => AddressingMethod::Other,
    };
    Some(c)
}

/// `/etc/network/interfaces` and `interfaces.d/*`: one config per `iface NAME inet ...` stanza.
pub fn parse_ifupdown(text: &str, file: &Path) -> Vec<InterfaceConfig> {
    let mut out: Vec<InterfaceConfig> = Vec::new();
    let mut netmask: Option<u8> = None;
    let mut pending_addr: Option<String> = None;
    let finish = |c: &mut InterfaceConfig, addr: &mut Option<String>, mask: &mut Option<u8>| {
        if let Some(a) = addr.take() {
            if let Some(n) = cidr(&a, mask.or(Some(32))) {
                c.addresses.push(n);
            }
        }
        *mask = None;
    };
    for line in text.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("iface") => {
                if let Some(c) = out.last_mut() {
                    finish(c, &mut pending_addr, &mut netmask);
                }
                let name = words.next().map(str::to_string);
                let family = words.next();
                let method = words.next();
                if family != Some("inet") {
                    // IPv6 or other families: not this check's business.
                    out.push(InterfaceConfig {
                        interface: None,
                        ..new_config(file, ConfigFormat::Ifupdown)
                    });
                    continue;
                }
                let mut c = new_config(file, ConfigFormat::Ifupdown);
                c.interface = name;
                c.method = match method {
                    Some("dhcp") => AddressingMethod::Dhcp,
                    Some("static") => AddressingMethod::Static,
                    _ => AddressingMethod::Other,
                };
                out.push(c);
            }
            Some("address") => pending_addr = words.next().map(str::to_string),
            Some("netmask") => {
                netmask = words
                    .next()
                    .and_then(|m| netmask_prefix(m).or_else(|| m.parse().ok()))
            }
            Some("gateway") => {
                if let Some(c) = out.last_mut() {
                    c.gateway = words.next().and_then(|g| g.parse().ok());
                }
            }
            _ => {}
        }
    }
    if let Some(c) = out.last_mut() {
        finish(c, &mut pending_addr, &mut netmask);
    }
    out.retain(|c| c.interface.is_some() && c.interface.as_deref() != Some("lo"));
    out
}

/// An INI file (`[section]` + `key=value`), as NetworkManager keyfiles and networkd use.
fn ini(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// `/etc/NetworkManager/system-connections/*.nmconnection`.
pub fn parse_nm_keyfile(text: &str, file: &Path) -> Option<InterfaceConfig> {
    let mut c = new_config(file, ConfigFormat::NetworkManager);
    let mut is_ethernet = false;
    for (section, key, value) in ini(text) {
        match (section.as_str(), key.as_str()) {
            ("connection", "type") => {
                is_ethernet = value == "ethernet" || value == "802-3-ethernet"
            }
            ("connection", "interface-name") => c.interface = Some(value),
            ("ethernet", "mac-address") => c.mac = Some(value.to_ascii_lowercase()),
            ("ipv4", "method") => {
                c.method = match value.as_str() {
                    "auto" => AddressingMethod::Dhcp,
                    "manual" => AddressingMethod::Static,
                    _ => AddressingMethod::Other,
                }
            }
            ("ipv4", "gateway") => c.gateway = value.parse().ok(),
            ("ipv4", k) if k.starts_with("address") => {
                // address1=10.0.0.5/24,10.0.0.1 (the gateway may follow a comma); `addresses`
                // may list several separated by ';'.
                for item in value.split(';').filter(|s| !s.trim().is_empty()) {
                    let mut parts = item.split(',');
                    if let Some(n) = parts.next().and_then(|a| cidr(a, Some(32))) {
                        c.addresses.push(n);
                    }
                    if let Some(g) = parts.next().and_then(|g| g.trim().parse().ok()) {
                        c.gateway = Some(g);
                    }
                }
            }
            _ => {}
        }
    }
    is_ethernet.then_some(c)
}

/// `/etc/systemd/network/*.network`.
pub fn parse_networkd(text: &str, file: &Path) -> Option<InterfaceConfig> {
    let mut c = new_config(file, ConfigFormat::Networkd);
    let mut dhcp4 = false;
    for (section, key, value) in ini(text) {
        match (section.as_str(), key.as_str()) {
            ("Match", "Name") => c.interface = Some(value),
            ("Match", "MACAddress") => c.mac = Some(value.to_ascii_lowercase()),
            ("Network", "DHCP") => dhcp4 = matches!(value.as_str(), "yes" | "true" | "ipv4" | "1"),
            ("Network", "Address") | ("Address", "Address") => {
                if let Some(n) = cidr(&value, Some(32)) {
                    c.addresses.push(n);
                }
            }
            ("Network", "Gateway") | ("Route", "Gateway") => {
                if let Ok(g) = value.parse() {
                    c.gateway.get_or_insert(g);
                }
            }
            _ => {}
        }
    }
    if c.interface.is_none() && c.mac.is_none() {
        return None;
    }
    c.method = if dhcp4 {
        AddressingMethod::Dhcp
    } else if !c.addresses.is_empty() {
        AddressingMethod::Static
    } else {
        AddressingMethod::Other
    };
    Some(c)
}

/// One `/etc/netplan/*.yaml` file alone: one config per `network.ethernets.<id>`.
pub fn parse_netplan(text: &str, file: &Path) -> Result<Vec<InterfaceConfig>, String> {
    parse_netplan_files(&[(file.to_path_buf(), text.to_string())])
}

/// Netplan's merge of a later file into the earlier ones (netplan-generate(8), "Handling
/// multiple files"): a scalar is overwritten, sequences are concatenated, mappings are merged
/// key by key.
fn netplan_merge(into: &mut serde_yaml_ng::Value, from: serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match (into, from) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(old) => netplan_merge(old, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(a), Value::Sequence(b)) => a.extend(b),
        (slot, v) => *slot = v,
    }
}

/// The netplan files of a directory, in lexicographic order, merged as netplan merges them:
/// one config per `network.ethernets.<id>`, naming every file that contributes to it (a
/// drop-in adding addresses to an interface another file sets to DHCP is still DHCP).
pub fn parse_netplan_files(files: &[(PathBuf, String)]) -> Result<Vec<InterfaceConfig>, String> {
    use serde_yaml_ng::Value;
    let mut merged = Value::Null;
    let mut sources: Vec<(String, Vec<String>)> = Vec::new();
    for (file, text) in files {
        let doc: Value =
            serde_yaml_ng::from_str(text).map_err(|e| format!("{}: {e}", file.display()))?;
        let ids: Vec<String> = doc
            .get("network")
            .and_then(|n| n.get("ethernets"))
            .and_then(Value::as_mapping)
            .map(|m| {
                m.keys()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            let name = file.display().to_string();
            match sources.iter_mut().find(|(i, _)| *i == id) {
                Some((_, f)) => f.push(name),
                None => sources.push((id, vec![name])),
            }
        }
        if merged.is_null() {
            merged = doc;
        } else {
            netplan_merge(&mut merged, doc);
        }
    }
    let label = |id: &str| {
        sources
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, f)| f.join(" + "))
            .unwrap_or_default()
    };
    let doc = merged;
    let Some(ethernets) = doc
        .get("network")
        .and_then(|n| n.get("ethernets"))
        .and_then(Value::as_mapping)
    else {
        return Ok(Vec::new());
    };
    let as_bool = |v: Option<&Value>| match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "yes" | "on"),
        _ => false,
    };
    let mut out = Vec::new();
    for (id, eth) in ethernets {
        let id = id.as_str().unwrap_or_default().to_string();
        let mut c = new_config(Path::new(&label(&id)), ConfigFormat::Netplan);
        c.netplan_id = Some(id.clone());
        let matcher = eth.get("match");
        c.mac = matcher
            .and_then(|m| m.get("macaddress"))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        c.interface = eth
            .get("set-name")
            .or_else(|| matcher.and_then(|m| m.get("name")))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| matcher.is_none().then_some(id));
        if let Some(addrs) = eth.get("addresses").and_then(Value::as_sequence) {
            for a in addrs {
                // Either "10.0.0.5/24" or {"10.0.0.5/24": {label: ...}}.
                let s = a
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| a.as_mapping()?.keys().next()?.as_str().map(str::to_string));
                if let Some(n) = s.and_then(|s| cidr(&s, None)) {
                    c.addresses.push(n);
                }
            }
        }
        c.gateway = eth
            .get("gateway4")
            .and_then(Value::as_str)
            .and_then(|g| g.parse().ok());
        if let Some(routes) = eth.get("routes").and_then(Value::as_sequence) {
            for r in routes {
                let to = r.get("to").and_then(Value::as_str);
                if matches!(to, Some("default") | Some("0.0.0.0/0")) {
                    if let Some(g) = r
                        .get("via")
                        .and_then(Value::as_str)
                        .and_then(|g| g.parse().ok())
                    {
                        c.gateway.get_or_insert(g);
                    }
                }
            }
        }
        c.method = if as_bool(eth.get("dhcp4")) {
            AddressingMethod::Dhcp
        } else if !c.addresses.is_empty() {
            AddressingMethod::Static
        } else {
            AddressingMethod::Other
        };
        out.push(c);
    }
    Ok(out)
}

fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every persisted interface configuration under `etc`. Unreadable or malformed files are
/// reported by failing the source, naming the file: a guess here would mislead.
pub fn read(etc: &Path) -> Gathered<Vec<InterfaceConfig>> {
    let mut out = Vec::new();
    let read = |p: &Path| {
        super::read_config_file(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let result: Result<(), String> = (|| {
        for p in files_in(&etc.join("sysconfig/network-scripts"), |n| {
            n.starts_with("ifcfg-") && n != "ifcfg-lo"
        }) {
            out.extend(parse_ifcfg(&read(&p)?, &p));
        }
        let mut netplan = Vec::new();
        for p in files_in(&etc.join("netplan"), |n| n.ends_with(".yaml")) {
            let text = read(&p)?;
            netplan.push((p, text));
        }
        out.extend(parse_netplan_files(&netplan)?);
        let mut ifupdown = vec![etc.join("network/interfaces")];
        ifupdown.extend(files_in(&etc.join("network/interfaces.d"), |n| {
            !n.starts_with('.')
        }));
        for p in ifupdown.into_iter().filter(|p| p.is_file()) {
            out.extend(parse_ifupdown(&read(&p)?, &p));
        }
        for p in files_in(&etc.join("NetworkManager/system-connections"), |_| true) {
            out.extend(parse_nm_keyfile(&read(&p)?, &p));
        }
        for p in files_in(&etc.join("systemd/network"), |n| n.ends_with(".network")) {
            out.extend(parse_networkd(&read(&p)?, &p));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Gathered::Ok(out),
        Err(e) => Gathered::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn ifcfg_dhcp_and_static() {
        let c = parse_ifcfg(
            "DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n",
            &p("ifcfg-eth0"),
        )
        .unwrap();
        assert_eq!(c.method, AddressingMethod::Dhcp);
        let c = parse_ifcfg(
            "BOOTPROTO=static\nIPADDR=\"172.16.0.9\"\nNETMASK=255.255.240.0\nGATEWAY=172.16.15.253\nHWADDR=00:16:3E:AA:BB:CC\n",
            &p("/etc/sysconfig/network-scripts/ifcfg-eth0"),
        )
        .unwrap();
        assert_eq!(c.interface.as_deref(), Some("eth0"));
        assert_eq!(c.method, AddressingMethod::Static);
        assert_eq!(c.addresses, vec!["172.16.0.9/20".parse().unwrap()]);
        assert_eq!(c.gateway, Some("172.16.15.253".parse().unwrap()));
        assert_eq!(c.mac.as_deref(), Some("00:16:3e:aa:bb:cc"));
        let c = parse_ifcfg(
            "BOOTPROTO=none\nIPADDR0=10.0.0.5\nPREFIX0=24\n",
            &p("ifcfg-eth1"),
        )
        .unwrap();
        assert_eq!(c.addresses, vec!["10.0.0.5/24".parse().unwrap()]);
    }

    #[test]
    fn ifupdown_stanzas() {
        let t = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n  address 10.0.0.5\n  netmask 255.255.255.0\n  gateway 10.0.0.1\niface eth0 inet6 auto\niface eth1 inet dhcp\n";
        let v = parse_ifupdown(t, &p("interfaces"));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].interface.as_deref(), Some("eth0"));
        assert_eq!(v[0].addresses, vec!["10.0.0.5/24".parse().unwrap()]);
        assert_eq!(v[0].gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(v[1].method, AddressingMethod::Dhcp);
        let v = parse_ifupdown("iface eth0 inet static\n address 10.0.0.5/16\n", &p("i"));
        assert_eq!(v[0].addresses, vec!["10.0.0.5/16".parse().unwrap()]);
    }

    #[test]
    fn nm_keyfile() {
        let t = "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nmethod=manual\naddress1=10.0.0.5/24,10.0.0.1\n";
        let c = parse_nm_keyfile(t, &p("eth0.nmconnection")).unwrap();
        assert_eq!(c.method, AddressingMethod::Static);
        assert_eq!(c.addresses, vec!["10.0.0.5/24".parse().unwrap()]);
        assert_eq!(c.gateway, Some("10.0.0.1".parse().unwrap()));
        let t = "[connection]\ntype=wifi\n";
        assert!(parse_nm_keyfile(t, &p("w")).is_none());
        let t = "[connection]\ntype=ethernet\n[ethernet]\nmac-address=00:16:3E:00:00:01\n[ipv4]\nmethod=auto\n";
        let c = parse_nm_keyfile(t, &p("x")).unwrap();
        assert_eq!(
            (c.method, c.mac.as_deref()),
            (AddressingMethod::Dhcp, Some("00:16:3e:00:00:01"))
        );
    }

    #[test]
    fn networkd() {
        let t = "[Match]\nName=eth0\n[Network]\nAddress=10.0.0.5/24\nGateway=10.0.0.1\n";
        let c = parse_networkd(t, &p("10-eth0.network")).unwrap();
        assert_eq!(c.method, AddressingMethod::Static);
        assert_eq!(c.gateway, Some("10.0.0.1".parse().unwrap()));
        let c = parse_networkd("[Match]\nName=en*\n[Network]\nDHCP=yes\n", &p("x")).unwrap();
        assert_eq!(c.method, AddressingMethod::Dhcp);
        assert!(parse_networkd("[Network]\nDHCP=yes\n", &p("x")).is_none());
    }

    #[test]
    fn netplan_files_merge_as_netplan_merges_them() {
        let base = "network:\n  version: 2\n  ethernets:\n    primary:\n      match:\n        macaddress: 00:16:3e:01:02:03\n      set-name: eth0\n      dhcp4: true\n      addresses: [10.0.0.9/24]\n";
        let dropin = "network:\n  ethernets:\n    primary:\n      addresses: [10.0.0.11/24]\n    eth1:\n      dhcp4: false\n      addresses: [10.0.1.5/24]\n";
        let later = "network:\n  ethernets:\n    eth1:\n      dhcp4: true\n";
        let v = parse_netplan_files(&[
            (p("/etc/netplan/50-cloud-init.yaml"), base.into()),
            (p("/etc/netplan/90-extra.yaml"), dropin.into()),
            (p("/etc/netplan/95-later.yaml"), later.into()),
        ])
        .unwrap();
        assert_eq!(v.len(), 2);
        // Sequences concatenated; the drop-in keeps the interface on DHCP.
        assert_eq!(v[0].netplan_id.as_deref(), Some("primary"));
        assert_eq!(v[0].interface.as_deref(), Some("eth0"));
        assert_eq!(v[0].method, AddressingMethod::Dhcp);
        assert_eq!(
            v[0].addresses,
            vec![
                "10.0.0.9/24".parse().unwrap(),
                "10.0.0.11/24".parse().unwrap()
            ]
        );
        assert_eq!(
            v[0].file,
            "/etc/netplan/50-cloud-init.yaml + /etc/netplan/90-extra.yaml"
        );
        // A later scalar overwrites.
        assert_eq!(v[1].method, AddressingMethod::Dhcp);
        assert_eq!(
            v[1].file,
            "/etc/netplan/90-extra.yaml + /etc/netplan/95-later.yaml"
        );
        // A broken file names itself.
        let e =
            parse_netplan_files(&[(p("/etc/netplan/x.yaml"), "network: [".into())]).unwrap_err();
        assert!(e.starts_with("/etc/netplan/x.yaml"), "{e}");
    }

    #[test]
    fn netplan_as_cloud_init_writes_it() {
        let t = "network:\n  version: 2\n  ethernets:\n    eth0:\n      match:\n        macaddress: 00:16:3E:01:02:03\n      set-name: eth0\n      dhcp4: true\n    eth1:\n      addresses: [10.0.1.5/24]\n      routes:\n        - to: default\n          via: 10.0.1.253\n";
        let v = parse_netplan(t, &p("50-cloud-init.yaml")).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].method, AddressingMethod::Dhcp);
        assert_eq!(v[0].mac.as_deref(), Some("00:16:3e:01:02:03"));
        assert_eq!(v[1].interface.as_deref(), Some("eth1"));
        assert_eq!(v[1].gateway, Some("10.0.1.253".parse().unwrap()));
        assert!(parse_netplan("network: [unclosed", &p("bad.yaml"))
            .unwrap_err()
            .contains("bad.yaml"));
    }

    #[test]
    fn reads_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        std::fs::create_dir_all(etc.join("systemd/network")).unwrap();
        std::fs::write(
            etc.join("systemd/network/10-eth0.network"),
            "[Match]\nName=eth0\n[Network]\nDHCP=ipv4\n",
        )
        .unwrap();
        std::fs::create_dir_all(etc.join("netplan")).unwrap();
        std::fs::write(etc.join("netplan/bad.yaml"), "network: [").unwrap();
        let g = read(etc);
        assert!(g.ok().unwrap_err().contains("bad.yaml"));
        std::fs::remove_file(etc.join("netplan/bad.yaml")).unwrap();
        let g = read(etc);
        assert_eq!(g.ok().unwrap().len(), 1);
    }
}
