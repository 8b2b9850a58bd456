-- Run once, when the PostgreSQL volume is new: the Hive Metastore's own database, apart from
-- epipe's (its tables are not in the publication: nothing of it is captured).
CREATE ROLE hive LOGIN PASSWORD 'hive';
CREATE DATABASE metastore OWNER hive;
