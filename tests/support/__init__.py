"""Real services the tests start on loopback, in temp dirs, and stop afterwards."""
