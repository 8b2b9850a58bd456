-- 0007: what each consumer serves, as it says when it registers. Read-your-writes waits
-- for the consumers that serve search, whatever their names.
ALTER TABLE epipe_consumers ADD COLUMN serves_search boolean NOT NULL DEFAULT false;
-- Consumers registered before this column existed: the index consumer was the only one.
UPDATE epipe_consumers SET serves_search = true WHERE name = 'index' OR name LIKE 'index/%';
