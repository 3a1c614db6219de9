-- The catalogue. Prices are integer minor units plus an ISO 4217 currency code.
create table products (
    id bigserial primary key,
    sku text not null unique check (length(sku) between 1 and 64),
    name text not null check (length(name) between 1 and 200),
    description text not null default '',
    price_amount bigint not null check (price_amount >= 0),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
