-- Issue 11, point 4: rules money depends on.
--
-- Line totals: a line's total is what is charged for it. Seed 004's one-call order
-- states an amount that need not split evenly into unit prices (3 units for 200.00),
-- so the total is kept as given and the unit price is only that total divided by the
-- quantity, rounded to the nearest minor unit (for display).
alter table order_lines add column line_amount bigint;
update order_lines set line_amount = unit_amount * quantity;
alter table order_lines alter column line_amount set not null;
alter table order_lines add constraint order_lines_line_amount_check check (line_amount >= 0);

-- Seed 002's POST /orders states a customer_id: kept as the seed's own reference and
-- echoed in its answers, never taken as the order's owner (`customer_id`, the caller).
alter table orders add column stated_customer_id bigint;

-- Whose bounds the order counts against while it waits for payment:
-- `customer:<id>`, or `address:<client address>` for a caller without an account;
-- null for staff.
alter table orders add column limit_owner text;
update orders set limit_owner = 'customer:' || customer_id where customer_id is not null;
create index orders_unpaid_by_limit_owner on orders (limit_owner) where status = 'PENDING';

-- Idempotency keys belong to whoever sent them (see order_claims), no longer to the
-- whole system.
alter table orders drop constraint orders_idempotency_key_key;

-- Every attempt to place an order first claims its order id here, in a committed row,
-- before any side effect (stock reserved, card charged):
-- - with an idempotency key, the key is unique per key owner (`customer:<id>`, or
--   `anonymous` for every caller without an account, as seed 004 had it): a second
--   request with the key finds the claim and waits for, or replays, the first;
-- - the claims in progress count against the owner's bounds (unpaid orders, reserved
--   units) until the order is stored;
-- - a claim left by a crash expires (`expires_at`) and may be taken over: it keeps its
--   order id, and the inventory and payment service answer a repeated reservation or
--   charge for one order with the first one.
create table order_claims (
    order_id bigint primary key,
    key_owner text,
    idempotency_key text,
    -- what the request asked for: a replay must ask for the same
    fingerprint text not null,
    limit_owner text,
    units bigint not null default 0,
    state text not null check (state in ('in_progress', 'done')),
    attempts integer not null default 1,
    expires_at timestamptz not null,
    created_at timestamptz not null default now(),
    unique (key_owner, idempotency_key)
);
create index order_claims_in_progress on order_claims (limit_owner) where state = 'in_progress';

-- The keys orders were placed with so far stay theirs.
insert into order_claims (order_id, key_owner, idempotency_key, fingerprint, state, expires_at, created_at)
select id,
       case when customer_id is null then 'anonymous' else 'customer:' || customer_id end,
       idempotency_key, coalesce(request_fingerprint, ''), 'done', created_at, created_at
from orders
where idempotency_key is not null
on conflict do nothing;
