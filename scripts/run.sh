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

# No beat: the worker runs the periodic jobs (recovery sweeps) itself.
"$BIN/celery" -A config worker --loglevel=WARNING --concurrency=2 &
worker=$!
trap 'kill "$worker" 2>/dev/null || true' EXIT INT TERM

# Show the loop from the first run: once the worker answers, annotate what was
# never annotated (the demo catalogue) with the configured provider (the local
# one without an API key), so a tagger finds items to review within a minute.
# LOUPE_AUTO_ANNOTATE=0 turns it off.
if [ "${LOUPE_AUTO_ANNOTATE:-1}" != "0" ]; then
  (
    for _ in $(seq 60); do
      if "$BIN/celery" -A config inspect ping --timeout 1 >/dev/null 2>&1; then
        "$BIN/python" manage.py annotate --pending || true
        exit 0
      fi
      sleep 1
    done
    echo "The worker did not answer within a minute: nothing was sent for annotation." >&2
  ) &
fi

echo
echo "Loupe is running at http://127.0.0.1:${PORT}/  (Ctrl+C stops web and worker)"
echo "Pending products are sent for annotation as soon as the worker is up."
echo
"$BIN/python" manage.py runserver "127.0.0.1:${PORT}"
