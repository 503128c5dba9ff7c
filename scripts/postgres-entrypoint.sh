#!/bin/sh
# Entrypoint of Dockerfile.postgres: on an empty data volume, create the cluster with the
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB of the official image (password
# authentication over TCP, scram-sha-256; UTF8, as the agent needs: an SQL_ASCII database
# makes the driver see bytes), then run the server in the foreground.
set -eu
: "${POSTGRES_USER:=sre}"
: "${POSTGRES_DB:=sre_agent}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "postgres-entrypoint: set POSTGRES_PASSWORD" >&2
  exit 2
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 --no-locale \
    --auth-host=scram-sha-256 \
    --auth-local=trust >/dev/null
  rm -f "$pwfile"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: created database $POSTGRES_DB for $POSTGRES_USER"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
