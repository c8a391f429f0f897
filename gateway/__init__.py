"""The gateway: configuration, routing, queues, federation, delivery tracking, CLI."""
