-- Claiming, renewing and releasing leases (table: sql/110_work_lease.sql).

-- The items of `items` that `me` may now work on: new ones, ones whose lease expired (their
-- worker died) and ones `me` already holds. Expired leases are taken with SKIP LOCKED, so two
-- workers taking over the same dead batch split it instead of waiting on each other; a new
-- item two workers claim at once goes to the first (the other's insert does nothing).
CREATE OR REPLACE FUNCTION streetaudit.claim_work(
    stage text, scope text, me text, ttl_s double precision, items bigint[]
) RETURNS SETOF bigint
LANGUAGE sql VOLATILE
AS $$
    WITH takeable AS (
        SELECT l.item FROM streetaudit.work_lease AS l
        WHERE l.stage = claim_work.stage AND l.scope = claim_work.scope AND l.item = ANY (items)
          AND (l.expires_at <= clock_timestamp() OR l.worker = me)
        FOR UPDATE SKIP LOCKED
    ), taken AS (
        UPDATE streetaudit.work_lease AS l
        SET worker = me, claimed_at = now(), expires_at = clock_timestamp() + make_interval(secs => ttl_s)
        FROM takeable AS t
        WHERE l.stage = claim_work.stage AND l.scope = claim_work.scope AND l.item = t.item
        RETURNING l.item
    ), fresh AS (
        INSERT INTO streetaudit.work_lease (stage, scope, item, worker, expires_at)
        SELECT claim_work.stage, claim_work.scope, c.item, me, clock_timestamp() + make_interval(secs => ttl_s)
        FROM unnest(items) AS c (item)
        WHERE NOT EXISTS (
            SELECT 1 FROM streetaudit.work_lease AS l
            WHERE l.stage = claim_work.stage AND l.scope = claim_work.scope AND l.item = c.item)
        ON CONFLICT DO NOTHING
        RETURNING item
    )
    SELECT item FROM taken UNION ALL SELECT item FROM fresh
$$;

-- Keep `me`'s leases alive (a worker calls this well within the lease time).
CREATE OR REPLACE FUNCTION streetaudit.renew_work(me text, ttl_s double precision) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$
    WITH renewed AS (
        UPDATE streetaudit.work_lease SET expires_at = clock_timestamp() + make_interval(secs => ttl_s)
        WHERE worker = me RETURNING 1
    )
    SELECT count(*) FROM renewed
$$;

-- Drop `me`'s leases on `items` (NULL: all of them), once their rows are written.
CREATE OR REPLACE FUNCTION streetaudit.release_work(me text, items bigint[] DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$
    WITH released AS (
        DELETE FROM streetaudit.work_lease WHERE worker = me AND (items IS NULL OR item = ANY (items))
        RETURNING 1
    )
    SELECT count(*) FROM released
$$;

-- Seconds until the first lease of another worker on this stage and scope expires (0: one
-- already has, so its items can be taken over now); NULL when no other worker holds any. A
-- worker that ran out of items waits this long and looks again, so it finishes only when
-- every item is done or held by nobody.
--
-- `since`: when the worker's last look for items began (the database's clock). A lease that
-- had expired by then was free for that look, which took nothing: its item is done (its
-- worker died after writing the rows, before releasing them) or another claim has it. So it
-- is deleted instead of waited for, else the survivors would wait for it for ever; a lease
-- that expired later is waited for (0 s), as its item may still be undone.
DROP FUNCTION IF EXISTS streetaudit.others_lease_wait(text, text, text);
CREATE OR REPLACE FUNCTION streetaudit.others_lease_wait(
    stage text, scope text, me text, since timestamptz DEFAULT NULL
) RETURNS double precision
LANGUAGE sql VOLATILE
AS $$
    WITH stale AS (
        DELETE FROM streetaudit.work_lease AS l
        WHERE l.stage = others_lease_wait.stage AND l.scope = others_lease_wait.scope AND l.worker <> me
          AND l.expires_at <= since
    )
    -- (greatest() ignores a NULL: without the CASE, no lease would read as 0 s)
    SELECT CASE WHEN count(*) > 0
                THEN greatest(0, extract(epoch FROM min(l.expires_at) - clock_timestamp()))::double precision END
    FROM streetaudit.work_lease AS l
    WHERE l.stage = others_lease_wait.stage AND l.scope = others_lease_wait.scope AND l.worker <> me
      AND (since IS NULL OR l.expires_at > since)
$$;
