-- When the order's `paid-order` arrived: a shipment ships only for a paid order (issue
-- 12: seed 002's routes shipped unpaid orders, whose shipped events the order service
-- then refused). Shipments already there are taken as paid.
alter table shipments add column if not exists order_paid_at timestamptz;
update shipments set order_paid_at = created_at where order_paid_at is null;
