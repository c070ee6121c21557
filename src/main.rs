//! The staticlet binary: the daemon (no subcommand, as kubelet) and the local tools.

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use staticlet::{
    config::{Config, ConfigFile, DEFAULT_STATUS_ADDRESS, Overrides},
    logs,
    ops::server,
};

/// sysexits' EX_USAGE / EX_CONFIG: a bad command line or config file.
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "staticlet",
    version,
    about = "Runs Kubernetes static pods through CRI, with or without an API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunFlags,
}

/// kubelet's flag names, meaning what they mean for kubelet.
#[derive(Args, Default)]
struct RunFlags {
    /// Config file (YAML, KubeletConfiguration field names; see deploy/staticlet.schema.json).
    #[arg(long, global = true)]
    config: Option<String>,
    /// Directory of static pod manifests, or one manifest file.
    #[arg(long)]
    pod_manifest_path: Option<String>,
    /// URL to poll for static pod manifests.
    #[arg(long)]
    manifest_url: Option<String>,
    /// 'Name:value[,Name:value]' headers for --manifest-url; repeatable.
    #[arg(long)]
    manifest_url_header: Vec<String>,
    /// Re-list interval of the manifest path (Go duration, default 20s).
    #[arg(long)]
    file_check_frequency: Option<String>,
    /// Poll interval of the manifest URL (Go duration, default 20s).
    #[arg(long)]
    http_check_frequency: Option<String>,
    /// Node name (default: the host name).
    #[arg(long, global = true)]
    node_name: Option<String>,
    /// CRI endpoint (default unix:///run/containerd/containerd.sock).
    #[arg(long, env = "CONTAINER_RUNTIME_ENDPOINT")]
    container_runtime_endpoint: Option<String>,
    /// Root of container log files (default /var/log/pods).
    #[arg(long, global = true)]
    pod_logs_dir: Option<String>,
    /// State directory (default /var/lib/staticlet).
    #[arg(long)]
    root_dir: Option<String>,
    /// Loopback address of the status API (default 127.0.0.1:10251).
    #[arg(long, global = true)]
    status_address: Option<String>,
    /// Kubeconfig with this node's identity; enables Node registration and mirror pods.
    #[arg(long)]
    kubeconfig: Option<String>,
    /// The node's InternalIP.
    #[arg(long)]
    node_ip: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show static pods, read from the running daemon.
    Get {
        /// Only `pods` is supported.
        resource: String,
        /// Print the daemon's JSON instead of a table.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// Print a container's logs from the CRI log files.
    Logs {
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(short = 'p', long)]
        previous: bool,
        #[arg(long)]
        tail: Option<usize>,
        #[arg(long)]
        timestamps: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of the config file.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => return run_daemon(cli.run),
        Some(Command::Config { command: ConfigCommand::Schema }) => {
            print!("{}", ConfigFile::schema_json());
            Ok(())
        }
        Some(Command::Get { resource, output }) => get(&cli.run, &resource, output.as_deref()),
        Some(Command::Logs { pod, container, namespace, follow, previous, tail, timestamps }) => {
            resolve(&cli.run).map_err(anyhow::Error::from).and_then(|config| {
                let req = logs::LogRequest {
                    pod,
                    namespace,
                    container,
                    node: config.node_name,
                    follow,
                    previous,
                    tail,
                    timestamps,
                };
                let path = logs::find_log(&config.pod_logs_dir, &req)?;
                logs::stream(&path, &req, &mut std::io::stdout().lock())?;
                Ok(())
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn resolve(flags: &RunFlags) -> Result<Config, staticlet::config::ConfigError> {
    let file = match &flags.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let overrides = Overrides {
        static_pod_path: flags.pod_manifest_path.clone(),
        static_pod_url: flags.manifest_url.clone(),
        static_pod_url_header: flags.manifest_url_header.clone(),
        file_check_frequency: flags.file_check_frequency.clone(),
        http_check_frequency: flags.http_check_frequency.clone(),
        pod_logs_dir: flags.pod_logs_dir.clone(),
        container_runtime_endpoint: flags.container_runtime_endpoint.clone(),
        node_name: flags.node_name.clone(),
        root_dir: flags.root_dir.clone(),
        status_address: flags.status_address.clone(),
        kubeconfig: flags.kubeconfig.clone(),
        node_ip: flags.node_ip.clone(),
    };
    Config::resolve(file, overrides, hostname)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

fn run_daemon(flags: RunFlags) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("STATICLET_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match resolve(&flags) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let result = runtime.block_on(async {
        tokio::spawn(stop_on_signals(shutdown.clone()));
        staticlet::daemon::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn get(flags: &RunFlags, resource: &str, output: Option<&str>) -> anyhow::Result<()> {
    if !matches!(resource, "pods" | "pod" | "po") {
        anyhow::bail!("unknown resource {resource:?}: only `pods` is supported");
    }
    let address = match &flags.config {
        Some(_) => resolve(flags)?.status_address.to_string(),
        None => flags.status_address.clone().unwrap_or_else(|| DEFAULT_STATUS_ADDRESS.into()),
    };
    let url = format!("http://{address}/pods");
    let body = http_get(&address, "/pods")
        .with_context(|| format!("cannot reach the staticlet daemon at {url} (is it running?)"))?;
    if output == Some("json") {
        println!("{body}");
        return Ok(());
    }
    let status: server::LocalStatus =
        serde_json::from_str(&body).with_context(|| format!("unexpected answer from {url}"))?;
    print!("{}", staticlet::ops::table::render_pods(&status, std::time::SystemTime::now()));
    Ok(())
}

/// A minimal HTTP/1.0 GET over loopback: the CLI needs no HTTP client stack for one request.
fn http_get(address: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        anyhow::bail!("{}", head.lines().next().unwrap_or(head));
    }
    Ok(body.to_owned())
}

/// The first SIGTERM or SIGINT starts the drain; a second one exits at once.
async fn stop_on_signals(shutdown: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    for _ in 0..2 {
        tokio::select! {
            // systemd and `kill` ask us to stop with SIGTERM.
            _ = term.recv() => {}
            // Ctrl-C, when run by hand.
            _ = int.recv() => {}
        }
        if shutdown.is_cancelled() {
            tracing::warn!("second signal; exiting now");
            std::process::exit(1);
        }
        shutdown.cancel();
    }
}
