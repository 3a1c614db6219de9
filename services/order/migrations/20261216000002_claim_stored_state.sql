-- A claim whose order is stored but whose request is still working (charging a
-- one-call order) is `stored`: set in the transaction that stores the order, so a
-- claim is either given up (its stock given back) or its order stored, never both.
alter table order_claims drop constraint order_claims_state_check;
alter table order_claims add constraint order_claims_state_check
    check (state in ('in_progress', 'stored', 'done'));

drop index order_claims_expiring;
create index order_claims_expiring on order_claims (expires_at)
    where state in ('in_progress', 'stored');
