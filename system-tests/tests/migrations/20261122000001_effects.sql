-- What the test handler did: one row per handled message, with no uniqueness, so a
-- second effect of one message would show as a second row.
create table effects (
    message_id uuid not null,
    order_id bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
