"""Device adapters: the protocols park equipment speaks, and simulated devices."""
