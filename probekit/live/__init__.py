"""Live probing: a real prober (raw sockets) and a network-namespace lab."""
