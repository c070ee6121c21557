//! kubelet's API on the Node's kubeletEndpoint port (10250): what the API server calls for
//! `kubectl logs`, `exec`, `attach`, `port-forward`, and what metrics-server scrapes.

pub mod tls;
pub mod authn;
pub mod authz;
pub mod logs;
