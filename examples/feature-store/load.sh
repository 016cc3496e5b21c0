#!/usr/bin/env bash
# Creates and fills the feature table `prostate_features` from data/prostate.csv in the database
# at $FEATURES_URL (default: the local test server). Idempotent: the table is recreated.
#   FEATURES_URL=postgres://mlbuild:mlbuild@127.0.0.1:5432/postgres ./load.sh
set -euo pipefail
cd "$(dirname "$0")"
url="${FEATURES_URL:-postgres://mlbuild:mlbuild@127.0.0.1:5432/postgres}"
psql "$url" -v ON_ERROR_STOP=1 -q <<'SQL'
DROP TABLE IF EXISTS prostate_features;
CREATE TABLE prostate_features (
  id integer PRIMARY KEY,
  capsule integer NOT NULL,
  age integer,
  race integer,
  dpros integer,
  dcaps integer,
  psa double precision,
  vol double precision,
  gleason integer,
  updated_at timestamptz NOT NULL DEFAULT now()
);
\copy prostate_features (id, capsule, age, race, dpros, dcaps, psa, vol, gleason) FROM '../../data/prostate.csv' WITH (FORMAT csv, HEADER true)
SQL
psql "$url" -qAtc "SELECT count(*) || ' rows in prostate_features' FROM prostate_features"
