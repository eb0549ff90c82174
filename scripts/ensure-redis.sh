# shellcheck shell=bash
# Makes sure a Redis server is reachable and exports REDIS_URL. Source it
# (`. scripts/ensure-redis.sh`); it defines `es_redis_stop` to stop a
# throwaway server it started.
#
# Order of preference:
#   1. REDIS_URL, if set (it must answer);
#   2. a server on 127.0.0.1:6379;
#   3. a throwaway `redis-server` (this machine's own binary) on a free port
#      from 63790 up (or ES_REDIS_PORT), in a temporary directory, keeping
#      nothing on disk (`--save "" --appendonly no`), stopped and removed by
#      `es_redis_stop`.
# If none can be had it fails with a message saying how to get one, in CI
# and outside it alike: the es-redis tests never skip.
# ES_REDIS_THROWAWAY=1 skips step 2 (to test step 3).

es_redis_log() { printf '[redis] %s\n' "$*" >&2; }

es_redis_answers() { # host port
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h "$1" -p "$2" ping 2>/dev/null)" = PONG ]
    else
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
    fi
}

es_redis_url_answers() { # url
    local rest host port
    rest="${1#*://}"; rest="${rest##*@}"; rest="${rest%%/*}"
    host="${rest%%:*}"; port="${rest##*:}"
    [ "$port" = "$rest" ] && port=6379
    [ -z "$host" ] && host=127.0.0.1
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -u "$1" ping 2>/dev/null)" = PONG ]
    else
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
    fi
}

es_redis_stop() {
    if [ -n "${ES_REDIS_TMPDIR:-}" ] && [ -d "$ES_REDIS_TMPDIR" ]; then
        es_redis_log "stopping throwaway server in $ES_REDIS_TMPDIR"
        local pid tries=0
        pid="$(cat "$ES_REDIS_TMPDIR/redis.pid" 2>/dev/null || true)"
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
            # Wait (at most 10 s) for it to exit before removing its directory.
            while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 100 ]; do
                sleep 0.1; tries=$((tries + 1))
            done
        fi
        rm -rf "$ES_REDIS_TMPDIR"
        ES_REDIS_TMPDIR=
    fi
}

es_redis_start_throwaway() {
    local server port tries
    server="$(command -v redis-server)" || return 1
    port="${ES_REDIS_PORT:-63790}"
    tries=0
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1)); tries=$((tries + 1))
        [ "$tries" -ge 50 ] && { es_redis_log "no free port from ${ES_REDIS_PORT:-63790} up"; return 1; }
    done
    ES_REDIS_TMPDIR="$(mktemp -d /tmp/es-redis.XXXXXX)"
    es_redis_log "starting a throwaway server with $server on port $port (nothing kept on disk)"
    "$server" --port "$port" --bind 127.0.0.1 --dir "$ES_REDIS_TMPDIR" --save "" --appendonly no \
        --daemonize yes --pidfile "$ES_REDIS_TMPDIR/redis.pid" --logfile "$ES_REDIS_TMPDIR/redis.log" \
        || { cat "$ES_REDIS_TMPDIR/redis.log" >&2 2>/dev/null; return 1; }
    tries=0
    until es_redis_answers 127.0.0.1 "$port"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 100 ]; then
            es_redis_log "the throwaway server did not answer within 10 s"
            cat "$ES_REDIS_TMPDIR/redis.log" >&2 2>/dev/null
            return 1
        fi
        sleep 0.1
    done
    export REDIS_URL="redis://127.0.0.1:$port"
}

if [ -n "${REDIS_URL:-}" ]; then
    if ! es_redis_url_answers "$REDIS_URL"; then
        es_redis_log "REDIS_URL is set but nothing answers there: $REDIS_URL"
        return 1 2>/dev/null || exit 1
    fi
    es_redis_log "using REDIS_URL"
elif [ "${ES_REDIS_THROWAWAY:-0}" != 1 ] && es_redis_answers 127.0.0.1 6379; then
    export REDIS_URL="redis://127.0.0.1:6379"
    es_redis_log "using the server on 127.0.0.1:6379"
elif es_redis_start_throwaway; then
    es_redis_log "using throwaway server at $REDIS_URL"
else
    es_redis_stop
    cat >&2 <<'MSG'
[redis] No Redis server could be found or started, so the es-redis tests cannot run.
[redis] Do one of:
[redis]   - set REDIS_URL=redis://HOST:PORT to a server (Redis 7.0 or newer) you can use;
[redis]   - run a server on 127.0.0.1:6379;
[redis]   - install Redis (e.g. `apt-get install redis-server`) so that its
[redis]     redis-server exists; the test script then starts a throwaway server.
MSG
    return 1 2>/dev/null || exit 1
fi
