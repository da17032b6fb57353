"""Scaling out on Ray: Ray Serve for the service, Ray Data for batch scoring (`msinet[ray]`)."""
