//! Orders as stored, and the queries that read and change them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sales_contracts::{Currency, DecimalAmount, Money};
use sales_platform::identity::OwnerScope;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgConnection};
use utoipa::ToSchema;

use crate::error::{OrderError, Result};
use crate::order_status::{OrderStatus, PaymentStatus};

/// An order, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Order {
    #[schema(example = 1)]
    pub order_id: i64,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    /// Who placed it and owns it: the signed-in customer whose token the gateway
    /// verified; null for an order placed without an account.
    pub customer_id: Option<i64>,
    /// Seed 002's `customer_id` as its client stated it: the seed's own reference,
    /// echoed in seed 002's answers; never the order's owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stated_customer_id: Option<i64>,
    pub items: Vec<OrderLine>,
    pub total: Money,
    /// Stock reservation held for the order in the inventory.
    pub reservation_id: Option<i64>,
    /// An unpaid order is cancelled at this time.
    pub pay_by: DateTime<Utc>,
    /// `customer` or `unpaid-timeout` for a cancelled order.
    pub cancel_reason: Option<String>,
    /// The payment in the payment service, once the order was charged.
    pub payment_id: Option<i64>,
    /// Why the payment was declined, for a `FAILED` order.
    pub failure_reason: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Seed 004's flat view: the SKU of a one-item order (null for several items).
    pub item_sku: Option<String>,
    /// Seed 004's flat view: units ordered, all items together.
    pub quantity: i64,
    /// Seed 004's flat view: the total in major units (`200.5` is 200.50).
    #[schema(value_type = f64, example = 200.5)]
    pub amount: DecimalAmount,
    /// Seed 004's flat view: the total's currency.
    pub currency: Currency,
}

/// One product in an order, at the price it had when ordered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderLine {
    /// The catalogue product; none for a SKU the catalogue does not know (seed 004's
    /// one-call order, for an item the inventory stocks).
    pub product_id: Option<i64>,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    /// The price of one unit. Where the line's total was stated by the client and does
    /// not split evenly (seed 004: 3 units for 200.00), this is the total divided by
    /// the quantity, rounded to the nearest minor unit; `line_total` is exact.
    pub unit_price: Money,
    /// What the line costs: the catalogue price times the quantity, or the amount
    /// seed 004's client stated. The order's total is the sum of its line totals.
    pub line_total: Money,
}

impl OrderLine {
    /// A line at a catalogue price.
    pub fn at_unit_price(
        product_id: Option<i64>,
        sku: String,
        name: String,
        quantity: i32,
        unit_price: Money,
    ) -> Result<OrderLine> {
        let line_total = unit_price
            .checked_mul(i64::from(quantity))
            .map_err(|_| OrderError::TotalTooLarge)?;
        Ok(OrderLine {
            product_id,
            sku,
            name,
            quantity,
            unit_price,
            line_total,
        })
    }

    /// A line whose total is given (seed 004's stated amount); its unit price is the
    /// total over the quantity, rounded half up to the minor unit.
    pub fn with_total(
        product_id: Option<i64>,
        sku: String,
        name: String,
        quantity: i32,
        line_total: Money,
    ) -> OrderLine {
        OrderLine {
            product_id,
            sku,
            name,
            quantity,
            unit_price: Money::new(unit_share(line_total.amount, quantity), line_total.currency),
            line_total,
        }
    }
}

/// `total / quantity`, rounded half up (integers only, no floats).
pub fn unit_share(total: i64, quantity: i32) -> i64 {
    let quantity = i128::from(quantity.max(1));
    let share = (2 * i128::from(total) + quantity).div_euclid(2 * quantity);
    i64::try_from(share).unwrap_or(i64::MAX)
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: i64,
    customer_id: Option<i64>,
    stated_customer_id: Option<i64>,
    status: String,
    payment_status: String,
    total_amount: i64,
    currency: String,
    reservation_id: Option<i64>,
    pay_by: DateTime<Utc>,
    cancel_reason: Option<String>,
    payment_id: Option<i64>,
    failure_reason: Option<String>,
    paid_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    shipped_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: i64,
    product_id: Option<i64>,
    sku: String,
    name: String,
    quantity: i32,
    unit_amount: i64,
    line_amount: i64,
}

/// The columns its queries select or return, put in with `format!` under
/// `AssertSqlSafe` (sqlx 0.9): a constant, never input; values are bound parameters.
const COLUMNS: &str = "id, customer_id, stated_customer_id, status, payment_status, total_amount, currency, \
    reservation_id, pay_by, cancel_reason, payment_id, failure_reason, paid_at, cancelled_at, \
    shipped_at, delivered_at, created_at, updated_at";

fn currency(code: &str) -> Currency {
    // The column only ever holds codes that parsed when the order was written.
    code.parse().unwrap_or(Currency::USD)
}

fn assemble(row: OrderRow, lines: Vec<LineRow>) -> Order {
    let currency = currency(&row.currency);
    let total = Money::new(row.total_amount, currency);
    Order::new(OrderParts {
        order_id: row.id,
        status: OrderStatus::parse(&row.status).unwrap_or(OrderStatus::Pending),
        payment_status: PaymentStatus::parse(&row.payment_status).unwrap_or(PaymentStatus::Pending),
        customer_id: row.customer_id,
        stated_customer_id: row.stated_customer_id,
        items: lines
            .into_iter()
            .map(|l| OrderLine {
                product_id: l.product_id,
                sku: l.sku,
                name: l.name,
                quantity: l.quantity,
                unit_price: Money::new(l.unit_amount, currency),
                line_total: Money::new(l.line_amount, currency),
            })
            .collect(),
        total,
        reservation_id: row.reservation_id,
        pay_by: row.pay_by,
        cancel_reason: row.cancel_reason,
        payment_id: row.payment_id,
        failure_reason: row.failure_reason,
        paid_at: row.paid_at,
        cancelled_at: row.cancelled_at,
        shipped_at: row.shipped_at,
        delivered_at: row.delivered_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Everything an [`Order`] is made of; the flat seed 004 view is derived from it.
pub struct OrderParts {
    pub order_id: i64,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub customer_id: Option<i64>,
    pub stated_customer_id: Option<i64>,
    pub items: Vec<OrderLine>,
    pub total: Money,
    pub reservation_id: Option<i64>,
    pub pay_by: DateTime<Utc>,
    pub cancel_reason: Option<String>,
    pub payment_id: Option<i64>,
    pub failure_reason: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    pub fn new(p: OrderParts) -> Order {
        let item_sku = match p.items.as_slice() {
            [only] => Some(only.sku.clone()),
            _ => None,
        };
        let quantity = p.items.iter().map(|l| i64::from(l.quantity)).sum();
        Order {
            order_id: p.order_id,
            status: p.status,
            payment_status: p.payment_status,
            customer_id: p.customer_id,
            stated_customer_id: p.stated_customer_id,
            item_sku,
            quantity,
            amount: DecimalAmount::from_money(p.total),
            currency: p.total.currency,
            items: p.items,
            total: p.total,
            reservation_id: p.reservation_id,
            pay_by: p.pay_by,
            cancel_reason: p.cancel_reason,
            payment_id: p.payment_id,
            failure_reason: p.failure_reason,
            paid_at: p.paid_at,
            cancelled_at: p.cancelled_at,
            shipped_at: p.shipped_at,
            delivered_at: p.delivered_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    /// The catalogue products in the order (for cache invalidation).
    pub fn product_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.items.iter().filter_map(|l| l.product_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

async fn with_lines(conn: &mut PgConnection, rows: Vec<OrderRow>) -> Result<Vec<Order>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let lines: Vec<LineRow> = sqlx::query_as(
        "select order_id, product_id, sku, name, quantity, unit_amount, line_amount
         from order_lines where order_id = any($1) order by order_id, line_no",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut by_order: HashMap<i64, Vec<LineRow>> = HashMap::new();
    for line in lines {
        by_order.entry(line.order_id).or_default().push(line);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let lines = by_order.remove(&row.id).unwrap_or_default();
            assemble(row, lines)
        })
        .collect())
}

/// Read an order.
pub async fn load(conn: &mut PgConnection, id: i64) -> Result<Order> {
    fetch_one(conn, id, "").await
}

/// Read an order and lock it until the transaction ends.
pub async fn lock(conn: &mut PgConnection, id: i64) -> Result<Order> {
    fetch_one(conn, id, " for update").await
}

#[tracing::instrument(name = "db select order", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
async fn fetch_one(conn: &mut PgConnection, id: i64, suffix: &'static str) -> Result<Order> {
    let row: OrderRow = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from orders where id = $1{suffix}"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(OrderError::NotFound(id))?;
    let mut orders = with_lines(conn, vec![row]).await?;
    orders.pop().ok_or(OrderError::NotFound(id))
}

/// Which orders to list.
#[derive(Debug, Clone)]
pub struct OrderFilter {
    /// Whose orders: everyone's, or one owner's.
    pub owner: OwnerScope,
    pub status: Option<OrderStatus>,
    pub product_id: Option<i64>,
}

/// Orders matching `filter`, newest first.
#[tracing::instrument(name = "db select orders", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn list(
    conn: &mut PgConnection,
    filter: &OrderFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Order>> {
    let rows: Vec<OrderRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from orders o
         where ($6 or customer_id is not distinct from $1)
           and ($2::text is null or status = $2)
           and ($3::bigint is null or exists
                 (select 1 from order_lines l where l.order_id = o.id and l.product_id = $3))
         order by id desc limit $4 offset $5"
    )))
    .bind(filter.owner.sql_binds().1)
    .bind(filter.status.map(OrderStatus::as_str))
    .bind(filter.product_id)
    .bind(limit)
    .bind(offset)
    .bind(filter.owner.sql_binds().0)
    .fetch_all(&mut *conn)
    .await?;
    with_lines(conn, rows).await
}

/// Does an order with this id exist?
pub async fn exists(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from orders where id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// What a new order's row keeps beside the [`Order`] itself.
#[derive(Clone, Copy, Debug)]
pub struct NewOrderRow<'a> {
    pub idempotency_key: Option<&'a str>,
    /// What the request asked for, to tell its retry from another order.
    pub fingerprint: &'a str,
    /// Whose bounds it counts against while unpaid (see [`crate::claims`]).
    pub limit_owner: Option<&'a str>,
    /// It is charged right after it is stored (the one-call order): its payment
    /// attempt is written down with it (see [`crate::pay_order`]).
    pub charge_now: bool,
}

/// Store a new order with its lines.
#[tracing::instrument(name = "db insert order", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub async fn insert(
    conn: &mut PgConnection,
    order: &Order,
    row: &NewOrderRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into orders (id, customer_id, status, payment_status, total_amount, currency,
             idempotency_key, request_fingerprint, reservation_id, pay_by, created_at, updated_at,
             stated_customer_id, limit_owner, payment_attempted_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13,
                 case when $14 then now() end)",
    )
    .bind(order.order_id)
    .bind(order.customer_id)
    .bind(order.status.as_str())
    .bind(order.payment_status.as_str())
    .bind(order.total.amount)
    .bind(order.total.currency.as_str())
    .bind(row.idempotency_key)
    .bind(row.fingerprint)
    .bind(order.reservation_id)
    .bind(order.pay_by)
    .bind(order.created_at)
    .bind(order.stated_customer_id)
    .bind(row.limit_owner)
    .bind(row.charge_now)
    .execute(&mut *conn)
    .await?;
    for (line_no, line) in order.items.iter().enumerate() {
        sqlx::query(
            "insert into order_lines (order_id, line_no, product_id, sku, name, quantity,
                 unit_amount, line_amount)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(order.order_id)
        .bind(line_no as i32 + 1)
        .bind(line.product_id)
        .bind(&line.sku)
        .bind(&line.name)
        .bind(line.quantity)
        .bind(line.unit_price.amount)
        .bind(line.line_total.amount)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_price_is_the_line_total_shared_out_rounded_half_up() {
        assert_eq!(unit_share(20000, 3), 6667);
        assert_eq!(unit_share(10000, 3), 3333);
        assert_eq!(unit_share(5, 2), 3);
        assert_eq!(unit_share(1, 3), 0);
        assert_eq!(unit_share(2500, 2), 1250);
        assert_eq!(unit_share(i64::MAX, 1), i64::MAX);
    }

    #[test]
    fn a_line_with_a_stated_total_keeps_it_exactly() {
        let usd = Currency::USD;
        let line = OrderLine::with_total(None, "X".into(), "X".into(), 3, Money::new(20000, usd));
        assert_eq!(line.line_total, Money::new(20000, usd));
        assert_eq!(line.unit_price, Money::new(6667, usd));
        let line =
            OrderLine::at_unit_price(Some(1), "X".into(), "X".into(), 3, Money::new(1250, usd))
                .unwrap();
        assert_eq!(line.line_total, Money::new(3750, usd));
        assert!(
            OrderLine::at_unit_price(None, "X".into(), "X".into(), 2, Money::new(i64::MAX, usd))
                .is_err()
        );
    }
}
