-- Append-heavy tables at city scale: the defaults (vacuum after 20% of the table is new, analyze
-- after 10%) mean a 10M-row image table waits for 2M inserts before its visibility map and
-- statistics catch up, so index-only scans and plans for "images without a segmentation" go
-- stale during a long collect. Vacuum and analyze them after 1-2% instead.
ALTER TABLE streetaudit.image SET (
    autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01,
    autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE streetaudit.segmentation SET (
    autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE streetaudit.sample_point SET (
    autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE streetaudit.comparison SET (
    autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE streetaudit.detection SET (
    autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01);
-- Leases are rewritten all the time (claim, renew, delete): keep the table small.
ALTER TABLE streetaudit.work_lease SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
