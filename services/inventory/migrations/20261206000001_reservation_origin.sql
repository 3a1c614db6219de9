-- Where a reservation was made: 'canonical' (the canonical API: the order service,
-- administrators; and the messages) or 'seed004' (seed 004's stock API, for no
-- order). Seed 004's release may touch only the latter, as in the seed.
--
-- Reservations made before this column existed count as canonical (the safe side):
-- a seed 004 client that reserved just before cannot release through seed 004, and
-- its reservation is released by itself after RESERVATION_HOLD.
alter table reservations
    add column origin text not null default 'canonical'
        check (origin in ('canonical', 'seed004')),
    add constraint reservations_seed004_for_no_order
        check (origin <> 'seed004' or order_id is null);
