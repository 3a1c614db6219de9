//! Leader election between operator replicas, on a Lease in an in-memory API server
//! (`kube-fake-client`, which refuses a write with a stale `resourceVersion` with 409
//! as a real one does): one replica leads at a time, a dead leader's lease is taken
//! only after a whole lease duration, a leader that finds its lease taken steps down,
//! and a released lease is taken at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use kube_fake_client::ClientBuilder;
use sales_operator::leader::{LeaderElector, LeaseTiming};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NS: &str = "sales-operator";
const LEASE: &str = "sales-operator";

async fn server() -> Client {
    ClientBuilder::new().build().await.expect("fake API server")
}

/// Timing with a one-second lease (the shortest a Lease can state).
fn timing() -> LeaseTiming {
    LeaseTiming {
        lease_duration: Duration::from_secs(1),
        renew_every: Duration::from_millis(100),
        renew_deadline: Duration::from_millis(700),
        retry_every: Duration::from_millis(50),
    }
}

fn replica(client: &Client, identity: &str) -> LeaderElector {
    LeaderElector::new(client.clone(), NS, LEASE, identity, timing())
}

async fn lease(client: &Client) -> Lease {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get(LEASE)
        .await
        .expect("the lease")
}

async fn holder(client: &Client) -> Option<String> {
    lease(client).await.spec.and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn of_two_replicas_only_the_holder_leads_while_it_renews() {
    let client = server().await;
    let mut a = replica(&client, "operator-a");
    let mut b = replica(&client, "operator-b");

    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a creates the lease"
    );
    assert_eq!(holder(&client).await.as_deref(), Some("operator-a"));
    // Renewing more often than the lease lasts keeps b out, however long it tries.
    for _ in 0..6 {
        assert!(!b.try_acquire_or_renew().await.unwrap(), "b must not lead");
        assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(holder(&client).await.as_deref(), Some("operator-a"));
    assert_eq!(
        lease(&client).await.spec.and_then(|s| s.lease_transitions),
        Some(0)
    );
}

#[tokio::test]
async fn two_replicas_racing_for_the_same_lease_never_both_win() {
    // A free lease (its holder released it), and the first lease of all.
    for existing in [true, false] {
        let client = server().await;
        if existing {
            let free: Lease = serde_json::from_value(json!({
                "metadata": {"name": LEASE, "namespace": NS},
                "spec": {"leaseDurationSeconds": 1, "leaseTransitions": 3},
            }))
            .unwrap();
            Api::<Lease>::namespaced(client.clone(), NS)
                .create(&PostParams::default(), &free)
                .await
                .unwrap();
        }
        for round in 0..10 {
            let mut a = replica(&client, "operator-a");
            let mut b = replica(&client, "operator-b");
            let (won_a, won_b) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
            let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
            if round == 0 {
                assert!(won_a ^ won_b, "exactly one wins: a {won_a}, b {won_b}");
                let winner = if won_a { "operator-a" } else { "operator-b" };
                assert_eq!(holder(&client).await.as_deref(), Some(winner));
            } else {
                // Later rounds: the lease is held and fresh; fresh electors may not
                // take it, and the holder's own renewal is the only win.
                let current = holder(&client).await;
                assert_eq!(
                    (won_a, won_b),
                    (
                        current.as_deref() == Some("operator-a"),
                        current.as_deref() == Some("operator-b")
                    )
                );
            }
        }
    }
}

#[tokio::test]
async fn a_dead_leaders_lease_is_taken_only_after_a_whole_lease_duration() {
    let client = server().await;
    let mut a = replica(&client, "operator-a");
    let mut b = replica(&client, "operator-b");
    assert!(a.try_acquire_or_renew().await.unwrap());
    // a stops renewing (it died). b first sees the record, then must see it
    // unchanged for the lease's duration by its own clock.
    assert!(!b.try_acquire_or_renew().await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "half a lease duration is too soon"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(b.try_acquire_or_renew().await.unwrap(), "b takes over");
    let taken = lease(&client).await.spec.unwrap();
    assert_eq!(taken.holder_identity.as_deref(), Some("operator-b"));
    assert_eq!(taken.lease_transitions, Some(1));
    // a comes back: it does not lead any more.
    assert!(!a.try_acquire_or_renew().await.unwrap());
}

#[tokio::test]
async fn a_leader_whose_lease_was_taken_steps_down() {
    let client = server().await;
    let mut a = replica(&client, "operator-a");
    assert!(a.acquire(&CancellationToken::new()).await);
    let lost = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let keeping = tokio::spawn(a.keep(lost.clone(), shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!lost.is_cancelled(), "renewing, a keeps leading");

    // Another replica wrote itself into the lease (a was partitioned, say).
    let leases = Api::<Lease>::namespaced(client.clone(), NS);
    let mut taken = leases.get(LEASE).await.unwrap();
    taken.spec.as_mut().unwrap().holder_identity = Some("operator-b".into());
    leases
        .replace(LEASE, &PostParams::default(), &taken)
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(5), lost.cancelled())
        .await
        .expect("a steps down");
    tokio::time::timeout(Duration::from_secs(5), keeping)
        .await
        .expect("keep returns")
        .unwrap();
    assert_eq!(holder(&client).await.as_deref(), Some("operator-b"));
}

#[tokio::test]
async fn a_leader_that_stops_releases_the_lease_for_the_next_at_once() {
    let client = server().await;
    let mut a = replica(&client, "operator-a");
    assert!(a.acquire(&CancellationToken::new()).await);
    let shutdown = CancellationToken::new();
    let keeping = tokio::spawn(a.keep(CancellationToken::new(), shutdown.clone()));
    shutdown.cancel();
    keeping.await.unwrap();
    assert_eq!(holder(&client).await, None, "released on stop");

    // b leads at its first try, without waiting out a lease duration.
    let mut b = replica(&client, "operator-b");
    assert!(b.try_acquire_or_renew().await.unwrap());
    assert_eq!(holder(&client).await.as_deref(), Some("operator-b"));
}

/// How a scripted API server answers the lease requests after the first `good`.
#[derive(Clone, Copy)]
enum Then {
    /// Never answers (a partitioned or overloaded API server).
    Silent,
    /// Answers 500 to everything.
    Failing,
}

/// A Lease API server that answers `good` requests as a real one would (the lease,
/// held by whoever wrote it last), then as `then` says. Its requests are counted.
fn scripted_server(
    good: usize,
    then: Then,
) -> (Client, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use http::{Request, Response};
    use kube::client::Body;
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        let mut lease = serde_json::Value::Null;
        let mut version = 1;
        while let Some((request, respond)) = handle.next_request().await {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n >= good {
                match then {
                    // Keep the responder alive and never answer.
                    Then::Silent => {
                        std::mem::forget(respond);
                        continue;
                    }
                    Then::Failing => {
                        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                          "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500});
                        respond.send_response(
                            Response::builder()
                                .status(500)
                                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                                .unwrap(),
                        );
                        continue;
                    }
                }
            }
            let method = request.method().clone();
            let bytes = http_body_util::BodyExt::collect(request.into_body())
                .await
                .unwrap()
                .to_bytes();
            let (status, body) = if method == http::Method::GET {
                if lease.is_null() {
                    (
                        404,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "NotFound", "code": 404, "message": "not found"}),
                    )
                } else {
                    (200, lease.clone())
                }
            } else {
                let mut written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                version += 1;
                written["metadata"]["resourceVersion"] = json!(version.to_string());
                written["metadata"]["namespace"] = json!(NS);
                lease = written;
                (
                    if method == http::Method::POST {
                        201
                    } else {
                        200
                    },
                    lease.clone(),
                )
            };
            respond.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(service, NS), seen)
}

/// A leader whose API server stops answering, or answers only errors, steps down
/// within the renewal deadline of its last renewal, before its lease can run out
/// and another replica take it: never two leaders. (Paused time: the clock moves only
/// when every task waits, so this is exact, not a race against a timer.)
#[tokio::test(start_paused = true)]
async fn a_leader_steps_down_before_its_lease_runs_out_when_the_api_server_is_silent_or_failing() {
    for then in [Then::Silent, Then::Failing] {
        // GET (404), POST: the lease is taken; then two renewals (GET + PUT each).
        let (client, seen) = scripted_server(6, then);
        let mut a = LeaderElector::new(client, NS, LEASE, "operator-a", timing());
        assert!(a.acquire(&CancellationToken::new()).await, "a leads");
        let lost = CancellationToken::new();
        let keeping = tokio::spawn(a.keep(lost.clone(), CancellationToken::new()));
        // Two good renewals: the last one was sent 2 x renew_every after the start.
        let start = tokio::time::Instant::now();
        let last_renewal = timing().renew_every * 2;
        let lease_ends = last_renewal + timing().lease_duration;
        assert!(
            tokio::time::timeout(lease_ends, lost.cancelled())
                .await
                .is_ok(),
            "still leading when its lease ran out: another replica may lead too"
        );
        let stepped_down = start.elapsed();
        assert!(
            seen.load(std::sync::atomic::Ordering::SeqCst) > 6,
            "the third renewal was attempted"
        );
        assert!(
            stepped_down <= last_renewal + timing().renew_deadline,
            "stepped down {stepped_down:?} after the start"
        );
        assert!(
            stepped_down < last_renewal + timing().lease_duration,
            "before the lease ran out"
        );
        tokio::time::timeout(Duration::from_secs(5), keeping)
            .await
            .expect("keep returns after stepping down")
            .unwrap();
    }
}
