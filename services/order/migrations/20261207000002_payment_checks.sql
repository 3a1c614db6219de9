-- When the payment reconciler last asked about an unsettled charge: it asks about
-- the least recently asked first, so charges that keep answering "not yet" (a
-- payment service down for hours) do not hold back newer ones.
alter table orders add column payment_checked_at timestamptz;
