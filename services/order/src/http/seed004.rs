//! Seed 004's order routes, answered as its FastAPI order service answers them, so a
//! client written for seed 004 works unchanged:
//!
//! - `POST /api/v1/orders/ {item_sku, quantity, amount, currency, idempotency_key}`
//!   (all required, as in seed 004; other fields are ignored, as pydantic does):
//!   reserve, charge, answer **200** with the order, `CONFIRMED` or `FAILED` (a
//!   declined payment gives the stock back). The client states the amount: where the
//!   catalogue prices the item, it must be that price times the quantity (409);
//!   otherwise the item must be in stock, and the amount is the line's total, even
//!   when it does not split evenly into unit prices (3 units for 200.00). The same
//!   key (per customer; one namespace for every caller without an account, as in
//!   seed 004) answers the same order, 200.
//! - `GET /api/v1/orders/`: the caller's orders (without an account: the orders
//!   placed without one), newest first.
//!
//! Errors are FastAPI's `{"detail": ...}` with seed 004's statuses and messages:
//! 400 `insufficient stock`, 404 `item not found` (no stock item for the SKU), 422
//! with FastAPI's list of problems (`[{type, loc, msg, input}]`) for a body that is
//! not a valid order; the rules seed 004 did not have (a different body under a used
//! key, too many unpaid orders, a mismatched amount) answer `{"detail": "<what to
//! do>", "error": {"code", "message"}}` with 422 or 409: the canonical error beside
//! FastAPI's, its `code` saying which rule.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sales_contracts::api::ErrorBody;
use sales_contracts::{Currency, DecimalAmount, Money};
use sales_platform::identity::Caller;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Query};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{OrderQuery, list};
use crate::OrderContext;
use crate::claims::Placer;
use crate::create_order::{ItemRef, MAX_QUANTITY, PlaceOrder, Pricing, RequestedItem, place_order};
use crate::error::{OrderError, retry_after};
use crate::orders::Order;

/// Seed 004's new order (its `OrderIn`). Other members are ignored, as pydantic does.
#[derive(Debug, ToSchema)]
pub struct Seed004OrderIn {
    /// A stock item's SKU (one that names no item is `item not found`, 404).
    #[schema(schema_with = super::schemas::sku)]
    pub item_sku: String,
    #[schema(schema_with = super::schemas::quantity)]
    pub quantity: i32,
    /// In major units (`200.50`, written out: `1e2` is refused), read exactly; more
    /// than zero, at most the currency's decimal places. Where the catalogue prices the item, its price times the
    /// quantity (409 otherwise).
    #[schema(schema_with = sales_contracts::money::request_schemas::positive_decimal_amount)]
    pub amount: DecimalAmount,
    pub currency: Currency,
    /// The same key (yours; one for every caller without an account) answers the same
    /// order; another order under it is refused (422).
    #[schema(schema_with = super::schemas::idempotency_key)]
    pub idempotency_key: String,
}

/// FastAPI's error answer: a message, or (422) its list of problems
/// (`[{"type", "loc", "msg", "input"}]`). The refusals seed 004 did not have carry
/// the canonical error beside `detail`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed004Error {
    pub detail: Value,
    /// For the rules seed 004 did not have (a key used for another order, too many
    /// unpaid orders, an amount that is not the catalogue's...): the canonical error,
    /// whose `code` says which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

fn detail(status: StatusCode, detail: impl Into<Value>) -> Response {
    (
        status,
        axum::Json(Seed004Error {
            detail: detail.into(),
            error: None,
        }),
    )
        .into_response()
}

/// One of FastAPI's validation problems.
fn problem(loc: &[&str], kind: &str, msg: impl Into<String>, input: Value) -> Value {
    json!({"type": kind, "loc": loc, "msg": msg.into(), "input": input})
}

fn invalid(problems: Vec<Value>) -> Response {
    detail(StatusCode::UNPROCESSABLE_ENTITY, Value::Array(problems))
}

/// Any error of placing an order, as seed 004 would say it.
fn refused(err: OrderError) -> Response {
    match err {
        OrderError::Unavailable(_) => detail(StatusCode::BAD_REQUEST, "insufficient stock"),
        OrderError::NotStocked(_) => detail(StatusCode::NOT_FOUND, "item not found"),
        OrderError::Validation(message) => invalid(vec![problem(
            &["body"],
            "value_error",
            format!("Value error, {message}"),
            Value::Null,
        )]),
        other => {
            let err = ApiError::from(other);
            let wait = retry_after(&err.code);
            let mut response = (
                err.status,
                axum::Json(Seed004Error {
                    error: Some(err.body().error),
                    detail: err.message.into(),
                }),
            )
                .into_response();
            if let Some(wait) = wait {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static(wait),
                );
            }
            response
        }
    }
}

/// The fields of a body, each as its JSON text (absent: missing).
#[derive(Deserialize)]
struct RawOrder<'a> {
    #[serde(borrow, default)]
    item_sku: Option<&'a RawValue>,
    #[serde(borrow, default)]
    quantity: Option<&'a RawValue>,
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
    #[serde(borrow, default)]
    currency: Option<&'a RawValue>,
    #[serde(borrow, default)]
    idempotency_key: Option<&'a RawValue>,
}

/// A checked one-call order.
#[derive(Debug, PartialEq, Eq)]
struct OneCallOrder {
    item_sku: String,
    quantity: i32,
    payment: Money,
    idempotency_key: String,
}

fn value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// Where serde stopped, as a character offset (FastAPI's `loc` of a JSON error).
fn offset(text: &[u8], line: usize, column: usize) -> usize {
    let text = String::from_utf8_lossy(text);
    text.split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(|l| l.chars().count())
        .sum::<usize>()
        + column.saturating_sub(1)
}

/// Read a body as seed 004's `OrderIn` (pydantic's rules, lax mode), then this
/// system's checks; every problem found, as FastAPI lists them.
fn parse(body: &[u8]) -> Result<OneCallOrder, Vec<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![problem(
            &["body"],
            "missing",
            "Field required",
            Value::Null,
        )]);
    }
    let whole: Value = serde_json::from_slice(body).map_err(|e| {
        vec![json!({
            "type": "json_invalid",
            "loc": ["body", offset(body, e.line(), e.column())],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": e.to_string()},
        })]
    })?;
    if !whole.is_object() {
        return Err(vec![problem(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            whole,
        )]);
    }
    let raw: RawOrder = serde_json::from_slice(body).map_err(|e| {
        vec![problem(
            &["body"],
            "value_error",
            format!("Value error, {e}"),
            Value::Null,
        )]
    })?;
    let mut problems = Vec::new();
    let missing =
        |field: &str| problem(&["body", field], "missing", "Field required", whole.clone());

    let text = |field: &'static str, raw: Option<&RawValue>, problems: &mut Vec<Value>| match raw
        .map(value)
    {
        None => {
            problems.push(missing(field));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            problems.push(problem(
                &["body", field],
                "string_type",
                "Input should be a valid string",
                other,
            ));
            None
        }
    };
    let item_sku = text("item_sku", raw.item_sku, &mut problems);
    let currency_text = text("currency", raw.currency, &mut problems);
    let idempotency_key = text("idempotency_key", raw.idempotency_key, &mut problems);

    let quantity: Option<i64> = match raw.quantity.map(value) {
        None => {
            problems.push(missing("quantity"));
            None
        }
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            (None, Some(_)) => {
                problems.push(problem(
                    &["body", "quantity"],
                    "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part",
                    Value::Number(n),
                ));
                None
            }
            (None, None) => {
                problems.push(problem(
                    &["body", "quantity"],
                    "int_parsing_size",
                    "Unable to parse input string as an integer, exceeded maximum size",
                    Value::Number(n),
                ));
                None
            }
        },
        Some(Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) => Some(i),
            Err(_) => {
                problems.push(problem(
                    &["body", "quantity"],
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                    Value::String(s),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(problem(
                &["body", "quantity"],
                "int_type",
                "Input should be a valid integer",
                other,
            ));
            None
        }
    };

    let amount: Option<DecimalAmount> = match raw.amount {
        None => {
            problems.push(missing("amount"));
            None
        }
        Some(raw) => match value(raw) {
            Value::Number(_) | Value::String(_) => {
                match serde_json::from_str::<DecimalAmount>(raw.get()) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        problems.push(problem(
                            &["body", "amount"],
                            "float_parsing",
                            format!("Input should be a valid number, unable to parse string as a number ({e})"),
                            value(raw),
                        ));
                        None
                    }
                }
            }
            other => {
                problems.push(problem(
                    &["body", "amount"],
                    "float_type",
                    "Input should be a valid number",
                    other,
                ));
                None
            }
        },
    };

    // This system's own checks, once the types are right.
    let value_error = |field: &str, message: String, input: Value| {
        problem(
            &["body", field],
            "value_error",
            format!("Value error, {message}"),
            input,
        )
    };
    // PostgreSQL cannot store NUL in text.
    for (field, text) in [
        ("item_sku", &item_sku),
        ("idempotency_key", &idempotency_key),
    ] {
        if let Some(text) = text
            && text.contains('\0')
        {
            problems.push(value_error(
                field,
                format!("{field} must not contain the NUL character"),
                json!(text),
            ));
        }
    }
    if let Some(sku) = &item_sku
        && (sku.trim().is_empty() || sku.chars().count() > 64)
    {
        problems.push(value_error(
            "item_sku",
            "item_sku must be 1 to 64 characters".into(),
            json!(sku),
        ));
    }
    if let Some(q) = quantity
        && !(1..=i64::from(MAX_QUANTITY)).contains(&q)
    {
        problems.push(value_error(
            "quantity",
            format!("quantity must be between 1 and {MAX_QUANTITY}"),
            json!(q),
        ));
    }
    if let Some(key) = &idempotency_key
        && (key.is_empty() || key.chars().count() > 255)
    {
        problems.push(value_error(
            "idempotency_key",
            "idempotency_key must be 1 to 255 characters".into(),
            json!(key),
        ));
    }
    let currency: Option<Currency> = currency_text.as_deref().and_then(|c| match c.parse() {
        Ok(currency) => Some(currency),
        Err(e) => {
            problems.push(value_error("currency", format!("{e}"), json!(c)));
            None
        }
    });
    let payment = match (&amount, currency) {
        (Some(amount), Some(currency)) => match amount.to_minor(currency) {
            Ok(money) if money.amount > 0 => Some(money),
            Ok(_) => {
                problems.push(value_error(
                    "amount",
                    "amount must be positive".into(),
                    json!(amount.as_str()),
                ));
                None
            }
            Err(e) => {
                problems.push(value_error("amount", e.to_string(), json!(amount.as_str())));
                None
            }
        },
        _ => None,
    };
    match (item_sku, quantity, payment, idempotency_key) {
        (Some(item_sku), Some(quantity), Some(payment), Some(idempotency_key))
            if problems.is_empty() =>
        {
            Ok(OneCallOrder {
                item_sku,
                quantity: i32::try_from(quantity).unwrap_or(MAX_QUANTITY),
                payment,
                idempotency_key,
            })
        }
        _ => Err(problems),
    }
}

/// Seed 004: place an order and pay for it in one call. A new order answers 200, as
/// seed 004 does (not 201), and so does a repeat with the same key.
#[utoipa::path(post, path = "/api/v1/orders/", tag = "seed 004",
    request_body = Seed004OrderIn,
    responses((status = 200, description = "Placed and charged (`CONFIRMED`), or declined (`FAILED`); or placed earlier with this key", body = Order),
               (status = 400, description = "insufficient stock", body = Seed004Error),
               (status = 404, description = "item not found (no stock item for the SKU)", body = Seed004Error),
               (status = 409, description = "The amount is not the catalogue's price, too many unpaid orders or reserved units, or this key's first request is still in progress (`Retry-After`)", body = Seed004Error),
               (status = 413, body = Seed004Error),
               (status = 422, description = "Not a valid order (FastAPI's list of problems), or the key was used for another request", body = Seed004Error),
               (status = 503, description = "Inventory or payments unavailable", body = Seed004Error)))]
pub async fn create_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body is larger than this service accepts",
            );
        }
        Err(e) => return detail(e.status(), e.body_text()),
    };
    let order = match parse(&body) {
        Ok(order) => order,
        Err(problems) => return invalid(problems),
    };
    let request = PlaceOrder {
        idempotency_key: Some(order.idempotency_key),
        payment: Some(order.payment),
        pricing: Pricing::StatedAmount,
        ..PlaceOrder::new(
            Placer::of(&caller),
            vec![RequestedItem {
                item: ItemRef::Sku(order.item_sku),
                quantity: order.quantity,
            }],
        )
    };
    match place_order(&ctx, request).await {
        Ok(placed) => (StatusCode::OK, axum::Json(placed.order())).into_response(),
        Err(err) => refused(err),
    }
}

/// Seed 004: list orders (a customer's own; without an account, those placed without
/// one), newest first.
#[utoipa::path(get, path = "/api/v1/orders/", tag = "seed 004", params(OrderQuery, Page),
    responses((status = 200, body = [Order]), (status = 422, body = Seed004Error)))]
pub async fn list_orders(
    State(ctx): State<OrderContext>,
    caller: Caller,
    query: Result<Query<OrderQuery>, ApiError>,
    page: Result<Query<Page>, ApiError>,
) -> Response {
    let (query, page) = match (query, page) {
        (Ok(Query(query)), Ok(Query(page))) => (query, page),
        (Err(e), _) | (_, Err(e)) => return detail(StatusCode::UNPROCESSABLE_ENTITY, e.message),
    };
    match list(&ctx, &caller, query, page).await {
        Ok(Json(orders)) => axum::Json(orders).into_response(),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            detail(StatusCode::UNPROCESSABLE_ENTITY, e.message)
        }
        Err(e) => detail(e.status, e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(body: &str) -> Vec<Value> {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_seed_004_order_reads_exactly() {
        let order = parse(
            br#"{"item_sku": "SKU-ABC", "quantity": 2, "amount": 200.50, "currency": "USD",
                 "idempotency_key": "unique-key-001", "note": "ignored"}"#,
        )
        .unwrap();
        assert_eq!(
            order,
            OneCallOrder {
                item_sku: "SKU-ABC".into(),
                quantity: 2,
                payment: Money::new(20050, Currency::USD),
                idempotency_key: "unique-key-001".into(),
            }
        );
        // pydantic's lax mode: numbers as strings, whole floats as integers.
        let order = parse(
            br#"{"item_sku": "A", "quantity": "3", "amount": "200", "currency": "USD", "idempotency_key": "k"}"#,
        )
        .unwrap();
        assert_eq!((order.quantity, order.payment.amount), (3, 20000));
        assert_eq!(
            parse(br#"{"item_sku": "A", "quantity": 3.0, "amount": 1, "currency": "USD", "idempotency_key": "k"}"#)
                .unwrap()
                .quantity,
            3
        );
    }

    #[test]
    fn problems_are_listed_as_fastapi_does() {
        let p = problems(r#"{"item_sku": "A"}"#);
        let missing: Vec<&str> = p.iter().map(|p| p["loc"][1].as_str().unwrap()).collect();
        assert_eq!(
            missing,
            vec!["currency", "idempotency_key", "quantity", "amount"]
        );
        assert!(
            p.iter()
                .all(|p| p["type"] == "missing" && p["msg"] == "Field required")
        );

        let p = problems(
            r#"{"item_sku": 5, "quantity": "x", "amount": [], "currency": "USD", "idempotency_key": "k"}"#,
        );
        let kinds: Vec<&str> = p.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["string_type", "int_parsing", "float_type"]);

        assert_eq!(problems("[1]")[0]["type"], "model_attributes_type");
        assert_eq!(problems("")[0]["type"], "missing");
        let p = problems("{\"a\":\n  nope}");
        assert_eq!(p[0]["type"], "json_invalid");
        assert_eq!(p[0]["loc"][0], "body");
        assert!(p[0]["loc"][1].as_u64().unwrap() > 5, "{p:?}");

        let p = problems(
            r#"{"item_sku": "A", "quantity": 0, "amount": -1, "currency": "XXX1", "idempotency_key": ""}"#,
        );
        let fields: Vec<&str> = p.iter().map(|p| p["loc"][1].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["quantity", "idempotency_key", "currency"]);
        let p = problems(
            r#"{"item_sku": "A", "quantity": 1, "amount": 1.234, "currency": "USD", "idempotency_key": "k"}"#,
        );
        assert_eq!(p[0]["loc"], json!(["body", "amount"]));
        let p = problems(
            r#"{"item_sku": "A", "quantity": 1, "amount": 0, "currency": "USD", "idempotency_key": "k"}"#,
        );
        assert!(p[0]["msg"].as_str().unwrap().contains("positive"));
        let p = problems(
            r#"{"item_sku": "A\u0000", "quantity": 1, "amount": 1, "currency": "USD", "idempotency_key": "k\u0000"}"#,
        );
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
