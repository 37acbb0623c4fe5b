#!/bin/bash
# The official image's entrypoint, the parts compose relies on: the user from CLICKHOUSE_USER and
# CLICKHOUSE_PASSWORD (it replaces `default`), init scripts once, then the server as user clickhouse.
set -euo pipefail
user=${CLICKHOUSE_USER:-default}
password=${CLICKHOUSE_PASSWORD:-}
as_clickhouse=(setpriv --reuid clickhouse --regid clickhouse --init-groups)

if [[ $user != default || -n $password ]]; then
  hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
  remove_default=""
  [[ $user != default ]] && remove_default='<default remove="remove"/>'
  cat >/etc/clickhouse-server/users.d/default-user.xml <<XML
<clickhouse>
  <users>
    $remove_default
    <$user>
      <password_sha256_hex>$hash</password_sha256_hex>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </$user>
  </users>
</clickhouse>
XML
fi
chown -R clickhouse:clickhouse /var/lib/clickhouse

server=(clickhouse-server --config-file=/etc/clickhouse-server/config.xml)
if [[ ! -d /var/lib/clickhouse/metadata ]] && compgen -G '/docker-entrypoint-initdb.d/*' >/dev/null; then
  # Directly in the background (not in a function: a subshell's pid would be killed, not the server's).
  "${as_clickhouse[@]}" "${server[@]}" -- --listen_host=127.0.0.1 &
  pid=$!
  for _ in $(seq 120); do
    [[ $(wget -qO- http://127.0.0.1:8123/ping 2>/dev/null) == Ok. ]] && break
    sleep 0.5
  done
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sql) echo "init: $f"; clickhouse-client --user "$user" --password "$password" --multiquery <"$f" ;;
      *.sh) echo "init: $f"; . "$f" ;;
      *) echo "init: ignoring $f" ;;
    esac
  done
  kill "$pid"
  wait "$pid" || true
fi
exec "${as_clickhouse[@]}" "${server[@]}"
