//! Who is calling the kubelet API, as kubelet decides it: a client certificate verified
//! against the client CA (user = CN, groups = O), else a bearer token the API server vouches
//! for (a TokenReview, its answer cached for `cacheTTL`), else `system:anonymous` if anonymous
//! requests are enabled, else nobody (401).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use sha2::{Digest, Sha256};

/// A caller, with what a SubjectAccessReview needs of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    fn named(name: &str, groups: &[&str]) -> Self {
        Self {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            extra: BTreeMap::new(),
        }
    }
}

/// The user a verified client certificate names: its subject's CN, and each O as a group,
/// as the API server reads certificates too. None without a CN.
pub fn user_of_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_owned)).collect();
    Some(User { name, uid: String::new(), groups, extra: BTreeMap::new() })
}

/// `Authorization: Bearer <token>`: the token, if the header has one.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthnError {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("token review failed: {0}")]
    Review(String),
}

pub struct Authenticator {
    /// The node's API client; None until there is one (TLS bootstrap), or with no API server.
    client: tokio::sync::watch::Receiver<Option<kube::Client>>,
    anonymous: bool,
    cache_ttl: Duration,
    /// By SHA-256 of the token: the user, or None for a token the API server refused.
    cache: Mutex<HashMap<TokenHash, (Option<User>, Instant)>>,
    /// TokenReviews sent, for /metrics and the benchmark of API requests per `kubectl logs`.
    pub reviews: AtomicU64,
}

type TokenHash = [u8; 32];

/// More distinct tokens than this in one cache lifetime start evicting (expired ones first).
const CACHE_LIMIT: usize = 4096;

impl Authenticator {
    /// `client`: the node's API client when token webhook authentication is on, else None.
    pub fn new(
        client: tokio::sync::watch::Receiver<Option<kube::Client>>,
        anonymous: bool,
        cache_ttl: Duration,
    ) -> Self {
        Self { client, anonymous, cache_ttl, cache: Mutex::default(), reviews: AtomicU64::new(0) }
    }

    pub async fn authenticate(
        &self,
        certificate: Option<&User>,
        headers: &http::HeaderMap,
    ) -> Result<User, AuthnError> {
        if let Some(user) = certificate {
            return Ok(user.clone());
        }
        let client = self.client.borrow().clone();
        if let (Some(token), Some(client)) = (bearer_token(headers), client) {
            match self.review(&client, token).await? {
                Some(user) => return Ok(user),
                // kubelet's union of authenticators: a refused token still leaves anonymous.
                None if self.anonymous => {}
                None => return Err(AuthnError::Unauthorized),
            }
        }
        if self.anonymous {
            return Ok(User::named("system:anonymous", &["system:unauthenticated"]));
        }
        Err(AuthnError::Unauthorized)
    }

    async fn review(&self, client: &kube::Client, token: &str) -> Result<Option<User>, AuthnError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((user, at)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && now.duration_since(*at) < self.cache_ttl
        {
            return Ok(user.clone());
        }
        self.reviews.fetch_add(1, Ordering::Relaxed);
        let review =
            TokenReview { spec: TokenReviewSpec { token: Some(token.into()), audiences: None }, ..Default::default() };
        let api: kube::Api<TokenReview> = kube::Api::all(client.clone());
        let answer = api.create(&Default::default(), &review).await.map_err(|e| AuthnError::Review(e.to_string()))?;
        let user = answer.status.filter(|s| s.authenticated == Some(true)).and_then(|s| s.user).map(|u| User {
            name: u.username.unwrap_or_default(),
            uid: u.uid.unwrap_or_default(),
            groups: u.groups.unwrap_or_default(),
            extra: u.extra.unwrap_or_default(),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|_, (_, at)| now.duration_since(*at) < self.cache_ttl);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(key, (user.clone(), now));
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_client() -> tokio::sync::watch::Receiver<Option<kube::Client>> {
        tokio::sync::watch::channel(None).1
    }

    fn headers(authorization: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, authorization.parse().unwrap());
        h
    }

    #[test]
    fn a_bearer_token_is_read_from_the_authorization_header_only_with_its_scheme() {
        assert_eq!(bearer_token(&headers("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic YTpi")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&http::HeaderMap::new()), None);
    }

    #[test]
    fn a_certificate_user_is_its_common_name_and_its_organizations_are_groups() {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:masters");
        let cert = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let user = user_of_certificate(cert.der()).unwrap();
        assert_eq!(user.name, "kube-apiserver-kubelet-client");
        assert_eq!(user.groups, ["system:masters"]);
    }

    #[tokio::test]
    async fn no_certificate_and_no_token_is_unauthorized_unless_anonymous_is_enabled() {
        let closed = Authenticator::new(no_client(), false, Duration::from_secs(120));
        assert_eq!(closed.authenticate(None, &http::HeaderMap::new()).await, Err(AuthnError::Unauthorized));
        let open = Authenticator::new(no_client(), true, Duration::from_secs(120));
        let user = open.authenticate(None, &http::HeaderMap::new()).await.unwrap();
        assert_eq!(
            (user.name.as_str(), user.groups.as_slice()),
            ("system:anonymous", &["system:unauthenticated".to_owned()][..])
        );
        let cert = User::named("admin", &["system:masters"]);
        assert_eq!(closed.authenticate(Some(&cert), &headers("Bearer x")).await, Ok(cert));
    }
}
