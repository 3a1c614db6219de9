//! What happens after the answer: every paid order gets a shipment (shipping, from
//! `paid-order`) and its customer a notification (notification, from the same event).
//! After a step the bench waits until the step's orders have both, then reads the
//! services' own timestamps: the order's `created_at` and `paid_at` (order database),
//! the shipment's `created_at` (shipping database), the notification's `created_at`
//! (notification database).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use sales_testkit::launch::{Service, Wiring};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use super::load::histogram;
use super::statements::OWN_QUERY;

/// How long the events of one step may take to arrive after its load.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Connections to the three databases.
pub struct Pipeline {
    orders: PgConnection,
    shipping: PgConnection,
    notifications: PgConnection,
}

/// How a step's events arrived.
pub struct Drained {
    pub paid: i64,
    pub shipments: i64,
    pub notified: i64,
    pub after: Duration,
}

impl Drained {
    pub fn complete(&self) -> bool {
        self.shipments >= self.paid && self.notified >= self.paid
    }
}

/// Microseconds between the services' timestamps, per paid order.
pub struct Hops {
    pub created_to_shipment: Histogram<u64>,
    pub paid_to_shipment: Histogram<u64>,
    pub paid_to_notified: Histogram<u64>,
}

type Stamps = HashMap<i64, DateTime<Utc>>;

// The queries below are text of this file behind [`OWN_QUERY`] (a constant comment
// that marks them as the bench's), hence `AssertSqlSafe`; values are bound parameters.

impl Pipeline {
    pub async fn connect(wiring: &Wiring) -> Result<Pipeline> {
        let connect = |service: Service| async move {
            let url = wiring
                .database_urls
                .get(&service)
                .with_context(|| format!("no database for {}", service.name()))?;
            PgConnection::connect(url)
                .await
                .with_context(|| format!("cannot connect to the {} database", service.name()))
        };
        Ok(Pipeline {
            orders: connect(Service::Order).await?,
            shipping: connect(Service::Shipping).await?,
            notifications: connect(Service::Notification).await?,
        })
    }

    /// The newest order's id: the next step's orders are those after it.
    pub async fn mark(&mut self) -> Result<i64> {
        let q = format!("{OWN_QUERY} select coalesce(max(id), 0) from orders");
        Ok(sqlx::query_scalar(AssertSqlSafe(q))
            .fetch_one(&mut self.orders)
            .await?)
    }

    /// Wait until every order after `since` that was paid has its shipment and its
    /// `paid-order` notification (at most [`DRAIN_TIMEOUT`]).
    pub async fn drain(&mut self, since: i64) -> Result<Drained> {
        let started = Instant::now();
        let q = format!(
            "{OWN_QUERY} select count(*) from orders where id > $1 and paid_at is not null"
        );
        let paid: i64 = sqlx::query_scalar(AssertSqlSafe(q))
            .bind(since)
            .fetch_one(&mut self.orders)
            .await?;
        let shipments_q = format!("{OWN_QUERY} select count(*) from shipments where order_id > $1");
        let notified_q = format!(
            "{OWN_QUERY} select count(*) from notifications where order_id > $1 and event = 'paid-order'"
        );
        loop {
            let shipments: i64 = sqlx::query_scalar(AssertSqlSafe(shipments_q.as_str()))
                .bind(since)
                .fetch_one(&mut self.shipping)
                .await?;
            let notified: i64 = sqlx::query_scalar(AssertSqlSafe(notified_q.as_str()))
                .bind(since)
                .fetch_one(&mut self.notifications)
                .await?;
            let drained = Drained {
                paid,
                shipments,
                notified,
                after: started.elapsed(),
            };
            if drained.complete() || started.elapsed() > DRAIN_TIMEOUT {
                return Ok(drained);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The hops of the paid orders after `since`.
    pub async fn hops(&mut self, since: i64) -> Result<Hops> {
        let q = format!(
            "{OWN_QUERY} select id, created_at, paid_at from orders where id > $1 and paid_at is not null"
        );
        let orders: Vec<(i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(AssertSqlSafe(q))
            .bind(since)
            .fetch_all(&mut self.orders)
            .await?;
        let q =
            format!("{OWN_QUERY} select order_id, created_at from shipments where order_id > $1");
        let shipped: Stamps = sqlx::query_as(AssertSqlSafe(q))
            .bind(since)
            .fetch_all(&mut self.shipping)
            .await?
            .into_iter()
            .collect();
        let q = format!(
            "{OWN_QUERY} select order_id, min(created_at) from notifications
             where order_id > $1 and event = 'paid-order' group by order_id"
        );
        let notified: Stamps = sqlx::query_as(AssertSqlSafe(q))
            .bind(since)
            .fetch_all(&mut self.notifications)
            .await?
            .into_iter()
            .collect();
        let mut hops = Hops {
            created_to_shipment: histogram(),
            paid_to_shipment: histogram(),
            paid_to_notified: histogram(),
        };
        let between = |from: DateTime<Utc>, to: Option<&DateTime<Utc>>| {
            let us = to?.signed_duration_since(from).num_microseconds()?;
            u64::try_from(us).ok().map(|us| us.max(1))
        };
        for (id, created, paid) in orders {
            if let Some(us) = between(created, shipped.get(&id)) {
                hops.created_to_shipment.saturating_record(us);
            }
            if let Some(us) = between(paid, shipped.get(&id)) {
                hops.paid_to_shipment.saturating_record(us);
            }
            if let Some(us) = between(paid, notified.get(&id)) {
                hops.paid_to_notified.saturating_record(us);
            }
        }
        Ok(hops)
    }
}
