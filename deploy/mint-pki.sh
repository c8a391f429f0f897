#!/bin/sh
# One-shot PKI of deploy/compose.yaml: a CA per country, the gateways' and the broker's
# certificates, CRLs, the trust bundle and the broker's ACL, minted into $PKI (the `pki`
# volume) at first start. Nothing here is secret; the keys only ever exist in the volume.
# Later starts keep the existing PKI. Renew: remove the volume (docker compose down -v).
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
euccs-gw certs issue --ca "$PKI/FR" --role gateway --name gw-fr-strasbourg --out "$PKI/FR/gateway-gw-fr-strasbourg"
# The broker's server certificate (role gateway: serverAuth); no ACL entry, no MQTT access.
euccs-gw certs issue --ca "$PKI/DE" --role gateway --name mqtt-broker --dns mosquitto --out "$PKI/broker/broker"
# A control-room certificate per country for the consoles.
euccs-gw certs issue --ca "$PKI/DE" --role console --name lagezentrum --out "$PKI/DE/console-lagezentrum"
euccs-gw certs issue --ca "$PKI/FR" --role console --name codis67 --out "$PKI/FR/console-codis67"
euccs-gw certs crl --ca "$PKI/DE"
euccs-gw certs crl --ca "$PKI/FR"
euccs-gw certs bundle --out "$PKI/bundle" --ca "$PKI/DE" --ca-cert "FR=$PKI/FR/ca.pem" --crl "FR=$PKI/FR/crl.pem"
cat "$PKI/bundle/"*-crl.pem > "$PKI/broker/crl.pem"
python -c 'from gateway.mqtt_acl import generate_acl; print(generate_acl({"DE": "gw-de-kehl", "FR": "gw-fr-strasbourg"}))' > "$PKI/broker/acl"
# CA keys stay in the volume but are readable by nobody else; hand each service its files.
if [ -n "${BROKER_UID:-}" ]; then
    chown -R "$BROKER_UID" "$PKI/broker"
fi
if [ -n "${GATEWAY_UID:-}" ]; then
    chown "$GATEWAY_UID" "$PKI/DE/gateway-gw-de-kehl.key" "$PKI/FR/gateway-gw-fr-strasbourg.key"
fi
touch "$PKI/.complete"
echo "PKI minted in $PKI"
