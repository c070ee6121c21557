//! Configuration: a YAML file with KubeletConfiguration's field names, overridden by kubelet's
//! flag names. An unknown or mistyped field is an error that names it, never silently ignored.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const DEFAULT_RUNTIME_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";
pub const DEFAULT_POD_LOGS_DIR: &str = "/var/log/pods";
pub const DEFAULT_ROOT_DIR: &str = "/var/lib/staticlet";
pub const DEFAULT_STATUS_ADDRESS: &str = "127.0.0.1:10251";

/// The configuration file. Field names follow KubeletConfiguration where kubelet has the setting,
/// so an existing kubelet config's static pod fields can be copied over unchanged.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "StaticletConfiguration")]
pub struct ConfigFile {
    /// `staticlet.io/v1alpha1`; optional.
    pub api_version: Option<String>,
    /// `StaticletConfiguration`; optional.
    pub kind: Option<String>,
    /// Directory of static pod manifests, or a single manifest file (kubelet: staticPodPath).
    pub static_pod_path: Option<String>,
    /// URL polled for manifests: a Pod or PodList, YAML or JSON (kubelet: staticPodURL).
    #[serde(rename = "staticPodURL")]
    pub static_pod_url: Option<String>,
    /// Headers sent with every manifest URL request (kubelet: staticPodURLHeader).
    #[serde(rename = "staticPodURLHeader")]
    pub static_pod_url_header: Option<BTreeMap<String, Vec<String>>>,
    /// How often the manifest path is re-listed in full, as a Go duration (default 20s).
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub file_check_frequency: Option<String>,
    /// How often the manifest URL is polled, as a Go duration (default 20s).
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub http_check_frequency: Option<String>,
    /// Root of container log files (default /var/log/pods).
    pub pod_logs_dir: Option<String>,
    /// CRI endpoint of the container runtime (default unix:///run/containerd/containerd.sock).
    pub container_runtime_endpoint: Option<String>,
    /// Timeout of one runtime call, as a Go duration (default 2m).
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub runtime_request_timeout: Option<String>,
    /// Node name (default: the host name). kubelet takes it as a flag only.
    pub node_name: Option<String>,
    /// staticlet's state directory: emptyDir volumes live here (default /var/lib/staticlet).
    pub root_dir: Option<String>,
    /// Loopback address of the local status API used by `staticlet get pods`, /metrics, /healthz
    /// and /readyz (default 127.0.0.1:10251).
    pub status_address: Option<String>,
    /// Kubeconfig of this node's identity (`system:node:<nodeName>`). When set, staticlet
    /// registers the Node and keeps a mirror pod of every static pod on the API server.
    pub kubeconfig: Option<String>,
    /// The node's InternalIP (default: the address of the default route's interface).
    #[serde(rename = "nodeIP")]
    pub node_ip: Option<String>,
}

/// Values given on the command line; each overrides the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub static_pod_path: Option<String>,
    pub static_pod_url: Option<String>,
    pub static_pod_url_header: Vec<String>,
    pub file_check_frequency: Option<String>,
    pub http_check_frequency: Option<String>,
    pub pod_logs_dir: Option<String>,
    pub container_runtime_endpoint: Option<String>,
    pub node_name: Option<String>,
    pub root_dir: Option<String>,
    pub status_address: Option<String>,
    pub kubeconfig: Option<String>,
    pub node_ip: Option<String>,
}

/// The configuration in force, every value resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub static_pod_path: Option<PathBuf>,
    pub static_pod_url: Option<String>,
    pub static_pod_url_header: Vec<(String, String)>,
    pub file_check_frequency: Duration,
    pub http_check_frequency: Duration,
    pub pod_logs_dir: PathBuf,
    pub container_runtime_endpoint: String,
    pub runtime_request_timeout: Duration,
    pub node_name: String,
    pub root_dir: PathBuf,
    pub status_address: SocketAddr,
    pub kubeconfig: Option<PathBuf>,
    pub node_ip: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    Read { path: String, message: String },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl ConfigFile {
    pub fn load(path: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.into(), message: e.to_string() })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| {
            let at = e.location().map(|l| format!("line {}, column {}: ", l.line(), l.column())).unwrap_or_default();
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default().trim();
            ConfigError::Parse { path: path.into(), message: format!("{at}{first}") }
        })
    }

    /// The JSON Schema of the file, as committed under deploy/.
    pub fn schema_json() -> String {
        let schema = schemars::schema_for!(ConfigFile);
        serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
    }
}

impl Config {
    pub fn resolve(file: ConfigFile, flags: Overrides, hostname: impl FnOnce() -> String) -> Result<Self, ConfigError> {
        let pick = |flag: Option<String>, file: Option<String>| flag.or(file).filter(|v| !v.is_empty());
        let duration = |field: &'static str, value: Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(v) => parse_go_duration(&v).ok_or_else(|| ConfigError::Invalid {
                field,
                message: format!("{v:?} is not a duration such as 20s, 1m30s or 500ms"),
            }),
        };

        let mut headers: Vec<(String, String)> = file
            .static_pod_url_header
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v)))
            .collect();
        if !flags.static_pod_url_header.is_empty() {
            headers.clear();
            for flag in &flags.static_pod_url_header {
                headers.extend(parse_header_flag(flag)?);
            }
        }

        let status_address =
            pick(flags.status_address, file.status_address).unwrap_or_else(|| DEFAULT_STATUS_ADDRESS.into());
        let status_address = status_address.parse().map_err(|_| ConfigError::Invalid {
            field: "statusAddress",
            message: format!("{status_address:?} is not an address such as 127.0.0.1:10251"),
        })?;
        let node_name = pick(flags.node_name, file.node_name).unwrap_or_else(hostname);
        if node_name.is_empty() {
            return Err(ConfigError::Invalid {
                field: "nodeName",
                message: "empty, and the host name is unknown".into(),
            });
        }
        let static_pod_url = pick(flags.static_pod_url, file.static_pod_url);
        if let Some(url) = &static_pod_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                field: "staticPodURL",
                message: format!("{url:?} is not an http:// or https:// URL"),
            });
        }
        Ok(Self {
            static_pod_path: pick(flags.static_pod_path, file.static_pod_path)
                .map(|p| PathBuf::from(p.trim_end_matches('/').to_owned()).to_owned())
                .map(|p| if p.as_os_str().is_empty() { PathBuf::from("/") } else { p }),
            static_pod_url,
            static_pod_url_header: headers,
            file_check_frequency: duration(
                "fileCheckFrequency",
                pick(flags.file_check_frequency, file.file_check_frequency),
                Duration::from_secs(20),
            )?,
            http_check_frequency: duration(
                "httpCheckFrequency",
                pick(flags.http_check_frequency, file.http_check_frequency),
                Duration::from_secs(20),
            )?,
            pod_logs_dir: pick(flags.pod_logs_dir, file.pod_logs_dir)
                .unwrap_or_else(|| DEFAULT_POD_LOGS_DIR.into())
                .into(),
            container_runtime_endpoint: pick(flags.container_runtime_endpoint, file.container_runtime_endpoint)
                .unwrap_or_else(|| DEFAULT_RUNTIME_ENDPOINT.into()),
            runtime_request_timeout: duration(
                "runtimeRequestTimeout",
                file.runtime_request_timeout,
                Duration::from_secs(120),
            )?,
            node_name,
            root_dir: pick(flags.root_dir, file.root_dir).unwrap_or_else(|| DEFAULT_ROOT_DIR.into()).into(),
            status_address,
            kubeconfig: pick(flags.kubeconfig, file.kubeconfig).map(PathBuf::from),
            node_ip: pick(flags.node_ip, file.node_ip),
        })
    }
}

/// kubelet's `--manifest-url-header 'a:x,b:y'`: comma-separated `name:value` pairs.
pub fn parse_header_flag(flag: &str) -> Result<Vec<(String, String)>, ConfigError> {
    flag.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
            _ => Err(ConfigError::Invalid {
                field: "--manifest-url-header",
                message: format!("{pair:?} is not of the form Name:value"),
            }),
        })
        .collect()
}

/// Parses a Go duration ("20s", "1m30s", "500ms", "1.5h").
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str, flags: Overrides) -> Result<Config, ConfigError> {
        Config::resolve(ConfigFile::parse("test.yaml", yaml)?, flags, || "host-a".into())
    }

    #[test]
    fn kubelet_field_names_are_read() {
        let config = resolve(
            "staticPodPath: /etc/kubernetes/manifests/\nstaticPodURL: http://127.0.0.1:8080/pods\n\
             staticPodURLHeader: {X-Token: [a, b]}\nfileCheckFrequency: 5s\nhttpCheckFrequency: 1m30s\n\
             podLogsDir: /tmp/logs\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.static_pod_path, Some(PathBuf::from("/etc/kubernetes/manifests")));
        assert_eq!(config.static_pod_url.as_deref(), Some("http://127.0.0.1:8080/pods"));
        assert_eq!(config.static_pod_url_header, vec![("X-Token".into(), "a".into()), ("X-Token".into(), "b".into())]);
        assert_eq!(config.file_check_frequency, Duration::from_secs(5));
        assert_eq!(config.http_check_frequency, Duration::from_secs(90));
        assert_eq!(config.pod_logs_dir, PathBuf::from("/tmp/logs"));
        assert_eq!(config.node_name, "host-a");
    }

    #[test]
    fn unknown_field_is_an_error_that_names_it() {
        let err = resolve("staticPodPth: /etc/kubernetes/manifests\n", Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("staticPodPth"), "{err}");
        assert!(err.to_string().contains("test.yaml"), "{err}");
    }

    #[test]
    fn mistyped_value_is_an_error_that_names_the_field() {
        let err = resolve("fileCheckFrequency: soon\n", Overrides::default()).unwrap_err();
        assert!(err.to_string().starts_with("fileCheckFrequency:"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let flags = Overrides {
            static_pod_path: Some("/flag".into()),
            node_name: Some("node-b".into()),
            static_pod_url_header: vec!["A:1,B:2".into(), "A:3".into()],
            ..Default::default()
        };
        let config = resolve("staticPodPath: /file\nnodeName: node-c\nstaticPodURLHeader: {Z: [z]}\n", flags).unwrap();
        assert_eq!(config.static_pod_path, Some(PathBuf::from("/flag")));
        assert_eq!(config.node_name, "node-b");
        let expected: Vec<(String, String)> =
            [("A", "1"), ("B", "2"), ("A", "3")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(config.static_pod_url_header, expected);
    }

    #[test]
    fn defaults_match_kubelet() {
        let config = resolve("", Overrides::default()).unwrap();
        assert_eq!(config.file_check_frequency, Duration::from_secs(20));
        assert_eq!(config.http_check_frequency, Duration::from_secs(20));
        assert_eq!(config.pod_logs_dir, PathBuf::from("/var/log/pods"));
        assert_eq!(config.container_runtime_endpoint, DEFAULT_RUNTIME_ENDPOINT);
    }

    #[test]
    fn go_durations_parse() {
        for (text, secs) in [("20s", 20.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), ("0", 0.0)] {
            assert_eq!(parse_go_duration(text), Some(Duration::from_secs_f64(secs)), "{text}");
        }
        for bad in ["", "20", "s", "5 s", "1d"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn committed_schema_is_current() {
        let committed = include_str!("../deploy/staticlet.schema.json");
        assert_eq!(
            committed,
            ConfigFile::schema_json(),
            "run `staticlet config schema > deploy/staticlet.schema.json`"
        );
    }
}
