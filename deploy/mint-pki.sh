#!/bin/sh
# One-shot PKI of deploy/compose.yaml and deploy/compose.cluster.yaml: a CA per country,
# the gateways' and the broker's certificates, CRLs, the trust bundle and the broker's ACL
# (Mosquitto and EMQX formats); for the cluster also the PostgreSQL password (with a
# pgpass file for the gateways) and the EMQX nodes' Erlang cookie. All minted into $PKI
# (the `pki` volume) at first start; nothing secret is in the repository, the keys and
# passwords only ever exist in the volume. Later starts keep what was minted. Renew: remove
# the volume (docker compose down -v).
set -eu
PKI="${PKI:-/pki}"
if [ -f "$PKI/.complete" ]; then
    echo "PKI already minted in $PKI"
    exit 0
fi
mkdir -p "$PKI/broker"
euccs-gw certs ca create --country DE --name bka --dir "$PKI/DE"
euccs-gw certs ca create --country FR --name sdis67 --dir "$PKI/FR"
euccs-gw certs issue --ca "$PKI/DE" --role gateway --name gw-de-kehl --out "$PKI/DE/gateway-gw-de-kehl"
# Germany's second gateway of the cluster (DE-2, deploy/de2-cluster.toml).
euccs-gw certs issue --ca "$PKI/DE" --role gateway --name gw-de-offenburg --out "$PKI/DE/gateway-gw-de-offenburg"
euccs-gw certs issue --ca "$PKI/FR" --role gateway --name gw-fr-strasbourg --out "$PKI/FR/gateway-gw-fr-strasbourg"
# The broker's server certificate (role gateway: serverAuth); no ACL entry, no MQTT access.
# "broker" is the address of the EMQX cluster (every node answers to it).
euccs-gw certs issue --ca "$PKI/DE" --role gateway --name mqtt-broker --dns mosquitto --dns broker --out "$PKI/broker/broker"
# A control-room certificate per country for the consoles.
euccs-gw certs issue --ca "$PKI/DE" --role console --name lagezentrum --out "$PKI/DE/console-lagezentrum"
euccs-gw certs issue --ca "$PKI/FR" --role console --name codis67 --out "$PKI/FR/console-codis67"
euccs-gw certs crl --ca "$PKI/DE"
euccs-gw certs crl --ca "$PKI/FR"
euccs-gw certs bundle --out "$PKI/bundle" --ca "$PKI/DE" --ca-cert "FR=$PKI/FR/ca.pem" --crl "FR=$PKI/FR/crl.pem"
cat "$PKI/bundle/"*-crl.pem > "$PKI/broker/crl.pem"
euccs-gw broker acl DE=gw-de-kehl DE-2=gw-de-offenburg FR=gw-fr-strasbourg --out "$PKI/broker/acl"
euccs-gw broker acl DE=gw-de-kehl DE-2=gw-de-offenburg FR=gw-fr-strasbourg --emqx --out "$PKI/broker/emqx-acl.conf"
# The shared journal's password and the EMQX cluster's cookie: random, minted here only.
mkdir -p "$PKI/postgres"
python -c 'import secrets; print(secrets.token_urlsafe(32))' > "$PKI/postgres/password"
printf 'postgres:5432:euccs:euccs:%s\n' "$(cat "$PKI/postgres/password")" > "$PKI/postgres/pgpass"
python -c 'import secrets; print(secrets.token_hex(32))' > "$PKI/broker/cookie"
chmod 600 "$PKI/postgres/password" "$PKI/postgres/pgpass" "$PKI/broker/cookie"
# CA keys stay in the volume but are readable by nobody else; hand each service its files.
if [ -n "${BROKER_UID:-}" ]; then
    chown -R "$BROKER_UID" "$PKI/broker"
fi
if [ -n "${GATEWAY_UID:-}" ]; then
    chown "$GATEWAY_UID" "$PKI/DE/gateway-gw-de-kehl.key" "$PKI/DE/gateway-gw-de-offenburg.key" \
        "$PKI/FR/gateway-gw-fr-strasbourg.key" "$PKI/postgres/pgpass"
fi
if [ -n "${POSTGRES_UID:-}" ]; then
    chown "$POSTGRES_UID" "$PKI/postgres/password"
fi
touch "$PKI/.complete"
echo "PKI minted in $PKI"
