-- The raters' functions: token checks, pair selection, choices and undo (tables: sql/060_ratings.sql).

-- The rater holding `token` (sha256 of it is stored); unknown and revoked tokens raise
-- SQLSTATE SAU01 and SAU03, which the API answers with 401 and 403.
CREATE OR REPLACE FUNCTION streetaudit.rater_for(token text) RETURNS streetaudit.rater
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    who streetaudit.rater;
BEGIN
    SELECT * INTO who FROM streetaudit.rater
    WHERE token_hash = encode(sha256(convert_to(coalesce(token, ''), 'UTF8')), 'hex');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown rater token' USING ERRCODE = 'SAU01';
    END IF;
    IF NOT who.active THEN
        RAISE EXCEPTION 'this rater''s token was revoked' USING ERRCODE = 'SAU03';
    END IF;
    RETURN who;
END
$$;

-- PL/pgSQL rather than SQL for this and rater_partners: called from PL/pgSQL they are not
-- inlined, and an SQL function is planned anew on every call (a third of a choice's time
-- in bench/ratings.py); PL/pgSQL keeps its plans.
CREATE OR REPLACE FUNCTION streetaudit.rater_progress(rater bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'done', r.decided, 'skipped', r.skipped,
            'target', (SELECT target FROM streetaudit.rating_campaign))
        FROM streetaudit.rater AS r
        WHERE r.id = rater);
END
$$;

-- Images currently offered for rating. The pool holds only 'ok' images when it is set; one
-- excluded by cleaning later is dropped from it by next_pair when drawn (checking every
-- candidate's status would join the whole image table on every pair).
CREATE OR REPLACE VIEW streetaudit.rating_pool AS
    SELECT ri.image_id, ri.elo, ri.n FROM streetaudit.rating_image AS ri WHERE ri.in_pool;

-- The images `rater` has judged (or holds on offer) together with `image`.
CREATE OR REPLACE FUNCTION streetaudit.rater_partners(rater bigint, image bigint) RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(other), '{}') FROM (
        SELECT CASE WHEN c.left_image = image THEN c.right_image ELSE c.left_image END AS other
        FROM streetaudit.comparison AS c
        WHERE c.rater_id = rater AND c.undone_at IS NULL AND (c.left_image = image OR c.right_image = image)
        UNION ALL
        SELECT CASE WHEN o.low_image = image THEN o.high_image ELSE o.low_image END
        FROM streetaudit.rating_offer AS o
        WHERE o.rater_id = rater AND (o.low_image = image OR o.high_image = image)
    ) AS seen);
END
$$;

-- Whether `rater` has judged the pair low < high or holds it on offer (two index probes).
CREATE OR REPLACE FUNCTION streetaudit.rater_has_seen(rater bigint, low bigint, high bigint) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    RETURN EXISTS (
            SELECT 1 FROM streetaudit.comparison AS c
            WHERE c.rater_id = rater AND c.undone_at IS NULL
              AND least(c.left_image, c.right_image) = low AND greatest(c.left_image, c.right_image) = high)
        OR EXISTS (
            SELECT 1 FROM streetaudit.rating_offer AS o
            WHERE o.rater_id = rater AND o.low_image = low AND o.high_image = high);
END
$$;

-- A pair another rater decided that `rater` has not seen: repeated pairs measure agreement.
-- A few probes at random ids, each the first decided comparison at or after it (one index
-- scan), so the cost does not grow with the record.
CREATE OR REPLACE FUNCTION streetaudit.pick_repeated_pair(rater bigint, OUT a bigint, OUT b bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    top bigint := (SELECT max(id) FROM streetaudit.comparison);
    probe bigint;
BEGIN
    FOR attempt IN 1..4 LOOP
        EXIT WHEN top IS NULL;
        probe := floor(random() * top);
        SELECT least(c.left_image, c.right_image), greatest(c.left_image, c.right_image) INTO a, b
        FROM streetaudit.comparison AS c
        WHERE c.id >= probe AND c.rater_id <> rater AND c.undone_at IS NULL AND c.choice <> 'skip'
        ORDER BY c.id
        LIMIT 1;
        IF a IS NOT NULL
           AND (SELECT count(*) FROM streetaudit.rating_image AS ri WHERE ri.image_id IN (a, b) AND ri.in_pool) = 2
           AND NOT streetaudit.rater_has_seen(rater, a, b) THEN
            RETURN;
        END IF;
    END LOOP;
    a := NULL;
    b := NULL;
END
$$;

-- Random pairs (the method): a uniformly drawn image and a uniformly drawn partner the rater
-- has not judged it against. When random draws keep failing (a rater near the end of the
-- pool) every unseen pair is searched.
CREATE OR REPLACE FUNCTION streetaudit.pick_random_pair(rater bigint, OUT a bigint, OUT b bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    partners bigint[];
BEGIN
    FOR attempt IN 1..8 LOOP
        SELECT image_id INTO a FROM streetaudit.rating_pool ORDER BY random() LIMIT 1;
        EXIT WHEN a IS NULL;
        partners := streetaudit.rater_partners(rater, a);  -- once, not once per candidate row
        SELECT p.image_id INTO b FROM streetaudit.rating_pool AS p
        WHERE p.image_id <> a AND p.image_id <> ALL (partners)
        ORDER BY random() LIMIT 1;
        IF b IS NOT NULL THEN
            RETURN;
        END IF;
    END LOOP;
    SELECT x.image_id, y.image_id INTO a, b
    FROM streetaudit.rating_pool AS x JOIN streetaudit.rating_pool AS y ON x.image_id < y.image_id
    WHERE y.image_id <> ALL (streetaudit.rater_partners(rater, x.image_id))
    ORDER BY random() LIMIT 1;
END
$$;

-- Adaptive pairs by search, for a rater who finds nothing to take in the pair queue (see
-- pick_queued_pair): the first image among those with the fewest comparisons, the second
-- an unseen image with few comparisons that is close to it in online ELO: each 30 ELO
-- points of distance count as one comparison more. Close pairs are the informative ones
-- (a choice between a palace and a car park tells little); the jitter of random() spreads
-- concurrent raters over different images. The weight was chosen by the simulation in
-- bench/ratings.py (30 beat 12 and 60 at Bradley-Terry spreads of 1 and 2.5 logits).
-- Candidates are the 40 unseen images just above and the 40 just below in ELO (two index
-- scans), so the cost does not grow with the pool.
CREATE OR REPLACE FUNCTION streetaudit.pick_adaptive_pair(rater bigint, OUT a bigint, OUT b bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    a_elo double precision;
    fewest integer;
    tried bigint[] := '{}';
    partners bigint[];
BEGIN
    SELECT min(n) INTO fewest FROM streetaudit.rating_image WHERE in_pool;
    FOR attempt IN 1..8 LOOP
        SELECT image_id, elo INTO a, a_elo FROM streetaudit.rating_image
        WHERE in_pool AND n <= fewest + 1 AND image_id <> ALL (tried)
        ORDER BY n + random() LIMIT 1;
        EXIT WHEN a IS NULL;
        partners := streetaudit.rater_partners(rater, a) || a;  -- once, not once per candidate
        SELECT c.image_id INTO b FROM (
            (SELECT image_id, elo, n FROM streetaudit.rating_image
             WHERE in_pool AND elo >= a_elo AND image_id <> ALL (partners) ORDER BY elo LIMIT 40)
            UNION ALL
            (SELECT image_id, elo, n FROM streetaudit.rating_image
             WHERE in_pool AND elo < a_elo AND image_id <> ALL (partners) ORDER BY elo DESC LIMIT 40)
        ) AS c
        ORDER BY c.n + random() + abs(c.elo - a_elo) / 30 LIMIT 1;
        IF b IS NOT NULL THEN
            RETURN;
        END IF;
        tried := tried || a;
    END LOOP;
    SELECT r.a, r.b INTO a, b FROM streetaudit.pick_random_pair(rater) AS r;
END
$$;

COMMENT ON TABLE streetaudit.pair_queue IS
    'Adaptive pairs planned a round at a time by plan_pair_round (every pool image once, neighbours in jittered online-ELO rank, new opponents preferred, fewest comparisons first), taken in id order when raters ask for their next pair; derived, emptied whenever the pool or the campaign is set.';

-- Whether images `low` < `high` were compared before, by any rater (a decided choice not
-- undone; one probe of comparison_pair_idx).
CREATE OR REPLACE FUNCTION streetaudit.pair_compared(low bigint, high bigint) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM streetaudit.comparison AS c
        WHERE least(c.left_image, c.right_image) = low AND greatest(c.left_image, c.right_image) = high
          AND c.undone_at IS NULL AND c.choice <> 'skip');
END
$$;

-- One round of adaptive pairs (sql/061_pair_queue.sql), Swiss-style: the pool in order of
-- its rank in online ELO, as a share of the pool, plus a uniform jitter of ±4 % of the pool;
-- in that order each image not yet paired takes the nearest unpaired image after it that
-- it has not been compared with (looking at most 8 ahead, else the nearest). So every
-- image is in one pair (but the last of an odd pool), each pair is close in rating, and the
-- rounds join new neighbours instead of replaying old contests. Queued with the pairs of
-- least compared images first.
-- Why rank and not ELO points: the online ELO (K 32) spreads out slowly, so a jitter in
-- points pairs almost at random early and almost only next neighbours later; ranks do not
-- depend on that scale. Why new partners: a repeated pair adds information on one
-- difference only, a new one ties two more images together, and Bradley-Terry ranks a
-- well-connected graph better. In the simulation (bench/ratings.py, 60 and 200 images) this
-- beat the ±85-point ELO jitter by 0.015-0.035 Kendall tau from 3 comparisons per image on,
-- ±3 to ±5 % being about equally good; rounds planned on a Bradley-Terry fit, Thompson-style
-- draws and pairing second neighbours did no better. Returns the number of pairs queued.
CREATE OR REPLACE FUNCTION streetaudit.plan_pair_round() RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    next_round integer := coalesce((SELECT max(round) FROM streetaudit.pair_queue), 0) + 1;
    ids bigint[];
    counts integer[];
    paired boolean[];
    pooled integer;
    partner integer;
    nearest integer;
    looked integer;
    lows bigint[] := '{}';
    highs bigint[] := '{}';
    sums integer[] := '{}';
BEGIN
    SELECT array_agg(s.image_id ORDER BY s.key), array_agg(s.n ORDER BY s.key) INTO ids, counts
    FROM (SELECT r.image_id, r.n, r.place::double precision / count(*) OVER () + (random() - 0.5) * 0.08 AS key
          FROM (SELECT image_id, n, row_number() OVER (ORDER BY elo, random()) AS place
                FROM streetaudit.rating_image WHERE in_pool) AS r) AS s;
    pooled := coalesce(array_length(ids, 1), 0);
    paired := array_fill(false, ARRAY[pooled]);
    FOR i IN 1..pooled - 1 LOOP
        CONTINUE WHEN paired[i];
        partner := NULL;
        nearest := NULL;
        looked := 0;
        FOR j IN i + 1..pooled LOOP
            CONTINUE WHEN paired[j];
            nearest := coalesce(nearest, j);
            IF NOT streetaudit.pair_compared(least(ids[i], ids[j]), greatest(ids[i], ids[j])) THEN
                partner := j;
                EXIT;
            END IF;
            looked := looked + 1;
            EXIT WHEN looked >= 8;
        END LOOP;
        partner := coalesce(partner, nearest);
        EXIT WHEN partner IS NULL;  -- the last image of an odd pool
        paired[i] := true;
        paired[partner] := true;
        lows := lows || least(ids[i], ids[partner]);
        highs := highs || greatest(ids[i], ids[partner]);
        sums := sums || (counts[i] + counts[partner]);
    END LOOP;
    INSERT INTO streetaudit.pair_queue (round, low_image, high_image)
    SELECT next_round, p.low, p.high FROM unnest(lows, highs, sums) AS p (low, high, nn)
    ORDER BY p.nn, random();
    RETURN cardinality(lows);
END
$$;

-- The first queued pair `rater` has not judged and does not hold on offer, taken off the
-- queue (rater_has_seen, a function, so that each queued pair costs two index probes: as
-- NOT EXISTS subqueries the planner read all the rater's comparisons on every call, 0.4 ms
-- after 1300 of them and growing with the record); SKIP LOCKED lets concurrent raters
-- take different pairs without waiting. The next round is planned when the queue runs low
-- (fewer than 64 pairs or 1/8 of the pool, whichever is less) and when it is empty, by one
-- rater at a time (the others, and a rater who has judged what is queued, get nulls and the
-- caller searches with pick_adaptive_pair). The lead is what 30 raters on two cores take
-- while a round of 500 images is planned (about 50 ms then): with a lead of 16 one choice
-- in eleven fell back to the search, which costs ten times a queued pair.
CREATE OR REPLACE FUNCTION streetaudit.pick_queued_pair(rater bigint, OUT a bigint, OUT b bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    taken_id bigint;
    taken_round integer;
    last_id bigint;
    last_round integer;
    pooled bigint;
BEGIN
    FOR attempt IN 1..2 LOOP
        DELETE FROM streetaudit.pair_queue AS taken
        WHERE taken.id = (
            SELECT q.id FROM streetaudit.pair_queue AS q
            WHERE NOT streetaudit.rater_has_seen(rater, q.low_image, q.high_image)
            ORDER BY q.id
            LIMIT 1
            FOR UPDATE OF q SKIP LOCKED)
        RETURNING taken.id, taken.round, taken.low_image, taken.high_image INTO taken_id, taken_round, a, b;
        IF a IS NOT NULL THEN
            -- Near the end of the last queued round: plan the next one now, so that raters
            -- do not find the queue empty (and search) while it is planned. Once planned, the
            -- last round is a later one and the counts below are not run again. (When the
            -- pair taken was the last, last_id is null and the next caller plans, on an ELO
            -- that has this pair's choice.)
            SELECT q.id, q.round INTO last_id, last_round FROM streetaudit.pair_queue AS q ORDER BY q.id DESC LIMIT 1;
            IF taken_round >= last_round AND taken_id + 64 > last_id THEN
                pooled := (SELECT count(*) FROM streetaudit.rating_image WHERE in_pool);
                IF (SELECT count(*) FROM streetaudit.pair_queue) < least(64, pooled / 8)
                   AND pg_try_advisory_xact_lock(6100061) THEN
                    PERFORM streetaudit.plan_pair_round();
                END IF;
            END IF;
            RETURN;
        END IF;
        -- Two rounds queued and none of them for this rater: another round would repeat them.
        EXIT WHEN attempt > 1
            OR (SELECT count(*) FROM streetaudit.pair_queue)
               >= (SELECT count(*) FROM streetaudit.rating_image WHERE in_pool)
            OR NOT pg_try_advisory_xact_lock(6100061);
        PERFORM streetaudit.plan_pair_round();
    END LOOP;
    a := NULL;
    b := NULL;
END
$$;

CREATE OR REPLACE FUNCTION streetaudit.rating_campaign_json() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT jsonb_build_object(
        'strategy', c.strategy, 'area', c.area, 'target', c.target, 'k', c.k,
        'repeat_share', c.repeat_share, 'question', c.question,
        'pool', (SELECT count(*) FROM streetaudit.rating_pool))
    FROM streetaudit.rating_campaign AS c
$$;

-- The rater's name, progress and the campaign (strategy, pool, target, question).
CREATE OR REPLACE FUNCTION rating_api.session(token text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
BEGIN
    RETURN jsonb_build_object(
        'rater', r.name, 'progress', streetaudit.rater_progress(r.id),
        'campaign', streetaudit.rating_campaign_json());
END
$$;
COMMENT ON FUNCTION rating_api.session(text) IS 'The rater''s name, progress (done/skipped/target) and the campaign settings.';

-- The next pair for the rater, by the campaign's strategy (a share repeated from another
-- rater; adaptive: the queued round, else a search), sides drawn at random; recorded as offered. left/right are null when the rater
-- has judged every pair of the pool.
CREATE OR REPLACE FUNCTION rating_api.next_pair(token text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
    c streetaudit.rating_campaign;
    a bigint;
    b bigint;
    swap bigint;
    progress jsonb;
BEGIN
    SELECT * INTO c FROM streetaudit.rating_campaign;
    -- What rater_progress returns, without reading the rows again.
    progress := jsonb_build_object('done', r.decided, 'skipped', r.skipped, 'target', c.target);
    DELETE FROM streetaudit.rating_offer
    WHERE rater_id = r.id AND shown_at < clock_timestamp() - interval '1 hour';
    FOR attempt IN 1..5 LOOP
        a := NULL;
        IF c.repeat_share > 0 AND random() < c.repeat_share THEN
            SELECT p.a, p.b INTO a, b FROM streetaudit.pick_repeated_pair(r.id) AS p;
        END IF;
        IF a IS NULL THEN
            IF c.strategy = 'random' THEN
                SELECT p.a, p.b INTO a, b FROM streetaudit.pick_random_pair(r.id) AS p;
            ELSE
                SELECT p.a, p.b INTO a, b FROM streetaudit.pick_queued_pair(r.id) AS p;
                IF a IS NULL THEN
                    SELECT p.a, p.b INTO a, b FROM streetaudit.pick_adaptive_pair(r.id) AS p;
                END IF;
            END IF;
        END IF;
        EXIT WHEN a IS NULL;
        -- Excluded by cleaning since the pool was set: leave the pool, draw again.
        UPDATE streetaudit.rating_image AS ri SET in_pool = false
        FROM streetaudit.image AS i
        WHERE i.id = ri.image_id AND ri.image_id IN (a, b) AND i.status <> 'ok';
        EXIT WHEN NOT FOUND;
        DELETE FROM streetaudit.pair_queue AS q
        WHERE q.low_image IN (SELECT image_id FROM streetaudit.rating_image WHERE image_id IN (a, b) AND NOT in_pool)
           OR q.high_image IN (SELECT image_id FROM streetaudit.rating_image WHERE image_id IN (a, b) AND NOT in_pool);
        a := NULL;
    END LOOP;
    IF a IS NULL THEN
        RETURN jsonb_build_object('left', NULL, 'right', NULL, 'progress', progress);
    END IF;
    IF random() < 0.5 THEN
        swap := a;
        a := b;
        b := swap;
    END IF;
    INSERT INTO streetaudit.rating_offer (rater_id, low_image, high_image, left_image, right_image)
    VALUES (r.id, least(a, b), greatest(a, b), a, b)
    ON CONFLICT (rater_id, low_image, high_image) DO UPDATE
        SET left_image = EXCLUDED.left_image, right_image = EXCLUDED.right_image, shown_at = EXCLUDED.shown_at;
    RETURN jsonb_build_object('left', a, 'right', b, 'progress', progress);
END
$$;
COMMENT ON FUNCTION rating_api.next_pair(text) IS
    'Next pair for the rater holding token: {left, right, progress}; never a pair this rater judged or holds on offer.';

-- One choice, one transaction: the rater's row, then the two images in id order, are
-- locked (a consistent order, so concurrent choices cannot deadlock and none is lost);
-- the comparison's id is drawn after the locks, so id order is the ELO's order.
CREATE OR REPLACE FUNCTION rating_api.submit_choice(
    token text, left_image bigint, right_image bigint, choice text, client jsonb DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
    offer streetaudit.rating_offer;
    elos double precision[];
    k double precision;
    target integer;
    delta double precision;
    new_id bigint;
    done integer;
    skips integer;
BEGIN
    IF choice IS NULL OR choice NOT IN ('left', 'right', 'skip') THEN
        RAISE EXCEPTION 'choice must be left, right or skip' USING ERRCODE = 'SAU22';
    END IF;
    SELECT c.k, c.target INTO k, target FROM streetaudit.rating_campaign AS c;
    -- Locks the rater's row first (an error below rolls the count back with everything else).
    UPDATE streetaudit.rater
    SET decided = decided + (choice <> 'skip')::integer, skipped = skipped + (choice = 'skip')::integer
    WHERE id = r.id
    RETURNING decided, skipped INTO done, skips;
    DELETE FROM streetaudit.rating_offer AS o
    WHERE o.rater_id = r.id AND o.low_image = least(submit_choice.left_image, submit_choice.right_image)
      AND o.high_image = greatest(submit_choice.left_image, submit_choice.right_image)
    RETURNING * INTO offer;
    IF offer.rater_id IS NULL OR offer.left_image <> submit_choice.left_image THEN
        RAISE EXCEPTION 'pair % / % was not offered to this rater (or was already answered)',
            submit_choice.left_image, submit_choice.right_image USING ERRCODE = 'SAU09';
    END IF;
    -- Both images locked in id order, their ELO read in the same statement: [left, right].
    SELECT array_agg(l.elo ORDER BY l.image_id = offer.right_image) INTO elos FROM (
        SELECT ri.image_id, ri.elo FROM streetaudit.rating_image AS ri
        WHERE ri.image_id IN (offer.left_image, offer.right_image) ORDER BY ri.image_id FOR UPDATE
    ) AS l;
    IF choice <> 'skip' THEN
        delta := k * ((CASE WHEN choice = 'left' THEN 1.0 ELSE 0.0 END)
                       - 1.0 / (1.0 + power(10.0::double precision, (elos[2] - elos[1]) / 400.0)));
        UPDATE streetaudit.rating_image AS ri
        SET elo = ri.elo + CASE WHEN ri.image_id = offer.left_image THEN delta ELSE -delta END, n = ri.n + 1
        WHERE ri.image_id IN (offer.left_image, offer.right_image);
    END IF;
    INSERT INTO streetaudit.comparison (rater_id, left_image, right_image, choice, shown_at, client, elo_delta)
    VALUES (r.id, offer.left_image, offer.right_image, choice, offer.shown_at, client, delta)
    RETURNING id INTO new_id;
    RETURN jsonb_build_object(
        'comparison', new_id,
        'progress', jsonb_build_object(
            'done', done, 'skipped', skips, 'target', target));
END
$$;
COMMENT ON FUNCTION rating_api.submit_choice(text, bigint, bigint, text, jsonb) IS
    'Record the rater''s choice (left, right or skip) for an offered pair and update the online ELO; returns {comparison, progress}.';

-- Undo the rater's latest choice: mark it undone, take back its ELO change, and offer the
-- pair again (same sides) so it can be answered anew. Returns that pair, or nulls.
CREATE OR REPLACE FUNCTION rating_api.undo_last(token text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
    last streetaudit.comparison;
BEGIN
    PERFORM 1 FROM streetaudit.rater WHERE id = r.id FOR UPDATE;
    SELECT * INTO last FROM streetaudit.comparison
    WHERE rater_id = r.id AND undone_at IS NULL ORDER BY id DESC LIMIT 1;
    IF last.id IS NULL THEN
        RETURN jsonb_build_object('left', NULL, 'right', NULL, 'progress', streetaudit.rater_progress(r.id));
    END IF;
    PERFORM 1 FROM streetaudit.rating_image AS ri
    WHERE ri.image_id IN (last.left_image, last.right_image) ORDER BY ri.image_id FOR UPDATE;
    IF last.elo_delta IS NOT NULL THEN
        UPDATE streetaudit.rating_image SET elo = elo - last.elo_delta, n = n - 1 WHERE image_id = last.left_image;
        UPDATE streetaudit.rating_image SET elo = elo + last.elo_delta, n = n - 1 WHERE image_id = last.right_image;
    END IF;
    UPDATE streetaudit.comparison SET undone_at = clock_timestamp() WHERE id = last.id;
    UPDATE streetaudit.rater
    SET decided = decided - (last.choice <> 'skip')::integer, skipped = skipped - (last.choice = 'skip')::integer
    WHERE id = r.id;
    INSERT INTO streetaudit.rating_offer (rater_id, low_image, high_image, left_image, right_image)
    VALUES (r.id, least(last.left_image, last.right_image), greatest(last.left_image, last.right_image),
            last.left_image, last.right_image)
    ON CONFLICT (rater_id, low_image, high_image) DO UPDATE
        SET left_image = EXCLUDED.left_image, right_image = EXCLUDED.right_image, shown_at = EXCLUDED.shown_at;
    RETURN jsonb_build_object('left', last.left_image, 'right', last.right_image, 'undone', last.id,
                              'progress', streetaudit.rater_progress(r.id));
END
$$;
COMMENT ON FUNCTION rating_api.undo_last(text) IS
    'Undo the rater''s latest choice and offer its pair again; returns {left, right, undone, progress} (nulls when nothing to undo).';

-- Where an image of the campaign is stored, for a valid token only (the API streams it).
CREATE OR REPLACE FUNCTION rating_api.image_uri(token text, image bigint) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
    stored text;
BEGIN
    SELECT i.uri INTO stored FROM streetaudit.image AS i
    JOIN streetaudit.rating_image AS ri ON ri.image_id = i.id
    WHERE i.id = image AND i.status = 'ok';
    RETURN stored;
END
$$;
COMMENT ON FUNCTION rating_api.image_uri(text, bigint) IS
    'Storage URI of a campaign image, for a valid token; NULL when the image is not in the campaign.';

-- The campaign's pool: ok images at sample points inside the named heritage area, or
-- inside any core area when `area` is NULL. Images leaving the pool keep their record.
CREATE OR REPLACE FUNCTION streetaudit.fill_rating_pool(area text) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
AS $$
DECLARE
    pooled integer;
BEGIN
    -- Queued pairs were planned for the old pool and settings.
    DELETE FROM streetaudit.pair_queue;
    CREATE TEMP TABLE wanted ON COMMIT DROP AS
        SELECT i.id AS image_id
        FROM streetaudit.image AS i
        JOIN streetaudit.sample_point AS p ON p.id = i.point_id
        WHERE i.status = 'ok' AND EXISTS (
            SELECT 1 FROM streetaudit.heritage_area AS a
            WHERE (CASE WHEN area IS NULL THEN a.kind = 'core' ELSE a.name = area END)
              AND ST_Intersects(a.geom, p.geom));
    INSERT INTO streetaudit.rating_image (image_id) SELECT image_id FROM wanted
    ON CONFLICT (image_id) DO UPDATE SET in_pool = true;
    UPDATE streetaudit.rating_image AS ri SET in_pool = false
    WHERE ri.in_pool AND NOT EXISTS (SELECT 1 FROM wanted AS w WHERE w.image_id = ri.image_id);
    SELECT count(*) INTO pooled FROM wanted;
    DROP TABLE wanted;
    RETURN pooled;
END
$$;
COMMENT ON FUNCTION streetaudit.fill_rating_pool(text) IS
    'Set the rating pool to the ok images inside heritage area `area` (NULL: every core area); returns its size.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA rating_api FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rating_api.session(text) TO streetaudit_rater;
GRANT EXECUTE ON FUNCTION rating_api.next_pair(text) TO streetaudit_rater;
GRANT EXECUTE ON FUNCTION rating_api.submit_choice(text, bigint, bigint, text, jsonb) TO streetaudit_rater;
GRANT EXECUTE ON FUNCTION rating_api.undo_last(text) TO streetaudit_rater;
GRANT EXECUTE ON FUNCTION rating_api.image_uri(text, bigint) TO streetaudit_rater;
REVOKE EXECUTE ON FUNCTION streetaudit.rater_for(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.rater_progress(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.rater_partners(bigint, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.rater_has_seen(bigint, bigint, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.pick_repeated_pair(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.pick_random_pair(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.pick_adaptive_pair(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.pick_queued_pair(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.pair_compared(bigint, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.plan_pair_round() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.rating_campaign_json() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.fill_rating_pool(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.comparison_append_only() FROM PUBLIC;
