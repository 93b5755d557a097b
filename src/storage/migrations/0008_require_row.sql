-- A statement that must change a row can say so: swiftlet_require(n, what)
-- raises no_data_found (P0002) when n is 0, which aborts the batch's
-- transaction, so the statements after it (the counters of an article
-- delete) never apply to a change that did not happen. (The parameter is
-- not called "found": PL/pgSQL has a variable of that name.)
CREATE FUNCTION swiftlet_require(changed bigint, what text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF changed = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = what || ' is gone';
    END IF;
    RETURN changed;
END
$$;
