-- An event the broker refuses (a negative confirm) again and again is parked, so it
-- cannot hold back the events behind it: `refusals` counts the refusals, `parked_at`
-- says since when it is parked. A parked event is tried again every few minutes and
-- leaves the outbox as soon as the broker takes it (outbox.rs).
alter table outbox add column if not exists refusals integer not null default 0;
alter table outbox add column if not exists parked_at timestamptz;
