#!/usr/bin/env bash
# Vendors the uPlot chart library into the console: fetches the exact
# version from the npm registry with `npm pack` (no install scripts run) and
# copies its built browser files and its licence into
# internal/console/static/vendor/, which is committed. The console loads them
# from the hub itself; nothing is fetched at run time and Ferry builds
# without Node.
#
#   scripts/vendor-uplot.sh            # the pinned version below
#   UPLOT_VERSION=1.6.32 scripts/vendor-uplot.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version="${UPLOT_VERSION:-1.6.32}"
dest=internal/console/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null)
tar -xzf "$tmp/uplot-$version.tgz" -C "$tmp"
pkg="$tmp/package"
mkdir -p "$dest"
cp "$pkg/dist/uPlot.iife.min.js" "$dest/uPlot.iife.min.js"
cp "$pkg/dist/uPlot.min.css" "$dest/uPlot.min.css"
cp "$pkg/LICENSE" "$dest/uPlot.LICENSE"
echo "uPlot $version (npm uplot@$version: dist/uPlot.iife.min.js, dist/uPlot.min.css, LICENSE)" > "$dest/uPlot.VERSION"
echo "vendored uPlot $version into $dest"
