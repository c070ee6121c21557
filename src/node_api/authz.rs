//! What a kubelet API request needs to be allowed, and asking the API server: kubelet's
//! mapping of method and path to a verb on a `nodes` subresource, one SubjectAccessReview
//! per (user, verb, subresource) and cache lifetime.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};

use super::authn::User;
use crate::config::AuthorizationMode;

/// kubelet's verb for an HTTP method.
pub fn verb(method: &http::Method) -> &'static str {
    match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    }
}

/// `path` equals `prefix` or lies below it (kubelet's isSubpath).
fn below(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// The `nodes` subresources a request is checked against, in order; allowed if any is.
/// kubelet's fine-grained ones (pods, healthz, configz) first, then the coarse one, where
/// everything not stats, metrics, logs or checkpoint is `proxy` (logs, exec, port-forward).
pub fn subresources(path: &str) -> Vec<&'static str> {
    let mut out = Vec::with_capacity(2);
    for (prefix, fine) in
        [("/pods", "pods"), ("/healthz", "healthz"), ("/configz", "configz"), ("/runningpods/", "pods")]
    {
        if below(path, prefix) {
            out.push(fine);
            break;
        }
    }
    let coarse = [("/stats/", "stats"), ("/metrics", "metrics"), ("/logs/", "log"), ("/checkpoint/", "checkpoint")]
        .into_iter()
        .find(|(prefix, _)| below(path, prefix))
        .map_or("proxy", |(_, sub)| sub);
    out.push(coarse);
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthzError {
    /// kubelet's words, so a 403 reads the same.
    #[error("Forbidden (user={user}, verb={verb}, resource=nodes, subresource={subresource})")]
    Forbidden { user: String, verb: &'static str, subresource: &'static str },
    #[error("subject access review failed: {0}")]
    Review(String),
}

type Key = (User, &'static str, &'static str);

pub struct Authorizer {
    /// The node's API client; None until there is one (TLS bootstrap), or with no API server.
    client: tokio::sync::watch::Receiver<Option<kube::Client>>,
    node: String,
    mode: AuthorizationMode,
    allowed_ttl: Duration,
    denied_ttl: Duration,
    cache: Mutex<HashMap<Key, (bool, Instant)>>,
    /// SubjectAccessReviews sent.
    pub reviews: AtomicU64,
}

const CACHE_LIMIT: usize = 4096;

impl Authorizer {
    pub fn new(
        client: tokio::sync::watch::Receiver<Option<kube::Client>>,
        node: String,
        mode: AuthorizationMode,
        allowed_ttl: Duration,
        denied_ttl: Duration,
    ) -> Self {
        Self { client, node, mode, allowed_ttl, denied_ttl, cache: Mutex::default(), reviews: AtomicU64::new(0) }
    }

    pub async fn authorize(&self, user: &User, method: &http::Method, path: &str) -> Result<(), AuthzError> {
        let verb = verb(method);
        let subresources = subresources(path);
        if self.mode == AuthorizationMode::AlwaysAllow {
            return Ok(());
        }
        for &subresource in &subresources {
            if self.allowed(user, verb, subresource).await? {
                return Ok(());
            }
        }
        let subresource = subresources.last().copied().unwrap_or("proxy");
        Err(AuthzError::Forbidden { user: user.name.clone(), verb, subresource })
    }

    async fn allowed(&self, user: &User, verb: &'static str, subresource: &'static str) -> Result<bool, AuthzError> {
        let key = (user.clone(), verb, subresource);
        let now = Instant::now();
        if let Some(&(allowed, at)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            let ttl = if allowed { self.allowed_ttl } else { self.denied_ttl };
            if now.duration_since(at) < ttl {
                return Ok(allowed);
            }
        }
        let Some(client) = self.client.borrow().clone() else {
            return Err(AuthzError::Review("no API server to ask (authorization mode Webhook)".into()));
        };
        self.reviews.fetch_add(1, Ordering::Relaxed);
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: Some(user.uid.clone()).filter(|u| !u.is_empty()),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone()).filter(|e| !e.is_empty()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    version: Some("v1".into()),
                    resource: Some("nodes".into()),
                    subresource: Some(subresource.into()),
                    name: Some(self.node.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: kube::Api<SubjectAccessReview> = kube::Api::all(client.clone());
        let answer = api.create(&Default::default(), &review).await.map_err(|e| AuthzError::Review(e.to_string()))?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (allowed, now));
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_kubelets_subresources_fine_grained_first() {
        for (path, expected) in [
            ("/containerLogs/kube-system/etcd-n/etcd", &["proxy"][..]),
            ("/exec/kube-system/etcd-n/etcd", &["proxy"]),
            ("/portForward/default/web-n", &["proxy"]),
            ("/stats/summary", &["stats"]),
            ("/stats", &["stats"]),
            ("/statsx", &["proxy"]),
            ("/metrics", &["metrics"]),
            ("/metrics/resource", &["metrics"]),
            ("/logs/syslog", &["log"]),
            ("/pods", &["pods", "proxy"]),
            ("/pods/", &["pods", "proxy"]),
            ("/healthz", &["healthz", "proxy"]),
            ("/configz", &["configz", "proxy"]),
            ("/runningpods/", &["pods", "proxy"]),
            ("/checkpoint/ns/pod/c", &["checkpoint"]),
        ] {
            assert_eq!(subresources(path), expected, "{path}");
        }
    }

    #[test]
    fn methods_map_to_kubelets_verbs() {
        for (method, expected) in [
            (http::Method::GET, "get"),
            (http::Method::HEAD, "get"),
            (http::Method::POST, "create"),
            (http::Method::PUT, "update"),
            (http::Method::PATCH, "patch"),
            (http::Method::DELETE, "delete"),
        ] {
            assert_eq!(verb(&method), expected);
        }
    }

    #[tokio::test]
    async fn always_allow_needs_no_api_server_and_webhook_without_one_is_an_error_not_a_yes() {
        let user = User { name: "u".into(), uid: String::new(), groups: vec![], extra: Default::default() };
        let d = Duration::from_secs(1);
        let open =
            Authorizer::new(tokio::sync::watch::channel(None).1, "n".into(), AuthorizationMode::AlwaysAllow, d, d);
        assert_eq!(open.authorize(&user, &http::Method::GET, "/pods").await, Ok(()));
        let webhook =
            Authorizer::new(tokio::sync::watch::channel(None).1, "n".into(), AuthorizationMode::Webhook, d, d);
        assert!(matches!(webhook.authorize(&user, &http::Method::GET, "/pods").await, Err(AuthzError::Review(_))));
    }
}
