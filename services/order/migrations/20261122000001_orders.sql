-- Orders and their lines. Ids come from the sequence before stock is reserved,
-- so the reservation can name its order.
create table orders (
    id bigserial primary key,
    customer_id bigint,
    status text not null check (status in ('PENDING', 'CONFIRMED', 'FAILED', 'CANCELLED', 'SHIPPED', 'DELIVERED')),
    payment_status text not null check (payment_status in ('PENDING', 'SUCCEEDED', 'FAILED', 'REFUNDED')),
    total_amount bigint not null check (total_amount >= 0),
    currency char(3) not null,
    -- a client's key for safe retries; the same key returns the same order
    idempotency_key text unique,
    -- what the first request with that key asked for, to refuse a different one
    request_fingerprint text,
    reservation_id bigint,
    -- unpaid orders are cancelled at this time
    pay_by timestamptz not null,
    cancel_reason text,
    paid_at timestamptz,
    cancelled_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index orders_unpaid_due on orders (pay_by) where status = 'PENDING';
create index orders_customer on orders (customer_id, id);

create table order_lines (
    order_id bigint not null references orders (id),
    line_no integer not null,
    product_id bigint not null,
    sku text not null,
    name text not null,
    quantity integer not null check (quantity > 0),
    unit_amount bigint not null check (unit_amount >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (order_id, line_no)
);
create index order_lines_product on order_lines (product_id, order_id);
