//! The staticlet binary: the daemon (no subcommand, as kubelet) and the local tools.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use staticlet::{
    config::{Config, ConfigError, ConfigFile, Flags, Loaded, Unused},
    logs,
    ops::server,
};

/// sysexits' EX_USAGE / EX_CONFIG: a bad command line or config file.
const EXIT_CONFIG: u8 = 78;

/// `staticlet --version`: the release and the commit it was built from (build.rs), so a bug
/// report or a node's log names the exact code.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("STATICLET_GIT_REVISION"), ")");

#[derive(Parser)]
#[command(
    name = "staticlet",
    version = VERSION,
    about = "Runs Kubernetes static pods through CRI, with or without an API server",
    // As kubelet's flags: given twice, the last wins (kubeadm's drop-in passes KUBELET_EXTRA_ARGS
    // after its own flags, so an admin can override one).
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunFlags,
}

#[derive(Args)]
struct RunFlags {
    /// Config file: staticlet's (YAML, KubeletConfiguration field names; see
    /// deploy/staticlet.schema.json) or kubelet's own KubeletConfiguration (docs/KUBELET-CONFIG.md).
    #[arg(long, global = true)]
    config: Option<String>,
    /// One flag per setting, from the table in config.rs.
    #[command(flatten)]
    settings: Flags,
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
    /// Files made from this command line's definition, for packaging (hack/package): not a
    /// user's command, so hidden from --help.
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of the config file.
    Schema,
    /// Check a config file as the daemon would read it (with the flags given), starting nothing:
    /// prints "valid", or the error naming the file and field and exits as the daemon would
    /// (78 for a bad file, 1 for a missing one).
    Validate { file: String },
}

#[derive(Subcommand)]
enum Generate {
    /// bash, zsh and fish completions: staticlet.bash, _staticlet, staticlet.fish.
    Completions { dir: PathBuf },
    /// Man pages in section 1: staticlet.1 and one per subcommand.
    Man { dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => return run_daemon(&cli.run),
        Some(Command::Config { command: ConfigCommand::Schema }) => {
            print!("{}", ConfigFile::schema_json());
            Ok(())
        }
        Some(Command::Config { command: ConfigCommand::Validate { file } }) => return validate(&cli.run, &file),
        Some(Command::Generate { what }) => generate(what),
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

/// The file named by --config (if any) overridden by the flags.
fn resolve(flags: &RunFlags) -> Result<Config, ConfigError> {
    resolve_noting_unused(flags).map(|(config, _)| config)
}

/// As `resolve`, with the KubeletConfiguration fields the file set that have no effect here.
fn resolve_noting_unused(flags: &RunFlags) -> Result<(Config, Vec<Unused>), ConfigError> {
    let loaded = match &flags.config {
        Some(path) => ConfigFile::load(path)?,
        None => Loaded::default(),
    };
    Ok((Config::resolve(loaded.file, flags.settings.clone(), hostname)?, loaded.unused))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// `config validate FILE`: the daemon's own reading of the file and the flags, so "valid" means
/// the daemon would start with it, and an invalid one exits as the daemon would.
fn validate(flags: &RunFlags, file: &str) -> ExitCode {
    let flags = RunFlags { config: Some(file.to_owned()), settings: flags.settings.clone() };
    match resolve_noting_unused(&flags) {
        Ok((_, unused)) => {
            println!("{file}: valid");
            if !unused.is_empty() {
                let fields: Vec<&str> = unused.iter().map(|u| u.field).collect();
                eprintln!(
                    "note: kubelet configuration fields accepted without effect: {} (docs/KUBELET-CONFIG.md)",
                    fields.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            match &e {
                // A field's error names the field only (the daemon's log says which file it read).
                ConfigError::Invalid { .. } => eprintln!("error: config file {file}: {e}"),
                _ => eprintln!("error: {e}"),
            }
            config_exit(&e)
        }
    }
}

/// A config file that is not there yet is not a mistake a restart cannot fix: on a kubeadm node,
/// systemd starts the agent before `kubeadm init` writes config.yaml. So it exits 1 (systemd
/// restarts it, as kubelet's failure), and only a bad file or flag exits 78.
fn config_exit(error: &ConfigError) -> ExitCode {
    match error {
        ConfigError::Missing { .. } => ExitCode::FAILURE,
        _ => ExitCode::from(EXIT_CONFIG),
    }
}

fn generate(what: Generate) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    match what {
        Generate::Completions { dir } => {
            for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
                clap_complete::generate_to(shell, &mut Cli::command(), "staticlet", &dir)
                    .with_context(|| format!("{shell} completions into {}", dir.display()))?;
            }
        }
        Generate::Man { dir } => clap_mangen::generate_to(Cli::command(), &dir)
            .with_context(|| format!("man pages into {}", dir.display()))?,
    }
    Ok(())
}

/// Under systemd, logs go to the journal natively, so each event's fields (pod, namespace,
/// container, source, ...) are journal fields (`journalctl -u staticlet POD=kube-system/etcd-a`,
/// `-o json`); anywhere else, text on stderr.
fn init_logging() {
    use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let filter = tracing_subscriber::EnvFilter::try_from_env("STATICLET_LOG").unwrap_or_else(|_| "info".into());
    let registry = tracing_subscriber::registry().with(filter);
    if stderr_is_journal() {
        match tracing_journald::layer() {
            // No prefix: the fields keep their names (POD, not F_POD), as an operator would type them.
            Ok(journal) => return registry.with(journal.with_field_prefix(None)).init(),
            Err(e) => eprintln!("cannot write to the journal ({e}); logging to stderr"),
        }
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
}

/// systemd sets JOURNAL_STREAM to `<device>:<inode>` of the journal stream it gave the service;
/// only when stderr is still that stream (not redirected by a wrapper) is the journal the place.
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    rustix::fs::fstat(std::io::stderr()).is_ok_and(|stat| stream == format!("{}:{}", stat.st_dev, stat.st_ino))
}

fn run_daemon(flags: &RunFlags) -> ExitCode {
    init_logging();
    let config = match resolve_noting_unused(flags) {
        Ok((config, unused)) => {
            if !unused.is_empty() {
                let fields: Vec<&str> = unused.iter().map(|u| u.field).collect();
                tracing::info!(
                    fields = %fields.join(", "),
                    "kubelet configuration fields accepted without effect (why: docs/KUBELET-CONFIG.md)"
                );
                for u in &unused {
                    tracing::debug!(field = u.field, why = u.why, "kubelet configuration field without effect");
                }
            }
            config
        }
        Err(e) => {
            match &e {
                ConfigError::Missing { .. } => tracing::error!("{e}"),
                _ => tracing::error!("invalid configuration: {e}"),
            }
            return config_exit(&e);
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
    let address = resolve(flags)?.status_address.to_string();
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_version_names_the_release_and_the_git_revision() {
        let version = Cli::command().render_version();
        let revision = env!("STATICLET_GIT_REVISION");
        assert_eq!(version, format!("staticlet {} (git {revision})\n", env!("CARGO_PKG_VERSION")));
        assert!(revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()), "{revision}");
    }

    #[test]
    fn a_flag_given_twice_takes_its_last_value_and_repeatable_ones_add_up() {
        let cli = Cli::try_parse_from([
            "staticlet",
            "--node-ip=10.0.0.1",
            "--node-labels=a=1",
            "--node-ip=10.0.0.2",
            "--node-labels=b=2",
        ])
        .unwrap();
        assert_eq!(cli.run.settings.node_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(cli.run.settings.node_labels.len(), 2);
    }

    #[test]
    fn the_local_tools_take_the_global_flags_after_the_subcommand() {
        for tool in [&["get", "pods"][..], &["logs", "web"], &["config", "schema"], &["config", "validate", "f.yaml"]] {
            let args = ["staticlet"].iter().chain(tool).copied().chain([
                "--config=/etc/staticlet/config.yaml",
                "--node-name=node-a",
                "--pod-logs-dir=/logs",
                "--status-address=127.0.0.1:1",
            ]);
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.run.config.as_deref(), Some("/etc/staticlet/config.yaml"), "{tool:?}");
            let flags = &cli.run.settings;
            assert_eq!(flags.node_name.as_deref(), Some("node-a"), "{tool:?}");
            assert_eq!(flags.pod_logs_dir.as_deref(), Some("/logs"), "{tool:?}");
            assert_eq!(flags.status_address.as_deref(), Some("127.0.0.1:1"), "{tool:?}");
        }
    }
}
