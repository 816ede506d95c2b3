//! The agent's configuration (`/etc/ecs-diag/config.toml`): every key optional, unknown keys and
//! bad values rejected with the file, the key and what was expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the daemon and the CLI look when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ecs-diag/config.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub metadata: MetadataConfig,
    pub server: ServerConfig,
    pub refresh: RefreshConfig,
    pub paths: PathsConfig,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:9717".to_string(),
            allow: Vec::new(),
            unix_socket: None,
            diagnose_min_interval_s: 10,
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
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            etc: PathBuf::from("/etc"),
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
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
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
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
        let m = &self.metadata;
        if !m.url.starts_with("http://") {
            return Err(format!(
                "metadata.url = {:?}: expected a plain http:// URL such as \"http://100.100.100.200\"",
                m.url
            ));
        }
        if !(1..=60_000).contains(&m.timeout_ms) {
            return Err(format!(
                "metadata.timeout_ms = {}: expected milliseconds between 1 and 60000",
                m.timeout_ms
            ));
        }
        if !(1..=300_000).contains(&m.budget_ms) {
            return Err(format!(
                "metadata.budget_ms = {}: expected milliseconds between 1 and 300000",
                m.budget_ms
            ));
        }
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
        if self.server.diagnose_min_interval_s > 3600 {
            return Err(format!(
                "server.diagnose_min_interval_s = {}: expected seconds between 0 and 3600",
                self.server.diagnose_min_interval_s
            ));
        }
        if !(1..=3600).contains(&self.refresh.timeout_s) {
            return Err(format!(
                "refresh.timeout_s = {}: expected seconds between 1 and 3600",
                self.refresh.timeout_s
            ));
        }
        if !(1..=86_400).contains(&self.refresh.interval_s) {
            return Err(format!(
                "refresh.interval_s = {}: expected seconds between 1 and 86400",
                self.refresh.interval_s
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn missing_explicit_file_is_an_error_naming_it() {
        let e = Config::load(Some(Path::new("/nonexistent/ecs-diag.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ecs-diag.toml"), "{e}");
    }
}
