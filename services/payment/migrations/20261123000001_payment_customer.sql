-- The customer whose order a payment pays, when the order service says so (seed
-- 002's and 004's routes make payments without one). Customers read only their own
-- payments; one without a customer is for admins and internal callers.
alter table payments add column customer_id bigint check (customer_id > 0);
create index payments_customer_id on payments (customer_id) where customer_id is not null;
