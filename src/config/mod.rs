//! Configuration: a YAML file with KubeletConfiguration's field names, overridden by kubelet's
//! flag names. An unknown or mistyped field is an error that names it, never silently ignored.
//!
//! # One table
//!
//! Every setting is written once, in the `settings!` table below: its doc comment (both its
//! `--help` text and its JSON Schema description), its [`Config`] field and type, its config-file
//! field, its flag, its default and the function that checks its value. The macro (its syntax is
//! described above its definition) turns the table into
//! - [`ConfigFile`], the file (serde and schemars: `staticlet config schema` prints its schema),
//! - [`Flags`], the command line (a clap `Args` struct, which main.rs flattens into its parser),
//! - [`Config`], the configuration in force, and [`Config::resolve`], which fills it in,
//! - [`SETTINGS`], the table's names, which the tests iterate.
//!
//! [`Config::resolve`] does the same for every setting: it takes the flag if it is given, else the
//! file's field, else the default (an empty string counts as unset), and passes the value it took
//! (the default too) through the setting's `parse` function. A `parse` error names the file field
//! (`fileCheckFrequency: "soon" is not a duration ...`), even when the value came from the flag.
//! Each type a file field or a flag has implements `Given`, which says whether that layer sets
//! the setting and hands over its raw value; the flag and the file field of a setting must hand
//! over the same raw type, or the table does not compile.
//!
//! # Adding a setting
//!
//! Add an entry to the table, regenerate the schema (`cargo run -- config schema >
//! deploy/staticlet.schema.json`) and run `cargo test --lib config`: the tests set every setting
//! by its flag and by its file field and check that both give the same `Config`, and that the
//! flag wins. A new kind of value needs a `parse` function (and, if its file field or flag has a
//! type no setting had, a `Given` impl), and the tests need a sample of it in `SAMPLES`.

pub mod kubelet;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pod_security::Level;

/// The table's syntax. Each entry is
///
/// ```text
/// /// Doc comment: the --help text and the schema description.
/// config_field: ConfigType {
///     #[schemars(...)]          // optional: more attributes of the file field
///     file "fileName": FileType,
///     #[arg(...)]               // optional: more attributes of the flag (global, env, ...)
///     flag "flag-name": FlagType,
///     default: "raw value",     // optional, parsed like a given value; without one, ConfigType is an Option
///     parse: function,          // fn(raw value) -> Result<value, message>
/// }
/// ```
///
/// FileType is the serde field's type (so the schema's type), always an `Option`; FlagType is the
/// clap field's type: `Option<T>` for a flag given at most once, `Vec<T>` for a repeatable one.
///
/// `defaults may call NAME;` names `Config::resolve`'s third argument (the host name) so that a
/// default can call it: the macro's code can only see a variable whose name the caller wrote.
/// Doc comments are matched as `tt` so that the derives see them as plain string literals.
macro_rules! settings {
    (
        defaults may call $host:ident;
        $(
            $(#[doc = $doc:tt])+
            $field:ident: $ty:ty {
                $(#[$file_attr:meta])*
                file $file:literal: $file_ty:ty,
                $(#[$flag_attr:meta])*
                flag $flag:literal: $flag_ty:ty,
                $(default: $default:expr,)?
                parse: $parse:expr $(,)?
            }
        )*
    ) => {
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
            $(
                $(#[doc = $doc])+
                #[serde(rename = $file)]
                $(#[$file_attr])*
                pub $field: $file_ty,
            )*
        }

        /// kubelet's flag names, meaning what they mean for kubelet; each overrides the file.
        #[derive(clap::Args, Debug, Clone, Default, PartialEq)]
        pub struct Flags {
            $(
                $(#[doc = $doc])+
                #[arg(long = $flag)]
                $(#[$flag_attr])*
                pub $field: $flag_ty,
            )*
        }

        /// The configuration in force, every value resolved.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                pub $field: $ty,
            )*
        }

        /// Every setting's names, in table order.
        pub const SETTINGS: &[Setting] = &[$(Setting { field: stringify!($field), file: $file, flag: $flag }),*];

        impl Config {
            /// Resolves each setting: the flag, else the file, else the default; then its `parse`.
            /// The last argument gives the host name, the default node name (tests fix it).
            pub fn resolve(file: ConfigFile, flags: Flags, $host: impl FnOnce() -> String) -> Result<Self, ConfigError> {
                Ok(Self {
                    $($field: {
                        let from_flag = Given::given(flags.$field).map_err(|m| invalid(concat!("--", $flag), m))?;
                        let from_file = Given::given(file.$field).map_err(|m| invalid($file, m))?;
                        let parse = |raw| $parse(raw).map_err(|m| invalid($file, m));
                        setting_value!(from_flag.or(from_file), parse $(, $default)?)
                    },)*
                })
            }
        }
    };
}

/// A setting's value from the raw value the layers give, if any. Without a default the setting is
/// an `Option`, `None` when unset; with one, an unset setting gets the default, parsed alike.
macro_rules! setting_value {
    ($given:expr, $parse:ident) => {
        $given.map($parse).transpose()?
    };
    ($given:expr, $parse:ident, $default:expr) => {
        $parse($given.unwrap_or_else(|| $default.into()))?
    };
}

/// Go durations, as KubeletConfiguration writes them: the schema's pattern for duration fields.
const GO_DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$";

settings! {
    defaults may call hostname;

    /// Directory of static pod manifests, or a single manifest file (kubelet: staticPodPath).
    static_pod_path: Option<PathBuf> {
        file "staticPodPath": Option<String>,
        flag "pod-manifest-path": Option<String>,
        parse: manifest_path,
    }
    /// URL polled for manifests: a Pod or PodList, YAML or JSON (kubelet: staticPodURL).
    static_pod_url: Option<String> {
        file "staticPodURL": Option<String>,
        flag "manifest-url": Option<String>,
        parse: http_url,
    }
    /// Headers sent with every manifest URL request (kubelet: staticPodURLHeader).
    static_pod_url_header: Vec<(String, String)> {
        file "staticPodURLHeader": Option<BTreeMap<String, Vec<String>>>,
        #[arg(value_name = "NAME:VALUE[,NAME:VALUE]")]
        flag "manifest-url-header": Vec<HeaderFlag>,
        default: Vec::new(),
        parse: plain,
    }
    /// How often the manifest path is re-listed in full, as a Go duration (default 20s).
    file_check_frequency: Duration {
        #[schemars(regex(pattern = GO_DURATION))]
        file "fileCheckFrequency": Option<String>,
        flag "file-check-frequency": Option<String>,
        default: "20s",
        parse: period,
    }
    /// How often the manifest URL is polled, as a Go duration (default 20s).
    http_check_frequency: Duration {
        #[schemars(regex(pattern = GO_DURATION))]
        file "httpCheckFrequency": Option<String>,
        flag "http-check-frequency": Option<String>,
        default: "20s",
        parse: period,
    }
    /// Root of container log files (default /var/log/pods).
    pod_logs_dir: PathBuf {
        file "podLogsDir": Option<String>,
        #[arg(global = true)]
        flag "pod-logs-dir": Option<String>,
        default: "/var/log/pods",
        parse: plain,
    }
    /// A running container's log file is rotated once it is this large, a quantity such as 10Mi
    /// (default 10Mi); a negative size turns rotation off.
    container_log_max_size: Option<u64> {
        file "containerLogMaxSize": Option<String>,
        flag "container-log-max-size": Option<String>,
        default: "10Mi",
        parse: log_max_size,
    }
    /// How many log files a container keeps, the one being written included; at least 2
    /// (default 5).
    container_log_max_files: usize {
        file "containerLogMaxFiles": Option<i32>,
        flag "container-log-max-files": Option<String>,
        default: "5",
        parse: count_of_at_least(2),
    }
    /// How many containers' logs are rotated at once; at least 1 (default 1).
    container_log_max_workers: usize {
        file "containerLogMaxWorkers": Option<i32>,
        flag "container-log-max-workers": Option<String>,
        default: "1",
        parse: count_of_at_least(1),
    }
    /// How often container log sizes are checked, as a Go duration (default 10s).
    container_log_monitor_interval: Duration {
        #[schemars(regex(pattern = GO_DURATION))]
        file "containerLogMonitorInterval": Option<String>,
        flag "container-log-monitor-interval": Option<String>,
        default: "10s",
        parse: period,
    }
    /// CRI endpoint of the container runtime (default unix:///run/containerd/containerd.sock).
    container_runtime_endpoint: String {
        file "containerRuntimeEndpoint": Option<String>,
        #[arg(env = "CONTAINER_RUNTIME_ENDPOINT")]
        flag "container-runtime-endpoint": Option<String>,
        default: "unix:///run/containerd/containerd.sock",
        parse: plain,
    }
    /// Timeout of one runtime call, as a Go duration (default 2m).
    runtime_request_timeout: Duration {
        #[schemars(regex(pattern = GO_DURATION))]
        file "runtimeRequestTimeout": Option<String>,
        flag "runtime-request-timeout": Option<String>,
        default: "2m",
        parse: period,
    }
    /// Follow the runtime's container events (CRI GetContainerEvents, containerd 1.7 and 2.x)
    /// where it has them, relisting only every 300 s as a safety net (default true); false
    /// relists every second, as on containerd 1.6. kubelet's counterpart is its EventedPLEG
    /// feature gate.
    container_events: bool {
        file "containerEvents": Option<bool>,
        #[arg(num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        flag "container-events": Option<String>,
        default: "true",
        parse: boolean,
    }
    /// Node name (default: the host name); kubelet's --hostname-override. kubelet takes it as a
    /// flag only.
    node_name: String {
        file "nodeName": Option<String>,
        #[arg(global = true, visible_alias = "hostname-override")]
        flag "node-name": Option<String>,
        default: hostname(),
        parse: node_name,
    }
    /// staticlet's state directory: emptyDir volumes live here (default /var/lib/staticlet).
    root_dir: PathBuf {
        file "rootDir": Option<String>,
        flag "root-dir": Option<String>,
        default: "/var/lib/staticlet",
        parse: plain,
    }
    /// Loopback address of the local status API used by `staticlet get pods`, /metrics, /healthz
    /// and /readyz (default 127.0.0.1:10251).
    status_address: SocketAddr {
        file "statusAddress": Option<String>,
        #[arg(global = true)]
        flag "status-address": Option<String>,
        default: "127.0.0.1:10251",
        parse: socket_address,
    }
    /// Kubeconfig of this node's identity (`system:node:<nodeName>`). When set, staticlet
    /// registers the Node and keeps a mirror pod of every static pod on the API server.
    kubeconfig: Option<PathBuf> {
        file "kubeconfig": Option<String>,
        flag "kubeconfig": Option<String>,
        parse: plain,
    }
    /// The node's InternalIP (default: the address of the default route's interface).
    node_ip: Option<String> {
        file "nodeIP": Option<String>,
        flag "node-ip": Option<String>,
        parse: plain,
    }
    /// Address of the health endpoint `/healthz`, which kubeadm's kubelet-check polls (default
    /// 127.0.0.1).
    healthz_bind_address: IpAddr {
        file "healthzBindAddress": Option<String>,
        flag "healthz-bind-address": Option<String>,
        default: "127.0.0.1",
        parse: ip_address,
    }
    /// Port of the health endpoint; 0 turns it off (default 10248).
    healthz_port: u16 {
        file "healthzPort": Option<u16>,
        flag "healthz-port": Option<String>,
        default: "10248",
        parse: port,
    }
    /// Address the kubelet API listens on (default 0.0.0.0, every address): what the API server
    /// calls for kubectl logs, exec, attach, port-forward, and metrics-server scrapes.
    address: IpAddr {
        file "address": Option<String>,
        flag "address": Option<String>,
        default: "0.0.0.0",
        parse: ip_address,
    }
    /// Port of the kubelet API, HTTPS, advertised in the Node's daemonEndpoints; 0 turns it off
    /// (default 10250).
    port: u16 {
        file "port": Option<u16>,
        flag "port": Option<String>,
        default: "10250",
        parse: port,
    }
    /// PEM certificate (chain) the kubelet API serves. Without it, a self-signed one serves until
    /// a kubelet-serving CSR is signed (serverTLSBootstrap).
    tls_cert_file: Option<PathBuf> {
        file "tlsCertFile": Option<String>,
        flag "tls-cert-file": Option<String>,
        parse: plain,
    }
    /// PEM private key of tlsCertFile.
    tls_private_key_file: Option<PathBuf> {
        file "tlsPrivateKeyFile": Option<String>,
        flag "tls-private-key-file": Option<String>,
        parse: plain,
    }
    /// CA bundle that client certificates of kubelet API callers are checked against; their
    /// user is the certificate's CN, their groups its O (kubelet: authentication.x509.clientCAFile).
    client_ca_file: Option<PathBuf> {
        file "authentication.x509.clientCAFile": Option<String>,
        flag "client-ca-file": Option<String>,
        parse: plain,
    }
    /// Whether bearer tokens are checked with a TokenReview (default true).
    authentication_token_webhook: Option<bool> {
        file "authentication.webhook.enabled": Option<bool>,
        flag "authentication-token-webhook": Option<String>,
        parse: boolean,
    }
    /// How long a TokenReview's answer is kept, as a Go duration (default 2m).
    authentication_token_webhook_cache_ttl: Duration {
        #[schemars(regex(pattern = GO_DURATION))]
        file "authentication.webhook.cacheTTL": Option<String>,
        flag "authentication-token-webhook-cache-ttl": Option<String>,
        default: "2m",
        parse: go_duration,
    }
    /// Whether a request with no client certificate and no token is let through as
    /// system:anonymous, to be authorized like any other (default false).
    anonymous_auth: Option<bool> {
        file "authentication.anonymous.enabled": Option<bool>,
        flag "anonymous-auth": Option<String>,
        parse: boolean,
    }
    /// Webhook (a SubjectAccessReview per request, cached; the default) or AlwaysAllow.
    authorization_mode: Option<AuthorizationMode> {
        file "authorization.mode": Option<String>,
        flag "authorization-mode": Option<String>,
        parse: authorization_mode,
    }
    /// How long an allowed SubjectAccessReview is kept, as a Go duration (default 5m).
    authorization_webhook_cache_authorized_ttl: Duration {
        #[schemars(regex(pattern = GO_DURATION))]
        file "authorization.webhook.cacheAuthorizedTTL": Option<String>,
        flag "authorization-webhook-cache-authorized-ttl": Option<String>,
        default: "5m",
        parse: go_duration,
    }
    /// How long a denied SubjectAccessReview is kept, as a Go duration (default 30s).
    authorization_webhook_cache_unauthorized_ttl: Duration {
        #[schemars(regex(pattern = GO_DURATION))]
        file "authorization.webhook.cacheUnauthorizedTTL": Option<String>,
        flag "authorization-webhook-cache-unauthorized-ttl": Option<String>,
        default: "30s",
        parse: go_duration,
    }
    /// Labels the Node is registered with, `key=value[,key=value]`; kubelet's rules: no label in
    /// the kubernetes.io or k8s.io namespaces but those a node may set on itself.
    node_labels: BTreeMap<String, String> {
        file "nodeLabels": Option<BTreeMap<String, String>>,
        #[arg(value_name = "KEY=VALUE[,KEY=VALUE]")]
        flag "node-labels": Vec<LabelsFlag>,
        default: BTreeMap::new(),
        parse: node_labels,
    }
    /// Taints the Node is registered with, `key[=value]:Effect[,...]`, besides staticlet's own
    /// `staticlet.io/static-pods-only:NoSchedule`.
    register_with_taints: Vec<NodeTaint> {
        file "registerWithTaints": Option<Vec<NodeTaint>>,
        #[arg(value_name = "KEY[=VALUE]:EFFECT[,...]")]
        flag "register-with-taints": Vec<TaintsFlag>,
        default: Vec::new(),
        parse: plain,
    }
    /// kubelet's TLS bootstrap kubeconfig (a bootstrap token): when --kubeconfig holds no client
    /// certificate that is still good, one is asked for with these credentials, written to
    /// certDirectory and --kubeconfig written to use it. Static pods run meanwhile.
    bootstrap_kubeconfig: Option<PathBuf> {
        file "bootstrapKubeconfig": Option<String>,
        flag "bootstrap-kubeconfig": Option<String>,
        parse: plain,
    }
    /// Directory of the node's certificates and keys, in kubelet's layout
    /// (`kubelet-client-current.pem`, `kubelet-server-current.pem`; default /var/lib/kubelet/pki).
    /// kubelet takes it as a flag only.
    cert_directory: PathBuf {
        file "certDirectory": Option<String>,
        flag "cert-dir": Option<String>,
        default: crate::certs::DEFAULT_CERT_DIR,
        parse: plain,
    }
    /// Renew the client certificate before it expires, with a CSR through the API server
    /// (default false; kubeadm sets it).
    rotate_certificates: bool {
        file "rotateCertificates": Option<bool>,
        #[arg(num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        flag "rotate-certificates": Option<String>,
        default: "false",
        parse: boolean,
    }
    /// Get the kubelet API's serving certificate from the cluster: a kubernetes.io/kubelet-serving
    /// CSR, which an admin approves (`kubectl certificate approve`); self-signed until then, and
    /// renewed before it expires (default false). kubelet's flag is --rotate-server-certificates.
    server_tls_bootstrap: bool {
        file "serverTLSBootstrap": Option<bool>,
        #[arg(num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        flag "rotate-server-certificates": Option<String>,
        default: "false",
        parse: boolean,
    }
    /// Refuse a manifest that someone other than root could change, as sshd's StrictModes does:
    /// a file, or its directory, writable by group or others or owned by another user than root
    /// (or staticlet's own). On by default; kubelet has no such check.
    static_pod_path_strict_modes: bool {
        file "staticPodPathStrictModes": Option<bool>,
        #[arg(num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        flag "static-pod-path-strict-modes": Option<String>,
        default: "true",
        parse: boolean,
    }
    /// Pod Security Standards level enforced on static pods of the manifest path: privileged
    /// (nothing is checked; the default, as kubelet), baseline or restricted. A manifest whose
    /// pod breaks it is refused with the API server's PodSecurity words.
    pod_security_enforce: Level {
        file "podSecurity.enforce": Option<String>,
        flag "pod-security-enforce": Option<String>,
        default: "privileged",
        parse: level,
    }
    /// The level enforced on static pods of the manifest URL (default: podSecurity.enforce).
    pod_security_url_enforce: Option<Level> {
        file "podSecurity.urlEnforce": Option<String>,
        flag "pod-security-url-enforce": Option<String>,
        parse: level,
    }
    /// The level above which a static pod is logged as a warning, and still run (default
    /// privileged: no warnings).
    pod_security_warn: Level {
        file "podSecurity.warn": Option<String>,
        flag "pod-security-warn": Option<String>,
        default: "privileged",
        parse: level,
    }
    /// Namespaces whose static pods are exempt from podSecurity (the API server's
    /// exemptions.namespaces), comma-separated as a flag.
    pod_security_exempt_namespaces: Vec<String> {
        file "podSecurity.exemptions.namespaces": Option<Vec<String>>,
        #[arg(value_name = "NAMESPACE[,NAMESPACE]")]
        flag "pod-security-exempt-namespaces": Vec<ListFlag>,
        default: Vec::new(),
        parse: plain,
    }
    /// runtimeClassNames whose static pods are exempt from podSecurity (the API server's
    /// exemptions.runtimeClasses), comma-separated as a flag.
    pod_security_exempt_runtime_classes: Vec<String> {
        file "podSecurity.exemptions.runtimeClasses": Option<Vec<String>>,
        #[arg(value_name = "CLASS[,CLASS]")]
        flag "pod-security-exempt-runtime-classes": Vec<ListFlag>,
        default: Vec::new(),
        parse: plain,
    }
    /// Accepted with kubelet 1.35's meaning, an image kept from image garbage collection;
    /// staticlet collects no images, and the runtime chooses the sandbox image.
    pod_infra_container_image: Option<String> {
        file "podInfraContainerImage": Option<String>,
        flag "pod-infra-container-image": Option<String>,
        parse: plain,
    }
}

/// One entry of the table: a setting's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The field of [`Config`], [`ConfigFile`] and [`Flags`].
    pub field: &'static str,
    /// The config-file field (KubeletConfiguration's name).
    pub file: &'static str,
    /// The flag, without its leading `--` (kubelet's name).
    pub flag: &'static str,
}

/// One `--manifest-url-header` value, kubelet's `Name:value[,Name:value]`. It is split by
/// [`Config::resolve`], so that a bad one is a configuration error like any other.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderFlag(pub String);

impl From<String> for HeaderFlag {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// One `--node-labels` value, kubelet's `key=value[,key=value]`; repeated flags add up.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelsFlag(pub String);

impl From<String> for LabelsFlag {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// One `--register-with-taints` value, kubelet's `key[=value]:Effect[,...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaintsFlag(pub String);

impl From<String> for TaintsFlag {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// One value of a list flag, comma-separated names; repeated flags add up.
#[derive(Debug, Clone, PartialEq)]
pub struct ListFlag(pub String);

impl From<String> for ListFlag {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// A taint the Node is registered with: v1.Taint as KubeletConfiguration's registerWithTaints
/// writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeTaint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

impl NodeTaint {
    fn checked(self) -> Result<Self, String> {
        if self.key.is_empty() {
            return Err("a taint needs a key".into());
        }
        if !matches!(self.effect.as_str(), "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(format!(
                "taint {}: effect {:?} is not NoSchedule, PreferNoSchedule or NoExecute",
                self.key, self.effect
            ));
        }
        Ok(self)
    }
}

/// What one layer (the command line or the file) says about a setting: `None` when it leaves the
/// setting unset, else the raw value the setting's `parse` takes. One impl per field type the
/// table uses; an error here names the flag or file field it came from.
trait Given {
    type Raw;
    fn given(self) -> Result<Option<Self::Raw>, String>;
}

/// A single value, in the file or as a flag. An empty string counts as unset.
impl Given for Option<String> {
    type Raw = String;
    fn given(self) -> Result<Option<String>, String> {
        Ok(self.filter(|v| !v.is_empty()))
    }
}

/// Headers in the file: each name with its values.
impl Given for Option<BTreeMap<String, Vec<String>>> {
    type Raw = Vec<(String, String)>;
    fn given(self) -> Result<Option<Self::Raw>, String> {
        Ok(self.map(|headers| {
            headers.into_iter().flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v))).collect()
        }))
    }
}

/// Headers as repeated flags: all of them, in order; when given, they replace the file's.
impl Given for Vec<HeaderFlag> {
    type Raw = Vec<(String, String)>;
    fn given(self) -> Result<Option<Self::Raw>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut headers = Vec::new();
        for flag in &self {
            headers.extend(parse_header_flag(&flag.0)?);
        }
        Ok(Some(headers))
    }
}

/// A port in the file: handed over as text, as the flag gives it.
impl Given for Option<u16> {
    type Raw = String;
    fn given(self) -> Result<Option<String>, String> {
        Ok(self.map(|port| port.to_string()))
    }
}

/// A boolean in the file: handed over as text, as the flag gives it.
impl Given for Option<bool> {
    type Raw = String;
    fn given(self) -> Result<Option<String>, String> {
        Ok(self.map(|b| b.to_string()))
    }
}

/// A count in the file (kubelet's int32): handed over as text, as the flag gives it.
impl Given for Option<i32> {
    type Raw = String;
    fn given(self) -> Result<Option<String>, String> {
        Ok(self.map(|count| count.to_string()))
    }
}

/// Labels in the file.
impl Given for Option<BTreeMap<String, String>> {
    type Raw = BTreeMap<String, String>;
    fn given(self) -> Result<Option<Self::Raw>, String> {
        Ok(self)
    }
}

/// Labels as repeated flags, merged in order (a later value of a key wins), as kubelet's are.
impl Given for Vec<LabelsFlag> {
    type Raw = BTreeMap<String, String>;
    fn given(self) -> Result<Option<Self::Raw>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut labels = BTreeMap::new();
        for pair in self.iter().flat_map(|flag| flag.0.split(',')).filter(|p| !p.trim().is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not of the form key=value"))?;
            labels.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        Ok(Some(labels))
    }
}

/// A list of names in the file.
impl Given for Option<Vec<String>> {
    type Raw = Vec<String>;
    fn given(self) -> Result<Option<Self::Raw>, String> {
        Ok(self)
    }
}

/// A list of names as repeated flags, each comma-separated.
impl Given for Vec<ListFlag> {
    type Raw = Vec<String>;
    fn given(self) -> Result<Option<Self::Raw>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let names = self.iter().flat_map(|flag| flag.0.split(',')).map(str::trim).filter(|n| !n.is_empty());
        Ok(Some(names.map(str::to_owned).collect()))
    }
}

/// Taints in the file, each checked.
impl Given for Option<Vec<NodeTaint>> {
    type Raw = Vec<NodeTaint>;
    fn given(self) -> Result<Option<Self::Raw>, String> {
        self.map(|taints| taints.into_iter().map(NodeTaint::checked).collect()).transpose()
    }
}

/// Taints as flags: kubelet's `key[=value]:Effect`, comma-separated.
impl Given for Vec<TaintsFlag> {
    type Raw = Vec<NodeTaint>;
    fn given(self) -> Result<Option<Self::Raw>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut taints = Vec::new();
        for spec in self.iter().flat_map(|flag| flag.0.split(',')).filter(|s| !s.trim().is_empty()) {
            let (key_value, effect) =
                spec.rsplit_once(':').ok_or_else(|| format!("{spec:?} is not of the form key[=value]:Effect"))?;
            let (key, value) = match key_value.split_once('=') {
                Some((key, value)) => (key, Some(value.to_owned())),
                None => (key_value, None),
            };
            taints.push(NodeTaint { key: key.trim().to_owned(), value, effect: effect.trim().to_owned() }.checked()?);
        }
        Ok(Some(taints))
    }
}

fn invalid(field: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { field, message }
}

// The settings' `parse` functions: a raw value in, the Config value or a message out.

/// The value as given (a `String`, or a `PathBuf` of it).
fn plain<R, T: From<R>>(value: R) -> Result<T, String> {
    Ok(value.into())
}

/// A Pod Security level: privileged, baseline or restricted.
fn level(text: String) -> Result<Level, String> {
    text.parse()
}

/// A boolean setting, as kubelet reads its boolean flags.
fn boolean(text: String) -> Result<bool, String> {
    parse_go_bool(&text).ok_or_else(|| format!("{text:?} is not true or false"))
}

/// Trailing slashes are dropped, so that a directory has one spelling (`/` stays `/`).
fn manifest_path(path: String) -> Result<PathBuf, String> {
    let trimmed = path.trim_end_matches('/');
    Ok(PathBuf::from(if trimmed.is_empty() { "/" } else { trimmed }))
}

fn http_url(url: String) -> Result<String, String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(format!("{url:?} is not an http:// or https:// URL"))
    }
}

fn go_duration(text: String) -> Result<Duration, String> {
    parse_go_duration(&text).ok_or_else(|| format!("{text:?} is not a duration such as 20s, 1m30s or 500ms"))
}

/// A Go duration above zero: a period of 0 would spin.
fn period(text: String) -> Result<Duration, String> {
    match go_duration(text.clone())? {
        Duration::ZERO => Err(format!("{text:?} must be more than 0")),
        period => Ok(period),
    }
}

/// kubelet's `parseMaxSize`: a quantity in bytes; a negative one means no rotation (None).
fn log_max_size(text: String) -> Result<Option<u64>, String> {
    let quantity = crate::cri::resources::Quantity::parse(&text)
        .map_err(|e| format!("{text:?} is not a quantity such as 10Mi: {e}"))?;
    Ok((!quantity.is_negative()).then(|| quantity.value() as u64))
}

/// A count (kubelet's int32) of at least `min`, as kubelet's validation wants: containerLogMaxFiles
/// more than 1 (the file being written and a rotated one), containerLogMaxWorkers at least 1.
fn count_of_at_least(min: i32) -> impl Fn(String) -> Result<usize, String> {
    move |text| match text.parse::<i32>() {
        Ok(count) if count >= min => Ok(count as usize),
        _ => Err(format!("{text:?} must be a whole number of at least {min}")),
    }
}

/// How kubelet API requests are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// A SubjectAccessReview to the API server per request (cached).
    Webhook,
    /// Every authenticated request is allowed.
    AlwaysAllow,
}

fn authorization_mode(text: String) -> Result<AuthorizationMode, String> {
    match text.as_str() {
        "Webhook" => Ok(AuthorizationMode::Webhook),
        "AlwaysAllow" => Ok(AuthorizationMode::AlwaysAllow),
        _ => Err(format!("{text:?} is not Webhook or AlwaysAllow")),
    }
}

fn ip_address(text: String) -> Result<IpAddr, String> {
    text.parse().map_err(|_| format!("{text:?} is not an IP address such as 127.0.0.1"))
}

fn port(text: String) -> Result<u16, String> {
    text.parse().map_err(|_| format!("{text:?} is not a port (0 to 65535)"))
}

/// Label namespaces kubelet lets a node label itself in; any other kubernetes.io or k8s.io label
/// would be refused by the NodeRestriction admission plugin (node-role.kubernetes.io/* is set by
/// kubeadm or an admin, with kubectl).
const SELF_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];
const SELF_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

fn node_labels(labels: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    for key in labels.keys() {
        let Some((prefix, _)) = key.split_once('/') else { continue };
        let reserved = ["kubernetes.io", "k8s.io"].iter().any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")));
        let allowed = SELF_LABELS.contains(&key.as_str())
            || SELF_LABEL_NAMESPACES.iter().any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")));
        if reserved && !allowed {
            return Err(format!(
                "{key}: a node may not set labels in the {prefix} namespace on itself (NodeRestriction \
                 refuses it); set it with kubectl label node"
            ));
        }
    }
    Ok(labels)
}

fn socket_address(text: String) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| format!("{text:?} is not an address such as 127.0.0.1:10251"))
}

/// Only the default, the host name, can be empty (an empty flag or field counts as unset).
fn node_name(name: String) -> Result<String, String> {
    if name.is_empty() { Err("empty, and the host name is unknown".into()) } else { Ok(name) }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist (yet)")]
    Missing { path: String },
    #[error("config file {path}: {message}")]
    Read { path: String, message: String },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

/// A config file as read: the settings, and the KubeletConfiguration fields it set that staticlet
/// accepts but does not act on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub file: ConfigFile,
    pub unused: Vec<Unused>,
}

/// A KubeletConfiguration field with no effect here, and why (see docs/KUBELET-CONFIG.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unused {
    pub field: &'static str,
    pub why: &'static str,
}

impl ConfigFile {
    pub fn load(path: &str) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ConfigError::Missing { path: path.into() },
            _ => ConfigError::Read { path: path.into(), message: e.to_string() },
        })?;
        Self::parse(path, &text)
    }

    /// staticlet's own file, or kubelet's (`kind: KubeletConfiguration`), told apart by kind.
    pub fn parse(path: &str, text: &str) -> Result<Loaded, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Loaded::default());
        }
        let located = |e: serde_saphyr::Error| {
            let at = e.location().map(|l| format!("line {}, column {}: ", l.line(), l.column())).unwrap_or_default();
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default().trim();
            ConfigError::Parse { path: path.into(), message: format!("{at}{first}") }
        };
        let mut document: serde_json::Map<String, serde_json::Value> = serde_saphyr::from_str(text).map_err(located)?;
        if kubelet::is_kubelet_configuration(path, &document)? {
            return kubelet::read(path, document);
        }
        if flatten_nested(&mut document) {
            let file = serde_json::from_value(serde_json::Value::Object(document))
                .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
            return Ok(Loaded { file, unused: Vec::new() });
        }
        let file = serde_saphyr::from_str(text).map_err(located)?;
        Ok(Loaded { file, unused: Vec::new() })
    }

    /// The JSON Schema of the file, as committed under deploy/.
    pub fn schema_json() -> String {
        let schema = schemars::schema_for!(ConfigFile);
        serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
    }
}

/// KubeletConfiguration's nested objects whose leaves are settings of their own.
const NESTED: &[&str] = &["authentication", "authorization", "podSecurity"];

/// Turns `authentication: {x509: {clientCAFile: F}}` into `authentication.x509.clientCAFile: F`,
/// the settings table's name for that leaf, so that each leaf has its own flag like any other
/// setting. Says whether there was anything to flatten.
pub(crate) fn flatten_nested(document: &mut serde_json::Map<String, serde_json::Value>) -> bool {
    fn leaves(prefix: String, value: serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (name, value) in fields {
                    leaves(format!("{prefix}.{name}"), value, out);
                }
            }
            leaf => out.push((prefix, leaf)),
        }
    }
    let mut flat = Vec::new();
    for root in NESTED {
        if let Some(value) = document.remove(*root) {
            leaves((*root).to_owned(), value, &mut flat);
        }
    }
    let any = !flat.is_empty();
    document.extend(flat);
    any
}

/// kubelet's `--manifest-url-header 'a:x,b:y'`: comma-separated `name:value` pairs.
pub fn parse_header_flag(flag: &str) -> Result<Vec<(String, String)>, String> {
    flag.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
            _ => Err(format!("{pair:?} is not of the form Name:value")),
        })
        .collect()
}

/// Go's `strconv.ParseBool`, which kubelet's boolean flags and the API's query booleans use.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
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
    use clap::{Args as _, FromArgMatches as _};

    use super::*;

    /// The flags' parser, reading no environment variable (the integration tests' environment sets
    /// CONTAINER_RUNTIME_ENDPOINT).
    fn command() -> clap::Command {
        Flags::augment_args(clap::Command::new("staticlet")).mut_args(|arg| arg.env(None))
    }

    fn flags(args: &[&str]) -> Flags {
        let matches = command().try_get_matches_from(std::iter::once("staticlet").chain(args.iter().copied()));
        Flags::from_arg_matches(&matches.unwrap()).unwrap()
    }

    fn flag(setting: &Setting, value: &str) -> Flags {
        flags(&[&format!("--{}={value}", setting.flag)])
    }

    fn resolve(yaml: &str, flags: Flags) -> Result<Config, ConfigError> {
        Config::resolve(ConfigFile::parse("test.yaml", yaml)?.file, flags, || "host-a".into())
    }

    #[test]
    fn pod_security_is_a_nested_object_as_the_api_servers_admission_configuration() {
        let config = resolve(
            "podSecurity:\n  enforce: baseline\n  warn: restricted\n  exemptions: {namespaces: [kube-system]}\n",
            Flags::default(),
        )
        .unwrap();
        assert_eq!(config.pod_security_enforce, Level::Baseline);
        assert_eq!(config.pod_security_warn, Level::Restricted);
        assert_eq!(config.pod_security_url_enforce, None, "the URL takes enforce's level unless told");
        assert_eq!(config.pod_security_exempt_namespaces, ["kube-system"]);
        let error = resolve("podSecurity: {enforce: strict}\n", Flags::default()).unwrap_err().to_string();
        assert!(
            error.contains("podSecurity.enforce") && error.contains("privileged, baseline or restricted"),
            "{error}"
        );
        let error = resolve("podSecurity: {enforcee: baseline}\n", Flags::default()).unwrap_err().to_string();
        assert!(error.contains("podSecurity.enforcee"), "a misspelt field is named: {error}");
    }

    /// Values in the file's YAML and the same values as flags, two of each kind of setting.
    const SAMPLES: &[(&str, &str)] = &[
        ("7m30s", "7m30s"),
        ("8s", "8s"),
        ("http://a.example/pods", "http://a.example/pods"),
        ("https://b.example/pods", "https://b.example/pods"),
        ("10.1.2.3:4567", "10.1.2.3:4567"),
        ("10.1.2.4:4568", "10.1.2.4:4568"),
        ("{X-A: [a, b], X-B: [c]}", "X-A:a,X-A:b,X-B:c"),
        ("{X-C: [d]}", "X-C:d"),
        ("10.9.8.7", "10.9.8.7"),
        ("10.9.8.6", "10.9.8.6"),
        ("12345", "12345"),
        ("23456", "23456"),
        ("{a.example/x: '1'}", "a.example/x=1"),
        ("{b.example/y: '2', c: '3'}", "b.example/y=2,c=3"),
        ("[{key: a.example/t, effect: NoSchedule}]", "a.example/t:NoSchedule"),
        ("[{key: b, value: v, effect: NoExecute}]", "b=v:NoExecute"),
        ("16Ki", "16Ki"),
        ("1.5G", "1.5G"),
        ("true", "true"),
        ("false", "false"),
        ("baseline", "baseline"),
        ("restricted", "restricted"),
        ("[kube-system, ops]", "kube-system,ops"),
        ("[gvisor]", "gvisor"),
        ("AlwaysAllow", "AlwaysAllow"),
        ("Webhook", "Webhook"),
    ];

    /// Two SAMPLES that `setting`'s file field accepts and that give different Configs, each
    /// with the flag value meaning the same and the Config the file gives: the first two that
    /// change the Config, or for a setting with two values (a boolean), the one that changes it
    /// and the default.
    fn samples(setting: &Setting) -> [(&'static str, &'static str, Config); 2] {
        let defaults = resolve("", Flags::default()).unwrap();
        let mut fitting: Vec<(&str, &str, Config)> = Vec::new();
        for &(yaml, flag) in SAMPLES {
            let Ok(config) = resolve(&format!("{}: {yaml}\n", setting.file), Flags::default()) else { continue };
            if !fitting.iter().any(|(_, _, seen)| *seen == config) {
                fitting.push((yaml, flag, config));
            }
        }
        fitting.sort_by_key(|(_, _, config)| *config == defaults);
        fitting.truncate(2);
        if fitting.iter().all(|(_, _, config)| *config == defaults) {
            fitting.clear();
        }
        fitting.try_into().unwrap_or_else(|_| panic!("fewer than two SAMPLES fit {}: add some", setting.file))
    }

    #[test]
    fn every_setting_reads_the_same_from_its_flag_and_its_file_field() {
        for setting in SETTINGS {
            for (_, value, from_file) in samples(setting) {
                let from_flag = resolve("", flag(setting, value)).unwrap();
                assert_eq!(from_flag, from_file, "--{} and {}", setting.flag, setting.file);
            }
        }
    }

    #[test]
    fn every_flag_overrides_its_file_field() {
        for setting in SETTINGS {
            let [(in_file, _, _), (_, in_flag, from_flag)] = samples(setting);
            let config = resolve(&format!("{}: {in_file}\n", setting.file), flag(setting, in_flag)).unwrap();
            assert_eq!(config, from_flag, "--{} and {}", setting.flag, setting.file);
        }
    }

    #[test]
    fn an_empty_flag_or_field_counts_as_unset() {
        let defaults = resolve("", Flags::default()).unwrap();
        for setting in SETTINGS {
            let [(in_file, _, from_file), _] = samples(setting);
            if let Ok(config) = resolve(&format!("{}: ''\n", setting.file), Flags::default()) {
                assert_eq!(config, defaults, "{}: ''", setting.file);
            }
            // A repeatable flag given at all replaces the file's values, as kubelet's does.
            let arg = command().get_arguments().find(|a| a.get_long() == Some(setting.flag)).cloned().unwrap();
            if !matches!(arg.get_action(), clap::ArgAction::Append) {
                let config = resolve(&format!("{}: {in_file}\n", setting.file), flag(setting, "")).unwrap();
                assert_eq!(config, from_file, "--{}=", setting.flag);
            }
        }
    }

    #[test]
    fn kubelet_field_names_are_read() {
        let config = resolve(
            "staticPodPath: /etc/kubernetes/manifests/\nstaticPodURL: http://127.0.0.1:8080/pods\n\
             staticPodURLHeader: {X-Token: [a, b]}\nfileCheckFrequency: 5s\nhttpCheckFrequency: 1m30s\n\
             podLogsDir: /tmp/logs\n",
            Flags::default(),
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
        let err = resolve("staticPodPth: /etc/kubernetes/manifests\n", Flags::default()).unwrap_err();
        assert!(err.to_string().contains("staticPodPth"), "{err}");
        assert!(err.to_string().contains("test.yaml"), "{err}");
    }

    #[test]
    fn mistyped_value_is_an_error_that_names_the_field() {
        let err = resolve("fileCheckFrequency: soon\n", Flags::default()).unwrap_err();
        assert!(err.to_string().starts_with("fileCheckFrequency:"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field_and_bad_flag_syntax_its_flag() {
        for (args, field) in [
            (["--runtime-request-timeout=soon"], "runtimeRequestTimeout:"),
            (["--manifest-url=ftp://host/pods"], "staticPodURL:"),
            (["--status-address=localhost"], "statusAddress:"),
            (["--manifest-url-header=X-Token"], "--manifest-url-header:"),
        ] {
            let err = resolve("", flags(&args)).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
        }
        let err = Config::resolve(ConfigFile::default(), Flags::default(), String::new).unwrap_err();
        assert!(err.to_string().starts_with("nodeName:"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let flags = flags(&[
            "--pod-manifest-path=/flag",
            "--node-name=node-b",
            "--manifest-url-header=A:1,B:2",
            "--manifest-url-header=A:3",
        ]);
        let config = resolve("staticPodPath: /file\nnodeName: node-c\nstaticPodURLHeader: {Z: [z]}\n", flags).unwrap();
        assert_eq!(config.static_pod_path, Some(PathBuf::from("/flag")));
        assert_eq!(config.node_name, "node-b");
        let expected: Vec<(String, String)> =
            [("A", "1"), ("B", "2"), ("A", "3")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(config.static_pod_url_header, expected);
    }

    #[test]
    fn defaults_match_kubelet() {
        let config = resolve("", Flags::default()).unwrap();
        assert_eq!(config.file_check_frequency, Duration::from_secs(20));
        assert_eq!(config.http_check_frequency, Duration::from_secs(20));
        assert_eq!(config.runtime_request_timeout, Duration::from_secs(120));
        assert_eq!(config.pod_logs_dir, PathBuf::from("/var/log/pods"));
        assert_eq!(config.container_runtime_endpoint, "unix:///run/containerd/containerd.sock");
        assert_eq!(config.root_dir, PathBuf::from("/var/lib/staticlet"));
        assert_eq!(config.status_address, SocketAddr::from(([127, 0, 0, 1], 10251)));
        assert_eq!(config.container_log_max_size, Some(10 << 20));
        assert_eq!(config.container_log_max_files, 5);
        assert_eq!(config.container_log_max_workers, 1);
        assert_eq!(config.container_log_monitor_interval, Duration::from_secs(10));
        assert_eq!((config.static_pod_path, config.static_pod_url, config.kubeconfig), (None, None, None));
    }

    #[test]
    fn the_runtime_endpoint_flag_reads_its_environment_variable() {
        let command = Flags::augment_args(clap::Command::new("staticlet"));
        let arg = command.get_arguments().find(|a| a.get_long() == Some("container-runtime-endpoint")).unwrap();
        assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new("CONTAINER_RUNTIME_ENDPOINT")));
    }

    #[test]
    fn node_labels_follow_kubelets_rules_for_the_kubernetes_namespaces() {
        for (labels, allowed) in [
            ("node.kubernetes.io/instance-type=m", true),
            ("kubelet.kubernetes.io/x=1", true),
            ("topology.kubernetes.io/zone=z", true),
            ("example.com/rack=r1,plain=yes", true),
            ("node-role.kubernetes.io/control-plane=", false),
            ("kubernetes.io/role=master", false),
            ("foo.k8s.io/bar=1", false),
        ] {
            let result = resolve("", flags(&[&format!("--node-labels={labels}")]));
            assert_eq!(result.is_ok(), allowed, "{labels}: {result:?}");
            if let Err(e) = result {
                assert!(e.to_string().starts_with("nodeLabels:") && e.to_string().contains("kubectl label"), "{e}");
            }
        }
    }

    #[test]
    fn taints_read_as_kubelet_writes_them_and_a_bad_effect_is_named() {
        let config = resolve("", flags(&["--register-with-taints=a=1:NoSchedule,b:NoExecute"])).unwrap();
        let taint = |key: &str, value: Option<&str>, effect: &str| NodeTaint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
        };
        assert_eq!(config.register_with_taints, [taint("a", Some("1"), "NoSchedule"), taint("b", None, "NoExecute")]);
        let err = resolve("registerWithTaints: [{key: a, effect: Sometimes}]\n", Flags::default()).unwrap_err();
        assert!(err.to_string().starts_with("registerWithTaints:") && err.to_string().contains("Sometimes"), "{err}");
        let err = resolve("", flags(&["--register-with-taints=a"])).unwrap_err();
        assert!(err.to_string().starts_with("--register-with-taints:"), "{err}");
    }

    #[test]
    fn hostname_override_is_kubelets_name_for_the_node_name() {
        assert_eq!(resolve("", flags(&["--hostname-override=node-k"])).unwrap().node_name, "node-k");
    }

    #[test]
    fn container_log_rotation_settings_follow_kubelets_rules() {
        let config = resolve("containerLogMaxSize: 16Ki\ncontainerLogMaxFiles: 2\n", Flags::default()).unwrap();
        assert_eq!((config.container_log_max_size, config.container_log_max_files), (Some(16384), 2));
        let off = resolve("", flags(&["--container-log-max-size=-1"])).unwrap();
        assert_eq!(off.container_log_max_size, None, "a negative size turns rotation off");
        for (yaml, field) in [
            ("containerLogMaxFiles: 1\n", "containerLogMaxFiles:"),
            ("containerLogMaxSize: big\n", "containerLogMaxSize:"),
            ("containerLogMaxWorkers: 0\n", "containerLogMaxWorkers:"),
            ("containerLogMonitorInterval: 0s\n", "containerLogMonitorInterval:"),
        ] {
            let err = resolve(yaml, Flags::default()).unwrap_err();
            assert!(err.to_string().starts_with(field), "{yaml}: {err}");
        }
    }

    #[test]
    fn certificate_settings_read_as_kubelets_do() {
        let defaults = resolve("", Flags::default()).unwrap();
        assert_eq!(defaults.cert_directory, PathBuf::from("/var/lib/kubelet/pki"));
        assert!(!defaults.rotate_certificates && !defaults.server_tls_bootstrap, "kubelet's defaults are false");
        let bare = resolve("", flags(&["--rotate-certificates", "--rotate-server-certificates"])).unwrap();
        assert!(bare.rotate_certificates && bare.server_tls_bootstrap, "a bare boolean flag means true");
        let off = resolve("rotateCertificates: true\n", flags(&["--rotate-certificates=F"])).unwrap();
        assert!(!off.rotate_certificates, "Go's spellings of false");
        let err = resolve("", flags(&["--rotate-certificates=maybe"])).unwrap_err();
        assert!(err.to_string().starts_with("rotateCertificates:"), "{err}");
    }

    #[test]
    fn a_zero_period_is_refused() {
        let err = resolve("fileCheckFrequency: 0s\n", Flags::default()).unwrap_err();
        assert!(err.to_string().starts_with("fileCheckFrequency:"), "{err}");
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
        let committed = include_str!("../../deploy/staticlet.schema.json");
        assert_eq!(
            committed,
            ConfigFile::schema_json(),
            "run `staticlet config schema > deploy/staticlet.schema.json`"
        );
    }
}
