-- jobq schema, version 15: workflows by age. {schema} is replaced by the quoted
-- schema name. Additive (SPEC §10).
--
-- The prune deletes a workflow once every node of it has gone with its job
-- (workflow_prune, oldest first), and the dashboard lists the newest
-- (workflow_list): both read the workflows by when they were made, which with
-- no index meant reading and sorting every workflow ever submitted.
CREATE INDEX workflows_created_idx ON {schema}.workflows (created_at, id);
