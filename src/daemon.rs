//! The daemon's wiring, top to bottom: runtime, sources, supervisors, mirror sync, status API,
//! readiness; then wait for `shutdown` and drain. One CancellationToken, given by the caller
//! (main cancels it on SIGTERM/SIGINT; a test can cancel it in-process), and one TaskTracker that
//! every task runs under: the one shutdown path, which stops no pod.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    certs,
    config::{AuthorizationMode, Config},
    cri::{self, Observer, Runtime, SharedCri},
    logs,
    mirror::{self, MirrorProblems, MirrorSync},
    node_api::{self, NodeApi, authn, authz, tls},
    ops::{
        memory,
        metrics::Metrics,
        readiness::{Latch, Readiness},
        server, watchdog,
    },
    retry::{Doubling, LogOnce},
    source,
    supervisor::{Context, Manager, Views, events::Events},
};

/// How long SIGTERM waits for tasks to wind down. Pods are not stopped, so this is short.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The relister's period without container events: how late, at most, an exit nobody heard is
/// noticed. With events it is a safety net (`cri::events::EVENTED_RELIST_PERIOD`); the loop
/// still beats every `RELIST_PERIOD`, which is what the watchdog measures.
const RELIST_PERIOD: Duration = Duration::from_secs(1);

/// Beyond a relist pass's longest honest wait (its period and the runtime's request timeout),
/// how long it may lag before the watchdog takes it for wedged.
const WATCHDOG_SLACK: Duration = Duration::from_secs(5);

/// Runs the daemon until `shutdown` is cancelled: wires the pipeline, then drains. Stops no pod.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision = env!("STATICLET_GIT_REVISION"),
        node = %config.node_name,
        manifests = ?config.static_pod_path,
        url = ?config.static_pod_url,
        runtime = %config.container_runtime_endpoint,
        "starting staticlet"
    );
    let tracker = TaskTracker::new();
    let (readiness, runtime_latch) = Readiness::new();
    let manifests_latch = runtime_latch.fork();

    let metrics = Arc::new(Metrics::new());
    let runtime: SharedCri = Arc::new(
        Runtime::connect(&config.container_runtime_endpoint, config.runtime_request_timeout)?
            .instrumented(metrics.runtime_operations.clone()),
    );
    let listener = server::bind(config.status_address)
        .await
        .with_context(|| format!("cannot listen on statusAddress {}", config.status_address))?;
    let healthz = match config.healthz_port {
        0 => None,
        port => {
            let address = std::net::SocketAddr::new(config.healthz_bind_address, port);
            let listener = server::bind(address)
                .await
                .with_context(|| format!("cannot listen on healthzBindAddress:healthzPort {address}"))?;
            Some((listener, address))
        }
    };
    // Webhook authorization asks the API server; with none, no request could be allowed.
    let no_authorizer =
        config.kubeconfig.is_none() && config.authorization_mode != Some(AuthorizationMode::AlwaysAllow);
    let kubelet_api = match config.port {
        0 => None,
        _ if no_authorizer => {
            tracing::info!(
                "kubelet API off: Webhook authorization needs --kubeconfig (or authorization mode AlwaysAllow)"
            );
            None
        }
        port => {
            let address = std::net::SocketAddr::new(config.address, port);
            let listener = server::bind(address)
                .await
                .with_context(|| format!("cannot listen on the kubelet API's address:port {address}"))?;
            Some((listener, address))
        }
    };
    let observer = Observer::new();
    let views = Views::default();
    tracker.spawn(observer.clone().run(runtime.clone(), config.node_name.clone(), RELIST_PERIOD, shutdown.clone()));
    if config.container_events {
        tracker.spawn(cri::events::follow(
            runtime.clone(),
            observer.clone(),
            config.node_name.clone(),
            shutdown.clone(),
        ));
    } else {
        tracing::info!("container events off (containerEvents: false); relisting every second");
    }
    if let Some(every) = watchdog::period_from_systemd() {
        let stale = RELIST_PERIOD + config.runtime_request_timeout + WATCHDOG_SLACK;
        tracing::info!(ping_every = ?every, wedged_after = ?stale, "systemd watchdog on");
        tracker.spawn(watchdog::run(observer.heartbeat(), every, stale, shutdown.clone(), || {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }));
    }

    tracker.spawn(logs::rotate::run(
        runtime.clone(),
        observer.clone(),
        logs::rotate::Settings::of(&config),
        shutdown.clone(),
    ));

    tracker.spawn(logs::space::watch(
        config.pod_logs_dir.clone(),
        config.container_log_monitor_interval,
        metrics.pod_logs_dir_free_bytes.clone(),
        shutdown.clone(),
    ));

    tracker.spawn(memory::trim_every(memory::TRIM_EVERY, shutdown.clone()));

    let desired = source::spawn(&config, &metrics, &tracker, &shutdown);
    let node_ip = config.node_ip.clone().unwrap_or_else(mirror::node::default_node_ip);
    let problems = MirrorProblems::default();
    let mut events = Default::default();
    // The node's API client, once there is one (at once, or after TLS bootstrap): the kubelet
    // API's token and access reviews and the serving CSR use it.
    let (client_tx, client) = tokio::sync::watch::channel::<Option<kube::Client>>(None);
    let client_tx = Arc::new(client_tx);
    if let Some(kubeconfig) = &config.kubeconfig {
        let bootstrap = needs_bootstrap(kubeconfig, config.bootstrap_kubeconfig.as_deref())?.then(|| {
            let from = config.bootstrap_kubeconfig.clone().unwrap_or_default();
            certs::Bootstrap::new(kubeconfig, &from, &config.cert_directory, &config.node_name)
        });
        let (sender, receiver) = Events::channel();
        events = sender;
        let runtime_version = match tokio::time::timeout(Duration::from_secs(2), runtime.version()).await {
            Ok(Ok((name, version))) => format!("{name}://{version}"),
            _ => "unknown".into(),
        };
        let settings = mirror::Settings {
            kubeconfig: kubeconfig.clone(),
            node: config.node_name.clone(),
            node_ip: node_ip.clone(),
            runtime_version,
            labels: config.node_labels.clone(),
            taints: config.register_with_taints.clone(),
            kubelet_port: config.port,
        };
        let mirrors = Mirrors {
            settings,
            desired: desired.clone(),
            views: views.clone(),
            problems: problems.clone(),
            events: receiver,
            metrics: metrics.clone(),
        };
        let clients = certs::ClientCerts::new(kubeconfig, &config.cert_directory, &config.node_name);
        let rotate = config.rotate_certificates;
        match bootstrap {
            None => {
                let (client, in_use) = clients.client().await?;
                tracing::info!(kubeconfig = %kubeconfig.display(), "mirror pods enabled");
                mirrors.start(client, in_use, rotate.then_some(clients), &client_tx, &tracker, &shutdown);
            }
            // The pods start now; the mirrors once the cluster has signed the node's certificate.
            Some(bootstrap) => {
                let (tracker, shutdown, client_tx) = (tracker.clone(), shutdown.clone(), client_tx.clone());
                tracker.clone().spawn(async move {
                    if !bootstrap.run(&shutdown).await {
                        return;
                    }
                    match clients.client().await {
                        Ok((client, in_use)) => {
                            tracing::info!(kubeconfig = %bootstrap.kubeconfig.display(), "mirror pods enabled");
                            mirrors.start(client, in_use, rotate.then_some(clients), &client_tx, &tracker, &shutdown);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the bootstrapped kubeconfig does not work; no mirror pods")
                        }
                    }
                });
            }
        }
    }
    let ctx = Arc::new(Context {
        runtime: runtime.clone(),
        observer: observer.clone(),
        node: config.node_name.clone(),
        node_ip: node_ip.clone(),
        pod_logs_dir: config.pod_logs_dir.clone(),
        root_dir: config.root_dir.clone(),
        views: views.clone(),
        metrics: metrics.clone(),
        events,
    });
    tracker.spawn(Manager::new(ctx, tracker.clone(), shutdown.clone()).run(desired.clone()));
    if let Some((listener, address)) = kubelet_api {
        let api = NodeApi {
            node: config.node_name.clone(),
            node_ip: node_ip.clone(),
            runtime: runtime.clone(),
            observer: observer.clone(),
            desired: desired.clone(),
            views: views.clone(),
            metrics: metrics.clone(),
            authn: authn::Authenticator::new(
                if config.authentication_token_webhook == Some(false) {
                    tokio::sync::watch::channel(None).1
                } else {
                    client.clone()
                },
                config.anonymous_auth == Some(true),
                config.authentication_token_webhook_cache_ttl,
            ),
            authz: authz::Authorizer::new(
                client.clone(),
                config.node_name.clone(),
                config.authorization_mode.unwrap_or(AuthorizationMode::Webhook),
                config.authorization_webhook_cache_authorized_ttl,
                config.authorization_webhook_cache_unauthorized_ttl,
            ),
            stats_files: node_api::stats::NodeFiles::host(&config.root_dir),
            rates: Default::default(),
        };
        let source = certs::ServingSource::choose(
            config.tls_cert_file.as_deref(),
            config.tls_private_key_file.as_deref(),
            config.server_tls_bootstrap,
        )?;
        let initial = match &source {
            certs::ServingSource::Files { cert, key } => certs::serving::from_files(cert, key)?,
            certs::ServingSource::Bootstrap | certs::ServingSource::SelfSigned => {
                tls::self_signed(&config.node_name, std::slice::from_ref(&node_ip))?.0
            }
        };
        let serving = Arc::new(tls::ServingCert::new(initial));
        if source == certs::ServingSource::Bootstrap {
            // A signed certificate from an earlier run is served at once; else the self-signed
            // one serves until the kubelet-serving CSR is approved (by an operator) and issued.
            let names = [config.node_name.clone(), node_ip.clone()];
            let renewal = certs::Serving::start(&config.cert_directory, &config.node_name, &names, &serving)?;
            let (slot, mut client, shutdown) = (serving.clone(), client.clone(), shutdown.clone());
            tracker.spawn(async move {
                let first = match client.wait_for(Option::is_some).await {
                    Ok(first) => first.clone().expect("waited for Some"),
                    Err(_) => return,
                };
                // Renewed client certificates reach the serving renewal too.
                let (renewed_tx, renewed) = tokio::sync::watch::channel(first);
                let forward = async move {
                    while client.changed().await.is_ok() {
                        if let Some(c) = client.borrow().clone() {
                            renewed_tx.send_replace(c);
                        }
                    }
                };
                tokio::select! {
                    _ = renewal.run(slot, renewed, shutdown) => {}
                    _ = forward => {}
                }
            });
        }
        let tls = tls::server_config(serving, config.client_ca_file.as_deref())?;
        tracker.spawn(node_api::serve(listener, Arc::new(tls), Arc::new(api), shutdown.clone()));
        tracing::info!(%address, client_ca = ?config.client_ca_file, "kubelet API listening");
    }
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
    if let Some((listener, address)) = healthz {
        tracker.spawn(server::serve_healthz(listener, shutdown.clone()));
        tracing::info!(%address, "health endpoint listening");
    }

    // Readiness: the runtime answered once, and the first manifest snapshot is in.
    tracker.spawn(wait_for_runtime(runtime, runtime_latch, shutdown.clone()));
    let mut first = desired.clone();
    tracker.spawn(async move {
        let _ = first.wait_for(|d| !d.seen_sources.is_empty()).await;
        manifests_latch.release();
    });
    let ready_shutdown = shutdown.clone();
    tracker.spawn(async move {
        tokio::select! {
            _ = ready_shutdown.cancelled() => {}
            _ = readiness.wait() => {
                tracing::info!("ready");
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            }
        }
    });

    shutdown.cancelled().await;
    tracing::info!("shutting down; pods keep running");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracker.close();
    tokio::select! {
        _ = tracker.wait() => tracing::info!("stopped"),
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("tasks did not finish in time; exiting anyway"),
    }
    Ok(())
}

/// What the mirror sync needs besides its client.
struct Mirrors {
    settings: mirror::Settings,
    desired: tokio::sync::watch::Receiver<Arc<crate::desired::Desired>>,
    views: Views,
    problems: MirrorProblems,
    events: tokio::sync::mpsc::UnboundedReceiver<crate::supervisor::events::PodEvent>,
    metrics: Arc<Metrics>,
}

impl Mirrors {
    /// Starts the mirror sync with `client`; with `rotation`, renews its certificate and hands
    /// each renewed client to the sync and to the kubelet API (`shared`).
    fn start(
        self,
        client: kube::Client,
        in_use: Option<certs::identity::CertInfo>,
        rotation: Option<certs::ClientCerts>,
        shared: &Arc<tokio::sync::watch::Sender<Option<kube::Client>>>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        shared.send_replace(Some(client.clone()));
        let mut sync =
            MirrorSync::new(client.clone(), self.settings, self.desired, self.views, self.problems, self.events)
                .with_metrics(self.metrics);
        if let Some(rotation) = rotation {
            let (renewed_tx, renewed) = tokio::sync::watch::channel(client);
            tracker.spawn(rotation.run(in_use, renewed_tx, shutdown.clone()));
            sync = sync.with_rotation(renewed.clone());
            let (shared, mut renewed) = (shared.clone(), renewed);
            tracker.spawn(async move {
                while renewed.changed().await.is_ok() {
                    shared.send_replace(Some(renewed.borrow().clone()));
                }
            });
        }
        tracker.spawn(sync.run(tracker.clone(), shutdown.clone()));
    }
}

/// Whether --kubeconfig must be TLS-bootstrapped first, as kubelet decides it: with a bootstrap
/// kubeconfig, whenever the kubeconfig holds no client certificate that is still good. A
/// kubeconfig that exists is used as it is when there is nothing to bootstrap from.
fn needs_bootstrap(kubeconfig: &std::path::Path, bootstrap: Option<&std::path::Path>) -> anyhow::Result<bool> {
    let exists = kubeconfig.exists();
    match bootstrap {
        Some(_) if certs::kubeconfig::still_valid(kubeconfig, jiff::Timestamp::now()).unwrap_or(false) => Ok(false),
        Some(bootstrap) if bootstrap.exists() => Ok(true),
        _ if exists => Ok(false),
        Some(bootstrap) => anyhow::bail!(
            "kubeconfig {} does not exist, nor does bootstrap kubeconfig {}: write one (kubeadm join writes the \
             bootstrap kubeconfig, kubeadm init the kubeconfig)",
            kubeconfig.display(),
            bootstrap.display()
        ),
        None => anyhow::bail!("kubeconfig {} does not exist", kubeconfig.display()),
    }
}

async fn wait_for_runtime(runtime: SharedCri, latch: Latch, shutdown: CancellationToken) {
    let mut delay = Doubling::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut failure = LogOnce::default();
    loop {
        match runtime.version().await {
            Ok((name, version)) => {
                tracing::info!(runtime = %name, version = %version, "container runtime answered");
                latch.release();
                return;
            }
            Err(e) => {
                if failure.failed(e.to_string()) {
                    tracing::warn!(error = %e, "waiting for the container runtime");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay.next_wait()) => {}
        }
    }
}
