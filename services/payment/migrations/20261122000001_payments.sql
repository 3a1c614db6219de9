-- One payment per order. Amounts are integer minor units of the currency (cents for
-- USD). The checks keep the table honest even against a bug in the code: a status
-- the state machine does not know is refused, and a decline always says why.
create table payments (
    id bigserial primary key,
    order_id bigint not null unique check (order_id > 0),
    amount_minor bigint not null check (amount_minor > 0),
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    status text not null
        check (status in ('pending', 'authorized', 'declined', 'confirmed', 'refunded')),
    -- why the authorizer declined; set exactly when the status is declined
    decline_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((status = 'declined') = (decline_reason is not null))
);
