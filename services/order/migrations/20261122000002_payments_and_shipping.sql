-- Orders are paid through the payment service and shipped by the shipping service;
-- a line may name a SKU the catalogue does not know (seed 004's one-call orders).
alter table order_lines alter column product_id drop not null;
alter table orders add column payment_id bigint;
alter table orders add column failure_reason text;
alter table orders add column shipped_at timestamptz;
alter table orders add column delivered_at timestamptz;
