#!/usr/bin/env bash
# The embedded default: SQLite, local media, a Celery worker on the filesystem
# broker, Django's development server. Stops the worker when the server stops.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8000}
export DEBUG=${DEBUG:-1}

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py load_taxonomy
"$BIN/python" manage.py demo

"$BIN/celery" -A config worker --beat --loglevel=WARNING \
  --concurrency=2 --schedule="var/celerybeat-schedule" &
worker=$!
trap 'kill "$worker" 2>/dev/null || true' EXIT INT TERM

echo
echo "Loupe is running at http://127.0.0.1:${PORT}/  (Ctrl+C stops web and worker)"
echo
"$BIN/python" manage.py runserver "127.0.0.1:${PORT}"
