//! One request: authenticate, authorize, then route by kubelet's paths.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{Body, NodeApi, authn, authz, full, logs, proxy, stats};
use crate::{
    cri::{ContainerInfo, RuntimePod, StreamRequest, Streams},
    manifest::StaticPod,
};

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(body))
        .expect("a static response builds")
}

fn json(value: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(value.to_string()))
        .expect("a static response builds")
}

pub async fn handle(api: &Arc<NodeApi>, req: Request<Incoming>, certificate: Option<&authn::User>) -> Response<Body> {
    let user = match api.authn.authenticate(certificate, req.headers()).await {
        Ok(user) => user,
        Err(authn::AuthnError::Unauthorized) => return text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Err(e) => {
            tracing::warn!(error = %e, "kubelet API: authentication failed");
            return text(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
    };
    let path = req.uri().path().to_owned();
    match api.authz.authorize(&user, req.method(), &path).await {
        Ok(()) => {}
        Err(e @ authz::AuthzError::Forbidden { .. }) => return text(StatusCode::FORBIDDEN, e.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, user = %user.name, "kubelet API: authorization failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, format!("Authorization error (user={}): {e}", user.name));
        }
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => text(StatusCode::OK, "ok"),
        (&Method::GET, ["pods"] | ["pods", ""]) => json(&pod_list(api)),
        (&Method::GET, ["metrics"]) => {
            with_type(stats::CONTENT_TYPE, api.metrics.scrape(&api.observer.latest(), &api.desired.borrow()))
        }
        (&Method::GET, ["metrics", "resource"]) => match sample(api).await {
            Ok(sample) => with_type(stats::CONTENT_TYPE, stats::resource_metrics(&sample)),
            Err(e) => {
                tracing::warn!(error = %e, "kubelet API: stats");
                with_type(stats::CONTENT_TYPE, stats::resource_metrics_failed())
            }
        },
        (&Method::GET, ["stats", "summary"]) => match sample(api).await {
            Ok(sample) => json(&serde_json::to_value(stats::summary(&sample, &api.node)).unwrap_or_default()),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("failed to get node info: {e}")),
        },
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            container_logs(api, &req, &ns, &pod, &container).await
        }
        (&Method::GET | &Method::POST, [kind @ ("exec" | "attach"), ns, pod, rest @ ..])
            if matches!(rest.len(), 1 | 2) =>
        {
            let (uid, container) = if rest.len() == 2 { (Some(rest[0]), rest[1]) } else { (None, rest[0]) };
            let (kind, ns, pod, uid, container) =
                (kind.to_string(), ns.to_string(), pod.to_string(), uid.map(str::to_owned), container.to_string());
            stream(api, req, &kind, &ns, &pod, uid.as_deref(), Some(&container)).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod, rest @ ..]) if rest.len() <= 1 => {
            let (ns, pod, uid) = (ns.to_string(), pod.to_string(), rest.first().map(|u| u.to_string()));
            stream(api, req, "portForward", &ns, &pod, uid.as_deref(), None).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn with_type(content_type: &'static str, body: String) -> Response<Body> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, content_type)
        .body(full(body))
        .expect("a static response builds")
}

/// One stats sample, its CPU rates filled in against the previous one.
async fn sample(api: &NodeApi) -> Result<stats::Sample, stats::StatsError> {
    let pods = &api.observer.latest().pods;
    let mut sample = stats::collect(api.runtime.as_ref(), &api.node, pods, &api.stats_files).await?;
    api.rates.lock().unwrap_or_else(|p| p.into_inner()).fill(&mut sample);
    Ok(sample)
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect()
}

/// The node's pods as kubelet's `/pods` lists them: each static pod in its mirror's form,
/// with its status now.
fn pod_list(api: &NodeApi) -> serde_json::Value {
    let desired = api.desired.borrow().clone();
    let now = jiff::Timestamp::now();
    let items: Vec<serde_json::Value> = desired
        .pods
        .values()
        .map(|d| {
            let mut pod = crate::mirror::pod::mirror_of(&d.pod, &api.node, "");
            pod.metadata.owner_references = None;
            pod.status =
                Some(crate::mirror::pod::status_of(&d.pod, api.views.get(&d.pod.uid).as_ref(), &api.node_ip, now));
            serde_json::to_value(pod).unwrap_or_default()
        })
        .collect();
    serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
}

/// The static pod `namespace/name` (the mirror's name) and, if it has any, its runtime pod.
/// Why a request cannot be served: its status and kubelet's words.
type Refusal = (StatusCode, String);

fn refused((status, message): Refusal) -> Response<Body> {
    text(status, message)
}

fn find_pod(api: &NodeApi, ns: &str, name: &str, uid: Option<&str>) -> Result<(StaticPod, RuntimePod), Refusal> {
    let not_found = || (StatusCode::NOT_FOUND, format!("pod \"{name}\" in namespace \"{ns}\" not found on this node"));
    let pod = api.desired.borrow().pods.get(&format!("{ns}/{name}")).map(|d| d.pod.clone()).ok_or_else(not_found)?;
    if uid.is_some_and(|uid| uid != pod.uid) {
        return Err(not_found());
    }
    let runtime = api.observer.latest().pod(&pod.uid).cloned().unwrap_or_default();
    Ok((pod, runtime))
}

/// A container of the pod by name: the newest, or with `previous` the one before it (kubelet's
/// messages when there is none).
fn find_container<'a>(
    pod: &StaticPod,
    runtime: &'a RuntimePod,
    name: &str,
    previous: bool,
) -> Result<&'a ContainerInfo, String> {
    let known = pod.spec().containers.iter().chain(pod.init_containers()).any(|c| c.name == name);
    if !known {
        return Err(format!("container {name} is not valid for pod {}", pod.name()));
    }
    let mut all: Vec<&ContainerInfo> = runtime.containers.iter().filter(|c| c.name == name).collect();
    all.sort_by_key(|c| c.created_at);
    let pick = if previous { all.iter().rev().nth(1) } else { all.last() };
    match pick {
        Some(container) => Ok(container),
        None if previous => {
            Err(format!("previous terminated container \"{name}\" in pod \"{}\" not found", pod.name()))
        }
        None => Err(format!("container \"{name}\" in pod \"{}\" is waiting to start", pod.name())),
    }
}

async fn container_logs(
    api: &Arc<NodeApi>,
    req: &Request<Incoming>,
    ns: &str,
    name: &str,
    container: &str,
) -> Response<Body> {
    let options = match logs::options(&query(req), jiff::Timestamp::now()) {
        Ok(options) => options,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let (pod, runtime) = match find_pod(api, ns, name, None) {
        Ok(found) => found,
        Err(refusal) => return refused(refusal),
    };
    let found = match find_container(&pod, &runtime, container, options.previous) {
        Ok(found) => found.clone(),
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let path = match api.runtime.container_status(&found.id).await {
        Ok(status) if !status.log_path.is_empty() => std::path::PathBuf::from(status.log_path),
        Ok(_) => return text(StatusCode::NOT_FOUND, format!("container {container} has no log file")),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let source = logs::Source { container_id: found.id.clone(), pod_uid: pod.uid.clone(), path };
    tokio::spawn(logs::send(source, options, api.observer.clone(), sender));
    let stream =
        futures::stream::poll_fn(move |cx| receiver.poll_recv(cx).map(|c| c.map(|b| Ok(hyper::body::Frame::data(b)))));
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(stream)))
        .expect("a static response builds")
}

fn flag(query: &[(String, String)], name: &str) -> bool {
    query.iter().any(|(k, v)| k == name && crate::config::parse_go_bool(v) == Some(true))
}

async fn stream(
    api: &Arc<NodeApi>,
    req: Request<Incoming>,
    kind: &str,
    ns: &str,
    name: &str,
    uid: Option<&str>,
    container: Option<&str>,
) -> Response<Body> {
    if !proxy::is_upgrade(req.headers()) {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    }
    let (pod, runtime) = match find_pod(api, ns, name, uid) {
        Ok(found) => found,
        Err(refusal) => return refused(refusal),
    };
    let q = query(&req);
    let streams = Streams {
        stdin: flag(&q, "input"),
        stdout: flag(&q, "output"),
        stderr: flag(&q, "error"),
        tty: flag(&q, "tty"),
    };
    let running = |name: &str| match find_container(&pod, &runtime, name, false) {
        Ok(c) if c.state == crate::cri::ContainerState::Running => Ok(c.id.clone()),
        Ok(_) => Err((StatusCode::BAD_REQUEST, format!("container {name} is not running"))),
        Err(message) => Err((StatusCode::BAD_REQUEST, message)),
    };
    let request = match (kind, container) {
        ("exec", Some(container)) => {
            let command: Vec<String> = q.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
            if command.is_empty() {
                return text(StatusCode::BAD_REQUEST, "you must specify a command");
            }
            match running(container) {
                Ok(container_id) => StreamRequest::Exec { container_id, command, streams },
                Err(refusal) => return refused(refusal),
            }
        }
        ("attach", Some(container)) => match running(container) {
            Ok(container_id) => StreamRequest::Attach { container_id, streams },
            Err(refusal) => return refused(refusal),
        },
        _ => {
            let Some(sandbox) = runtime.ready_sandbox() else {
                return text(StatusCode::BAD_REQUEST, format!("pod {name} has no running sandbox"));
            };
            let ports = q.iter().filter(|(k, _)| k == "port").filter_map(|(_, v)| v.parse().ok()).collect();
            StreamRequest::PortForward { sandbox_id: sandbox.id.clone(), ports }
        }
    };
    if matches!(request, StreamRequest::Exec { .. } | StreamRequest::Attach { .. })
        && !(streams.stdin || streams.stdout || streams.stderr)
    {
        return text(StatusCode::BAD_REQUEST, "you must specify at least 1 of stdin, stdout, stderr");
    }
    let url = match api.runtime.streaming_url(request).await {
        Ok(url) => url,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match proxy::forward(req, &url).await {
        Ok(response) => response,
        Err(e @ proxy::ProxyError::NotLoopback(_)) => {
            tracing::warn!(pod = %pod.full_name(), error = %e, "kubelet API: streaming URL refused");
            text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => text(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
