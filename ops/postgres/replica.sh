#!/bin/sh
# The compose stack's read replica (docker-compose.yml: db-replica), run as the postgres user.
# First start: a base backup of the primary (`pg_basebackup -R`: standby.signal and
# primary_conninfo written, WAL streamed during the copy, a replication slot created), made
# in a scratch directory and moved into place only once complete. Every start: a hot
# standby streaming from that slot.
set -eu
PRIMARY_HOST="${PRIMARY_HOST:-db}"
PRIMARY_USER="${PRIMARY_USER:-weave}"
SLOT="${REPLICA_SLOT:-weave_replica}"
ROOT=/var/lib/postgresql/data
PGDATA="$ROOT/replica"
INCOMING="$ROOT/incoming"

until pg_isready --quiet --host="$PRIMARY_HOST" --username="$PRIMARY_USER"; do
  echo "db-replica: waiting for the primary at $PRIMARY_HOST"
  sleep 1
done

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  rm -rf "$INCOMING"
  # A slot left by an earlier replica (its volume removed) would keep WAL forever.
  psql --host="$PRIMARY_HOST" --username="$PRIMARY_USER" --dbname=postgres --quiet \
    --command="SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
               WHERE slot_name = '$SLOT' AND NOT active" >/dev/null
  echo "db-replica: base backup from $PRIMARY_HOST"
  pg_basebackup --host="$PRIMARY_HOST" --username="$PRIMARY_USER" --pgdata="$INCOMING" \
    --write-recovery-conf --wal-method=stream --checkpoint=fast \
    --create-slot --slot="$SLOT"
  # application_name: how pg_stat_replication on the primary names this standby.
  echo "primary_conninfo = 'host=$PRIMARY_HOST port=5432 user=$PRIMARY_USER application_name=$SLOT'" \
    >>"$INCOMING/postgresql.auto.conf"
  chmod 0700 "$INCOMING"
  mv "$INCOMING" "$PGDATA"
fi

# "$@": the service's command (docker-compose.yml), extra server settings.
exec postgres -D "$PGDATA" -c hot_standby=on -c listen_addresses='*' \
  -c shared_preload_libraries=pg_stat_statements "$@"
