#!/bin/sh
# Chooses the process a Portico container runs (one image, every service and role):
#   web <service>      the HTTP app under gunicorn (config: $GUNICORN_CONFIG)
#   worker <service>   the outbox relay and event consumer (iamctl worker <service>)
#   migrate <service>  apply the service's database migrations, then exit
#   iamctl ...         any operator command, e.g. `iamctl keys rotate`
# `exec` so the process is PID 1's replacement and receives SIGTERM from the kubelet.
set -eu

usage() {
    echo "usage: entrypoint.sh web|worker|migrate <identity|permissions|tracking|notifier> | iamctl ..." >&2
    exit 64
}

service_arg() {
    case "${1:-}" in
        identity|permissions|tracking|notifier) ;;
        *) echo "unknown service: '${1:-}'" >&2; usage ;;
    esac
}

role="${1:-}"
[ $# -gt 0 ] && shift
case "$role" in
    web)
        service_arg "${1:-}"
        exec gunicorn --config "${GUNICORN_CONFIG:-/app/deploy/docker/gunicorn.conf.py}" \
            --name "portico-$1" "services.$1.app:create_app()"
        ;;
    worker)
        service_arg "${1:-}"
        exec iamctl worker "$1"
        ;;
    migrate)
        service_arg "${1:-}"
        exec iamctl migrate "$1"
        ;;
    iamctl)
        exec iamctl "$@"
        ;;
    *)
        usage
        ;;
esac
