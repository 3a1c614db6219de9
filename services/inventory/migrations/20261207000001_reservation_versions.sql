-- Each change of a reservation's status counts up its version, and a released
-- reservation says who released it:
--
-- - 'order': the order's own messages or calls (declined, cancelled, restored);
-- - 'expiry': no order claimed it in time (the order may yet be paid at its last
--   moment: a paid-order that comes later sells the units again from free stock);
-- - 'caller': a caller's release through the API (seed 004's clients, admins).
--
-- An order's messages move its reservation only forward (pending -> held ->
-- committed -> released), so they give the same result in any order, twice, or
-- replayed from a dead-letter queue (services/inventory/src/order_reservations.rs).
alter table reservations
    add column version integer not null default 1 check (version >= 1),
    add column released_by text check (released_by in ('order', 'expiry', 'caller'));
update reservations set released_by = 'order' where status = 'released';
alter table reservations
    add constraint reservations_released_by_whom
        check ((status = 'released') = (released_by is not null));
