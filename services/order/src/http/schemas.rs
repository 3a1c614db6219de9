//! What the order routes' request fields accept, as the OpenAPI document says it:
//! one place for the bounds the handlers and [`crate::create_order`] enforce, so that
//! a request the document calls valid is one the routes take.

use utoipa::PartialSchema;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, Object, ObjectBuilder, OneOfBuilder,
    SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Schema};

use crate::create_order::{MAX_LINES, MAX_QUANTITY};

pub use sales_contracts::api::stock::{MAX_SKU_CHARS, SKU_PATTERN, sku_schema as sku};

/// The longest idempotency key, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// An `Idempotency-Key` header: 1 to 255 visible ASCII characters (spaces inside
/// only; a header value's surrounding spaces are not part of it).
pub const KEY_HEADER_PATTERN: &str = r"^[!-~]([ -~]{0,253}[!-~])?$";

/// A product id written as a string: digits, at least 1 (at most 18 significant
/// digits, so that it fits in 64 bits).
pub const PRODUCT_ID_TEXT_PATTERN: &str = r"^0*[1-9][0-9]{0,17}$";

/// Units of one line of an order.
pub fn quantity() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .description(Some(format!("Units: 1 to {MAX_QUANTITY}")))
        .minimum(Some(1))
        .maximum(Some(MAX_QUANTITY))
        .examples([serde_json::json!(2)])
        .build()
}

/// An idempotency key in a body.
pub fn idempotency_key() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "1 to 255 characters: a retry with the same key returns the same order instead \
             of placing another",
        ))
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_CHARS))
        .examples([serde_json::json!("unique-key-001")])
        .build()
}

/// A catalogue product id as a number.
pub fn product_id() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .examples([serde_json::json!(1)])
        .build()
}

/// A catalogue product id as a number or as a string of digits (seed 000's document
/// types it as a string; seed 003 sends `"1"`).
pub fn product_id_text() -> RefOr<Schema> {
    OneOfBuilder::new()
        .description(Some(
            "A catalogue product id, at least 1: a number, or a string of digits (`\"48\"`)",
        ))
        .item(product_id())
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(PRODUCT_ID_TEXT_PATTERN))
                .examples([serde_json::json!("48")]),
        )
        .into()
}

/// Lines of an order: 1 to [`MAX_LINES`] of `line`. Lines of the same product are
/// added up.
pub fn lines(line: RefOr<Schema>) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(line)
        .min_items(Some(1))
        .max_items(Some(MAX_LINES))
        .description(Some(format!(
            "1 to {MAX_LINES} lines; lines of the same product are added up"
        )))
}

/// An object whose members are exactly these (`required` and optional ones).
pub fn closed_object(
    title: &str,
    required: &[(&str, RefOr<Schema>)],
    optional: &[(&str, RefOr<Schema>)],
) -> Object {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .title(Some(title))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for (name, schema) in required {
        object = object.property(*name, schema.clone()).required(*name);
    }
    for (name, schema) in optional {
        object = object.property(*name, schema.clone());
    }
    object.build()
}

/// The canonical order's body: `items` by product, or one `item_sku` with its
/// `quantity`; `amount` and `currency` together or neither; an optional key.
pub fn create_order_request() -> RefOr<Schema> {
    let amount: RefOr<Schema> =
        sales_contracts::money::request_schemas::positive_decimal_amount().into();
    let currency = sales_contracts::Currency::schema();
    let key: RefOr<Schema> = idempotency_key().into();
    let items: RefOr<Schema> = lines(super::ItemRequest::schema()).into();
    let sku: RefOr<Schema> = sku().into();
    let quantity: RefOr<Schema> = quantity().into();
    let by_product = [("items", items)];
    let by_sku = [("item_sku", sku), ("quantity", quantity)];
    let pay_now = [("amount", amount), ("currency", currency)];
    let optional = [("idempotency_key", key)];
    let join = |a: &[(&'static str, RefOr<Schema>)], b: &[(&'static str, RefOr<Schema>)]| {
        a.iter().chain(b).cloned().collect::<Vec<_>>()
    };
    OneOfBuilder::new()
        .description(Some(
            "An order to place: `items` by catalogue product, or one `item_sku` with its \
             `quantity`; every line at its catalogue price. With `amount` and `currency` \
             (both or neither) the order is paid at once and answered `CONFIRMED` or \
             `FAILED`; the amount must be the total at catalogue prices. \
             `idempotency_key` is the idempotency key for clients that cannot set the \
             `Idempotency-Key` header; with the header too, the header's is the key.",
        ))
        .item(closed_object("By product", &by_product, &optional))
        .item(closed_object(
            "By product, paid now",
            &join(&by_product, &pay_now),
            &optional,
        ))
        .item(closed_object("By SKU", &by_sku, &optional))
        .item(closed_object(
            "By SKU, paid now",
            &join(&by_sku, &pay_now),
            &optional,
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::order_status::OrderStatus;

    fn document() -> Value {
        let (_, openapi) = super::super::routes().split_for_parts();
        serde_json::to_value(openapi).unwrap()
    }

    #[test]
    fn the_document_bounds_what_the_routes_bound() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        // GET /api/v1/orders(/): a status is one of the six.
        for path in ["/api/v1/orders", "/api/v1/orders/"] {
            let status = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "status")
                .unwrap();
            assert_eq!(
                status["schema"]["$ref"], "#/components/schemas/OrderStatus",
                "{path}"
            );
        }
        assert_eq!(
            schemas["OrderStatus"]["enum"],
            json!(OrderStatus::ALL.map(OrderStatus::as_str))
        );
        // POST /api/v1/orders: items, or item_sku with quantity; amount with currency.
        let branches = schemas["CreateOrderRequest"]["oneOf"].as_array().unwrap();
        let required: Vec<&Value> = branches.iter().map(|b| &b["required"]).collect();
        assert_eq!(
            required,
            [
                &json!(["items"]),
                &json!(["items", "amount", "currency"]),
                &json!(["item_sku", "quantity"]),
                &json!(["item_sku", "quantity", "amount", "currency"]),
            ]
        );
        for branch in branches {
            assert_eq!(branch["additionalProperties"], false);
            let key = &branch["properties"]["idempotency_key"];
            assert_eq!(
                (&key["minLength"], &key["maxLength"]),
                (&json!(1), &json!(255))
            );
        }
        let items = &branches[0]["properties"]["items"];
        assert_eq!(
            (&items["minItems"], &items["maxItems"]),
            (&json!(1), &json!(MAX_LINES))
        );
        let line = &items["items"]["properties"];
        assert_eq!(line["product_id"]["minimum"], 1);
        assert_eq!(
            (&line["quantity"]["minimum"], &line["quantity"]["maximum"]),
            (&json!(1), &json!(MAX_QUANTITY))
        );
        assert_eq!(branches[1]["properties"]["amount"]["minimum"], 0.01);
        assert_eq!(
            branches[2]["properties"]["item_sku"]["pattern"],
            SKU_PATTERN
        );
        // Seed 000 and 002/003.
        let seed000 = &schemas["Seed000CreateOrder"]["properties"]["items"];
        assert_eq!(
            (&seed000["minItems"], &seed000["maxItems"]),
            (&json!(1), &json!(MAX_LINES))
        );
        assert_eq!(
            schemas["Seed000Item"]["properties"]["quantity"]["maximum"],
            MAX_QUANTITY
        );
        let text = &schemas["ProductIdText"]["oneOf"];
        assert_eq!(text[0]["minimum"], 1);
        assert_eq!(text[1]["pattern"], PRODUCT_ID_TEXT_PATTERN);
        let legacy = schemas["LegacyCreateOrder"]["oneOf"].as_array().unwrap();
        assert_eq!(legacy[0]["required"], json!(["product_id", "quantity"]));
        assert_eq!(legacy[1]["required"], json!(["productId", "quantity"]));
        // Seed 004: a positive amount, written as a decimal number.
        let order_in = &schemas["Seed004OrderIn"]["properties"];
        assert_eq!(order_in["amount"]["minimum"], 0.01);
        assert_eq!(order_in["amount"]["multipleOf"], 0.01);
        // GET /api/v1/orders/{id}: a 400 may be the gateway's, which has no `detail`.
        let answers = &doc["paths"]["/api/v1/orders/{id}"]["get"]["responses"];
        let body = |status: &str| &answers[status]["content"]["application/json"]["schema"];
        assert_eq!(body("400")["$ref"], "#/components/schemas/ErrorResponse");
        assert_eq!(
            body("404")["$ref"],
            "#/components/schemas/SharedErrorResponse"
        );
        // The header, wherever an order is placed.
        for path in [
            "/api/v1/orders",
            "/orders",
            "/orders/order",
            "/orders/orderkafka",
        ] {
            let header = &doc["paths"][path]["post"]["parameters"][0];
            assert_eq!(header["name"], "Idempotency-Key", "{path}");
            assert_eq!(header["schema"]["pattern"], KEY_HEADER_PATTERN);
            assert_eq!(header["schema"]["maxLength"], 255);
        }
    }
}
