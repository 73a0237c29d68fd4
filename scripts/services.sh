# Sourced by scripts/test and scripts/bench: install and start PostgreSQL and Redis on
# 127.0.0.1 when they are missing or stopped, and export the URLs the tests and benchmarks use.
# shellcheck shell=bash

log() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
need_packages() {  # need_packages COMMAND:PACKAGE...
    local missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

wait_for() {  # wait_for DESCRIPTION COMMAND...: up to 30 s, then fail loudly
    local what=$1; shift
    for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    echo "error: $what did not come up" >&2
    exit 1
}

start_services() {
    need_packages redis-server:redis-server pg_ctlcluster:postgresql

    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        log "starting Redis on 127.0.0.1:6379"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    fi
    wait_for "Redis on 127.0.0.1:6379" redis-cli -h 127.0.0.1 -p 6379 ping

    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        log "starting PostgreSQL $version on 127.0.0.1:5432"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    wait_for "PostgreSQL on 127.0.0.1:5432" pg_isready -h 127.0.0.1 -p 5432

    # Trust auth as the current user where the machine is set up so; else a password role.
    if [ -z "${OAUTHVAULT_TEST_DATABASE_URL:-}" ]; then
        local me
        me=$(id -un)
        if psql "postgresql://$me@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
            export OAUTHVAULT_TEST_DATABASE_URL="postgresql://$me@127.0.0.1:5432/postgres"
        else
            log "creating PostgreSQL role oauthvault_test"
            as_root runuser -u postgres -- psql -qc "DO \$\$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'oauthvault_test') THEN
                    CREATE ROLE oauthvault_test LOGIN CREATEDB PASSWORD 'oauthvault_test';
                END IF; END \$\$;" >/dev/null
            export OAUTHVAULT_TEST_DATABASE_URL="postgresql://oauthvault_test:oauthvault_test@127.0.0.1:5432/postgres"
        fi
    fi
    export OAUTHVAULT_TEST_REDIS_URL="${OAUTHVAULT_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
}

install_python() {  # install_python EXTRAS [VENV [PYTHON]]: VENV (.venv) is made with PYTHON (python3)
    local venv=${2:-.venv} python=${3:-python3}
    if [ ! -x "$venv/bin/python" ]; then
        log "creating $venv with $python"
        "$python" -m venv "$venv" || return
    fi
    log "installing oauthvault${1:+ with [$1]} into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".${1:+[$1]}"
}
