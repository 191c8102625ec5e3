-- jobq schema, version 2: the kinds each worker can run. {schema} is replaced
-- by the quoted schema name. Additive (SPEC §10).

-- The kinds a worker's app registers; its claim takes only these. NULL: a
-- worker of an older version, which claims every kind.
ALTER TABLE {schema}.workers ADD COLUMN kinds text[];
