"""Sans-IO protocol codecs and the common schema: no I/O, no clock."""
