#!/bin/bash
# hoheit-healthcheck PORT [PATH]: the container health check of the Hoheit images.
# Exits 0 when http://127.0.0.1:PORT/PATH (default /readyz) answers 200, 1 otherwise.
# Plain bash (/dev/tcp), so that the runtime image needs no HTTP client.
set -uo pipefail
port=${1:?usage: hoheit-healthcheck PORT [PATH]}
path=${2:-/readyz}
{ exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || exit 1
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 3 status <&3 || exit 1
exec 3<&-
[[ $status == "HTTP/"*" 200"* ]]
