//! The loop both renewals share, as kubelet's certificate manager runs it: sleep until the
//! rotation deadline (`deadline::plan`), then ask (a new key, a new CSR, a bounded wait for its
//! certificate) until it works, waiting 2, 4, 8, 16, then every 32 s between attempts; write
//! the pair to the certificate directory and hand it to the caller.

use std::{path::PathBuf, time::Duration};

use kube::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    CertError, csr, deadline,
    identity::{CertInfo, Template},
    store::{self, Pair},
};
use crate::retry::{Doubling, LogOnce};

/// kubelet's certificateWaitTimeout: how long one CSR is waited for before a new one is made.
pub const CSR_WAIT: Duration = Duration::from_secs(15 * 60);

/// Long sleeps are taken in pieces, so that a suspended machine or a clock step is noticed.
const LONGEST_SLEEP: Duration = Duration::from_secs(3600);

pub struct Renewer {
    pub template: Template,
    pub cert_dir: PathBuf,
    /// How long one CSR is waited for (kubelet: 15 minutes).
    pub wait: Duration,
}

impl Renewer {
    /// Waits until `current` is due (at once if there is none, it has expired or it names too
    /// little), then asks until a new pair is written; `None` once `shutdown` is cancelled.
    /// Each attempt uses the newest client `clients` holds.
    pub async fn next(
        &self,
        current: Option<&CertInfo>,
        clients: &watch::Receiver<Client>,
        shutdown: &CancellationToken,
    ) -> Option<Pair> {
        let plan = deadline::plan(current, &self.template, jiff::Timestamp::now(), deadline::jitter());
        let signer = self.template.signer.name();
        if !plan.renew_now(jiff::Timestamp::now()) {
            tracing::info!(%signer, at = %plan.renew_at, "certificate renewal scheduled");
        }
        loop {
            let left = plan.renew_at.duration_since(jiff::Timestamp::now());
            if left <= jiff::SignedDuration::ZERO {
                break;
            }
            let nap = Duration::try_from(left).unwrap_or(LONGEST_SLEEP).min(LONGEST_SLEEP);
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(nap) => {}
            }
        }
        let mut delay = Doubling::new(Duration::from_secs(2), Duration::from_secs(32));
        let mut failure = LogOnce::default();
        loop {
            let client = clients.borrow().clone();
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return None,
                attempt = self.renew_once(&client) => attempt,
            };
            match attempt {
                Ok(pair) => {
                    tracing::info!(%signer, not_after = %pair.info.not_after, "certificate renewed");
                    return Some(pair);
                }
                Err(e) => {
                    if failure.failed(e.to_string()) {
                        tracing::warn!(%signer, error = %e, "certificate request failed; asking again");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(delay.next_wait()) => {}
            }
        }
    }

    /// One request: a new key, a CSR named by the server, its certificate, the pair written.
    pub async fn renew_once(&self, client: &Client) -> Result<Pair, CertError> {
        let request = csr::request(&self.template, None)?;
        let (name, uid) = csr::create(client, &self.template, &request, None).await?;
        tracing::info!(csr = %name, signer = self.template.signer.name(), "certificate signing request created");
        let cert_pem = csr::wait_for_certificate(client, &name, &uid, self.wait).await?;
        let pair = Pair::from_pem(&cert_pem, &request.key_pem, &format!("CSR {name}'s certificate"))?;
        store::write(&self.cert_dir, self.template.signer.file_prefix(), &pair, &store::local_stamp())?;
        Ok(pair)
    }
}
