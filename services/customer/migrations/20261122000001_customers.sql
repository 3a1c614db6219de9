-- Customers: accounts that log in (email + argon2id password hash) and, from seed 002's
-- `POST /customers`, profiles without login credentials (email and hash both null).
create table customers (
    id bigserial primary key,
    email text,
    -- a PHC string, `$argon2id$v=19$...`; never the password itself
    password_hash text,
    name text not null check (length(name) between 1 and 200),
    address text check (length(address) <= 500),
    contact text check (length(contact) <= 200),
    role text not null default 'customer' check (role in ('customer', 'admin')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- an account has both, a bare profile neither
    constraint customers_credentials_together check ((email is null) = (password_hash is null)),
    -- only an account can be an admin
    constraint customers_admin_has_credentials check (role = 'customer' or email is not null)
);

-- One account per email, whatever its case.
create unique index customers_email_key on customers (lower(email));
