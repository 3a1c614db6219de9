-- The order service writes down that it is charging an order before it calls the
-- payment service (`payment_attempted_at`), and when it has learned the charge's
-- outcome and acted on it (`payment_settled_at`: the order confirmed or failed, a
-- captured payment of a cancelled order refunded, or no payment found). An order
-- with a charge started and not settled is settled by the payment reconciler
-- (services/order/src/payment_reconciler.rs), which asks the payment service: a
-- crash between the charge and its record no longer loses the outcome (issue 12).
alter table orders
    add column payment_attempted_at timestamptz,
    add column payment_settled_at timestamptz;
create index orders_payment_unsettled on orders (payment_attempted_at)
    where payment_attempted_at is not null and payment_settled_at is null;
