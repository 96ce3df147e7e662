"""``wavegms bench``: every inference path beside its baseline in one run. ``measure`` (the
primitives), ``latency`` (per image, each path and the GMS-sized one), ``accuracy`` and ``memory``
(per path), ``workloads`` (a folder and a fine-tune as users run them)."""
