-- PgBouncer's password lookup (its auth_query), for the role named by the psql
-- variable auth_role (fresco_pgbouncer_auth), which must exist. Run it with psql as
-- a superuser, in template1 (so every database created later has it) and in each
-- existing tenant database: PgBouncer 1.18 runs auth_query in the database the
-- client asked for. Idempotent.
--   psql -v ON_ERROR_STOP=1 -v auth_role=fresco_pgbouncer_auth -d template1 -f pgbouncer-auth.sql
-- Used by the postgres service of compose/docker-compose.yml and by
-- scripts/lib/stack.sh (the development and test clusters).
\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- A schema of that name that the superuser does not own is not this one (a tenant
-- owns its database and could have made it): stop rather than take it over.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace
              WHERE nspname = 'pgbouncer' AND nspowner <> (
                SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)) THEN
    RAISE EXCEPTION 'schema pgbouncer in database % is not owned by %', current_database(), current_user;
  END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS pgbouncer;
REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO :"auth_role";

-- The name and SCRAM verifier of a tenant role (tenant_user_<32 hex>) and of no
-- other role: through PgBouncer nobody can sign in as the platform role, the auth
-- role or a superuser. A role without LOGIN is not in pg_shadow (teardown).
CREATE OR REPLACE FUNCTION pgbouncer.get_auth(p_usename text)
RETURNS TABLE (usename name, passwd text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
  SELECT s.usename, s.passwd
    FROM pg_catalog.pg_shadow AS s
   WHERE p_usename ~ '^tenant_user_[0-9a-f]{32}$'
     AND s.usename = p_usename
     AND NOT s.usesuper
$$;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO :"auth_role";
