//! The manifest URL source against a real HTTP server on loopback that misbehaves on demand.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;

#[derive(Clone)]
enum Answer {
    Body(String),
    Status(u16),
    /// Streams bytes until the client hangs up (at most 64 MiB).
    Endless,
    /// Accepts the connection and says nothing for 30 s.
    Silent,
}

struct Server {
    port: u16,
    answer: Arc<Mutex<Answer>>,
    headers: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new(answer));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let (a, h) = (answer.clone(), headers.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (a, h) = (a.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut lines = vec![];
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        lines.push(line.trim_end().to_owned());
                    }
                    *h.lock().unwrap() = lines;
                    let answer = a.lock().unwrap().clone();
                    let _ = match answer {
                        Answer::Body(body) => write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        Answer::Status(code) => {
                            write!(stream, "HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        }
                        Answer::Endless => {
                            let _ = write!(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                            let chunk = vec![b'#'; 64 * 1024];
                            for _ in 0..1024 {
                                if stream.write_all(&chunk).is_err() {
                                    break;
                                }
                            }
                            Ok(())
                        }
                        Answer::Silent => {
                            std::thread::sleep(Duration::from_secs(30));
                            Ok(())
                        }
                    };
                });
            }
        });
        Self { port, answer, headers }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

fn url_daemon(test: &str, server: &Server) -> Daemon {
    let mut d = Daemon::new(test);
    d.extra = vec![
        format!("--manifest-url=http://127.0.0.1:{}/pods", server.port),
        "--manifest-url-header=X-Node:test,X-Token:abc".into(),
        "--http-check-frequency=1s".into(),
    ];
    d
}

fn pod_list(names: &[&str]) -> String {
    let items: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"metadata":{{"name":"{n}"}},"spec":{{"hostNetwork":true,"terminationGracePeriodSeconds":1,"containers":[{{"name":"main","image":"{}","command":["sleep","3600"]}}]}}}}"#, image()))
        .collect();
    format!(r#"{{"apiVersion":"v1","kind":"PodList","items":[{}]}}"#, items.join(","))
}

#[test]
fn url_pods_run_and_survive_every_kind_of_bad_answer() {
    let _serial = serial();
    let server = Server::start(Answer::Body(pod_list(&["a", "b"])));
    let mut d = url_daemon("url", &server);
    d.start();
    let a = d.wait_for_running("a");
    d.wait_for_running("b");
    assert_eq!(a.source, format!("http:http://127.0.0.1:{}/pods", server.port));
    let headers = server.headers.lock().unwrap().clone();
    assert!(
        headers.contains(&"x-node: test".to_owned()) || headers.iter().any(|h| h.eq_ignore_ascii_case("x-node: test")),
        "{headers:?}"
    );
    assert!(headers.iter().any(|h| h.eq_ignore_ascii_case("x-token: abc")), "{headers:?}");
    let containers = running_container_ids(&a.uid);
    let url = format!("http://127.0.0.1:{}/pods", server.port);

    // Each answer is seen handled by the poll count of its result moving past its value from
    // before the answer was set, and by a log line that only this answer produces (checked absent
    // before). `stale`: whether pod a is marked as running the last good version; only a body
    // that does not parse sets that, and the failures after it leave it as it was.
    for (answer, result, shows, stale) in [
        (Answer::Status(404), "http_error", "answered HTTP 404".to_owned(), false),
        (Answer::Status(500), "http_error", "answered HTTP 500".to_owned(), false),
        (Answer::Body("\u{1}\u{2}garbage: [".into()), "invalid", format!("{url}: line 1, column "), true),
        (Answer::Endless, "too_large", format!("{url}: response body is over the 10485760-byte limit"), true),
        (Answer::Silent, "timeout", format!("{url}: timed out"), true),
    ] {
        assert!(!d.log().contains(&shows), "{shows:?} is logged before the answer that must cause it:\n{}", d.log());
        let polls = format!("staticlet_manifest_url_polls_total{{result=\"{result}\"}}");
        let before = d.metric(&polls);
        server.set(answer);
        d.wait_until(&format!("a poll counted {result} and the log shows {shows:?}"), Duration::from_secs(40), |d| {
            d.metric(&polls) > before
                && d.log().contains(&shows)
                && d.pod("a").is_some_and(|p| p.manifest_error.is_some() == stale)
        });
        let pod = d.pod("a").expect("pod a is kept");
        assert_eq!(pod.status, "Running", "after {shows}");
        assert!(d.pod("b").is_some(), "after {shows}: pod b is kept");
        assert_eq!(running_container_ids(&a.uid), containers, "after {shows}: no container restarted");
    }

    // A good body again, without b: b goes, a stays untouched.
    server.set(Answer::Body(pod_list(&["a"])));
    d.wait_until("pod b is removed", Duration::from_secs(40), |d| d.pod("b").is_none());
    assert_eq!(running_container_ids(&a.uid), containers);
}

#[test]
fn unreachable_url_at_start_does_not_stop_pods_it_defined_before() {
    let _serial = serial();
    let server = Server::start(Answer::Body(pod_list(&["kept"])));
    let mut d = url_daemon("urldown", &server);
    d.start();
    let kept = d.wait_for_running("kept");
    let containers = running_container_ids(&kept.uid);
    d.stop();
    server.set(Answer::Status(503));
    d.start();
    // Four failed polls (one a second) since this start, each a chance to stop the URL's pod.
    let failed = r#"staticlet_manifest_url_polls_total{result="http_error"}"#;
    d.wait_until("four polls have failed", Duration::from_secs(20), |d| d.metric(failed) >= 4.0);
    assert!(d.log().contains("answered HTTP 503"), "{}", d.log());
    assert_eq!(
        d.metric(r#"staticlet_manifest_url_polls_total{result="ok"}"#),
        0.0,
        "no poll succeeded since the start"
    );
    assert_eq!(running_container_ids(&kept.uid), containers, "the URL's pod keeps running while the URL is down");
}
