"""tcpevent: an eBPF TCP connection tracer."""
