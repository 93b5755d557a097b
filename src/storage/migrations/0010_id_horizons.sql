-- How far each node id may have made IDs: every ID made under node id `node`
-- was made at a Unix time (ms) before `until_ms`. A node records a horizon a
-- few seconds ahead of its clock before it issues up to it, and a process
-- that starts using the node id (a restart, a lease that moved) waits until
-- its clock is past the horizon, so a clock stepped back between the two
-- cannot make it repeat an ID.
CREATE TABLE id_horizons (
    node integer PRIMARY KEY,
    until_ms bigint NOT NULL
);
