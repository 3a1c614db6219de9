-- When the change a notification tells of happened (its event's time), so that an
-- order's notifications list in that order, not in the order their messages arrived
-- (each kind of event has its own queue or topic). Rows from before take the time
-- they were recorded, and so do rows written without it.
alter table notifications add column occurred_at timestamptz;
update notifications set occurred_at = created_at;
alter table notifications alter column occurred_at set not null;
alter table notifications alter column occurred_at set default now();
drop index notifications_order;
drop index notifications_customer;
create index notifications_order on notifications (order_id, occurred_at, id);
create index notifications_customer on notifications (customer_id, occurred_at, id);
create index notifications_occurred on notifications (occurred_at, id);
