#!/usr/bin/env bash
# Fetch Apache Kafka's broker jars from Maven Central into the cache
# (default .cache/kafka/ in the repository; LOGWEIR_KAFKA_CACHE overrides),
# once. Prints the folder holding the jars. Needs java and mvn.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${LOGWEIR_KAFKA_CACHE:-$repo/.cache/kafka}"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
libs="$cache/libs-$version"
stamp="$libs/.complete"

if [[ -f "$stamp" && "$stamp" -nt "$here/pom.xml" ]]; then
    echo "$libs"
    exit 0
fi
command -v mvn >/dev/null || { echo "kafka: mvn not found (apt-get install maven)" >&2; exit 1; }
mkdir -p "$cache"
# The cache ignores itself, so no .gitignore elsewhere has to know of it.
if [[ "$cache" == "$repo/.cache/"* && ! -f "$repo/.cache/.gitignore" ]]; then
    echo '*' >"$repo/.cache/.gitignore"
fi
echo "kafka: fetching Apache Kafka $version jars from Maven Central into $libs (first time only; can take minutes)" >&2
rm -rf "$libs.partial"
mvn -B --no-transfer-progress -f "$here/pom.xml" \
    dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$libs.partial" >"$cache/fetch.log" 2>&1 || {
    echo "kafka: mvn failed; last lines of $cache/fetch.log:" >&2
    tail -n 20 "$cache/fetch.log" >&2
    exit 1
}
rm -rf "$libs"
mv "$libs.partial" "$libs"
touch "$stamp"
echo "kafka: $(ls "$libs"/*.jar | wc -l) jars in $libs" >&2
echo "$libs"
