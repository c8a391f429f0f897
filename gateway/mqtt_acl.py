"""Topic scheme of the MQTT federation backbone and the broker ACL generated from it.

Topics (``<DEST>``/``<SRC>`` are federation members, :mod:`gateway.members`: a country
code, or ``DE-2`` for one of the gateways of a split country; ``<class>`` a priority
class)::

    euccs/v1/to/<DEST>/from/<SRC>/<class>   signed envelope batches from SRC to DEST
    euccs/v1/gateways/<MEMBER>              retained presence (birth / will) of a gateway

Priority classes: ``emergency``, ``imminent-peril``, ``high``, ``routine`` (and
``unspecified``). Emergency and imminent-peril traffic has its own topics, so a subscriber
sees it first.

Broker identity mapping: Mosquitto's ``use_identity_as_username`` takes the certificate's
*CN*, and the certs package writes only the holder's *name* there (``gw-de``): not unique
across countries or roles (a German console could be named ``gw-fr``). The broker is
therefore configured with ``use_subject_as_username true``: the username is the full
subject in RFC 2253 form, ``CN=gw-de,OU=gateway,O=EUCCS,C=DE``, which names country, role
and name (the subject's ``C`` is the identity's country; a CA can only issue identities of
its own country and its name constraints pin the URI SAN). :func:`broker_username` computes
it, :func:`generate_acl` keys every rule on it. ``use_username_as_clientid true`` stops one
gateway from taking over another's session with a chosen client id.

EMQX 5 (a broker cluster, ``deploy/compose.cluster.yaml``) gets the same rules in its own
file format (:func:`generate_emqx_acl`), with ``mqtt.peer_cert_as_username = dn`` and
``mqtt.peer_cert_as_clientid = dn``: EMQX prints the subject in the same order
(``CN=...,OU=...,O=...,C=...``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from certs.identity import PeerIdentity, Role, validate_name
from gateway.members import member_nation, validate_member

__all__ = [
    "PRIORITY_CLASSES",
    "broker_username",
    "data_topic",
    "generate_acl",
    "generate_emqx_acl",
    "inbox_filter",
    "parse_data_topic",
    "presence_filter",
    "presence_topic",
]

PREFIX = "euccs/v1"
#: Priority value (protocols.schema.v1.Priority) -> topic segment.
PRIORITY_CLASSES: dict[int, str] = {
    0: "unspecified",
    1: "routine",
    2: "high",
    3: "imminent-peril",
    4: "emergency",
}
_CLASS_PRIORITY = {name: value for value, name in PRIORITY_CLASSES.items()}


def data_topic(dest: str, src: str, priority: int) -> str:
    """Topic of a batch from ``src`` to ``dest`` in ``priority``'s class."""
    return f"{PREFIX}/to/{dest}/from/{src}/{PRIORITY_CLASSES.get(priority, 'unspecified')}"


def parse_data_topic(topic: str) -> tuple[str, str, int] | None:
    """Return ``(dest, src, priority)`` of a data topic, or None if it is not one."""
    parts = topic.split("/")
    if len(parts) != 7 or "/".join(parts[:2]) != PREFIX or parts[2] != "to" or parts[4] != "from":
        return None
    dest, src, klass = parts[3], parts[5], parts[6]
    if klass not in _CLASS_PRIORITY:
        return None
    try:
        validate_member(dest)
        validate_member(src)
    except ValueError:
        return None
    return dest, src, _CLASS_PRIORITY[klass]


def inbox_filter(nation: str) -> str:
    """Subscription of ``nation``'s gateway: every batch addressed to it."""
    return f"{PREFIX}/to/{nation}/#"


def presence_topic(nation: str) -> str:
    """Retained presence topic of ``nation``'s gateway."""
    return f"{PREFIX}/gateways/{nation}"


def presence_filter() -> str:
    """Subscription to every gateway's presence."""
    return f"{PREFIX}/gateways/+"


def broker_username(identity: PeerIdentity) -> str:
    """The username Mosquitto derives (``use_subject_as_username``) from a certificate.

    Certificates issued by :mod:`certs` have the subject ``C=<country>, O=EUCCS,
    OU=<role>, CN=<name>``; Mosquitto prints it in RFC 2253 order (reversed).
    """
    return f"CN={identity.name},OU={identity.role.value},O=EUCCS,C={identity.country}"


def generate_acl(gateways: Mapping[str, str | Sequence[str]]) -> str:
    """Return a Mosquitto ``acl_file`` for the federation's gateways.

    Each gateway may publish only batches *from* its own member id (its country, or e.g.
    ``DE-2`` for a gateway of a split country) to any destination and its own presence, and
    read only batches addressed to its member id and every gateway's presence. Anything
    else (other certificates of the federation, e.g. consoles, or the broker's own) gets no
    access at all.

    Args:
        gateways: Member id -> gateway name(s) as in their certificates (``{"DE":
            "gw-de", "DE-2": "gw-de-2"}``); the certificates are of the member's country.

    Returns:
        The ACL file text.

    Raises:
        ValueError: A member id or gateway name is invalid.
    """
    lines = [
        "# Mosquitto ACL of the EUCCS MQTT federation (generated; see gateway/mqtt_acl.py).",
        "# Requires: require_certificate true, use_subject_as_username true.",
        "",
    ]
    for user, rules in _gateway_rules(gateways):
        lines.append(f"user {user}")
        lines += [f"topic {access} {topic}" for access, topic in rules]
        lines.append("")
    return "\n".join(lines)


def _gateway_rules(
    gateways: Mapping[str, str | Sequence[str]],
) -> Iterable[tuple[str, list[tuple[str, str]]]]:
    """Per gateway certificate: its broker username and its ``(access, topic)`` rules."""
    owners: dict[tuple[str, str], str] = {}
    for member in sorted(gateways):
        validate_member(member)
        given = gateways[member]
        names: Iterable[str] = [given] if isinstance(given, str) else given
        for name in sorted(names):
            validate_name(name)
            owner = owners.setdefault((member_nation(member), name), member)
            if owner != member:
                # One certificate with two gateways' topics: the broker could no longer
                # tell which gateway of the country sent a batch.
                raise ValueError(
                    f"the certificate {name!r} of {member_nation(member)} is listed for both "
                    f"{owner} and {member}: each gateway of a split country needs a "
                    "certificate of its own"
                )
            user = broker_username(PeerIdentity(member_nation(member), Role.GATEWAY, name))
            yield (
                user,
                [
                    ("write", f"{PREFIX}/to/+/from/{member}/#"),
                    ("read", inbox_filter(member)),
                    ("readwrite", presence_topic(member)),
                    ("read", presence_filter()),
                ],
            )


def generate_emqx_acl(gateways: Mapping[str, str | Sequence[str]]) -> str:
    """Return an EMQX 5 authorization file (``acl.conf``) with :func:`generate_acl`'s rules.

    Needs ``mqtt.peer_cert_as_username = dn`` and ``authorization.no_match = deny``; the
    last rule denies everything else anyway.

    Args:
        gateways: Member id -> gateway name(s) as in their certificates.

    Returns:
        The file text (Erlang terms, one rule per line).

    Raises:
        ValueError: A member id or gateway name is invalid.
    """
    actions = {"write": "publish", "read": "subscribe", "readwrite": "all"}
    lines = [
        "%% EMQX ACL of the EUCCS MQTT federation (generated; see gateway/mqtt_acl.py).",
        "%% Requires: verify_peer, fail_if_no_peer_cert, mqtt.peer_cert_as_username = dn.",
    ]
    for user, rules in _gateway_rules(gateways):
        for access, topic in rules:
            # Names and countries are validated: no quote or backslash can occur.
            lines.append(f'{{allow, {{username, "{user}"}}, {actions[access]}, ["{topic}"]}}.')
    lines.append("{deny, all}.")
    return "\n".join(lines) + "\n"
