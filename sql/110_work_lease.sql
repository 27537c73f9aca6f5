-- Leases that let many workers (processes, machines) share one stage over one database.
--
-- A worker claims a batch of items (collect: sample points of one provider; segment: images
-- of one model) before working on them and deletes its leases when their rows are written.
-- A lease expires unless its worker renews it, so the batch of a worker that died (kill -9,
-- a lost machine) is taken over by another after `expires_at`. UNLOGGED: leases are only
-- coordination; after a crash of the database they are all gone, which is the same as all
-- expired, and the result rows (unique keys, ON CONFLICT) keep every item at most once.
CREATE UNLOGGED TABLE IF NOT EXISTS streetaudit.work_lease (
    stage text NOT NULL CHECK (stage IN ('collect', 'segment', 'predict', 'explain')),
    scope text NOT NULL,
    item bigint NOT NULL,
    worker text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (stage, scope, item)
);
CREATE INDEX IF NOT EXISTS work_lease_worker_idx ON streetaudit.work_lease (worker);
COMMENT ON TABLE streetaudit.work_lease IS
    'Who is working on what: one row per claimed item (stage, scope = provider or model id, item = point or image id), deleted when its rows are written; a row whose expires_at has passed belongs to a dead worker and is taken over by the next claim.';
