-- Stock per item. The checks make overselling impossible even for a bug in the
-- code: reserved never exceeds on_hand, and neither goes below zero.
create table stock_items (
    sku text primary key,
    product_id bigint unique,
    on_hand integer not null check (on_hand >= 0),
    reserved integer not null default 0 check (reserved >= 0 and reserved <= on_hand),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- A reservation holds stock for one order (or, through seed 004's stock API, for
-- nobody in particular). pending -> held -> committed, or -> released.
create table reservations (
    id bigserial primary key,
    order_id bigint unique,
    status text not null check (status in ('pending', 'held', 'committed', 'released')),
    -- a pending reservation is released by itself at this time
    expires_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index reservations_pending_expiry on reservations (expires_at) where status = 'pending';

create table reservation_lines (
    reservation_id bigint not null references reservations (id),
    sku text not null references stock_items (sku),
    quantity integer not null check (quantity > 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (reservation_id, sku)
);
