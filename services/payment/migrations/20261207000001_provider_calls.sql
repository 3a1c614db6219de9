-- A call to the payment provider is written down before it is made (issue 12).
--
-- `provider_call` is the call in flight for this payment ('authorize', 'charge',
-- 'capture' or 'refund') with its idempotency key; it is cleared in the transaction
-- that records the provider's answer. A payment found with a call still written here
-- lost its answer (the service crashed, the provider did not answer): the
-- reconciler makes the same call again with the same key, and the provider answers
-- what it did the first time, so nothing is taken or given back twice
-- (services/payment/src/provider_calls.rs).
alter table payments
    add column provider_call text
        check (provider_call in ('authorize', 'charge', 'capture', 'refund')),
    add column provider_call_key text,
    add column provider_call_attempts integer not null default 0
        check (provider_call_attempts >= 0),
    add column provider_call_at timestamptz,
    -- the provider's reference for the payment's last approved call
    add column provider_reference text,
    add constraint payments_provider_call_has_key
        check ((provider_call is null) = (provider_call_key is null)
               and (provider_call is null) = (provider_call_at is null));
create index payments_provider_calls_in_flight on payments (provider_call_at)
    where provider_call is not null;

-- The simulated provider's own books (services/payment/src/simulated_provider.rs):
-- one row per idempotency key, written in its own statement, never in a payment's
-- transaction, as a real provider keeps its books apart. The same key answers the
-- same outcome again.
create table simulated_provider_operations (
    idempotency_key text primary key,
    operation text not null check (operation in ('authorize', 'charge', 'capture', 'refund')),
    amount_minor bigint not null check (amount_minor > 0),
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    approved boolean not null,
    decline_reason text,
    reference text not null,
    created_at timestamptz not null default now(),
    check (approved = (decline_reason is null))
);
