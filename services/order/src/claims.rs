//! Claiming an order before anything happens (issue 11, point 4).
//!
//! Every attempt to place an order first commits a claim (`order_claims`): the order
//! id it will have, what it asks for (a fingerprint), its idempotency key if any, and
//! whose bounds it counts against. Only then does it reserve stock or charge a card.
//!
//! **Idempotency keys belong to whoever sent them.** A key is unique within its
//! owner's namespace: `customer:<id>` for a signed-in customer (or admin), `anonymous`
//! for every caller without an account (seed 004's clients had one namespace). The
//! same key from two customers makes two orders. A second request with a claimed key:
//! - asks for something else (another fingerprint): 422 `idempotency_key_reused`;
//! - the first finished: the first's order (a replay, 200);
//! - the first is still in progress: the duplicate waits for it, polling, up to
//!   `IDEMPOTENCY_WAIT` (4 s, less than the gateway's 5 s time limit), then gets its
//!   order; if it is still not done, 409 `idempotency_key_in_use` with
//!   `Retry-After: 1`. A losing request never
//!   reserves stock or charges a card: only the claim's holder does;
//! - the first crashed: its claim expires after `IDEMPOTENCY_CLAIM_TTL` (30 s) and
//!   the next request with the key takes it over, with the same order id. The
//!   inventory and the payment service answer a repeated reservation or charge for
//!   one order with the first, so a takeover never doubles either.
//!
//! A claim whose request was refused before an order was stored (no stock, unknown
//! item, amount mismatch, a dependency down) is deleted: the key is free again, as in
//! seed 004, where a refused order left nothing behind.
//!
//! **Stock asked for and never ordered.** Before it asks the inventory, a claim writes
//! down the lines it asks for ([`note_reserve`]). A request that gives up after that
//! (the inventory's answer lost, the order not stored) gives its claim up with a
//! `restore-canceled-item` for its order id, in one transaction ([`give_up`]); a claim
//! left by a crash expires, and once no retry has taken it over for as long again,
//! [`crate::expired_claims`] does the same. Storing the
//! order marks its claim `stored` in the same transaction, and only a claim still in
//! progress is given up, so an order is stored or its claim given up, never both: a
//! request slower than twice `IDEMPOTENCY_CLAIM_TTL` (and a sweep) gets a 503. Only
//! the latest attempt on a claim (a takeover counts one up) gives it up.
//!
//! **Bounds.** A customer has at most `MAX_UNPAID_ORDERS_PER_CUSTOMER` unpaid
//! (`PENDING`) orders and `MAX_RESERVED_UNITS_PER_CUSTOMER` units in them at once;
//! callers without an account are bounded per client address (the gateway's
//! `client_ip`; IPv6 per /64), administrators not at all. The claims still in
//! progress count too, and the check and the claim happen in one transaction under a
//! per-owner advisory lock, so concurrent requests cannot pass the bound together.
//! A claim left by a crash after it asked for stock counts until it is given up
//! (its stock given back), not only until it expires.
//! A replay is never refused by the bounds: it is no new order.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sales_contracts::events::{CanceledItem, RestoreCanceledItem, StockLine};
use sales_platform::identity::Caller;
use sales_platform::identity::caller::Principal;
use sales_platform::outbox;
use sqlx::{AssertSqlSafe, PgConnection};

use crate::error::{Holder, OrderError, Result};
use crate::orders::{self, Order};
use crate::{OrderContext, SERVICE};

/// `pg_advisory_xact_lock(class, key)`'s class for the per-owner bound check.
const BOUND_LOCK_CLASS: i32 = 0x4f52_4431; // "ORD1"

/// How many unpaid orders and units one owner may hold, and how claims behave.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_unpaid_orders: i64,
    pub max_reserved_units: i64,
    /// A claim in progress this long is taken to be left by a crash.
    pub claim_ttl: Duration,
    /// How long a duplicate waits for the first request with its key.
    pub wait: Duration,
}

/// Who places an order, as far as keys and bounds are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placer {
    /// The order's owner: the signed-in customer (or admin); none without an account.
    pub customer_id: Option<i64>,
    /// The namespace of the caller's idempotency keys.
    pub key_owner: String,
    /// Whose bounds the order counts against; none for staff.
    pub bound: Option<(String, BoundKind)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundKind {
    Customer,
    Address,
}

impl Placer {
    pub fn of(caller: &Caller) -> Placer {
        match &caller.principal {
            Principal::Customer(id) => Placer {
                customer_id: Some(*id),
                key_owner: format!("customer:{id}"),
                bound: Some((format!("customer:{id}"), BoundKind::Customer)),
            },
            Principal::Admin(id) => Placer {
                customer_id: Some(*id),
                key_owner: format!("customer:{id}"),
                bound: None,
            },
            Principal::Anonymous => Placer {
                customer_id: None,
                key_owner: "anonymous".into(),
                bound: Some((
                    format!(
                        "address:{}",
                        caller
                            .client_ip
                            .map(address_bucket)
                            .unwrap_or_else(|| "unknown".into())
                    ),
                    BoundKind::Address,
                )),
            },
            // No order route admits a service; should one ever, it has its own.
            Principal::Service { name, .. } => Placer {
                customer_id: None,
                key_owner: format!("service:{name}"),
                bound: Some((format!("service:{name}"), BoundKind::Customer)),
            },
        }
    }

    /// The bound's owner key, for storing with the order.
    pub fn bound_owner(&self) -> Option<&str> {
        self.bound.as_ref().map(|(owner, _)| owner.as_str())
    }
}

/// One bound per IPv4 address, per IPv6 /64 (what one subscriber usually gets).
pub fn address_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// What to claim.
#[derive(Debug)]
pub struct ClaimRequest<'a> {
    pub placer: &'a Placer,
    pub key: Option<&'a str>,
    pub fingerprint: &'a str,
    /// Units the order asks for (all lines).
    pub units: i64,
}

/// A claim this request holds: it may place order `order_id`.
#[derive(Debug)]
pub struct Claim {
    pub order_id: i64,
    keyed: bool,
    /// Which attempt on the claim this is (a takeover counts one up): only the latest
    /// may note its lines or give the claim up.
    attempt: i32,
}

/// The outcome of claiming.
#[derive(Debug)]
pub enum Claimed {
    /// Ours: go ahead.
    Mine(Claim),
    /// An earlier request with the key placed this order.
    Replay(Box<Order>),
}

enum Attempt {
    Claimed(Claim),
    Replay(Box<Order>),
    /// Another request holds the key and is still working.
    Busy,
    /// Lost a race for the key (or its claim vanished): look again.
    Again,
}

/// Claim an order for `request`; see the module docs.
pub async fn claim(ctx: &OrderContext, request: &ClaimRequest<'_>) -> Result<Claimed> {
    let deadline = Instant::now() + ctx.limits.wait;
    let mut pause = Duration::from_millis(20);
    let mut races = 0;
    loop {
        match try_claim(ctx, request).await? {
            Attempt::Claimed(claim) => return Ok(Claimed::Mine(claim)),
            Attempt::Replay(order) => return Ok(Claimed::Replay(order)),
            Attempt::Again if races < 20 => races += 1,
            Attempt::Again | Attempt::Busy => {
                if Instant::now() + pause > deadline {
                    return Err(OrderError::IdempotencyKeyInUse);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        }
    }
}

#[derive(sqlx::FromRow)]
struct Existing {
    order_id: i64,
    fingerprint: String,
    state: String,
    live: bool,
}

async fn try_claim(ctx: &OrderContext, request: &ClaimRequest<'_>) -> Result<Attempt> {
    let placer = request.placer;
    let mut tx = ctx.pool.begin().await?;
    if let Some(key) = request.key {
        let existing: Option<Existing> = sqlx::query_as(
            "select order_id, fingerprint, state, expires_at > now() as live
             from order_claims where key_owner = $1 and idempotency_key = $2 for update",
        )
        .bind(&placer.key_owner)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing {
            if existing.fingerprint != request.fingerprint {
                return Err(OrderError::IdempotencyKeyReused);
            }
            let stored = orders::exists(&mut tx, existing.order_id).await?;
            return match (existing.state.as_str(), existing.live, stored) {
                ("done", _, true) | (_, false, true) => {
                    mark_done(&mut tx, existing.order_id).await?;
                    let order = orders::load(&mut tx, existing.order_id).await?;
                    tx.commit().await?;
                    Ok(Attempt::Replay(Box::new(order)))
                }
                ("done", _, false) => {
                    // A finished claim without its order cannot happen; do not let
                    // it hold the key.
                    tracing::error!(
                        order_id = existing.order_id,
                        "an idempotency claim is done but its order is missing; freeing the key"
                    );
                    delete(&mut tx, existing.order_id).await?;
                    tx.commit().await?;
                    Ok(Attempt::Again)
                }
                (_, true, _) => Ok(Attempt::Busy),
                (_, false, false) => {
                    // Left by a crash: take it over, with its order id.
                    let attempt: i32 = sqlx::query_scalar(
                        "update order_claims
                         set expires_at = now() + $2 * interval '1 millisecond',
                             attempts = attempts + 1
                         where order_id = $1
                         returning attempts",
                    )
                    .bind(existing.order_id)
                    .bind(millis(ctx.limits.claim_ttl))
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    tracing::warn!(
                        order_id = existing.order_id,
                        "took over an expired idempotency claim"
                    );
                    Ok(Attempt::Claimed(Claim {
                        order_id: existing.order_id,
                        keyed: true,
                        attempt,
                    }))
                }
            };
        }
    }
    let order_id = match &placer.bound {
        Some((owner, kind)) => insert_within_bounds(ctx, &mut tx, request, owner, *kind).await?,
        None => insert_claim(&mut tx, request, ctx.limits.claim_ttl).await?,
    };
    let Some(order_id) = order_id else {
        // Another request claimed the key after this one looked it up.
        return Ok(Attempt::Again);
    };
    tx.commit().await?;
    Ok(Attempt::Claimed(Claim {
        order_id,
        keyed: request.key.is_some(),
        attempt: 1,
    }))
}

/// The new claim's row, its order id taken from the orders' sequence; `None` if the
/// key was claimed meanwhile.
const INSERT_CLAIM: &str = "insert into order_claims (order_id, key_owner, idempotency_key,
         fingerprint, limit_owner, units, state, expires_at)
     select nextval(pg_get_serial_sequence('orders', 'id')), $1, $2, $3, $4, $5,
         'in_progress', now() + $6 * interval '1 millisecond'";

async fn insert_claim(
    conn: &mut PgConnection,
    request: &ClaimRequest<'_>,
    ttl: Duration,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "{INSERT_CLAIM} on conflict (key_owner, idempotency_key) do nothing returning order_id"
    )))
    .bind(request.key.map(|_| request.placer.key_owner.as_str()))
    .bind(request.key)
    .bind(request.fingerprint)
    .bind(request.placer.bound_owner())
    .bind(request.units)
    .bind(millis(ttl))
    .fetch_optional(conn)
    .await?)
}

/// Claim an order for `owner` unless one more of `units` would pass its bounds
/// (refused); `None` if the key was claimed after it was looked up. The owner's advisory lock, held until the transaction ends, makes the
/// count and the insert one step for that owner; the count and the insert are one
/// statement, so the lock is held for two round trips (this one and the commit).
async fn insert_within_bounds(
    ctx: &OrderContext,
    tx: &mut PgConnection,
    request: &ClaimRequest<'_>,
    owner: &str,
    kind: BoundKind,
) -> Result<Option<i64>> {
    // The lock first, in a statement of its own: the count's snapshot must be taken
    // after it, to see what the lock's previous holder committed.
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
        .bind(BOUND_LOCK_CLASS)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    let limits = ctx.limits;
    let (count, held, order_id, key_taken): (i64, i64, Option<i64>, bool) =
        sqlx::query_as(AssertSqlSafe(format!(
            "with held as (
             select (select coalesce(sum(l.quantity), 0) from order_lines l
                     where l.order_id = o.id)::bigint as units
             from orders o where o.limit_owner = $4 and o.status = 'PENDING'
             union all
             select c.units from order_claims c
             where c.limit_owner = $4 and c.state = 'in_progress'
               and (c.expires_at > now() or c.reserve_lines is not null)
               and not exists (select 1 from orders o where o.id = c.order_id)
         ),
         totals as (
             select count(*)::bigint as orders, coalesce(sum(units), 0)::bigint as units
             from held
         ),
         claimed as (
             {INSERT_CLAIM} from totals
             where totals.orders < $7 and totals.units + $5 <= $8
             on conflict (key_owner, idempotency_key) do nothing
             returning order_id
         )
         select orders, units, (select order_id from claimed),
             exists (select 1 from order_claims
                     where key_owner = $1 and idempotency_key = $2) as key_taken
         from totals"
        )))
        .bind(request.key.map(|_| request.placer.key_owner.as_str()))
        .bind(request.key)
        .bind(request.fingerprint)
        .bind(owner)
        .bind(request.units)
        .bind(millis(limits.claim_ttl))
        .bind(limits.max_unpaid_orders)
        .bind(limits.max_reserved_units)
        .fetch_one(&mut *tx)
        .await?;
    if order_id.is_some() {
        return Ok(order_id);
    }
    if key_taken {
        // The same key was claimed while this request waited for the lock (a retry
        // sent at once): that claim is this order, not one more; look again.
        return Ok(None);
    }
    let holder = || match kind {
        BoundKind::Customer => Holder::Customer,
        BoundKind::Address => Holder::Address {
            unpaid_timeout: humantime::format_duration(ctx.unpaid_timeout).to_string(),
        },
    };
    if count >= limits.max_unpaid_orders {
        ctx.metrics
            .orders_refused
            .with_label_values(&["too_many_unpaid_orders"])
            .inc();
        return Err(OrderError::TooManyUnpaidOrders {
            holder: holder(),
            count,
            limit: limits.max_unpaid_orders,
        });
    }
    if held.saturating_add(request.units) > limits.max_reserved_units {
        ctx.metrics
            .orders_refused
            .with_label_values(&["too_many_reserved_units"])
            .inc();
        return Err(OrderError::TooManyReservedUnits {
            holder: holder(),
            held,
            requested: request.units,
            limit: limits.max_reserved_units,
        });
    }
    Ok(None)
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) async fn mark_done(conn: &mut PgConnection, order_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("update order_claims set state = 'done' where order_id = $1")
        .bind(order_id)
        .execute(conn)
        .await
        .map(|_| ())
}

pub(crate) async fn delete(conn: &mut PgConnection, order_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("delete from order_claims where order_id = $1")
        .bind(order_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// [`finish`] the claim of order `$1` inside the statement that settles its charge
/// (`with {FINISH_STORED_CLAIM} update orders ...`): a one-call order's claim ends
/// with its outcome, without a round trip of its own. A claim already finished (the
/// order paid later, or by the reconciler) is left as it is.
pub const FINISH_STORED_CLAIM: &str = "finished_claim as (
         update order_claims set state = 'done'
         where order_id = $1 and state = 'stored' and idempotency_key is not null),
     freed_claim as (
         delete from order_claims
         where order_id = $1 and state = 'stored' and idempotency_key is null)";

/// The claim's order was stored (and, for a one-call order, charged): a keyed claim
/// keeps the key bound to its order; an unkeyed one is no longer needed. If this
/// fails, the claim expires and the next look at it sees the stored order.
pub async fn finish(ctx: &OrderContext, claim: &Claim) {
    let result = match ctx.pool.acquire().await {
        Ok(mut conn) if claim.keyed => mark_done(&mut conn, claim.order_id).await,
        Ok(mut conn) => delete(&mut conn, claim.order_id).await,
        Err(e) => Err(e),
    };
    if let Err(err) = result {
        tracing::warn!(order_id = claim.order_id, error = %err, "could not finish an order claim; it will expire");
    }
}

/// Write down what the claim asks the inventory to hold, before it asks: if its order
/// is never stored, [`give_up`] gives these units back. Fails with
/// [`OrderError::ClaimExpired`] if the claim was given up or taken over meanwhile.
pub async fn note_reserve(ctx: &OrderContext, claim: &Claim, lines: &[StockLine]) -> Result<()> {
    let noted = sqlx::query(
        "update order_claims set reserve_lines = $3
         where order_id = $1 and attempts = $2 and state = 'in_progress'",
    )
    .bind(claim.order_id)
    .bind(claim.attempt)
    .bind(sqlx::types::Json(lines))
    .execute(&ctx.pool)
    .await?;
    if noted.rows_affected() == 0 {
        return Err(OrderError::ClaimExpired {
            order_id: claim.order_id,
        });
    }
    Ok(())
}

/// Inside the transaction that stores the claim's order: the claim is `stored`, so
/// nothing gives it up any more. `false` if it is no longer in progress: given up (its
/// stock given back), or another attempt on it stored the order first.
pub async fn mark_stored(conn: &mut PgConnection, order_id: i64) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query(
        "update order_claims set state = 'stored' where order_id = $1 and state = 'in_progress'",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(marked.rows_affected() == 1)
}

/// Nothing was stored: free the claim (and its key), if this attempt still holds it.
/// Unless the inventory refused the stock outright, it may hold some for the order
/// id: that is given back too.
pub async fn abandon(ctx: &OrderContext, claim: &Claim, inventory_refused: bool) {
    let result = async {
        let mut tx = ctx.pool.begin().await?;
        let restored = give_up(
            &mut tx,
            claim.order_id,
            Some(claim.attempt),
            !inventory_refused,
        )
        .await?;
        tx.commit().await?;
        if restored {
            ctx.metrics.placements_abandoned("refused");
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(order_id = claim.order_id, error = %err, "could not free an order claim; it will expire");
    }
}

/// Delete the claim of `order_id` if it is still in progress (its order not stored:
/// storing marks it `stored` in the same transaction) and, with `attempt`, still held
/// by that attempt. If it had asked the inventory for stock, and `restore` is set or
/// another attempt may have reserved under the same order id (it was taken over), a
/// `restore-canceled-item` for the order id goes into the outbox in the same
/// transaction: the inventory gives back whatever it holds for the order, and marks it
/// released so a reservation still on its way takes nothing. Returns whether a
/// restore was sent.
pub async fn give_up(
    conn: &mut PgConnection,
    order_id: i64,
    attempt: Option<i32>,
    restore: bool,
) -> Result<bool, sqlx::Error> {
    let deleted: Option<(Option<sqlx::types::Json<Vec<StockLine>>>, i32)> = sqlx::query_as(
        "delete from order_claims
         where order_id = $1 and state = 'in_progress' and ($2::integer is null or attempts = $2)
         returning reserve_lines, attempts",
    )
    .bind(order_id)
    .bind(attempt)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((Some(sqlx::types::Json(lines)), attempts)) = deleted else {
        return Ok(false);
    };
    if !restore && attempts == 1 {
        return Ok(false);
    }
    let items = lines
        .into_iter()
        .map(|l| CanceledItem {
            order_id,
            product_id: l.product_id,
            sku: l.sku,
            quantity: l.quantity,
        })
        .collect();
    outbox::enqueue(conn, SERVICE, RestoreCanceledItem { items }).await?;
    tracing::warn!(
        order_id,
        "an order was given up after its stock was asked for; the stock goes back"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(principal: Principal, ip: Option<&str>) -> Caller {
        Caller {
            principal,
            seed_compat: true,
            client_ip: ip.map(|i| i.parse().unwrap()),
        }
    }

    #[test]
    fn keys_belong_to_their_sender_and_bounds_to_customers_or_addresses() {
        let alice = Placer::of(&caller(Principal::Customer(7), Some("10.0.0.1")));
        assert_eq!(alice.key_owner, "customer:7");
        assert_eq!(alice.bound_owner(), Some("customer:7"));
        assert_eq!(alice.customer_id, Some(7));
        let admin = Placer::of(&caller(Principal::Admin(1), None));
        assert_eq!(
            (admin.key_owner.as_str(), admin.bound_owner()),
            ("customer:1", None)
        );
        let here = Placer::of(&caller(Principal::Anonymous, Some("203.0.113.7")));
        let there = Placer::of(&caller(Principal::Anonymous, Some("203.0.113.8")));
        assert_eq!(
            here.key_owner, there.key_owner,
            "one namespace without an account"
        );
        assert_ne!(here.bound_owner(), there.bound_owner());
        assert_eq!(here.customer_id, None);
        let unknown = Placer::of(&caller(Principal::Anonymous, None));
        assert_eq!(unknown.bound_owner(), Some("address:unknown"));
    }

    #[test]
    fn ipv6_addresses_share_a_bound_per_64() {
        let b = |ip: &str| address_bucket(ip.parse().unwrap());
        assert_eq!(b("2001:db8:1:2::1"), b("2001:db8:1:2:ffff::9"));
        assert_ne!(b("2001:db8:1:2::1"), b("2001:db8:1:3::1"));
        assert_eq!(b("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(b("192.0.2.1"), "192.0.2.1");
    }
}
