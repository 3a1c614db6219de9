-- One shipment per order: pending -> shipped -> delivered. The checks keep the
-- timestamps in step with the status even for a bug in the code: shipped_at is set
-- exactly when the shipment has left (shipped or delivered), delivered_at exactly
-- when it arrived.
create table shipments (
    id bigserial primary key,
    order_id bigint not null unique check (order_id > 0),
    -- the order's customer, from the paid-order event; null when created by hand
    customer_id bigint,
    status text not null default 'pending'
        check (status in ('pending', 'shipped', 'delivered')),
    carrier text,
    tracking_number text,
    shipped_at timestamptz,
    delivered_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((shipped_at is not null) = (status in ('shipped', 'delivered'))),
    check ((delivered_at is not null) = (status = 'delivered'))
);
create index shipments_customer on shipments (customer_id, id);
create index shipments_status on shipments (status, id);
