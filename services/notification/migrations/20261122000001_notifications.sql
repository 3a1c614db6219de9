-- One row per order status change the customer is told about (seed 000's message
-- service kept one text row per message).
create table notifications (
    id bigserial primary key,
    -- the message that caused it; one notification per message
    message_id uuid not null unique,
    order_id bigint not null,
    customer_id bigint,
    event text not null,
    order_status text not null,
    message text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index notifications_order on notifications (order_id, id);
create index notifications_customer on notifications (customer_id, id);
