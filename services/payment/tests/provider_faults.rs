//! A payment provider that loses its answers, or does not answer at all (issue 12):
//! every call is written down before it is made, a lost answer is settled by
//! making the call again with the same key, and money moves once.
//!
//! The provider is the simulated one, as in production, behind a fault: it either
//! carries a call out and then loses the answer (a timeout, a crash after the
//! provider acted), or is unreachable and does nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use payment_service::authorizer::Authorizer;
use payment_service::provider::{PaymentProvider, ProviderCall, ProviderError, ProviderOutcome};
use payment_service::simulated_provider::SimulatedProvider;
use reqwest::StatusCode;
use serde_json::json;
use support::{ADMIN, As, PaymentService};

/// The simulated provider behind a fault.
#[derive(Clone, Default)]
struct Faults {
    /// Carry out this many next calls, then lose their answers.
    lose_answers: Arc<AtomicUsize>,
    /// Unreachable: carry out nothing.
    down: Arc<AtomicBool>,
}

struct FaultyProvider {
    inner: SimulatedProvider,
    faults: Faults,
}

impl PaymentProvider for FaultyProvider {
    fn call(
        &self,
        call: ProviderCall,
    ) -> BoxFuture<'static, Result<ProviderOutcome, ProviderError>> {
        if self.faults.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ProviderError::NoAnswer("unreachable".into())) });
        }
        let lose = self
            .faults
            .lose_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let done = self.inner.call(call);
        Box::pin(async move {
            let outcome = done.await?;
            if lose {
                return Err(ProviderError::NoAnswer(format!(
                    "answer lost after the provider answered {outcome:?}"
                )));
            }
            Ok(outcome)
        })
    }
}

async fn start(faults: &Faults) -> PaymentService {
    let faults = faults.clone();
    PaymentService::start_with_provider(
        |c| {
            c.provider_reconcile_every = Duration::from_millis(200);
            c.provider_call_in_doubt_after = Duration::from_millis(500);
        },
        Some(Box::new(move |books| {
            Arc::new(FaultyProvider {
                inner: SimulatedProvider {
                    books,
                    authorizer: Authorizer::new("1000".parse().unwrap()),
                },
                faults,
            })
        })),
    )
    .await
}

/// The provider's books: how many calls it carried out for payment `id`, by operation.
async fn carried_out(svc: &PaymentService, id: i64) -> Vec<(String, bool)> {
    let pool = svc.db.pool().await;
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "select operation, approved from simulated_provider_operations
         where idempotency_key like $1 order by created_at",
    )
    .bind(format!("payment-{id}-%"))
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

async fn status_of(svc: &PaymentService, id: i64) -> String {
    let (_, p) = svc.get_as(&format!("/api/v1/payments/{id}"), ADMIN).await;
    p["status"].as_str().unwrap_or_default().to_owned()
}

async fn wait_status(svc: &PaymentService, id: i64, want: &str) {
    sales_testkit::eventually(
        &format!("payment {id} {want}"),
        Duration::from_secs(20),
        || async { (status_of(svc, id).await == want).then_some(()) },
    )
    .await;
}

fn charge(order_id: i64, cents: i64) -> serde_json::Value {
    json!({"order_id": order_id, "amount": {"amount": cents, "currency": "USD"}, "customer_id": 7})
}

#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_settled_once_by_the_reconciler() {
    let faults = Faults::default();
    let svc = start(&faults).await;
    faults.lose_answers.store(1, Ordering::SeqCst);
    let (status, body) = svc
        .post_as("/api/v1/payments/charge", charge(1, 2000), As::Order)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let id = body["error"]["details"]["payment_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the 503 names the payment: {body}"));
    // The provider charged the card; the service settles what it did not hear.
    wait_status(&svc, id, "confirmed").await;
    assert_eq!(carried_out(&svc, id).await, [("charge".into(), true)]);

    // The order service asks again: the same payment, no second charge.
    let (status, again) = svc
        .post_as("/api/v1/payments/charge", charge(1, 2000), As::Order)
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["payment_id"], id);
    assert_eq!(again["status"], "confirmed");
    let (status, of_order) = svc.get_as("/api/v1/payments/orders/1", As::Order).await;
    assert_eq!(status, StatusCode::OK, "{of_order}");
    assert_eq!(of_order["payment_id"], id);
    assert_eq!(carried_out(&svc, id).await.len(), 1);
}

#[tokio::test]
async fn a_retried_charge_settles_with_the_same_key_and_charges_once() {
    let faults = Faults::default();
    let svc = start(&faults).await;
    faults.lose_answers.store(1, Ordering::SeqCst);
    let (status, body) = svc
        .post_as("/api/v1/payments/charge", charge(2, 2000), As::Order)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = svc
        .post_as("/api/v1/payments/charge", charge(2, 2000), As::Order)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "confirmed");
    let id = body["payment_id"].as_i64().unwrap();
    assert_eq!(carried_out(&svc, id).await, [("charge".into(), true)]);

    // A declined charge whose answer was lost ends declined, not charged.
    faults.lose_answers.store(1, Ordering::SeqCst);
    let (status, body) = svc
        .post_as("/api/v1/payments/charge", charge(3, 150_000), As::Order)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let declined = body["error"]["details"]["payment_id"].as_i64().unwrap();
    wait_status(&svc, declined, "declined").await;
    assert_eq!(
        carried_out(&svc, declined).await,
        [("charge".into(), false)]
    );
}

#[tokio::test]
async fn a_refund_whose_answer_was_lost_gives_the_money_back_once() {
    let faults = Faults::default();
    let svc = start(&faults).await;
    let (_, body) = svc
        .post_as("/api/v1/payments/charge", charge(4, 2000), As::Order)
        .await;
    let id = body["payment_id"].as_i64().unwrap();
    faults.lose_answers.store(1, Ordering::SeqCst);
    let (status, body) = svc
        .post_empty_as(&format!("/api/v1/payments/{id}/refund"), As::Order)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    wait_status(&svc, id, "refunded").await;
    let (status, body) = svc
        .post_empty_as(&format!("/api/v1/payments/{id}/refund"), As::Order)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "refunded once: {body}");
    assert_eq!(
        carried_out(&svc, id).await,
        [("charge".into(), true), ("refund".into(), true)]
    );
}

#[tokio::test]
async fn a_provider_that_does_not_answer_leaves_the_call_in_doubt_counted_until_it_is_back() {
    let faults = Faults::default();
    let svc = start(&faults).await;
    faults.down.store(true, Ordering::SeqCst);
    let (status, body) = svc
        .post_as("/api/v1/payments/charge", charge(5, 2000), As::Order)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let id = body["error"]["details"]["payment_id"].as_i64().unwrap();
    assert_eq!(status_of(&svc, id).await, "pending");
    let (_, in_doubt) = svc.get_as("/api/v1/payments/orders/5", As::Order).await;
    assert_eq!(in_doubt["provider_call_in_flight"], "charge", "{in_doubt}");
    let metrics = || async {
        sales_testkit::http_get(format!("{}/metrics", svc.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    sales_testkit::eventually(
        "the call counted as in doubt",
        Duration::from_secs(20),
        || async {
            metrics()
                .await
                .contains(r#"payment_provider_calls_in_doubt{service="payment"} 1"#)
                .then_some(())
        },
    )
    .await;
    assert!(carried_out(&svc, id).await.is_empty());

    faults.down.store(false, Ordering::SeqCst);
    wait_status(&svc, id, "confirmed").await;
    sales_testkit::eventually("no call in doubt", Duration::from_secs(20), || async {
        metrics()
            .await
            .contains(r#"payment_provider_calls_in_doubt{service="payment"} 0"#)
            .then_some(())
    })
    .await;
    assert_eq!(carried_out(&svc, id).await, [("charge".into(), true)]);
    let (_, settled) = svc.get_as("/api/v1/payments/orders/5", As::Order).await;
    assert!(
        settled.get("provider_call_in_flight").is_none(),
        "{settled}"
    );
}

#[tokio::test]
async fn only_the_order_service_and_admins_read_an_orders_payment() {
    let faults = Faults::default();
    let svc = start(&faults).await;
    svc.post_as("/api/v1/payments/charge", charge(6, 2000), As::Order)
        .await;
    for who in [As::Customer(7), As::Nobody, support::SEED] {
        let (status, body) = svc.get_as("/api/v1/payments/orders/6", who).await;
        assert!(
            matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
            "{who:?}: {status} {body}"
        );
    }
    let (status, _) = svc.get_as("/api/v1/payments/orders/6", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = svc.get_as("/api/v1/payments/orders/99", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = svc.get_as("/api/v1/payments/orders/0", ADMIN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
