-- The /label page's functions: a rater's top images, their boxes, and saving an edit
-- (tables: sql/070_detection.sql annotation, sql/072_label_campaign.sql).
--
-- Like the rating functions (post/060_ratings.sql) they are SECURITY DEFINER in schema
-- rating_api, executable by streetaudit_rater only, and check the token on every call
-- (streetaudit.rater_for: SQLSTATE SAU01 unknown, SAU03 revoked → 401, 403). Bad boxes
-- raise SAU22 (400), an image outside the campaign SAU04 (404).

-- An image a rater may box: an ok image of the rating campaign (in the pool now or once),
-- the same images the raters were shown. NULL fields when it is not one.
CREATE OR REPLACE FUNCTION streetaudit.label_image(image bigint) RETURNS streetaudit.image
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT i.* FROM streetaudit.image AS i
    WHERE i.id = image AND i.status = 'ok'
      AND EXISTS (SELECT 1 FROM streetaudit.rating_image AS ri WHERE ri.image_id = i.id)
$$;

-- The rater's current boxes on an image, any source (files imported for them, or this page).
CREATE OR REPLACE FUNCTION streetaudit.label_current(rater bigint, image bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', a.id, 'label', a.label, 'x1', a.x1, 'y1', a.y1, 'x2', a.x2, 'y2', a.y2,
               'source', a.source) ORDER BY a.id), '[]'::jsonb)
    FROM streetaudit.annotation AS a
    WHERE a.rater_id = rater AND a.image_id = image AND a.replaced_at IS NULL
$$;

-- The rater's top `n` images (default: the campaign's top_n), best first: by their own ELO
-- when `ratings recompute` has stored one for them, else by how often they chose the
-- image, then filled from the campaign pool by pooled ELO (a rater who has not rated yet
-- still gets images). Each with its size (NULL when the image row lacks it: the page
-- reads it from the picture) and how many boxes the rater has on it now.
CREATE OR REPLACE FUNCTION rating_api.label_queue(token text, n integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
    c streetaudit.label_campaign;
    wanted integer;
    images jsonb;
BEGIN
    SELECT * INTO c FROM streetaudit.label_campaign;
    wanted := coalesce(n, c.top_n, 500);
    IF wanted < 1 OR wanted > 5000 THEN
        RAISE EXCEPTION 'n must be between 1 and 5000, got %', wanted USING ERRCODE = 'SAU22';
    END IF;
    WITH candidate AS (
        SELECT g.image_id, 0 AS tier, g.score AS key, 'own elo' AS basis
        FROM streetaudit.rating AS g WHERE g.method = 'elo' AND g.rater_id = r.id
        UNION ALL
        SELECT CASE WHEN x.choice = 'left' THEN x.left_image ELSE x.right_image END, 1, count(*), 'chosen'
        FROM streetaudit.comparison AS x
        WHERE x.rater_id = r.id AND x.undone_at IS NULL AND x.choice <> 'skip'
        GROUP BY 1
        UNION ALL
        SELECT ri.image_id, 2, ri.elo, 'pool' FROM streetaudit.rating_image AS ri WHERE ri.in_pool
    ), best AS (
        SELECT DISTINCT ON (k.image_id) k.image_id, k.tier, k.key, k.basis
        FROM candidate AS k ORDER BY k.image_id, k.tier
    ), top AS (
        SELECT b.*, i.width, i.height
        FROM best AS b
        JOIN streetaudit.image AS i ON i.id = b.image_id AND i.status = 'ok'
        WHERE EXISTS (SELECT 1 FROM streetaudit.rating_image AS ri WHERE ri.image_id = b.image_id)
        ORDER BY b.tier, b.key DESC, b.image_id
        LIMIT wanted
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', t.image_id, 'width', t.width, 'height', t.height, 'basis', t.basis,
               'boxes', (SELECT count(*) FROM streetaudit.annotation AS a
                         WHERE a.rater_id = r.id AND a.image_id = t.image_id AND a.replaced_at IS NULL))
               ORDER BY t.tier, t.key DESC, t.image_id), '[]'::jsonb)
    INTO images FROM top AS t;
    RETURN jsonb_build_object('rater', r.name, 'labels', to_jsonb(c.labels), 'images', images);
END
$$;
COMMENT ON FUNCTION rating_api.label_queue(text, integer) IS
    'The rater''s top n images to box (own ELO, else most chosen, then the pool): {rater, labels, images: [{id, width, height, basis, boxes}]}.';

-- Where a campaign image is stored and its size, for a valid token only (the API streams
-- it, and reads the size from the file when the row lacks it). NULL outside the campaign.
CREATE OR REPLACE FUNCTION rating_api.label_image(token text, image bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
    img streetaudit.image := streetaudit.label_image(image);
BEGIN
    IF img.id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object('id', img.id, 'uri', img.uri, 'width', img.width, 'height', img.height);
END
$$;
COMMENT ON FUNCTION rating_api.label_image(text, bigint) IS
    'Storage URI and size of a campaign image, for a valid token: {id, uri, width, height}; NULL outside the campaign.';

-- The rater's current boxes on a campaign image (NULL outside the campaign).
CREATE OR REPLACE FUNCTION rating_api.label_boxes(token text, image bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
    img streetaudit.image := streetaudit.label_image(image);
BEGIN
    IF img.id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object('image', img.id, 'width', img.width, 'height', img.height,
                              'boxes', streetaudit.label_current(r.id, img.id));
END
$$;
COMMENT ON FUNCTION rating_api.label_boxes(text, bigint) IS
    'The rater''s current boxes on an image: {image, width, height, boxes: [{id, label, x1, y1, x2, y2, source}]}.';

-- Save the rater's boxes on an image: [{label, x1, y1, x2, y2}] in pixels of the stored
-- image. All are checked first (label from the campaign's list, numbers, clipped to the
-- image, no zero area after clipping), naming the first bad box; then, in this one
-- transaction, the rater's current boxes on the image get replaced_at and the new ones are
-- appended (source 'label page', source_row its position). Saving the boxes already
-- stored writes nothing, so a page saving twice duplicates nothing. The size is the
-- image row's, else `width`/`height` (read from the file by the API). Returns the count.
CREATE OR REPLACE FUNCTION rating_api.label_save(
    token text, image bigint, boxes jsonb, width integer DEFAULT NULL, height integer DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r streetaudit.rater := streetaudit.rater_for(token);
    img streetaudit.image := streetaudit.label_image(image);
    labels text[];
    w double precision;
    h double precision;
    item jsonb;
    pos bigint;
    v double precision[];
    clean jsonb := '[]'::jsonb;
    wanted jsonb;
    stored jsonb;
    saved integer;
    looked boolean;
BEGIN
    IF img.id IS NULL THEN
        RAISE EXCEPTION 'image % is not in the campaign (or not ok)', image USING ERRCODE = 'SAU04';
    END IF;
    w := coalesce(img.width, label_save.width);
    h := coalesce(img.height, label_save.height);
    IF w IS NULL OR h IS NULL OR w <= 0 OR h <= 0 THEN
        RAISE EXCEPTION 'the size of image % is unknown', image USING ERRCODE = 'SAU22';
    END IF;
    IF boxes IS NULL OR jsonb_typeof(boxes) <> 'array' THEN
        RAISE EXCEPTION 'boxes must be a JSON array' USING ERRCODE = 'SAU22';
    END IF;
    IF jsonb_array_length(boxes) > 1000 THEN
        RAISE EXCEPTION 'at most 1000 boxes per image, got %', jsonb_array_length(boxes) USING ERRCODE = 'SAU22';
    END IF;
    SELECT c.labels INTO labels FROM streetaudit.label_campaign AS c;
    FOR item, pos IN SELECT e, o FROM jsonb_array_elements(boxes) WITH ORDINALITY AS t(e, o) LOOP
        IF jsonb_typeof(item) <> 'object' OR jsonb_typeof(item->'label') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'box %: must be an object with a label', pos USING ERRCODE = 'SAU22';
        END IF;
        IF NOT (item->>'label') = ANY (labels) THEN
            RAISE EXCEPTION 'box %: label "%" is not one of %', pos, item->>'label', array_to_string(labels, ', ')
                USING ERRCODE = 'SAU22';
        END IF;
        IF EXISTS (SELECT 1 FROM unnest(ARRAY['x1', 'y1', 'x2', 'y2']) AS k
                   WHERE jsonb_typeof(item->k) IS DISTINCT FROM 'number') THEN
            RAISE EXCEPTION 'box %: x1, y1, x2 and y2 must be numbers', pos USING ERRCODE = 'SAU22';
        END IF;
        -- Corners in either order, clipped to the image.
        v := ARRAY[
            least(greatest(least((item->>'x1')::float8, (item->>'x2')::float8), 0), w),
            least(greatest(least((item->>'y1')::float8, (item->>'y2')::float8), 0), h),
            least(greatest(greatest((item->>'x1')::float8, (item->>'x2')::float8), 0), w),
            least(greatest(greatest((item->>'y1')::float8, (item->>'y2')::float8), 0), h)];
        IF v[3] <= v[1] OR v[4] <= v[2] THEN
            RAISE EXCEPTION 'box %: no area inside the image (% × % pixels)', pos, w, h USING ERRCODE = 'SAU22';
        END IF;
        clean := clean || jsonb_build_array(jsonb_build_object(
            'label', item->>'label', 'x1', v[1], 'y1', v[2], 'x2', v[3], 'y2', v[4], 'row', pos));
    END LOOP;
    PERFORM 1 FROM streetaudit.rater WHERE id = r.id FOR UPDATE;  -- one save of a rater at a time
    SELECT coalesce(jsonb_agg(jsonb_build_array(e->>'label', (e->>'x1')::float8, (e->>'y1')::float8,
                                                (e->>'x2')::float8, (e->>'y2')::float8)
                              ORDER BY e->>'label', (e->>'x1')::float8, (e->>'y1')::float8,
                                       (e->>'x2')::float8, (e->>'y2')::float8), '[]'::jsonb)
    INTO wanted FROM jsonb_array_elements(clean) AS e;
    SELECT coalesce(jsonb_agg(jsonb_build_array(a.label, a.x1, a.y1, a.x2, a.y2)
                              ORDER BY a.label, a.x1, a.y1, a.x2, a.y2), '[]'::jsonb)
    INTO stored FROM streetaudit.annotation AS a
    WHERE a.rater_id = r.id AND a.image_id = img.id AND a.replaced_at IS NULL;
    saved := jsonb_array_length(clean);
    IF wanted = stored THEN
        IF saved > 0 THEN
            RETURN saved;
        END IF;
        SELECT EXISTS (SELECT 1 FROM streetaudit.annotated_image AS ai
                       WHERE ai.rater_id = r.id AND ai.image_id = img.id AND ai.replaced_at IS NULL)
        INTO looked;
        IF looked THEN
            RETURN saved;
        END IF;
    END IF;
    UPDATE streetaudit.annotation SET replaced_at = clock_timestamp()
    WHERE rater_id = r.id AND image_id = img.id AND replaced_at IS NULL;
    INSERT INTO streetaudit.annotation (image_id, rater_id, label, x1, y1, x2, y2, source, source_row)
    SELECT img.id, r.id, e->>'label', (e->>'x1')::float8, (e->>'y1')::float8, (e->>'x2')::float8,
           (e->>'y2')::float8, 'label page', (e->>'row')::integer
    FROM jsonb_array_elements(clean) AS e;
    -- Record the look (boxed or left empty: a negative example), as `annotations import` does.
    UPDATE streetaudit.annotated_image SET replaced_at = clock_timestamp()
    WHERE rater_id = r.id AND image_id = img.id AND replaced_at IS NULL;
    INSERT INTO streetaudit.annotated_image (image_id, rater_id, source, boxes)
    VALUES (img.id, r.id, 'label page', saved);
    RETURN saved;
END
$$;
COMMENT ON FUNCTION rating_api.label_save(text, bigint, jsonb, integer, integer) IS
    'Replace the rater''s boxes on an image with [{label, x1, y1, x2, y2}] (image pixels; clipped; labels from streetaudit.label_campaign); returns how many were saved.';

REVOKE EXECUTE ON FUNCTION rating_api.label_queue(text, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION rating_api.label_image(text, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION rating_api.label_boxes(text, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION rating_api.label_save(text, bigint, jsonb, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rating_api.label_queue(text, integer) TO streetaudit_rater;
GRANT EXECUTE ON FUNCTION rating_api.label_image(text, bigint) TO streetaudit_rater;
GRANT EXECUTE ON FUNCTION rating_api.label_boxes(text, bigint) TO streetaudit_rater;
GRANT EXECUTE ON FUNCTION rating_api.label_save(text, bigint, jsonb, integer, integer) TO streetaudit_rater;
REVOKE EXECUTE ON FUNCTION streetaudit.label_image(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.label_current(bigint, bigint) FROM PUBLIC;
