"""Benchmark of the per-message CPU cost on the TETRA side: prints figures, asserts nothing.

    .venv/bin/python -m loadtests.bench_codecs [--messages N]

Measures, on one core:
* PEI stream decoding (``+CTSDSR`` records to events), fed in 4 KiB chunks;
* SDS-TL text encoding (what the gateway sends to a radio);
* interworking: decoded SDS -> Envelope -> serialized bytes -> parsed back.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gateway.config import parse_config
from gateway.demo_configs import demo_config_text
from gateway.identity import Directory
from gateway.interworking import envelope_from_tetra
from protocols.schema import backend, v1
from protocols.tetra import (
    NEED_DATA,
    Identity,
    PeiConnection,
    SdsReceived,
    TextSds,
    encode_sds,
)

_RECORD = b"+CTSDSR: 12,2001,0,9001001,0,120\r\n82029C01746573746D657373616765\r\n"


def _rate(label: str, count: int, run: Callable[[], None]) -> None:
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {count / elapsed:>12,.0f} msg/s  {elapsed / count * 1e6:>8.2f} us/msg")


def _decode(count: int) -> None:
    stream = _RECORD * count
    conn = PeiConnection()
    seen = 0
    for offset in range(0, len(stream), 4096):
        conn.receive_data(stream[offset : offset + 4096])
        while (event := conn.next_event()) is not NEED_DATA:
            seen += isinstance(event, SdsReceived)
    assert seen == count, seen


def _encode(count: int) -> None:
    text = TextSds(
        protocol_id=0x82,
        text="Need a second ambulance",
        message_reference=7,
        delivery_report_request=1,
    )
    for _ in range(count):
        encode_sds(text)


def _interwork(count: int) -> None:
    config = parse_config(demo_config_text("DE", partner="FR", pei_port=7001))
    directory = Directory(config)
    adapter = config.adapters[0]
    event = SdsReceived(
        source=Identity("2001"),
        destination=Identity("9001001"),
        ai_service=12,
        content=TextSds(
            protocol_id=0x82,
            text="Need a second ambulance",
            message_reference=7,
            delivery_report_request=1,
        ),
    )
    for n in range(count):
        env = envelope_from_tetra(
            event,
            adapter=adapter,
            directory=directory,
            codebook=config.codebooks[adapter.codebook],
            delivery=config.delivery,
            message_id=n.to_bytes(16, "big"),
            now_us=1_700_000_000_000_000,
        )
        v1.Envelope.FromString(env.SerializeToString())


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=50_000)
    count = parser.parse_args().messages
    print(f"protobuf backend: {backend()}; {count:,} messages per measurement")
    _rate("PEI decode (+CTSDSR text, 4 KiB chunks)", count, lambda: _decode(count))
    _rate("SDS-TL text encode", count, lambda: _encode(count))
    _rate("SDS -> Envelope -> bytes -> Envelope", count, lambda: _interwork(count))


if __name__ == "__main__":
    main()
