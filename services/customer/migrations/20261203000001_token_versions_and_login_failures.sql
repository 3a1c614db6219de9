-- Revocation: every access token carries the customer's token version (`ver`); logging
-- out, changing the password or losing the admin role raises it, and older tokens stop
-- working.
alter table customers add column token_version bigint not null default 1 check (token_version >= 1);

-- Login and registration throttling: failures per account (`account:<email>`) and per
-- client address (`address:<ip>`, `register:<ip>`), counted in a window that starts at
-- the first failure.
create table login_failures (
    subject text primary key check (length(subject) <= 300),
    failures integer not null check (failures >= 0),
    window_started_at timestamptz not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
