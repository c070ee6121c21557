//! The Node keeper: registers the Node, renews its Lease every 10 s and posts its status every
//! 5 minutes, as kubelet does (its nodeStatusReportFrequency), and publishes the Node's UID for
//! mirror owner references.
//!
//! At rest that is one request per renewal: the Node is looked up only when the Lease is missing,
//! and the status is posted early only after a failed pass. The Lease is owned by the Node, so a
//! deleted Node takes its Lease with it, and the next renewal finds out and registers the Node
//! again.

use std::time::Duration;

use kube::Client;
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    MirrorError,
    node::{self, NodeFacts},
};
use crate::retry::LogOnce;

const LEASE_RENEW: Duration = Duration::from_secs(10);
const NODE_STATUS: Duration = Duration::from_secs(300);
const RETRY: Duration = Duration::from_secs(2);

pub async fn keep_node(
    client: Client,
    facts: NodeFacts,
    uid_tx: watch::Sender<Option<String>>,
    shutdown: CancellationToken,
) {
    let mut last_status: Option<Instant> = None;
    let mut failure = LogOnce::default();
    loop {
        match renew(&client, &facts, &uid_tx, &mut last_status).await {
            Ok(()) => {
                if failure.recovered() {
                    tracing::info!("API server reachable again");
                }
            }
            Err(e) => {
                if failure.failed(e.to_string()) {
                    tracing::warn!(error = %e, "node registration or lease failed; static pods are unaffected, retrying");
                }
                // While we were away the node lifecycle controller may have marked the Node
                // NotReady; only our status post sets it Ready again, so post at once on return.
                last_status = None;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(if failure.is_failing() { RETRY } else { LEASE_RENEW }) => {}
        }
    }
}

/// One pass: register if needed, renew (or recreate) the Lease, post status when due.
async fn renew(
    client: &Client,
    facts: &NodeFacts,
    uid_tx: &watch::Sender<Option<String>>,
    last_status: &mut Option<Instant>,
) -> Result<(), MirrorError> {
    let register = async |last_status: &mut Option<Instant>| {
        let uid = node::ensure_node(client, facts).await?;
        if uid_tx.borrow().as_deref() != Some(uid.as_str()) {
            tracing::info!(node = %facts.name, %uid, "node registered");
            uid_tx.send_replace(Some(uid.clone()));
            *last_status = None;
        }
        Ok::<String, MirrorError>(uid)
    };
    if uid_tx.borrow().is_none() {
        register(last_status).await?;
    }
    if !node::renew_lease(client, &facts.name, jiff::Timestamp::now()).await? {
        let uid = register(last_status).await?;
        node::create_lease(client, &facts.name, &uid, jiff::Timestamp::now()).await?;
    }
    if last_status.is_none_or(|t| t.elapsed() >= NODE_STATUS) {
        node::post_status(client, facts, jiff::Timestamp::now()).await?;
        *last_status = Some(Instant::now());
    }
    Ok(())
}
