-- First start of the PostgreSQL container only: a second database for Dagster's run and event
-- storage, so that pipeline data (database `deer`) and orchestration history stay apart.
CREATE DATABASE dagster OWNER deer;
