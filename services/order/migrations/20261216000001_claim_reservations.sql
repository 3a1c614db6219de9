-- What a claim asked the inventory to hold, written just before it asks. A claim
-- whose order is never stored (the request refused after the inventory may have
-- reserved, the order service killed, the request outliving its claim) is given up
-- with a `restore-canceled-item` for these lines, so its stock comes back.
alter table order_claims add column reserve_lines jsonb;

-- The expired claims the order service settles (`expired_claims.rs`).
create index order_claims_expiring on order_claims (expires_at) where state = 'in_progress';
