-- Where a payment was made, and so which payments an order id names.
--
-- `canonical` (every payment made before this column): the order's own payment, made
-- by the order service's charge or by an admin. `seed`: made through a seed's route
-- (seed 002's `POST /payments`, seed 004's `POST /api/v1/payments/authorize`) by a
-- caller without an account. Such a caller names any order id it likes, so its
-- payment belongs to no one and stands apart: one payment per order id in each
-- source, so a seed call can neither take nor block (409 `payment_exists`) the
-- payment an order's charge makes, and seed callers reach only the seeds' payments.
alter table payments add column source text not null default 'canonical'
    check (source in ('canonical', 'seed'));
alter table payments add constraint payments_seed_belongs_to_no_one
    check (source = 'canonical' or customer_id is null);
alter table payments drop constraint payments_order_id_key;
create unique index payments_source_order_id on payments (source, order_id);
