#!/usr/bin/env bash
# Install the local trace viewer: Zipkin's server, the executable jar from Maven Central,
# pinned by version and SHA-256, into .tools/zipkin/ (see docs/adr/0018-trace-viewer.md).
# Idempotent: does nothing when the pinned jar is already there. Needs Java 17+ and Maven.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIPKIN_VERSION=${ZIPKIN_VERSION:-3.6.1}
ZIPKIN_SHA256=${ZIPKIN_SHA256:-d8326e0ed4f43855dba81228f688554706e52578a7c782d9a90b73f8680654a1}
dest=.tools/zipkin
jar=$dest/zipkin-server-$ZIPKIN_VERSION-exec.jar

verify() { echo "$ZIPKIN_SHA256  $1" | sha256sum --check --status; }

if [[ -f $jar ]] && verify "$jar"; then
  exit 0
fi
for tool in java mvn sha256sum; do
  command -v "$tool" >/dev/null || { echo "install-trace-viewer: $tool is required" >&2; exit 2; }
done
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --strict-checksums: Maven refuses an artifact whose .sha1 from Central does not match.
mvn --batch-mode --quiet --strict-checksums -Dstyle.color=never dependency:copy \
  "-Dartifact=io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec" \
  "-DoutputDirectory=$tmp"
if ! verify "$tmp/zipkin-server-$ZIPKIN_VERSION-exec.jar"; then
  echo "install-trace-viewer: SHA-256 of zipkin-server $ZIPKIN_VERSION differs from the pin" >&2
  exit 1
fi
mv "$tmp/zipkin-server-$ZIPKIN_VERSION-exec.jar" "$jar"
echo "installed $jar"
