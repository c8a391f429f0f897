"""Generated code of the ``euccs`` protobuf packages."""
