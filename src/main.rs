//! The staticlet binary: the daemon (no subcommand, as kubelet) and the local tools.

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use staticlet::{
    config::{Config, ConfigFile, DEFAULT_STATUS_ADDRESS, Overrides},
    cri::{Observer, Runtime},
    logs,
    mirror::{self, MirrorProblems, MirrorSync},
    ops::{metrics::Metrics, readiness::Readiness, server},
    source,
    supervisor::{Context, Manager, Views, events::Events, status::human_age},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// How long SIGTERM waits for tasks to wind down. Pods are not stopped, so this is short.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// sysexits' EX_USAGE / EX_CONFIG: a bad command line or config file.
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(name = "staticlet", version, about = "Runs Kubernetes static pods through CRI, with or without an API server")]
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
                let req = logs::LogRequest { pod, namespace, container, node: config.node_name, follow, previous, tail, timestamps };
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
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STATICLET_LOG").unwrap_or_else(|_| "info".into()),
        )
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
    match runtime.block_on(daemon(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn daemon(config: Config) -> anyhow::Result<()> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        node = %config.node_name,
        manifests = ?config.static_pod_path,
        url = ?config.static_pod_url,
        runtime = %config.container_runtime_endpoint,
        "starting staticlet"
    );
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (readiness, runtime_latch) = Readiness::new();
    let manifests_latch = runtime_latch.fork();

    let runtime = Runtime::connect(&config.container_runtime_endpoint, config.runtime_request_timeout)?;
    let listener = server::bind(config.status_address)
        .await
        .with_context(|| format!("cannot listen on statusAddress {}", config.status_address))?;
    let observer = Observer::new();
    let metrics = Arc::new(Metrics::new());
    let views = Views::default();
    tracker.spawn(observer.clone().run(runtime.clone(), config.node_name.clone(), Duration::from_secs(1), shutdown.clone()));

    let desired = source::spawn(&config, &tracker, &shutdown);
    let problems = MirrorProblems::default();
    let mut events = Default::default();
    if let Some(kubeconfig) = &config.kubeconfig {
        let (sender, receiver) = Events::channel();
        events = sender;
        let runtime_version = match tokio::time::timeout(Duration::from_secs(2), runtime.version()).await {
            Ok(Ok((name, version))) => format!("{name}://{version}"),
            _ => "unknown".into(),
        };
        let settings = mirror::Settings {
            kubeconfig: kubeconfig.clone(),
            node: config.node_name.clone(),
            node_ip: config.node_ip.clone().unwrap_or_else(mirror::node::default_node_ip),
            runtime_version,
        };
        let sync = MirrorSync::connect(settings, desired.clone(), views.clone(), problems.clone(), receiver).await?;
        tracing::info!(kubeconfig = %kubeconfig.display(), "mirror pods enabled");
        tracker.spawn(sync.run(shutdown.clone()));
    }
    let ctx = Arc::new(Context {
        runtime: runtime.clone(),
        observer: observer.clone(),
        node: config.node_name.clone(),
        pod_logs_dir: config.pod_logs_dir.clone(),
        root_dir: config.root_dir.clone(),
        views: views.clone(),
        metrics: metrics.clone(),
        events,
    });
    tracker.spawn(Manager::new(ctx, tracker.clone(), shutdown.clone()).run(desired.clone()));
    tracker.spawn(server::serve(
        listener,
        server::ServerState {
            node: config.node_name.clone(),
            runtime_endpoint: config.container_runtime_endpoint.clone(),
            views,
            desired: desired.clone(),
            observer: observer.clone(),
            metrics,
            readiness: readiness.clone(),
            problems,
        },
        shutdown.clone(),
    ));
    tracing::info!(address = %config.status_address, "status API listening");

    // Readiness: the runtime answered once, and the first manifest snapshot is in.
    tracker.spawn(wait_for_runtime(runtime, runtime_latch, shutdown.clone()));
    let mut first = desired.clone();
    tracker.spawn(async move {
        let _ = first.wait_for(|d| !d.seen_sources.is_empty()).await;
        manifests_latch.release();
    });
    let ready_shutdown = shutdown.clone();
    tracker.spawn(async move {
        while !readiness.is_ready() {
            tokio::select! {
                _ = ready_shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        tracing::info!("ready");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    });

    wait_for_signal().await;
    tracing::info!("shutting down; pods keep running");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
    tracker.close();
    tokio::select! {
        _ = tracker.wait() => tracing::info!("stopped"),
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("tasks did not finish in time; exiting anyway"),
        _ = wait_for_signal() => tracing::warn!("second signal; exiting now"),
    }
    Ok(())
}

async fn wait_for_runtime(runtime: Runtime, latch: staticlet::ops::readiness::Latch, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    let mut logged = false;
    loop {
        match runtime.version().await {
            Ok((name, version)) => {
                tracing::info!(runtime = %name, version = %version, "container runtime answered");
                latch.release();
                return;
            }
            Err(e) if !logged => {
                tracing::warn!(error = %e, "waiting for the container runtime");
                logged = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        // systemd and `kill` ask us to stop with SIGTERM.
        _ = term.recv() => {}
        // Ctrl-C, when run by hand.
        _ = int.recv() => {}
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
    let body = http_get(&address, "/pods").with_context(|| format!("cannot reach the staticlet daemon at {url} (is it running?)"))?;
    if output == Some("json") {
        println!("{body}");
        return Ok(());
    }
    let status: server::LocalStatus = serde_json::from_str(&body).with_context(|| format!("unexpected answer from {url}"))?;
    print!("{}", render_pods(&status, std::time::SystemTime::now()));
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

fn render_pods(status: &server::LocalStatus, now: std::time::SystemTime) -> String {
    if status.pods.is_empty() && status.manifest_errors.is_empty() && status.runtime_error.is_none() {
        return format!("No static pods on node {}.\n", status.node);
    }
    let mut rows = vec![["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "SOURCE"].map(String::from).to_vec()];
    for pod in &status.pods {
        // AGE is the running sandbox's age when there is one: config.seen restarts with staticlet.
        let age = pod
            .started
            .as_deref()
            .unwrap_or(&pod.since)
            .parse::<jiff::Timestamp>()
            .map(|t| human_age(std::time::SystemTime::from(t), now))
            .unwrap_or_else(|_| "?".into());
        rows.push(vec![
            pod.namespace.clone(),
            pod.name.clone(),
            pod.ready.clone(),
            pod.status.clone(),
            pod.restarts.to_string(),
            age,
            if pod.ip.is_empty() { "<host>".into() } else { pod.ip.clone() },
            pod.source.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    let mut notes: Vec<String> = Vec::new();
    if let Some(e) = &status.runtime_error {
        notes.push(format!("container runtime: {e}"));
    }
    for pod in &status.pods {
        if pod.manifest_error.is_some() {
            notes.push(format!("{}: manifest is broken; the last good version keeps running", pod.name));
        }
        if let Some(e) = &pod.mirror_error {
            notes.push(format!("{}: {e}", pod.name));
        }
        if let Some(e) = &pod.last_error {
            notes.push(format!("{}: {e}", pod.name));
        }
    }
    notes.extend(status.manifest_errors.iter().cloned());
    if !notes.is_empty() {
        out.push_str("\nPROBLEMS\n");
        for note in notes {
            out.push_str(&format!("  {note}\n"));
        }
    }
    out
}
