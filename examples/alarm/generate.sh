#!/usr/bin/env bash
# Regenerates the committed protobuf code from alarmpb/alarm.proto. Only needed
# after editing the .proto: building the examples, running them and the tests
# need neither protoc nor this script.
#
#   apt-get install protobuf-compiler    # protoc (Debian 12: 3.21)
#   ./generate.sh
#
# protoc-gen-go is built from the google.golang.org/protobuf version in go.mod,
# so the generated code matches the runtime the examples link.
set -euo pipefail
cd "$(dirname "$0")"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd ../.. && go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go)
protoc -I alarmpb \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" --go_out=alarmpb --go_opt=paths=source_relative \
  --descriptor_set_out=alarmpb/alarm.pb --include_imports \
  --python_out=../python \
  alarm.proto
echo "generated alarmpb/alarm.pb.go, alarmpb/alarm.pb and ../python/alarm_pb2.py"
