//! The mirror loop against a mocked API server (kube's `tower_test` pattern): a real `Client`
//! whose requests reach a small in-test server that records them and answers per route, so the
//! requests the loop makes, and the ones it makes after a refusal, are pinned without a cluster.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{MirrorProblems, MirrorSync, Settings};
use crate::{
    desired::{Desired, DesiredPod},
    manifest::{Origin, StaticPod, parse_manifest},
    supervisor::Views,
};

const NODE: &str = "n1";
const NODE_UID: &str = "node-uid-1";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Value,
}

/// How the fake answers a mirror create.
#[derive(Clone, Copy)]
enum Creates {
    Accept,
    Forbid,
}

struct FakeApi {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApi {
    fn start(creates: Creates) -> (Client, Self) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            // Watches never answer: they stay open, as on a quiet cluster.
            let mut open_watches = Vec::new();
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let path = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                let method = parts.method.to_string();
                record.lock().unwrap().push(Seen { method: method.clone(), path: path.clone(), body: body.clone() });
                if path.contains("watch=true") {
                    open_watches.push(respond);
                    continue;
                }
                let (code, answer) = route(&method, &path, body, creates);
                let response = Response::builder().status(code).body(Body::from(answer.to_string().into_bytes()));
                respond.send_response(response.unwrap());
            }
        });
        (Client::new(service, "default"), Self { seen, task })
    }

    fn count(&self, check: impl Fn(&Seen) -> bool) -> usize {
        self.requests().iter().filter(|s| check(s)).count()
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded, 30 s) for a request matching `check`.
    async fn wait_for(&self, what: &str, check: impl Fn(&Seen) -> bool) -> Seen {
        for _ in 0..3000 {
            if let Some(found) = self.requests().into_iter().find(|s| check(s)) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no request {what} within 30 s; saw {:#?}", self.requests());
    }
}

fn route(method: &str, path: &str, mut body: Value, creates: Creates) -> (u16, Value) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "uid": NODE_UID}});
    match (method, path.split('?').next().unwrap_or_default()) {
        ("GET", "/api/v1/nodes/n1") | ("PATCH", "/api/v1/nodes/n1/status") => (200, node),
        ("PATCH", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1") => (
            200,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": NODE, "namespace": "kube-node-lease"}}),
        ),
        ("GET", "/api/v1/pods") => {
            (200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": []}))
        }
        ("POST", "/api/v1/namespaces/default/pods") => match creates {
            Creates::Accept => {
                body["metadata"]["uid"] = json!("mirror-uid-1");
                body["metadata"]["resourceVersion"] = json!("2");
                (201, body)
            }
            Creates::Forbid => (
                403,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
                       "message": "pods \"web-n1\" is forbidden: denied by policy"}),
            ),
        },
        ("PATCH", p) if p.ends_with("/status") => (200, body),
        ("POST", "/api/v1/namespaces/default/events") => (201, body),
        _ => {
            (404, json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}))
        }
    }
}

fn is_create(s: &Seen) -> bool {
    s.method == "POST" && s.path.starts_with("/api/v1/namespaces/default/pods")
}

fn web() -> StaticPod {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {role: web}}\nspec: {containers: [{name: c, image: i:1}]}\n";
    parse_manifest(yaml.as_bytes(), &Origin::file("/m/web.yaml"), NODE).unwrap().remove(0)
}

struct Running {
    problems: MirrorProblems,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _desired: watch::Sender<Arc<Desired>>,
}

fn run_sync(client: Client, pod: StaticPod) -> Running {
    let desired = Desired {
        pods: BTreeMap::from([(pod.full_name(), DesiredPod { pod, seen: jiff::Timestamp::UNIX_EPOCH, stale: None })]),
        ..Default::default()
    };
    let (desired_tx, desired_rx) = watch::channel(Arc::new(desired));
    let settings = Settings {
        kubeconfig: "/nowhere".into(),
        node: NODE.into(),
        node_ip: "10.0.0.1".into(),
        runtime_version: "fake://0".into(),
        labels: Default::default(),
        taints: Vec::new(),
        kubelet_port: 10250,
    };
    let problems = MirrorProblems::default();
    let (_events_tx, events_rx) = mpsc::unbounded_channel();
    let sync = MirrorSync::new(client, settings, desired_rx, Views::default(), problems.clone(), events_rx);
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(sync.run(tracker.clone(), shutdown.clone()));
    Running { problems, shutdown, tracker, _desired: desired_tx }
}

impl Running {
    /// Every task the loop started ends with the one shutdown token.
    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await.expect("the mirror tasks stop");
    }
}

#[tokio::test]
async fn mirror_is_created_owned_by_the_node_and_its_status_patched_on_that_mirror() {
    let (client, api) = FakeApi::start(Creates::Accept);
    let sync = run_sync(client, web());

    let create = api.wait_for("creating the mirror", is_create).await;
    let meta = &create.body["metadata"];
    assert_eq!(meta["name"], "web-n1");
    assert_eq!(meta["labels"]["role"], "web");
    assert_eq!(meta["annotations"]["kubernetes.io/config.mirror"], web().config_hash);
    assert_eq!(meta["ownerReferences"][0]["kind"], "Node");
    assert_eq!(meta["ownerReferences"][0]["uid"], NODE_UID, "owned by the Node's UID, not its name");

    let patch =
        api.wait_for("patching its status", |s| s.method == "PATCH" && s.path.contains("/pods/web-n1/status")).await;
    assert_eq!(patch.body["metadata"]["uid"], "mirror-uid-1", "the status is pinned to the mirror it was computed for");
    assert_eq!(patch.body["status"]["phase"], "Pending");
    assert!(sync.problems.get("default/web-n1").is_none());
    sync.stop().await;
    api.task.abort();
}

#[tokio::test(start_paused = true)]
async fn refused_mirror_is_shown_and_posted_as_one_node_event_with_the_nodes_uid() {
    let (client, api) = FakeApi::start(Creates::Forbid);
    let sync = run_sync(client, web());

    let event = api.wait_for("posting FailedMirrorPod", |s| s.method == "POST" && s.path.contains("/events")).await;
    assert_eq!(event.body["reason"], "FailedMirrorPod");
    assert_eq!(event.body["type"], "Warning");
    let involved = &event.body["involvedObject"];
    assert_eq!((involved["kind"].as_str(), involved["name"].as_str()), (Some("Node"), Some(NODE)));
    assert_eq!(involved["uid"], NODE_UID, "the event is about the Node object, by its UID");
    assert!(event.body["message"].as_str().unwrap().contains("denied by policy"), "{}", event.body["message"]);
    let problem = sync.problems.get("default/web-n1").expect("the refusal is shown locally");
    assert!(problem.contains("no mirror pod") && problem.contains("denied by policy"), "{problem}");

    // The refusal is retried after its back-off (at the next pass), but the same refusal is not
    // posted again. Paused time: the 10 s resync passes without waiting for it.
    api.wait_for("a second create after the back-off", |_| api.count(is_create) >= 2).await;
    assert_eq!(api.count(|s| s.path.contains("/events")), 1, "one event per refusal, not one per attempt");
    sync.stop().await;
    api.task.abort();
}
