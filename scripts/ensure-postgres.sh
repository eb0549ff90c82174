# shellcheck shell=bash
# Makes sure a PostgreSQL server is reachable and exports DATABASE_URL.
# Source it (`. scripts/ensure-postgres.sh`); it defines `es_pg_stop` to
# stop a throwaway cluster it started.
#
# Order of preference:
#   1. DATABASE_URL, if set (it must answer);
#   2. a server on 127.0.0.1:5432 (user postgres);
#   3. a throwaway cluster started with this machine's own initdb/pg_ctl in a
#      temporary directory (port 54329 unless ES_PG_PORT is set), removed by
#      `es_pg_stop`.
# If none can be had it fails with a message saying how to get one.
# ES_PG_THROWAWAY=1 skips step 2 (to test step 3).

es_pg_log() { printf '[postgres] %s\n' "$*" >&2; }

es_pg_answers() { # host port
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$1" -p "$2" -t 3
    else
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
    fi
}

es_pg_url_answers() { # url
    local rest host port
    rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"
    host="${rest%%:*}"; port="${rest##*:}"
    [ "$port" = "$rest" ] && port=5432
    [ -z "$host" ] && host=127.0.0.1
    es_pg_answers "$host" "$port"
}

es_pg_find_bin() { # name
    if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return 0; fi
    local candidate
    for candidate in /usr/lib/postgresql/*/bin/"$1" /usr/local/pgsql/bin/"$1"; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

es_pg_stop() {
    if [ -n "${ES_PG_TMPDIR:-}" ] && [ -d "$ES_PG_TMPDIR" ]; then
        es_pg_log "stopping throwaway cluster in $ES_PG_TMPDIR"
        $ES_PG_AS "$ES_PG_CTL" -D "$ES_PG_TMPDIR/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$ES_PG_TMPDIR"
        ES_PG_TMPDIR=
    fi
}

es_pg_start_throwaway() {
    local initdb pg_ctl port
    initdb="$(es_pg_find_bin initdb)" || return 1
    pg_ctl="$(es_pg_find_bin pg_ctl)" || return 1
    port="${ES_PG_PORT:-54329}"
    ES_PG_CTL="$pg_ctl"
    ES_PG_AS=""
    ES_PG_TMPDIR="$(mktemp -d /tmp/es-pg.XXXXXX)"
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root: run the cluster as the postgres user.
        if ! id postgres >/dev/null 2>&1; then
            es_pg_log "running as root and no 'postgres' user exists to own a throwaway cluster"
            return 1
        fi
        chown postgres "$ES_PG_TMPDIR"
        ES_PG_AS="runuser -u postgres --"
    fi
    es_pg_log "starting a throwaway cluster with $initdb on port $port"
    $ES_PG_AS "$initdb" -D "$ES_PG_TMPDIR/data" -U postgres --auth=trust -E UTF8 >"$ES_PG_TMPDIR/initdb.log" 2>&1 \
        || { cat "$ES_PG_TMPDIR/initdb.log" >&2; return 1; }
    $ES_PG_AS "$pg_ctl" -D "$ES_PG_TMPDIR/data" -l "$ES_PG_TMPDIR/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $ES_PG_TMPDIR -c max_connections=200" start >/dev/null \
        || { cat "$ES_PG_TMPDIR/server.log" >&2; return 1; }
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

if [ -n "${DATABASE_URL:-}" ]; then
    if ! es_pg_url_answers "$DATABASE_URL"; then
        es_pg_log "DATABASE_URL is set but nothing answers there: $DATABASE_URL"
        return 1 2>/dev/null || exit 1
    fi
    es_pg_log "using DATABASE_URL"
elif [ "${ES_PG_THROWAWAY:-0}" != 1 ] && es_pg_answers 127.0.0.1 5432; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    es_pg_log "using the server on 127.0.0.1:5432"
elif es_pg_start_throwaway; then
    es_pg_log "using throwaway cluster at $DATABASE_URL"
else
    es_pg_stop
    cat >&2 <<'MSG'
[postgres] No PostgreSQL server could be found or started.
[postgres] Do one of:
[postgres]   - set DATABASE_URL=postgres://USER@HOST:PORT/DB to a server you can use;
[postgres]   - run a server on 127.0.0.1:5432 that accepts user `postgres`;
[postgres]   - install PostgreSQL (e.g. `apt-get install postgresql`) so that its
[postgres]     initdb and pg_ctl exist; the test script then starts a throwaway cluster.
MSG
    return 1 2>/dev/null || exit 1
fi
