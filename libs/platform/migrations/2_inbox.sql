-- One row per message a consumer has handled, written in the same transaction as
-- the handler's effect: a redelivered message finds its row and has no second effect.
create table if not exists inbox (
    consumer text not null,
    message_id uuid not null,
    message_type text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (consumer, message_id)
);
create index if not exists inbox_created_at on inbox (created_at);
