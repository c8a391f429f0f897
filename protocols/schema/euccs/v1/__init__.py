"""Generated code of ``euccs.v1``."""
