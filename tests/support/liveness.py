"""How long the tests wait for what should happen at once.

A call that returns "at once" (a closed tracer waking a blocked dequeue, a
timeout expiring) must return within PROMPTLY seconds, however busy the
machine: a liveness bound, never a speed target (those are in `make bench`).
The lower bounds tests check (a timeout is not cut short) need no margin:
load only ever makes things later.
"""

PROMPTLY = 3.0
#: A child interpreter starts, imports the package (or loads the library)
#: and attaches its tracer within this: the BPF program's load and the
#: verifier take much longer on an emulated CPU than here.
ATTACH_TIMEOUT = 10 * PROMPTLY
