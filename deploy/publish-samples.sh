#!/bin/sh
# The `publish` job of docker-compose.yml (and of its native twin in tests/deploy): generate the synthetic
# samples, publish every record to NCDC_STAC_ROOT (the object store), then load the publication into pgstac.
# Re-running it is harmless: publishing and ingest are idempotent.
set -eu
records="${NCDC_RECORDS:-/app/records}"
samples="${NCDC_SAMPLES:-samples}"
ncdc-stac samples --out "$samples" --scale "${NCDC_SAMPLES_SCALE:-small}"
for record in "$records"/*.json; do
  name=$(basename "$record" .json)
  ncdc-stac publish "$record" --data "$samples/$name"
done
ncdc-stac ingest
