#!/usr/bin/env bash
# Stages third-party .proto files from registry packages into .deps/proto (git-ignored):
# googleapis (google/api, google/rpc, google/type) from the googleapis-common-protos wheel in
# the project venv, and buf/validate from the protovalidate Go module. Nothing is vendored.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOVALIDATE_VERSION="${PROTOVALIDATE_VERSION:?set by the Makefile}"
PYTHON="${PYTHON:-.venv/bin/python}"
out=.deps/proto

site=$("$PYTHON" -c 'import google.api, os; print(os.path.dirname(os.path.dirname(google.api.__path__[0])))')
pv_dir=$(go mod download -json "github.com/bufbuild/protovalidate@${PROTOVALIDATE_VERSION}" |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')

rm -rf "$out.tmp"
mkdir -p "$out.tmp/googleapis/google" "$out.tmp/protovalidate/buf"
for pkg in api rpc type; do
  mkdir -p "$out.tmp/googleapis/google/$pkg"
  cp "$site/google/$pkg/"*.proto "$out.tmp/googleapis/google/$pkg/"
done
cp -R "$pv_dir/proto/protovalidate/buf/validate" "$out.tmp/protovalidate/buf/"
find "$out.tmp" -type f ! -name '*.proto' -delete
chmod -R u+w "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "staged third-party protos in $out (protovalidate $PROTOVALIDATE_VERSION)"
