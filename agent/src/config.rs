//! The agent's configuration (`/etc/ecs-diag/config.toml`): every key optional, unknown keys and
//! bad values rejected with the file, the key and what was expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the helper tools (`iptables-save`, `nft`, `ipset`, ...) are looked for by default:
/// fixed system directories, never `$PATH`.
pub const DEFAULT_TOOL_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
/// Where the daemon and the CLI look when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ecs-diag/config.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub metadata: MetadataConfig,
    pub server: ServerConfig,
    pub refresh: RefreshConfig,
    pub paths: PathsConfig,
    /// Additive to DESIGN.md's contract: when the load and network checks warn or fail.
    pub thresholds: Thresholds,
    pub limits: Limits,
    /// Cloud-side verdicts through the instance RAM role (DESIGN.md's `[cloud]`).
    pub cloud: CloudConfig,
    /// dns.resolution: the names that must resolve to this instance's public IP. Additive.
    pub dns: DnsConfig,
}

/// `[dns]`: the names `serve` judges (the CLI adds `--domain`), and how long resolving may take.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    pub domains: Vec<String>,
    /// One query to one nameserver (resolv.conf's own `timeout:` is used when shorter).
    pub timeout_ms: u64,
    /// Every query of one diagnosis together.
    pub budget_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            domains: Vec::new(),
            timeout_ms: 1000,
            budget_ms: 3000,
        }
    }
}

/// When to read cloud-side facts (security groups, ACLs, routes, EIPs, blackhole) from the
/// read-only OpenAPI.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CloudMode {
    /// On Alibaba Cloud (DMI) with a RAM role attached.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CloudConfig {
    pub mode: CloudMode,
    /// All cloud calls of one diagnosis together.
    pub budget_ms: u64,
    /// serve: how long cloud facts are reused.
    pub cache_s: u64,
    pub endpoints: CloudEndpoints,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            mode: CloudMode::Auto,
            budget_ms: 3000,
            cache_s: 120,
            endpoints: CloudEndpoints::default(),
        }
    }
}

/// Default: the region's VPC-internal endpoints. Plain http only to loopback (tests).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CloudEndpoints {
    pub ecs: Option<String>,
    pub vpc: Option<String>,
    pub antiddos: Option<String>,
    /// Cloud Firewall.
    pub cloudfw: Option<String>,
    /// Security Center.
    pub sas: Option<String>,
}

/// Whether an endpoint URL is acceptable: https to anywhere, http only to a loopback host.
fn endpoint_ok(url: &str) -> bool {
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => return false,
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    if https {
        return true;
    }
    // Host without the port; IPv6 literals are bracketed.
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What the instance may use; absent: not known, the check that needs it says so.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The instance's bandwidth limit per direction, Mbit/s (from the instance type).
    pub bandwidth_mbps: Option<f64>,
}

/// When the load and network checks warn or fail. Percentages are of the time (CPU, PSI), of
/// memory, or of the limit; a check warns when a value reaches its threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Share of all CPU time busy over a window.
    pub cpu_busy_pct: f64,
    /// One CPU this busy over a window is saturated: softirq work (packets) on it waits.
    pub cpu_saturated_pct: f64,
    pub cpu_iowait_pct: f64,
    /// Time the hypervisor ran something else while this instance's vCPUs wanted to run.
    pub cpu_steal_pct: f64,
    pub cpu_steal_fail_pct: f64,
    /// 1-minute load average per CPU (one sample without PSI).
    pub load_per_cpu: f64,
    /// PSI `some` avg10 of cpu, memory or io.
    pub pressure_some_pct: f64,
    /// PSI `full` avg10 of memory or io (every task stalled).
    pub pressure_full_pct: f64,
    pub pressure_full_fail_pct: f64,
    /// MemAvailable as a share of MemTotal: warn below, fail below the second.
    pub memory_available_pct: f64,
    pub memory_available_fail_pct: f64,
    /// Pages swapped in + out per second over a window.
    pub swap_pages_per_s: f64,
    /// OOM kills (since boot for one sample, in the window otherwise).
    pub oom_kills: u64,
    /// Share of a window a disk had I/O in flight.
    pub disk_busy_pct: f64,
    /// Processes in D state (in both samples, with two samples): warn, fail.
    pub dstate_processes: u64,
    pub dstate_fail_processes: u64,
    /// Throughput as a share of `limits.bandwidth_mbps`.
    pub bandwidth_pct: f64,
    /// Interface drops + errors: warn past both this many packets and this share.
    pub link_drops: u64,
    pub link_drops_pct: f64,
    /// Connection-tracking table fill.
    pub conntrack_pct: f64,
    pub conntrack_fail_pct: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            cpu_busy_pct: 90.0,
            cpu_saturated_pct: 95.0,
            cpu_iowait_pct: 20.0,
            cpu_steal_pct: 10.0,
            cpu_steal_fail_pct: 50.0,
            load_per_cpu: 2.0,
            pressure_some_pct: 40.0,
            pressure_full_pct: 20.0,
            pressure_full_fail_pct: 60.0,
            memory_available_pct: 10.0,
            memory_available_fail_pct: 3.0,
            swap_pages_per_s: 1000.0,
            oom_kills: 1,
            disk_busy_pct: 90.0,
            dstate_processes: 3,
            dstate_fail_processes: 20,
            bandwidth_pct: 90.0,
            link_drops: 1000,
            link_drops_pct: 1.0,
            conntrack_pct: 75.0,
            conntrack_fail_pct: 95.0,
        }
    }
}

/// `key = value` within `range`, else the error naming the key, the value and what is allowed.
fn within(
    key: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<(), String> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(format!(
        "{key} = {value}: expected {unit} between {} and {}",
        range.start(),
        range.end()
    ))
}

impl Thresholds {
    /// Every value finite and not negative; fail thresholds beyond their warn thresholds.
    fn validate(&self) -> Result<(), String> {
        // Every key, read through serde so a new threshold cannot be left unchecked.
        let values = toml::Value::try_from(self).map_err(|e| format!("thresholds: {e}"))?;
        for (key, v) in values.as_table().into_iter().flatten() {
            let v = v
                .as_float()
                .or(v.as_integer().map(|i| i as f64))
                .unwrap_or(f64::NAN);
            let (ok, expected) = match key.as_str() {
                k if k.ends_with("_pct") => {
                    ((0.0..=100.0).contains(&v), "a percentage between 0 and 100")
                }
                "load_per_cpu" => (
                    v > 0.0 && v <= 1000.0,
                    "a load per CPU above 0 and at most 1000",
                ),
                // A count threshold of 0 would warn on every healthy machine.
                "oom_kills" | "dstate_processes" | "dstate_fail_processes" | "link_drops" => (
                    (1.0..=1e12).contains(&v),
                    "a count between 1 and 1000000000000",
                ),
                _ => (v.is_finite() && v >= 0.0, "a number of at least 0"),
            };
            if !ok {
                return Err(format!("thresholds.{key} = {v}: expected {expected}"));
            }
        }
        let pairs = [
            (
                "cpu_steal_pct",
                self.cpu_steal_pct,
                "cpu_steal_fail_pct",
                self.cpu_steal_fail_pct,
            ),
            (
                "pressure_full_pct",
                self.pressure_full_pct,
                "pressure_full_fail_pct",
                self.pressure_full_fail_pct,
            ),
            (
                "conntrack_pct",
                self.conntrack_pct,
                "conntrack_fail_pct",
                self.conntrack_fail_pct,
            ),
            (
                "dstate_processes",
                self.dstate_processes as f64,
                "dstate_fail_processes",
                self.dstate_fail_processes as f64,
            ),
        ];
        for (warn, w, fail, f) in pairs {
            if f < w {
                return Err(format!("thresholds.{fail} = {f} is below thresholds.{warn} = {w}: expected the fail threshold at or above the warn threshold"));
            }
        }
        if self.memory_available_fail_pct > self.memory_available_pct {
            return Err(format!("thresholds.memory_available_fail_pct = {} is above thresholds.memory_available_pct = {}: memory warns below the first and fails below the second", self.memory_available_fail_pct, self.memory_available_pct));
        }
        Ok(())
    }
}

/// When to ask the instance metadata service for the values the cloud assigned.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetadataMode {
    /// Only where DMI says this is an Alibaba Cloud ECS instance.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub mode: MetadataMode,
    pub url: String,
    /// Per request.
    pub timeout_ms: u64,
    /// For the whole metadata read (all requests together). Additive to DESIGN.md's contract.
    pub budget_ms: u64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            mode: MetadataMode::Auto,
            url: "http://100.100.100.200".to_string(),
            timeout_ms: 1000,
            budget_ms: 5000,
        }
    }
}

impl MetadataConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Client CIDRs allowed when `listen` is not a loopback address (required then); others
    /// get 403. Loopback clients are always allowed. Additive to DESIGN.md's contract.
    pub allow: Vec<ipnet::IpNet>,
    /// Also serve on this unix socket (mode 0660). Additive to DESIGN.md's contract.
    pub unix_socket: Option<PathBuf>,
    /// `POST /v1/diagnose` runs at most once per this many seconds. Additive.
    pub diagnose_min_interval_s: u64,
    /// Open connections beyond this are closed at once (logged). Additive.
    pub max_connections: usize,
    /// A connection whose client reads nothing of a pending answer, or sends nothing between
    /// requests, for this long is closed. Additive.
    pub idle_timeout_s: u64,
    /// Requests served on one connection (pipelined or kept alive) before it is closed. Additive.
    pub max_requests_per_connection: u64,
    /// Status transitions kept for `GET /v1/history`. Additive.
    pub history_entries: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:9717".to_string(),
            allow: Vec::new(),
            unix_socket: None,
            diagnose_min_interval_s: 10,
            max_connections: 256,
            idle_timeout_s: 10,
            max_requests_per_connection: 1000,
            history_entries: 256,
        }
    }
}

impl ServerConfig {
    /// Validated in [`Config::parse`], so this only fails on a config built by hand.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen
            .parse()
            .map_err(|_| format!("server.listen = {:?} is not an address:port", self.listen))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RefreshConfig {
    pub interval_s: u64,
    /// A refresh taking longer is abandoned and the previous report is served marked stale.
    /// Additive to DESIGN.md's contract.
    pub timeout_s: u64,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            interval_s: 30,
            timeout_s: 20,
        }
    }
}

/// Filesystem roots the sources read. Tests and containers point these elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// sysctl.conf, sysctl.d and network configuration files. The vendor sysctl.d directories
    /// (`usr/lib/sysctl.d`, `run/sysctl.d`, ...) are read relative to this directory's parent,
    /// so a fixture tree `X/etc` brings its own `X/usr/lib/sysctl.d`.
    pub etc: PathBuf,
    /// DMI and NIC drivers.
    pub sys: PathBuf,
    /// `/proc/net/snmp` and the sysctls. Additive to DESIGN.md's contract.
    pub proc: PathBuf,
    /// Where the helper tools (`iptables-save`, `nft`, `ipset`) are run from, in order;
    /// `$PATH` is never searched. Additive to DESIGN.md's contract.
    pub tools: Vec<PathBuf>,
    /// `serve` keeps its history (status transitions) here: the unit's StateDirectory.
    /// Additive to DESIGN.md's contract.
    pub state: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            etc: PathBuf::from("/etc"),
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            tools: DEFAULT_TOOL_DIRS.iter().map(PathBuf::from).collect(),
            state: PathBuf::from("/var/lib/ecs-diag"),
        }
    }
}

impl PathsConfig {
    /// The root the vendor configuration directories hang off (`/` for `/etc`).
    pub fn root(&self) -> PathBuf {
        self.etc
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Loads `path`; with no explicit path, the default file if it exists, else the defaults.
    /// The commands put its tool directories in force (`sources::tools::set_dirs`) when they
    /// load or reload it.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::read(path)
    }

    fn read(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, must_exist) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default())
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Config::parse(&text).map_err(|message| ConfigError::Invalid { path, message })
    }

    /// Parses and validates TOML text; the error names the key and what was expected.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let d = &self.dns;
        within("dns.timeout_ms", d.timeout_ms, 1..=10_000, "milliseconds")?;
        within("dns.budget_ms", d.budget_ms, 1..=60_000, "milliseconds")?;
        if d.domains.len() > 32 {
            return Err(format!(
                "dns.domains has {} names: expected at most 32",
                d.domains.len()
            ));
        }
        for name in &d.domains {
            crate::sources::dns::valid_name(name)
                .map_err(|e| format!("dns.domains: {name:?}: {e}"))?;
        }
        let m = &self.metadata;
        if !m.url.starts_with("http://") {
            return Err(format!(
                "metadata.url = {:?}: expected a plain http:// URL such as \"http://100.100.100.200\"",
                m.url
            ));
        }
        within(
            "metadata.timeout_ms",
            m.timeout_ms,
            1..=60_000,
            "milliseconds",
        )?;
        within(
            "metadata.budget_ms",
            m.budget_ms,
            1..=300_000,
            "milliseconds",
        )?;
        let Ok(listen) = self.server.listen.parse::<SocketAddr>() else {
            return Err(format!(
                "server.listen = {:?}: expected an address and port such as \"127.0.0.1:9717\"",
                self.server.listen
            ));
        };
        if !listen.ip().is_loopback() && self.server.allow.is_empty() {
            return Err(format!(
                "server.listen = {:?} is not a loopback address: also set server.allow to the client CIDRs allowed to connect, e.g. allow = [\"10.0.0.0/8\"]",
                self.server.listen
            ));
        }
        within(
            "server.diagnose_min_interval_s",
            self.server.diagnose_min_interval_s,
            0..=3600,
            "seconds",
        )?;
        within(
            "refresh.timeout_s",
            self.refresh.timeout_s,
            1..=3600,
            "seconds",
        )?;
        self.thresholds.validate()?;
        if let Some(b) = self.limits.bandwidth_mbps {
            if !b.is_finite() || b <= 0.0 || b > 1e7 {
                return Err(format!(
                    "limits.bandwidth_mbps = {b}: expected Mbit/s above 0 and at most 10000000, e.g. 100"
                ));
            }
        }
        let s = &self.server;
        for (key, v, lo, hi) in [
            ("max_connections", s.max_connections as u64, 1, 65_536),
            ("idle_timeout_s", s.idle_timeout_s, 1, 3600),
            (
                "max_requests_per_connection",
                s.max_requests_per_connection,
                1,
                1_000_000,
            ),
            ("history_entries", s.history_entries as u64, 1, 65_536),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(format!(
                    "server.{key} = {v}: expected a value between {lo} and {hi}"
                ));
            }
        }
        within(
            "refresh.interval_s",
            self.refresh.interval_s,
            1..=86_400,
            "seconds",
        )?;
        let c = &self.cloud;
        within("cloud.budget_ms", c.budget_ms, 1..=60_000, "milliseconds")?;
        within("cloud.cache_s", c.cache_s, 0..=86_400, "seconds")?;
        for (key, url) in [
            ("ecs", &c.endpoints.ecs),
            ("vpc", &c.endpoints.vpc),
            ("antiddos", &c.endpoints.antiddos),
            ("cloudfw", &c.endpoints.cloudfw),
            ("sas", &c.endpoints.sas),
        ] {
            if let Some(u) = url.as_deref().filter(|u| !endpoint_ok(u)) {
                return Err(format!(
                    "cloud.endpoints.{key} = {u:?}: expected an https:// URL such as \"https://ecs-vpc.cn-hangzhou.aliyuncs.com\" (plain http:// only to a loopback address)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaged_config_is_the_defaults() {
        let text = include_str!("../../packaging/config.toml");
        assert_eq!(Config::parse(text).unwrap(), Config::default());
    }

    #[test]
    fn cloud_section_is_validated() {
        let c = Config::parse(
            "[cloud]\nmode = \"always\"\nbudget_ms = 500\ncache_s = 0\n[cloud.endpoints]\necs = \"http://127.0.0.1:18443\"\nvpc = \"https://vpc-vpc.cn-hangzhou.aliyuncs.com\"\nantiddos = \"http://[::1]:9\"\n",
        )
        .unwrap();
        assert_eq!(c.cloud.mode, CloudMode::Always);
        assert_eq!((c.cloud.budget_ms, c.cloud.cache_s), (500, 0));
        assert_eq!(Config::default().cloud.budget_ms, 3000);
        assert_eq!(Config::default().cloud.cache_s, 120);
        for (text, key) in [
            ("[cloud]\nbudget_ms = 0\n", "cloud.budget_ms = 0"),
            ("[cloud]\ncache_s = 100000\n", "cloud.cache_s = 100000"),
            (
                "[cloud.endpoints]\necs = \"http://ecs.aliyuncs.com\"\n",
                "cloud.endpoints.ecs",
            ),
            (
                "[cloud.endpoints]\nvpc = \"ftp://x\"\n",
                "cloud.endpoints.vpc",
            ),
            (
                "[cloud.endpoints]\nantiddos = \"http://127.0.0.1@evil.example\"\n",
                "cloud.endpoints.antiddos",
            ),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert!(e.contains(key), "{e}");
        }
        assert!(Config::parse("[cloud]\nmode = \"sometimes\"\n").is_err());
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn full_file_parses() {
        let c = Config::parse(
            r#"
[metadata]
mode = "always"
url = "http://127.0.0.1:8080"
timeout_ms = 200
[server]
listen = "127.0.0.1:9000"
[refresh]
interval_s = 10
[paths]
etc = "/tmp/x/etc"
sys = "/tmp/x/sys"
"#,
        )
        .unwrap();
        assert_eq!(c.metadata.mode, MetadataMode::Always);
        assert_eq!(c.metadata.timeout_ms, 200);
        assert_eq!(c.paths.root(), PathBuf::from("/tmp/x"));
        assert_eq!(c.paths.proc, PathBuf::from("/proc"));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[metadata]\nmod = \"auto\"\n").unwrap_err();
        assert!(e.contains("unknown field `mod`"), "{e}");
    }

    #[test]
    fn bad_enum_value_says_what_was_expected() {
        let e = Config::parse("[metadata]\nmode = \"sometimes\"\n").unwrap_err();
        assert!(e.contains("sometimes") && e.contains("always"), "{e}");
    }

    #[test]
    fn bad_type_is_named() {
        let e = Config::parse("[metadata]\ntimeout_ms = \"fast\"\n").unwrap_err();
        assert!(e.contains("timeout_ms") || e.contains("line 2"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let e = Config::parse("[metadata]\ntimeout_ms = 0\n").unwrap_err();
        assert!(e.contains("metadata.timeout_ms"), "{e}");
        let e = Config::parse("[metadata]\nurl = \"https://x\"\n").unwrap_err();
        assert!(e.contains("metadata.url"), "{e}");
        let e = Config::parse("[server]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(e.contains("server.listen"), "{e}");
    }

    #[test]
    fn public_listen_needs_an_allow_list() {
        let e = Config::parse("[server]\nlisten = \"0.0.0.0:9717\"\n").unwrap_err();
        assert!(e.contains("server.allow"), "{e}");
        let c = Config::parse("[server]\nlisten = \"0.0.0.0:9717\"\nallow = [\"10.0.0.0/8\"]\n")
            .unwrap();
        assert_eq!(c.server.allow.len(), 1);
        let e = Config::parse("[server]\nallow = [\"not-a-cidr\"]\n").unwrap_err();
        assert!(e.contains("allow"), "{e}");
    }

    #[test]
    fn thresholds_and_limits_parse_and_are_checked() {
        let c = Config::parse("[thresholds]\ncpu_busy_pct = 80\n[limits]\nbandwidth_mbps = 100\n")
            .unwrap();
        assert_eq!(c.thresholds.cpu_busy_pct, 80.0);
        assert_eq!(c.thresholds.cpu_saturated_pct, 95.0);
        assert_eq!(c.limits.bandwidth_mbps, Some(100.0));
        let e = Config::parse("[thresholds]\ncpu_busy_pct = -1\n").unwrap_err();
        assert!(e.contains("thresholds.cpu_busy_pct"), "{e}");
        let e = Config::parse("[thresholds]\nconntrack_fail_pct = 50\n").unwrap_err();
        assert!(
            e.contains("conntrack_fail_pct") && e.contains("conntrack_pct"),
            "{e}"
        );
        let e = Config::parse("[thresholds]\ndisk_busy_pct = inf\n").unwrap_err();
        assert!(e.contains("thresholds.disk_busy_pct = inf"), "{e}");
        let e = Config::parse("[limits]\nbandwidth_mbps = 0\n").unwrap_err();
        assert!(e.contains("limits.bandwidth_mbps"), "{e}");
        let e = Config::parse("[thresholds]\ncpu_busy = 80\n").unwrap_err();
        assert!(e.contains("cpu_busy"), "{e}");
    }

    /// Every threshold and server limit has a range; the error names the key, the value and
    /// the range.
    #[test]
    fn every_value_is_range_checked() {
        let cases = [
            (
                "[thresholds]\ncpu_busy_pct = 150\n",
                "thresholds.cpu_busy_pct = 150: expected a percentage between 0 and 100",
            ),
            (
                "[thresholds]\nbandwidth_pct = 101\n",
                "thresholds.bandwidth_pct = 101: expected a percentage",
            ),
            (
                "[thresholds]\nload_per_cpu = 0\n",
                "thresholds.load_per_cpu = 0: expected a load per CPU above 0",
            ),
            (
                "[thresholds]\noom_kills = 0\n",
                "thresholds.oom_kills = 0: expected a count between 1",
            ),
            (
                "[thresholds]\nswap_pages_per_s = nan\n",
                "thresholds.swap_pages_per_s = NaN: expected a number of at least 0",
            ),
            (
                "[server]\nmax_connections = 0\n",
                "server.max_connections = 0: expected a value between 1 and 65536",
            ),
            (
                "[server]\nidle_timeout_s = 0\n",
                "server.idle_timeout_s = 0: expected a value between 1 and 3600",
            ),
            (
                "[server]\nmax_requests_per_connection = 0\n",
                "server.max_requests_per_connection = 0",
            ),
            (
                "[refresh]\ninterval_s = 0\n",
                "refresh.interval_s = 0: expected seconds between 1 and 86400",
            ),
            (
                "[refresh]\ntimeout_s = 0\n",
                "refresh.timeout_s = 0: expected seconds between 1 and 3600",
            ),
            (
                "[limits]\nbandwidth_mbps = 1e9\n",
                "limits.bandwidth_mbps = 1000000000: expected Mbit/s above 0",
            ),
        ];
        for (text, says) in cases {
            let e = Config::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let c = Config::parse(
            "[thresholds]\nmemory_available_fail_pct = 0\n[server]\nmax_connections = 16\n",
        )
        .unwrap();
        assert_eq!(c.server.max_connections, 16);
    }

    #[test]
    fn missing_explicit_file_is_an_error_naming_it() {
        let e = Config::load(Some(Path::new("/nonexistent/ecs-diag.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ecs-diag.toml"), "{e}");
    }
}
