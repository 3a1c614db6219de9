-- Events committed together with the change that caused them; the outbox relay
-- publishes them to RabbitMQ and deletes each once the broker has confirmed it.
create table if not exists outbox (
    id bigserial primary key,
    message_id uuid not null unique,
    message_type text not null,
    -- the whole envelope, as published
    envelope jsonb not null,
    -- W3C trace context of the transaction that wrote the event
    trace_headers jsonb not null default '{}',
    attempts integer not null default 0,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
