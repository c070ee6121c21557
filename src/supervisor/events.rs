//! kubelet-style pod events (Pulled, Created, Started, Killing, BackOff, Failed), handed to the
//! mirror sync, which posts them on the mirror pod. Without an API server they go nowhere; the
//! log line the worker writes anyway is then the record.

use tokio::sync::mpsc;

use crate::manifest::StaticPod;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub namespace: String,
    pub pod: String,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Clone, Default)]
pub struct Events(Option<mpsc::UnboundedSender<PodEvent>>);

impl Events {
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<PodEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(Some(tx)), rx)
    }

    pub fn normal(&self, pod: &StaticPod, reason: &'static str, message: String) {
        self.send(pod, false, reason, message);
    }

    pub fn warning(&self, pod: &StaticPod, reason: &'static str, message: String) {
        self.send(pod, true, reason, message);
    }

    fn send(&self, pod: &StaticPod, warning: bool, reason: &'static str, message: String) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(PodEvent {
                namespace: pod.namespace().into(),
                pod: pod.name().into(),
                warning,
                reason,
                message,
            });
        }
    }
}
